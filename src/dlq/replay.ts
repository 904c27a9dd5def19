/**
 * `dlq replay`: re-submit dead-lettered entries, with their original fields
 * untouched, to the request stream they were read from. Each entry moves in
 * one atomic step (a short Lua script): the XADD to the request stream, the
 * XDEL from the DLQ and the record in the replay log happen together or not
 * at all, and only if the DLQ entry still exists, so a crash or two operators
 * replaying at once can neither lose an entry nor submit it twice.
 */
import type { ChainableCommander, Redis } from 'ioredis';

import type { Keys } from '../keys.js';
import { type DlqRecord, type DlqSummary, summarize } from './record.js';
import { type DlqFilter, selectDlq } from './select.js';

export const REPLAY_LUA = `
-- dlq-replay
-- KEYS[1] DLQ stream   KEYS[2] request stream to re-submit to   KEYS[3] replay log stream
-- KEYS[4] progress hash of the entry's source   KEYS[5] the model's bulk schedule ZSET
-- KEYS[6] the model's bulk backlog LIST
-- ARGV[1] DLQ entry id   ARGV[2] '1' to count the replay in KEYS[4] ('replayed'), else '0'
-- ARGV[3] replay log approximate MAXLEN   ARGV[4] n = number of original field/value pairs
-- ARGV[5] the source, when KEYS[2] is its per-source bulk stream ('' otherwise)
-- ARGV[6 .. 5+2n] original field/value pairs; any ARGV after that: replay log field/value pairs
-- Reply: {1, new request entry id} re-submitted, removed from the DLQ and logged;
--        {0} the DLQ entry is gone (replayed or purged meanwhile): nothing done
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return {0} end
local n = tonumber(ARGV[4])
local add = {'XADD', KEYS[2], '*'}
for i = 6, 5 + 2 * n do add[#add + 1] = ARGV[i] end
local rid = redis.call(unpack(add))
-- A per-source entry joins the schedule and the backlog as the SDK's XADD does.
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[5], 'NX', -1, ARGV[5])
  redis.call('RPUSH', KEYS[6], '1')
end
redis.call('XDEL', KEYS[1], ARGV[1])
local log = {'XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*'}
for i = 6 + 2 * n, #ARGV do log[#log + 1] = ARGV[i] end
log[#log + 1] = 'new_rid'; log[#log + 1] = rid
redis.call(unpack(log))
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[4], 'replayed', 1) end
return {1, rid}
`;

/**
 * Reasons a replay cannot cure: the original fields are replayed untouched,
 * so an envelope that was malformed, or aimed its reply at a stream outside
 * REPLY_TO_PATTERN, fails the same way again. Skipped unless forced.
 */
export const HOPELESS_REASONS = ['invalid', 'reply_to_denied'] as const;

/** Replay log entries kept per model (approximate). */
export const REPLAY_LOG_MAXLEN = 100_000;
/** Script calls per pipelined round trip. */
const CHUNK = 200;
/** Sources the worker counts progress for (codec/envelope.ts); others were never counted. */
const COUNTED_SOURCE = /^[A-Za-z0-9._:-]{1,128}$/;

export interface Replayed extends DlqSummary {
  /** The entry's id in the request stream (undefined in a dry run). */
  newId?: string;
}

export interface Skipped extends DlqSummary {
  why: string;
}

export interface ReplayReport {
  dryRun: boolean;
  replayed: Replayed[];
  skipped: Skipped[];
  /** More entries matched beyond --limit. */
  more: boolean;
}

type Reply = [1, string] | [0];

interface WithReplay {
  dlqReplay(...args: (string | Buffer)[]): Promise<Reply>;
}

export async function replayDlq(
  redis: Redis,
  keys: Keys,
  filter: DlqFilter,
  options: { dryRun?: boolean; force?: boolean } = {},
): Promise<ReplayReport> {
  const dryRun = options.dryRun ?? false;
  const { records, more } = await selectDlq(redis, keys, filter);
  const report: ReplayReport = { dryRun, replayed: [], skipped: [], more };
  const todo: DlqRecord[] = [];
  for (const r of records) {
    const why = unreplayable(r, keys) ?? (options.force ? undefined : hopeless(r));
    if (why) report.skipped.push({ ...summarize(r), why });
    else todo.push(r);
  }
  if (dryRun) {
    report.replayed = todo.map(summarize);
    return report;
  }
  if (!('dlqReplay' in redis)) {
    redis.defineCommand('dlqReplay', { numberOfKeys: 6, lua: REPLAY_LUA });
  }
  for (let i = 0; i < todo.length; i += CHUNK) {
    const chunk = todo.slice(i, i + CHUNK);
    const pipeline = redis.pipeline();
    for (const r of chunk) queueReplay(pipeline, keys, r);
    const results = (await pipeline.exec()) ?? [];
    chunk.forEach((r, k) => {
      const [err, reply] = results[k] ?? [new Error('no reply')];
      if (err) throw err;
      const [done, newId] = reply as Reply;
      if (done === 1) report.replayed.push({ ...summarize(r), newId });
      else report.skipped.push({ ...summarize(r), why: 'gone from the DLQ (replayed or purged)' });
    });
  }
  return report;
}

/** Why a record cannot be replayed, or undefined if it can. */
function unreplayable(r: DlqRecord, keys: Keys): string | undefined {
  if (r.reason === undefined || r.stream === undefined)
    return 'not a streambed DLQ record (no reason/stream trailer)';
  // Only back to the model's own request streams: a record cannot aim an XADD elsewhere.
  const ownStream =
    r.stream === keys.request(r.model) ||
    r.stream === keys.request(r.model, 'bulk') ||
    keys.bulkSourceOf(r.stream)?.model === r.model;
  if (!ownStream) return `its stream ${r.stream} is not a request stream of model ${r.model}`;
  if (r.original.length === 0 || r.original.length % 2 !== 0) return 'no original fields';
  return undefined;
}

function hopeless(r: DlqRecord): string | undefined {
  if (!(HOPELESS_REASONS as readonly string[]).includes(r.reason ?? '')) return undefined;
  return `dead-lettered as ${r.reason}: the same fields would fail again (fix the producer; --force replays anyway)`;
}

function queueReplay(pipeline: ChainableCommander, keys: Keys, r: DlqRecord): void {
  const log = [
    'dlq_id',
    r.dlqId,
    'stream',
    r.stream ?? '',
    'rid',
    r.rid ?? '',
    'id',
    r.id ?? '',
    'source',
    r.source ?? '',
    'reason',
    r.reason ?? '',
    'deliveries',
    String(r.deliveries ?? ''),
    'failed_ms',
    String(r.failedMs ?? ''),
    'replayed_ms',
    String(Date.now()),
  ];
  const counted = r.source !== undefined && COUNTED_SOURCE.test(r.source);
  (pipeline as unknown as WithReplay).dlqReplay(
    r.dlqStream,
    r.stream as string,
    keys.dlqReplayed(r.model),
    keys.progress(counted ? (r.source as string) : '_'),
    keys.bulkSchedule(r.model),
    keys.bulkBacklog(r.model),
    r.dlqId,
    counted ? '1' : '0',
    String(REPLAY_LOG_MAXLEN),
    String(r.original.length / 2),
    keys.bulkSourceOf(r.stream as string)?.source ?? '',
    ...r.original,
    ...log,
  );
}
