// Chunk rows in the pgvector sink (issue 16): one row per chunk with its
// [start, end) offsets and (opt-in) passage, no stale rows when a page comes
// back shorter, and tables made by the previous version migrated in place.
// Real pgvector: pglite-socket in a child process, over `pg`.
import { rm } from 'node:fs/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLogger } from '../src/log.js';
import type { SqlClient } from '../src/sink/client.js';
import { type Sink, sinkKey } from '../src/sink/index.js';
import { createPgClient } from '../src/sink/pg-client.js';
import { createSqlSink } from '../src/sink/sql-sink.js';
import type { Answer } from '../src/worker/answer.js';
import { SinkStage } from '../src/worker/sink-stage.js';
import { type PgliteServer, startPgliteServer } from './helpers/pglite-server.js';

const DIM = 16;
let server: PgliteServer;
let client: SqlClient;
const sinks: Sink[] = [];

beforeAll(async () => {
  server = await startPgliteServer();
  client = createPgClient({ url: server.url, poolSize: 2 });
  await client.query('SELECT 1');
}, 120_000);
afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await client?.close();
  await server?.stop();
  if (server) await rm(server.dataDir, { recursive: true, force: true });
});

/** A sink (by default of its own table prefix) over the shared client (only afterAll closes the client). */
function newSink(prefix = `c${Math.random().toString(36).slice(2, 10)}_`): {
  sink: Sink;
  table: (model: string) => string;
  prefix: string;
} {
  const sink = createSqlSink(
    {
      query: (sql, params) => client.query(sql, params),
      registerVectorType: () => client.registerVectorType(),
      poolSize: client.poolSize,
      close: async () => undefined,
    },
    { tablePrefix: prefix, index: 'none' },
  );
  sinks.push(sink);
  return { sink, table: (model) => prefix + model, prefix };
}

/** A distinct unit vector per seed: seed s points mostly along axis s % DIM. */
function vector(seed: number): Float32Array {
  const v = new Float32Array(DIM).fill(0.01);
  v[seed % DIM] = 1 + Math.floor(seed / DIM);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

const PAGE = 'First passage. Second one, with an emoji 🙂 in it. A third, in 中文.';

/** A chunked page's computed answer: chunk i covers spans[i] of `text`. */
function pageAnswer(
  id: string,
  text: string,
  spans: [number, number][],
  seed: number,
  model = 'pages',
): Answer {
  return {
    delivery: { stream: 's', model, id: `1-${seed}`, fields: [], deliveries: 1, receivedAt: 0 },
    id,
    source: 'docs',
    outcome: 'ok',
    chunkHashes: spans.map(([s, e]) => `h:${text.slice(s, e)}`),
    chunkTexts: spans.map(([s, e]) => text.slice(s, e)),
    ok: {
      model,
      dim: DIM,
      vectors: spans.map((_, i) => vector(seed + i)),
      truncated: spans.map(() => false),
      spans,
      hash: `page:${text}`,
      meta: { lang: 'en' },
      ms: 1,
      worker: 'test',
    },
  };
}

interface StoredRow {
  id: string;
  chunk: number;
  span_start: number | null;
  span_end: number | null;
  passage: string | null;
  at: string;
}

async function stored(table: string): Promise<StoredRow[]> {
  return (
    await client.query<StoredRow>(
      `SELECT id, chunk, span_start, span_end, passage, updated_at::text AS at
       FROM "${table}" ORDER BY id, chunk`,
    )
  ).rows;
}

const never = new AbortController().signal;
const spansOf = (text: string, cuts: number[]): [number, number][] =>
  cuts.slice(1).map((end, i) => [cuts[i] as number, end]);
// Cut at the sentence ends: the emoji is a surrogate pair, so UTF-16 offsets differ from code points.
const CUTS = [0, PAGE.indexOf('Second'), PAGE.indexOf('A third'), PAGE.length];

describe('sink rows per chunk', () => {
  it('stores one row per chunk with its offsets, and search returns span and passage', async () => {
    const { sink, table } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: true });
    const spans = spansOf(PAGE, CUTS);
    await stage.persist([pageAnswer('p1', PAGE, spans, 0)], never);

    const rows = await stored(table('pages'));
    expect(rows.map((r) => [r.chunk, r.span_start, r.span_end])).toEqual(
      spans.map(([s, e], i) => [i, s, e]),
    );
    for (const r of rows) {
      expect(PAGE.slice(r.span_start as number, r.span_end as number)).toBe(r.passage);
    }
    expect(rows[1]?.passage).toBe('Second one, with an emoji 🙂 in it. ');

    const [hit] = await sink.search('pages', vector(1), 1);
    expect(hit).toMatchObject({
      source: 'docs',
      id: 'p1',
      chunk: 1,
      span: spans[1],
      passage: 'Second one, with an emoji 🙂 in it. ',
      meta: { lang: 'en' },
    });
    expect(hit?.distance).toBeLessThan(1e-6);
  });

  it('stores no passage with SINK_STORE_PASSAGES off, even when the answer carries the texts', async () => {
    const { sink, table } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: false });
    expect(stage.storesPassages).toBe(false);
    await stage.persist([pageAnswer('p1', PAGE, spansOf(PAGE, CUTS), 0)], never);
    const rows = await stored(table('pages'));
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => r.passage)).toEqual([null, null, null]);
    const [hit] = await sink.search('pages', vector(2), 1);
    expect(hit).toMatchObject({ id: 'p1', chunk: 2, span: [CUTS[2], CUTS[3]] });
    expect(hit).not.toHaveProperty('passage');
  });

  it('a page re-submitted with fewer chunks leaves no stale rows; unchanged rows keep updated_at', async () => {
    const { sink, table } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: true });
    const five = 'aaaa bbbb cccc dddd eeee';
    const fiveSpans = spansOf(five, [0, 5, 10, 15, 20, 24]);
    const other = pageAnswer('other', five, fiveSpans, 40);
    await stage.persist([pageAnswer('p1', five, fiveSpans, 0), other], never);
    const before = await stored(table('pages'));
    expect(before.filter((r) => r.id === 'p1')).toHaveLength(5);

    // The same page cut short: its first three chunks are unchanged (same hash, span, vector).
    const three = five.slice(0, 15);
    await stage.persist([pageAnswer('p1', three, fiveSpans.slice(0, 3), 0)], never);
    const after = await stored(table('pages'));
    const p1 = after.filter((r) => r.id === 'p1');
    expect(p1.map((r) => r.chunk)).toEqual([0, 1, 2]);
    expect(p1.map((r) => r.at)).toEqual(before.slice(0, 3).map((r) => r.at));
    // Another page in the table is not touched.
    expect(after.filter((r) => r.id === 'other')).toEqual(before.filter((r) => r.id === 'other'));

    // One chunk changed, one fewer again: the changed row is rewritten, chunk 2 is gone.
    const edited = 'aaaa BBBB';
    await stage.persist([pageAnswer('p1', edited, spansOf(edited, [0, 5, 9]), 100)], never);
    const last = (await stored(table('pages'))).filter((r) => r.id === 'p1');
    expect(last.map((r) => [r.chunk, r.passage])).toEqual([
      [0, 'aaaa '],
      [1, 'BBBB'],
    ]);
    expect(last[0]?.at).toBe(before[0]?.at);
    expect(last[1]?.at).not.toBe(before[1]?.at);
  });

  it('a page answered twice in one write keeps only its last version', async () => {
    const { sink, table } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: true });
    const long = 'one two three four';
    const short = 'ONE TWO';
    await stage.persist(
      [
        pageAnswer('p1', long, spansOf(long, [0, 4, 8, 14, 18]), 0),
        pageAnswer('p1', short, spansOf(short, [0, 4, 7]), 20),
      ],
      never,
    );
    const rows = await stored(table('pages'));
    expect(rows.map((r) => [r.chunk, r.passage])).toEqual([
      [0, 'ONE '],
      [1, 'TWO'],
    ]);
  });

  it('a page the server refuses for its data is returned refused with every answer of it in the call; the rest are stored', async () => {
    const { sink, table } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    await client.query(`ALTER TABLE "${table('pages')}" ADD CONSTRAINT no_bad CHECK (id <> 'bad')`);
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: false });
    const first = pageAnswer('bad', 'one two', spansOf('one two', [0, 4, 7]), 0);
    const again = pageAnswer('bad', 'one two three', spansOf('one two three', [0, 8, 13]), 5);
    const good = pageAnswer('good', PAGE, spansOf(PAGE, CUTS), 10);
    const refused = await stage.persist([first, good, again], never);
    expect([...refused.keys()]).toEqual([again, first]);
    expect(refused.get(first)).toMatch(/the sink cannot store this page: .*no_bad/);
    expect(new Set((await stored(table('pages'))).map((r) => r.id))).toEqual(new Set(['good']));
  });

  it('lookup answers a page only when its hashes, spans and length match (and its passage, when asked)', async () => {
    const { sink } = newSink();
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const spans = spansOf(PAGE, CUTS);
    const answer = pageAnswer('p1', PAGE, spans, 0);
    await new SinkStage(sink, createLogger('silent'), { storePassages: false }).persist(
      [answer],
      never,
    );
    const hashes = answer.chunkHashes as string[];
    const keys = (n: number, shift = 0) =>
      hashes.slice(0, n).map((hash, chunk) => ({
        source: 'docs',
        id: 'p1',
        chunk,
        hash,
        span: [(spans[chunk]?.[0] ?? 0) + shift, (spans[chunk]?.[1] ?? 0) + shift] as [
          number,
          number,
        ],
      }));
    expect((await sink.lookup('pages', keys(3))).size).toBe(3);
    // Shorter than stored: nothing, so it is computed and its upsert deletes chunk 2.
    expect((await sink.lookup('pages', keys(2))).size).toBe(0);
    // Same texts at other offsets: the stored spans would be wrong.
    expect((await sink.lookup('pages', keys(3, 1))).size).toBe(0);
    // Rows stored without passages do not count while passages are on (computed once, then stored).
    expect((await sink.lookup('pages', keys(3), { withPassage: true })).size).toBe(0);

    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: true });
    const candidate = { source: 'docs', id: 'p1', hashes, spans };
    expect(await stage.known('pages', [candidate])).toEqual([undefined]);
    await stage.persist([answer], never);
    const [known] = await stage.known('pages', [candidate]);
    expect(known?.map((v) => Array.from(v))).toEqual(answer.ok?.vectors.map((v) => Array.from(v)));
  });
});

describe('a table made by the previous version', () => {
  /** The DDL and row shape streambed wrote before chunk offsets (no span or passage columns). */
  async function oldTable(table: string): Promise<void> {
    await client.query(`CREATE TABLE "${table}" (
      source text NOT NULL, id text NOT NULL, chunk int NOT NULL, hash text NOT NULL,
      embedding vector(${DIM}) NOT NULL, model_ref text NOT NULL, meta jsonb,
      updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, id, chunk))`);
    for (let i = 0; i < 4; i++) {
      await client.query(
        `INSERT INTO "${table}" (source, id, chunk, hash, embedding, model_ref, meta)
         VALUES ('old', $1, $2, $3, $4::vector, 'org/pages', '{"v":1}')`,
        [`page-${i >> 1}`, i & 1, `old-h${i}`, `[${Array.from(vector(50 + i)).join(',')}]`],
      );
    }
  }

  const columns = async (table: string) =>
    (
      await client.query<{ name: string }>(
        `SELECT attname AS name FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [`"${table}"`],
      )
    ).rows.map((r) => r.name);

  it('is searched as it is by a reader, then migrated by ensureTable with its rows kept', async () => {
    const { sink, table, prefix } = newSink();
    await oldTable(table('pages'));

    // A reader (streambed search) opens it without altering it and gets no spans.
    const readerSink = newSink(prefix).sink;
    await readerSink.openTable('pages');
    const [oldHit] = await readerSink.search('pages', vector(52), 1);
    expect(oldHit).toMatchObject({ source: 'old', id: 'page-1', chunk: 0, meta: { v: 1 } });
    expect(oldHit).not.toHaveProperty('span');
    expect(await columns(table('pages'))).not.toContain('span_start');

    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    expect(await columns(table('pages'))).toEqual(
      expect.arrayContaining(['span_start', 'span_end', 'passage']),
    );
    const kept = await stored(table('pages'));
    expect(kept.map((r) => [r.id, r.chunk, r.span_start, r.passage])).toEqual([
      ['page-0', 0, null, null],
      ['page-0', 1, null, null],
      ['page-1', 0, null, null],
      ['page-1', 1, null, null],
    ]);
    const oldVectors = await sink.lookup('pages', [
      { source: 'old', id: 'page-1', chunk: 0, hash: 'old-h2' },
      { source: 'old', id: 'page-1', chunk: 1, hash: 'old-h3' },
    ]);
    expect(Array.from(oldVectors.get(sinkKey('old', 'page-1', 0)) ?? [])).toEqual(
      Array.from(vector(52)),
    );

    // New rows carry offsets beside the old ones; a second start does not alter it again.
    const stage = new SinkStage(sink, createLogger('silent'), { storePassages: true });
    await stage.persist([pageAnswer('p1', PAGE, spansOf(PAGE, CUTS), 0)], never);
    await sink.ensureTable({ model: 'pages', modelRef: 'org/pages', dim: DIM });
    const all = await stored(table('pages'));
    expect(all).toHaveLength(7);
    expect(all.filter((r) => r.id === 'p1').map((r) => r.span_end)).toEqual(CUTS.slice(1));
    await readerSink.openTable('pages'); // a reader sees the columns from its next open
    const [newHit] = await readerSink.search('pages', vector(1), 1);
    expect(newHit).toMatchObject({ id: 'p1', chunk: 1, span: [CUTS[1], CUTS[2]] });
  });
});
