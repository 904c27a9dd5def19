/**
 * A remote provider that answers 200 but leaves one input out (a server that
 * skips what it cannot embed): before, the whole batch was retried as an
 * outage forever and none of its texts was ever answered. Now the batch is
 * retried whole MALFORMED_RETRIES times, then split until the text fails
 * alone: its neighbours get their vectors, it is dead-lettered. A provider
 * that answers every request so (broken, not the inputs) and a 200 that is
 * not an embeddings answer at all (a proxy's maintenance page) are outages:
 * waited out, nothing dead-lettered.
 *
 * The provider is the stand-in (bench/stand-in-provider.ts; what it does not
 * cover is in its header).
 */
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import type { EmbedResult } from '../src/types.js';
import { MALFORMED_RETRIES } from '../src/worker/batch-failures.js';
import {
  type FakeProvider,
  fakeVector,
  startFakeProvider,
  textHash,
} from './helpers/fake-provider.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { resultsById } from './helpers/results.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const providers: FakeProvider[] = [];
const prefixes: string[] = [];

afterAll(async () => {
  await stopAllWorkers();
  await Promise.all(providers.map((p) => p.close()));
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

async function fleet(opts: Parameters<typeof startFakeProvider>[0]) {
  const provider = await startFakeProvider({ dim: 6, ...opts });
  providers.push(provider);
  const prefix = randomPrefix('malformed');
  prefixes.push(prefix);
  await startTestWorker(prefix, { MODELS: `emb=openai:fake-embed;baseUrl=${provider.baseUrl}` });
  return { provider, prefix, client: new StreambedClient({ redis, prefix }) };
}

async function answered(
  client: StreambedClient,
  prefix: string,
  texts: string[],
): Promise<EmbedResult[]> {
  const reply = `${prefix}:reply:s/all`;
  const pages = texts.map((text, i) => ({ id: `p${i}`, source: 's', text }));
  await client.submit(pages, { model: 'emb', replyTo: reply });
  const byId = await resultsById(redis, reply, texts.length);
  return pages.map((p) => byId.get(p.id) as EmbedResult);
}

describe('a provider answer that is not one vector per input', () => {
  it('fails only the input the provider leaves out; its batch neighbours are answered', async () => {
    const { provider, prefix, client } = await fleet({ drops: (t) => t.includes('unembeddable') });
    try {
      const texts = Array.from({ length: 8 }, (_, i) =>
        i === 3 ? 'an unembeddable page' : `page ${i}`,
      );
      const results = await answered(client, prefix, texts);
      results.forEach((r, i) => {
        if (i === 3) {
          expect(r.status).toBe('error');
          expect(r.status === 'error' && r.res.code).toBe('model_error');
          expect(r.status === 'error' && r.res.message).toMatch(/provider answer malformed/);
          return;
        }
        expect(r.status).toBe('ok');
        expect(r.status === 'ok' && Array.from(r.res.vectors[0] ?? [])).toEqual(
          Array.from(fakeVector(texts[i] as string, 6)),
        );
      });
      const k = keys(prefix);
      expect(await redis.xlen(k.dlq('emb'))).toBe(1);
      expect((await groupInfo(redis, k.request('emb'), k.group))?.pending).toBe(0);
      // Retried whole before each split, and alone before it failed: a provider's one bad
      // answer dead-letters nothing.
      const poison = textHash('an unembeddable page');
      const withIt = provider.requests.filter((q) => q.inputs.includes(poison));
      const alone = withIt.filter((q) => q.inputs.length === 1);
      expect(alone).toHaveLength(1 + MALFORMED_RETRIES);
      expect(withIt.length - alone.length).toBeGreaterThanOrEqual(1 + MALFORMED_RETRIES);
    } finally {
      await client.close();
    }
  }, 60_000);

  it('a provider that leaves out every input is broken, not the inputs: nothing is dead-lettered, all are answered once it recovers', async () => {
    let broken = false;
    const { provider, prefix, client } = await fleet({ drops: () => broken });
    try {
      broken = true;
      const texts = Array.from({ length: 4 }, (_, i) => `page ${i}`);
      const results = answered(client, prefix, texts);
      // Long enough for the retries and splits to reach every text alone, several times.
      await until(
        'each text tried alone twice',
        () => {
          const alone = provider.requests.filter((q) => q.inputs.length === 1).length;
          return alone >= 2 * texts.length + 1 ? true : undefined;
        },
        20_000,
      );
      expect(await redis.xlen(keys(prefix).dlq('emb'))).toBe(0);
      broken = false;
      expect((await results).map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(await redis.xlen(keys(prefix).dlq('emb'))).toBe(0);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("a proxy's HTML page with a 200 is an outage: waited out, nothing dead-lettered", async () => {
    // Request 1 is the worker's dimension probe at load; the next five get the page.
    const { provider, prefix, client } = await fleet({ htmlAt: new Set([2, 3, 4, 5, 6]) });
    try {
      const texts = Array.from({ length: 4 }, (_, i) => `page ${i}`);
      const results = await answered(client, prefix, texts);
      expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(await redis.xlen(keys(prefix).dlq('emb'))).toBe(0);
      expect(provider.requests.filter((q) => q.n >= 2 && q.n <= 6)).toHaveLength(5);
    } finally {
      await client.close();
    }
  }, 60_000);
});
