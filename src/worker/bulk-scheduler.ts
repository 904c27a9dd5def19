/**
 * Per-source fairness in the bulk lane (docs/design.md, "Fair bulk"). Every
 * source has its own bulk stream; a ZSET holds the sources with backlog
 * scored by virtual time, and one short Lua script picks the lowest,
 * reads from its stream, advances its score by count / weight and drops it
 * when it runs dry -- atomically, so the producer's XADD + ZADD (one MULTI in
 * the SDK) can never leave an entry outside the schedule. A read costs
 * O(log n) in the number of sources; the O(n) walks (reclaim, trim, heal,
 * status) run on timers or on demand.
 */
import type { Redis } from 'ioredis';

import { type Keys, PLAIN_BULK_MEMBER } from '../keys.js';
import type { Delivery } from './answer.js';
import { toDeliveries } from './streams.js';

/**
 * Start-time fair queuing over streams:
 * - A source's score is the virtual time at which it is next served. Reading
 *   c entries from it adds c / weight, so over any stretch where two sources
 *   both have backlog their entry counts follow their weights.
 * - The clock is the score of the last pick. A source joining (producers
 *   ZADD NX with score -1) is placed at max(its tag from when it last ran dry,
 *   clock): it neither jumps ahead of sources that waited nor banks the time
 *   it was idle.
 * - When a stream gives fewer entries than asked it has nothing undelivered
 *   left: the source leaves the ZSET in the same script, and its tag goes to
 *   the idle ZSET. A producer adding after that re-adds the source in the
 *   same MULTI as its XADD, so nothing is stranded.
 * - The plain bulk stream (member '*') has producers that never ZADD (e.g.
 *   redis-cli): each call puts it back in the rotation (at max(tag, clock))
 *   if it is not there, so it is read in its turn; when empty that costs one
 *   empty XREADGROUP per turn and, having read nothing, it gains no credit.
 * - A source whose stream has no group yet gets one at 0 (its first entry),
 *   so the fleet's group name is the only one that ever exists on it.
 */
export const BULK_PICK_LUA = `
-- bulk-pick
-- KEYS[1] schedule ZSET (source -> virtual time)   KEYS[2] idle ZSET (tags of sources that ran dry)
-- KEYS[3] clock STRING   KEYS[4] weights HASH (source -> weight, default 1)   KEYS[5] plain bulk stream
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] most entries to read   ARGV[4] most sources to visit
-- ARGV[5] per-source stream key prefix ('{p}:req:{model}:bulk:')
-- Reply: {more, stream, entries, stream, entries, ...}: more = 1 when the visit limit ended the
--        call with sources left; entries as XREADGROUP gives them ({id, {field, value, ...}} ...)
-- Per-source stream keys are built here from member names instead of being passed in KEYS:
-- fine in a single Redis (the contract's deployment), not in Redis Cluster.
local want = tonumber(ARGV[3])
local start = tonumber(redis.call('GET', KEYS[3]) or '0')
local clock = start
-- Where a source (re)joins: its tag from when it ran dry, or the clock if later.
local function place(source)
  local tag = redis.call('ZSCORE', KEYS[2], source)
  if tag then redis.call('ZREM', KEYS[2], source) end
  return math.max(tonumber(tag or '-1'), clock)
end
-- The plain stream's producers never ZADD: it is always in the rotation, so it is read in turn.
if not redis.call('ZSCORE', KEYS[1], '*') then redis.call('ZADD', KEYS[1], place('*'), '*') end
local out = {0}
local visits = 0
while want > 0 do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then break end
  if visits >= tonumber(ARGV[4]) then out[1] = 1; break end
  visits = visits + 1
  local source, score = head[1], tonumber(head[2])
  if score < clock then
    redis.call('ZADD', KEYS[1], place(source), source)
  else
    clock = score
    local key = KEYS[5]
    if source ~= '*' then key = ARGV[5] .. source end
    local read = {'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', key, '>'}
    local reply = redis.pcall(unpack(read))
    if type(reply) == 'table' and reply.err and string.find(reply.err, 'NOGROUP', 1, true)
      and redis.call('EXISTS', key) == 1 then
      redis.call('XGROUP', 'CREATE', key, ARGV[1], '0')
      reply = redis.pcall(unpack(read))
    end
    local got = 0
    if type(reply) == 'table' and not reply.err then
      got = #reply[1][2]
      out[#out + 1] = key
      out[#out + 1] = reply[1][2]
      local weight = tonumber(redis.call('HGET', KEYS[4], source) or '1') or 1
      if weight <= 0 then weight = 1 end
      score = score + got / weight
    end
    if got < want then
      redis.call('ZREM', KEYS[1], source)
      if score > clock then redis.call('ZADD', KEYS[2], score, source) end
    else
      redis.call('ZADD', KEYS[1], score, source)
    end
    want = want - got
  end
end
if clock ~= start then
  redis.call('SET', KEYS[3], clock)
  -- A tag at or below the clock changes nothing on rejoin: forget it (amortised O(log n)).
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', clock)
end
return out
`;

/** Sources visited per script call at most (bounds the script's run time). */
const MAX_VISITS = 32;

type RawEntry = [Buffer, Buffer[] | null];

interface WithBulkPick {
  bulkPickBuffer(...args: (string | number)[]): Promise<[number, ...unknown[]]>;
}

/** Register the script on a connection (EVALSHA, falling back to EVAL after a restart). */
export function defineBulkPick(redis: Redis): void {
  if (!('bulkPick' in redis)) {
    redis.defineCommand('bulkPick', { numberOfKeys: 5, lua: BULK_PICK_LUA });
  }
}

export interface BulkRead {
  deliveries: Delivery[];
  /** The visit limit ended the call with sources left: read again at once. */
  more: boolean;
}

/** One fair read of up to `count` bulk entries of one model. */
export async function readBulk(
  redis: Redis,
  keys: Keys,
  opts: { model: string; consumer: string; count: number },
): Promise<BulkRead> {
  defineBulkPick(redis);
  const reply = await (redis as unknown as WithBulkPick).bulkPickBuffer(
    keys.bulkSchedule(opts.model),
    keys.bulkIdle(opts.model),
    keys.bulkClock(opts.model),
    keys.bulkWeights(opts.model),
    keys.request(opts.model, 'bulk'),
    keys.group,
    opts.consumer,
    opts.count,
    MAX_VISITS,
    keys.bulkSource(opts.model, ''),
  );
  const deliveries: Delivery[] = [];
  for (let i = 1; i + 1 < reply.length; i += 2) {
    const stream = (reply[i] as Buffer).toString();
    deliveries.push(...toDeliveries(stream, opts.model, reply[i + 1] as RawEntry[], () => 1));
  }
  return { deliveries, more: Number(reply[0]) === 1 };
}

/** Every bulk stream of a model: the plain one and each registered per-source one. O(n). */
export async function bulkStreams(redis: Redis, keys: Keys, model: string): Promise<string[]> {
  const sources = await redis.smembers(keys.bulkSources(model));
  return [keys.request(model, 'bulk'), ...sources.sort().map((s) => keys.bulkSource(model, s))];
}

/**
 * Safety net, on the reclaimer's timer: put back in the schedule any
 * per-source stream that has undelivered entries but is not scheduled (an
 * entry added without the SDK's ZADD, e.g. a DLQ replay or a hand-made XADD).
 * ZADD NX -1 is always safe: a source without backlog just leaves again on
 * its next pick. Returns the sources re-added. O(n) in registered sources.
 */
export async function healSchedule(redis: Redis, keys: Keys, model: string): Promise<string[]> {
  const sources = await redis.smembers(keys.bulkSources(model));
  if (sources.length === 0) return [];
  const p = redis.pipeline();
  for (const s of sources) {
    p.zscore(keys.bulkSchedule(model), s);
    p.xinfo('GROUPS', keys.bulkSource(model, s));
  }
  const replies = (await p.exec()) ?? [];
  const stranded = sources.filter((s, i) => {
    const [, score] = replies[2 * i] ?? [];
    if (score !== null && score !== undefined) return false;
    const [err, groups] = replies[2 * i + 1] ?? [];
    if (err) return false; // no stream (nothing to serve)
    const mine = (groups as unknown[][]).map(toRecord).find((g) => g.name === keys.group);
    // No group yet: the first pick creates it at 0, so everything in the stream is undelivered.
    return !mine || mine.lag !== 0;
  });
  if (stranded.length > 0)
    await redis.zadd(keys.bulkSchedule(model), 'NX', ...stranded.flatMap((s) => [-1, s]));
  return stranded;
}

export interface BulkSourceState {
  /** Source name; `*` is the plain bulk stream. */
  source: string;
  stream: string;
  /** Entries not yet delivered to the group (null: unknown, e.g. entries deleted). */
  lag: number | null;
  /** Delivered, not yet acknowledged. */
  pending: number;
  /** Virtual time in the schedule; null when the source has no backlog (not scheduled). */
  score: number | null;
  weight: number;
}

export interface BulkScheduleState {
  model: string;
  /** The scheduler's virtual clock. */
  clock: number;
  /** Sources with a stream, most backlog first. */
  sources: BulkSourceState[];
}

/**
 * What `streambed status` shows for a model's bulk lane: each source with its
 * backlog, score and weight. O(n) in registered sources (two round trips).
 */
export async function readBulkSchedule(
  redis: Redis,
  keys: Keys,
  model: string,
): Promise<BulkScheduleState> {
  const registered = await redis.smembers(keys.bulkSources(model));
  const members = [PLAIN_BULK_MEMBER, ...registered.sort()];
  const p = redis.pipeline();
  p.get(keys.bulkClock(model));
  p.hgetall(keys.bulkWeights(model));
  for (const m of members) {
    p.zscore(keys.bulkSchedule(model), m);
    p.xinfo('GROUPS', keys.bulkSource(model, m));
    p.xlen(keys.bulkSource(model, m));
  }
  const replies = (await p.exec()) ?? [];
  const weights = (replies[1]?.[1] ?? {}) as Record<string, string>;
  const sources = members.map((source, i): BulkSourceState => {
    const [, score] = replies[2 + 3 * i] ?? [];
    const [err, groups] = replies[3 + 3 * i] ?? [];
    const [, length] = replies[4 + 3 * i] ?? [];
    const mine = err
      ? undefined
      : (groups as unknown[][]).map(toRecord).find((g) => g.name === keys.group);
    const weight = Number(weights[source] ?? 1);
    return {
      source,
      stream: keys.bulkSource(model, source),
      // No group yet: the first pick creates it at 0, so the whole stream is undelivered.
      lag: mine ? (mine.lag === null ? null : Number(mine.lag)) : Number(length ?? 0),
      pending: mine ? Number(mine.pending) : 0,
      score: score === null || score === undefined ? null : Number(score),
      weight: weight > 0 ? weight : 1,
    };
  });
  const backlog = (s: BulkSourceState) => (s.lag ?? 0) + s.pending;
  return {
    model,
    clock: Number(replies[0]?.[1] ?? 0),
    sources: sources
      // The plain stream is always in the rotation: show it only when it has work.
      .filter((s) => s.source !== PLAIN_BULK_MEMBER || backlog(s) > 0)
      .sort((a, b) => backlog(b) - backlog(a) || a.source.localeCompare(b.source)),
  };
}

function toRecord(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}
