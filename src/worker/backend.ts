/**
 * How to add a model backend: implement this. The dispatcher (in-flight.ts)
 * sees only this interface: load a model, embed a micro-batch, close.
 * `pool.ts` is the local one (piscina threads running ONNX Runtime),
 * `backends/openai-http.ts` the remote one; `backends/registry.ts` says which
 * model refs each serves, and `backends/router.ts` sends each model to its own.
 *
 * Failures must carry their class in their code (errors.ts,
 * batch-failures.ts): `worker_crashed` / `timeout` when the compute died or
 * hung under a batch (the batch is split to find a guilty text, which is
 * dead-lettered only after it fails alone POISON_STRIKES times);
 * `model_load_failed` and other transient codes when nothing is wrong with
 * the texts (the batch is retried after a backoff, no delivery counted);
 * `model_error` when the model rejected an input (split; a text that fails
 * alone is dead-lettered at once).
 */
import type { EmbedTaskResult } from '../../workers/embed-worker.js';
import type { TokenizedBatch } from '../../workers/tokenize.js';
import type { ModelSpec } from '../models/table.js';
import type { LoadedModel } from './pool.js';

/** One micro-batch sent to a backend. */
export interface BatchRun {
  result: Promise<EmbedTaskResult>;
  /** Epoch ms it started computing; undefined while it waits for a thread (timeouts count from here). */
  startedAt(): number | undefined;
  /**
   * True while the run is in code that cannot be stopped and is known to end
   * (ONNX Runtime): past BATCH_TIMEOUT_MS it is slow, not hung, and is waited
   * for rather than computed again.
   */
  uninterruptible(): boolean;
}

export interface EmbedBackend {
  /** Batches it runs at once (the dispatcher keeps about twice this many in flight). */
  readonly threads: number;
  load(spec: ModelSpec): Promise<LoadedModel>;
  /** Texts, or their token ids when the loaded model has an `encode`. */
  embed(model: string, input: string[] | TokenizedBatch): BatchRun;
  close(): Promise<void>;
  /** Why a loaded model cannot be served now (e.g. a provider refusing the key), for /readyz. */
  reasons?(): string[];
}
