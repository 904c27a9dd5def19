/**
 * Reads of `streambed backfill` jobs for status. A job is its checkpoint hash
 * and its reply streams, one per source (docs/design.md, "Backfill"), so its
 * numbers come from those alone: submitted = the checkpoint's count, answered
 * = the reply streams' `entries-added` (every answer ever written, trimmed
 * ones included), failed
 * = answers with `status=error`, counted by a short script so vectors never
 * leave Redis, and only over answers not counted by an earlier sample.
 */
import type { ChainableCommander, Redis } from 'ioredis';

import { jobKeys, replyCursors } from '../backfill/state.js';
import type { Keys } from '../keys.js';
import { idTimeMs, type Parser, queueHashNumber, queueStreamInfo } from './redis-reads.js';
import { scanKeys } from './scan.js';

export interface JobSample {
  job: string;
  /** Pages the job has submitted (its checkpoint). */
  submitted: number;
  /** Answers on its reply streams, ever (a DLQ replay adds one more for its page). */
  answered: number;
  /** Of those, error answers (dead-lettered pages); not counted once trimmed away unseen. */
  failed: number;
  /** When the request of the reply streams' first answer was added (its `rid`'s time). */
  firstRequestMs: number | null;
  /** When the last answer was written (its entry id's time). */
  lastAnswerMs: number | null;
}

/** Jobs that have a checkpoint, by SCAN. Job names have no ':' (state.ts JOB_NAME). */
export async function discoverJobs(redis: Redis, keys: Keys): Promise<string[]> {
  // The key around a job name, from keys.ts (a newline never occurs in a key we build).
  const [head, tail] = keys.backfillJob('\n').split('\n') as [string, string];
  const found = await scanKeys(redis, keys.backfillJob('*'), 'hash');
  return found
    .map((k) => k.slice(head.length, k.length - tail.length))
    .filter((j) => j && !j.includes(':'))
    .sort();
}

/** A job's reply streams (one per source, and an earlier streambed's one), from its hash. */
export async function jobReplyStreams(
  redis: Redis,
  keys: Keys,
  jobs: readonly string[],
): Promise<string[][]> {
  const p = redis.pipeline();
  for (const job of jobs) p.hgetall(keys.backfillJob(job));
  const hashes = (await p.exec()) ?? [];
  return jobs.map((job, i) => {
    const [err, h] = hashes[i] ?? [];
    return err ? [] : [...replyCursors(jobKeys(keys, job), h as Record<string, string>).keys()];
  });
}

/** What one reply stream of a job holds, for the failure tally. */
export interface ReplyRead {
  stream: string;
  /** The stream's first entry id, or null. */
  firstId: string | null;
  /** Entries ever added to it. */
  added: number;
}

/** A job's read before its failures are counted. */
export interface JobRead extends Omit<JobSample, 'failed'> {
  replies: ReplyRead[];
  /** Dead-lettered pages the job's runner recorded (its failed hash). */
  recordedFailed: number;
}

export function queueJob(
  p: ChainableCommander,
  keys: Keys,
  job: string,
  streams: readonly string[],
): Parser<JobRead> {
  const submitted = queueHashNumber(p, keys.backfillJob(job), 'submitted');
  const infos = streams.map((stream) => queueStreamInfo(p, stream));
  // The job's own record: it outlives the reply streams (trimmed when status-only, or expired).
  const bits = p.length;
  p.bitcount(keys.backfillAnswered(job));
  p.hlen(keys.backfillFailed(job));
  p.hget(keys.backfillJob(job), 'started_ms');
  return (replies) => {
    const read = infos.map((info) => info(replies));
    const times = (pick: (i: NonNullable<(typeof read)[number]>) => number | null) =>
      read.flatMap((i) => {
        const t = i ? pick(i) : null;
        return t === null ? [] : [t];
      });
    // The record's start when it has one: a status-only job's streams keep only their last answers.
    const started = replies[bits + 2]?.[1];
    const streamStarts = times((i) => {
      const rid = i.firstEntry?.fields.rid;
      return rid ? idTimeMs(rid) : i.firstEntry ? idTimeMs(i.firstEntry.id) : null;
    });
    const lastAnswers = times((i) => (i.lastEntry ? idTimeMs(i.lastEntry.id) : null));
    const added = read.reduce((n, i) => n + (i?.entriesAdded ?? 0), 0);
    return {
      job,
      replies: streams.map((stream, at) => ({
        stream,
        firstId: read[at]?.firstEntry?.id ?? null,
        added: read[at]?.entriesAdded ?? 0,
      })),
      submitted: submitted(replies),
      answered: Math.max(added, Number(replies[bits]?.[1] ?? 0)),
      recordedFailed: Number(replies[bits + 1]?.[1] ?? 0),
      firstRequestMs: started
        ? Number(started)
        : streamStarts.length
          ? Math.min(...streamStarts)
          : null,
      lastAnswerMs: lastAnswers.length ? Math.max(...lastAnswers) : null,
    };
  };
}

/**
 * Counts error answers on a reply stream without sending the answers back.
 * Only the plain `status` field is looked at (docs/design.md, "Result entry").
 */
export const COUNT_ERRORS_LUA = `
-- count-errors
-- KEYS[1] reply stream   ARGV[1] count entries after this id   ARGV[2] most entries to read
-- Reply: {last id read (ARGV[1] when none), entries read, of which status=error}
local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local errors = 0
for _, row in ipairs(rows) do
  local f = row[2]
  for i = 1, #f, 2 do
    if f[i] == 'status' then
      if f[i + 1] == 'error' then errors = errors + 1 end
      break
    end
  end
end
local last = ARGV[1]
if #rows > 0 then last = rows[#rows][1] end
return {last, #rows, errors}
`;

/** Entries per script call: a short call, so Redis is never held for long. */
const CHUNK = 1000;

/**
 * Error counts per reply stream, carried between samples so each sample
 * reads only answers added since the last (a --watch over a 200K-page job
 * reads each answer once). A stream that holds fewer answers than were
 * counted, or none of those counted (its first entry is newer than the last
 * one counted), was restarted (`backfill --restart` deletes it): counted
 * again from the start.
 */
export class FailureTally {
  private readonly seen = new Map<string, { after: string; read: number; failed: number }>();

  async complete(redis: Redis, job: JobRead): Promise<JobSample> {
    const { replies, recordedFailed, ...rest } = job;
    let failed = 0;
    for (const r of replies) failed += await this.tally(redis, r);
    return { ...rest, failed: Math.max(failed, recordedFailed) };
  }

  private async tally(redis: Redis, r: ReplyRead): Promise<number> {
    let t = this.seen.get(r.stream);
    const restarted =
      t && (r.added < t.read || (r.firstId !== null && newerId(r.firstId, t.after)));
    if (!t || restarted) t = { after: '0-0', read: 0, failed: 0 };
    if (r.added > 0) {
      for (;;) {
        // EVAL_RO: the script only reads, so a read-only user (the operator's %R~ keys) may run it.
        const [last, read, failed] = (await redis.call(
          'EVAL_RO',
          COUNT_ERRORS_LUA,
          1,
          r.stream,
          t.after,
          CHUNK,
        )) as [string, number, number];
        t = { after: String(last), read: t.read + Number(read), failed: t.failed + Number(failed) };
        if (Number(read) < CHUNK) break;
      }
    }
    this.seen.set(r.stream, t);
    return t.failed;
  }
}

/** Whether stream entry id `a` comes after `b`. */
function newerId(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am > bm || (am === bm && as > bs);
}
