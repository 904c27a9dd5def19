// The vector sink against real Postgres+pgvector: over the wire with `pg`
// (pglite-socket in a child process) and embedded (PGlite in a directory).
// Each test uses its own random table prefix.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import type { SqlClient } from '../src/sink/client.js';
import { type Sink, sinkKey, type SinkRow } from '../src/sink/index.js';
import { createPgClient } from '../src/sink/pg-client.js';
import { createPgliteClient } from '../src/sink/pglite-client.js';
import type { SinkIndexKind } from '../src/sink/sql.js';
import { createSqlSink } from '../src/sink/sql-sink.js';
import { type PgliteServer, startPgliteServer } from './helpers/pglite-server.js';

interface Backend {
  name: string;
  open(): Promise<SqlClient>;
  dispose(): Promise<void>;
}

function overSocket(): Backend {
  let server: PgliteServer | undefined;
  return {
    name: 'pg over pglite-socket',
    async open() {
      server = await startPgliteServer();
      return createPgClient({ url: server.url, poolSize: 4 });
    },
    async dispose() {
      await server?.stop();
      if (server) await rm(server.dataDir, { recursive: true, force: true });
    },
  };
}

function embedded(): Backend {
  let dir: string | undefined;
  return {
    name: 'embedded pglite:DIR',
    async open() {
      dir = await mkdtemp(join(tmpdir(), 'sb-sink-'));
      return createPgliteClient(dir);
    },
    async dispose() {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Deterministic unit vectors (mulberry32), so failures reproduce. */
function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  return Array.from({ length: n }, () => {
    const v = Float32Array.from({ length: dim }, rnd);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}

function makeRows(n: number, dim: number, seed = 1): SinkRow[] {
  return randomVectors(n, dim, seed).map((vector, i) => ({
    source: `src${i % 7}`,
    id: `page-${i}`,
    chunk: i % 3,
    hash: `h${i}`,
    vector,
    meta: { i, note: `quote ' and "double" and \\ backslash` },
  }));
}

const prefix = () => `t${Math.random().toString(36).slice(2, 10)}_`;

describe.each([overSocket(), embedded()])('sink: $name', (backend) => {
  let client: SqlClient;
  const sinks: Sink[] = [];
  // Several sinks share the backend's client in this file; only afterAll closes it.
  const shared = (): SqlClient => ({
    query: (sql, params) => client.query(sql, params),
    registerVectorType: () => client.registerVectorType(),
    poolSize: client.poolSize,
    close: async () => undefined,
  });
  const newSink = (tablePrefix = prefix(), index: SinkIndexKind = 'none') => {
    const sink = createSqlSink(shared(), { tablePrefix, index });
    sinks.push(sink);
    return sink;
  };
  const count = async (table: string) =>
    Number(
      (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0]?.n,
    );
  const columnType = async (table: string) =>
    (
      await client.query<{ t: string }>(
        `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attname = 'embedding'`,
        [`"${table}"`],
      )
    ).rows[0]?.t;
  const stamps = async (table: string) =>
    new Map(
      (
        await client.query<{ source: string; id: string; chunk: number; at: string }>(
          `SELECT source, id, chunk, updated_at::text AS at FROM "${table}"`,
        )
      ).rows.map((r) => [sinkKey(r.source, r.id, r.chunk), r.at]),
    );

  // Opening runs initdb for a fresh data dir (seconds, more on a busy machine).
  beforeAll(async () => {
    client = await backend.open();
    await client.query('SELECT 1');
  }, 120_000);
  afterAll(async () => {
    await Promise.all(sinks.map((s) => s.close()));
    await client?.close();
    await backend.dispose();
  });

  it('creates each table with the dimension of its model (64 and 1280)', async () => {
    const p = prefix();
    const sink = newSink(p);
    expect(sink.healthy()).toBe(false);
    await sink.ensureTable({ model: 'small', modelRef: 'org/small-64', dim: 64 });
    await sink.ensureTable({ model: 'big-v2', modelRef: 'org/big-1280', dim: 1280 });
    await sink.ensureTable({ model: 'small', modelRef: 'org/small-64', dim: 64 }); // idempotent
    expect(sink.healthy()).toBe(true);
    expect(await columnType(`${p}small`)).toBe('vector(64)');
    expect(await columnType(`${p}big_v2`)).toBe('vector(1280)');

    const [row] = makeRows(1, 1280);
    await sink.upsert('big-v2', [row!]);
    const got = await sink.lookup('big-v2', [row!]);
    expect(got.size).toBe(1);
  });

  it('refuses a table of another dimension or model ref, naming both, and writes nothing', async () => {
    const p = prefix();
    const table = `${p}minilm`;
    const first = newSink(p);
    await first.ensureTable({ model: 'minilm', modelRef: 'Xenova/all-MiniLM-L6-v2', dim: 64 });
    await first.upsert('minilm', makeRows(10, 64));

    const second = newSink(p);
    const wider = second.ensureTable({ model: 'minilm', modelRef: 'org/wide', dim: 1280 });
    await expect(wider).rejects.toMatchObject({ code: 'config' });
    const err = (await wider.catch((e: unknown) => e)) as StreambedError;
    expect(err).toBeInstanceOf(StreambedError);
    expect(err.message).toContain(`"${table}"`);
    expect(err.message).toContain('vector(64)');
    expect(err.message).toContain('vector(1280)');
    expect(err.message).toContain('Xenova/all-MiniLM-L6-v2');
    expect(err.message).toContain('SINK_TABLE_PREFIX');
    expect(second.healthy()).toBe(false);
    await expect(second.upsert('minilm', makeRows(3, 1280))).rejects.toMatchObject({
      code: 'internal',
    });

    const otherModel = second.ensureTable({ model: 'minilm', modelRef: 'org/other', dim: 64 });
    await expect(otherModel).rejects.toThrow(/Xenova\/all-MiniLM-L6-v2.*org\/other/s);
    expect(await count(table)).toBe(10);
    expect(await columnType(table)).toBe('vector(64)');
  });

  it('refuses a hand-made vector(1536) table (the old hard-coded schema)', async () => {
    const p = prefix();
    await client.query(`CREATE TABLE "${p}e5" (source text, id text, chunk int, hash text,
      embedding vector(1536), model_ref text, meta jsonb, updated_at timestamptz,
      PRIMARY KEY (source, id, chunk))`);
    const sink = newSink(p);
    await expect(
      sink.ensureTable({ model: 'e5', modelRef: 'intfloat/e5', dim: 1280 }),
    ).rejects.toThrow(/"[a-z0-9_]+e5" stores vector\(1536\).*produces vector\(1280\)/s);
    expect(await columnType(`${p}e5`)).toBe('vector(1536)');
  });

  it('upserts 1000 rows in one call; unchanged rows keep updated_at, changed hashes rewrite', async () => {
    const p = prefix();
    const table = `${p}m384`;
    const sink = newSink(p);
    await sink.ensureTable({ model: 'm384', modelRef: 'org/m384', dim: 384 });
    const rows = makeRows(1000, 384);
    await sink.upsert('m384', rows);
    expect(await count(table)).toBe(1000);
    const before = await stamps(table);

    await sink.upsert('m384', rows);
    expect(await stamps(table)).toEqual(before);

    const changed = rows.slice(0, 10).map((r, i) => ({
      ...r,
      hash: `${r.hash}-v2`,
      vector: randomVectors(1, 384, 1000 + i)[0]!,
    }));
    await sink.upsert('m384', changed);
    const after = await stamps(table);
    expect(await count(table)).toBe(1000);
    for (const r of rows) {
      const k = sinkKey(r.source, r.id, r.chunk);
      const rewritten = changed.some((c) => sinkKey(c.source, c.id, c.chunk) === k);
      expect(after.get(k) !== before.get(k)).toBe(rewritten);
    }
    const stored = await sink.lookup('m384', changed);
    expect(stored.size).toBe(10);
    expectClose(stored.get(sinkKey(changed[0]!.source, changed[0]!.id, 0))!, changed[0]!.vector);
  });

  it('keeps the last row when a batch carries a key twice', async () => {
    const sink = newSink();
    await sink.ensureTable({ model: 'dup', modelRef: 'org/dup', dim: 8 });
    const [a, b] = makeRows(2, 8);
    await sink.upsert('dup', [a!, { ...b!, source: a!.source, id: a!.id, chunk: a!.chunk }]);
    const got = await sink.lookup('dup', [{ ...a!, hash: b!.hash }]);
    expect(got.size).toBe(1);
    expectClose([...got.values()][0]!, b!.vector);
  });

  it('lookup returns stored vectors only where hash and model ref match', async () => {
    const p = prefix();
    const sink = newSink(p);
    await sink.ensureTable({ model: 'lk', modelRef: 'org/lk', dim: 384 });
    const rows = makeRows(200, 384, 7);
    await sink.upsert('lk', rows);
    const keys = [
      ...rows.slice(0, 50),
      ...rows.slice(50, 60).map((r) => ({ ...r, hash: 'stale' })),
      { source: 'nope', id: 'missing', chunk: 0, hash: 'h0' },
    ];
    const got = await sink.lookup('lk', keys);
    expect(got.size).toBe(50);
    for (const r of rows.slice(0, 50)) {
      expectClose(got.get(sinkKey(r.source, r.id, r.chunk))!, r.vector);
    }
    expect((await sink.lookup('lk', [])).size).toBe(0);
  });

  it.each(['none', 'hnsw', 'ivfflat'] as const)(
    'search finds a stored vector first (index %s)',
    async (index) => {
      const p = prefix();
      const sink = newSink(p, index);
      await sink.ensureTable({ model: 'nn', modelRef: 'org/nn', dim: 64 });
      const rows = makeRows(300, 64, 11);
      await sink.upsert('nn', rows);
      const target = rows[123]!;
      const hits = await sink.search('nn', target.vector, 5);
      expect(hits[0]).toMatchObject({ source: target.source, id: target.id, chunk: target.chunk });
      expect(hits[0]!.distance).toBeLessThan(1e-6);
      expect(hits[0]!.meta).toEqual(target.meta);
      // IVFFlat built on an empty table scans 1 of its 100 lists (ivfflat.probes
      // defaults to 1), so it may return fewer than k rows: see docs/sink.md.
      if (index === 'ivfflat') expect(hits.length).toBeGreaterThanOrEqual(1);
      else expect(hits.length).toBe(5);
      const indexes = await client.query<{ indexdef: string }>(
        'SELECT indexdef FROM pg_indexes WHERE tablename = $1',
        [`${p}nn`],
      );
      const defs = indexes.rows.map((r) => r.indexdef).join('\n');
      if (index === 'none') expect(defs).not.toMatch(/USING (hnsw|ivfflat)/);
      else expect(defs).toMatch(new RegExp(`USING ${index} \\(embedding vector_cosine_ops\\)`));
    },
  );

  it('rejects vectors of the wrong width before touching the database', async () => {
    const sink = newSink();
    await sink.ensureTable({ model: 'w', modelRef: 'org/w', dim: 16 });
    await expect(sink.upsert('w', makeRows(1, 17))).rejects.toThrow(/17 dimensions.*16/);
    await expect(sink.search('w', new Float32Array(16).fill(Number.NaN), 1)).rejects.toThrow(/NaN/);
    expect(sink.healthy()).toBe(true);
  });
});

function expectClose(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-6);
}
