/**
 * Piscina worker entry: one per thread. Each thread loads each model it is
 * asked for once and keeps it; vectors go back as a transferred buffer.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';

import { move, transferableSymbol, valueSymbol } from 'piscina';

import { type CoreSpec, type Embedder, loadEmbedder } from './embed-core.js';
import { MODEL_LOAD_FAILED, RunProbe } from './run-probe.js';
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
  /** Shared with the main thread (RunProbe): when the task started, and whether ORT is running it. */
  probe?: SharedArrayBuffer;
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

/**
 * Test instrumentation: with SB_COMPUTE_LOG set to a file, each text computed
 * appends one line (a hash of its text or token ids, never the text), so a
 * test counts computations where they happen.
 */
const computeLog = process.env.SB_COMPUTE_LOG;

function logComputed(file: string, task: EmbedTask): void {
  const rows: string[] = [];
  if (task.tokenized) {
    const { ids, offsets } = task.tokenized;
    for (let i = 0; i + 1 < offsets.length; i++)
      rows.push(digest(Array.from(ids.subarray(offsets[i], offsets[i + 1])).join(',')));
  } else for (const t of task.texts) rows.push(digest(t));
  fs.appendFileSync(file, rows.map((r) => `${task.model} ${r}\n`).join(''));
}

function digest(s: string): string {
  return createHash('sha1').update(s).digest('hex').slice(0, 16);
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
  const probe = task.kind === 'embed' && task.probe ? new RunProbe(task.probe) : undefined;
  probe?.start();
  const embedder = await embedderFor(task.model, task.spec).catch((err: Error) => {
    // Not the texts' fault: the dispatcher retries the batch rather than splitting it.
    throw new Error(`${MODEL_LOAD_FAILED}: ${err.message}`);
  });
  if (task.kind === 'load') {
    const res: LoadTaskResult = {
      dim: embedder.dim,
      maxTokens: embedder.maxTokens,
      ms: performance.now() - started,
    };
    return res;
  }
  const out = await embedder.embed(task.texts, task.tokenized, probe?.native);
  if (computeLog) logComputed(computeLog, task);
  const res: EmbedTaskResult = { ...out, ms: performance.now() - started };
  // Piscina's transferable protocol: the buffers move to the main thread, no copy.
  return move({
    [valueSymbol]: res,
    [transferableSymbol]: [out.data.buffer, out.truncated.buffer, out.tokens.buffer],
  } as Parameters<typeof move>[0]);
}
