/**
 * Turns whatever a driver throws into a StreambedError with a code the worker
 * can act on: `sink_unavailable` (transient: leave entries pending, back off,
 * report not ready) versus `config` / `internal` (retrying will not help).
 */
import { type ErrorCode, StreambedError } from '../errors.js';

/**
 * SQLSTATE classes and codes that mean "the server is (briefly) not there or
 * busy", not "your statement is wrong". 08 connection exception, 53 insufficient
 * resources (incl. 53300 too_many_connections), 57P0x shutdown/restart, 57014
 * statement timeout, 40001/40P01 serialization/deadlock, 55P03 lock timeout,
 * 25006 read-only transaction (a failover promoted nothing yet).
 */
const TRANSIENT_SQLSTATE = /^(08|53|57P0)|^(57014|40001|40P01|55P03|25006)$/;
/** Bad credentials or a database that does not exist: fix PG_URL. */
const CONFIG_SQLSTATE = /^(28|3D)/;
/** Node socket errors (ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT, ENOTFOUND...). */
const SYSTEM_ERRNO = /^E[A-Z_]+$/;
/**
 * `pg` and `pg-pool` report a lost or unreachable server with plain Errors and
 * no code; these are their messages (pg 8 lib/client.js, pg-pool index.js).
 */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated|timeout expired|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Received unexpected)/;

/** The SQLSTATE of a server error, if `err` (or its cause) is one. */
export function sqlState(err: unknown): string | undefined {
  const e = err instanceof StreambedError ? err.cause : err;
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Whether the server refused a statement for the data in it: SQLSTATE class
 * 22 (data exception: a value the column cannot hold) or 23 (a constraint,
 * e.g. a CHECK an operator added), or our own check of a row before sending
 * it (`invalid`). Retrying the same rows can never succeed.
 */
export function isDataError(err: unknown): boolean {
  if (err instanceof StreambedError && err.code === 'invalid') return true;
  return /^(22|23)/.test(sqlState(err) ?? '');
}

/** Classify a driver error; `what` says which operation failed, for the message. */
export function toSinkError(err: unknown, what: string): StreambedError {
  if (err instanceof StreambedError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StreambedError(classify(err), `sink: ${what} failed: ${message}`, { cause: err });
}

function classify(err: unknown): ErrorCode {
  const state = sqlState(err);
  if (state !== undefined) {
    if (TRANSIENT_SQLSTATE.test(state)) return 'sink_unavailable';
    if (CONFIG_SQLSTATE.test(state)) return 'config';
    return 'internal';
  }
  // Node reports "localhost resolved to ::1 and 127.0.0.1, both refused" as an AggregateError.
  if (err instanceof AggregateError) return 'sink_unavailable';
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && SYSTEM_ERRNO.test(code)) return 'sink_unavailable';
    if (PG_CONNECTION_MESSAGES.test(err.message)) return 'sink_unavailable';
  }
  return 'internal';
}
