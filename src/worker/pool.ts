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
import { encodeText, loadTokenizer, type TokenizedBatch } from '../../workers/tokenize.js';
import { StreambedError } from '../errors.js';
import { isBuiltInCore, type ModelSpec } from '../models/table.js';

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
}

export class EmbedPool {
  private readonly piscina: Piscina;
  private readonly cores = new Map<string, CoreSpec>();

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
      const encode = isBuiltInCore(spec.ref)
        ? undefined
        : await this.mainThreadEncoder(core, first);
      return {
        spec,
        dim: first.dim,
        maxTokens: first.maxTokens,
        loadMs: performance.now() - started,
        ...(encode && { encode }),
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
   */
  async embed(model: string, input: string[] | TokenizedBatch): Promise<EmbedTaskResult> {
    const spec = this.cores.get(model);
    if (!spec) throw new StreambedError('internal', `model ${model} was never loaded`);
    const raw = Array.isArray(input);
    const task: EmbedTask = raw
      ? { kind: 'embed', model, spec, texts: input }
      : { kind: 'embed', model, spec, texts: [], tokenized: input };
    const transferList = raw
      ? undefined
      : ([input.ids.buffer, input.offsets.buffer, input.truncated.buffer] as ArrayBuffer[]);
    // Aborting a running task terminates its thread; piscina starts a fresh one.
    const signal = AbortSignal.timeout(this.options.batchTimeoutMs);
    try {
      return (await this.piscina.run(task, {
        signal,
        ...(transferList && { transferList }),
      })) as EmbedTaskResult;
    } catch (err) {
      if (signal.aborted) {
        throw new StreambedError(
          'timeout',
          `batch of ${raw ? input.length : input.truncated.length} ran over ${this.options.batchTimeoutMs} ms`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.piscina.close({ force: true });
  }

  /** The same tokenizer the threads loaded (same files, same cut at maxTokens). */
  private async mainThreadEncoder(
    core: CoreSpec,
    loaded: LoadTaskResult,
  ): Promise<LoadedModel['encode']> {
    const { tokenizer } = await loadTokenizer(core);
    return (text) => encodeText(tokenizer, text, loaded.maxTokens);
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
