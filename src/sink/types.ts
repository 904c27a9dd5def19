/**
 * The sink's public contract: where finished vectors go when Postgres is
 * configured, and where already-known content is looked up (dedupe).
 */

export interface SinkRow {
  source: string;
  id: string;
  chunk: number;
  /** Content hash of the chunk's text; the dedupe key together with the model ref. */
  hash: string;
  vector: Float32Array;
  meta?: Record<string, unknown>;
  /** `[start, end)` of the chunk in its page's text, in UTF-16 code units (a chunked page only). */
  span?: [number, number];
  /** The chunk's text, when the sink stores passages (SINK_STORE_PASSAGES). */
  passage?: string;
}

export interface SinkTable {
  /** Short name from the fleet's model table (`minilm`); names the table. */
  model: string;
  /** What the short name points at (`Xenova/all-MiniLM-L6-v2` or a path). */
  modelRef: string;
  /** From the loaded model, never a constant. */
  dim: number;
}

export interface SinkKey {
  source: string;
  id: string;
  chunk: number;
  hash: string;
  /** A stored row matches only with this same span (a row without one matches a key without one). */
  span?: [number, number];
}

export interface LookupOptions {
  /** Only rows that hold their passage count as known (SINK_STORE_PASSAGES on). */
  withPassage?: boolean;
}

export interface SinkHit {
  source: string;
  id: string;
  chunk: number;
  /** Cosine distance: 0 same direction, 2 opposite. */
  distance: number;
  meta: unknown;
  /** `[start, end)` in the page's text (UTF-16 code units), when the row has one. */
  span?: [number, number];
  /** The chunk's text, when it was stored. */
  passage?: string;
}

export interface Sink {
  /**
   * Create the table (and optional index) if missing, and add the span and
   * passage columns to a table made by an older version. A table of another
   * dimension or model ref throws StreambedError('config') naming the table,
   * both dimensions/model refs and what to do, and writes nothing.
   */
  ensureTable(t: SinkTable): Promise<void>;
  /**
   * For readers (`streambed search`): use the model's existing table as it is,
   * creating and altering nothing (a table from before span/passage columns
   * reads with none); throws StreambedError('config') when there is none.
   */
  openTable(model: string): Promise<void>;
  /**
   * One statement per call; idempotent on (source, id, chunk); rows whose hash,
   * model ref, span and passage are unchanged are not rewritten (updated_at
   * stays). Rows are whole pages: a page (source, id) whose highest chunk in
   * the call is n - 1 loses its stored rows of chunk >= n in the same
   * statement. Within a call, the last row for a key wins.
   */
  upsert(model: string, rows: SinkRow[]): Promise<void>;
  /**
   * For dedupe: which keys already hold that hash (and span) under this
   * model's ref; their stored vectors keyed by sinkKey(). A page with stored
   * rows past the highest chunk asked about returns nothing (it got shorter:
   * computing it again lets the upsert delete those rows). One query per call.
   */
  lookup(model: string, keys: SinkKey[], opts?: LookupOptions): Promise<Map<string, Float32Array>>;
  /**
   * Delete every row of one source: a worker with a sink stores every answer,
   * the query `streambed search` sends through the fleet included.
   */
  deleteSource(model: string, source: string): Promise<void>;
  /** Nearest neighbours by cosine distance, closest first. */
  search(model: string, vector: Float32Array, k: number): Promise<SinkHit[]>;
  /** True when the last database operation succeeded (for /readyz); false before the first. */
  healthy(): boolean;
  close(): Promise<void>;
}

export interface SinkConfig {
  /** `pglite:DIR`: embedded Postgres + pgvector persisted in DIR. */
  sink?: string;
  /** Any Postgres with pgvector. */
  pgUrl?: string;
  pgPoolSize: number;
  sinkTablePrefix: string;
  sinkIndex: 'none' | 'hnsw' | 'ivfflat';
  /** Processes expected to share the server, for the connection budget warning (default 1). */
  expectedProcesses?: number;
  /** HNSW build parameters (defaults: m 16, ef_construction 64, pgvector's own). */
  hnswM?: number;
  hnswEfConstruction?: number;
  /** IVFFlat lists (default 100). */
  ivfflatLists?: number;
}

/** The key lookup() results use: source, id and chunk joined by NUL (which neither may contain). */
export function sinkKey(source: string, id: string, chunk: number): string {
  return `${source}\u0000${id}\u0000${chunk}`;
}
