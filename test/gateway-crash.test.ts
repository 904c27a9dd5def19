/**
 * The gateway keeps the fleet's guarantees: a worker SIGKILLed while it
 * holds requests' inputs is taken over by another (reclaim, delivery count
 * 2) and every request either gets exactly its own vectors or a 504 at its
 * timeout; and SIGTERM drains: what is in flight is answered, then exit 0.
 */
import type { Redis } from 'ioredis';
import OpenAI, { type APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys as buildKeys } from '../src/keys.js';
import { type ChildGateway, spawnGateway } from './helpers/gateway.js';
import { minilmModel } from './helpers/models.js';
import { sampleDeliveries } from './helpers/observe.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = randomPrefix('gwc');
const k = buildKeys(prefix);
let redis: Redis;
let sdk: StreambedClient;
let modelDir: string;
const workers: ChildWorker[] = [];
const gateways: ChildGateway[] = [];

const startWorker = () => {
  const w = spawnWorker(prefix, {
    MODELS: `m=${modelDir};dtype=fp32`,
    CLAIM_IDLE_MS: 1000,
    CLAIM_INTERVAL_MS: 200,
  });
  workers.push(w);
  return w;
};

/** Distinct texts of a few dozen tokens: each one's vector tells whose it is. */
const textsOf = (req: number, n: number) =>
  Array.from(
    { length: n },
    (_, j) => `request ${req} input ${j}: ` + 'the quick brown fox jumps over it '.repeat(6),
  );

beforeAll(async () => {
  redis = redisClient();
  modelDir = (await minilmModel()).dir;
  sdk = new StreambedClient({ redis: REDIS_URL, prefix });
});

afterAll(async () => {
  for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
  for (const g of gateways) if (g.proc.exitCode === null) g.proc.kill('SIGKILL');
  await sdk.close();
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe('gateway under a worker crash', () => {
  it('answers each request with its own vectors or 504, never twice or crossed', async () => {
    const a = startWorker();
    const gateway = await spawnGateway(prefix, { MODELS: 'm', GATEWAY_TIMEOUT_MS: 25_000 });
    gateways.push(gateway);
    const api = gateway.client();
    // No keys file: it serves anyone, and says so once.
    expect(gateway.output().match(/GATEWAY_KEYS_FILE is not set/g)).toHaveLength(1);
    // Warm: the worker has loaded the model and answers.
    await api.embeddings.create({ model: 'm', input: 'warm up' });

    const stream = k.request('m');
    const deliveries = sampleDeliveries(redis, [stream], k.group, 50);
    const requests = Array.from({ length: 24 }, (_, r) => textsOf(r, 4));
    const calls = requests.map((input) =>
      api.embeddings.create({ model: 'm', input, encoding_format: 'float' }),
    );
    // Kill the worker while it holds entries; then another worker takes them over.
    await until('the worker holds entries', async () => {
      const [count] = (await redis.xpending(stream, k.group)) as [number];
      return count > 0;
    });
    a.proc.kill('SIGKILL');
    await a.exited;
    startWorker();
    const settled = await Promise.allSettled(calls);
    await deliveries.stop();

    const want = await sdk.embed(requests.flat(), { model: 'm', timeoutMs: 60_000 });
    let ok = 0;
    settled.forEach((s, r) => {
      if (s.status === 'rejected') {
        // The only acceptable failure is the gateway's timeout.
        expect(s.reason).toBeInstanceOf(OpenAI.APIError);
        expect((s.reason as APIError).status).toBe(504);
        return;
      }
      ok++;
      expect(s.value.data).toHaveLength(4);
      s.value.data.forEach((d, j) => {
        expect(d.index).toBe(j);
        expect(d.embedding, `request ${r} input ${j}`).toEqual(Array.from(want[r * 4 + j]!));
      });
    });
    expect(ok).toBeGreaterThan(0);
    // The killed worker's entries were reclaimed: delivered a second time.
    expect(deliveries.max()).toBeGreaterThanOrEqual(2);
    expect(await gateway.stop()).toBe(0);
  });

  it("answers requests waiting while Redis kills the gateway's connections", async () => {
    const worker = workers.at(-1)!;
    const gateway = await spawnGateway(prefix, { MODELS: 'm' });
    gateways.push(gateway);
    const api = gateway.client();
    const inputs = [0, 1, 2].map((r) => textsOf(200 + r, 2));
    const want = await sdk.embed(inputs.flat(), { model: 'm', timeoutMs: 60_000 });
    // Held, so the requests wait on the reply stream when their connections die.
    worker.proc.kill('SIGSTOP');
    const calls = inputs.map((input) =>
      api.embeddings.create({ model: 'm', input, encoding_format: 'float' }),
    );
    await until('the requests are queued', async () =>
      (await fetch(`${gateway.url}/metrics`).then((r) => r.text())).includes(
        'streambed_gateway_in_flight_requests 3',
      ),
    );
    const clients = String(await redis.client('LIST')).split('\n');
    const mine = clients.filter((c) => / name=streambed-gateway-/.test(c));
    expect(mine.length).toBeGreaterThanOrEqual(2); // the command and the reply connections
    for (const c of mine) await redis.client('KILL', 'ID', /\bid=(\d+)/.exec(c)![1]!);
    worker.proc.kill('SIGCONT');
    const answered = await Promise.all(calls);
    answered.forEach((res, r) =>
      res.data.forEach((d, j) => expect(d.embedding).toEqual(Array.from(want[r * 2 + j]!))),
    );
    // And it goes on serving on the connections it made again.
    const after = await api.embeddings.create({
      model: 'm',
      input: inputs[0]!,
      encoding_format: 'float',
    });
    expect(after.data[0]!.embedding).toEqual(Array.from(want[0]!));
    expect(await gateway.stop()).toBe(0);
  });

  it('drains on SIGTERM: a request in flight is answered, then exit 0', async () => {
    const worker = workers.at(-1)!;
    const gateway = await spawnGateway(prefix, { MODELS: 'm' });
    gateways.push(gateway);
    const api = gateway.client();
    const input = textsOf(99, 2);
    const want = await sdk.embed(input, { model: 'm', timeoutMs: 60_000 });
    // Hold the worker so the request is still in flight when the signal comes.
    worker.proc.kill('SIGSTOP');
    const call = api.embeddings.create({ model: 'm', input, encoding_format: 'float' });
    await until(
      'the request is queued',
      async () =>
        (await redis.xlen(k.request('m'))) > 0 &&
        (await fetch(`${gateway.url}/metrics`).then((r) => r.text())).includes(
          'streambed_gateway_in_flight_requests 1',
        ),
    );
    gateway.proc.kill('SIGTERM');
    await until('the gateway is draining', () => gateway.output().includes('draining the gateway'));
    expect((await fetch(`${gateway.url}/readyz`).catch(() => undefined))?.status ?? 503).toBe(503);
    worker.proc.kill('SIGCONT');
    const res = await call;
    res.data.forEach((d, j) => expect(d.embedding).toEqual(Array.from(want[j]!)));
    expect(await gateway.exited).toBe(0);
    expect(gateway.output()).toContain('"drained":true');
  });
});
