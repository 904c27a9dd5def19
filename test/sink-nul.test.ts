/**
 * Pages the sink cannot store. U+0000 in an envelope, with the embedded
 * pgvector sink: Postgres text and jsonb cannot hold it, and the sink's
 * upsert used to fail and retry the whole answer group forever, so one such
 * envelope stopped a worker from answering anything. Now an `id` or `meta`
 * holding it is answered `invalid` (with the reason), a page text holding it
 * is embedded and stored with its passage's NULs as U+FFFD (offsets
 * unchanged), and the worker goes on. And whatever else the server refuses
 * for a page's data (here a CHECK constraint an operator added, over the
 * wire to a pgvector server): that page alone is answered `invalid`, the
 * rest of its group is stored.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import type { EmbedResult, Page } from '../src/types.js';
import { fill } from '../workers/fixture-core.js';
import { startPgliteServer } from './helpers/pglite-server.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient } from './helpers/redis.js';
import { resultsById } from './helpers/results.js';
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
      const results = await resultsById(redis, reply, 4, 20_000);
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

  it('answers invalid only the page the server refuses for its data; its group is stored', async () => {
    const server = await startPgliteServer();
    const p = randomPrefix('sinkcheck');
    const table = `${p.replace(/-/g, '_')}_fx`;
    const db = new pg.Client({ connectionString: server.url });
    try {
      await startTestWorker(p, {
        MODELS: 'fx=fixture:8',
        PG_URL: server.url,
        SINK_TABLE_PREFIX: `${p.replace(/-/g, '_')}_`,
      });
      const client = new StreambedClient({ redis, prefix: p });
      const reply = `${p}:reply:s/check`;
      const answersOf = (n: number) => resultsById(redis, reply, n, 20_000);
      await client.submit([{ id: 'first', source: 's', text: 'makes the table' }], {
        model: 'fx',
        replyTo: reply,
      });
      await answersOf(1);
      await db.connect();
      await db.query(`ALTER TABLE "${table}" ADD CONSTRAINT short_ids CHECK (length(id) <= 8)`);
      const pages = ['ok-1', 'a-much-too-long-id', 'ok-2', 'ok-3'].map((id) => ({
        id,
        source: 's',
        text: `page ${id}`,
      }));
      await client.submit(pages, { model: 'fx', replyTo: reply });
      const got = await answersOf(5);
      const refused = got.get('a-much-too-long-id');
      expect(refused?.status).toBe('error');
      expect(refused?.status === 'error' && refused.res).toMatchObject({ code: 'invalid' });
      expect(refused?.status === 'error' && refused.res.message).toMatch(
        /the sink cannot store this page: .*short_ids/,
      );
      for (const id of ['ok-1', 'ok-2', 'ok-3']) expect(got.get(id)?.status).toBe('ok');
      const rows = await db.query<{ id: string }>(`SELECT id FROM "${table}" ORDER BY id`);
      expect(rows.rows.map((r) => r.id)).toEqual(['first', 'ok-1', 'ok-2', 'ok-3']);
      expect(await redis.xlen(keys(p).dlq('fx'))).toBe(1);
      await client.close();
    } finally {
      await stopAllWorkers();
      await db.end().catch(() => undefined);
      await deletePrefix(redis, p);
      await server.stop();
      await rm(server.dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
