/**
 * Redis that may delete the fleet's keys when full (maxmemory with a policy
 * other than noeviction; managed Redis often defaults to volatile-lru): the
 * worker says so at start and in a gauge, and `status --check` fails with breach `eviction`,
 * on a private redis-server whose policy the test sets and changes.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from './helpers/cli.js';
import { randomPrefix, until } from './helpers/redis.js';
import { freePort, type PrivateRedis, privateRedis } from './helpers/redis-server.js';
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
    const port = await freePort();
    const gauge = async () =>
      /streambed_redis_may_evict\{node="redis",policy="([^"]+)"\} 1/.exec(
        await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
      )?.[1];
    worker = spawnWorker(prefix, {
      METRICS_PORT: String(port),
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

    // The fleet gauge an alert can fire on, read on scrape.
    expect(await until('the gauge', gauge, 10_000)).toBe('volatile-lru');

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await until('the gauge is gone', async () => (await gauge()) === undefined, 15_000, 250);
    const safe = await check();
    expect(safe.code, safe.stdout).toBe(0);
    expect(JSON.parse(safe.stdout).breaches).toEqual([]);
  }, 60_000);
});
