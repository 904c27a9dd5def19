/**
 * Tokenisation shared by the main thread (which packs micro-batches on exact
 * token counts) and the embedding threads (which tokenise only when handed raw
 * texts). One implementation, so both sides cut at the same place.
 */
import type { PreTrainedTokenizer } from '@huggingface/transformers';

import type { CoreSpec } from './embed-core.js';

/**
 * Apply the spec's hub settings and load its tokenizer. Transformers.js is
 * imported on first use: the main thread of a worker serving only test or
 * no-op cores never loads it.
 */
export async function loadTokenizer(
  spec: Pick<CoreSpec, 'ref' | 'local' | 'allowRemote' | 'cacheDir'>,
): Promise<{ tokenizer: PreTrainedTokenizer; options: { local_files_only: boolean } }> {
  const { AutoTokenizer, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = spec.allowRemote;
  if (spec.cacheDir) env.cacheDir = spec.cacheDir;
  const options = { local_files_only: spec.local || !spec.allowRemote };
  return { tokenizer: await AutoTokenizer.from_pretrained(spec.ref, options), options };
}

/** A micro-batch's texts as token ids: row i is ids[offsets[i] .. offsets[i + 1]). */
export interface TokenizedBatch {
  ids: Int32Array;
  /** n + 1 entries. */
  offsets: Uint32Array;
  /** 1 where the text was cut to the model's token limit. */
  truncated: Uint8Array;
}

/** One text's ids, cut to maxTokens keeping the closing special token ([SEP]) the model was trained to see. */
export function encodeText(
  tokenizer: PreTrainedTokenizer,
  text: string,
  maxTokens: number,
): { ids: number[]; truncated: boolean } {
  const ids = tokenizer.encode(text) as number[];
  if (ids.length <= maxTokens) return { ids, truncated: false };
  return { ids: [...ids.slice(0, maxTokens - 1), ids[ids.length - 1] as number], truncated: true };
}

/** Concatenate already-encoded rows into one transferable batch. */
export function joinRows(
  rows: readonly { ids: ArrayLike<number>; truncated: boolean }[],
): TokenizedBatch {
  const offsets = new Uint32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++)
    offsets[i + 1] = (offsets[i] as number) + (rows[i] as { ids: ArrayLike<number> }).ids.length;
  const ids = new Int32Array(offsets[rows.length] as number);
  const truncated = new Uint8Array(rows.length);
  rows.forEach((row, i) => {
    ids.set(row.ids, offsets[i] as number);
    truncated[i] = row.truncated ? 1 : 0;
  });
  return { ids, offsets, truncated };
}
