/**
 * /healthz, /readyz and the cost of /metrics (issue 4), on a private
 * redis-server so Redis can be killed and restarted and its command counts
 * (INFO commandstats) belong to this file alone: /readyz is 503 while Redis
 * is down or models are loading and 200 after; 20 scrapes in a second cost
 * one pipelined read.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../src/config/load.js';
import { boundPort, startHttp } from '../src/http/server.js';
import { createLogger } from '../src/log.js';
import { workerMetrics } from '../src/metrics/worker-metrics.js';
import { startWorker, type WorkerHandle } from '../src/worker/worker-process.js';
import { tinyModel } from './helpers/models.js';
import { parseExposition } from './helpers/prometheus.js';
import { randomPrefix, until } from './helpers/redis.js';
import { type PrivateRedis, privateRedis } from './helpers/redis-server.js';

let redisServer: PrivateRedis;
let modelDir: string;
const running: Array<{ worker: WorkerHandle; server: http.Server }> = [];
const tmpDirs: string[] = [];

async function start(models: string, env: Record<string, string> = {}) {
  const config = loadConfig({
    REDIS_URL: redisServer.url,
    KEY_PREFIX: randomPrefix('health'),
    MODELS: models,
    THREADS: '1',
    METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
    ALLOW_REMOTE_MODELS: '0',
    BLOCK_MS: '200',
    ...env,
  });
  const worker = startWorker(config, { log: createLogger(config.logLevel) });
  const server = await startHttp(0, worker, workerMetrics(worker));
  running.push({ worker, server });
  const get = async (p: string) => {
    const res = await fetch(`http://127.0.0.1:${boundPort(server)}${p}`);
    return { status: res.status, body: await res.text() };
  };
  return { worker, get };
}

beforeAll(async () => {
  modelDir = (await tinyModel({ hidden: 64 })).dir;
  redisServer = await privateRedis();
});
afterEach(async () => {
  for (const { worker, server } of running.splice(0)) {
    await new Promise((r) => server.close(r));
    await worker.stop();
  }
});
afterAll(async () => {
  await redisServer.stop();
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('health endpoints', () => {
  it('/readyz is 503 while Redis is down and 200 once it is back; /healthz stays 200', async () => {
    const { get } = await start(`tiny=${modelDir}`);
    await until('ready', async () => (await get('/readyz')).status === 200);
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });

    await redisServer.kill();
    const down = await until('not ready', async () => {
      const r = await get('/readyz');
      return r.status === 503 ? r : undefined;
    });
    expect(down.body).toMatch(/redis unreachable/);
    expect((await get('/healthz')).status).toBe(200);
    // /metrics still answers at once during the outage, without the fleet gauges.
    const t0 = Date.now();
    const m = parseExposition((await get('/metrics')).body);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(m.value('streambed_fleet_stats_up', {})).toBe(0);
    expect(m.value('streambed_ready', {})).toBe(0);
    expect(m.hasSeries('streambed_stream_length')).toBe(true);
    expect(m.samples.some((s) => s.name === 'streambed_stream_length')).toBe(false);

    await redisServer.start();
    await until('ready again', async () => (await get('/readyz')).status === 200, 30_000);
    await until(
      'fleet gauges back',
      async () =>
        parseExposition((await get('/metrics')).body).value('streambed_fleet_stats_up', {}) === 1,
    );
  });

  it('/readyz is 503 while a model is loading (or failing to), 200 once it has loaded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-late-model-'));
    tmpDirs.push(dir);
    const late = path.join(dir, 'late');
    const { worker, get } = await start(`late=${late}`);
    const r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/late (loading|failed to load)/);
    const m = parseExposition((await get('/metrics')).body);
    expect(m.value('streambed_ready', {})).toBe(0);
    expect(m.value('streambed_models_loaded', {})).toBe(0);

    // The model appears (atomically, as a volume mount or download would finish).
    fs.cpSync(modelDir, `${late}.tmp`, { recursive: true });
    fs.renameSync(`${late}.tmp`, late);
    await until('ready', async () => (await get('/readyz')).status === 200, 30_000);
    await worker.started;
    const after = parseExposition((await get('/metrics')).body);
    expect(after.value('streambed_models_loaded', {})).toBe(1);
    expect(after.value('streambed_model_load_seconds', { model: 'late' })).toBeGreaterThan(0);
  });
});

describe('scrape cost', () => {
  it('20 scrapes in a second cost one pipelined read of Redis (INFO commandstats)', async () => {
    // No trimmer and no reclaim sweep in the window (the reclaimer's XPENDING ... IDLE would
    // count as a scrape's XPENDING): only the scrapes and the read loop talk to this Redis.
    const { get } = await start(`tiny=${modelDir}`, {
      TRIM_INTERVAL_MS: '0',
      CLAIM_INTERVAL_MS: '600000',
    });
    await until('ready', async () => (await get('/readyz')).status === 200);
    const admin = new Redis(redisServer.url);
    try {
      // Warm the metrics connection, then let the cache expire.
      await get('/metrics');
      await new Promise((r) => setTimeout(r, 1100));
      const before = await commandStats(admin);
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) {
        expect((await get('/metrics')).status).toBe(200);
        await new Promise((r) => setTimeout(r, 40));
      }
      const elapsed = Date.now() - t0;
      const after = await commandStats(admin);
      // The worker's own background work (reads every BLOCK_MS, lease renewals, the bulk
      // scheduler's idle checks) is not scraping.
      const background = new Set([
        'info',
        'xreadgroup',
        'xautoclaim',
        'evalsha',
        'eval',
        'get',
        'set',
        'zrange',
        'zadd',
        'zrem',
        'zscore',
        'zremrangebyscore',
        'hget',
        'smembers',
      ]);
      const delta: Record<string, number> = {};
      for (const [cmd, n] of Object.entries(after)) {
        const d = n - (before[cmd] ?? 0);
        if (d > 0 && !background.has(cmd)) delta[cmd] = d;
      }
      const total = Object.values(delta).reduce((a, b) => a + b, 0);
      // One read = TIME + (XLEN, XINFO GROUPS, XPENDING) x 2 lanes + XLEN of the DLQ = 8 commands,
      // sent as one pipeline; the 1 s cache allows one read per started second (1, or 2 when a loaded
      // machine stretches the 20 scrapes past 1 s).
      const reads = Math.floor(elapsed / 1000) + 1;
      console.log(
        `20 scrapes in ${elapsed} ms cost ${total} Redis commands: ${JSON.stringify(delta)}`,
      );
      expect(delta.time ?? 0).toBeGreaterThanOrEqual(1);
      expect(delta.time ?? 0).toBeLessThanOrEqual(reads);
      expect(total).toBe(8 * (delta.time ?? 0));

      // Concurrent scrapers share the read in flight.
      await new Promise((r) => setTimeout(r, 1100));
      const b2 = await commandStats(admin);
      await Promise.all(Array.from({ length: 20 }, () => get('/metrics')));
      const a2 = await commandStats(admin);
      expect((a2.time ?? 0) - (b2.time ?? 0)).toBe(1);
    } finally {
      admin.disconnect();
    }
  });
});

async function commandStats(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}
