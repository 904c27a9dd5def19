/**
 * Follows a backfill job's reply streams (one per source, read together in
 * one blocking XREAD) on its own connection and hands each stream's answers
 * to the runner, which records them before the next read, so the
 * checkpoint is never further behind a stream than the pages in flight.
 */
import type { Redis } from 'ioredis';

import { readStreamsAfter } from '../client/tail-stream.js';
import { type Answered, parseAnswer } from './state.js';

export type OnAnswers = (
  conn: Redis,
  stream: string,
  answers: Answered[],
  lastId: string,
) => Promise<void>;

export class ReplyFollower {
  private closed = false;
  private readonly conn: Redis;
  private readonly loop: Promise<void>;
  /** Rejects if following fails for good (never resolves otherwise). */
  readonly failed: Promise<never>;
  private fail: (err: Error) => void = () => undefined;
  /** Wakes a loop that has no stream to read yet. */
  private added: () => void = () => undefined;

  constructor(
    redis: Redis,
    /** Stream -> the last id recorded. */
    private readonly last: Map<string, string>,
    private readonly onAnswers: OnAnswers,
  ) {
    this.conn = redis.duplicate();
    this.conn.on('error', () => undefined);
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
    this.loop = this.run();
  }

  /** Follow one more stream from the start (a source the job submits to for the first time). */
  follow(stream: string): void {
    if (this.last.has(stream)) return;
    this.last.set(stream, '0-0');
    this.added();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      if (this.last.size === 0) {
        await new Promise<void>((r) => (this.added = r));
        continue;
      }
      try {
        const read = await readStreamsAfter(this.conn, this.last);
        for (const [stream, entries] of read) {
          const lastId = (entries[entries.length - 1] as [string, Buffer[]])[0];
          await this.onAnswers(
            this.conn,
            stream,
            entries.map(([, fields]) => parseAnswer(fields)),
            lastId,
          );
          this.last.set(stream, lastId);
        }
        failures = 0;
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
    this.added();
    // Ends a blocked XREAD at once; the loop sees `closed` and returns.
    this.conn.disconnect();
    await this.loop;
  }
}
