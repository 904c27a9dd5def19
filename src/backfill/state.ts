/**
 * A backfill job's state lives in Redis, nowhere else, and does not grow
 * with its results: a checkpoint over the ordered input (state.ts keys,
 * docs/design.md "Backfill"). `{p}:backfill:{job}` holds how many input pages
 * were submitted (set in the same MULTI as their XADDs, with the last one's
 * key to notice a changed input), how far the reply stream was read and
 * when the job first ran (`started_ms`, for status);
 * `{p}:backfill:{job}:answered` is a bitmap with bit i set once page i is
 * answered (1 bit a page: 1.25 MB for 10M pages); `{p}:backfill:{job}:failed`
 * lists the dead-lettered pages. Answers come on one reply stream per source
 * (`{p}:reply:{source}/backfill:{job}`, what a source-bound REPLY_TO_PATTERN
 * allows), each with its read position in the hash (`read:{source}`); they
 * only carry the answers not recorded yet, so their retention does not
 * matter past the pages in flight.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { Packr } from 'msgpackr';

import { pageKey } from '../client/client.js';
import { StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true });

export const JOB_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Default job name: the input's base name plus a hash of its absolute path (`docs-1a2b3c4d`). */
export function defaultJobName(input: string): string {
  const abs = path.resolve(input);
  const base = path
    .basename(abs)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 40);
  return `${base || 'corpus'}-${createHash('sha256').update(abs).digest('hex').slice(0, 8)}`;
}

export function checkJobName(job: string): string {
  if (!JOB_NAME.test(job))
    throw new StreambedError('invalid', `job name must be 1-64 chars of [A-Za-z0-9._-]: ${job}`);
  return job;
}

/** One answer on the job's reply stream, reduced to what the job needs. */
export interface Answered {
  key: string;
  status: 'ok' | 'error';
  code?: string;
  message?: string;
}

/** Parse a reply stream entry without decoding its vectors. */
export function parseAnswer(fields: Buffer[]): Answered {
  const f: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2)
    f[(fields[i] as Buffer).toString()] = fields[i + 1] as Buffer;
  const key = pageKey({ source: f.source?.toString() ?? '', id: f.id?.toString() ?? '' });
  if (f.status?.toString() === 'ok') return { key, status: 'ok' };
  const res = f.res ? (unpackr.unpack(f.res) as { code?: string; message?: string }) : {};
  return {
    key,
    status: 'error',
    ...(res.code !== undefined && { code: res.code }),
    ...(res.message !== undefined && { message: res.message }),
  };
}

export interface JobKeys {
  /** The job's reply stream for the pages of one source (what a source-bound REPLY_TO_PATTERN allows). */
  reply(source: string): string;
  /** The one reply stream of a job started by an earlier streambed. */
  legacyReply: string;
  job: string;
  answered: string;
  failed: string;
  /** The submitted set of a job started by streambed <= 0.1. */
  legacySubmitted: string;
}

export function jobKeys(keys: Keys, job: string): JobKeys {
  return {
    reply: (source) => keys.backfillReply(source, job),
    legacyReply: keys.legacyBackfillReply(job),
    job: keys.backfillJob(job),
    answered: keys.backfillAnswered(job),
    failed: keys.backfillFailed(job),
    legacySubmitted: keys.backfillSubmitted(job),
  };
}

export interface Checkpoint {
  /** Input pages 0..submitted-1 were submitted. */
  submitted: number;
  /** Key of page submitted-1, to notice an input that changed under the job. */
  last: string | undefined;
  /** Per reply stream: entries up to `read` are recorded in the bitmap and failed hash. */
  replies: Map<string, ReplyCursor>;
}

/** Where a reply stream's read position is kept in the job hash, and the position. */
export interface ReplyCursor {
  field: string;
  read: string;
}

/** The job hash field of the read position on one source's reply stream. */
export const readField = (source: string) => `${READ_PREFIX}${source}`;
const READ_PREFIX = 'read:';
/** The read position on the reply stream of a job started by an earlier streambed. */
const LEGACY_READ = 'read';

/**
 * A job's reply streams and how far each is recorded, from its hash: one per
 * source it has submitted (a `read:{source}` field, set before its first
 * page is), plus the one stream of an earlier streambed's job, which is
 * followed while its pages may still be answered there (it has a `read`
 * position, or it submitted pages before any source had a field).
 */
export function replyCursors(k: JobKeys, h: Record<string, string>): Map<string, ReplyCursor> {
  const out = new Map<string, ReplyCursor>();
  const sources = Object.keys(h).filter((f) => f.startsWith(READ_PREFIX));
  if (h[LEGACY_READ] !== undefined || (sources.length === 0 && Number(h.submitted ?? 0) > 0))
    out.set(k.legacyReply, { field: LEGACY_READ, read: h[LEGACY_READ] ?? '0-0' });
  for (const field of sources)
    out.set(k.reply(field.slice(READ_PREFIX.length)), { field, read: h[field] ?? '0-0' });
  return out;
}

export async function readCheckpoint(redis: Redis, k: JobKeys, job: string): Promise<Checkpoint> {
  const [h, legacy] = await Promise.all([redis.hgetall(k.job), redis.exists(k.legacySubmitted)]);
  if (legacy && h.submitted === undefined)
    throw new StreambedError(
      'config',
      `job ${job} was started by an earlier streambed (a submitted set): finish it with that ` +
        `version, or start it over with --restart`,
    );
  return { submitted: Number(h.submitted ?? 0), last: h.last, replies: replyCursors(k, h) };
}

/** Forget a job: its checkpoint, bitmap, failures and reply streams. */
export async function forgetJob(redis: Redis, k: JobKeys): Promise<void> {
  const streams = replyCursors(k, await redis.hgetall(k.job)).keys();
  await redis.del(k.legacyReply, ...streams, k.job, k.answered, k.failed, k.legacySubmitted);
}

/** Reads the answered bitmap forward in slices, so a 10M-page job is never held whole. */
export class AnsweredBits {
  private static readonly SLICE = 1 << 16; // bytes: 524,288 pages a read
  private at = -1;
  private bytes: Buffer = Buffer.alloc(0);

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async has(index: number): Promise<boolean> {
    const byte = index >> 3;
    const slice = Math.floor(byte / AnsweredBits.SLICE);
    if (slice !== this.at) {
      const from = slice * AnsweredBits.SLICE;
      this.bytes = await this.redis.getrangeBuffer(this.key, from, from + AnsweredBits.SLICE - 1);
      this.at = slice;
    }
    const b = this.bytes[byte - this.at * AnsweredBits.SLICE] ?? 0;
    return ((b >> (7 - (index & 7))) & 1) === 1;
  }
}

/** How a failure is kept in the failed hash. */
export function failureValue(a: Answered): string {
  return JSON.stringify({ code: a.code, message: a.message });
}

/** The job's dead-lettered pages: how many, and the first `limit` of them. */
export async function readFailures(
  redis: Redis,
  key: string,
  limit: number,
): Promise<{ count: number; first: Answered[] }> {
  const count = await redis.hlen(key);
  const first: Answered[] = [];
  let cursor = '0';
  do {
    const [next, kv] = await redis.hscan(key, cursor, 'COUNT', 500);
    cursor = next;
    for (let i = 0; i + 1 < kv.length && first.length < limit; i += 2) {
      const v = JSON.parse(kv[i + 1] as string) as { code?: string; message?: string };
      first.push({ key: kv[i] as string, status: 'error', ...v });
    }
  } while (cursor !== '0' && first.length < limit);
  return { count, first };
}
