/**
 * Redis that may delete the fleet's keys when full (maxmemory with a policy
 * other than noeviction; managed Redis often defaults to volatile-lru): the
 * worker says so at start and `status --check` fails with breach `eviction`,
 * on a private redis-server whose policy the test sets and changes.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from './helpers/cli.js';
import { randomPrefix, until } from './helpers/redis.js';
import { type PrivateRedis, privateRedis } from './helpers/redis-server.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = randomPrefix('evict');
let server: PrivateRedis;
let admin: Redis;
let worker: ChildWorker | undefined;

beforeAll(async () => {
  server = await privateRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru']);
  admin = new Redis(server.url);
});

afterAll(async () => {
  worker?.proc.kill('SIGKILL');
  await worker?.exited;
  admin.disconnect();
  await server.stop();
});

describe('a Redis that may evict the fleet keys', () => {
  it('the worker warns at start; status --check breaches until the policy is noeviction', async () => {
    worker = spawnWorker(prefix, {
      REDIS_URL: server.url,
      MODELS: 'fx=fixture:8',
      LOG_LEVEL: 'info',
    });
    await until('the worker warns', () => /Redis may evict/.test(worker!.output()), 30_000);
    expect(worker.output()).toMatch(/maxmemory-policy volatile-lru[^"]*reply streams/);
    await until('the worker reads', () => worker!.output().includes('worker reading'), 30_000);

    const check = () =>
      runCli(['status', '--check', '--json', '--key-prefix', prefix], { REDIS_URL: server.url });
    const evicting = await check();
    expect(evicting.code, evicting.stderr).toBe(1);
    const breaches = (JSON.parse(evicting.stdout) as { breaches: Array<Record<string, unknown>> })
      .breaches;
    expect(breaches).toEqual([
      expect.objectContaining({ kind: 'eviction', subject: 'redis', value: 64 * 1024 * 1024 }),
    ]);

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    const safe = await check();
    expect(safe.code, safe.stdout).toBe(0);
    expect(JSON.parse(safe.stdout).breaches).toEqual([]);
  }, 60_000);
});
