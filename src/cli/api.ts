import { ApiController, ApiServer, bootFromConfigFile, ConfigFileError, DEFAULT_INSTANCE_ID, DEFAULT_MAX_PAYLOAD_BYTES, SocketError } from '../api/index.js';
import { VmmError } from '../vmm/errors.js';
import { EXIT } from '../vmm/exit-status.js';
import type { EngineChoice } from '../vmm/config.js';

/** Firecracker's default socket is /run/firecracker.socket; ours sits beside it. */
export const DEFAULT_API_SOCKET = '/run/typevisor.socket';

export const API_OPTIONS = {
  'api-sock': { type: 'string' },
  id: { type: 'string' },
  'config-file': { type: 'string' },
  'no-api': { type: 'boolean' },
  engine: { type: 'string' },
  'http-api-max-payload-size': { type: 'string' },
} as const;

export const API_USAGE = `usage: typevisor api [--api-sock PATH] [--id ID] [--config-file FILE [--no-api]] [options]

Serves a Firecracker-compatible REST API on a Unix socket and waits for
configuration (PUT /machine-config, /boot-source, /drives/..., then
PUT /actions {"action_type": "InstanceStart"}). The contract is docs/api/openapi.yaml.

options:
  --api-sock PATH      the API socket (default ${DEFAULT_API_SOCKET}); a stale socket file is
                       replaced, one another process serves on is refused
  --id ID              instance ID, in GET / and the log (default ${DEFAULT_INSTANCE_ID}):
                       1-64 letters, digits and '-'
  --config-file FILE   configure from Firecracker's JSON (machine-config, boot-source, drives,
                       ...) and start the VM at once
  --no-api             serve no API (needs --config-file)
  --engine NAME        auto | kvm | soft: the engine when machine-config names none (default auto)
  --http-api-max-payload-size BYTES
                       the largest request body accepted (default ${DEFAULT_MAX_PAYLOAD_BYTES})

The guest's serial console is on stdin/stdout unless PUT /serial names a file. The
process exits when the guest stops, with the status of 'typevisor run'; SIGINT,
SIGTERM and SIGHUP stop the VM first.
`;

export interface ApiValues {
  'api-sock'?: string;
  id?: string;
  'config-file'?: string;
  'no-api'?: boolean;
  engine?: string;
  'http-api-max-payload-size'?: string;
}

/** Firecracker's instance ID rule: 1 to 64 alphanumerics or hyphens. */
const INSTANCE_ID = /^[A-Za-z0-9-]{1,64}$/;

function parseEngine(text: string): EngineChoice {
  if (text === 'auto' || text === 'kvm' || text === 'soft') return text;
  throw new VmmError('invalid-config', `--engine "${text}" is not one of auto, kvm, soft`);
}

function parsePayloadLimit(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new VmmError('invalid-config', `--http-api-max-payload-size "${text}" is not a positive whole number of bytes`);
  }
  return Number(text);
}

export interface ApiCommandIo {
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
  /** Resolves when the process is asked to stop (signals by default). */
  stopRequested?: Promise<string>;
}

function signalled(): { promise: Promise<string>; dispose: () => void } {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let onSignal: (s: NodeJS.Signals) => void = () => {};
  const promise = new Promise<string>((resolve) => {
    onSignal = (s) => resolve(s);
  });
  for (const s of signals) process.on(s, onSignal);
  return { promise, dispose: () => signals.forEach((s) => process.off(s, onSignal)) };
}

/**
 * `typevisor api`: serve the API until the guest stops or the process is
 * told to; returns the process exit status.
 */
export async function apiCommand(values: ApiValues, stderr: NodeJS.WritableStream, io: ApiCommandIo = {}): Promise<number> {
  const id = values.id ?? DEFAULT_INSTANCE_ID;
  if (!INSTANCE_ID.test(id)) throw new VmmError('invalid-config', `--id "${id}" must be 1 to 64 letters, digits or '-'`);
  if (values['no-api'] && values['config-file'] === undefined) {
    throw new VmmError('invalid-config', '--no-api needs --config-file: without the API nothing could configure the VM');
  }
  const engine = values.engine !== undefined ? parseEngine(values.engine) : undefined;
  const maxPayloadBytes = values['http-api-max-payload-size'] !== undefined ? parsePayloadLimit(values['http-api-max-payload-size']) : undefined;

  const controller = new ApiController({
    id,
    ...(engine && { defaultEngine: engine }),
    serialOutput: io.stdout ?? process.stdout,
    ...(io.stdin !== undefined ? { serialInput: io.stdin } : process.stdin.isTTY ? { serialInput: process.stdin } : {}),
    logFallback: (line) => stderr.write(line),
  });
  const stop = io.stopRequested ? { promise: io.stopRequested, dispose: () => {} } : signalled();
  let server: ApiServer | undefined;
  try {
    if (!values['no-api']) {
      const socketPath = values['api-sock'] ?? DEFAULT_API_SOCKET;
      server = await ApiServer.listen({
        socketPath,
        handler: (req) => controller.handle(req),
        ...(maxPayloadBytes !== undefined && { maxPayloadBytes }),
        log: (line) => controller.logger.warn('api/server', line),
      });
      controller.logger.info('api', `API server listening on ${socketPath}`);
    }
    if (values['config-file'] !== undefined) await bootFromConfigFile(controller, values['config-file']);

    const exited = new Promise<string>((resolve) => controller.vmm.once('exit', () => resolve('exit')));
    const why = await Promise.race([exited, stop.promise]);
    if (why !== 'exit') controller.logger.info('api', `${why}: stopping`);
    await server?.close();
    server = undefined;
    const report = await controller.close();
    if (report) stderr.write(`typevisor: ${report.message}\n`);
    return report?.status ?? EXIT.OK;
  } catch (e) {
    if (e instanceof SocketError || e instanceof ConfigFileError) {
      stderr.write(`typevisor: ${e.message}\n`);
      await controller.close().catch(() => {});
      return EXIT.VMM_ERROR;
    }
    await controller.close().catch(() => {});
    throw e;
  } finally {
    stop.dispose();
    await server?.close();
  }
}
