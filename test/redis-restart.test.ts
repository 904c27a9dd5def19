/**
 * Redis faults (issue 3 acceptance): a private, AOF-persisted
 * (`--appendfsync always`) redis-server is SIGKILLed mid-run and restarted on
 * the same port; the worker processes reconnect and finish, every envelope
 * gets exactly one result and nothing acknowledged is lost. A worker started
 * while Redis is down logs a clear retry line, stays up, reports not ready on
 * /readyz, and serves once Redis appears.
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { tinyModel } from './helpers/models.js';
import { randomPrefix, redisClient, until } from './helpers/redis.js';
import { freePort, type PrivateRedis, privateRedis } from './helpers/redis-server.js';
import { type ChildWorker, readyz, spawnWorker } from './helpers/worker.js';

const TOTAL = 3_000;
const RETRY_LINE = 'redis unreachable, retrying';
const children: ChildWorker[] = [];
const servers: PrivateRedis[] = [];
const clients: Redis[] = [];

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  for (const r of clients) r.disconnect();
  // Each server has its own directory, removed by stop(): no keys outlive the file.
  await Promise.all(servers.map((s) => s.stop()));
});

async function startServer(args: string[] = []): Promise<{ server: PrivateRedis; redis: Redis }> {
  const server = await privateRedis(args);
  servers.push(server);
  const redis = redisClient(server.url);
  // During the outage this client's commands fail and are retried by `until`; keep ioredis quiet.
  redis.on('error', () => undefined);
  clients.push(redis);
  return { server, redis };
}

function spawn(prefix: string, env: Record<string, string | number>): ChildWorker {
  const w = spawnWorker(prefix, env);
  children.push(w);
  return w;
}

const retryLines = (w: ChildWorker) =>
  w
    .output()
    .split('\n')
    .filter((l) => l.includes(RETRY_LINE));

function field(f: string[], name: string): string | undefined {
  const i = f.indexOf(name);
  return i >= 0 && i % 2 === 0 ? f[i + 1] : undefined;
}

/** Stream ids compare by (ms, seq). */
function idLte(a: string, b: string): boolean {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  return am < bm || (am === bm && as <= bs);
}

/**
 * One atomic snapshot (MULTI): every request entry the group has delivered
 * and that is no longer pending was acknowledged, so its result must exist.
 */
async function ackedWithoutResult(redis: Redis, stream: string, results: string, group: string) {
  const replies = (await redis
    .multi()
    .xinfo('GROUPS', stream)
    .xpending(stream, group, '-', '+', 1_000_000)
    .xrange(stream, '-', '+')
    .xrange(results, '-', '+')
    .exec()) as Array<[Error | null, unknown]>;
  for (const [err] of replies) if (err) throw err;
  const groups = replies[0]?.[1] as unknown[][];
  const g = groups.find((row) => row[row.indexOf('name') + 1] === group) as unknown[];
  const lastDelivered = String(g[g.indexOf('last-delivered-id') + 1]);
  const pending = new Set((replies[1]?.[1] as Array<[string]>).map(([id]) => id));
  const entries = replies[2]?.[1] as Array<[string, string[]]>;
  const rids = new Set(
    (replies[3]?.[1] as Array<[string, string[]]>).map(([, f]) => field(f, 'rid')),
  );
  const acked = entries.filter(([id]) => idLte(id, lastDelivered) && !pending.has(id));
  return { acked: acked.length, missing: acked.filter(([id]) => !rids.has(id)).map(([id]) => id) };
}

describe('redis restart', () => {
  it(`answers ${TOTAL} envelopes exactly once across a SIGKILL and restart of Redis`, async () => {
    const { server, redis } = await startServer(['--appendonly', 'yes', '--appendfsync', 'always']);
    const prefix = randomPrefix('rrestart');
    const k = keys(prefix);
    const model = await tinyModel({ hidden: 64 });
    const ports = [await freePort(), await freePort()];
    const workers = ports.map((port) =>
      spawn(prefix, {
        REDIS_URL: server.url,
        MODELS: `tiny=${model.dir}`,
        METRICS_PORT: port,
        // Entries XREADGROUPed just before the crash (reply lost) are pending under a live
        // consumer that never saw them: the reclaimer must pick them up.
        CLAIM_IDLE_MS: 3000,
        CLAIM_INTERVAL_MS: 500,
        READ_COUNT: 32,
        BATCH_SIZE: 16,
      }),
    );
    const client = new StreambedClient({ redis, prefix, maxBacklog: TOTAL * 2 });
    const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa'.split(' ');
    const pages = Array.from({ length: TOTAL }, (_, i) => ({
      id: `p${i}`,
      source: `s${i % 3}`,
      text: Array.from({ length: 4 + (i % 30) }, (_, w) => words[(i + w) % words.length]).join(' '),
    }));
    await client.submit(pages, { model: 'tiny' });
    await client.close();
    for (const port of ports) {
      await until('worker ready', async () => (await readyz(port)).status === 200, 60_000, 100);
    }

    await until('some results', async () => (await redis.xlen(k.results())) >= 200, 60_000, 20);
    const before = workers.map((w) => retryLines(w).length);
    await server.kill();
    // Wait on the workers noticing, not on the clock.
    await until(
      'both workers retrying',
      () => workers.every((w, i) => retryLines(w).length > (before[i] ?? 0)),
      30_000,
    );
    for (const port of ports) {
      const r = await until(
        '/readyz reports the outage',
        async () => {
          const res = await readyz(port);
          return res.status === 503 ? res : undefined;
        },
        15_000,
      );
      expect(r.body).toMatch(/redis unreachable/);
    }
    await server.start();

    // Right after the restart: what the AOF says was acknowledged has its result.
    const early = await until('snapshot', () =>
      ackedWithoutResult(redis, k.request('tiny'), k.results(), k.group),
    );
    expect(early.acked).toBeGreaterThan(0);
    expect(early.missing).toEqual([]);
    expect(early.acked).toBeLessThan(TOTAL); // the outage really was mid-run

    await until(
      'all answered',
      async () => {
        const g = await redis.xinfo('GROUPS', k.request('tiny'));
        const rec = (g as unknown[][])[0] as unknown[];
        const lag = rec[rec.indexOf('lag') + 1];
        const pending = rec[rec.indexOf('pending') + 1];
        return lag === 0 && pending === 0 && (await redis.xlen(k.results())) >= TOTAL;
      },
      120_000,
      200,
    );
    const results = await redis.xrange(k.results(), '-', '+');
    const rids = results.map(([, f]) => field(f, 'rid'));
    const entries = await redis.xrange(k.request('tiny'), '-', '+');
    expect(entries).toHaveLength(TOTAL);
    expect(results).toHaveLength(TOTAL);
    expect(new Set(rids).size).toBe(TOTAL);
    expect(new Set(rids)).toEqual(new Set(entries.map(([id]) => id)));
    expect(new Set(results.map(([, f]) => field(f, 'status')))).toEqual(new Set(['ok']));
    expect(await redis.xlen(k.dlq('tiny'))).toBe(0);
    expect(
      (await ackedWithoutResult(redis, k.request('tiny'), k.results(), k.group)).missing,
    ).toEqual([]);
    // The same two processes did all of it: they reconnected rather than exiting.
    for (const w of workers) expect(w.proc.exitCode).toBeNull();
    for (const port of ports) expect((await readyz(port)).status).toBe(200);
    const consumers = (await redis.xinfo('CONSUMERS', k.request('tiny'), k.group)) as unknown[][];
    expect(consumers).toHaveLength(2);
  }, 240_000);

  it('a worker started while Redis is down retries with a clear log line, then serves', async () => {
    const { server, redis } = await startServer();
    await server.kill();
    const prefix = randomPrefix('rdown');
    const k = keys(prefix);
    const port = await freePort();
    const w = spawn(prefix, { REDIS_URL: server.url, MODELS: 'fx=fixture:4', METRICS_PORT: port });
    const lines = await until(
      'retry lines',
      () => {
        const l = retryLines(w);
        return l.length >= 1 ? l : undefined;
      },
      60_000,
      100,
    );
    const logged = lines.map(
      (l) => JSON.parse(l) as { level: number; waitMs: number; redis: string },
    );
    expect(logged.every((l) => l.level === 40)).toBe(true); // warn
    expect(logged.every((l) => l.waitMs <= 5_000)).toBe(true); // capped
    expect(logged[0]?.redis).toBe(server.url);
    const ready = await readyz(port);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/redis unreachable/);
    expect(w.proc.exitCode).toBeNull(); // no crash loop: the process waits

    await server.start();
    await until(
      'ready once Redis is up',
      async () => (await readyz(port)).status === 200,
      30_000,
      100,
    );
    const client = new StreambedClient({ redis, prefix });
    try {
      const [v] = await client.embed(['served after the outage'], {
        model: 'fx',
        timeoutMs: 20_000,
      });
      expect(v).toHaveLength(4);
      expect(await redis.xlen(k.request('fx'))).toBe(1);
    } finally {
      await client.close();
    }
    expect(w.proc.exitCode).toBeNull();
  }, 120_000);

  it('SIGTERM while Redis is down exits within the drain timeout; the held entries stay pending', async () => {
    const { server, redis } = await startServer(['--appendonly', 'yes', '--appendfsync', 'always']);
    const prefix = randomPrefix('rterm');
    const k = keys(prefix);
    const env = {
      REDIS_URL: server.url,
      MODELS: 'fx=fixture:4',
      CLAIM_IDLE_MS: 1000,
      CLAIM_INTERVAL_MS: 300,
    };
    const w = spawn(prefix, { ...env, DRAIN_TIMEOUT_MS: 2000, BATCH_SIZE: 4, READ_COUNT: 8 });
    const client = new StreambedClient({ redis, prefix });
    const pages = Array.from({ length: 40 }, (_, i) => ({
      id: `p${i}`,
      source: 's',
      text: `slow ${i} @@slow:100`,
    }));
    await client.submit(pages, { model: 'fx' });
    await client.close();
    await until(
      'worker holds entries',
      async () => ((await redis.xpending(k.request('fx'), k.group)) as [number])[0] > 0,
      60_000,
      20,
    );
    await server.kill();
    await until('worker retrying', () => retryLines(w).length > 0, 30_000);
    const t0 = Date.now();
    w.proc.kill('SIGTERM');
    const code = await Promise.race([
      w.exited,
      new Promise((r) => setTimeout(() => r('still running'), 10_000)),
    ]);
    expect(code, `exit ${Date.now() - t0} ms after SIGTERM`).not.toBe('still running');

    // Nothing it held was lost: a fresh worker answers every page exactly once.
    await server.start();
    spawn(prefix, env);
    await until(
      'all answered',
      async () =>
        (await redis.xpending(k.request('fx'), k.group))[0] === 0 &&
        (await redis.xlen(k.results())) >= pages.length,
      60_000,
      200,
    );
    const rids = (await redis.xrange(k.results(), '-', '+')).map(([, f]) => field(f, 'rid'));
    expect(rids).toHaveLength(pages.length);
    expect(new Set(rids).size).toBe(pages.length);
  }, 120_000);
});
