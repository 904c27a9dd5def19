/**
 * The fleet-wide rate-limit script (src/worker/rate-limit-script.ts) on a
 * real Redis: two clients on one key never exceed the limit together, a
 * cooldown set by one holds the other back, tokens are reconciled, and a
 * spent daily budget pauses until midnight UTC.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import {
  coolDown,
  type LimitKeys,
  type Limits,
  settleTokens,
  takeSlot,
} from '../src/worker/rate-limit-script.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const a = redisClient();
const b = redisClient();
const prefix = randomPrefix('ratelimit');
const k = keys(prefix);

function limitKeys(model: string): LimitKeys {
  return {
    bucket: k.rateLimit(model),
    cooldown: k.cooldown(model),
    budget: k.tokenBudget(model, Math.floor(Date.now() / 86_400_000)),
  };
}

afterAll(async () => {
  await deletePrefix(a, prefix);
  a.disconnect();
  b.disconnect();
});

/** Take slots as fast as the script allows until `ms` has passed; returns grant times. */
async function hammer(
  redis: typeof a,
  lk: LimitKeys,
  limits: Limits,
  tokens: number,
  until: number,
): Promise<number[]> {
  const grants: number[] = [];
  while (Date.now() < until) {
    const r = await takeSlot(redis, lk, limits, tokens);
    // Redis's own clock, the one the buckets run on (client timestamps jitter under load).
    if (r.granted) grants.push(r.atMs);
    else await new Promise((res) => setTimeout(res, Math.min(r.waitMs, until - Date.now() + 1)));
  }
  return grants;
}

describe('rate-limit script', () => {
  it('two clients on one key never exceed rpm together (burst + rate x time), and get close to it', async () => {
    const lk = limitKeys('rpm');
    const rpm = 600; // burst 10, then 590 a minute (~9.8/s)
    const start = Date.now();
    const until = start + 3_000;
    const [x, y, z] = await Promise.all([
      hammer(a, lk, { rpm }, 1, until),
      hammer(b, lk, { rpm }, 1, until),
      hammer(b, lk, { rpm }, 1, until),
    ]);
    const all = [...x, ...y, ...z].sort((p, q) => p - q);
    const burst = Math.ceil(rpm / 60);
    const rate = (rpm - burst) / 60_000;
    // Any window of length w holds at most burst + rate x w grants (+1 for clock rounding).
    for (const w of [500, 1_000, 3_000]) {
      let most = 0;
      for (let i = 0, j = 0; i < all.length; i++) {
        while ((all[i] as number) - (all[j] as number) >= w) j++;
        most = Math.max(most, i - j + 1);
      }
      expect(most, `grants in ${w} ms`).toBeLessThanOrEqual(burst + Math.ceil(rate * w) + 1);
    }
    // Both clients got a share, and the pair used most of what the limit allows.
    expect(x.length).toBeGreaterThan(3);
    expect(y.length + z.length).toBeGreaterThan(3);
    expect(all.length).toBeGreaterThanOrEqual(Math.floor(0.6 * (burst + rate * 3_000)));
  });

  it('limits tokens per minute and puts back what usage says the estimate overcounted', async () => {
    const lk = limitKeys('tpm');
    const tpm = 6_000; // burst 100 tokens
    expect((await takeSlot(a, lk, { tpm }, 80)).granted).toBe(true);
    const held = await takeSlot(b, lk, { tpm }, 80);
    expect(held).toMatchObject({ granted: false, reason: 'tpm' });
    expect(held.waitMs).toBeGreaterThan(500);
    // The provider said 10 tokens, not 80: 70 come back and the next request fits at once.
    await settleTokens(a, lk, { tpm }, 10 - 80);
    expect((await takeSlot(b, lk, { tpm }, 80)).granted).toBe(true);
  });

  it('a cooldown set by one client holds every client back until it ends', async () => {
    const lk = limitKeys('cool');
    await coolDown(a, lk, 400);
    const r = await takeSlot(b, lk, { rpm: 6_000 }, 1);
    expect(r).toMatchObject({ granted: false, reason: 'cooldown' });
    expect(r.waitMs).toBeGreaterThan(300);
    expect(r.waitMs).toBeLessThanOrEqual(400);
    // A shorter Retry-After does not cut a longer cooldown short.
    await coolDown(b, lk, 50);
    expect((await takeSlot(a, lk, {}, 1)).reason).toBe('cooldown');
    await new Promise((res) => setTimeout(res, r.waitMs + 20));
    expect((await takeSlot(a, lk, {}, 1)).granted).toBe(true);
  });

  it('a spent daily budget pauses until midnight UTC, fleet-wide', async () => {
    const lk = limitKeys('budget');
    const limits = { budgetTokensPerDay: 100 };
    expect((await takeSlot(a, lk, limits, 60)).granted).toBe(true);
    // Under the budget when asked: it goes (the budget is checked, not reserved).
    expect((await takeSlot(b, lk, limits, 60)).granted).toBe(true);
    const r = await takeSlot(b, lk, limits, 1);
    expect(r).toMatchObject({ granted: false, reason: 'budget' });
    const midnight = (Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000;
    expect(Math.abs(Date.now() + r.waitMs - midnight)).toBeLessThan(2_000);
    expect(Number(await a.get(lk.budget))).toBe(120);
  });
});
