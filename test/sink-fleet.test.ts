/**
 * The pgvector sink on the whole path (issue 6 acceptance), over the real
 * `pg` client and pglite-socket (real pgvector), and embedded PGlite.
 */
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { createSink } from '../src/sink/index.js';
import type { EmbedResult } from '../src/types.js';
import { loadTokenizer } from '../workers/tokenize.js';
import { tinyModel } from './helpers/models.js';
import { englishPage } from './helpers/pages.js';
import { type PgliteServer, startPgliteServer } from './helpers/pglite-server.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers, stopTestWorker } from './helpers/worker.js';

const redis = redisClient();
let server: PgliteServer;
let modelDir: string;

beforeAll(async () => {
  server = await startPgliteServer();
  modelDir = (await tinyModel({ hidden: 64 })).dir;
}, 180_000);
afterAll(async () => {
  await stopAllWorkers();
  await server?.stop();
  redis.disconnect();
});

async function results(stream: string): Promise<EmbedResult[]> {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, f]) => decodeResult(id.toString(), f));
}

async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

const pages = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({
    id: `${tag}${i}`,
    source: `src${i % 3}`,
    text: `page ${i} of ${tag}: ${'words '.repeat(i % 30)}`,
  }));

async function runAll(
  prefix: string,
  n: number,
  tag: string,
  model = 'tiny',
): Promise<EmbedResult[]> {
  const k = keys(prefix);
  const tagged = async () => (await results(k.results())).filter((x) => x.id.startsWith(tag));
  // Earlier runs with the same tag already answered: wait for n more.
  const before = (await tagged()).length;
  const client = new StreambedClient({ redis, prefix });
  try {
    await client.submit(pages(n, tag), { model });
  } finally {
    await client.close();
  }
  return until(
    `${n} results`,
    async () => {
      const r = await tagged();
      const g = await groupInfo(redis, k.request(model), k.group);
      return r.length >= before + n && g?.pending === 0 ? r : undefined;
    },
    120_000,
    100,
  );
}

describe('pgvector sink on the fleet', () => {
  const prefix = randomPrefix('sinkf');
  const table = `${prefix.replace(/-/g, '_')}_tiny`;
  afterAll(() => deletePrefix(redis, prefix));

  it('stores 1,000 envelopes as 1,000 rows of the model dimension, equal to the stream results', async () => {
    const worker = await startTestWorker(prefix, {
      MODELS: `tiny=${modelDir};dtype=fp32`,
      PG_URL: server.url,
      PG_POOL_SIZE: 2,
      SINK_TABLE_PREFIX: `${prefix.replace(/-/g, '_')}_`,
    });
    const first = await runAll(prefix, 1000, 'a');
    expect(first.every((r) => r.status === 'ok')).toBe(true);
    const rows = await query<{
      source: string;
      id: string;
      chunk: number;
      dims: number;
      embedding: string;
    }>(
      `SELECT source, id, chunk, vector_dims(embedding) AS dims, embedding::text AS embedding FROM "${table}"`,
    );
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((r) => r.dims))).toEqual(new Set([64]));
    const byId = new Map(rows.map((r) => [r.id, JSON.parse(r.embedding) as number[]]));
    for (const r of first.filter((_, i) => i % 50 === 0)) {
      if (r.status !== 'ok') throw new Error('not ok');
      const stored = byId.get(r.id) as number[];
      stored.forEach((v, d) =>
        expect(Math.abs(v - (r.res.vectors[0]![d] as number))).toBeLessThan(1e-6),
      );
    }
    // Nearest neighbour of a stored page's own vector is that page.
    const probe = first[123];
    if (probe?.status !== 'ok') throw new Error('not ok');
    const [nearest] = await query<{ id: string }>(
      `SELECT id FROM "${table}" ORDER BY embedding <=> $1::vector LIMIT 1`,
      [`[${Array.from(probe.res.vectors[0]!).join(',')}]`],
    );
    expect(nearest?.id).toBe(probe.id);

    // The same 1,000 pages again: answered from the sink without computing.
    const t0 = Date.now();
    const firstMs =
      Number(first.at(-1)?.resultId.split('-')[0]) - Number(first[0]?.rid.split('-')[0]);
    const again = await runAll(prefix, 1000, 'a');
    const againMs = Date.now() - t0;
    const deduped =
      Number(await redis.hget(keys(prefix).progress('src0'), 'deduped')) +
      Number(await redis.hget(keys(prefix).progress('src1'), 'deduped')) +
      Number(await redis.hget(keys(prefix).progress('src2'), 'deduped'));
    console.log(
      `sink: first run ${firstMs} ms, re-run ${againMs} ms (ratio ${(againMs / firstMs).toFixed(2)}), deduped ${deduped}`,
    );
    expect(again.filter((r) => r.id.startsWith('a'))).toHaveLength(2000);
    expect(deduped).toBe(1000);
    expect((await query(`SELECT 1 FROM "${table}"`)).length).toBe(1000);
    await stopTestWorker(worker);
  });

  it('a texts envelope re-submitted with fewer texts leaves no stale rows, and unchanged rows keep updated_at', async () => {
    const p = randomPrefix('sinkc');
    const tbl = `${p.replace(/-/g, '_')}_tiny`;
    const k = keys(p);
    const worker = await startTestWorker(p, {
      MODELS: `tiny=${modelDir};dtype=fp32`,
      PG_URL: server.url,
      PG_POOL_SIZE: 2,
      SINK_TABLE_PREFIX: `${p.replace(/-/g, '_')}_`,
    });
    const client = new StreambedClient({ redis, prefix: p });
    const rows = () =>
      query<{ chunk: number; hash: string; at: string }>(
        `SELECT chunk, hash, updated_at::text AS at FROM "${tbl}" WHERE id = 'page' ORDER BY chunk`,
      );
    const submit = async (texts: string[], n: number) => {
      await client.submit([{ id: 'page', source: 'docs', texts }], { model: 'tiny' });
      await until(`${n} results`, async () => {
        const g = await groupInfo(redis, k.request('tiny'), k.group);
        return (await redis.xlen(k.results())) >= n && g?.pending === 0 ? true : undefined;
      });
    };
    const deduped = async () => Number(await redis.hget(k.progress('docs'), 'deduped'));
    try {
      await submit(['alpha text', 'bravo text', 'charlie text'], 1);
      const three = await rows();
      expect(three.map((r) => r.chunk)).toEqual([0, 1, 2]);

      // Its first two chunks are stored already: before, this was answered from the sink
      // (deduped) and chunk 2 stayed. Now it is computed, and its upsert deletes chunk 2.
      await submit(['alpha text', 'bravo text'], 2);
      const two = await rows();
      expect(two).toEqual(three.slice(0, 2));
      expect(await deduped()).toBe(0);

      // The same two again match the stored page exactly: answered from the sink.
      await submit(['alpha text', 'bravo text'], 3);
      expect(await deduped()).toBe(1);
      expect(await rows()).toEqual(two);
      const all = await results(k.results());
      expect(all.map((r) => (r.status === 'ok' ? r.res.vectors.length : -1))).toEqual([3, 2, 2]);
    } finally {
      await client.close();
      await stopTestWorker(worker);
      await deletePrefix(redis, p);
    }
  });

  it('stores a chunked page as one row per chunk with its passage; nearest neighbour finds the passage; re-chunked shorter leaves no stale rows', async () => {
    const p = randomPrefix('sinkp');
    const tbl = `${p.replace(/-/g, '_')}_tiny`;
    const worker = await startTestWorker(p, {
      MODELS: `tiny=${modelDir};dtype=fp32`,
      PG_URL: server.url,
      PG_POOL_SIZE: 2,
      SINK_TABLE_PREFIX: `${p.replace(/-/g, '_')}_`,
      SINK_STORE_PASSAGES: 'true',
    });
    const client = new StreambedClient({ redis, prefix: p });
    const { tokenizer } = await loadTokenizer({ ref: modelDir, local: true, allowRemote: false });
    const page = englishPage(1_500, (t) => tokenizer.encode(t).length);
    type Row = { chunk: number; span_start: number; span_end: number; passage: string };
    const rows = () =>
      query<Row>(
        `SELECT chunk, span_start, span_end, passage FROM "${tbl}" WHERE id = 'manual' ORDER BY chunk`,
      );
    const embed = async (window: number, n: number) => {
      const replyTo = keys(p).sourceReply('docs', `w${window}`);
      await client.submit(
        [{ id: 'manual', source: 'docs', text: page, chunk: { window, overlap: 16 } }],
        {
          model: 'tiny',
          replyTo,
        },
      );
      const [r] = await until(`answer ${n}`, async () => {
        const got = await results(replyTo);
        return got.length > 0 ? got : undefined;
      });
      if (r?.status !== 'ok') throw new Error(`not ok: ${JSON.stringify(r?.res)}`);
      return r.res;
    };
    try {
      const res = await embed(128, 1);
      const stored = await rows();
      expect(stored.map((r) => r.chunk)).toEqual(res.vectors.map((_, i) => i));
      expect(stored.map((r) => [r.span_start, r.span_end])).toEqual(res.spans);
      stored.forEach((r) => expect(r.passage).toBe(page.slice(r.span_start, r.span_end)));

      // A query vector equal to chunk 3's finds chunk 3: its range and its passage.
      const [hit] = await query<Row>(
        `SELECT chunk, span_start, span_end, passage FROM "${tbl}" ORDER BY embedding <=> $1::vector LIMIT 1`,
        [`[${Array.from(res.vectors[3] as Float32Array).join(',')}]`],
      );
      expect(hit).toEqual(stored[3]);

      // The same page in larger windows: fewer chunks, and none of the old ones left.
      const wider = await embed(256, 2);
      expect(wider.vectors.length).toBeLessThan(res.vectors.length);
      const after = await rows();
      expect(after.map((r) => [r.span_start, r.span_end])).toEqual(wider.spans);
    } finally {
      await client.close();
      await stopTestWorker(worker);
      await deletePrefix(redis, p);
    }
  });

  it('survives the sink going down mid-run: nothing lost, no row duplicated, one answer each', async () => {
    const p = randomPrefix('sinko');
    const tbl = `${p.replace(/-/g, '_')}_tiny`;
    const worker = await startTestWorker(p, {
      MODELS: `tiny=${modelDir}`,
      PG_URL: server.url,
      PG_POOL_SIZE: 2,
      SINK_TABLE_PREFIX: `${p.replace(/-/g, '_')}_`,
      BATCH_SIZE: 8,
      READ_COUNT: 16,
    });
    const client = new StreambedClient({ redis, prefix: p });
    try {
      await client.submit(pages(600, 'o'), { model: 'tiny' });
      await until(
        'some results',
        async () => (await redis.xlen(keys(p).results())) > 50,
        60_000,
        20,
      );
      await server.stop({ kill: true });
      await until(
        'not ready while the sink is down',
        () => !worker.readiness().ready || undefined,
        30_000,
      );
      await server.restart();
      const all = await until(
        '600 results',
        async () => {
          const r = await results(keys(p).results());
          return r.length >= 600 &&
            (await groupInfo(redis, keys(p).request('tiny'), keys(p).group))?.pending === 0
            ? r
            : undefined;
        },
        120_000,
        200,
      );
      expect(new Set(all.map((r) => r.rid)).size).toBe(600);
      expect(all).toHaveLength(600);
      const rows = await query<{ n: string; distinct_keys: string }>(
        `SELECT count(*) AS n, count(DISTINCT (source, id, chunk)) AS distinct_keys FROM "${tbl}"`,
      );
      expect(rows[0]).toEqual({ n: '600', distinct_keys: '600' });
      await until('ready again', () => worker.readiness().ready || undefined, 30_000);
    } finally {
      await client.close();
      await stopTestWorker(worker);
      await deletePrefix(redis, p);
    }
  });

  it('refuses to start against a table of another dimension, naming it, and writes nothing', async () => {
    const p = randomPrefix('sinkd');
    const tablePrefix = `${p.replace(/-/g, '_')}_`;
    const sink = createSink({
      pgUrl: server.url,
      pgPoolSize: 1,
      sinkTablePrefix: tablePrefix,
      sinkIndex: 'none',
    });
    await sink?.ensureTable({ model: 'tiny', modelRef: 'someone-else', dim: 32 });
    await sink?.close();
    const client = new StreambedClient({ redis, prefix: p });
    await client.submit(pages(5, 'd'), { model: 'tiny' });
    await client.close();
    try {
      await expect(
        startTestWorker(p, {
          MODELS: `tiny=${modelDir}`,
          PG_URL: server.url,
          SINK_TABLE_PREFIX: tablePrefix,
        }),
      ).rejects.toThrow(new RegExp(`${tablePrefix}tiny.*32.*64|${tablePrefix}tiny.*64.*32`, 's'));
      const g = await groupInfo(redis, keys(p).request('tiny'), keys(p).group);
      expect(g?.['entries-read'] ?? 0).toBe(0);
      expect(await redis.xlen(keys(p).results())).toBe(0);
    } finally {
      await stopAllWorkers();
      await deletePrefix(redis, p);
    }
  });

  it('works embedded with SINK=pglite:DIR and no server at all', async () => {
    const p = randomPrefix('sinke');
    const dir = path.join(os.tmpdir(), `sb-embedded-${p}`);
    const worker = await startTestWorker(p, { MODELS: `tiny=${modelDir}`, SINK: `pglite:${dir}` });
    try {
      const r = await runAll(p, 50, 'e');
      expect(r.every((x) => x.status === 'ok')).toBe(true);
      const sink = worker.sinkClient;
      const probe = r[7];
      if (probe?.status !== 'ok' || !sink) throw new Error('no sink');
      const [hit] = await sink.search('tiny', probe.res.vectors[0]!, 1);
      expect(hit?.id).toBe(probe.id);
    } finally {
      await stopTestWorker(worker);
      await deletePrefix(redis, p);
    }
  }, 180_000);
});
