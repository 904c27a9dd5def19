/**
 * The compute side of the main path: admit -> compute -> answer, around the
 * ledger of what is held (held-ledger.ts). Admitted entries' texts are
 * tokenised and queued (dispatch-queue.ts); token-aware micro-batches go to
 * the backend (backend.ts) as its slots free; vectors are reassembled per
 * entry (chunks may land in different micro-batches) and finished entries go
 * to the answer queue (answer-queue.ts). A failed batch is decided on in one
 * place (batch-failures.ts): split, retried, or its lone text failed.
 * Texts become items in text-items.ts, a finished batch's vectors go into
 * their entries in batch-vectors.ts, and a finished entry becomes its answer
 * in entry-answer.ts.
 *
 * A batch still running after BATCH_TIMEOUT_MS (from its start on a thread)
 * is overdue (overdue-watch.ts): its texts are split and sent again, and
 * whichever run finishes first answers each text (the overdue one usually
 * does, when it was merely slow). Its thread is counted busy until it returns
 * or the backend replaces it.
 */
import { joinRows } from '../../workers/tokenize.js';
import type { DecodeOutcome } from '../codec/envelope.js';
import { type ResultErrorCode, StreambedError, toStreambedError } from '../errors.js';
import type { Lane } from '../keys.js';
import type { Logger } from '../log.js';
import { admit, type Entry, routingOf } from './admit.js';
import { type Answer, type Delivery, errorAnswer } from './answer.js';
import { AnswerQueue } from './answer-queue.js';
import type { EmbedBackend } from './backend.js';
import { classify, decide } from './batch-failures.js';
import { spreadVectors, type TextItem as Item } from './batch-vectors.js';
import { type PackLimits, SOLO_TOKENS } from './batcher.js';
import type { DedupeCache } from './dedupe-cache.js';
import { DispatchQueue } from './dispatch-queue.js';
import { entryAnswer } from './entry-answer.js';
import type { WorkerEvents } from './events.js';
import { HeldLedger } from './held-ledger.js';
import { watchOverdue } from './overdue-watch.js';
import { splitPages } from './page-split.js';
import type { LoadedModel } from './pool.js';
import type { AnswerWriter } from './result-writer.js';
import type { SinkStage } from './sink-stage.js';
import { textItems } from './text-items.js';

export interface InFlightDeps {
  pool: EmbedBackend;
  models: ReadonlyMap<string, LoadedModel>;
  writer: AnswerWriter;
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
  /** Most entries held at once, whatever the batches, lanes and models. */
  maxHeld: number;
  /** A batch running longer than this (on its thread) is overdue: its texts are sent again. */
  batchTimeoutMs: number;
  sink?: SinkStage;
  /** Fleet-wide dedupe cache (only without a sink). */
  dedupe?: DedupeCache;
  /** Most chunks of one page (MAX_CHUNKS), after chunking too. */
  maxChunks: number;
}

export class InFlight {
  /** Every entry we hold, from delivery until its answer is written or fenced. */
  readonly ledger: HeldLedger;
  /** Batches dispatched and not yet overdue: the pool's slots in use. */
  private batches = 0;
  /** Overdue batches still occupying a thread. */
  private overdue = 0;
  /** Batches waiting out a backoff before they are sent again. */
  private retrying = 0;
  /** Moving average of texts per micro-batch, to turn free batch slots into a read count. */
  private textsPerBatch: number;
  private readonly abort = new AbortController();
  private readonly queue: DispatchQueue<Item>;
  private readonly answers: AnswerQueue;
  private seq = 0;
  /** Fewest entries worth a read (room() is 0 below it). */
  private readonly minRead: number;

  constructor(private readonly deps: InFlightDeps) {
    this.ledger = new HeldLedger(deps.maxHeld);
    this.textsPerBatch = deps.limits.batchSize;
    // Long texts run alone only where attention costs: real models (with a tokenizer).
    const solo = { ...deps.limits, soloTokens: SOLO_TOKENS };
    // A model's own limits first (a remote model: its provider's inputs and tokens per request).
    this.queue = new DispatchQueue((model) => {
      const loaded = deps.models.get(model);
      return loaded?.limits ?? (loaded?.encode ? solo : deps.limits);
    });
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
    return this.ledger.size;
  }

  get batchesInFlight(): number {
    return this.batches + this.overdue;
  }

  holds(stream: string, id: string): boolean {
    return this.ledger.has(stream, id);
  }

  /** Promise room to a read before it goes to Redis (HeldLedger.reserve). */
  reserve(count: number): number {
    return this.ledger.reserve(count);
  }

  unreserve(count: number): void {
    this.ledger.unreserve(count);
  }

  /** The reclaimer's reservation, ahead of ordinary reads (HeldLedger.reserveForReclaim). */
  reserveForReclaim(count: number): number {
    return this.ledger.reserveForReclaim(count);
  }

  /**
   * How many entries to read now: enough to fill the free micro-batch slots
   * (at the texts-per-batch seen lately) plus `lookahead` texts waiting for
   * the next slot, never past what the ledger has free. Counting in batches
   * keeps the pool's queue short whatever the text lengths, so an interactive
   * entry waits behind at most IN_FLIGHT_BATCHES batches.
   */
  room(): number {
    const freeBatches = Math.max(0, this.deps.maxBatches - this.batches - this.retrying);
    const wanted = freeBatches * this.textsPerBatch + this.deps.lookahead - this.queue.size;
    const room = Math.max(0, Math.min(this.ledger.free, Math.ceil(wanted)));
    // Every read is a round trip and a socket write: reading the one or two entries that
    // each dispatch frees cost more main-thread CPU than tokenising. The window is deep
    // enough to wait for a quarter batch of room.
    return room >= this.minRead ? room : 0;
  }

  /** Resolves at the next change of room (an answer written, a batch ended, a read's reservation returned). */
  changed(): Promise<void> {
    return this.ledger.changed();
  }

  /** Resolves when room() > 0 (a batch finished or an answer was written). */
  async waitForRoom(): Promise<void> {
    while (this.room() <= 0) await this.ledger.changed();
  }

  /** Resolves when nothing is held (every entry answered or fenced). */
  async drained(): Promise<void> {
    while (this.ledger.size > 0 || this.answers.busy) {
      await Promise.race([this.answers.someWriteEnds(), this.ledger.changed()]);
    }
  }

  /** Give up on unwritten answers and undispatched texts (forced shutdown): they stay pending for another consumer. */
  abandon(): void {
    this.abort.abort();
    this.queue.clear();
  }

  /** Answer entries with an error without computing them (e.g. too many deliveries). */
  reject(deliveries: Delivery[], code: ResultErrorCode, message: string): void {
    const answers = deliveries
      .filter((d) => this.ledger.add(d))
      .map((d) => errorAnswer(d, code, message, routingOf(d.fields, this.deps)));
    if (answers.length) this.finish(answers);
  }

  /** Take ownership of delivered entries. Entries we already hold (our own, delivered again) are ignored. */
  accept(deliveries: Delivery[]): void {
    const { answers, byModel } = admit(
      deliveries.filter((d) => this.ledger.add(d)),
      {
        decode: this.deps.decode,
        serves: (model) => this.deps.models.has(model),
        withHashes: this.deps.sink !== undefined,
        log: this.deps.log,
      },
    );
    if (answers.length) this.finish(answers);
    for (const [model, entries] of byModel) void this.schedule(model, entries);
  }

  /** Answer what the sink already knows; pack the rest into micro-batches for the pool. */
  private async schedule(model: string, entries: Entry[]): Promise<void> {
    const pages = await splitPages(
      entries,
      this.deps.models.get(model) as LoadedModel,
      this.deps.maxChunks,
    );
    if (pages.refused.length) this.finish(pages.refused);
    let todo = pages.kept;
    const sink = this.deps.sink;
    if (sink) {
      const known = await sink.known(
        model,
        todo.map((e) => ({
          source: e.envelope.source,
          id: e.envelope.id,
          hashes: e.hashes ?? [],
          ...(e.spans && { spans: e.spans }),
        })),
      );
      const deduped: Entry[] = [];
      todo = todo.filter((e, i) => {
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
    const slices = textItems(todo, this.deps.models.get(model) as LoadedModel, {
      urgent: (entry) => this.deps.laneOf(entry.delivery.stream) === 'interactive',
      nextSeq: () => this.seq++,
      aborted: () => this.abort.signal.aborted,
    });
    for await (const items of slices) {
      this.queue.push(model, items);
      this.pump();
    }
  }

  /** Fill the pool's free slots from the queue; batches that could still grow only for an idle thread. */
  private pump(): void {
    while (this.batches < this.deps.maxBatches) {
      const idleThread = this.batches + this.overdue < this.deps.pool.threads;
      const next = this.queue.take(idleThread, idleThread);
      if (!next) return;
      this.textsPerBatch = 0.8 * this.textsPerBatch + 0.2 * next.batch.length;
      this.dispatch(next.model, next.batch);
    }
  }

  /** Send a micro-batch; `attempt` counts transient retries of the same texts. */
  private dispatch(model: string, batch: Item[], attempt = 0): void {
    const items = batch.filter((i) => !i.done);
    if (items.length === 0 || this.abort.signal.aborted) return;
    this.batches++;
    const encoded = items.map((i) => i.encoded);
    const input = encoded.every((e) => e !== undefined)
      ? joinRows(encoded)
      : items.map((i) => i.text);
    const run = this.deps.pool.embed(model, input);
    let isOverdue = false;
    const timeoutMs = this.deps.batchTimeoutMs;
    const stopWatching = watchOverdue(run, timeoutMs, {
      waitingOut: () => {
        this.deps.events.emit('overdue', { model, texts: items.length, waiting: true });
        this.deps.log.warn(
          { model, batchTexts: items.length, batchTimeoutMs: timeoutMs },
          'batch still running in ONNX Runtime past BATCH_TIMEOUT_MS (or a provider request still on the wire); waiting for it (lower BATCH_SIZE or MAX_BATCH_TOKENS, or raise BATCH_TIMEOUT_MS)',
        );
      },
      overdue: () => {
        isOverdue = true;
        this.batches--;
        this.overdue++;
        this.deps.events.emit('overdue', { model, texts: items.length, waiting: false });
        const err = new StreambedError(
          'timeout',
          `batch of ${items.length} ran over ${timeoutMs} ms`,
        );
        this.failed(model, items, err, attempt);
        this.pump();
        this.ledger.notify();
      },
    });
    run.result
      .then(
        (out) => {
          const { done, nonFinite, tokens, bySource } = spreadVectors(items, out);
          this.deps.events.emit('batch', {
            model,
            texts: items.length,
            tokens,
            paddedTokens: out.paddedTokens,
            ms: out.ms,
            bySource,
          });
          this.complete(done);
          if (nonFinite.length > 0) this.nonFinite(model, items.length, nonFinite, attempt);
        },
        (err: unknown) => {
          if (!isOverdue) this.failed(model, items, toStreambedError(err, 'model_error'), attempt);
        },
      )
      .finally(() => {
        stopWatching();
        if (isOverdue) this.overdue--;
        else this.batches--;
        this.pump();
        this.ledger.notify();
      });
  }

  /**
   * Texts whose vectors came back with NaN or Infinity (a model overflowing in
   * fp16, a broken export, a provider's bad answer). Such a vector is never
   * published or stored: it would poison a client's index, and the sink
   * refuses it. A text that ran with others runs again alone (padding and
   * batch shape can be the cause); one that was already alone fails as
   * `model_error` and is dead-lettered like any text the model throws on.
   */
  private nonFinite(model: string, batchTexts: number, items: Item[], attempt: number): void {
    if (batchTexts > 1) {
      for (const item of items) this.dispatch(model, [item], attempt);
      return;
    }
    const err = new StreambedError(
      'model_error',
      'the model returned a vector with NaN or Infinity for this text',
    );
    this.failed(model, items, err, attempt);
  }

  /** A batch failed: split it, retry it, or fail its lone text (batch-failures.ts decides). */
  private failed(model: string, batch: Item[], err: StreambedError, attempt: number): void {
    const items = batch.filter((i) => !i.done);
    if (items.length === 0) return;
    const cls = classify(err, attempt);
    const lone = items[0] as Item;
    const decision = decide(cls, items.length, lone.strikes, attempt);
    if (decision.action === 'split') {
      this.deps.events.emit('split', { model, texts: items.length, reason: err.code });
      const half = Math.ceil(items.length / 2);
      this.dispatch(model, items.slice(0, half));
      this.dispatch(model, items.slice(half));
      return;
    }
    const where = {
      model,
      stream: lone.entry.delivery.stream,
      entry: lone.entry.delivery.id,
      deliveries: lone.entry.delivery.deliveries,
      code: err.code,
      err: err.message,
    };
    if (decision.action === 'retry') {
      if (cls === 'thread') lone.strikes++;
      this.deps.log.warn(
        { ...where, batchTexts: items.length, strikes: lone.strikes, retryInMs: decision.afterMs },
        cls === 'thread'
          ? 'text took its thread down; retrying it alone'
          : 'batch failed; retrying',
      );
      this.retrying++;
      setTimeout(() => {
        this.retrying--;
        this.dispatch(model, items, cls === 'transient' ? attempt + 1 : attempt);
      }, decision.afterMs);
      return;
    }
    this.deps.log.warn(
      { ...where, chunk: lone.chunk, strikes: lone.strikes },
      'text failed in the model',
    );
    lone.done = true;
    lone.entry.failure ??= new StreambedError(
      'model_error',
      `chunk ${lone.chunk}: ${err.message.slice(0, 200)}`,
    );
    if (--lone.entry.remaining === 0) this.complete([lone.entry]);
  }

  private complete(done: Entry[]): void {
    // Entries waiting on an identical one finish with it; computed vectors fill the cache.
    const entries = this.deps.dedupe ? this.deps.dedupe.settle(done) : done;
    if (entries.length === 0) return;
    const opts = {
      consumer: this.deps.consumer,
      storesPassages: this.deps.sink?.storesPassages ?? false,
    };
    this.finish(
      entries.map((e) =>
        entryAnswer(e, this.deps.models.get(e.delivery.model) as LoadedModel, opts),
      ),
    );
  }

  /** Write answers, then release their entries. Until the write lands they stay held and pending. */
  private finish(answers: Answer[]): void {
    this.answers.push(answers);
  }

  private release(answers: Answer[]): void {
    for (const a of answers) this.ledger.delete(a.delivery.stream, a.delivery.id);
  }
}
