/**
 * Redis helpers for the queue cases: reading result streams back until every
 * expected result has arrived, and deleting a case's keys by prefix.
 */
import type { Redis } from 'ioredis';

import { idTimeMs } from '../stats.js';

export interface Collected {
  /** performance.now() when the last expected result was read. */
  doneAt: number;
  latenciesMs: number[];
  /** Results by status field (`ok` when the stream has no status field). */
  statuses: Record<string, number>;
  /** Fields of the first result, for a sanity check. */
  sample?: Buffer[];
}

/**
 * Read `stream` from `from` until a result for every id in `rids` arrived
 * (matched on the `rid` field). Fails when no new result came for
 * `stallMs`, or as soon as `dead()` names a reason (the case's process exited).
 */
export async function collectResults(
  reader: Redis,
  stream: string,
  rids: ReadonlySet<string>,
  opts: { from?: string; stallMs: number; dead?: () => string | undefined },
): Promise<Collected> {
  const waiting = new Set(rids);
  const out: Collected = { doneAt: 0, latenciesMs: [], statuses: {} };
  let progressAt = Date.now();
  let last = opts.from ?? '0';
  while (waiting.size > 0) {
    const dead = opts.dead?.();
    if (dead)
      throw new Error(`${waiting.size} of ${rids.size} results missing on ${stream}: ${dead}`);
    if (Date.now() - progressAt > opts.stallMs)
      throw new Error(
        `stalled: no result for ${opts.stallMs} ms, ${waiting.size} of ${rids.size} missing on ${stream}`,
      );
    const reply = (await reader.xreadBuffer(
      'COUNT',
      2000,
      'BLOCK',
      200,
      'STREAMS',
      stream,
      last,
    )) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
    for (const [, entries] of reply ?? []) {
      for (const [idBuf, fields] of entries) {
        last = idBuf.toString();
        let rid = '';
        let status = 'ok';
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const name = (fields[i] as Buffer).toString();
          if (name === 'rid') rid = (fields[i + 1] as Buffer).toString();
          else if (name === 'status') status = (fields[i + 1] as Buffer).toString();
        }
        if (!waiting.delete(rid)) continue;
        progressAt = Date.now();
        out.sample ??= fields;
        out.statuses[status] = (out.statuses[status] ?? 0) + 1;
        out.latenciesMs.push(idTimeMs(last) - idTimeMs(rid));
      }
    }
  }
  out.doneAt = performance.now();
  return out;
}

/** XADD plain `id`/`text` entries in pipelined chunks; returns the entry ids in order. */
export async function xaddTexts(
  redis: Redis,
  stream: string,
  texts: readonly string[],
  tag: string,
  extra: string[] = [],
): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < texts.length; start += 1000) {
    const pipeline = redis.pipeline();
    texts.slice(start, start + 1000).forEach((text, k) => {
      pipeline.xadd(
        stream,
        '*',
        'id',
        `${tag}-${start + k}`,
        'source',
        'bench',
        'text',
        text,
        ...extra,
      );
    });
    for (const [err, id] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      ids.push(id as string);
    }
  }
  return ids;
}

export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (found.length) deleted += await redis.del(...found);
  } while (cursor !== '0');
  return deleted;
}
