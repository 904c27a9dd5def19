/**
 * Piscina worker entry: one per thread. Each thread loads each model it is
 * asked for once and keeps it; vectors go back as a transferred buffer.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';

import { type CoreSpec, type Embedder, loadEmbedder } from './embed-core.js';
import type { TokenizedBatch } from './tokenize.js';

export interface EmbedTask {
  kind: 'embed';
  /** Cache key: the same model name always maps to the same spec in one process. */
  model: string;
  spec: CoreSpec;
  /** Empty when `tokenized` is given. */
  texts: string[];
  /** The texts' ids when the main thread tokenised them (transferred, not copied). */
  tokenized?: TokenizedBatch;
}

export interface LoadTask {
  kind: 'load';
  model: string;
  spec: CoreSpec;
}

export interface EmbedTaskResult {
  data: Float32Array;
  dim: number;
  truncated: Uint8Array;
  tokens: Uint32Array;
  paddedTokens: number;
  ms: number;
}

export interface LoadTaskResult {
  dim: number;
  maxTokens: number;
  ms: number;
}

const loaded = new Map<string, Promise<Embedder>>();

function embedderFor(model: string, spec: CoreSpec): Promise<Embedder> {
  let p = loaded.get(model);
  if (!p) {
    p = loadEmbedder(spec);
    // A failed load must not poison the thread: the next task retries it.
    p.catch(() => loaded.delete(model));
    loaded.set(model, p);
  }
  return p;
}

export default async function run(task: EmbedTask | LoadTask): Promise<unknown> {
  const started = performance.now();
  const embedder = await embedderFor(task.model, task.spec);
  if (task.kind === 'load') {
    const res: LoadTaskResult = {
      dim: embedder.dim,
      maxTokens: embedder.maxTokens,
      ms: performance.now() - started,
    };
    return res;
  }
  const out = await embedder.embed(task.texts, task.tokenized);
  const res: EmbedTaskResult = { ...out, ms: performance.now() - started };
  // Piscina's transferable protocol: the buffers move to the main thread, no copy.
  return move({
    [valueSymbol]: res,
    [transferableSymbol]: [out.data.buffer, out.truncated.buffer, out.tokens.buffer],
  } as Parameters<typeof move>[0]);
}
