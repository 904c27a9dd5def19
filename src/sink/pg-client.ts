/**
 * SqlClient over a `pg` Pool: any Postgres with the pgvector extension, or a
 * pglite-socket server in tests. Unnamed statements only: pglite-socket (and
 * PgBouncer in transaction mode) share prepared-statement names between
 * connections, so a named statement from one client would collide with another's.
 */
import pg from 'pg';
import { registerTypes } from 'pgvector/pg';

import type { QueryResult, SinkLog, SqlClient } from './client.js';
import { toSinkError } from './driver-errors.js';

export interface PgClientOptions {
  url: string;
  poolSize: number;
  log?: SinkLog;
  /** How long to wait for a connection before reporting the sink unavailable. */
  connectTimeoutMs?: number;
}

export function createPgClient(opts: PgClientOptions): SqlClient {
  // Parsers for pgvector's types, filled once the extension exists. Every
  // connection of the pool (including ones opened after a reconnect) consults
  // this table, so no per-connection registration query races the caller's.
  const vectorParsers = new Map<number, (text: string) => unknown>();
  const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
    vectorParsers.get(oid) ?? pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;

  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'streambed-sink',
    types: { getTypeParser },
  });
  // An idle pooled connection that dies (server restart, failover) is reported
  // here; without a listener Node would crash the process on the 'error' event.
  // The pool drops that client and the next query opens a fresh one.
  pool.on('error', (err) => {
    // The message only: the error object carries the whole pg client (kilobytes per line).
    opts.log?.warn({ err: err.message }, 'sink: idle Postgres connection failed');
  });

  async function query<R>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    try {
      const res = await pool.query(sql, params);
      return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
    } catch (err) {
      throw toSinkError(err, 'query');
    }
  }

  return {
    poolSize: opts.poolSize,
    query,

    async registerVectorType(): Promise<void> {
      // pgvector's own lookup and parsers, registered into the pool-wide table
      // above rather than onto one client.
      try {
        await registerTypes({
          query: (sql: string, params: unknown[]) => query(sql, params),
          setTypeParser: (oid: number, _format: string, parse: (text: string) => unknown) => {
            vectorParsers.set(oid, parse);
          },
        });
      } catch (err) {
        throw toSinkError(err, 'registering the vector type');
      }
    },

    async close(): Promise<void> {
      await pool.end();
    },
  };
}
