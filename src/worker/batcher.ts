/**
 * Token-aware batching. Texts are ordered by length and packed into
 * micro-batches whose padded size (texts x longest) stays under
 * maxBatchTokens, with at most batchSize texts, so short texts batch together
 * and long ones do not pad each other (padding is wasted compute on CPU).
 * A batch also closes before its shortest text would be padded by more than
 * PAD_SLACK_TOKENS and PAD_SLACK_SHARE of the longest: in raw ORT that bound
 * cut the cost of mixed-length batches from 1.29x to 1.14x the best packing
 * (BENCHMARKS.md, what-if), while a few tokens of slack keeps short texts
 * (12-20 tokens) in one batch, where batch size matters more than padding.
 */
export interface Sized {
  tokens: number;
}

export interface PackLimits {
  maxBatchTokens: number;
  batchSize: number;
}

/** Padding a batch may add to its shortest text: the larger of these. */
export const PAD_SLACK_TOKENS = 8;
export const PAD_SLACK_SHARE = 0.15;

/** A cheap token estimate from the text's length, capped at the model's limit. */
export function estimateTokens(text: string, maxTokens: number): number {
  // WordPiece averages ~4 characters per token on English prose; +2 for [CLS]/[SEP].
  return Math.min(maxTokens, 2 + Math.ceil(text.length / 4));
}

/** Pack items into micro-batches; every item lands in exactly one batch. */
export function packBatches<T extends Sized>(items: readonly T[], limits: PackLimits): T[][] {
  const sorted = [...items].sort((a, b) => a.tokens - b.tokens);
  const batches: T[][] = [];
  let current: T[] = [];
  for (const item of sorted) {
    // Sorted ascending, so this item is the longest in the batch if it joins.
    const padded = (current.length + 1) * item.tokens;
    const shortest = current[0];
    const padding = shortest ? item.tokens - shortest.tokens : 0;
    if (
      shortest &&
      (current.length >= limits.batchSize ||
        padded > limits.maxBatchTokens ||
        padding > Math.max(PAD_SLACK_TOKENS, PAD_SLACK_SHARE * item.tokens))
    ) {
      batches.push(current);
      current = [];
    }
    current.push(item);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
