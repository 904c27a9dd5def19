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

export const PUBLISH_AND_ACK_LUA = `
-- publish-and-ack, for a group of entries
-- KEYS: every stream and hash the entries touch, each once
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] result MAXLEN (0 = none)   ARGV[4] now (epoch ms)
-- then one record per entry: request stream key index, result stream key index,
--   DLQ stream key index (0 = none), progress hash key index (0 = none),
--   bulk backlog list key index (0 = none: not a per-source bulk entry), request entry id,
--   progress field to increment ('' = none), n, n result field/value pairs,
--   m, m DLQ record field/value pairs (m = 0: no DLQ record)
-- Reply: one reply per entry, in order: {1, result id} written and acked;
--        {0} pending under another consumer (taken over; nothing written);
--        {2} not pending at all (acked already: by us, if this is a resend; nothing written);
--        {-1, error} the result stream is unusable: WRONGTYPE (nothing written);
--        {-2, error} its DLQ stream or progress hash is not a stream / hash (nothing written);
--        {-3, error} Redis refused the write (e.g. OOM at maxmemory): nothing written, and
--        the call stops there (the entries after it get no reply: retry them all later)
local group, consumer, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

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

-- The entry whose record starts at ARGV[at]: its reply, and where the next record starts.
local function publish(at)
  local request, result = KEYS[tonumber(ARGV[at])], KEYS[tonumber(ARGV[at + 1])]
  local dlq, progress = KEYS[tonumber(ARGV[at + 2])], KEYS[tonumber(ARGV[at + 3])]
  local backlog = KEYS[tonumber(ARGV[at + 4])]
  local id, field, n = ARGV[at + 5], ARGV[at + 6], tonumber(ARGV[at + 7])
  local m = tonumber(ARGV[at + 8 + 2 * n])
  local after = at + 9 + 2 * n + 2 * m
  if #redis.call('XPENDING', request, group, id, id, 1, consumer) == 0 then
    if #redis.call('XPENDING', request, group, id, id, 1) == 0 then return {2}, after end
    return {0}, after
  end
  if m > 0 and wrong(dlq, 'stream') then return {-2, 'WRONGTYPE dead-letter key ' .. dlq}, after end
  if field ~= '' and wrong(progress, 'hash') then
    return {-2, 'WRONGTYPE progress key ' .. progress}, after
  end
  local add = {'XADD', result}
  if maxlen ~= '0' then
    add[#add + 1] = 'MAXLEN'; add[#add + 1] = '~'; add[#add + 1] = maxlen
  end
  add[#add + 1] = '*'
  for i = at + 8, at + 7 + 2 * n do add[#add + 1] = ARGV[i] end
  local written = redis.pcall(unpack(add))
  if type(written) == 'table' and written.err then
    -- Only a key of the wrong type is the reply stream's fault. Anything else (OOM: Redis
    -- refuses a script's first write at maxmemory) is Redis' state: stop, retry later.
    if string.sub(written.err, 1, 9) == 'WRONGTYPE' then return {-1, written.err}, after end
    return {-3, written.err}, nil
  end
  if m > 0 then
    local record = {'XADD', dlq, '*'}
    for i = at + 9 + 2 * n, after - 1 do record[#record + 1] = ARGV[i] end
    redis.call(unpack(record))
  end
  if field ~= '' then
    redis.call('HINCRBY', progress, field, 1)
    redis.call('HSET', progress, 'last_done_ms', now)
  end
  redis.call('XACK', request, group, id)
  -- The entry's backlog token goes with its XACK (exactly once, like the ack). pcall: a
  -- key of the wrong type only blinds the autoscaler, it must not fail the answer.
  if backlog then redis.pcall('LPOP', backlog) end
  return {1, written}, after
end

local replies, at = {}, 5
while at and at <= #ARGV do
  local reply
  reply, at = publish(at)
  replies[#replies + 1] = reply
end
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
  const keyIndex = new Map<string, string>();
  const index = (key: string): string => {
    let at = keyIndex.get(key);
    if (at === undefined) {
      at = String(keyIndex.size + 1);
      keyIndex.set(key, at);
    }
    return at;
  };
  const argv: (string | Buffer)[] = [
    call.group,
    call.consumer,
    String(call.resultsMaxLen),
    String(Date.now()),
  ];
  for (const e of entries) {
    argv.push(
      index(e.requestStream),
      index(e.resultStream),
      e.dlq ? index(e.dlq.stream) : '0',
      e.progress ? index(e.progress.key) : '0',
      e.backlog ? index(e.backlog) : '0',
      e.entryId,
      e.progress?.field ?? '',
      String(e.resultFields.length / 2),
      ...e.resultFields,
      String((e.dlq?.fields.length ?? 0) / 2),
      ...(e.dlq?.fields ?? []),
    );
  }
  (pipeline as unknown as WithPublish).publishAndAck(
    String(keyIndex.size),
    ...keyIndex.keys(),
    ...argv,
  );
}

/** Roughly what an entry adds to a call (string length stands in for its UTF-8 size). */
function argBytes(e: PublishEntry): number {
  let n = e.entryId.length;
  for (const f of e.resultFields) n += f.length;
  for (const f of e.dlq?.fields ?? []) n += f.length;
  return n;
}
