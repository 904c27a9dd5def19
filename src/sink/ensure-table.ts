/**
 * Start-up check and creation of one model's sink table. The dimension comes
 * from the loaded model, never a constant; an existing table built for another
 * dimension or model ref stops start-up with a message that says what to do,
 * before anything is written.
 */
import { StreambedError } from '../errors.js';
import type { SqlClient } from './client.js';
import { sqlState } from './driver-errors.js';
import {
  CHUNK_COLUMNS,
  type IndexParams,
  quoteIdent,
  REGISTRY_TABLE,
  type SinkIndexKind,
  SQL,
} from './sql.js';

export interface TableSpec {
  table: string;
  model: string;
  modelRef: string;
  dim: number;
  index: SinkIndexKind;
  indexParams: IndexParams;
}

interface TableState {
  columns: Map<string, string>;
  /** What the registry says this table was created for; undefined when unrecorded. */
  registered: { model: string; modelRef: string; dim: number } | undefined;
}

const REQUIRED_COLUMNS = [
  'source',
  'id',
  'chunk',
  'hash',
  'embedding',
  'model_ref',
  'meta',
  'updated_at',
];

/**
 * SQLSTATEs of concurrent `IF NOT EXISTS` DDL: when a fleet starts at once two
 * processes can both decide to create the same object, and the loser gets
 * unique_violation (23505) or duplicate_table/object (42P07/42710). The object
 * exists either way, and it is re-checked right after. Two processes adding
 * the chunk columns to an old table at once can meet duplicate_column (42701).
 */
const RACED_DDL = new Set(['23505', '42P07', '42710', '42701']);

export async function ensureSinkTable(client: SqlClient, spec: TableSpec): Promise<void> {
  const before = await readState(client, spec.table);
  if (before) {
    assertCompatible(before, spec);
    if (!before.registered) await assertNoForeignRows(client, spec);
  }
  await ddl(client, SQL.createRegistry);
  await ddl(client, SQL.createTable(spec.table, spec.dim));
  const q = quoteIdent(spec.table);
  await client.query(SQL.register, [spec.table, q, spec.model, spec.modelRef, spec.dim]);
  // Whoever registered first (this process or a racing one) is what counts now.
  const after = await readState(client, spec.table);
  if (!after) throw new StreambedError('internal', `sink: table "${spec.table}" vanished`);
  assertCompatible(after, spec);
  // A table from before chunk offsets: its old rows stay, with NULL span and passage.
  if (!hasChunkColumns(after)) await ddl(client, SQL.addChunkColumns(spec.table));
  if (spec.index !== 'none') {
    await ddl(client, SQL.createIndex(spec.table, spec.index, spec.indexParams));
  }
}

/** What search needs of an existing table (its dimension, its model ref), or undefined when there is none. */
export async function describeSinkTable(
  client: SqlClient,
  table: string,
): Promise<{ modelRef: string; dim: number; chunkColumns: boolean } | undefined> {
  const state = await readState(client, table);
  const dim = /^vector\((\d+)\)$/.exec(state?.columns.get('embedding') ?? '')?.[1];
  if (!state || dim === undefined) return undefined;
  return {
    modelRef: state.registered?.modelRef ?? '',
    dim: Number(dim),
    chunkColumns: hasChunkColumns(state),
  };
}

function hasChunkColumns(state: TableState): boolean {
  return CHUNK_COLUMNS.every((c) => state.columns.has(c));
}

async function readState(client: SqlClient, table: string): Promise<TableState | undefined> {
  const cols = await client.query<{ name: string; type: string }>(SQL.tableColumns, [
    quoteIdent(table),
  ]);
  if (cols.rows.length === 0) return undefined;
  const columns = new Map(cols.rows.map((c) => [c.name, c.type]));
  const reg = await client.query<{ exists: boolean }>(SQL.relationExists, [
    quoteIdent(REGISTRY_TABLE),
  ]);
  if (!reg.rows[0]?.exists) return { columns, registered: undefined };
  const row = await client.query<{ model: string; model_ref: string; dim: number }>(
    SQL.registryRow,
    [table, quoteIdent(table)],
  );
  const r = row.rows[0];
  return {
    columns,
    registered: r && { model: r.model, modelRef: r.model_ref, dim: r.dim },
  };
}

function assertCompatible(state: TableState, spec: TableSpec): void {
  const { table, model, modelRef, dim } = spec;
  const missing = REQUIRED_COLUMNS.filter((c) => !state.columns.has(c));
  if (missing.length > 0) {
    throw new StreambedError(
      'config',
      `sink table "${table}" exists but has no column(s) ${missing.join(', ')}: ` +
        `it was not created by streambed. Rename or drop it, or set SINK_TABLE_PREFIX ` +
        `so model "${model}" writes to another table.`,
    );
  }
  const want = `vector(${dim})`;
  const have = state.columns.get('embedding');
  const was = state.registered ? ` from model ref "${state.registered.modelRef}"` : '';
  const remedy =
    `Vectors of different models cannot share a table: drop or rename "${table}" ` +
    `(its vectors will be recomputed), or set SINK_TABLE_PREFIX to write to a new table, ` +
    `or configure model "${model}" back to the model the table was built for.`;
  if (have !== want) {
    throw new StreambedError(
      'config',
      `sink table "${table}" stores ${have ?? 'no'} embeddings${was}, but model "${model}" ` +
        `(ref "${modelRef}") produces ${want}. ${remedy}`,
    );
  }
  if (state.registered && state.registered.modelRef !== modelRef) {
    throw new StreambedError(
      'config',
      `sink table "${table}" was created for model ref "${state.registered.modelRef}" ` +
        `(vector(${state.registered.dim})), but model "${model}" is now ref "${modelRef}" ` +
        `(${want}). ${remedy}`,
    );
  }
}

/** A table nobody registered (made by hand, or before the registry): adopt it only if its rows agree. */
async function assertNoForeignRows(client: SqlClient, spec: TableSpec): Promise<void> {
  const res = await client.query<{ model_ref: string }>(SQL.foreignModelRef(spec.table), [
    spec.modelRef,
  ]);
  const other = res.rows[0];
  if (other) {
    throw new StreambedError(
      'config',
      `sink table "${spec.table}" holds rows from model ref "${other.model_ref}", but model ` +
        `"${spec.model}" is ref "${spec.modelRef}". Drop or rename the table, or set ` +
        `SINK_TABLE_PREFIX to write to a new table.`,
    );
  }
}

async function ddl(client: SqlClient, sql: string): Promise<void> {
  try {
    await client.query(sql);
  } catch (err) {
    const state = sqlState(err);
    if (state === undefined || !RACED_DDL.has(state)) throw err;
  }
}
