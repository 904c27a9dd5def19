/**
 * Runs a backfill job: plans from the job's state in Redis (state.ts), then
 * submits the pages never sent through the bulk lane with at most
 * `maxInFlight` unanswered at once, following the answers on the job's reply
 * stream. Safe to kill at any point: a page's XADD and its entry in the
 * submitted set are one MULTI, so a re-run never sends an answered or
 * submitted page again, and waits for those still in the fleet.
 */
import type { Redis } from 'ioredis';

import type { StreambedClient } from '../client/client.js';
import { readAfter } from '../client/tail-stream.js';
import type { CorpusPage } from './corpus.js';
import { type Answered, parseAnswer, readAnswered, readSubmitted } from './state.js';

export interface BackfillOptions {
  client: StreambedClient;
  /** A connection for reads (the reply stream is followed on a duplicate of it). */
  redis: Redis;
  model: string;
  job: string;
  pages: readonly CorpusPage[];
  maxInFlight: number;
  /** Wait for every answer (else return once everything is submitted). */
  wait: boolean;
  /** Give up waiting after this long (0 = never). */
  timeoutMs?: number;
  /** Pages per submit call. */
  chunk?: number;
  onPlan?: (plan: BackfillPlan) => void;
  /** One more page of this job answered during this run. */
  onAnswer?: (a: Answered) => void;
}

export interface BackfillPlan {
  total: number;
  /** Answered in an earlier run: skipped. */
  answered: number;
  /** Submitted in an earlier run, not answered yet: waited for, not sent again. */
  waiting: number;
  /** Never sent: submitted now. */
  toSubmit: number;
}

export interface BackfillReport extends BackfillPlan {
  submitted: number;
  /** Pages answered during this run. */
  answeredNow: number;
  /** Pages still unanswered when the run ended (without --wait, or after a timeout). */
  outstanding: number;
  /** Every page of the job whose answer is an error (dead-lettered), earlier runs included. */
  errors: Answered[];
  timedOut: boolean;
}

export async function runBackfill(o: BackfillOptions): Promise<BackfillReport> {
  const { keys } = o.client;
  const replyTo = keys.backfillReply(o.job);
  const submittedSet = keys.backfillSubmitted(o.job);
  const { answered, last } = await readAnswered(o.redis, replyTo);
  const submitted = await readSubmitted(o.redis, submittedSet);
  const ours = new Set(o.pages.map((p) => p.key));
  const errors = [...answered.values()].filter((a) => a.status === 'error' && ours.has(a.key));
  const outstanding = new Set<string>();
  const todo: CorpusPage[] = [];
  let alreadyAnswered = 0;
  for (const p of o.pages) {
    if (answered.has(p.key)) alreadyAnswered++;
    else if (submitted.has(p.key)) outstanding.add(p.key);
    else todo.push(p);
  }
  const plan: BackfillPlan = {
    total: o.pages.length,
    answered: alreadyAnswered,
    waiting: outstanding.size,
    toSubmit: todo.length,
  };
  o.onPlan?.(plan);

  let answeredNow = 0;
  let wake: () => void = () => undefined;
  const follower = new ReplyFollower(o.redis, replyTo, last, (a) => {
    // Only the first answer of a page we are waiting for counts.
    if (!outstanding.delete(a.key)) return;
    answeredNow++;
    if (a.status === 'error') errors.push(a);
    o.onAnswer?.(a);
    wake();
  });
  const changed = () => new Promise<void>((r) => (wake = r));
  const deadline = o.timeoutMs ? Date.now() + o.timeoutMs : Infinity;
  let submittedNow = 0;
  let timedOut = false;
  try {
    const chunk = o.chunk ?? 500;
    for (let at = 0; at < todo.length;) {
      const room = o.maxInFlight - outstanding.size;
      if (room <= 0) {
        await Promise.race([changed(), follower.failed]);
        continue;
      }
      const part = todo.slice(at, at + Math.min(room, chunk));
      const pages = await Promise.all(part.map((p) => p.load()));
      // Counted as outstanding before the XADD: an answer can land before submit() returns.
      for (const p of part) outstanding.add(p.key);
      await o.client.submit(pages, { model: o.model, lane: 'bulk', replyTo, submittedSet });
      submittedNow += part.length;
      at += part.length;
    }
    while (o.wait && outstanding.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        timedOut = true;
        break;
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        changed(),
        follower.failed,
        new Promise((r) => (timer = setTimeout(r, Math.min(left, 1_000)))),
      ]);
      clearTimeout(timer);
    }
  } finally {
    await follower.close();
  }
  return {
    ...plan,
    submitted: submittedNow,
    answeredNow,
    outstanding: outstanding.size,
    errors,
    timedOut,
  };
}

/** Follows the job's reply stream from `last` on its own blocking connection. */
class ReplyFollower {
  private closed = false;
  private readonly conn: Redis;
  private readonly loop: Promise<void>;
  /** Rejects if following fails for good (never resolves otherwise). */
  readonly failed: Promise<never>;
  private fail: (err: Error) => void = () => undefined;

  constructor(
    redis: Redis,
    private readonly stream: string,
    private last: string,
    private readonly onAnswer: (a: Answered) => void,
  ) {
    this.conn = redis.duplicate();
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const entries = await readAfter(this.conn, this.stream, this.last);
        failures = 0;
        for (const [id, fields] of entries) {
          this.last = id;
          this.onAnswer(parseAnswer(fields));
        }
      } catch (err) {
        if (this.closed) return;
        if (++failures > 20) {
          this.fail(err as Error);
          return;
        }
        await new Promise((r) => setTimeout(r, 250 * failures));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // Ends a blocked XREAD at once; the loop sees `closed` and returns.
    this.conn.disconnect();
    await this.loop;
  }
}
