/**
 * Poison isolation with fixture models in real worker threads: a text that
 * throws, crashes its thread, exhausts its heap or hangs fails alone; its
 * batch neighbours get their vectors; the worker keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import type { EmbedResult } from '../src/types.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { fill } from '../workers/fixture-core.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient } from './helpers/redis.js';
import { resultsById } from './helpers/results.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('poison');
const k = keys(prefix);
let worker: WorkerHandle;
let client: StreambedClient;

beforeAll(async () => {
  worker = await startTestWorker(prefix, {
    MODELS: 'fx=fixture:8',
    THREADS: 2,
    BATCH_SIZE: 16,
    BATCH_TIMEOUT_MS: 1500,
    THREAD_HEAP_MB: 64,
  });
  client = new StreambedClient({ redis, prefix });
});
afterAll(async () => {
  await client.close();
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function submitAndWait(texts: string[], tag: string): Promise<Map<string, EmbedResult>> {
  const reply = `${prefix}:reply:s/${tag}`;
  const pages = texts.map((text, i) => ({ id: `${tag}-${i}`, source: 's', text }));
  await client.submit(pages, { model: 'fx', replyTo: reply });
  return resultsById(redis, reply, texts.length, 60_000);
}

describe.each([
  ['throws', '@@throw'],
  ['ends its thread', '@@exit'],
  ['exhausts its heap', '@@oom'],
  ['hangs past the batch timeout', '@@hang'],
])('a text that %s', (_what, marker) => {
  it('fails alone with model_error and a DLQ record; its neighbours get their vectors', async () => {
    const texts = Array.from({ length: 12 }, (_, i) =>
      i === 5 ? `bad ${marker} text` : `neighbour ${i}`,
    );
    const tag = marker.slice(2);
    const results = await submitAndWait(texts, tag);
    texts.forEach((text, i) => {
      const r = results.get(`${tag}-${i}`);
      if (i === 5) {
        expect(r?.status).toBe('error');
        expect(r?.status === 'error' && r.res.code).toBe('model_error');
        return;
      }
      expect(r?.status).toBe('ok');
      const expected = new Float32Array(8);
      fill(expected, text);
      expect(r?.status === 'ok' && Array.from(r.res.vectors[0] ?? [])).toEqual(
        Array.from(expected),
      );
    });
    const dlq = await redis.xrange(k.dlq('fx'), '-', '+');
    expect(
      dlq.some(
        ([, f]) => f[f.indexOf('reason') + 1] === 'model_error' && f.join(' ').includes(`${tag}-5`),
      ),
    ).toBe(true);
    expect(worker.readiness().ready).toBe(true);
    expect((await groupInfo(redis, k.request('fx'), k.group))?.pending).toBe(0);
  });
});

describe('a model that fails to load', () => {
  it('keeps the process not ready and its entries undelivered, while other models serve', async () => {
    const p2 = randomPrefix('load');
    const k2 = keys(p2);
    const w = await startTestWorker(p2, { MODELS: 'good=fixture:4,bad=/nonexistent/model/folder' });
    const c = new StreambedClient({ redis, prefix: p2 });
    try {
      await c.submit([{ id: 'b1', source: 's', text: 'waits for its model' }], { model: 'bad' });
      const [v] = await c.embed(['served anyway'], { model: 'good', timeoutMs: 20_000 });
      expect(v).toHaveLength(4);
      const r = w.readiness();
      expect(r.ready).toBe(false);
      expect(r.reasons.join(' ')).toMatch(/model bad failed to load/);
      const bad = await groupInfo(redis, k2.request('bad'), k2.group);
      expect(bad).toMatchObject({ pending: 0, lag: 1 });
      expect(await redis.xlen(k2.dlq('bad'))).toBe(0);
    } finally {
      await c.close();
      await deletePrefix(redis, p2);
    }
  });
});
