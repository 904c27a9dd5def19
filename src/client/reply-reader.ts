/**
 * Demultiplexes one private reply stream for `embed()`: a single blocking
 * reader per client hands each result to the call waiting for its id.
 * The stream expires when the client goes away, so abandoned ones vanish.
 */
import type { Redis } from 'ioredis';

import { decodeResult } from '../codec/result.js';
import { StreambedError } from '../errors.js';
import type { EmbedResult } from '../types.js';
import { readAfterOrPause } from './tail-stream.js';

const EXPIRE_S = 3600;

export class ReplyReader {
  private readonly waiting = new Map<
    string,
    { resolve: (r: EmbedResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private readonly conn: Redis;
  private closed = false;
  private loop: Promise<void> | undefined;
  private last = '0';

  constructor(
    private readonly redis: Redis,
    readonly stream: string,
  ) {
    this.conn = redis.duplicate();
    // Without a listener ioredis prints every failed reconnect; run() sees the failures itself.
    this.conn.on('error', () => undefined);
  }

  /** No call is waiting for a result: closing loses nothing. */
  get idle(): boolean {
    return this.waiting.size === 0;
  }

  expect(id: string, timeoutMs: number): Promise<EmbedResult> {
    const p = new Promise<EmbedResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new StreambedError('timeout', `no result for ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
    });
    this.loop ??= this.run();
    return p;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      // Connection trouble: ioredis reconnects; the read pauses and the loop tries again.
      const entries = await readAfterOrPause(this.conn, this.stream, this.last);
      for (const [id, fields] of entries) {
        this.last = id;
        const result = decodeResult(id, fields);
        const w = this.waiting.get(result.id);
        if (!w) continue;
        clearTimeout(w.timer);
        this.waiting.delete(result.id);
        w.resolve(result);
      }
      if (entries.length > 0) await this.redis.expire(this.stream, EXPIRE_S);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new StreambedError('shutting_down', `client closed before ${id} was answered`));
    }
    this.waiting.clear();
    await this.loop;
    this.conn.disconnect();
    await this.redis.del(this.stream).catch(() => undefined);
  }
}
