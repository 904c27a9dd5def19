/**
 * Safe trimming (guarantee 6): on its own timer, removes acknowledged history
 * from the request streams and nothing else. The bound is computed and
 * applied inside one short Lua script, so no group can appear, rewind or
 * receive entries between reading the bound and trimming to it.
 */
import type { Redis } from 'ioredis';

import type { Logger } from '../log.js';
import { Periodic } from './periodic.js';

/**
 * Why this is safe:
 * - `XTRIM key MINID id` removes exactly the entries with an id < `id`; the
 *   entry at `id` and everything after it stays.
 * - For each group, every entry after its last-delivered-id is undelivered
 *   and every unacknowledged delivered entry is in its pending list, whose
 *   oldest id XPENDING's summary gives. So the minimum, over ALL groups, of
 *   (last-delivered-id, oldest pending id) is at or below every entry some
 *   group has not acknowledged; trimming below it removes only entries every
 *   group has acknowledged. A stream without groups is never trimmed.
 * - The entry at a group's last-delivered-id is kept even when acknowledged:
 *   the stream's first entry then never passes a group's position, so Redis
 *   can keep reporting that group's `lag` (KEDA scales on it).
 * - Exact, not `~`: `~` is just as safe (it only stops earlier, at a node
 *   boundary), but without LIMIT it removes at most 100 nodes' worth of
 *   entries per call, so a busy stream could outgrow a slow timer. Exact costs
 *   only one partially rewritten node more.
 * - Atomic: read in TypeScript, a group created at `0` (or moved back with
 *   XGROUP SETID) between the read and the XTRIM would lose entries it was
 *   about to read. Inside the script nothing interleaves, and entries added
 *   after it get higher ids than any bound it computed.
 */
export const TRIM_ACKED_LUA = `
-- trim-acked
-- KEYS[1] request stream
-- ARGV    none
-- Reply: {removed, minid}: entries removed and the MINID trimmed to;
--        {0, ''} when the stream is missing or has no group (nothing trimmed)
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
-- Stream ids are 'ms-seq' of unsigned decimals without leading zeros: compare length, then text.
local function lessNum(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function less(a, b)
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  local ma, mb = string.sub(a, 1, da - 1), string.sub(b, 1, db - 1)
  if ma ~= mb then return lessNum(ma, mb) end
  return lessNum(string.sub(a, da + 1), string.sub(b, db + 1))
end
local floor = nil
for _, row in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = {}
  for i = 1, #row, 2 do g[row[i]] = row[i + 1] end
  local bound = g['last-delivered-id']
  if g['pending'] > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], g['name'])[2]
    if less(oldest, bound) then bound = oldest end
  end
  if floor == nil or less(bound, floor) then floor = bound end
end
if floor == nil then return {0, ''} end
return {redis.call('XTRIM', KEYS[1], 'MINID', floor), floor}
`;

export interface TrimOptions {
  /** Request streams to trim (both lanes of every model served, per-source bulk streams included). */
  streams: readonly string[] | (() => Promise<readonly string[]>);
  /** Milliseconds between passes; 0 = never (start() does nothing). */
  intervalMs: number;
}

export interface TrimReport {
  stream: string;
  /** Entries removed. */
  removed: number;
  /** The MINID trimmed to; undefined when the stream is missing or has no group. */
  minId?: string;
}

interface WithTrim {
  trimAcked(stream: string): Promise<[number, string]>;
}

export class Trimmer {
  private readonly periodic: Periodic;

  constructor(
    private readonly redis: Redis,
    private readonly options: TrimOptions,
    private readonly log: Logger,
  ) {
    if (!('trimAcked' in redis)) {
      redis.defineCommand('trimAcked', { numberOfKeys: 1, lua: TRIM_ACKED_LUA });
    }
    this.periodic = new Periodic(
      options.intervalMs,
      () => this.trimOnce(),
      (err) => log.warn({ err: err.message }, 'trim pass failed'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass over every stream. Every worker may run it; concurrent passes are harmless. */
  async trimOnce(): Promise<TrimReport[]> {
    const reports: TrimReport[] = [];
    const { streams } = this.options;
    for (const stream of typeof streams === 'function' ? await streams() : streams) {
      const [removed, minId] = await (this.redis as unknown as WithTrim).trimAcked(stream);
      const report: TrimReport = { stream, removed: Number(removed), ...(minId && { minId }) };
      reports.push(report);
      if (report.removed > 0) this.log.info(report, 'trimmed acknowledged history');
    }
    return reports;
  }
}
