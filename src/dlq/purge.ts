/**
 * `dlq purge`: delete dead-lettered entries for good (XDEL). Nothing is
 * recorded: a purged entry's only copy is gone, which is why the CLI asks
 * for --yes.
 */
import type { Redis } from 'ioredis';

import type { Keys } from '../keys.js';
import { type DlqSummary, summarize } from './record.js';
import { type DlqFilter, selectDlq } from './select.js';

export interface PurgeReport {
  dryRun: boolean;
  /** Entries selected for deletion. */
  purged: DlqSummary[];
  /** Entries XDEL removed (fewer than selected if some went meanwhile; 0 in a dry run). */
  deleted: number;
  /** More entries matched beyond --limit. */
  more: boolean;
}

const CHUNK = 500;

export async function purgeDlq(
  redis: Redis,
  keys: Keys,
  filter: DlqFilter,
  options: { dryRun?: boolean } = {},
): Promise<PurgeReport> {
  const dryRun = options.dryRun ?? false;
  const { records, more } = await selectDlq(redis, keys, filter);
  let deleted = 0;
  if (!dryRun) {
    const byStream = new Map<string, string[]>();
    for (const r of records) {
      const ids = byStream.get(r.dlqStream) ?? [];
      ids.push(r.dlqId);
      byStream.set(r.dlqStream, ids);
    }
    for (const [stream, ids] of byStream) {
      for (let i = 0; i < ids.length; i += CHUNK)
        deleted += await redis.xdel(stream, ...ids.slice(i, i + CHUNK));
    }
  }
  return { dryRun, purged: records.map(summarize), deleted, more };
}
