import { describe, expect, it } from 'vitest';

import { estimateTokens, packBatches } from '../src/worker/batcher.js';

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
    const batches = packBatches([...long, ...short], { maxBatchTokens: 1024, batchSize: 64 });
    expect(batches.map((b) => b.length)).toEqual([40, 2, 2]);
  });

  it('closes a batch before its shortest text is padded by more than 8 tokens or 15%', () => {
    const sizes = [12, 14, 20, 21, 60, 66, 70, 100, 117, 138];
    const batches = packBatches(
      sizes.map((tokens) => ({ tokens })),
      { maxBatchTokens: 4096, batchSize: 64 },
    );
    expect(batches.map((b) => b.map((x) => x.tokens))).toEqual([
      [12, 14, 20],
      [21],
      [60, 66, 70],
      [100, 117],
      [138],
    ]);
  });

  it('estimates tokens from length, capped by the model limit', () => {
    expect(estimateTokens('abcd'.repeat(10), 512)).toBe(12);
    expect(estimateTokens('x'.repeat(100_000), 512)).toBe(512);
  });
});
