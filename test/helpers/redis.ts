/**
 * Per-file Redis isolation: every test file gets its own random key prefix
 * and deletes its keys afterwards, so files run in parallel on one Redis.
 */
import { randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function randomPrefix(tag = 't'): string {
  return `sbt-${tag}-${randomBytes(4).toString('hex')}`;
}

export function redisClient(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: 3 });
}

export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (found.length) await redis.del(...found);
  } while (cursor !== '0');
}

/** Poll a condition (not a sleep): resolves as soon as it holds, fails with the label after `timeoutMs`. */
export async function until<T>(
  label: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${label}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Group state of a stream as a plain record (XINFO GROUPS). */
export async function groupInfo(
  redis: Redis,
  stream: string,
  group: string,
): Promise<Record<string, unknown> | undefined> {
  const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
  for (const g of groups) {
    const rec: Record<string, unknown> = {};
    for (let i = 0; i + 1 < g.length; i += 2) rec[String(g[i])] = g[i + 1];
    if (rec.name === group) return rec;
  }
  return undefined;
}

/**
 * Every answer on the given result streams: page id (the envelope's `id`;
 * request entry ids repeat across streams) -> the status of each answer it
 * got, so "answered exactly once, ok" is `['ok']`.
 */
export async function answersById(
  redis: Redis,
  streams: readonly string[],
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const stream of streams) {
    for (const [, f] of await redis.xrange(stream, '-', '+')) {
      const id = f[f.indexOf('id') + 1] as string;
      out.set(id, [...(out.get(id) ?? []), f[f.indexOf('status') + 1] as string]);
    }
  }
  return out;
}

/** The pages whose answers are not exactly one `ok`: page id -> statuses (empty: none). */
export function notAnsweredOnce(
  pages: ReadonlyArray<{ id: string }>,
  answers: ReadonlyMap<string, string[]>,
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const { id } of pages) {
    const got = answers.get(id) ?? [];
    if (got.length !== 1 || got[0] !== 'ok') out[id] = got;
  }
  return out;
}
