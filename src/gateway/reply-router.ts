/**
 * The gateway's reply streams, one per source it serves (the fleet answers
 * each envelope only under its own source: `{p}:reply:{source}/gateway-{name}`),
 * all read by a single blocking XREAD loop that hands each result to the
 * HTTP request waiting for it.
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
 * Sources: those known at start (the keys file's) are read from the first
 * XREAD; one seen later joins the read set at once, and is read from the
 * next XREAD on (within its BLOCK time, 500 ms).
 *
 * Growth: entries are trimmed within TRIM_GAP_MS of being read (XTRIM MINID,
 * we are the only reader) and each stream expires an hour after its last read, so a
 * gateway that dies leaves nothing behind for long.
 */
import type { Redis } from 'ioredis';

import { readStreamsOrPause } from '../client/tail-stream.js';
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
  /** Reply stream -> the last id read from it. */
  private readonly last = new Map<string, string>();
  /** Streams read since their last trim, with the id to trim up to. */
  private readonly untrimmed = new Map<string, string>();
  private trimming: Promise<unknown> | undefined;
  /** Results that matched no waiting request (late after a timeout, or duplicates). */
  strays = 0;

  constructor(
    private readonly redis: Redis,
    private readonly conn: Redis,
    /** This process's reply stream for a source. */
    private readonly streamOf: (source: string) => string,
    private readonly log: Logger,
  ) {}

  /**
   * Start reading, the given sources' streams at once. The streams are this
   * process's own: anything in them is from a previous life. Not awaited by
   * the caller, so a gateway started while Redis is away serves /healthz (and
   * 503s) until it is back.
   */
  start(sources: readonly string[]): void {
    const streams = sources.map((s) => this.streamFor(s));
    const reset = streams.length > 0 ? this.redis.del(...streams) : Promise.resolve();
    this.loop = reset.then(
      () => this.run(),
      (err: Error) => this.log.error({ err: err.message }, 'gateway reply streams not reset'),
    );
  }

  /**
   * The reply stream for a source's envelopes, read from now on. A stream
   * first seen after start is read from its beginning: anything left in it
   * by a previous life matches no slot (ids are random) and is dropped.
   */
  streamFor(source: string): string {
    const stream = this.streamOf(source);
    if (!this.last.has(stream)) this.last.set(stream, '0');
    return stream;
  }

  /** Every reply stream read, in the order first seen. */
  get streams(): string[] {
    return [...this.last.keys()];
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
      if (this.last.size === 0) {
        // No source yet (a gateway with keys always has some): look again shortly.
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      // During an outage ioredis reconnects; waiting requests time out on their own meanwhile.
      const read = await readStreamsOrPause(this.conn, this.last, (err) => {
        if (!this.closed) this.log.warn({ err: err.message }, 'gateway reply read failed');
      });
      for (const [stream, entries] of read) {
        for (const [id, fields] of entries) {
          this.last.set(stream, id);
          this.untrimmed.set(stream, id);
          const r = decodeResult(id, fields);
          const slot = this.slots.get(r.id);
          if (slot) this.offer(slot, r);
          else this.strays++;
        }
      }
      if (read.size > 0) this.trim();
    }
    await this.trimming;
  }

  /**
   * Not awaited by the loop: the next read need not wait a round trip for
   * housekeeping. One trim at a time (of every stream read since the last), at most one per TRIM_GAP_MS (under
   * load a trim after every read was 7% of the gateway's CPU, for a stream
   * that only needs to stay small); when it ends, one more if reading went
   * on meanwhile, so the stream is trimmed up to its last read even when
   * traffic stops.
   */
  private trim(): void {
    if (this.trimming || this.untrimmed.size === 0) return;
    const tx = this.redis.multi();
    for (const [stream, upTo] of this.untrimmed)
      tx.xtrim(stream, 'MINID', upTo).expire(stream, EXPIRE_S);
    this.untrimmed.clear();
    this.trimming = tx
      .exec()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'reply stream trim failed'))
      .then(() => !this.closed && new Promise((r) => setTimeout(r, TRIM_GAP_MS)))
      .finally(() => {
        this.trimming = undefined;
        if (!this.closed) this.trim();
      });
  }

  async stop(): Promise<void> {
    this.closed = true;
    // The blocking read returns within its BLOCK time (500 ms); with Redis away,
    // queued commands never return, and stopping must not wait for them.
    const briefly = (p: Promise<unknown> | undefined) =>
      Promise.race([p, new Promise((r) => setTimeout(r, 1_000).unref())]);
    await briefly(this.loop);
    if (this.last.size > 0)
      await briefly(this.redis.del(...this.last.keys()).catch(() => undefined));
  }
}
