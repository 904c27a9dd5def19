/**
 * The one Lua script: write an entry's result (and, for failures, its DLQ
 * record), count it in the source's progress hash, and XACK -- all only if
 * this consumer still owns the entry in the pending list. That ownership
 * check is the lease fence of guarantee 2: a worker whose entry was reclaimed
 * by another cannot also publish it. Everything else stays in TypeScript.
 */
import type { ChainableCommander, Redis } from 'ioredis';

export const PUBLISH_AND_ACK_LUA = `
-- publish-and-ack
-- KEYS[1] request stream   KEYS[2] result stream   KEYS[3] DLQ stream   KEYS[4] progress hash
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] request entry id   ARGV[4] result MAXLEN (0 = none)
-- ARGV[5] progress field to increment ('' = none)   ARGV[6] now (epoch ms)
-- ARGV[7] n = number of result fields; ARGV[8 .. 7+2n] result field/value pairs;
--         any ARGV after that: DLQ record field/value pairs (none = no DLQ record)
-- Reply: {1, result id} written and acked; {0} not owned by this consumer (nothing written);
--        {-1, error} the result stream is unusable, e.g. WRONGTYPE (nothing written)
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return {0} end
local n = tonumber(ARGV[7])
local add = {'XADD', KEYS[2]}
if ARGV[4] ~= '0' then
  add[#add + 1] = 'MAXLEN'; add[#add + 1] = '~'; add[#add + 1] = ARGV[4]
end
add[#add + 1] = '*'
for i = 8, 7 + 2 * n do add[#add + 1] = ARGV[i] end
local written = redis.pcall(unpack(add))
if type(written) == 'table' and written.err then return {-1, written.err} end
if #ARGV > 7 + 2 * n then
  local dlq = {'XADD', KEYS[3], '*'}
  for i = 8 + 2 * n, #ARGV do dlq[#dlq + 1] = ARGV[i] end
  redis.call(unpack(dlq))
end
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  redis.call('HSET', KEYS[4], 'last_done_ms', ARGV[6])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return {1, written}
`;

export interface PublishArgs {
  requestStream: string;
  resultStream: string;
  dlqStream: string;
  progressKey: string;
  group: string;
  consumer: string;
  entryId: string;
  resultsMaxLen: number;
  progressField: '' | 'done' | 'failed' | 'deduped';
  resultFields: (string | Buffer)[];
  dlqFields?: (string | Buffer)[];
}

export type PublishReply = [1, string] | [0] | [-1, string];

interface WithPublish {
  publishAndAck(...args: (string | Buffer | number)[]): Promise<PublishReply>;
}

/** Register the script on a connection (ioredis uses EVALSHA, falling back to EVAL after a restart). */
export function definePublish(redis: Redis): void {
  if (!('publishAndAck' in redis)) {
    redis.defineCommand('publishAndAck', { numberOfKeys: 4, lua: PUBLISH_AND_ACK_LUA });
  }
}

export function queuePublish(pipeline: ChainableCommander, a: PublishArgs): void {
  (pipeline as unknown as WithPublish).publishAndAck(
    a.requestStream,
    a.resultStream,
    a.dlqStream,
    a.progressKey,
    a.group,
    a.consumer,
    a.entryId,
    String(a.resultsMaxLen),
    a.progressField,
    String(Date.now()),
    String(a.resultFields.length / 2),
    ...a.resultFields,
    ...(a.dlqFields ?? []),
  );
}
