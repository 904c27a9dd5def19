/**
 * The one Lua script: for each entry of a group, write its result (and, for
 * failures, its DLQ record), count it in the source's progress hash, and
 * XACK -- all only if this consumer still owns the entry in the pending list.
 * That ownership check is the lease fence of guarantee 2: a worker whose entry
 * was reclaimed by another cannot also publish it. Everything else stays in
 * TypeScript.
 *
 * A group is sent as one call rather than one EVALSHA per entry because, with
 * a fast model, building commands is most of the worker's main-thread CPU.
 * Entries are still handled one by one inside the script, each with its own
 * fence and its own reply, exactly as if each were its own call.
 */
import type { ChainableCommander, Redis } from 'ioredis';

import { type Packable, packRecords } from './publish-records.js';

export const PUBLISH_AND_ACK_LUA = `
-- publish-and-ack, for a group of entries
-- KEYS: every stream and hash the entries touch, each once
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] result MAXLEN (0 = none)   ARGV[4] now (epoch ms)
-- ARGV[5] the entries, one msgpack array of records, one record per entry:
--   {request stream key index, result stream key index, DLQ stream key index (0 = none),
--    progress hash key index (0 = none), bulk backlog list key index (0 = none: not a
--    per-source bulk entry), request entry id, progress field to increment ('' = none),
--    {result field, value, ...}, {DLQ record field, value, ...} (empty: no DLQ record)}
-- Reply: one reply per entry, in order: {1, result id} written and acked;
--        {0} pending under another consumer (taken over; nothing written);
--        {2} not pending at all (acked already: by us, if this is a resend, or earlier in
--            this call; nothing written);
--        {-1, error} the result stream is unusable: WRONGTYPE (nothing written);
--        {-2, error} its DLQ stream or progress hash is not a stream / hash (nothing written);
--        {-3, error} Redis refused the write (e.g. OOM at maxmemory): nothing written, and
--        the call stops there (the entries after it get no reply: retry them all later)
local group, consumer, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local records = cmsgpack.unpack(ARGV[5])

-- A key another program made into something else would fail this call halfway. Entries
-- of a call share their DLQ and progress keys: each key's type is read once per call.
local checked = {}
local function wrong(key, kind)
  if checked[key] == nil then
    local t = redis.call('TYPE', key).ok
    checked[key] = t ~= 'none' and t ~= kind
  end
  return checked[key]
end

-- What every written entry adds besides its result, done once per key at the end of the
-- call: one XACK per request stream, one HINCRBY per progress field, one LPOP per backlog.
-- The script is atomic, so no one sees an entry written and not yet acked.
local acks, counts, pops, done = {}, {}, {}, {}
local function later(tbl, key)
  local t = tbl[key]
  if t == nil then t = {}; tbl[key] = t end
  return t
end

local function publish(r)
  local request, result = KEYS[r[1]], KEYS[r[2]]
  local dlq, progress, backlog = KEYS[r[3]], KEYS[r[4]], KEYS[r[5]]
  local id, field, fields, dlqFields = r[6], r[7], r[8], r[9]
  -- An entry twice in one call: its first record acks it (later), so the second is {2}.
  if done[request .. ' ' .. id] then return {2} end
  if #redis.call('XPENDING', request, group, id, id, 1, consumer) == 0 then
    if #redis.call('XPENDING', request, group, id, id, 1) == 0 then return {2} end
    return {0}
  end
  if #dlqFields > 0 and wrong(dlq, 'stream') then return {-2, 'WRONGTYPE dead-letter key ' .. dlq} end
  if field ~= '' and wrong(progress, 'hash') then
    return {-2, 'WRONGTYPE progress key ' .. progress}
  end
  local written
  if maxlen ~= '0' then
    written = redis.pcall('XADD', result, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  else
    written = redis.pcall('XADD', result, '*', unpack(fields))
  end
  if type(written) == 'table' and written.err then
    -- Only a key of the wrong type is the reply stream's fault. Anything else (OOM: Redis
    -- refuses a script's first write at maxmemory) is Redis' state: stop, retry later.
    if string.sub(written.err, 1, 9) == 'WRONGTYPE' then return {-1, written.err} end
    return {-3, written.err}, true
  end
  if #dlqFields > 0 then redis.call('XADD', dlq, '*', unpack(dlqFields)) end
  done[request .. ' ' .. id] = true
  local ids = later(acks, request)
  ids[#ids + 1] = id
  if field ~= '' then
    local c = later(counts, progress)
    c[field] = (c[field] or 0) + 1
  end
  if backlog then pops[backlog] = (pops[backlog] or 0) + 1 end
  return {1, written}
end

local replies = {}
for i = 1, #records do
  local reply, stop = publish(records[i])
  replies[#replies + 1] = reply
  if stop then break end
end
for request, ids in pairs(acks) do redis.call('XACK', request, group, unpack(ids)) end
for progress, c in pairs(counts) do
  for field, n in pairs(c) do redis.call('HINCRBY', progress, field, n) end
  redis.call('HSET', progress, 'last_done_ms', now)
end
-- An entry's backlog token goes with its XACK (exactly once, like the ack). pcall: a key
-- of the wrong type only blinds the autoscaler, it must not fail the answers.
for backlog, n in pairs(pops) do redis.pcall('LPOP', backlog, n) end
return replies
`;

/**
 * One script call stays short so it never holds Redis up for long: at most
 * this many entries, and no more than about this many bytes of arguments
 * (an entry bigger than that still goes, alone).
 */
export const MAX_ENTRIES_PER_CALL = 64;
export const MAX_BYTES_PER_CALL = 1 << 20;

/** What is the same for every entry of a group. */
export interface PublishCall {
  group: string;
  consumer: string;
  resultsMaxLen: number;
}

export interface PublishEntry {
  requestStream: string;
  entryId: string;
  resultStream: string;
  resultFields: (string | Buffer)[];
  progress?: { key: string; field: 'done' | 'failed' | 'deduped' };
  dlq?: { stream: string; fields: (string | Buffer)[] };
  /** A per-source bulk entry: its model's backlog list (`Keys.bulkBacklog`), popped with the XACK. */
  backlog?: string;
}

export type PublishReply = [1, string] | [0] | [2] | [-1, string] | [-2, string] | [-3, string];

interface WithPublish {
  publishAndAck(...args: (string | Buffer)[]): Promise<PublishReply[]>;
}

/** Register the script on a connection (ioredis uses EVALSHA, falling back to EVAL after a restart). */
export function definePublish(redis: Redis): void {
  if (!('publishAndAck' in redis)) {
    // No numberOfKeys: each call passes its own key count first.
    redis.defineCommand('publishAndAck', { lua: PUBLISH_AND_ACK_LUA });
  }
}

/**
 * Queue the entries on the pipeline as one script call, or several when they
 * exceed one call's limits. Each call replies with an array of per-entry
 * replies, in order, possibly cut short by a {-3} (Redis refused a write);
 * returns how many entries each call carries, to line the replies up.
 */
export function queuePublish(
  pipeline: ChainableCommander,
  call: PublishCall,
  entries: PublishEntry[],
): number[] {
  const sizes: number[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const size = argBytes(entries[i] as PublishEntry);
    if (i > start && (i - start === MAX_ENTRIES_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)) {
      queueCall(pipeline, call, entries.slice(start, i));
      sizes.push(i - start);
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (start < entries.length) {
    queueCall(pipeline, call, entries.slice(start));
    sizes.push(entries.length - start);
  }
  return sizes;
}

function queueCall(pipeline: ChainableCommander, call: PublishCall, entries: PublishEntry[]): void {
  const keyIndex = new Map<string, number>();
  const index = (key: string): number => {
    let at = keyIndex.get(key);
    if (at === undefined) {
      at = keyIndex.size + 1;
      keyIndex.set(key, at);
    }
    return at;
  };
  // One packed argument for all the entries: ioredis writes each argument of a command
  // on its own (a length header, a string or buffer copy), and with ~25 per entry that was
  // most of the writer's CPU.
  const records = entries.map((e): Packable[] => [
    index(e.requestStream),
    index(e.resultStream),
    e.dlq ? index(e.dlq.stream) : 0,
    e.progress ? index(e.progress.key) : 0,
    e.backlog ? index(e.backlog) : 0,
    e.entryId,
    e.progress?.field ?? '',
    e.resultFields,
    e.dlq?.fields ?? [],
  ]);
  (pipeline as unknown as WithPublish).publishAndAck(
    String(keyIndex.size),
    ...keyIndex.keys(),
    call.group,
    call.consumer,
    String(call.resultsMaxLen),
    String(Date.now()),
    packRecords(records),
  );
}

/** Roughly what an entry adds to a call (string length stands in for its UTF-8 size). */
function argBytes(e: PublishEntry): number {
  let n = e.entryId.length;
  for (const f of e.resultFields) n += f.length;
  for (const f of e.dlq?.fields ?? []) n += f.length;
  return n;
}
