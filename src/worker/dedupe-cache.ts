/**
 * Fleet-wide dedupe without a sink (docs/design.md, "Dedupe cache"): a
 * bounded, expiring Redis cache of vectors keyed by model and content hash,
 * consulted with one MGET per read before compute and filled with pipelined
 * SET EX after it. Entries whose every chunk is cached are answered
 * `deduped` without computing; an entry identical to one already computing
 * in this process (same read or an earlier one) waits for it and is answered
 * `deduped` from its vectors. Best effort throughout: a failed lookup
 * computes, a failed fill is logged.
 */
import type { Redis } from 'ioredis';

import { contentHash } from '../codec/result.js';
import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';

/** What the cache needs of an in-flight entry (in-flight.ts's Entry has it). */
export interface Dedupable {
  delivery: { model: string };
  envelope: { texts: string[] };
  vectors: Float32Array[];
  truncated: boolean[];
  tokens?: number[];
  remaining: number;
  failure?: Error;
  deduped?: boolean;
}

export interface DedupeOptions {
  keys: Keys;
  /** Seconds a cached vector lives. */
  ttlS: number;
  /** Most cached vectors per model at any time (see fill()). */
  maxEntries: number;
  /** The model's reference (id, dtype, pooling...): part of the hash, so a changed model never serves old vectors. */
  refOf: (model: string) => string;
  log: Logger;
}

export class DedupeCache {
  /** Entry key (model + chunk hashes) -> the entry computing it here. */
  private readonly computing = new Map<string, Dedupable>();
  /** Leader -> entries waiting for its vectors. */
  private readonly followers = new Map<Dedupable, Dedupable[]>();
  /** Chunk hashes per entry, computed once. */
  private readonly hashes = new WeakMap<Dedupable, string[]>();
  /** Model -> the fill window whose budget this process saw spent. */
  private readonly spent = new Map<string, number>();
  /** `${model} ${hash}` -> vector computed here, until its fill has landed. */
  private readonly recent = new Map<string, Cached>();

  constructor(
    private readonly redis: Redis,
    private readonly o: DedupeOptions,
  ) {}

  /**
   * Split one read's entries of `model`: `cached` are answered from the cache
   * (vectors set, marked deduped), followers of an identical entry already
   * computing are kept here until settle(), `compute` is the rest.
   */
  async plan<E extends Dedupable>(
    model: string,
    entries: E[],
  ): Promise<{ cached: E[]; compute: E[] }> {
    if (entries.length === 0) return { cached: [], compute: [] };
    const ref = this.o.refOf(model);
    const chunkHashes = entries.map((e) => {
      const hs = e.envelope.texts.map((t) => contentHash([ref, t]));
      this.hashes.set(e, hs);
      return hs;
    });
    const unique = [...new Set(chunkHashes.flat())];
    let stored: (Buffer | null)[];
    try {
      stored = await this.redis.mgetBuffer(...unique.map((h) => this.o.keys.dedupe(model, h)));
    } catch (err) {
      this.o.log.warn({ model, err: (err as Error).message }, 'dedupe lookup failed; computing');
      stored = unique.map(() => null);
    }
    // A vector computed here whose fill is still on its way counts as cached: the lookup may
    // have been sent just before the fill, on the same connection.
    const found = new Map(
      unique.map((h, i) => [
        h,
        decodeVector(stored[i] ?? null) ?? this.recent.get(`${model} ${h}`),
      ]),
    );
    const cached: E[] = [];
    const compute: E[] = [];
    entries.forEach((e, i) => {
      const hs = chunkHashes[i] as string[];
      const hits = hs.map((h) => found.get(h));
      if (hits.every((v) => v !== undefined)) {
        e.vectors = hits.map((v) => v.vector);
        e.truncated = hits.map((v) => v.truncated);
        // Cached before counts were kept: no count (the gateway then estimates).
        if (hits.every((v) => v.tokens !== undefined))
          e.tokens = hits.map((v) => v.tokens as number);
        e.remaining = 0;
        e.deduped = true;
        cached.push(e);
        return;
      }
      const key = `${model} ${hs.join(',')}`;
      const leader = this.computing.get(key);
      if (leader) {
        const list = this.followers.get(leader) ?? [];
        list.push(e);
        this.followers.set(leader, list);
        return;
      }
      this.computing.set(key, e);
      compute.push(e);
    });
    return { cached, compute };
  }

  /**
   * Entries just finished: their followers finish with them (same vectors,
   * or the same failure), and computed vectors go into the cache.
   */
  settle<E extends Dedupable>(entries: E[]): E[] {
    const out: E[] = [];
    const fills: Array<Cached & { model: string; hash: string }> = [];
    for (const e of entries) {
      out.push(e);
      const hs = this.hashes.get(e);
      if (!hs) continue;
      const key = `${e.delivery.model} ${hs.join(',')}`;
      if (this.computing.get(key) === e) this.computing.delete(key);
      for (const f of (this.followers.get(e) ?? []) as E[]) {
        f.vectors = e.vectors;
        f.truncated = e.truncated;
        if (e.tokens) f.tokens = e.tokens;
        f.remaining = 0;
        if (e.failure) f.failure = e.failure;
        f.deduped = true;
        out.push(f);
      }
      this.followers.delete(e);
      if (e.failure || e.deduped) continue;
      hs.forEach((hash, chunk) => {
        const vector = e.vectors[chunk];
        if (vector)
          fills.push({
            model: e.delivery.model,
            hash,
            vector,
            truncated: e.truncated[chunk] === true,
            ...(e.tokens && { tokens: e.tokens[chunk] }),
          });
      });
    }
    if (fills.length > 0) void this.fill(fills);
    return out;
  }

  /**
   * The bound: fills are counted per model in windows of TTL seconds, at most
   * maxEntries / 2 per window. Every cached vector expires within TTL, so the
   * vectors alive at any moment come from the current window and the one
   * before it: at most maxEntries. The count and the SETs go in one MULTI,
   * queued on the connection before the entries' answers (settle() runs
   * before the write), so once an answer is visible its vectors are cached;
   * fills past the budget are deleted right after, and this process stops
   * filling for the rest of the window.
   */
  private async fill(
    fills: Array<{ model: string; hash: string; vector: Float32Array; truncated: boolean }>,
  ): Promise<void> {
    const { keys, ttlS, maxEntries } = this.o;
    const perWindow = Math.floor(maxEntries / 2);
    const window = Math.floor(Date.now() / 1000 / ttlS);
    const byModel = new Map<string, typeof fills>();
    for (const f of fills) {
      if (this.spent.get(f.model) === window) continue;
      byModel.set(f.model, [...(byModel.get(f.model) ?? []), f]);
      this.recent.set(`${f.model} ${f.hash}`, f);
    }
    // Queue every MULTI now (no await in between), ahead of the answers' writes.
    const sent = [...byModel].map(([model, list]) => {
      const budget = keys.dedupeBudget(model, window);
      const tx = this.redis
        .multi()
        .incrby(budget, list.length)
        .expire(budget, 2 * ttlS);
      for (const f of list) tx.set(keys.dedupe(model, f.hash), encodeVector(f), 'EX', ttlS);
      // Settled at once (never an unhandled rejection while an earlier one is awaited).
      return { model, list, done: tx.exec().catch((err: Error) => err) };
    });
    for (const { model, list, done } of sent) {
      try {
        const replies = await done;
        if (replies instanceof Error) throw replies;
        const [[, after] = [null, 0]] = (replies ?? []) as Array<[Error | null, unknown]>;
        const allowed = Math.max(0, perWindow - (Number(after) - list.length));
        if (allowed >= list.length) continue;
        this.spent.set(model, window);
        await this.redis.del(...list.slice(allowed).map((f) => keys.dedupe(model, f.hash)));
      } catch (err) {
        this.o.log.warn({ model, err: (err as Error).message }, 'dedupe cache fill failed');
      } finally {
        for (const f of list) this.recent.delete(`${model} ${f.hash}`);
      }
    }
  }
}

/** A cached chunk: its vector, whether the model cut its text, and the tokens it read. */
interface Cached {
  vector: Float32Array;
  truncated: boolean;
  tokens?: number;
}

/** Flag bits of a cached value's first byte; with HAS_TOKENS, a uint32 LE count follows it. */
const TRUNCATED = 1;
const HAS_TOKENS = 2;

function encodeVector({ vector: v, truncated, tokens }: Cached): Buffer {
  const head = tokens === undefined ? 1 : 5;
  const out = Buffer.alloc(head + v.byteLength);
  out[0] = (truncated ? TRUNCATED : 0) | (tokens === undefined ? 0 : HAS_TOKENS);
  if (tokens !== undefined) out.writeUInt32LE(tokens, 1);
  Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(out, head);
  return out;
}

/** Also reads values cached before token counts were kept (a flag byte, then the floats). */
function decodeVector(b: Buffer | null): Cached | undefined {
  if (!b || b.length < 5 || (b.length - 1) % 4 !== 0) return undefined;
  const flags = b[0] as number;
  const head = flags & HAS_TOKENS ? 5 : 1;
  if (b.length - head < 4) return undefined;
  const vector = new Float32Array((b.length - head) / 4);
  new Uint8Array(vector.buffer).set(b.subarray(head));
  return {
    vector,
    truncated: (flags & TRUNCATED) === TRUNCATED,
    ...(flags & HAS_TOKENS && { tokens: b.readUInt32LE(1) }),
  };
}
