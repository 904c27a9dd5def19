/**
 * Pages to chunks, between admission and compute: an entry whose page is to
 * be chunked (its envelope's `chunk`, else its model's default) has its text
 * replaced by its chunks, each computed as an ordinary text of the entry, and
 * remembers where each chunk lies in the page for the answer. A page of more
 * than MAX_CHUNKS chunks is answered `too_large` here, nothing computed.
 */
import { l2normalize } from '../../workers/l2normalize.js';
import { type ChunkOptions, chunkPage } from '../chunking/page-chunker.js';
import { estimatedTokenizer } from '../chunking/tokenizers.js';
import { contentHash } from '../codec/result.js';
import type { Envelope } from '../types.js';
import type { Entry } from './admit.js';
import { type Answer, errorAnswer } from './answer.js';
import type { LoadedModel } from './pool.js';
import { TOKENIZE_SLICE_MS } from './text-items.js';

/** Without a window of its own, consecutive chunks share an eighth of it. */
const DEFAULT_OVERLAP_SHARE = 1 / 8;

/** The window and overlap for this page, or undefined when it is not to be chunked. */
export function chunkingOf(
  env: Envelope,
  model: LoadedModel,
  maxChunks: number,
): ChunkOptions | undefined {
  const asked = env.chunk;
  const byModel = model.spec.chunk;
  if (!env.single || asked === false || (asked === undefined && !byModel?.on)) return undefined;
  const own = typeof asked === 'object' ? asked : {};
  // Never past what the model reads: a longer window would be truncated.
  const window = Math.min(model.maxTokens, own.window ?? byModel?.window ?? model.maxTokens);
  const overlap = own.overlap ?? byModel?.overlap ?? Math.floor(window * DEFAULT_OVERLAP_SHARE);
  return { window, overlap: Math.min(overlap, Math.floor((window - 1) / 2)), maxChunks };
}

/**
 * Split the entry's page in place. Returns an error message when the page
 * needs more chunks than allowed (the entry is then not changed).
 */
export function splitPage(entry: Entry, model: LoadedModel, o: ChunkOptions): string | undefined {
  const page = entry.envelope.texts[0] as string;
  const chunks = chunkPage(page, o, model.pageTokenizer ?? estimatedTokenizer);
  if ('tooMany' in chunks) {
    return `page needs more than ${o.maxChunks} chunks of ${o.window} tokens (MAX_CHUNKS); send it in parts or raise MAX_CHUNKS`;
  }
  const n = chunks.texts.length;
  entry.envelope = { ...entry.envelope, texts: chunks.texts };
  entry.spans = chunks.spans;
  if (chunks.encoded) entry.encoded = chunks.encoded;
  entry.vectors = new Array(n);
  entry.truncated = new Array(n).fill(false);
  entry.remaining = n;
  if (entry.hashes) entry.hashes = chunks.texts.map((t) => contentHash([t]));
  return undefined;
}

/**
 * Chunk the pages of a read that ask for it, yielding to the event loop
 * between pages like tokenising does (text-items.ts). A page over MAX_CHUNKS
 * is refused (`too_large`); the rest are kept, chunked or not.
 */
export async function splitPages(
  entries: readonly Entry[],
  model: LoadedModel,
  maxChunks: number,
): Promise<{ kept: Entry[]; refused: Answer[] }> {
  const kept: Entry[] = [];
  const refused: Answer[] = [];
  let sliceStarted = performance.now();
  for (const entry of entries) {
    const chunking = chunkingOf(entry.envelope, model, maxChunks);
    const problem = chunking && splitPage(entry, model, chunking);
    if (problem) refused.push(errorAnswer(entry.delivery, 'too_large', problem, entry.envelope));
    else kept.push(entry);
    if (chunking && performance.now() - sliceStarted > TOKENIZE_SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStarted = performance.now();
    }
  }
  return { kept, refused };
}

/** The normalised mean of a page's chunk vectors (`page_vector`). */
export function pageVector(vectors: readonly Float32Array[]): Float32Array {
  const dim = vectors[0]?.length ?? 0;
  const out = new Float32Array(dim);
  for (const v of vectors)
    for (let i = 0; i < dim; i++) out[i] = (out[i] as number) + (v[i] as number);
  return l2normalize(out);
}
