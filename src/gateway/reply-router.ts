/**
 * The gateway's one reply stream: a single blocking XREAD loop hands each
 * result to the HTTP request waiting for it.
 *
 * Matching: a request registers its envelope ids (random, unique) before
 * the XADD, and binds each to its request entry id (`rid`) once the XADD
 * returns. A result is delivered only when both its `id` and its `rid`
 * match (rids alone can repeat across streams: two streams may hand out
 * the same ms-seq id); one that arrives before its XADD's reply is held on
 * its slot until the rid is known. A slot is removed when delivered or when
 * its request gives up, so a request is answered at most once, and a late
 * or repeated result finds no slot and is dropped.
 *
 * Growth: entries are trimmed within TRIM_GAP_MS of being read (XTRIM MINID,
 * we are the only reader) and the stream expires an hour after the last read, so a
 * gateway that dies leaves nothing behind for long.
 */
import type { Redis } from 'ioredis';

import { readAfterOrPause } from '../client/tail-stream.js';
import { decodeResult } from '../codec/result.js';
import { StreambedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EmbedResult } from '../types.js';

const EXPIRE_S = 3600;
/** Results read in this long stay in the stream until the next trim: a few MB at most. */
const TRIM_GAP_MS = 200;

interface Slot {
  rid?: string;
  early?: EmbedResult;
  deliver(r: EmbedResult): void;
}

export interface Waiting {
  /** Bind envelope ids (same order as registered) to the rids XADD returned. */
  bind(rids: readonly string[]): void;
  /** One result per id, in order; rejects with code `timeout` past the deadline. */
  readonly results: Promise<EmbedResult[]>;
  /** Give up (the XADD failed, or the client went away). */
  cancel(): void;
}

export class ReplyRouter {
  private readonly slots = new Map<string, Slot>();
  private closed = false;
  private loop: Promise<void> | undefined;
  private last = '0';
  private trimming: Promise<unknown> | undefined;
  /** Results that matched no waiting request (late after a timeout, or duplicates). */
  strays = 0;

  constructor(
    private readonly redis: Redis,
    private readonly conn: Redis,
    readonly stream: string,
    private readonly log: Logger,
  ) {}

  /**
   * Start reading. The stream is this process's own: anything in it is from
   * a previous life. Not awaited by the caller, so a gateway started while
   * Redis is away serves /healthz (and 503s) until it is back.
   */
  start(): void {
    this.loop = this.redis.del(this.stream).then(
      () => this.run(),
      (err: Error) => this.log.error({ err: err.message }, 'gateway reply stream not reset'),
    );
  }

  get waiting(): number {
    return this.slots.size;
  }

  wait(ids: readonly string[], timeoutMs: number): Waiting {
    const out: EmbedResult[] = new Array<EmbedResult>(ids.length);
    let left = ids.length;
    let settle!: { resolve: (r: EmbedResult[]) => void; reject: (e: Error) => void };
    const results = new Promise<EmbedResult[]>((resolve, reject) => (settle = { resolve, reject }));
    // A request that failed before awaiting (its XADD threw) must not leave an unhandled rejection.
    results.catch(() => undefined);
    const drop = () => ids.forEach((id) => this.slots.delete(id));
    const timer = setTimeout(() => {
      drop();
      settle.reject(new StreambedError('timeout', `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    ids.forEach((id, i) => {
      this.slots.set(id, {
        deliver: (r) => {
          this.slots.delete(id);
          out[i] = r;
          if (--left === 0) {
            clearTimeout(timer);
            settle.resolve(out);
          }
        },
      });
    });
    return {
      results,
      bind: (rids) => {
        ids.forEach((id, i) => {
          const slot = this.slots.get(id);
          if (!slot) return;
          slot.rid = rids[i];
          if (slot.early) this.offer(slot, slot.early);
        });
      },
      cancel: () => {
        clearTimeout(timer);
        drop();
        settle.reject(new StreambedError('shutting_down', 'request cancelled'));
      },
    };
  }

  private offer(slot: Slot, r: EmbedResult): void {
    if (slot.rid === undefined) {
      slot.early = r;
      return;
    }
    if (slot.rid === r.rid) slot.deliver(r);
    else this.strays++;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      // During an outage ioredis reconnects; waiting requests time out on their own meanwhile.
      const entries = await readAfterOrPause(this.conn, this.stream, this.last, (err) => {
        if (!this.closed) this.log.warn({ err: err.message }, 'gateway reply read failed');
      });
      for (const [id, fields] of entries) {
        this.last = id;
        const r = decodeResult(id, fields);
        const slot = this.slots.get(r.id);
        if (slot) this.offer(slot, r);
        else this.strays++;
      }
      if (entries.length > 0) this.trim();
    }
    await this.trimming;
  }

  /**
   * Not awaited by the loop: the next read need not wait a round trip for
   * housekeeping. One trim at a time, at most one per TRIM_GAP_MS (under
   * load a trim after every read was 7% of the gateway's CPU, for a stream
   * that only needs to stay small); when it ends, one more if reading went
   * on meanwhile, so the stream is trimmed up to the last read even when
   * traffic stops.
   */
  private trim(): void {
    if (this.trimming) return;
    const upTo = this.last;
    this.trimming = this.redis
      .multi()
      .xtrim(this.stream, 'MINID', upTo)
      .expire(this.stream, EXPIRE_S)
      .exec()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'reply stream trim failed'))
      .then(() => !this.closed && new Promise((r) => setTimeout(r, TRIM_GAP_MS)))
      .finally(() => {
        this.trimming = undefined;
        if (this.last !== upTo && !this.closed) this.trim();
      });
  }

  async stop(): Promise<void> {
    this.closed = true;
    // The blocking read returns within its BLOCK time (500 ms); with Redis away,
    // queued commands never return, and stopping must not wait for them.
    const briefly = (p: Promise<unknown> | undefined) =>
      Promise.race([p, new Promise((r) => setTimeout(r, 1_000).unref())]);
    await briefly(this.loop);
    await briefly(this.redis.del(this.stream).catch(() => undefined));
  }
}
