/**
 * The one EmbedBackend the dispatcher (in-flight.ts) talks to: it sends each
 * model to the backend that loaded it (registry.ts chose it from the ref).
 */
import type { TokenizedBatch } from '../../../workers/tokenize.js';
import { StreambedError } from '../../errors.js';
import type { ModelSpec } from '../../models/table.js';
import type { BatchRun, EmbedBackend } from '../backend.js';
import type { LoadedModel } from '../pool.js';
import { OpenAiBackend, type ProviderState } from './openai-http.js';

export class RouterBackend implements EmbedBackend {
  private readonly owner = new Map<string, EmbedBackend>();

  constructor(
    private readonly backends: readonly EmbedBackend[],
    private readonly backendOf: (spec: ModelSpec) => EmbedBackend,
  ) {}

  /** Batches run at once: the pool's threads plus the remote models' concurrency. */
  get threads(): number {
    return this.backends.reduce((n, b) => n + b.threads, 0);
  }

  load(spec: ModelSpec): Promise<LoadedModel> {
    const backend = this.backendOf(spec);
    this.owner.set(spec.name, backend);
    return backend.load(spec);
  }

  embed(model: string, input: string[] | TokenizedBatch): BatchRun {
    const backend = this.owner.get(model);
    if (backend) return backend.embed(model, input);
    const err = new StreambedError('model_load_failed', `model ${model} is not loaded here`);
    return {
      result: Promise.reject(err),
      startedAt: () => undefined,
      uninterruptible: () => false,
    };
  }

  /** The thread pool's utilisation (0 without one): remote requests use no thread. */
  get utilization(): number {
    return this.backends.reduce(
      (u, b) => u + ((b as { utilization?: number }).utilization ?? 0),
      0,
    );
  }

  get queueSize(): number {
    return this.backends.reduce((q, b) => q + ((b as { queueSize?: number }).queueSize ?? 0), 0);
  }

  /** Per-model state of every remote provider (metrics, status). */
  async providerStates(): Promise<ProviderState[]> {
    const remote = this.backends.filter((b): b is OpenAiBackend => b instanceof OpenAiBackend);
    return (await Promise.all(remote.map((b) => b.states()))).flat();
  }

  reasons(): string[] {
    return this.backends.flatMap((b) => b.reasons?.() ?? []);
  }

  async close(): Promise<void> {
    await Promise.all(this.backends.map((b) => b.close()));
  }
}
