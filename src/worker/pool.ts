/**
 * The piscina pool of embedding threads, seen from the main thread.
 * Threads are created up front (minThreads = maxThreads) so model loading
 * and ORT thread pools are paid once, not on the first busy minute.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Piscina } from 'piscina';

import type { CoreSpec } from '../../workers/embed-core.js';
import type {
  EmbedTask,
  EmbedTaskResult,
  LoadTask,
  LoadTaskResult,
} from '../../workers/embed-worker.js';
import { MODEL_LOAD_FAILED, RunProbe } from '../../workers/run-probe.js';
import { encodeText, loadTokenizer, type TokenizedBatch } from '../../workers/tokenize.js';
import type { PageTokenizer } from '../chunking/page-chunker.js';
import { modelTokenizer } from '../chunking/tokenizers.js';
import { StreambedError, toStreambedError } from '../errors.js';
import { isBuiltInCore, type ModelSpec } from '../models/table.js';
import type { BatchRun, EmbedBackend } from './backend.js';
import type { PackLimits } from './batcher.js';

export interface PoolOptions {
  threads: number;
  intraOpThreads: number;
  /** Abort (and replace the thread of) a batch running longer than this. */
  batchTimeoutMs: number;
  /** V8 old-generation limit per thread, so a runaway thread dies alone. */
  threadHeapMb?: number;
  allowRemoteModels: boolean;
  modelCacheDir?: string;
}

export interface LoadedModel {
  spec: ModelSpec;
  dim: number;
  maxTokens: number;
  loadMs: number;
  /**
   * The model's own tokenizer on the main thread, so micro-batches are packed
   * on exact token counts and threads get ids, not text. Absent for the test
   * and no-op cores (packed on an estimate).
   */
  encode?: (text: string) => { ids: number[]; truncated: boolean };
  /** The same tokenizer, as the page chunker counts with it (absent: chunked on an estimate). */
  pageTokenizer?: PageTokenizer;
  /** How this model's texts are packed, when not BATCH_SIZE / MAX_BATCH_TOKENS (remote: one batch = one request). */
  limits?: PackLimits;
}

/** A batch still running this many BATCH_TIMEOUT_MS after it was sent has its thread terminated. */
export const HARD_TIMEOUT_FACTOR = 2;

export class EmbedPool implements EmbedBackend {
  private readonly piscina: Piscina;
  private readonly cores = new Map<string, CoreSpec>();
  /** Tasks sent and not yet settled, so close() can end those stuck in JavaScript. */
  private readonly running = new Set<{ abort: AbortController; probe: RunProbe }>();

  constructor(private readonly options: PoolOptions) {
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: options.threads,
      maxThreads: options.threads,
      idleTimeout: Infinity,
      // Queue is bounded by the consume loop's in-flight limit, not here.
      concurrentTasksPerWorker: 1,
      ...(options.threadHeapMb && {
        resourceLimits: { maxOldGenerationSizeMb: options.threadHeapMb },
      }),
    });
  }

  get threads(): number {
    return this.options.threads;
  }

  /** Fraction of thread time spent running tasks since start (0..1). */
  get utilization(): number {
    return this.piscina.utilization;
  }

  get queueSize(): number {
    return this.piscina.queueSize;
  }

  /** Load a model on every thread (so no thread pays it on the hot path) and read its dimension. */
  async load(spec: ModelSpec): Promise<LoadedModel> {
    if (spec.local && !fs.existsSync(path.join(spec.ref, 'config.json'))) {
      throw new StreambedError(
        'model_load_failed',
        `model ${spec.name}: no config.json in ${spec.ref}`,
      );
    }
    const core = this.coreSpec(spec);
    this.cores.set(spec.name, core);
    const task: LoadTask = { kind: 'load', model: spec.name, spec: core };
    const started = performance.now();
    try {
      const results = (await Promise.all(
        Array.from({ length: this.options.threads }, () => this.piscina.run(task)),
      )) as LoadTaskResult[];
      const first = results[0] as LoadTaskResult;
      const tokenizer = isBuiltInCore(spec.ref)
        ? undefined
        : await this.mainThreadTokenizer(core, first);
      return {
        spec,
        dim: first.dim,
        maxTokens: first.maxTokens,
        loadMs: performance.now() - started,
        ...tokenizer,
      };
    } catch (err) {
      throw new StreambedError(
        'model_load_failed',
        `model ${spec.name} (${spec.ref}) failed to load: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /**
   * Embed a micro-batch: raw texts, or their ids from the model's `encode`
   * (moved to the thread, not copied; the strings are not sent at all).
   *
   * Failures come back classed (batch-failures.ts): a thread that exits or
   * runs out of heap is `worker_crashed`, a batch still running
   * `HARD_TIMEOUT_FACTOR` x BATCH_TIMEOUT_MS after it was sent is `timeout`
   * (its thread is terminated), a model the thread cannot load is
   * `model_load_failed`; anything the model itself throws is `model_error`.
   * A thread inside ONNX Runtime is never terminated: native code cannot be
   * interrupted, and terminating the thread under it aborts the whole
   * process (`Napi::Error`). The caller's own, shorter, BATCH_TIMEOUT_MS
   * already moved the batch's texts on; this thread is lost only until ORT
   * returns.
   */
  embed(model: string, input: string[] | TokenizedBatch): BatchRun {
    const spec = this.cores.get(model);
    if (!spec) {
      const err = new StreambedError('model_load_failed', `model ${model} is not loaded here`);
      return {
        result: Promise.reject(err),
        startedAt: () => undefined,
        uninterruptible: () => false,
      };
    }
    const raw = Array.isArray(input);
    const probe = new RunProbe();
    const task: EmbedTask = raw
      ? { kind: 'embed', model, spec, texts: input, probe: probe.buffer }
      : { kind: 'embed', model, spec, texts: [], tokenized: input, probe: probe.buffer };
    const transferList = raw
      ? undefined
      : ([input.ids.buffer, input.offsets.buffer, input.truncated.buffer] as ArrayBuffer[]);
    const abort = new AbortController();
    const hardMs = this.options.batchTimeoutMs * HARD_TIMEOUT_FACTOR;
    // Looked at every second once it could be due: queued time does not count, and a
    // thread inside ONNX Runtime is left to finish.
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      const started = probe.startedAt;
      if (started !== undefined && Date.now() - started >= hardMs && !probe.inNative) abort.abort();
      else timer = setTimeout(check, 1_000);
    };
    timer = setTimeout(check, hardMs);
    const running = { abort, probe };
    this.running.add(running);
    const result = this.piscina
      .run(task, { signal: abort.signal, ...(transferList && { transferList }) })
      .then(
        (out) => out as EmbedTaskResult,
        (err: unknown) => {
          throw classifyPoolError(err, abort.signal.aborted, hardMs);
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.running.delete(running);
      });
    return {
      result,
      startedAt: () => probe.startedAt,
      uninterruptible: () => probe.boundedCompute,
    };
  }

  /** Ends the threads; a thread stuck in JavaScript is terminated, one inside ORT is waited for. */
  async close(): Promise<void> {
    for (const { abort, probe } of this.running) if (!probe.inNative) abort.abort();
    await this.piscina.close({ force: true });
  }

  /** The same tokenizer the threads loaded (same files, same cut at maxTokens). */
  private async mainThreadTokenizer(
    core: CoreSpec,
    loaded: LoadTaskResult,
  ): Promise<Required<Pick<LoadedModel, 'encode' | 'pageTokenizer'>>> {
    const { tokenizer } = await loadTokenizer(core);
    const encode = (text: string) => encodeText(tokenizer, text, loaded.maxTokens);
    return { encode, pageTokenizer: modelTokenizer(tokenizer, encode) };
  }

  private coreSpec(spec: ModelSpec): CoreSpec {
    return {
      ref: spec.ref,
      local: spec.local,
      dtype: spec.dtype,
      ...(spec.pooling && { pooling: spec.pooling }),
      ...(spec.normalize !== undefined && { normalize: spec.normalize }),
      ...(spec.maxTokens !== undefined && { maxTokens: spec.maxTokens }),
      intraOpThreads: this.options.intraOpThreads,
      allowRemote: this.options.allowRemoteModels,
      ...(this.options.modelCacheDir && { cacheDir: this.options.modelCacheDir }),
    };
  }
}

/** How a thread's failure reaches the dispatcher: its class is in its code. */
function classifyPoolError(err: unknown, aborted: boolean, hardMs: number): StreambedError {
  if (aborted)
    return new StreambedError('timeout', `batch ran over ${hardMs} ms; its thread was replaced`, {
      cause: err,
    });
  const e = err as { code?: unknown; message?: unknown };
  const message = String(e.message ?? err);
  // Node's Worker: ERR_WORKER_OUT_OF_MEMORY; piscina: "worker exited" / terminated.
  if (
    e.code === 'ERR_WORKER_OUT_OF_MEMORY' ||
    /worker (exited|terminated)|exited with code/i.test(message)
  )
    return new StreambedError('worker_crashed', `thread died: ${message.slice(0, 160)}`, {
      cause: err,
    });
  if (message.startsWith(MODEL_LOAD_FAILED))
    return new StreambedError('model_load_failed', message.slice(0, 200), { cause: err });
  return toStreambedError(err, 'model_error');
}

/**
 * Worker threads need JavaScript. From dist/ the compiled worker sits beside
 * us; when this module runs from TypeScript sources (tests), use the build.
 */
function workerFile(): string {
  const beside = fileURLToPath(new URL('../../workers/embed-worker.js', import.meta.url));
  if (fs.existsSync(beside)) return beside;
  const built = fileURLToPath(new URL('../../dist/workers/embed-worker.js', import.meta.url));
  if (fs.existsSync(built)) return built;
  throw new StreambedError(
    'config',
    `embedding worker not built (${built} missing): run npm run build`,
  );
}
