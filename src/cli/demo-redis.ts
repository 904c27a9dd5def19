/**
 * The demo's Redis: the configured one when it answers; when nothing listens
 * at a local (loopback, no password, no TLS) REDIS_URL, a private
 * `redis-server` on a free port, in a temporary folder, stopped at the end;
 * and when none is installed, one line saying what is missing and how to get
 * it. A remote or authenticated URL is never replaced: its failure is the
 * user's to see.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { StreambedError } from '../errors.js';
import { connectClient } from '../redis/connect.js';

/** A local Redis that is up answers a PING in milliseconds. */
const PROBE_MS = 1_500;
const PRIVATE_START_MS = 10_000;

export interface DemoRedis {
  url: string;
  /** Stops the private server, if one was started. */
  stop(): Promise<void>;
}

export async function demoRedis(url: string, tlsCaFile?: string): Promise<DemoRedis> {
  const local = replaceable(url);
  try {
    const probe = await connectClient(
      { url, tlsCaFile, name: 'streambed-demo' },
      local ? PROBE_MS : undefined,
    );
    probe.disconnect();
    return { url, stop: async () => undefined };
  } catch (err) {
    if (!local || !(err instanceof StreambedError) || err.code !== 'redis_unavailable') throw err;
  }
  const bin = findOnPath('redis-server');
  if (!bin)
    throw new StreambedError(
      'redis_unavailable',
      `no Redis answers at ${url} and redis-server is not installed: install it (apt-get install redis-server, brew install redis), run one (docker run -p 6379:6379 redis:7), or set REDIS_URL`,
    );
  return startPrivate(bin, url);
}

/** Loopback, plain TCP, no credentials: a private server can stand in without surprising anyone. */
function replaceable(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return (
    u.protocol === 'redis:' &&
    !u.username &&
    !u.password &&
    ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)
  );
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // Not in this folder: look in the next.
    }
  }
  return undefined;
}

async function startPrivate(bin: string, wanted: string): Promise<DemoRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'streambed-demo-redis-'));
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    (await connectClient({ url, name: 'streambed-demo' }, PRIVATE_START_MS)).disconnect();
  } catch (err) {
    await stop();
    throw err;
  }
  console.log(
    `no Redis answers at ${wanted}: started a private redis-server on ${url} for this demo (stopped at the end)`,
  );
  return { url, stop };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
