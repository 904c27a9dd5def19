/**
 * Runs a backfill job over an ordered input (corpus.ts): resumes from the
 * job's checkpoint in Redis (state.ts), then submits the pages never sent
 * through the bulk lane with at most `maxInFlight` unanswered at once,
 * recording the answers on the job's reply streams (one per source) as they come. Safe to kill
 * at any point: the submitted count moves in the same MULTI as the XADDs,
 * so a re-run never sends a page twice, and waits for those still in the
 * fleet. Memory holds the pages in flight, never the corpus.
 */
import type { Redis } from 'ioredis';

import type { StreambedClient } from '../client/client.js';
import { StreambedError } from '../errors.js';
import { backoffMs } from '../redis/connect.js';
import { isOutOfMemory } from '../redis/out-of-memory.js';
import type { Page, ReplyMode } from '../types.js';
import type { CorpusPage } from './corpus.js';
import { ReplyFollower } from './follower.js';
import {
  type Answered,
  AnsweredBits,
  failureValue,
  jobKeys,
  readCheckpoint,
  readFailures,
  readField,
  type ReplyCursor,
} from './state.js';

/** Dead-lettered pages listed in a report at most; the rest are counted. */
export const LIST_ERRORS = 50;

export interface BackfillOptions {
  client: StreambedClient;
  /** A connection for reads (the reply stream is followed on a duplicate of it). */
  redis: Redis;
  model: string;
  job: string;
  /** The input, in the same order on every run. */
  pages: AsyncIterable<CorpusPage>;
  /** Pages in the input (for the plan and progress). */
  total: number;
  maxInFlight: number;
  /** What each answer carries: `status` keeps no vectors in Redis (they went to a sink). */
  reply?: ReplyMode;
  /** Expire the reply stream this long after the last answer recorded (0 = never). */
  replyTtlS?: number;
  /** Wait for every answer (else return once everything is submitted). */
  wait: boolean;
  /** Give up waiting after this long (0 = never). */
  timeoutMs?: number;
  /** Pages per submit call (at most 1,000: one MULTI). */
  chunk?: number;
  onPlan?: (plan: BackfillPlan) => void;
  /** One more page of this job answered during this run. */
  onAnswer?: (a: Answered) => void;
  /** Redis refused a chunk at maxmemory: the job waits for room (called once per wait). */
  onRedisFull?: () => void;
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
  /** Pages of the job whose answer is an error (dead-lettered), earlier runs included. */
  errorCount: number;
  /** The first LIST_ERRORS of them. */
  errors: Answered[];
  timedOut: boolean;
}

export async function runBackfill(o: BackfillOptions): Promise<BackfillReport> {
  const k = jobKeys(o.client.keys, o.job);
  const checkpoint = await readCheckpoint(o.redis, k, o.job);
  await whenRoom(() => o.redis.hsetnx(k.job, 'started_ms', Date.now()), o.onRedisFull);
  const input = o.pages[Symbol.asyncIterator]();
  // Pages submitted and not answered, by key: what answers are matched against.
  const outstanding = new Map<string, number>();
  const bits = new AnsweredBits(o.redis, k.answered);
  for (let i = 0; i < checkpoint.submitted; i++) {
    const next = await input.next();
    const changed =
      next.done || (i === checkpoint.submitted - 1 && next.value.key() !== checkpoint.last);
    if (changed)
      throw new StreambedError(
        'config',
        `the input changed since job ${o.job} submitted its page ${i + 1}: use a new --job, or --restart`,
      );
    if (!(await bits.has(i))) outstanding.set(next.value.key(), i);
  }
  const plan: BackfillPlan = {
    total: o.total,
    answered: checkpoint.submitted - outstanding.size,
    waiting: outstanding.size,
    toSubmit: Math.max(0, o.total - checkpoint.submitted),
  };
  o.onPlan?.(plan);

  let answeredNow = 0;
  let wake: () => void = () => undefined;
  const cursors = checkpoint.replies;
  const record = async (conn: Redis, stream: string, answers: Answered[], lastId: string) => {
    // Only the first answer of a page we wait for counts (a DLQ replay answers again).
    const mine = new Map<string, Answered>();
    for (const a of answers) if (outstanding.has(a.key) && !mine.has(a.key)) mine.set(a.key, a);
    const recorded = await whenRoom(() => {
      const tx = conn.multi();
      for (const a of mine.values()) {
        tx.setbit(k.answered, outstanding.get(a.key) as number, 1);
        if (a.status === 'error') tx.hset(k.failed, a.key, failureValue(a));
      }
      tx.hset(k.job, (cursors.get(stream) as ReplyCursor).field, lastId);
      if (o.replyTtlS) tx.expire(stream, o.replyTtlS);
      // Status answers say nothing the bitmap does not: once recorded, nobody needs them.
      if (o.reply === 'status') tx.xtrim(stream, 'MINID', lastId);
      return tx.exec();
    }, o.onRedisFull);
    if (!recorded) throw new StreambedError('redis_unavailable', 'checkpoint aborted');
    // Released only once recorded: the stream then never holds more unrecorded
    // answers than pages in flight, whatever its MAXLEN.
    for (const a of mine.values()) {
      outstanding.delete(a.key);
      answeredNow++;
      o.onAnswer?.(a);
    }
    wake();
  };
  const follower = new ReplyFollower(
    o.redis,
    new Map([...cursors].map(([stream, c]) => [stream, c.read])),
    record,
  );
  // A source's stream is followed (and its position given a field) before its first page is sent.
  const followSources = async (pages: readonly Page[]) => {
    const fresh = [...new Set(pages.map((p) => p.source))].filter((s) => !cursors.has(k.reply(s)));
    if (fresh.length === 0) return;
    const fields = fresh.flatMap((s) => [readField(s), '0-0']);
    await whenRoom(() => o.redis.hset(k.job, ...fields), o.onRedisFull);
    for (const s of fresh) {
      cursors.set(k.reply(s), { field: readField(s), read: '0-0' });
      follower.follow(k.reply(s));
    }
  };
  const changed = () => new Promise<void>((r) => (wake = r));
  const deadline = o.timeoutMs ? Date.now() + o.timeoutMs : Infinity;
  let submittedNow = 0;
  let timedOut = false;
  try {
    const chunk = Math.min(o.chunk ?? 500, 1000);
    let index = checkpoint.submitted;
    for (let done = false; !done;) {
      const room = o.maxInFlight - outstanding.size;
      if (room <= 0) {
        await Promise.race([changed(), follower.failed]);
        continue;
      }
      const part: CorpusPage[] = [];
      while (part.length < Math.min(room, chunk)) {
        const next = await input.next();
        if (next.done) {
          done = true;
          break;
        }
        part.push(next.value);
      }
      if (part.length === 0) break;
      const pages: Page[] = await Promise.all(part.map((p) => p.load()));
      // Counted as outstanding before the XADD: an answer can land before submit() returns.
      for (const p of part) {
        const key = p.key();
        if (outstanding.has(key))
          throw new StreambedError('invalid', `page ${key} appears twice in the input`);
        outstanding.set(key, p.index);
      }
      await followSources(pages);
      await whenRoom(
        () =>
          o.client.submit(pages, {
            model: o.model,
            lane: 'bulk',
            replyTo: k.reply,
            submittedMark: { hash: k.job, base: index },
            ...(o.reply !== undefined && { reply: o.reply }),
          }),
        o.onRedisFull,
      );
      index += part.length;
      submittedNow += part.length;
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
  const failures = await readFailures(o.redis, k.failed, LIST_ERRORS);
  return {
    ...plan,
    submitted: submittedNow,
    answeredNow,
    outstanding: outstanding.size,
    errorCount: failures.count,
    errors: failures.first,
    timedOut,
  };
}

/**
 * Every write of the job, sent again while Redis at maxmemory refuses it:
 * a MULTI is refused whole (EXECABORT: a chunk's entries and its checkpoint
 * alike), so sending it again is safe, and workers draining the backlog
 * make room. A full Redis slows the job down rather than stopping it.
 */
async function whenRoom<T>(send: () => Promise<T>, onFull?: () => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (!isOutOfMemory(err)) throw err;
      if (attempt === 0) onFull?.();
      await new Promise((r) => setTimeout(r, backoffMs(attempt, 250, 5_000)));
    }
  }
}
