/**
 * A test fixture core (`fixture:DIM` in the model table): deterministic
 * vectors from a hash of each text, and misbehaviour on request, so the
 * failure paths run against real threads. A text containing
 *   @@throw       throws             @@exit   ends its thread (like a crash)
 *   @@oom         exhausts the heap  @@hang   never returns
 *   @@slow:MS     computes for MS milliseconds
 *   @@nan         returns a vector of NaN (as a model overflowing in fp16 does)
 * Never used unless a model table names it.
 */
import type { Embedder, EmbedOutput } from './embed-core.js';

export function fixtureEmbedder(dim: number): Embedder {
  if (!Number.isInteger(dim) || dim < 1)
    throw new Error('fixture model needs a dimension: fixture:DIM');
  return {
    dim,
    maxTokens: 512,
    embed: async (texts) => {
      for (const t of texts) misbehave(t);
      const data = new Float32Array(texts.length * dim);
      texts.forEach((t, i) => {
        const row = data.subarray(i * dim, (i + 1) * dim);
        if (t.includes('@@nan')) row.fill(NaN);
        else fill(row, t);
      });
      const out: EmbedOutput = {
        data,
        dim,
        truncated: new Uint8Array(texts.length),
        tokens: new Uint32Array(texts.map((t) => Math.min(512, 2 + Math.ceil(t.length / 4)))),
        paddedTokens: texts.length,
      };
      return out;
    },
  };
}

function misbehave(text: string): void {
  if (!text.includes('@@')) return;
  if (text.includes('@@throw')) throw new Error('fixture: poisoned text');
  if (text.includes('@@exit')) process.exit(1);
  if (text.includes('@@oom')) {
    const hoard: number[][] = [];
    for (;;) hoard.push(new Array(1_000_000).fill(hoard.length));
  }
  if (text.includes('@@hang')) for (;;);
  const slow = /@@slow:(\d+)/.exec(text);
  if (slow) {
    const until = Date.now() + Number(slow[1]);
    while (Date.now() < until);
  }
}

/** FNV-1a seeded xorshift: the same text always gives the same unit vector. */
export function fill(out: Float32Array, text: string): void {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  let norm = 0;
  for (let d = 0; d < out.length; d++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    out[d] = (h >>> 0) / 2 ** 32 - 0.5;
    norm += (out[d] as number) ** 2;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let d = 0; d < out.length; d++) out[d]! *= inv;
}
