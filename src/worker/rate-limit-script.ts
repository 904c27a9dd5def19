/**
 * The fleet-wide rate limit of a remote model: one Lua script that every
 * worker calls before a provider request, so 20 pods on one key never send
 * more together than the model's `rpm` / `tpm` (docs/design.md, "Remote
 * models").
 *
 * Two token buckets in one hash (requests and tokens), on Redis's clock
 * (`TIME`), so the pods' clocks do not matter. A bucket holds at most a
 * second's worth (`ceil(limit / 60)`, the burst) and refills at
 * `(limit - burst)` per minute: any 60 s window then sees at most
 * `burst + (limit - burst) = limit`, for 1/60 of the limit in sustained
 * throughput. A request estimated at more tokens than the bucket holds goes
 * once the bucket is full and leaves it in debt (else it could never go).
 * `settle` puts the difference between the estimate and the provider's
 * `usage` back; `cool` records a Retry-After for everyone; the daily token
 * budget is a counter per UTC day checked in the same call.
 */
import type { Redis } from 'ioredis';

export const RATE_LIMIT_LUA = `
-- rate limit: fleet-wide request/token buckets, cooldown and daily budget of one remote model
-- KEYS[1] bucket hash (fields rl, tl: levels; ts: last refill ms)
-- KEYS[2] cooldown string (PX = the provider's Retry-After)
-- KEYS[3] tokens spent today (string counter)
-- ARGV[1] mode: 'take' | 'settle' | 'cool'
-- take:   ARGV[2] rpm (0 = none) ARGV[3] tpm (0 = none) ARGV[4] tokens ARGV[5] budget/day (0 = none)
-- settle: ARGV[2] rpm ARGV[3] tpm ARGV[4] token delta (usage - estimate) ARGV[5] budget/day
-- cool:   ARGV[2] ms
-- Reply: {granted 0|1, wait ms, reason: '' | 'cooldown' | 'budget' | 'rpm' | 'tpm', Redis time ms}
local mode = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local DAY = 86400000
if mode == 'cool' then
  local ms = tonumber(ARGV[2])
  if redis.call('PTTL', KEYS[2]) < ms then redis.call('SET', KEYS[2], now + ms, 'PX', ms) end
  return {1, 0, '', now}
end
local rpm, tpm, tokens, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function burst(limit) return math.ceil(limit / 60) end
local function rate(limit) return math.max(limit - burst(limit), 1) / 60000 end
local b = redis.call('HMGET', KEYS[1], 'rl', 'tl', 'ts')
local ts = tonumber(b[3]) or now
local rl = math.min(burst(rpm), (tonumber(b[1]) or burst(rpm)) + (now - ts) * rate(rpm))
local tl = math.min(burst(tpm), (tonumber(b[2]) or burst(tpm)) + (now - ts) * rate(tpm))
local function save()
  redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'tl', tostring(tl), 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
end
local function spend(n)
  if budget > 0 and n ~= 0 then
    redis.call('INCRBY', KEYS[3], n)
    redis.call('PEXPIRE', KEYS[3], 2 * DAY)
  end
end
if mode == 'settle' then
  if tpm > 0 then tl = math.min(burst(tpm), tl - tokens) end
  save()
  spend(tokens)
  return {1, 0, '', now}
end
local cooling = redis.call('PTTL', KEYS[2])
if cooling > 0 then return {0, cooling, 'cooldown', now} end
if budget > 0 and (tonumber(redis.call('GET', KEYS[3])) or 0) >= budget then
  return {0, DAY - now % DAY, 'budget', now}
end
local wait, reason = 0, ''
if rpm > 0 and rl < 1 then wait, reason = (1 - rl) / rate(rpm), 'rpm' end
if tpm > 0 then
  local need = math.min(tokens, burst(tpm))
  if tl < need and (need - tl) / rate(tpm) > wait then wait, reason = (need - tl) / rate(tpm), 'tpm' end
end
if wait > 0 then return {0, math.ceil(wait), reason, now} end
if rpm > 0 then rl = rl - 1 end
if tpm > 0 then tl = tl - tokens end
save()
spend(tokens)
return {1, 0, '', now}
`;

export type LimitReason = '' | 'cooldown' | 'budget' | 'rpm' | 'tpm';

export interface LimitKeys {
  bucket: string;
  cooldown: string;
  /** The counter of the current UTC day (keys.tokenBudget(model, day)). */
  budget: string;
}

export interface Limits {
  rpm?: number | undefined;
  tpm?: number | undefined;
  budgetTokensPerDay?: number | undefined;
}

interface WithRateLimit {
  rateLimit(...args: (string | number)[]): Promise<[number, number, string, number]>;
}

function define(redis: Redis): WithRateLimit {
  if (!('rateLimit' in redis))
    redis.defineCommand('rateLimit', { numberOfKeys: 3, lua: RATE_LIMIT_LUA });
  return redis as unknown as WithRateLimit;
}

function call(redis: Redis, k: LimitKeys, ...args: (string | number)[]) {
  return define(redis).rateLimit(k.bucket, k.cooldown, k.budget, ...args);
}

/** Ask to send one request of `tokens` (estimated): granted, or how long to wait and why. */
export async function takeSlot(
  redis: Redis,
  k: LimitKeys,
  limits: Limits,
  tokens: number,
): Promise<{ granted: boolean; waitMs: number; reason: LimitReason; atMs: number }> {
  const [granted, waitMs, reason, atMs] = await call(
    redis,
    k,
    'take',
    limits.rpm ?? 0,
    limits.tpm ?? 0,
    Math.max(0, Math.round(tokens)),
    limits.budgetTokensPerDay ?? 0,
  );
  return { granted: granted === 1, waitMs, reason: reason as LimitReason, atMs };
}

/** Reconcile the estimate with the provider's `usage` (delta = actual - estimated). */
export async function settleTokens(
  redis: Redis,
  k: LimitKeys,
  limits: Limits,
  delta: number,
): Promise<void> {
  await call(
    redis,
    k,
    'settle',
    limits.rpm ?? 0,
    limits.tpm ?? 0,
    Math.round(delta),
    limits.budgetTokensPerDay ?? 0,
  );
}

/** A provider said Retry-After: every worker waits it out (kept if a longer one is running). */
export async function coolDown(redis: Redis, k: LimitKeys, ms: number): Promise<void> {
  await call(redis, k, 'cool', Math.max(1, Math.ceil(ms)));
}
