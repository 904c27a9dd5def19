/**
 * A private redis-server child for tests that kill or restart Redis: never
 * the shared one. `kill()` is a SIGKILL (a crash); `start()` brings it back on
 * the same port and directory, so an AOF-persisted dataset survives.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';

/** redis-server arguments for one ACL user with every right, the default user off. */
export function aclArgs(auth: { user: string; password: string }): string[] {
  return [
    '--user',
    'default',
    'off',
    '--user',
    auth.user,
    'on',
    `>${auth.password}`,
    '~*',
    '&*',
    '+@all',
  ];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface PrivateRedis {
  port: number;
  url: string;
  dir: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function privateRedis(
  extraArgs: string[] = [],
  auth?: { user: string; password: string },
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-redis-'));
  let child: ChildProcess | undefined;
  const url = auth
    ? `redis://${auth.user}:${auth.password}@127.0.0.1:${port}`
    : `redis://127.0.0.1:${port}`;
  const acl = auth ? aclArgs(auth) : [];
  const self: PrivateRedis = {
    port,
    url,
    dir,
    async start() {
      child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--daemonize',
          'no',
          '--dir',
          dir,
          ...acl,
          ...extraArgs,
        ],
        {
          stdio: 'ignore',
        },
      );
      const probe = new Redis(url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      // Refused until the server listens: the loop below retries, so no unhandled 'error' noise.
      probe.on('error', () => undefined);
      for (let i = 0; ; i++) {
        try {
          await probe.connect();
          await probe.ping();
          break;
        } catch (err) {
          probe.disconnect();
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      probe.disconnect();
    },
    async kill() {
      // A SIGKILLed child has exitCode null and signalCode set: it is gone all the same.
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      await self.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}

const PADDING_KEY = 'sbt-oom-padding';

/**
 * Make a private redis-server (started with `--maxmemory-policy noeviction`)
 * refuse every write that may grow memory (OOM), as at maxmemory: a 4 MiB
 * padding key (written in small pieces: a big argument would leave a big
 * query buffer that Redis frees later), then maxmemory 2 MiB under what is
 * used, far more than what any client's buffers or the test's own commands
 * free, so the outage lasts until freeMemory().
 */
export async function fillMemory(redis: Redis): Promise<void> {
  const piece = Buffer.alloc(64 << 10, 1);
  for (let i = 0; i < 64; i++) await redis.append(PADDING_KEY, piece);
  const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  await redis.config('SET', 'maxmemory', String(used - (2 << 20)));
  const refused = await redis.set(`${PADDING_KEY}:probe`, 'x').then(
    () => undefined,
    (err: Error) => err.message,
  );
  if (!refused?.startsWith('OOM')) throw new Error(`redis still takes writes: ${refused}`);
}

/** Memory back: writes land again. */
export async function freeMemory(redis: Redis): Promise<void> {
  await redis.config('SET', 'maxmemory', '0');
  await redis.del(PADDING_KEY);
}

/**
 * The private servers a test file starts, each with a client on it (quiet
 * while the server is down); `stopAll()` in the file's afterAll removes them
 * and their directories, so no keys outlive the file.
 */
export function privateServers(args: string[] = []) {
  const servers: PrivateRedis[] = [];
  const clients: Redis[] = [];
  return {
    async start(): Promise<{ server: PrivateRedis; redis: Redis }> {
      const server = await privateRedis(args);
      servers.push(server);
      const redis = new Redis(server.url, { maxRetriesPerRequest: 3 });
      redis.on('error', () => undefined);
      clients.push(redis);
      return { server, redis };
    },
    async stopAll(): Promise<void> {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(servers.splice(0).map((s) => s.stop()));
    },
  };
}
