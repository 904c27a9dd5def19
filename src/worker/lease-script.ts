/**
 * The lease script: renew or hand back entries this consumer holds, fenced
 * like the publish script (publish-script.ts): an entry another consumer has
 * taken over is left alone and reported, never claimed back.
 *
 * Renew is `XCLAIM ... 0 ids JUSTID`: it resets the entry's idle time and,
 * with JUSTID, leaves its delivery count alone, so a slow batch never looks
 * crashed and never gains a delivery. Hand-back is the same claim with
 * `IDLE` far in the past (any reclaimer takes it on its next sweep) and
 * `RETRYCOUNT` one less than the count it came with, so the next consumer's
 * claim brings it back to that count: handing back is not a delivery.
 */
import type { Redis } from 'ioredis';

export const LEASE_LUA = `
-- lease: renew or hand back held entries of one request stream
-- KEYS[1] request stream
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] mode: 'renew' | 'handback'   ARGV[4] idle ms (handback)
-- then per entry: id, and for handback its RETRYCOUNT
-- Reply: the ids that are no longer ours (acked, or taken over by another consumer)
local stream, group, consumer, mode, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local step = mode == 'handback' and 2 or 1
local lost, owned = {}, {}
for i = 5, #ARGV, step do
  local id = ARGV[i]
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) == 0 then
    lost[#lost + 1] = id
  elseif mode == 'handback' then
    redis.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', idle, 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
  else
    owned[#owned + 1] = id
  end
end
-- One XCLAIM per 100 ids; JUSTID keeps the delivery count.
for i = 1, #owned, 100 do
  local claim = {'XCLAIM', stream, group, consumer, 0}
  for j = i, math.min(i + 99, #owned) do claim[#claim + 1] = owned[j] end
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return lost
`;

interface WithLease {
  lease(...args: (string | number)[]): Promise<string[]>;
}

export function defineLease(redis: Redis): void {
  if (!('lease' in redis)) redis.defineCommand('lease', { numberOfKeys: 1, lua: LEASE_LUA });
}

/** Reset the idle time of entries we still own; returns those we no longer own. */
export function renewLeases(
  redis: Redis,
  call: LeaseCall & { ids: readonly string[] },
): Promise<string[]> {
  return lease(redis, call, 'renew', 0, call.ids);
}

/** Make entries we own reclaimable at once, keeping their delivery counts. */
export function handBack(
  redis: Redis,
  call: LeaseCall & {
    idleMs: number;
    entries: ReadonlyArray<{ id: string; deliveries: number }>;
  },
): Promise<string[]> {
  const args = call.entries.flatMap((e) => [e.id, Math.max(0, e.deliveries - 1)]);
  return lease(redis, call, 'handback', call.idleMs, args);
}

interface LeaseCall {
  stream: string;
  group: string;
  consumer: string;
}

function lease(
  redis: Redis,
  c: LeaseCall,
  mode: 'renew' | 'handback',
  idleMs: number,
  args: ReadonlyArray<string | number>,
): Promise<string[]> {
  return (redis as unknown as WithLease).lease(
    c.stream,
    c.group,
    c.consumer,
    mode,
    idleMs,
    ...args,
  );
}
