/**
 * SqlClient over embedded PGlite with pgvector, persisted in a directory
 * (`SINK=pglite:DIR`): vectors in Postgres with no server, for one machine.
 * PGlite is one single-user backend, so queries are serialised here, and one
 * directory must be opened by one process at a time.
 */
import { mkdir } from 'node:fs/promises';

import type { PGlite } from '@electric-sql/pglite';
import { fromSql } from 'pgvector';

import { StreambedError } from '../errors.js';
import type { QueryResult, SqlClient } from './client.js';
import { type DirLock, lockDataDir } from './dir-lock.js';
import { toSinkError } from './driver-errors.js';

export function createPgliteClient(dataDir: string): SqlClient {
  let opening: Promise<PGlite> | undefined;
  let closed = false;
  let tail: Promise<unknown> = Promise.resolve();
  let parsers: Record<number, (text: string) => unknown> = {};
  let lock: DirLock | undefined;

  // Loaded on first use: the WASM Postgres is large, and PG_URL users never need it.
  async function open(): Promise<PGlite> {
    const [{ PGlite }, { vector }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite-pgvector'),
    ]);
    if (!dataDir.startsWith('memory://')) {
      await mkdir(dataDir, { recursive: true });
      lock = await lockDataDir(dataDir);
    }
    try {
      return await PGlite.create(dataDir, { extensions: { vector } });
    } catch (err) {
      await releaseLock();
      throw err;
    }
  }

  async function releaseLock(): Promise<void> {
    const held = lock;
    lock = undefined;
    await held?.release();
  }

  function db(): Promise<PGlite> {
    if (closed) return Promise.reject(new StreambedError('internal', 'sink: used after close()'));
    opening ??= open().catch((err: unknown) => {
      opening = undefined; // let the next call try again
      if (err instanceof StreambedError) throw err;
      throw new StreambedError(
        'config',
        `sink: cannot open embedded Postgres in ${JSON.stringify(dataDir)}: ${String(err)}`,
        { cause: err },
      );
    });
    return opening;
  }

  /** Run `fn` after every earlier query has settled, whatever their outcome. */
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn, fn);
    // `run` delivers the failure to its caller; the chain only orders, so a
    // failed query must not block the ones queued behind it.
    tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  function query<R>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    return serial(async () => {
      const pg = await db();
      try {
        const res = await pg.query<R>(sql, params, { parsers });
        return { rows: res.rows, rowCount: res.affectedRows || res.rows.length };
      } catch (err) {
        throw toSinkError(err, 'query');
      }
    });
  }

  return {
    poolSize: undefined,
    query,

    async registerVectorType(): Promise<void> {
      const res = await query<{ oid: number }>(
        "SELECT oid::int AS oid FROM pg_type WHERE typname = 'vector'",
      );
      const oid = res.rows[0]?.oid;
      if (oid === undefined) {
        throw new StreambedError('internal', 'sink: vector type not found after CREATE EXTENSION');
      }
      // The same parser pgvector.registerTypes installs on `pg` connections.
      parsers = { [oid]: (text: string) => fromSql(text) as unknown };
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const pending = opening;
      opening = undefined;
      await tail; // queries already queued finish first
      if (!pending) return;
      let pg: PGlite;
      try {
        pg = await pending;
      } catch (err) {
        // It never opened, so there is nothing to close; its callers got this error.
        if (err instanceof StreambedError) return;
        throw err;
      }
      if (!pg.closed) await pg.close();
      await releaseLock();
    },
  };
}
