import { WebServer, WebServerError, DEFAULT_HOST, DEFAULT_PORT } from '../web/server.js';
import { TokenError } from '../web/auth.js';
import { VmmError } from '../vmm/errors.js';
import { EXIT } from '../vmm/exit-status.js';

/** Environment variable an admin can set the token in (kept out of `ps` output, unlike --token). */
export const TOKEN_ENV = 'TYPEVISOR_WEB_TOKEN';

export const SERVE_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  token: { type: 'string' },
} as const;

export const SERVE_USAGE = `usage: typevisor serve [--host ADDRESS] [--port N] [--token TOKEN]

Serves the web console: a page listing this host's VMs, a form to create them,
start/pause/resume/stop, each VM's serial console in the browser and its live
figures. Every VM runs in its own VMM process, driven through the REST API of
'typevisor api', so one VM crashing never takes the others or the console down.

options:
  --host ADDRESS   address to listen on (default ${DEFAULT_HOST}). Only loopback
                   addresses are used unless named here explicitly; the console
                   speaks plain HTTP, so put TLS in front of it off this host
  --port N         TCP port (default ${DEFAULT_PORT}; 0 picks a free one)
  --token TOKEN    the access token (at least 16 characters); also read from
                   $${TOKEN_ENV}. Default: 32 random bytes, printed at start

Every request needs the token: log in with it on the page, or send
'Authorization: Bearer TOKEN'. SIGINT or SIGTERM stops every VM and the server.
`;

export interface ServeValues {
  host?: string;
  port?: string;
  token?: string;
}

export interface ServeIo {
  stdout?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  /** Resolves when the server should stop (SIGINT/SIGTERM/SIGHUP by default). */
  stopRequested?: Promise<string>;
  /** Called once the server listens (tests read the URL and token from it). */
  onListening?: (server: WebServer) => void;
}

function parsePort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new VmmError('invalid-config', `--port "${text}" is not a TCP port (0-65535)`);
  return Number(text);
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

/** `typevisor serve`: runs the web console until told to stop; returns the exit status. */
export async function serveCommand(values: ServeValues, stderr: NodeJS.WritableStream, io: ServeIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const env = io.env ?? process.env;
  const port = values.port !== undefined ? parsePort(values.port) : DEFAULT_PORT;
  const token = values.token ?? (env[TOKEN_ENV] || undefined);
  let server: WebServer;
  try {
    server = await WebServer.start({
      ...(values.host !== undefined && { host: values.host, hostExplicit: true }),
      port,
      ...(token !== undefined && { token }),
      log: (line) => stderr.write(`typevisor serve: ${line}\n`),
    });
  } catch (e) {
    if (e instanceof WebServerError || e instanceof TokenError) {
      stderr.write(`typevisor: ${e.message}\n`);
      return EXIT.VMM_ERROR;
    }
    throw e;
  }
  stdout.write(`typevisor web console on ${server.url}\n`);
  if (token === undefined) stdout.write(`token: ${server.token}\n`);
  else stdout.write(`token: as given${values.token === undefined ? ` in $${TOKEN_ENV}` : ' with --token'}\n`);
  io.onListening?.(server);
  const stop = io.stopRequested ? { promise: io.stopRequested, dispose: () => {} } : signalled();
  try {
    const why = await stop.promise;
    stderr.write(`typevisor serve: ${why}: stopping every VM\n`);
  } finally {
    stop.dispose();
    await server.close();
  }
  return EXIT.OK;
}
