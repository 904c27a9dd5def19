/**
 * Test helper: a real Postgres wire endpoint with pgvector, served by
 * pglite-socket from a child process so a test can take it down (SIGTERM or
 * SIGKILL) and bring it back on the same port with the same data, like a
 * database outage. The child exits when this process does.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PgliteServer {
  /** postgres:// URL for `pg`. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Stop the server: SIGTERM (clean shutdown) or, with `{ kill: true }`, SIGKILL (a crash). */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** Start it again on the same port with the same data dir (stops it first if running). */
  restart(): Promise<void>;
}

const MAIN = new URL('./pglite-server-main.mjs', import.meta.url);
/** A fresh data dir runs initdb in WebAssembly: ~10 s on an idle 2-core box, much more under load. */
const READY_TIMEOUT_MS = 90_000;

export async function startPgliteServer(opts: { dataDir?: string } = {}): Promise<PgliteServer> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'sb-pglite-')));
  let child: ChildProcess | undefined;
  let port = 0;

  const launch = async () => {
    const started = await spawnServer(dataDir, port);
    child = started.child;
    port = started.port;
  };

  const stop = async ({ kill = false } = {}) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(kill ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };

  await launch();
  return {
    get url() {
      return `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    dataDir,
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}

/** Fork the server and wait for it to listen; the port is retried briefly in case it is still being released. */
async function spawnServer(
  dataDir: string,
  port: number,
): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnce(dataDir, port);
    } catch (err) {
      if (port === 0 || attempt >= 20 || !String(err).includes('EADDRINUSE')) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function spawnOnce(dataDir: string, port: number): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(MAIN, [dataDir, String(port)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pglite server did not start within ${READY_TIMEOUT_MS} ms:\n${output}`));
    }, READY_TIMEOUT_MS);
    child.on('message', (msg: { type?: string; port?: number }) => {
      if (msg.type !== 'listening' || typeof msg.port !== 'number') return;
      clearTimeout(timer);
      resolve({ child, port: msg.port });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`pglite server exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
}
