/**
 * Token-aware batching. Texts are ordered by length and split into
 * micro-batches of consecutive lengths, each under maxBatchTokens padded
 * tokens (texts x longest) and batchSize texts, choosing the split that
 * costs least under a simple model of CPU inference: a batch costs its
 * padded tokens plus a fixed BATCH_OVERHEAD_TOKENS. So short texts batch
 * together (the overhead is shared) and a batch of mixed lengths is split
 * where the padding would cost more than another batch.
 */
export interface Sized {
  tokens: number;
}

export interface PackLimits {
  maxBatchTokens: number;
  batchSize: number;
  /** Texts longer than this run alone (SOLO_TOKENS for transformer models; unset: no such rule). */
  soloTokens?: number;
  /**
   * Remote models: a batch is a request, billed and rate-limited by the sum of
   * its tokens, not by padding. Then maxBatchTokens bounds the sum and every
   * extra request costs `requestCostTokens`, so batches are as full as the
   * limits let them be.
   */
  requestCostTokens?: number;
}

/**
 * What one more batch costs, in tokens of compute. Raw ORT, one thread, the
 * generated MiniLM-shaped model (q8): a 16-token text takes 2.48 ms alone
 * and 1.28 ms in a batch of 32, while a token costs ~80 us, so a batch has
 * ~1.2 ms, ~15 tokens, of fixed cost.
 */
export const BATCH_OVERHEAD_TOKENS = 16;

/**
 * Texts longer than this run alone (real models: `soloTokens` in PackLimits;
 * the built-in test and no-op cores have no attention to pay for). Same setup: texts of 64 and 96 tokens
 * cost 7-13% less per token in batches of 2-8, while batches of 128-, 180-
 * and 256-token texts cost 2-7% more per token than running them one by one
 * (attention grows with length, and so does the batch's working set).
 */
export const SOLO_TOKENS = 112;

/** Whether one more text, no shorter than the longest, could still join this batch. */
export function canGrow(batch: readonly Sized[], limits: PackLimits): boolean {
  const longest = Math.max(...batch.map((b) => b.tokens));
  const size =
    limits.requestCostTokens === undefined
      ? (batch.length + 1) * longest
      : batch.reduce((n, b) => n + b.tokens, longest);
  return (
    longest <= (limits.soloTokens ?? Infinity) &&
    batch.length < limits.batchSize &&
    size <= limits.maxBatchTokens
  );
}

/** A cheap token estimate from the text's length, capped at the model's limit. */
export function estimateTokens(text: string, maxTokens: number): number {
  // WordPiece averages ~4 characters per token on English prose; +2 for [CLS]/[SEP].
  return Math.min(maxTokens, 2 + Math.ceil(text.length / 4));
}

/** Pack items into micro-batches; every item lands in exactly one batch, shortest first. */
export function packBatches<T extends Sized>(items: readonly T[], limits: PackLimits): T[][] {
  const sorted = [...items].sort((a, b) => a.tokens - b.tokens);
  const n = sorted.length;
  const solo = limits.soloTokens ?? Infinity;
  const perRequest = limits.requestCostTokens;
  // cost[j]: least cost of packing the j shortest; start[j]: where the last batch of that packing begins.
  const cost = new Float64Array(n + 1);
  const start = new Int32Array(n + 1);
  for (let j = 1; j <= n; j++) {
    const longest = (sorted[j - 1] as T).tokens;
    cost[j] = Infinity;
    let sum = 0;
    for (let i = j - 1; i >= 0 && j - i <= limits.batchSize; i--) {
      const texts = j - i;
      sum += (sorted[i] as T).tokens;
      const size = perRequest === undefined ? texts * longest : sum;
      // A text over the token budget (or soloTokens) still goes, alone.
      if (texts > 1 && (longest > solo || size > limits.maxBatchTokens)) break;
      const c = (cost[i] as number) + (perRequest ?? BATCH_OVERHEAD_TOKENS) + size;
      // On a tie the shorter last batch wins, so the batches before it (taken first) are full.
      if (c < (cost[j] as number)) {
        cost[j] = c;
        start[j] = i;
      }
    }
  }
  const batches: T[][] = [];
  for (let j = n; j > 0; j = start[j] as number) batches.push(sorted.slice(start[j], j));
  return batches.reverse();
}
