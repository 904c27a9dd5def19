/**
 * Per-key requests-per-minute, fleet-wide: one counter per key and minute in
 * Redis (INCR + EXPIRE in one MULTI), so N gateway replicas share one limit
 * instead of granting N times it. A fixed window lets a key burst up to 2x
 * its rpm across a minute boundary; that is the price of one round trip.
 */
import type { Redis } from 'ioredis';

import type { Keys } from '../keys.js';

export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Count one request; returns the seconds to wait when the key is over its limit, else 0. */
  async take(keyId: string, rpm: number, now = Date.now()): Promise<number> {
    const minute = Math.floor(now / 60_000);
    const key = this.keys.gatewayRate(keyId, minute);
    const res = await this.redis.multi().incr(key).expire(key, 120).exec();
    const count = Number(res?.[0]?.[1] ?? 0);
    if (count <= rpm) return 0;
    return Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000));
  }
}
