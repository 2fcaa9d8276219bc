import type { Logger as LoggerConfig, LogLevel } from './models.js';
import { HostFile } from './sinks.js';

export type Severity = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Verbosity order of Firecracker's levels (the `log` crate's LevelFilter). */
const RANK: Record<Severity | 'off', number> = { off: 0, error: 1, warn: 2, info: 3, debug: 4, trace: 5 };
const LABEL: Record<Severity, string> = { error: 'ERROR', warn: 'WARN', info: 'INFO', debug: 'DEBUG', trace: 'TRACE' };

function levelRank(level: LogLevel | 'Warn'): number {
  switch (level) {
    case 'Off': return RANK.off;
    case 'Error': return RANK.error;
    case 'Warning':
    case 'Warn': return RANK.warn;
    case 'Info': return RANK.info;
    case 'Debug': return RANK.debug;
    case 'Trace': return RANK.trace;
  }
}

function timestamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/**
 * The VMM's log, in Firecracker's line format:
 *   `<local time> [<instance id>:<thread>[:<LEVEL>][:<origin>]] <message>`
 * Until PUT /logger names a file, lines go to the fallback stream (stderr:
 * stdout carries the guest's console).
 */
export class ApiLogger {
  private file: HostFile | undefined;
  private rank = RANK.info;
  private showLevel = false;
  private showOrigin = false;
  private module: string | undefined;
  private configured: LoggerConfig | undefined;
  /** Lines that could not be written (Firecracker's logger.missed_log_count). */
  get missed(): number {
    return this.file?.dropped ?? 0;
  }

  constructor(
    private readonly id: string,
    private readonly fallback: (line: string) => void,
  ) {}

  /** Applies PUT /logger; fields left out keep their values, as in Firecracker. */
  configure(cfg: LoggerConfig): void {
    if (cfg.log_path !== undefined) {
      const file = HostFile.open(cfg.log_path, 'log_path');
      this.file?.close();
      this.file = file;
    }
    this.rank = cfg.level !== undefined ? levelRank(cfg.level) : RANK.info;
    if (cfg.show_level !== undefined) this.showLevel = cfg.show_level;
    if (cfg.show_log_origin !== undefined) this.showOrigin = cfg.show_log_origin;
    if (cfg.module !== undefined) this.module = cfg.module;
    this.configured = { ...this.configured, ...cfg };
  }

  get config(): LoggerConfig | undefined {
    return this.configured && { ...this.configured };
  }

  log(severity: Severity, origin: string, message: string): void {
    if (RANK[severity] > this.rank) return;
    if (this.module !== undefined && !origin.startsWith(this.module)) return;
    const level = this.showLevel ? `:${LABEL[severity]}` : '';
    const where = this.showOrigin ? `:${origin}` : '';
    const line = `${timestamp(new Date())} [${this.id}:main${level}${where}] ${message}\n`;
    if (this.file) this.file.write(line);
    else this.fallback(line);
  }

  error(origin: string, message: string): void {
    this.log('error', origin, message);
  }

  warn(origin: string, message: string): void {
    this.log('warn', origin, message);
  }

  info(origin: string, message: string): void {
    this.log('info', origin, message);
  }

  debug(origin: string, message: string): void {
    this.log('debug', origin, message);
  }

  close(): void {
    this.file?.close();
    this.file = undefined;
  }
}
