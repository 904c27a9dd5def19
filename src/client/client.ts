/**
 * The producer SDK. Imports nothing from the worker, ONNX Runtime or
 * prom-client: a service that only submits pages pulls in ioredis and msgpackr.
 */
import { randomUUID } from 'node:crypto';

import { Cluster, Redis } from 'ioredis';
import { Packr } from 'msgpackr';

import { decodeResult } from '../codec/result.js';
import { StreambedError } from '../errors.js';
import { DEFAULT_PREFIX, type Keys, keys as buildKeys, type Lane } from '../keys.js';
import { connectRedis, type RedisTarget } from '../redis/connect.js';
import type { EmbedResult, Page, ReplyMode } from '../types.js';
import { Backlog } from './backlog.js';
import { ReplyReader } from './reply-reader.js';

const packr = new Packr({ useRecords: false });

export interface ClientOptions {
  /**
   * A Redis URL, a target (a URL with REDIS_SENTINELS' sentinels: `redisTarget(config)`),
   * or an ioredis instance (not closed by `close()` when passed in).
   */
  redis: string | RedisTarget | Redis;
  prefix?: string;
  group?: string;
  /** Most unprocessed entries (lag + pending) on a request stream before submit waits or fails. */
  maxBacklog?: number;
  /** 'wait' (default) blocks submit until the backlog falls; 'fail' throws code `backpressure`. */
  onBacklog?: 'wait' | 'fail';
}

export interface SubmitOptions {
  model: string;
  /** `bulk`: each page goes to its source's bulk stream and is served fairly among sources. */
  lane?: Lane;
  /**
   * Result stream; must match the fleet's REPLY_TO_PATTERN: by default one
   * under the pages' source, `sb:reply:{source}/{name}` (`keys.sourceReply`).
   * A function names one per source, for pages of several sources.
   */
  replyTo?: string | ((source: string) => string);
  /**
   * A Redis SET to add each page's `pageKey()` to in the same transaction as
   * its XADD, so a resumable job knows exactly what it has submitted.
   */
  submittedSet?: string;
  /**
   * For a job over an ordered input: a hash whose `submitted` field is set to
   * `base` + the pages written so far, and `last` to the last one's
   * `pageKey()`, in the same transaction as each chunk's XADDs.
   */
  submittedMark?: { hash: string; base: number };
  /** What each ok result carries: `vectors` (default) or `status` (no vectors). */
  reply?: ReplyMode;
  /**
   * Expire each source's progress hash after this many seconds: for a
   * throw-away source (a `streambed search` query) that must not stay listed
   * among the real ones. The worker's increments keep the expiry.
   */
  progressTtlS?: number;
}

/** Source names that get their own bulk stream (the envelope's rule); others use the plain one. */
const SOURCE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** Pages per MULTI on the bulk lane: bounds how long one transaction holds Redis. */
const BULK_CHUNK = 1000;
/** Reply readers (one connection each) kept while none of their calls is waiting. */
const MAX_IDLE_READERS = 8;

/** A page's identity in a submitted set: `source/id` (source names have no '/'). */
export function pageKey(page: { source: string; id: string }): string {
  return `${page.source}/${page.id}`;
}

export interface EmbedOptions {
  model: string;
  timeoutMs?: number;
  source?: string;
  /** As in SubmitOptions. */
  progressTtlS?: number;
}

export class StreambedClient {
  readonly keys: Keys;
  private readonly redis: Redis;
  private readonly owned: boolean;
  private readonly backlog: Backlog;
  /** `embed()`'s private reply streams, one per source (the fleet answers each source only under its name). */
  private readonly replies = new Map<string, ReplyReader>();

  constructor(options: ClientOptions) {
    const target = isTarget(options.redis) ? options.redis : undefined;
    this.owned = typeof options.redis === 'string' || target !== undefined;
    // A URL gets the fleet's connection (TLS, backoff, an error listener: no ioredis
    // "Unhandled error event" noise while Redis is down; commands still fail or wait).
    this.redis =
      typeof options.redis === 'string'
        ? connectRedis({ url: options.redis, name: 'streambed-client' })
        : target
          ? connectRedis({ ...target, name: 'streambed-client' })
          : (options.redis as Redis);
    // Redis Cluster: the fleet's keys share the hash tag {prefix}, as the worker's config has it.
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.keys = buildKeys(
      target?.cluster && !prefix.startsWith('{') ? `{${prefix}}` : prefix,
      options.group,
    );
    this.backlog = new Backlog(
      this.redis,
      this.keys.group,
      options.maxBacklog ?? 100_000,
      options.onBacklog ?? 'wait',
    );
  }

  /**
   * XADD one envelope per page (one pipelined round trip per call) and count
   * them as submitted in each source's progress hash. Returns the entry ids
   * in page order. Waits (or fails) while the stream's backlog is above maxBacklog.
   * Bulk pages go to `{p}:req:{model}:bulk:{source}` and their sources into
   * the fair scheduler, in one MULTI per chunk: a source can never be dropped
   * from the schedule between its XADD and its ZADD, and each page's backlog
   * token (`bulkBacklog`) is pushed with its XADD.
   */
  /** The request stream `submit` writes a page to. */
  requestStream(page: Pick<Page, 'source'>, model: string, lane: Lane = 'interactive'): string {
    if (lane !== 'bulk') return this.keys.request(model);
    return SOURCE_NAME.test(page.source)
      ? this.keys.bulkSource(model, page.source)
      : this.keys.request(model, 'bulk');
  }

  async submit(pages: readonly Page[], options: SubmitOptions): Promise<string[]> {
    const { model } = options;
    const bulk = options.lane === 'bulk';
    const streamOf = (page: Page) => this.requestStream(page, model, options.lane);
    const perStream = new Map<string, number>();
    for (const page of pages)
      perStream.set(streamOf(page), (perStream.get(streamOf(page)) ?? 0) + 1);
    for (const [stream, n] of perStream) await this.backlog.admit(stream, n);
    const transactional =
      bulk || options.submittedSet !== undefined || options.submittedMark !== undefined;
    const chunk = transactional ? BULK_CHUNK : Math.max(1, pages.length);
    const ids: string[] = [];
    for (let at = 0; at < pages.length; at += chunk) {
      const part = pages.slice(at, at + chunk);
      const batch = transactional ? this.redis.multi() : this.redis.pipeline();
      const perSource = new Map<string, number>();
      for (const page of part) {
        batch.xadd(streamOf(page), '*', 'env', packr.pack(envelopeOf(page, options)));
        perSource.set(page.source, (perSource.get(page.source) ?? 0) + 1);
      }
      for (const [source, n] of perSource) {
        batch.hincrby(this.keys.progress(source), 'submitted', n);
        if (options.progressTtlS !== undefined)
          batch.expire(this.keys.progress(source), options.progressTtlS);
      }
      const scheduled = bulk ? [...perSource.keys()].filter((s) => SOURCE_NAME.test(s)) : [];
      if (scheduled.length > 0) {
        // NX -1: a source already scheduled keeps its place; a new one is placed by the scheduler.
        batch.zadd(this.keys.bulkSchedule(model), 'NX', ...scheduled.flatMap((s) => [-1, s]));
        batch.sadd(this.keys.bulkSources(model), ...scheduled);
        // One token per page, popped when its entry is acked: the backlog KEDA reads (LLEN).
        const tokens = scheduled.reduce((n, s) => n + (perSource.get(s) ?? 0), 0);
        batch.rpush(this.keys.bulkBacklog(model), ...Array<string>(tokens).fill('1'));
      }
      if (options.submittedSet !== undefined)
        batch.sadd(options.submittedSet, ...part.map(pageKey));
      const mark = options.submittedMark;
      if (mark !== undefined) {
        const last = part[part.length - 1] as Page;
        batch.hset(mark.hash, 'submitted', mark.base + at + part.length, 'last', pageKey(last));
      }
      const results = await batch.exec();
      if (!results) throw new StreambedError('redis_unavailable', 'submit transaction aborted');
      for (const [err, id] of results.slice(0, part.length)) {
        if (err)
          throw new StreambedError('redis_unavailable', `XADD failed: ${err.message}`, {
            cause: err,
          });
        ids.push(id as string);
      }
    }
    return ids;
  }

  /** Weight of a source in a model's bulk lane (default 1): a source of weight 2 gets twice the entries of one of weight 1. */
  async setSourceWeight(model: string, source: string, weight: number): Promise<void> {
    if (!(weight > 0) || !Number.isFinite(weight))
      throw new StreambedError('invalid', `weight must be a positive number, not ${weight}`);
    await this.redis.hset(this.keys.bulkWeights(model), source, String(weight));
  }

  /**
   * Embed texts and wait for their vectors, through a private reply stream
   * under the source (`{p}:reply:{source}/{uuid}`), which both the
   * source-bound default REPLY_TO_PATTERN and the open `sb:reply:*` allow.
   */
  async embed(texts: readonly string[], options: EmbedOptions): Promise<Float32Array[]> {
    const source = options.source ?? 'sdk';
    const replies = this.replyReader(source);
    // One vector per text is this call's contract: never chunked, even where the model chunks by default.
    const pages = texts.map((text) => ({ id: randomUUID(), source, text, chunk: false }));
    const waits = pages.map((p) => replies.expect(p.id, options.timeoutMs ?? 30_000));
    await this.submit(pages, {
      model: options.model,
      replyTo: replies.stream,
      ...(options.progressTtlS !== undefined && { progressTtlS: options.progressTtlS }),
    });
    const results = await Promise.all(waits);
    return results.map((r) => {
      if (r.status === 'error') throw new StreambedError(r.res.code, r.res.message);
      return r.res.vectors[0] as Float32Array;
    });
  }

  private replyReader(source: string): ReplyReader {
    const known = this.replies.get(source);
    if (known) return known;
    if (!SOURCE_NAME.test(source))
      throw new StreambedError('invalid', 'source must be 1-128 chars of [A-Za-z0-9._:-]');
    // A name of its own per reader: one closed below never deletes a successor's stream.
    const reader = new ReplyReader(this.redis, this.keys.sourceReply(source, randomUUID()));
    this.replies.set(source, reader);
    // Each reader holds a connection: a client that goes through many sources
    // (`streambed search` makes one per query) keeps only the last few idle ones.
    for (const [s, r] of this.replies) {
      if (this.replies.size <= MAX_IDLE_READERS) break;
      if (r === reader || !r.idle) continue;
      this.replies.delete(s);
      void r.close().catch(() => undefined);
    }
    return reader;
  }

  /**
   * Decoded results from a reply stream (or several, read together: oldest
   * first within each), waiting for more at the end.
   */
  async *results(
    replyTo: string | readonly string[],
    options: { from?: string; blockMs?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<EmbedResult> {
    const reader = this.redis.duplicate();
    // A duplicate has no listeners: without one ioredis prints every failed
    // reconnect. The XREAD below rejects when the connection is gone.
    reader.on('error', () => undefined);
    const last = new Map<string, string>(
      (typeof replyTo === 'string' ? [replyTo] : replyTo).map((s) => [s, options.from ?? '0']),
    );
    try {
      while (!options.signal?.aborted) {
        const reply = (await reader.callBuffer(
          'XREAD',
          'COUNT',
          '500',
          'BLOCK',
          String(options.blockMs ?? 1000),
          'STREAMS',
          ...last.keys(),
          ...last.values(),
        )) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
        for (const [stream, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            last.set(stream.toString(), id.toString());
            yield decodeResult(id.toString(), fields);
          }
        }
      }
    } finally {
      reader.disconnect();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.replies.values()].map((r) => r.close()));
    this.replies.clear();
    if (this.owned) await this.redis.quit();
  }
}

/** A target to connect to, as opposed to a connection (a Redis, or a Cluster typed as one). */
function isTarget(r: ClientOptions['redis']): r is RedisTarget {
  return typeof r === 'object' && !(r instanceof Redis) && !(r instanceof Cluster) && 'url' in r;
}

function envelopeOf(page: Page, o: SubmitOptions): Record<string, unknown> {
  return {
    id: page.id,
    source: page.source,
    ...(page.texts !== undefined ? { texts: page.texts } : { text: page.text }),
    ...(o.replyTo !== undefined && {
      reply_to: typeof o.replyTo === 'string' ? o.replyTo : o.replyTo(page.source),
    }),
    ...(page.meta !== undefined && { meta: page.meta }),
    ...(page.deadlineMs !== undefined && { deadline_ms: page.deadlineMs }),
    ...(o.reply === 'status' && { reply: 'status' }),
    ...(page.chunk !== undefined && { chunk: page.chunk }),
    ...(page.pageVector === true && { page_vector: true }),
  };
}
