/**
 * Entries between delivery and acknowledgement. Decodes each delivery,
 * answers bad ones at once, tokenises the texts of good ones and queues them
 * (dispatch-queue.ts), packs token-aware micro-batches for the pool as its
 * slots free, reassembles vectors per entry (chunks may land in different
 * micro-batches) and hands finished entries to the writer.
 * A batch that fails is split in halves until only the guilty texts fail.
 */
import { joinRows } from '../../workers/tokenize.js';
import type { DecodeOutcome } from '../codec/envelope.js';
import { contentHash } from '../codec/result.js';
import { type ResultErrorCode, StreambedError, toStreambedError } from '../errors.js';
import type { Lane } from '../keys.js';
import type { Logger } from '../log.js';
import type { Envelope } from '../types.js';
import { type Answer, type Delivery, errorAnswer } from './answer.js';
import { AnswerQueue } from './answer-queue.js';
import { estimateTokens, type PackLimits, SOLO_TOKENS } from './batcher.js';
import type { DedupeCache } from './dedupe-cache.js';
import { DispatchQueue } from './dispatch-queue.js';
import type { WorkerEvents } from './events.js';
import type { LoadedModel } from './pool.js';
import type { EmbedPool } from './pool.js';
import type { ResultWriter } from './result-writer.js';
import type { SinkStage } from './sink-stage.js';

interface Entry {
  delivery: Delivery;
  envelope: Envelope;
  vectors: Float32Array[];
  truncated: boolean[];
  remaining: number;
  failure?: StreambedError;
  computeMs: number;
  /** Per-chunk content hashes (only with a sink). */
  hashes?: string[];
  /** Answered from the sink's stored vectors without computing. */
  deduped?: boolean;
}

interface Item {
  entry: Entry;
  chunk: number;
  text: string;
  tokens: number;
  /** Token ids, cut to the model's limit (models with a main-thread tokenizer). */
  encoded?: { ids: number[]; truncated: boolean };
  seq: number;
  urgent: boolean;
}

export interface InFlightDeps {
  pool: EmbedPool;
  models: ReadonlyMap<string, LoadedModel>;
  writer: ResultWriter;
  decode: (fields: Buffer[]) => DecodeOutcome;
  events: WorkerEvents;
  log: Logger;
  consumer: string;
  limits: PackLimits;
  /** Micro-batches queued or running at once (IN_FLIGHT_BATCHES). */
  maxBatches: number;
  /** Texts read ahead of the pool's free slots, for the packer to choose from. */
  lookahead: number;
  laneOf: (stream: string) => Lane;
  /** Most entries held at once, whatever the batches. */
  maxHeld: number;
  sink?: SinkStage;
  /** Fleet-wide dedupe cache (only without a sink). */
  dedupe?: DedupeCache;
}

/** Longest the main thread tokenises before letting the event loop run (pool hand-offs, reads). */
const TOKENIZE_SLICE_MS = 1;

export class InFlight {
  /** Keyed `${stream} ${id}`: every entry we hold, from delivery until its answer is written or fenced. */
  private readonly held = new Set<string>();
  private batches = 0;
  /** Moving average of texts per micro-batch, to turn free batch slots into a read count. */
  private textsPerBatch: number;
  private readonly roomWaiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  private readonly queue: DispatchQueue<Item>;
  private readonly answers: AnswerQueue;
  private seq = 0;
  /** Fewest entries worth a read (room() is 0 below it). */
  private readonly minRead: number;

  constructor(private readonly deps: InFlightDeps) {
    this.textsPerBatch = deps.limits.batchSize;
    // Long texts run alone only where attention costs: real models (with a tokenizer).
    const solo = { ...deps.limits, soloTokens: SOLO_TOKENS };
    this.queue = new DispatchQueue((model) =>
      deps.models.get(model)?.encode ? solo : deps.limits,
    );
    this.answers = new AnswerQueue({
      writer: deps.writer,
      events: deps.events,
      log: deps.log,
      ...(deps.sink && { sink: deps.sink }),
      abort: this.abort.signal,
      settled: (answers) => this.release(answers),
    });
    this.minRead = Math.min(deps.maxHeld, Math.max(1, Math.ceil(deps.limits.batchSize / 4)));
  }

  get size(): number {
    return this.held.size;
  }

  get batchesInFlight(): number {
    return this.batches;
  }

  holds(stream: string, id: string): boolean {
    return this.held.has(`${stream} ${id}`);
  }

  /**
   * How many entries to read now: enough to fill the free micro-batch slots
   * (at the texts-per-batch seen lately) plus `lookahead` texts waiting for
   * the next slot, never past `maxHeld`. Counting in batches keeps the pool's
   * queue short whatever the text lengths, so an interactive entry waits
   * behind at most IN_FLIGHT_BATCHES batches (waiting bulk texts go after it).
   */
  room(): number {
    const freeBatches = Math.max(0, this.deps.maxBatches - this.batches);
    const wanted = freeBatches * this.textsPerBatch + this.deps.lookahead - this.queue.size;
    const room = Math.max(0, Math.min(this.deps.maxHeld - this.held.size, Math.ceil(wanted)));
    // Every read is a round trip and a socket write: reading the one or two entries that
    // each dispatch frees cost more main-thread CPU than tokenising. The window is deep
    // enough to wait for a quarter batch of room.
    return room >= this.minRead ? room : 0;
  }

  /** Resolves when room() > 0 (a batch finished or an answer was written). */
  async waitForRoom(): Promise<void> {
    while (this.room() <= 0) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  /** Resolves when nothing is held (every entry answered or fenced). */
  async drained(): Promise<void> {
    while (this.held.size > 0 || this.answers.busy) {
      await Promise.race([
        this.answers.someWriteEnds(),
        new Promise<void>((r) => this.roomWaiters.push(r)),
      ]);
    }
  }

  /** A decoder bug must never leak a held entry: anything it throws answers the entry `invalid`. */
  private decode(fields: Buffer[]): DecodeOutcome {
    try {
      return this.deps.decode(fields);
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'envelope decoder threw');
      return {
        ok: false,
        code: 'invalid',
        message: `undecodable entry (${(err as Error).message.slice(0, 80)})`,
      };
    }
  }

  /** Give up on unwritten answers and undispatched texts (forced shutdown): they stay pending for another consumer. */
  abandon(): void {
    this.abort.abort();
    this.queue.clear();
  }

  /** Answer entries with an error without computing them (e.g. too many deliveries). */
  reject(deliveries: Delivery[], code: ResultErrorCode, message: string): void {
    const answers: Answer[] = [];
    for (const d of deliveries) {
      const key = `${d.stream} ${d.id}`;
      if (this.held.has(key)) continue;
      this.held.add(key);
      const decoded = this.decode(d.fields);
      answers.push(errorAnswer(d, code, message, decoded.ok ? decoded.envelope : decoded));
    }
    if (answers.length) this.finish(answers);
  }

  /** Take ownership of delivered entries. Entries we already hold (our own, reclaimed back) are ignored. */
  accept(deliveries: Delivery[]): void {
    const answers: Answer[] = [];
    const byModel = new Map<string, Entry[]>();
    for (const d of deliveries) {
      const key = `${d.stream} ${d.id}`;
      if (this.held.has(key)) continue;
      this.held.add(key);
      const decoded = this.decode(d.fields);
      if (!decoded.ok) {
        answers.push(errorAnswer(d, decoded.code, decoded.message, decoded));
        continue;
      }
      const env = decoded.envelope;
      if (env.deadlineMs !== undefined && env.deadlineMs < Date.now()) {
        answers.push(
          errorAnswer(d, 'expired', `deadline ${env.deadlineMs} passed before work began`, env),
        );
        continue;
      }
      const model = this.deps.models.get(d.model);
      if (!model) {
        answers.push(errorAnswer(d, 'unknown_model', `model ${d.model} is not served here`, env));
        continue;
      }
      const entry: Entry = {
        delivery: d,
        envelope: env,
        vectors: new Array(env.texts.length),
        truncated: new Array(env.texts.length).fill(false),
        remaining: env.texts.length,
        computeMs: 0,
        ...(this.deps.sink && { hashes: env.texts.map((t) => contentHash([t])) }),
      };
      const list = byModel.get(d.model) ?? [];
      list.push(entry);
      byModel.set(d.model, list);
    }
    if (answers.length) this.finish(answers);
    for (const [model, entries] of byModel) void this.schedule(model, entries);
  }

  /** Answer what the sink already knows; pack the rest into micro-batches for the pool. */
  private async schedule(model: string, entries: Entry[]): Promise<void> {
    let todo = entries;
    const sink = this.deps.sink;
    if (sink) {
      const known = await sink.known(
        model,
        entries.map((e) => ({
          source: e.envelope.source,
          id: e.envelope.id,
          hashes: e.hashes ?? [],
        })),
      );
      const deduped: Entry[] = [];
      todo = entries.filter((e, i) => {
        const vectors = known[i];
        if (!vectors) return true;
        e.vectors = vectors;
        e.remaining = 0;
        e.deduped = true;
        deduped.push(e);
        return false;
      });
      this.complete(deduped);
    }
    if (this.deps.dedupe) {
      // Cached vectors and identical texts already computing are answered without computing.
      const plan = await this.deps.dedupe.plan(model, todo);
      this.complete(plan.cached);
      todo = plan.compute;
    }
    const loaded = this.deps.models.get(model) as LoadedModel;
    let items: Item[] = [];
    let sliceStarted = performance.now();
    for (const entry of todo) {
      if (this.abort.signal.aborted) return;
      const urgent = this.deps.laneOf(entry.delivery.stream) === 'interactive';
      entry.envelope.texts.forEach((text, chunk) => {
        const encoded = loaded.encode?.(text);
        items.push({
          entry,
          chunk,
          text,
          tokens: encoded ? encoded.ids.length : estimateTokens(text, loaded.maxTokens),
          ...(encoded && { encoded }),
          seq: this.seq++,
          urgent,
        });
      });
      if (performance.now() - sliceStarted > TOKENIZE_SLICE_MS) {
        // Tokenising a read of long texts takes tens of ms (0.5 ms a 190-token text):
        // pool hand-offs, result writes and health probes must not wait behind it.
        this.queue.push(model, items);
        this.pump();
        items = [];
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStarted = performance.now();
      }
    }
    this.queue.push(model, items);
    this.pump();
  }

  /** Fill the pool's free slots from the queue; batches that could still grow only for an idle thread. */
  private pump(): void {
    while (this.batches < this.deps.maxBatches) {
      const idleThread = this.batches < this.deps.pool.threads;
      const next = this.queue.take(idleThread, idleThread);
      if (!next) return;
      this.textsPerBatch = 0.8 * this.textsPerBatch + 0.2 * next.batch.length;
      this.dispatch(next.model, next.batch);
    }
  }

  private dispatch(model: string, batch: Item[]): void {
    this.batches++;
    const encoded = batch.map((i) => i.encoded);
    const input = encoded.every((e) => e !== undefined)
      ? joinRows(encoded)
      : batch.map((i) => i.text);
    this.deps.pool
      .embed(model, input)
      .then(
        (out) => {
          this.deps.events.emit('batch', {
            model,
            texts: batch.length,
            tokens: out.tokens.reduce((a, b) => a + b, 0),
            paddedTokens: out.paddedTokens,
            ms: out.ms,
          });
          const done: Entry[] = [];
          batch.forEach((item, k) => {
            item.entry.vectors[item.chunk] = out.data.subarray(k * out.dim, (k + 1) * out.dim);
            item.entry.truncated[item.chunk] = out.truncated[k] === 1;
            item.entry.computeMs += out.ms / batch.length;
            if (--item.entry.remaining === 0) done.push(item.entry);
          });
          this.complete(done);
        },
        (err: unknown) => this.failed(model, batch, toStreambedError(err, 'model_error')),
      )
      .finally(() => {
        this.batches--;
        this.pump();
        this.wake();
      });
  }

  /** Split a failed batch to isolate the guilty texts; a text that fails alone fails its entry. */
  private failed(model: string, batch: Item[], err: StreambedError): void {
    if (batch.length > 1) {
      this.deps.events.emit('split', { model, texts: batch.length, reason: err.code });
      const half = Math.ceil(batch.length / 2);
      this.dispatch(model, batch.slice(0, half));
      this.dispatch(model, batch.slice(half));
      return;
    }
    const item = batch[0] as Item;
    this.deps.log.warn(
      {
        model,
        stream: item.entry.delivery.stream,
        entry: item.entry.delivery.id,
        deliveries: item.entry.delivery.deliveries,
        chunk: item.chunk,
        code: err.code,
        err: err.message,
      },
      'text failed in the model',
    );
    item.entry.failure ??= new StreambedError(
      'model_error',
      `chunk ${item.chunk}: ${err.message.slice(0, 200)}`,
    );
    if (--item.entry.remaining === 0) this.complete([item.entry]);
  }

  private complete(done: Entry[]): void {
    // Entries waiting on an identical one finish with it; computed vectors fill the cache.
    const entries = this.deps.dedupe ? this.deps.dedupe.settle(done) : done;
    if (entries.length === 0) return;
    const loaded = (name: string) => this.deps.models.get(name) as LoadedModel;
    this.finish(
      entries.map((e): Answer => {
        if (e.failure) return errorAnswer(e.delivery, 'model_error', e.failure.message, e.envelope);
        const model = loaded(e.delivery.model);
        return {
          delivery: e.delivery,
          id: e.envelope.id,
          source: e.envelope.source,
          ...(e.envelope.replyTo !== undefined && { replyTo: e.envelope.replyTo }),
          outcome: e.deduped ? 'deduped' : 'ok',
          ...(e.hashes && { chunkHashes: e.hashes }),
          ok: {
            model: model.spec.name,
            dim: model.dim,
            vectors: e.vectors,
            truncated: e.truncated,
            hash: contentHash(e.envelope.texts),
            ...(e.envelope.meta !== undefined && { meta: e.envelope.meta }),
            ms: Math.round(e.computeMs * 100) / 100,
            worker: this.deps.consumer,
          },
        };
      }),
    );
  }

  /** Write answers, then release their entries. Until the write lands they stay held and pending. */
  private finish(answers: Answer[]): void {
    this.answers.push(answers);
  }

  private release(answers: Answer[]): void {
    for (const a of answers) this.held.delete(`${a.delivery.stream} ${a.delivery.id}`);
    this.wake();
  }

  private wake(): void {
    for (const wake of this.roomWaiters.splice(0)) wake();
  }
}
