/**
 * A backfill job's state lives in Redis, nowhere else: its reply stream
 * (`{p}:reply:backfill:{job}`, every answer) and its submitted set
 * (`{p}:backfill:{job}:submitted`, every page whose XADD happened, added in
 * the same MULTI). Reading both tells a re-run what is answered (skip), what
 * is submitted but unanswered (wait for it) and what was never sent.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { Packr } from 'msgpackr';

import { pageKey } from '../client/client.js';
import { StreambedError } from '../errors.js';

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

/** Every answer so far, oldest first, and the id to continue reading after. */
export async function readAnswered(
  redis: Redis,
  stream: string,
): Promise<{ answered: Map<string, Answered>; last: string }> {
  const answered = new Map<string, Answered>();
  let last = '0-0';
  for (;;) {
    const entries = (await redis.xrangeBuffer(stream, `(${last}`, '+', 'COUNT', 2000)) as Array<
      [Buffer, Buffer[]]
    >;
    for (const [id, fields] of entries) {
      last = id.toString();
      const a = parseAnswer(fields);
      // The first answer of a page is its answer (a page has one; this is belt and braces).
      if (!answered.has(a.key)) answered.set(a.key, a);
    }
    if (entries.length < 2000) return { answered, last };
  }
}

/** Keys of every page the job has submitted (SSCAN, so a huge set does not block Redis). */
export async function readSubmitted(redis: Redis, set: string): Promise<Set<string>> {
  const out = new Set<string>();
  let cursor = '0';
  do {
    const [next, members] = await redis.sscan(set, cursor, 'COUNT', 5000);
    cursor = next;
    for (const m of members) out.add(m);
  } while (cursor !== '0');
  return out;
}
