import type { Metrics as MetricsConfig } from './models.js';
import { ApiError } from './errors.js';
import { HostFile } from './sinks.js';

/** Firecracker writes metrics every 60 s (its WRITE_METRICS_PERIOD_MS) and on FlushMetrics. */
export const METRICS_PERIOD_MS = 60_000;

/** Gauges read at flush time: the machine's counters and the sinks' drop counts. */
export type MetricsSource = () => Record<string, Record<string, number>>;

/**
 * The metrics file: one JSON object per line, as Firecracker writes it.
 * Request counters are deltas since the previous line (Firecracker's
 * SharedIncMetric resets on each write); the groups from `source` are
 * cumulative values read at the moment of writing.
 */
export class ApiMetrics {
  private file: HostFile | undefined;
  private configured: MetricsConfig | undefined;
  private readonly counters = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  /** Lines written so far. */
  lines = 0;

  constructor(
    private readonly id: string,
    private readonly source: MetricsSource,
  ) {}

  /** Counts one event, e.g. inc('put_api_requests', 'machine_cfg_count'). */
  inc(group: string, name: string): void {
    let g = this.counters.get(group);
    if (!g) this.counters.set(group, (g = new Map()));
    g.set(name, (g.get(name) ?? 0) + 1);
  }

  /** PUT /metrics: allowed once per process, as in Firecracker. */
  configure(cfg: MetricsConfig, periodMs = METRICS_PERIOD_MS): void {
    if (this.configured) throw ApiError.badRequest(`metrics are already being written to ${this.configured.metrics_path}; they can be configured once`);
    this.file = HostFile.open(cfg.metrics_path, 'metrics_path');
    this.configured = { ...cfg };
    this.timer = setInterval(() => this.flush(), periodMs);
    this.timer.unref();
  }

  get config(): MetricsConfig | undefined {
    return this.configured && { ...this.configured };
  }

  /** Writes one line if metrics are configured; returns whether one was written. */
  flush(): boolean {
    if (!this.file || !this.configured) return false;
    const line: Record<string, unknown> = { utc_timestamp_ms: Date.now() };
    if (this.configured.emit_id) line.id = this.id;
    if (this.configured.properties) line.properties = this.configured.properties;
    for (const [group, counts] of this.counters) line[group] = Object.fromEntries(counts);
    this.counters.clear();
    for (const [group, values] of Object.entries(this.source())) line[group] = { ...(line[group] as object | undefined), ...values };
    line.metrics = { missed_metrics_count: this.file.dropped };
    const ok = this.file.write(`${JSON.stringify(line)}\n`);
    if (ok) this.lines++;
    return ok;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.file?.close();
    this.file = undefined;
  }
}
