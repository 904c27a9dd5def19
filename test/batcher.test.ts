import { describe, expect, it } from 'vitest';

import {
  BATCH_OVERHEAD_TOKENS,
  estimateTokens,
  packBatches,
  SOLO_TOKENS,
} from '../src/worker/batcher.js';

function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('token-aware packing', () => {
  it('puts every item in exactly one batch, within both limits, shortest first', () => {
    const r = rng(7);
    const items = Array.from({ length: 500 }, (_, i) => ({
      i,
      tokens: 1 + Math.floor(r() ** 3 * 512),
    }));
    const batches = packBatches(items, { maxBatchTokens: 2048, batchSize: 32 });
    const seen = batches
      .flat()
      .map((x) => x.i)
      .sort((a, b) => a - b);
    expect(seen).toEqual(items.map((x) => x.i));
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(32);
      const longest = Math.max(...b.map((x) => x.tokens));
      // A single item longer than the budget still goes alone rather than being dropped.
      if (b.length > 1) expect(b.length * longest).toBeLessThanOrEqual(2048);
    }
    const flat = batches.flat().map((x) => x.tokens);
    expect(flat).toEqual([...flat].sort((a, b) => a - b));
  });

  it('batches short texts together and keeps long ones apart', () => {
    const short = Array.from({ length: 40 }, () => ({ tokens: 16 }));
    const long = Array.from({ length: 4 }, () => ({ tokens: 512 }));
    const batches = packBatches([...long, ...short], {
      maxBatchTokens: 1024,
      batchSize: 64,
      soloTokens: SOLO_TOKENS,
    });
    expect(batches.map((b) => b.length)).toEqual([40, 1, 1, 1, 1]);
  });

  it('splits sorted texts where another batch costs less than the padding it saves', () => {
    const sizes = [12, 14, 20, 21, 60, 66, 70, 100, 110, 138];
    const batches = packBatches(
      sizes.map((tokens) => ({ tokens })),
      { maxBatchTokens: 4096, batchSize: 64, soloTokens: SOLO_TOKENS },
    );
    expect(batches.map((b) => b.map((x) => x.tokens))).toEqual([
      [12, 14, 20, 21],
      [60, 66, 70],
      [100, 110],
      // Over SOLO_TOKENS: alone, whatever the budget.
      [138],
    ]);
  });

  it('finds the cheapest split of every small input (brute force over all splits)', () => {
    const r = rng(11);
    const limits = { maxBatchTokens: 600, batchSize: 4, soloTokens: SOLO_TOKENS };
    const costOf = (batches: { tokens: number }[][]) =>
      batches.reduce(
        (sum, b) => sum + BATCH_OVERHEAD_TOKENS + b.length * Math.max(...b.map((x) => x.tokens)),
        0,
      );
    for (let round = 0; round < 200; round++) {
      const items = Array.from({ length: 1 + Math.floor(r() * 9) }, () => ({
        tokens: 1 + Math.floor(r() ** 2 * 400),
      }));
      const sorted = [...items].sort((a, b) => a.tokens - b.tokens);
      let best = Infinity;
      // Every way to cut the sorted list into consecutive runs, within the limits.
      for (let mask = 0; mask < 2 ** (sorted.length - 1); mask++) {
        const runs: { tokens: number }[][] = [[]];
        sorted.forEach((x, i) => {
          if (i > 0 && mask & (1 << (i - 1))) runs.push([]);
          runs.at(-1)!.push(x);
        });
        const fits = runs.every((b) => {
          const longest = (b.at(-1) as { tokens: number }).tokens;
          return (
            b.length === 1 ||
            (b.length <= limits.batchSize &&
              longest <= SOLO_TOKENS &&
              b.length * longest <= limits.maxBatchTokens)
          );
        });
        if (fits) best = Math.min(best, costOf(runs));
      }
      const packed = packBatches(items, limits);
      expect(packed.flat()).toHaveLength(items.length);
      expect(costOf(packed)).toBe(best);
    }
  });

  it('estimates tokens from length, capped by the model limit', () => {
    expect(estimateTokens('abcd'.repeat(10), 512)).toBe(12);
    expect(estimateTokens('x'.repeat(100_000), 512)).toBe(512);
  });
});
