/**
 * Waits for a remote model's fleet-wide permission to send a request
 * (rate-limit-script.ts): the cooldown another worker's 429 set, the daily
 * budget, then the rpm/tpm buckets. Waiting here is not compute: the batch
 * has not started (BatchRun.startedAt stays undefined), so BATCH_TIMEOUT_MS
 * does not run, and its entries' leases are renewed as for any held entry.
 */
import type { Redis } from 'ioredis';

import { StreambedError } from '../../errors.js';
import type { Keys } from '../../keys.js';
import {
  coolDown,
  type LimitKeys,
  type LimitReason,
  type Limits,
  settleTokens,
  takeSlot,
} from '../rate-limit-script.js';

const DAY_MS = 86_400_000;
/** Longest nap between asks, so a stop (or a budget raised by hand) is noticed. */
const MAX_NAP_MS = 5_000;

export interface LimiterState {
  /** Epoch ms until which the fleet waits out a provider's Retry-After (0: none seen). */
  cooldownUntil: number;
  /** Epoch ms until which the daily budget is spent (0: not spent). */
  pausedUntil: number;
  /** Tokens left today under `budgetTokensPerDay` (undefined: no budget). */
  budgetLeft: number | undefined;
}

export class FleetLimiter {
  private readonly stopped = new AbortController();
  private readonly state: LimiterState = {
    cooldownUntil: 0,
    pausedUntil: 0,
    budgetLeft: undefined,
  };
  /** Limits that need no Redis call at all (no rpm, tpm or budget). */
  private readonly unlimited: boolean;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly model: string,
    private readonly limits: Limits,
    private readonly onWait: (reason: LimitReason, ms: number) => void,
  ) {
    this.unlimited = !limits.rpm && !limits.tpm && !limits.budgetTokensPerDay;
  }

  /** Resolves once this request of `tokens` (estimated) may go; the cooldown is checked even without limits. */
  async acquire(tokens: number): Promise<void> {
    for (;;) {
      if (this.stopped.signal.aborted) throw new StreambedError('shutting_down', 'worker stopping');
      const { granted, waitMs, reason } = await this.ask(() =>
        takeSlot(this.redis, this.limitKeys(), this.limits, tokens),
      );
      if (granted) {
        this.state.pausedUntil = 0;
        return;
      }
      if (reason === 'budget') this.state.pausedUntil = Date.now() + waitMs;
      if (reason === 'cooldown')
        this.state.cooldownUntil = Math.max(this.state.cooldownUntil, Date.now() + waitMs);
      // A few ms of jitter so the fleet's waiters do not all ask in the same millisecond.
      const nap = Math.min(MAX_NAP_MS, waitMs) + Math.floor(Math.random() * 10);
      this.onWait(reason, nap);
      await sleep(nap, this.stopped.signal);
    }
  }

  /** Put back (or take more of) what the estimate got wrong, once `usage` says. */
  async settle(delta: number): Promise<void> {
    if (this.unlimited || delta === 0) return;
    await this.ask(() => settleTokens(this.redis, this.limitKeys(), this.limits, delta));
  }

  /** A Retry-After from the provider: every worker of the fleet waits it out. */
  async coolDown(ms: number): Promise<void> {
    this.state.cooldownUntil = Math.max(this.state.cooldownUntil, Date.now() + ms);
    await this.ask(() => coolDown(this.redis, this.limitKeys(), ms));
  }

  /** For metrics and status: read from Redis (cooldown, budget left). */
  async read(): Promise<LimiterState> {
    const k = this.limitKeys();
    const [until, spent] = await this.redis.mget(k.cooldown, k.budget);
    this.state.cooldownUntil = Number(until ?? 0);
    const budget = this.limits.budgetTokensPerDay;
    this.state.budgetLeft =
      budget === undefined ? undefined : Math.max(0, budget - Number(spent ?? 0));
    if (this.state.budgetLeft === 0 && this.state.pausedUntil === 0)
      this.state.pausedUntil = (Math.floor(Date.now() / DAY_MS) + 1) * DAY_MS;
    if (this.state.budgetLeft !== 0) this.state.pausedUntil = 0;
    return { ...this.state };
  }

  /** What this process last saw, without a Redis call (readiness). */
  seen(): LimiterState {
    return { ...this.state };
  }

  /** Ends every wait at once (their batches fail `shutting_down`: the entries stay held for hand-back). */
  stop(): void {
    this.stopped.abort();
  }

  private limitKeys(): LimitKeys {
    return {
      bucket: this.keys.rateLimit(this.model),
      cooldown: this.keys.cooldown(this.model),
      budget: this.keys.tokenBudget(this.model, Math.floor(Date.now() / DAY_MS)),
    };
  }

  private async ask<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StreambedError('redis_unavailable', `rate limit: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
