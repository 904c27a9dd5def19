/**
 * The Sink over any SqlClient: one implementation of the SQL for `pg` and
 * embedded PGlite. Every call is one autocommit statement (no transactions:
 * on pglite-socket an open transaction would block every other connection).
 */
import { metaJson } from '../codec/meta.js';
import { StreambedError } from '../errors.js';
import { checkConnectionBudget } from './budget.js';
import type { SinkLog, SqlClient } from './client.js';
import { describeSinkTable, ensureSinkTable } from './ensure-table.js';
import { INDEX_DEFAULTS, type IndexParams, type SinkIndexKind, sinkTableName, SQL } from './sql.js';
import {
  type LookupOptions,
  type Sink,
  type SinkHit,
  type SinkKey,
  sinkKey,
  type SinkRow,
  type SinkTable,
} from './types.js';
import { decodeVector, encodeVector } from './vectors.js';

export interface SqlSinkOptions {
  tablePrefix: string;
  index: SinkIndexKind;
  indexParams?: Partial<IndexParams>;
  expectedProcesses?: number;
  log?: SinkLog;
}

interface ReadyTable {
  name: string;
  modelRef: string;
  dim: number;
  /** Has span_start, span_end and passage (false only for an old table opened by a reader). */
  chunkColumns: boolean;
}

/** A search row as the driver returns it. */
interface HitRow {
  source: string;
  id: string;
  chunk: number;
  distance: number | string;
  meta: unknown;
  span_start: number | null;
  span_end: number | null;
  passage: string | null;
}

export function createSqlSink(client: SqlClient, opts: SqlSinkOptions): Sink {
  const tables = new Map<string, ReadyTable>();
  const indexParams: IndexParams = { ...INDEX_DEFAULTS, ...opts.indexParams };
  let ok = false;
  let closed = false;
  let init: Promise<void> | undefined;

  /** Runs a database operation and records its outcome for healthy(). */
  async function run<T>(fn: () => Promise<T>): Promise<T> {
    if (closed) throw new StreambedError('internal', 'sink: used after close()');
    try {
      const out = await fn();
      ok = true;
      return out;
    } catch (err) {
      ok = false;
      throw err;
    }
  }

  /** Once per sink, retried after a failure (the server may be down at start-up). */
  function initialise(): Promise<void> {
    init ??= (async () => {
      await client.query(SQL.createExtension);
      await client.registerVectorType(); // must follow CREATE EXTENSION: the type must exist
      if (client.poolSize !== undefined) {
        await checkConnectionBudget(client, client.poolSize, opts.expectedProcesses ?? 1, opts.log);
      }
    })().catch((err: unknown) => {
      init = undefined;
      throw err;
    });
    return init;
  }

  function table(model: string): ReadyTable {
    const t = tables.get(model);
    if (!t) {
      throw new StreambedError(
        'internal',
        `sink: ensureTable() has not succeeded for model "${model}"; nothing was written`,
      );
    }
    return t;
  }

  return {
    ensureTable: (t: SinkTable) =>
      run(async () => {
        if (!Number.isSafeInteger(t.dim) || t.dim < 1) {
          throw new StreambedError('config', `sink: model "${t.model}" has dimension ${t.dim}`);
        }
        const name = sinkTableName(opts.tablePrefix, t.model);
        await initialise();
        await ensureSinkTable(client, { ...t, table: name, index: opts.index, indexParams });
        tables.set(t.model, { name, modelRef: t.modelRef, dim: t.dim, chunkColumns: true });
      }),

    openTable: (model: string) =>
      run(async () => {
        const name = sinkTableName(opts.tablePrefix, model);
        await initialise();
        const found = await describeSinkTable(client, name);
        if (!found) {
          throw new StreambedError(
            'config',
            `sink: no table "${name}" for model "${model}": nothing was stored for it yet ` +
              `(a worker with this sink creates it when the model loads), or SINK_TABLE_PREFIX differs`,
          );
        }
        tables.set(model, { name, ...found });
      }),

    async upsert(model: string, rows: SinkRow[]): Promise<void> {
      const t = table(model);
      if (rows.length === 0) return;
      // ON CONFLICT cannot touch one row twice in a statement; a batch may carry
      // a key twice (a re-delivered entry next to its original), so keep the last.
      const byKey = new Map<string, SinkRow>();
      for (const r of rows) byKey.set(sinkKey(r.source, r.id, r.chunk), r);
      const unique = [...byKey.values()];
      const params = [
        unique.map((r) => r.source),
        unique.map((r) => r.id),
        unique.map((r) => r.chunk),
        unique.map((r) => r.hash),
        unique.map((r) => encodeVector(r.vector, t.dim, `upsert into "${t.name}"`)),
        t.modelRef,
        // metaJson: a 64-bit integer from another language's msgpack is a BigInt, which
        // JSON.stringify refuses (the upsert would fail and retry forever); jsonb keeps its digits.
        unique.map((r) => (r.meta === undefined ? null : metaJson(r.meta))),
        unique.map((r) => spanOf(r, t.name)?.[0] ?? null),
        unique.map((r) => r.span?.[1] ?? null),
        unique.map((r) => r.passage ?? null),
      ];
      await run(() => client.query(SQL.upsert(t.name), params));
    },

    async lookup(
      model: string,
      keys: SinkKey[],
      opts: LookupOptions = {},
    ): Promise<Map<string, Float32Array>> {
      const t = table(model);
      const found = new Map<string, Float32Array>();
      if (keys.length === 0) return found;
      const params = [
        keys.map((k) => k.source),
        keys.map((k) => k.id),
        keys.map((k) => k.chunk),
        keys.map((k) => k.hash),
        t.modelRef,
        keys.map((k) => spanOf(k, t.name)?.[0] ?? null),
        keys.map((k) => k.span?.[1] ?? null),
        opts.withPassage === true,
      ];
      const res = await run(() =>
        client.query<{ source: string; id: string; chunk: number; embedding: unknown }>(
          SQL.lookup(t.name),
          params,
        ),
      );
      for (const r of res.rows)
        found.set(sinkKey(r.source, r.id, r.chunk), decodeVector(r.embedding));
      return found;
    },

    async deleteSource(model: string, source: string): Promise<void> {
      const t = table(model);
      await run(() => client.query(SQL.deleteSource(t.name), [source]));
    },

    async search(model: string, vector: Float32Array, k: number): Promise<SinkHit[]> {
      const t = table(model);
      if (!Number.isSafeInteger(k) || k < 1) {
        throw new StreambedError('internal', `sink: search k must be a positive integer, got ${k}`);
      }
      const v = encodeVector(vector, t.dim, `search in "${t.name}"`);
      const res = await run(() => client.query<HitRow>(SQL.search(t.name, t.chunkColumns), [v, k]));
      return res.rows.map((r) => ({
        source: r.source,
        id: r.id,
        chunk: r.chunk,
        distance: Number(r.distance),
        meta: r.meta,
        ...(r.span_start !== null && r.span_end !== null && { span: [r.span_start, r.span_end] }),
        ...(r.passage !== null && { passage: r.passage }),
      }));
    },

    healthy: () => ok && !closed,

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      ok = false;
      await client.close();
    },
  };
}

/** Offsets go into int columns: a span that is not two ordered non-negative int32s cannot be stored. */
function spanOf(row: { span?: [number, number] }, table: string): [number, number] | undefined {
  const span = row.span;
  if (span === undefined) return undefined;
  const [start, end] = span;
  const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
  if (!ok(start) || !ok(end) || start > end) {
    throw new StreambedError(
      'invalid',
      `sink: "${table}": span [${span.join(', ')}] is not [start, end)`,
    );
  }
  return span;
}
