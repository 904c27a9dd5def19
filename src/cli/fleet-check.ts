/**
 * What `submit` checks before adding anything, so a mistake is reported at
 * once instead of as a timeout minutes later: the reply stream must match
 * the pattern the fleet enforces (REPLY_TO_PATTERN), and some worker must
 * serve the model (its consumer group exists on the request stream).
 */
import type { Redis } from 'ioredis';

import { groupRow, toRecord } from '../client/backlog.js';
import { replyMatcher } from '../codec/envelope.js';
import { StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';
import type { CliConnection } from './client-connection.js';

/** A consumer that read within this long is a live worker (workers read every BLOCK_MS). */
export const LIVE_CONSUMER_MS = 60_000;

/** Every page's source must be allowed the stream (a `{source}` pattern binds streams to sources). */
export function checkReplyTo(replyTo: string, pattern: string, sources: readonly string[]): void {
  const allowed = replyMatcher(pattern);
  if (sources.every((source) => allowed(replyTo, source))) return;
  throw new StreambedError(
    'config',
    `--reply-to ${replyTo} does not match the pattern the fleet accepts (${pattern}): ` +
      `workers would dead-letter every page as reply_to_denied. Use a stream that matches, ` +
      `or set REPLY_TO_PATTERN here to what the fleet is configured with`,
  );
}

export interface ServedState {
  /** Consumers of the group that read within LIVE_CONSUMER_MS. */
  live: number;
  /** Milliseconds since the most recent read by any consumer (undefined: no consumer). */
  idleMs: number | undefined;
}

/**
 * Throws `config` when no worker ever served `model` (no group on its
 * stream: a misspelt model, another KEY_PREFIX or GROUP). Otherwise reports
 * how many consumers are live: none is legitimate (a fleet scaled to zero)
 * but worth a warning.
 */
export async function checkServed(redis: Redis, keys: Keys, model: string): Promise<ServedState> {
  const stream = keys.request(model);
  if (!(await groupRow(redis, stream, keys.group))) {
    throw new StreambedError(
      'config',
      `no worker serves model "${model}": ${stream} has no consumer group ${keys.group}. ` +
        `Check -m against the fleet's MODELS (and KEY_PREFIX, GROUP), start a worker for it, ` +
        `or add --force to queue the pages anyway`,
    );
  }
  const consumers = ((await redis.xinfo('CONSUMERS', stream, keys.group)) as unknown[][]).map(
    toRecord,
  );
  const idles = consumers.map((c) => Number(c.idle));
  return {
    live: idles.filter((ms) => ms < LIVE_CONSUMER_MS).length,
    idleMs: idles.length ? Math.min(...idles) : undefined,
  };
}

/** Fail when nobody serves the model (unless `force`); warn when nobody is reading it right now. */
export async function warnUnlessServed(
  conn: Pick<CliConnection, 'redis' | 'client'>,
  model: string,
  force: boolean,
  waiting = 'the pages wait',
): Promise<void> {
  try {
    const served = await checkServed(conn.redis, conn.client.keys, model);
    if (served.live > 0) return;
    const last =
      served.idleMs === undefined
        ? 'no worker has joined'
        : `last read ${Math.round(served.idleMs / 1000)} s ago`;
    console.error(
      `warning: no worker has read ${conn.client.keys.request(model)} in the last ` +
        `${LIVE_CONSUMER_MS / 1000} s (${last}): ${waiting} until a worker for "${model}" runs`,
    );
  } catch (err) {
    if (!force || (err as StreambedError).code !== 'config') throw err;
    console.error(
      `warning: ${(err as Error).message.replace(/, or add --force.*$/, '')}; submitting anyway (--force)`,
    );
  }
}
