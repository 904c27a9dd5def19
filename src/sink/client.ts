/**
 * The tiny query adapter that hides which driver talks to Postgres, so the
 * sink's SQL exists once: `pg` (a pool against any Postgres with pgvector, or
 * a pglite-socket server) and embedded PGlite both implement it.
 */

export interface QueryResult<R> {
  rows: R[];
  /** Rows inserted/updated/returned, as the server reports it. */
  rowCount: number;
}

export interface SqlClient {
  /** One statement with `$n` parameters bound by the server (never inlined). */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>>;
  /**
   * Teach the driver to parse `vector` columns into number[]. Needs the type
   * to exist, so the sink calls it right after `CREATE EXTENSION vector`.
   */
  registerVectorType(): Promise<void>;
  /** Server connections this process may hold; undefined for embedded PGlite. */
  readonly poolSize: number | undefined;
  close(): Promise<void>;
}

/** Where the sink reports things an operator should act on. */
export interface SinkLog {
  warn(obj: object, msg: string): void;
}
