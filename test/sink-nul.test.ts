/**
 * U+0000 in an envelope, with the embedded pgvector sink: Postgres text and
 * jsonb cannot hold it, and the sink's upsert used to fail and retry the
 * whole answer group forever, so one such envelope stopped a worker from
 * answering anything. Now an `id` or `meta` holding it is answered `invalid`
 * (with the reason), a page text holding it is embedded and stored with its
 * passage's NULs as U+FFFD (offsets unchanged), and the worker goes on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import type { EmbedResult, Page } from '../src/types.js';
import { fill } from '../workers/fixture-core.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('sinknul');
const dirs: string[] = [];

afterAll(async () => {
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  redis.disconnect();
});

describe('U+0000 in an envelope, with a sink', () => {
  it('refuses it in id and meta with a reason, stores a text holding it, and keeps answering', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-nul-'));
    dirs.push(dir);
    const worker = await startTestWorker(prefix, {
      MODELS: 'fx=fixture:8',
      SINK: `pglite:${join(dir, 'db')}`,
      SINK_STORE_PASSAGES: 'true',
    });
    const client = new StreambedClient({ redis, prefix });
    const reply = `${prefix}:reply:s/nul`;
    const pages: Page[] = [
      { id: 'a\u0000b', source: 's', text: 'an id with a NUL' },
      { id: 'meta', source: 's', text: 'a meta with a NUL', meta: { k: 'x\u0000y' } },
      { id: 'text', source: 's', text: 'a text \u0000 with a NUL', chunk: true },
      { id: 'after', source: 's', text: 'a plain page after them' },
    ];
    try {
      await client.submit(pages, { model: 'fx', replyTo: reply });
      const results = await until(
        'four answers',
        async () => {
          const entries = (await redis.xrangeBuffer(reply, '-', '+')) as Array<[Buffer, Buffer[]]>;
          const all = entries.map(([id, f]) => decodeResult(id.toString(), f));
          return all.length >= 4 ? new Map(all.map((r) => [r.id, r])) : undefined;
        },
        20_000,
      );
      const err = (r: EmbedResult | undefined) => (r?.status === 'error' ? r.res : undefined);
      expect(err(results.get('a\u0000b'))).toMatchObject({ code: 'invalid' });
      expect(err(results.get('a\u0000b'))?.message).toMatch(/id must not contain U\+0000/);
      expect(err(results.get('meta'))).toMatchObject({ code: 'invalid' });
      expect(err(results.get('meta'))?.message).toMatch(/meta must not contain U\+0000/);
      expect(results.get('text')?.status).toBe('ok');
      expect(results.get('after')?.status).toBe('ok');
      // Stored: the text's row with its NUL as U+FFFD, the same length, and the next page.
      const probe = new Float32Array(8);
      fill(probe, 'a text \u0000 with a NUL');
      const hits = await worker.sinkClient!.search('fx', probe, 5);
      const hit = hits.find((h) => h.id === 'text');
      expect(hit?.distance).toBeLessThan(1e-5);
      expect(hit?.passage).toBe('a text \uFFFD with a NUL');
      expect(hits.map((h) => h.id)).toContain('after');
      expect(
        (await groupInfo(redis, keys(prefix).request('fx'), keys(prefix).group))?.pending,
      ).toBe(0);
    } finally {
      await client.close();
    }
  }, 60_000);
});
