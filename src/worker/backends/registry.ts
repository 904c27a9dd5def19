/**
 * How to add a model backend: write one file beside this one that implements
 * EmbedBackend (../backend.ts), and add one line to BACKENDS saying which
 * model refs it serves. The worker builds only the backends its MODELS need
 * and routes each model to its own (router.ts); the dispatcher never knows.
 *
 *   openai:<model>           OpenAI-compatible /v1/embeddings over HTTP (openai-http.ts)
 *   hub id, folder,
 *   noop:DIM, fixture:DIM    ONNX Runtime (or the built-in cores) in piscina threads (../pool.ts)
 */
import type { Redis } from 'ioredis';

import { type Config, resolveThreads } from '../../config/load.js';
import type { Keys } from '../../keys.js';
import type { Logger } from '../../log.js';
import { type ModelSpec, OPENAI_SCHEME } from '../../models/table.js';
import type { EmbedBackend } from '../backend.js';
import type { WorkerEvents } from '../events.js';
import { EmbedPool } from '../pool.js';
import { OpenAiBackend } from './openai-http.js';
import { RouterBackend } from './router.js';

export interface BackendContext {
  config: Config;
  redis: Redis;
  keys: Keys;
  events: WorkerEvents;
  log: Logger;
}

interface BackendKind {
  name: string;
  serves(spec: ModelSpec): boolean;
  /** Built once per process, with every model of the table it serves. */
  create(ctx: BackendContext, specs: ModelSpec[]): EmbedBackend;
}

/** First match wins: the thread pool is last and serves every other ref. */
export const BACKENDS: readonly BackendKind[] = [
  {
    name: 'openai',
    serves: (spec) => spec.ref.startsWith(OPENAI_SCHEME),
    create: (ctx, specs) => new OpenAiBackend(specs, ctx),
  },
  { name: 'threads', serves: () => true, create: (ctx) => new EmbedPool(poolOptions(ctx.config)) },
];

export function kindOf(spec: ModelSpec): BackendKind {
  return BACKENDS.find((b) => b.serves(spec)) as BackendKind;
}

/** The router over the backends `specs` need (no threads are started for a table of remote models only). */
export function createBackend(ctx: BackendContext, specs: readonly ModelSpec[]): RouterBackend {
  const built = new Map<BackendKind, EmbedBackend>();
  for (const kind of BACKENDS) {
    const mine = specs.filter((s) => kindOf(s) === kind);
    if (mine.length > 0) built.set(kind, kind.create(ctx, mine));
  }
  return new RouterBackend([...built.values()], (spec) => built.get(kindOf(spec)) as EmbedBackend);
}

function poolOptions(config: Config) {
  return {
    threads: resolveThreads(config),
    intraOpThreads: config.intraOpThreads,
    batchTimeoutMs: config.batchTimeoutMs,
    ...(config.threadHeapMb && { threadHeapMb: config.threadHeapMb }),
    allowRemoteModels: config.allowRemoteModels,
    ...(config.modelCacheDir && { modelCacheDir: config.modelCacheDir }),
  };
}
