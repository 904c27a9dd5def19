/**
 * Leases and hand-back with real worker processes: work slower than
 * CLAIM_IDLE_MS is never taken over, redelivered or computed twice; a
 * SIGKILLed worker's entries are answered within CLAIM_IDLE_MS +
 * CLAIM_INTERVAL_MS + a batch; a forced stop hands its entries back at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { minilmModel } from './helpers/models.js';
import { computations, computeLogFile, sampleDeliveries } from './helpers/observe.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker, type WorkerEnv } from './helpers/worker.js';

const redis = redisClient();
const children: ChildWorker[] = [];
const prefixes: string[] = [];
let minilmDir: string;

beforeAll(async () => {
  minilmDir = (await minilmModel()).dir;
}, 120_000);
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
});
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

async function results(stream: string) {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, f]) => decodeResult(id.toString(), f));
}

function setup(tag: string) {
  const prefix = randomPrefix(tag);
  prefixes.push(prefix);
  const k = keys(prefix);
  const client = new StreambedClient({ redis, prefix });
  const spawn = (env: WorkerEnv) => {
    const child = spawnWorker(prefix, { LOG_LEVEL: 'info', ...env });
    children.push(child);
    return child;
  };
  const reading = (c: ChildWorker) =>
    until('worker reading', () => c.output().includes('worker reading') || undefined, 90_000);
  const answered = (n: number, timeoutMs = 120_000) =>
    until(
      `${n} results`,
      async () => {
        const r = await results(k.results());
        return r.length >= n ? r : undefined;
      },
      timeoutMs,
      100,
    );
  const pendingOf = async (stream: string, consumerPart: string) => {
    const rows = (await redis.xpending(stream, k.group, '-', '+', 10_000)) as Array<
      [string, string, number, number]
    >;
    return rows.filter(([, consumer]) => consumer.includes(consumerPart)).length;
  };
  return { prefix, k, client, spawn, reading, answered, pendingOf };
}

/** Every entry answered once, ok; nothing dead-lettered; no entry delivered twice; no text computed twice. */
async function expectOnceEach(
  t: ReturnType<typeof setup>,
  model: string,
  n: number,
  log: string,
  maxDelivery: number,
) {
  const all = await t.answered(n);
  expect(all).toHaveLength(n);
  expect(new Set(all.map((r) => r.rid)).size).toBe(n);
  expect(all.filter((r) => r.status !== 'ok')).toEqual([]);
  expect(await redis.xlen(t.k.dlq(model))).toBe(0);
  expect(maxDelivery).toBeLessThanOrEqual(1);
  const c = computations(log);
  expect(c.repeats).toBe(0);
  expect(c.distinct).toBe(n);
}

describe('leases: slow work is never taken over', () => {
  it('fixture batches 3x CLAIM_IDLE_MS on two workers: each text computed once, delivered once, nothing dead-lettered', async () => {
    const t = setup('lease-fx');
    const log = computeLogFile('fx');
    const env = {
      MODELS: 'fx=fixture:8',
      CLAIM_IDLE_MS: 300,
      CLAIM_INTERVAL_MS: 100,
      BATCH_SIZE: 3,
      BATCH_TIMEOUT_MS: 30_000,
      SB_COMPUTE_LOG: log,
    };
    const workers = [t.spawn(env), t.spawn(env)];
    for (const w of workers) await t.reading(w);
    const sampler = sampleDeliveries(redis, [t.k.request('fx')], t.k.group, 50);
    // A batch of 3 takes 3 x 300 ms = 3 x CLAIM_IDLE_MS; the read-ahead window waits longer.
    const n = 36;
    await t.client.submit(
      Array.from({ length: n }, (_, i) => ({ id: `p${i}`, source: 's', text: `t${i} @@slow:300` })),
      { model: 'fx' },
    );
    await t.answered(n);
    await sampler.stop();
    console.log(
      `leases fixture: max delivery count ${sampler.max()}, ${computations(log).total} computations for ${n} texts`,
    );
    await expectOnceEach(t, 'fx', n, log, sampler.max());
    for (const w of workers) expect(w.output()).not.toContain('reclaimed idle entries');
  }, 90_000);

  it('generated MiniLM-shaped model, large batches slower than CLAIM_IDLE_MS: each text computed once', async () => {
    const t = setup('lease-ort');
    const log = computeLogFile('ort');
    const claimIdleMs = 1000;
    const env = {
      MODELS: `mini=${minilmDir};dtype=fp32`,
      CLAIM_IDLE_MS: claimIdleMs,
      CLAIM_INTERVAL_MS: 100,
      THREADS: 1,
      BATCH_SIZE: 128,
      MAX_BATCH_TOKENS: 16384,
      SB_COMPUTE_LOG: log,
    };
    const workers = [t.spawn(env), t.spawn(env)];
    for (const w of workers) await t.reading(w);
    const sampler = sampleDeliveries(redis, [t.k.request('mini')], t.k.group, 50);
    const n = 400;
    const words = 'stream lease batch vector model token queue worker'.split(' ');
    await t.client.submit(
      Array.from({ length: n }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        // ~90 distinct tokens each: batched (under the 112-token solo limit), slow in fp32.
        text:
          `${i} ` +
          Array.from({ length: 80 }, (_, j) => words[(i * 7 + j) % words.length]).join(' '),
      })),
      { model: 'mini' },
    );
    await t.answered(n);
    await sampler.stop();
    const batchLines = workers.map((w) => w.output()).join('');
    console.log(
      `leases ORT: max delivery count ${sampler.max()}, ${computations(log).total} computations for ${n} texts`,
    );
    await expectOnceEach(t, 'mini', n, log, sampler.max());
    expect(batchLines).not.toContain('reclaimed idle entries');
  }, 180_000);
});

describe('recovery', () => {
  it("SIGKILL: the survivor answers the dead worker's entries within CLAIM_IDLE_MS + CLAIM_INTERVAL_MS + a batch (defaults)", async () => {
    const t = setup('lease-kill');
    const base = { MODELS: 'fx=fixture:8', BATCH_SIZE: 4, IN_FLIGHT_BATCHES: 2 };
    const a = t.spawn({ ...base, CONSUMER_NAME: 'victim' });
    await t.reading(a);
    // 16 = what the victim may hold ((IN_FLIGHT_BATCHES + 2) x BATCH_SIZE): it takes them all,
    // and computes them for 12.8 s: long enough that starting the survivor on a loaded
    // machine (seconds) still leaves it holding some (at 6.4 s it once held none).
    const n = 16;
    const slowMs = 800;
    await t.client.submit(
      Array.from({ length: n }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        text: `k${i} @@slow:${slowMs}`,
      })),
      { model: 'fx' },
    );
    await until(
      'victim took everything',
      async () =>
        (await t.pendingOf(t.k.request('fx'), 'victim')) + (await redis.xlen(t.k.results())) >= n ||
        undefined,
    );
    const b = t.spawn({ ...base, CONSUMER_NAME: 'survivor' });
    await t.reading(b);
    const held = await t.pendingOf(t.k.request('fx'), 'victim');
    const killedAt = Date.now();
    a.proc.kill('SIGKILL');
    await a.exited;
    await t.answered(n, 60_000);
    const tookMs = Date.now() - killedAt;
    // Defaults: CLAIM_IDLE_MS 10 s, CLAIM_INTERVAL_MS 2 s; then the survivor computes them.
    const boundMs = 10_000 + 2_000 + held * slowMs;
    console.log(
      `SIGKILL recovery: ${held} held entries answered ${tookMs} ms after the kill (bound ${boundMs} ms + 2 s slack)`,
    );
    expect(held).toBeGreaterThan(0);
    expect(tookMs).toBeLessThan(boundMs + 2_000);
    const all = await results(t.k.results());
    expect(new Set(all.map((r) => r.rid)).size).toBe(n);
    expect(all).toHaveLength(n);
    expect(b.output()).toContain('reclaimed idle entries');
  }, 90_000);

  it('forced stop (a second SIGTERM): held entries are handed back and answered by the survivor in seconds, once each, delivery count kept', async () => {
    const t = setup('lease-force');
    // CLAIM_IDLE_MS far above the test: only a hand-back lets the survivor in quickly.
    const base = {
      MODELS: 'fx=fixture:8',
      BATCH_SIZE: 4,
      IN_FLIGHT_BATCHES: 2,
      CLAIM_IDLE_MS: 60_000,
      CLAIM_INTERVAL_MS: 500,
      DRAIN_TIMEOUT_MS: 60_000,
    };
    const a = t.spawn({ ...base, CONSUMER_NAME: 'leaver' });
    await t.reading(a);
    const n = 12;
    await t.client.submit(
      Array.from({ length: n }, (_, i) => ({ id: `p${i}`, source: 's', text: `f${i} @@slow:400` })),
      { model: 'fx' },
    );
    await until(
      'leaver holds everything',
      async () => (await t.pendingOf(t.k.request('fx'), 'leaver')) >= n || undefined,
    );
    const b = t.spawn({ ...base, CONSUMER_NAME: 'stayer' });
    await t.reading(b);
    const sampler = sampleDeliveries(redis, [t.k.request('fx')], t.k.group, 50);
    const stoppedAt = Date.now();
    a.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    a.proc.kill('SIGTERM');
    expect(await a.exited).toBe(130);
    expect(a.output()).toContain('handed back');
    await t.answered(n, 30_000).catch((e) => {
      console.log('LEAVER', a.output().slice(-3000), 'STAYER', b.output().slice(-3000));
      throw e;
    });
    const tookMs = Date.now() - stoppedAt;
    await sampler.stop();
    console.log(
      `forced stop: ${n} entries answered ${tookMs} ms after the second SIGTERM (CLAIM_IDLE_MS 60 s), max delivery count ${sampler.max()}`,
    );
    expect(tookMs).toBeLessThan(15_000);
    const all = await results(t.k.results());
    expect(all).toHaveLength(n);
    expect(new Set(all.map((r) => r.rid)).size).toBe(n);
    expect(all.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(sampler.max()).toBeLessThanOrEqual(1);
  }, 90_000);
});
