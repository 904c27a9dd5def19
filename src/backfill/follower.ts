/**
 * Follows a backfill job's reply stream on its own blocking connection and
 * hands each read's answers to the runner, which records them before the
 * next read, so the checkpoint is never further behind the stream than the
 * pages in flight.
 */
import type { Redis } from 'ioredis';

import { readAfter } from '../client/tail-stream.js';
import { type Answered, parseAnswer } from './state.js';

export type OnAnswers = (conn: Redis, answers: Answered[], lastId: string) => Promise<void>;

export class ReplyFollower {
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
    private readonly onAnswers: OnAnswers,
  ) {
    this.conn = redis.duplicate();
    this.conn.on('error', () => undefined);
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const entries = await readAfter(this.conn, this.stream, this.last);
        if (entries.length > 0) {
          const lastId = (entries[entries.length - 1] as [string, Buffer[]])[0];
          await this.onAnswers(
            this.conn,
            entries.map(([, fields]) => parseAnswer(fields)),
            lastId,
          );
          this.last = lastId;
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
    // Ends a blocked XREAD at once; the loop sees `closed` and returns.
    this.conn.disconnect();
    await this.loop;
  }
}
