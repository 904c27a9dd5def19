/**
 * What the console shows, refreshed on a timer: one status sample (the same
 * gather and report as `streambed status`) per interval, the report built
 * against the oldest sample of the rate window, and the throughput history.
 * Every page reads the latest result, so ten open tabs cost Redis nothing more.
 */
import type { Redis } from 'ioredis';

import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';
import { gatherSample, type Sample } from '../status/gather.js';
import { FailureTally } from '../status/jobs.js';
import { buildReport, type StatusReport, type Thresholds } from '../status/report.js';
import { Throughput, type ThroughputSeries } from './throughput.js';

/** Rates and ETAs are measured over about this long: steady, yet quick to follow a change. */
const RATE_WINDOW_MS = 15_000;

/** A Redis that accepts commands and does not answer shows as an error after this. */
const SAMPLE_TIMEOUT_MS = 5_000;

/** The thresholds of `streambed status` (its flag defaults), so both call the same thing stale. */
export const CONSOLE_THRESHOLDS: Thresholds = {
  maxPendingAgeMs: 300_000,
  maxDlq: null,
  staleMs: 600_000,
  activeMs: 60_000,
  liveMs: 30_000,
};

export interface ConsoleState {
  report: StatusReport | null;
  throughput: ThroughputSeries | null;
  /** Why the last refresh failed (Redis unreachable...); the report is then the last good one. */
  error: string | null;
}

export class Sampler {
  private readonly history: Sample[] = [];
  private readonly throughput = new Throughput();
  private readonly tally = new FailureTally();
  private state: ConsoleState = { report: null, throughput: null, error: null };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Samples one at a time: the job failure tally reads each answer once. */
  private chain: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  current(): ConsoleState {
    return this.state;
  }

  start(): Promise<void> {
    const tick = () => {
      this.running = this.refresh().finally(() => {
        if (this.running) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    tick();
    return this.running as Promise<void>;
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    clearTimeout(this.timer);
    await running;
  }

  /** Sample now (after a replay or purge, so the page shows its effect at once). */
  refresh(): Promise<void> {
    this.chain = this.chain.then(() => this.sampleOnce());
    return this.chain;
  }

  private async sampleOnce(): Promise<void> {
    try {
      const now = await withTimeout(
        gatherSample(this.redis, { keys: this.keys, pendingSample: 10, tally: this.tally }),
        SAMPLE_TIMEOUT_MS,
      );
      while (
        this.history.length > 1 &&
        now.atMs - (this.history[0] as Sample).atMs > RATE_WINDOW_MS
      )
        this.history.shift();
      const ctx = {
        prefix: this.keys.prefix,
        group: this.keys.group,
        thresholds: CONSOLE_THRESHOLDS,
      };
      const report = buildReport(now, this.history[0], ctx);
      // Oldest first, so each newcomer gets the longest window it has.
      for (const before of this.history.slice(1))
        fillNewRates(report, buildReport(now, before, ctx));
      this.history.push(now);
      this.throughput.add(now);
      this.state = { report, throughput: this.throughput.series(now.atMs), error: null };
      if (this.failing) this.log.info('status readable again');
      this.failing = false;
    } catch (err) {
      const message = (err as Error).message;
      if (!this.failing) this.log.warn({ err: message }, 'status refresh failed; retrying');
      this.failing = true;
      this.state = { ...this.state, error: `status unavailable: ${message}` };
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A source, job or stream that appeared within the rate window has no rate
 * against the window's oldest sample: give it the one against the oldest
 * sample that has it, so a backfill shows its rate and ETA from its second
 * sample, not 15 s later. (A few dozen reports of a few objects each: cheap.)
 */
function fillNewRates(report: StatusReport, recent: StatusReport): void {
  const fill = <T extends { ratePerSec: number | null; etaSec?: number | null }>(
    list: T[],
    from: T[],
    key: (x: T) => string,
  ) => {
    const byKey = new Map(from.map((x) => [key(x), x]));
    for (const x of list) {
      const r = byKey.get(key(x));
      if (x.ratePerSec !== null || !r) continue;
      x.ratePerSec = r.ratePerSec;
      if ('etaSec' in x) x.etaSec = r.etaSec ?? null;
    }
  };
  fill(report.sources, recent.sources, (s) => s.source);
  fill(report.jobs, recent.jobs, (j) => j.job);
  fill(
    report.models.flatMap((m) => m.streams),
    recent.models.flatMap((m) => m.streams),
    (s) => s.stream,
  );
}
