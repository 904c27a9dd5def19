/**
 * Every SQL statement the sink runs, and the table names it runs them on.
 * Both drivers execute exactly this text (see client.ts). Identifiers are
 * always quoted; values are always `$n` parameters, so nothing a producer
 * sends (source, id, meta) is ever spliced into SQL.
 */
import { createHash } from 'node:crypto';

import { StreambedError } from '../errors.js';

/** Records which model ref each sink table was created for (see docs/sink.md). */
export const REGISTRY_TABLE = 'sb_sink_tables';

/** pgvector's defaults for HNSW, and the usual starting point for IVFFlat. */
export const INDEX_DEFAULTS = { hnswM: 16, hnswEfConstruction: 64, ivfflatLists: 100 } as const;

/** Columns added with chunk offsets (issue 16); a table made before them lacks them until ensureTable. */
export const CHUNK_COLUMNS = ['span_start', 'span_end', 'passage'] as const;

export type SinkIndexKind = 'none' | 'hnsw' | 'ivfflat';
export interface IndexParams {
  hnswM: number;
  hnswEfConstruction: number;
  ivfflatLists: number;
}

/** Postgres truncates identifiers past 63 bytes; leave room for the longest index suffix. */
const MAX_TABLE_NAME = 63 - '_ivfflat'.length;
const PREFIX_PATTERN = /^[a-z_][a-z0-9_]{0,30}$/;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * `sb_vectors_` + the model's short name, lower-cased with anything outside
 * [a-z0-9_] turned into `_`. A name too long for Postgres is cut and given a
 * hash of the full short name so two long names cannot land in one table.
 */
export function sinkTableName(prefix: string, model: string): string {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new StreambedError(
      'config',
      `SINK_TABLE_PREFIX ${JSON.stringify(prefix)} must match ${PREFIX_PATTERN}`,
    );
  }
  if (model.length === 0) throw new StreambedError('config', 'sink: empty model short name');
  const safe = model.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (prefix.length + safe.length <= MAX_TABLE_NAME) return prefix + safe;
  const tag = createHash('sha1').update(model).digest('hex').slice(0, 8);
  return `${prefix}${safe.slice(0, MAX_TABLE_NAME - prefix.length - tag.length - 1)}_${tag}`;
}

export const SQL = {
  createExtension: 'CREATE EXTENSION IF NOT EXISTS vector',

  /** Connections the server accepts for ordinary roles (PG16+ also reserves `reserved_connections`). */
  connectionLimits: `SELECT current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int
      + coalesce(current_setting('reserved_connections', true), '0')::int AS reserved`,

  createRegistry: `CREATE TABLE IF NOT EXISTS ${quoteIdent(REGISTRY_TABLE)} (
    table_name text PRIMARY KEY,
    table_oid oid NOT NULL,
    model text NOT NULL,
    model_ref text NOT NULL,
    dim int NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now())`,

  /** $1: quoted name of any relation. */
  relationExists: 'SELECT to_regclass($1) IS NOT NULL AS exists',

  /** Columns of a table ($1: quoted name); no rows when it does not exist. */
  tableColumns: `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,

  /** The registry row of the table that exists now ($1 name, $2 quoted name); a row left by a dropped table has another oid. */
  registryRow: `SELECT model, model_ref, dim FROM ${quoteIdent(REGISTRY_TABLE)}
    WHERE table_name = $1 AND table_oid = to_regclass($2)::oid`,

  /**
   * Claim the registry row for the table as it exists now. A row for the same
   * oid is kept (the first process to start wins and the others are checked
   * against it); a row left by a dropped table is replaced.
   */
  register: `INSERT INTO ${quoteIdent(REGISTRY_TABLE)} AS r (table_name, table_oid, model, model_ref, dim)
    VALUES ($1, to_regclass($2)::oid, $3, $4, $5)
    ON CONFLICT (table_name) DO UPDATE SET table_oid = EXCLUDED.table_oid, model = EXCLUDED.model,
      model_ref = EXCLUDED.model_ref, dim = EXCLUDED.dim, registered_at = now()
    WHERE r.table_oid IS DISTINCT FROM EXCLUDED.table_oid`,

  createTable: (table: string, dim: number) => `CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (
    source text NOT NULL,
    id text NOT NULL,
    chunk int NOT NULL,
    hash text NOT NULL,
    embedding vector(${dim}) NOT NULL,
    model_ref text NOT NULL,
    meta jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    span_start int,
    span_end int,
    passage text,
    PRIMARY KEY (source, id, chunk))`,

  /**
   * A table made before chunk offsets: the columns are nullable, so adding them
   * rewrites nothing. Run only when one is missing (ALTER TABLE takes an
   * exclusive lock even when IF NOT EXISTS makes it a no-op).
   */
  addChunkColumns: (table: string) => `ALTER TABLE ${quoteIdent(table)}
    ADD COLUMN IF NOT EXISTS span_start int,
    ADD COLUMN IF NOT EXISTS span_end int,
    ADD COLUMN IF NOT EXISTS passage text`,

  /** For a table we did not create: does it hold rows of another model ($1 model ref)? */
  foreignModelRef: (table: string) =>
    `SELECT model_ref FROM ${quoteIdent(table)} WHERE model_ref IS DISTINCT FROM $1 LIMIT 1`,

  createIndex: (table: string, kind: Exclude<SinkIndexKind, 'none'>, p: IndexParams) =>
    kind === 'hnsw'
      ? `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${table}_hnsw`)} ON ${quoteIdent(table)}
          USING hnsw (embedding vector_cosine_ops) WITH (m = ${int(p.hnswM)}, ef_construction = ${int(p.hnswEfConstruction)})`
      : `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${table}_ivfflat`)} ON ${quoteIdent(table)}
          USING ivfflat (embedding vector_cosine_ops) WITH (lists = ${int(p.ivfflatLists)})`,

  /**
   * One statement for a whole batch, whatever its size: rows travel as arrays
   * ($1 source, $2 id, $3 chunk, $4 hash, $5 vector text, $7 meta json,
   * $8 span start, $9 span end, $10 passage; $6 the model ref), so the
   * parameter count never nears the protocol's 65,535 limit. The `stale` CTE
   * deletes, in the same statement, each page's stored rows past its highest
   * chunk here (a page re-submitted with fewer chunks); it and the insert touch
   * disjoint rows. The WHERE keeps unchanged rows (same hash, model ref, span
   * and passage) untouched: no new row version, updated_at stays.
   */
  upsert: (table: string) => `WITH u AS (
      SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $7::jsonb[],
        $8::int[], $9::int[], $10::text[])
        AS u(source, id, chunk, hash, embedding, meta, span_start, span_end, passage)
    ), stale AS (
      DELETE FROM ${quoteIdent(table)} AS s
      USING (SELECT source, id, max(chunk) AS last FROM u GROUP BY source, id) AS p
      WHERE s.source = p.source AND s.id = p.id AND s.chunk > p.last
    )
    INSERT INTO ${quoteIdent(table)} AS t
      (source, id, chunk, hash, embedding, model_ref, meta, span_start, span_end, passage, updated_at)
    SELECT u.source, u.id, u.chunk, u.hash, u.embedding::vector, $6, u.meta,
      u.span_start, u.span_end, u.passage, now()
    FROM u
    ON CONFLICT (source, id, chunk) DO UPDATE SET hash = EXCLUDED.hash,
      embedding = EXCLUDED.embedding, model_ref = EXCLUDED.model_ref, meta = EXCLUDED.meta,
      span_start = EXCLUDED.span_start, span_end = EXCLUDED.span_end,
      passage = EXCLUDED.passage, updated_at = EXCLUDED.updated_at
    WHERE t.hash IS DISTINCT FROM EXCLUDED.hash OR t.model_ref IS DISTINCT FROM EXCLUDED.model_ref
      OR t.span_start IS DISTINCT FROM EXCLUDED.span_start
      OR t.span_end IS DISTINCT FROM EXCLUDED.span_end
      OR t.passage IS DISTINCT FROM EXCLUDED.passage`,

  /**
   * Stored vectors whose row has this hash, span and model ref ($1-$4 key
   * arrays, $6/$7 span arrays, $5 model ref; $8: only rows holding a passage).
   * A page with a stored row past its highest chunk asked about (`longer`)
   * returns none: it got shorter, and only an upsert deletes the extra rows.
   */
  lookup: (table: string) => `WITH k AS (
      SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $6::int[], $7::int[])
        AS k(source, id, chunk, hash, span_start, span_end)
    ), longer AS (
      SELECT p.source, p.id FROM (SELECT source, id, max(chunk) AS last FROM k GROUP BY source, id) AS p
      WHERE EXISTS (SELECT 1 FROM ${quoteIdent(table)} AS s
        WHERE s.source = p.source AND s.id = p.id AND s.chunk > p.last)
    )
    SELECT t.source, t.id, t.chunk, t.embedding
    FROM k JOIN ${quoteIdent(table)} AS t
      ON t.source = k.source AND t.id = k.id AND t.chunk = k.chunk AND t.hash = k.hash
    WHERE t.model_ref = $5
      AND t.span_start IS NOT DISTINCT FROM k.span_start AND t.span_end IS NOT DISTINCT FROM k.span_end
      AND (NOT $8::boolean OR t.passage IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM longer l WHERE l.source = k.source AND l.id = k.id)`,

  /** Every row of one source ($1): a `streambed search` query's own row, stored by the worker. */
  deleteSource: (table: string) => `DELETE FROM ${quoteIdent(table)} WHERE source = $1`,

  /**
   * Cosine distance, so an HNSW/IVFFlat index built with vector_cosine_ops
   * serves it. A reader never alters a table, so one from before the span and
   * passage columns reads them as NULL.
   */
  search: (table: string, chunkColumns: boolean) => `SELECT source, id, chunk,
      embedding <=> $1::vector AS distance, meta,
      ${chunkColumns ? 'span_start, span_end, passage' : 'NULL::int AS span_start, NULL::int AS span_end, NULL::text AS passage'}
    FROM ${quoteIdent(table)} ORDER BY embedding <=> $1::vector LIMIT $2`,
} as const;

/** Index parameters are spliced into DDL (Postgres takes no parameters there): integers only. */
function int(n: number): string {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new StreambedError('config', `sink: index parameter ${n} must be a positive integer`);
  }
  return String(n);
}
