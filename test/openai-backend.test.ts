/**
 * The remote backend (src/worker/backends/openai-http.ts) on its own, against
 * a real Redis and the stand-in provider: what a BatchRun says while it waits
 * (not started) and while it is on the wire (uninterruptible), a 429 that
 * holds a second process back, a key refused after load and recovered, a
 * spent budget that says until when, and no key anywhere it could leak.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { createLogger } from '../src/log.js';
import { parseModelTable } from '../src/models/table.js';
import { gatherSample } from '../src/status/gather.js';
import { renderText } from '../src/status/render-text.js';
import { buildReport } from '../src/status/report.js';
import { OpenAiBackend } from '../src/worker/backends/openai-http.js';
import { WorkerEvents } from '../src/worker/events.js';
import { type FakeProvider, fakeVector, startFakeProvider } from './helpers/fake-provider.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const redis = redisClient();
const prefix = randomPrefix('oabackend');
const k = keys(prefix);
const providers: FakeProvider[] = [];
const backends: OpenAiBackend[] = [];
const log = createLogger('silent');

afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(providers.map((p) => p.close()));
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function setup(
  model: string,
  options: string,
  fake: Parameters<typeof startFakeProvider>[0],
  env: NodeJS.ProcessEnv = {},
) {
  const provider = await startFakeProvider(fake);
  providers.push(provider);
  const table = [`${model}=openai:fake;baseUrl=${provider.baseUrl}`, options].filter(Boolean);
  const [spec] = parseModelTable(table.join(';'));
  const events = new WorkerEvents();
  const make = () => {
    const b = new OpenAiBackend([spec!], { redis, keys: k, events, log, env });
    backends.push(b);
    return b;
  };
  return { provider, spec: spec!, events, make };
}

describe('remote backend', () => {
  it('loads with one probe, answers in order, counts usage tokens', async () => {
    const { provider, spec, events, make } = await setup('m1', 'maxInputs=8', { dim: 6 });
    const backend = make();
    const loaded = await backend.load(spec);
    expect(loaded.dim).toBe(6);
    expect(loaded.limits).toMatchObject({ batchSize: 8 });
    const seen: number[] = [];
    events.on('provider', (e) => seen.push(e.tokens ?? -1));
    const out = await backend.embed('m1', ['alpha', 'beta beta']).result;
    expect(Array.from(out.data.subarray(6, 12))).toEqual(Array.from(fakeVector('beta beta', 6)));
    expect(seen).toEqual([2 + 3]);
    expect(provider.requests).toHaveLength(2);
  });

  it('a 429 in one process holds another back for its Retry-After; waiting is not started, the call is uninterruptible', async () => {
    const { provider, spec, make } = await setup('m2', '', {
      dim: 4,
      latencyMs: 150,
      rateLimitAt: new Map([[3, 1_500]]),
    });
    const a = make();
    const b = make();
    await a.load(spec);
    await b.load(spec);
    await expect(a.embed('m2', ['x']).result).rejects.toMatchObject({
      code: 'provider_unavailable',
    });
    expect(Number(await redis.pttl(k.cooldown('m2')))).toBeGreaterThan(300);
    // `streambed status` shows the fleet's cooldown (read from Redis, no worker needed).
    const sample = await gatherSample(redis, { keys: k, models: ['m2'], pendingSample: 1 });
    expect(sample.models[0]?.provider?.cooldownUntilMs).toBeGreaterThan(Date.now() - 2_000);
    const run = b.embed('m2', ['y']);
    await new Promise((r) => setTimeout(r, 200));
    // Waiting out the fleet's cooldown: not started, so BATCH_TIMEOUT_MS is not running.
    expect(run.startedAt()).toBeUndefined();
    expect(run.uninterruptible()).toBe(false);
    const deadline = Date.now() + 5_000;
    while (run.startedAt() === undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    // On the wire (150 ms latency): uninterruptible, never sent twice for being slow.
    expect(run.uninterruptible()).toBe(true);
    await run.result;
    const limited = provider.requests.find((r) => r.status === 429)!;
    const next = provider.requests.find((r) => r.n > limited.n)!;
    expect(next.at - limited.at).toBeGreaterThanOrEqual(1_500 - 20);
  });

  it('a key refused after load makes the model say why, and an answer clears it', async () => {
    const env: NodeJS.ProcessEnv = { SB_KEY: 'secret-right' };
    const { spec, make } = await setup(
      'm3',
      'apiKeyEnv=SB_KEY',
      { dim: 4, key: 'secret-right' },
      env,
    );
    const backend = make();
    await backend.load(spec);
    env.SB_KEY = 'secret-rotated';
    const err = await backend.embed('m3', ['z']).result.catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'provider_refused' });
    expect(backend.reasons().join(' ')).toMatch(/model m3: provider refused \(HTTP 401\)/);
    // ...and `streambed status` says it for the fleet (read from Redis).
    const refused = await gatherSample(redis, { keys: k, models: ['m3'], pendingSample: 1 });
    expect(refused.models[0]?.provider?.refused).toMatch(/HTTP 401.*Incorrect API key/);
    const states = await backend.states();
    expect(states[0]).toMatchObject({ model: 'm3' });
    expect(JSON.stringify([states, backend.reasons(), String(err)])).not.toMatch(/secret/);
    env.SB_KEY = 'secret-right';
    await backend.embed('m3', ['z']).result;
    expect(backend.reasons()).toEqual([]);
    expect(await redis.exists(k.providerRefused('m3'))).toBe(0);
    delete env.SB_KEY;
    await expect(backend.embed('m3', ['z']).result).rejects.toThrow(/env var SB_KEY/);
  });

  it('reads JSON floats from a server that ignores encoding_format, and asks floats with encoding=float', async () => {
    const { provider, spec, make } = await setup('m5', '', { dim: 5, alwaysFloat: true });
    const backend = make();
    await backend.load(spec);
    const out = await backend.embed('m5', ['a', 'b']).result;
    expect(Array.from(out.data.subarray(5))).toEqual(Array.from(fakeVector('b', 5)));
    const floats = await setup('m6', 'encoding=float;dimensions=3', { dim: 5 });
    const b2 = floats.make();
    expect((await b2.load(floats.spec)).dim).toBe(3);
    expect(provider.requests).toHaveLength(2);
    // A server that refuses base64: the probe asks again as floats, and the model keeps floats.
    const strict = await setup('m7', '', { dim: 5, refuseBase64: true });
    const b3 = strict.make();
    await b3.load(strict.spec);
    const got = await b3.embed('m7', ['c']).result;
    expect(Array.from(got.data)).toEqual(Array.from(fakeVector('c', 5)));
    expect(strict.provider.requests.map((r) => r.status)).toEqual([422, 200, 200]);
  });

  it('a spent daily budget pauses the model and says until when', async () => {
    const { spec, make } = await setup('m4', 'budgetTokensPerDay=10', { dim: 4 });
    const backend = make();
    await backend.load(spec); // the probe: ~7 tokens
    await backend.embed('m4', ['twelve chars']).result; // crosses the budget
    const run = backend.embed('m4', ['one more']);
    const deadline = Date.now() + 3_000;
    while (backend.reasons().length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const midnight = new Date((Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000);
    expect(backend.reasons()).toHaveLength(1);
    expect(backend.reasons()[0]).toMatch(/^model m4 paused: daily token budget spent until /);
    expect(backend.reasons()[0]).toContain(`until ${midnight.toISOString().slice(0, 16)}`);
    expect(run.startedAt()).toBeUndefined();
    const [state] = await backend.states();
    expect(state?.budgetLeft).toBe(0);
    const sample = await gatherSample(redis, { keys: k, models: ['m4'], pendingSample: 1 });
    const thresholds = { maxPendingAgeMs: null, maxDlq: 0, staleMs: 1, activeMs: 1, liveMs: 1 };
    const text = renderText(buildReport(sample, undefined, { prefix, group: k.group, thresholds }));
    expect(text).toMatch(/provider: \d+ tokens spent today \(UTC\)/);
    await backend.close();
    await expect(run.result).rejects.toMatchObject({ code: 'shutting_down' });
  });
});
