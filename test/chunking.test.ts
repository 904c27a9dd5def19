/**
 * The page chunker on its own (issue 16): windows measured by the model's own
 * tokenizer (the generated tiny model's WordPiece), offsets on whole
 * characters whatever the script, and the estimate used without a tokenizer.
 */
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';

import { chunkPage, type PageChunks, type PageTokenizer } from '../src/chunking/page-chunker.js';
import { estimatedTokenizer, modelTokenizer } from '../src/chunking/tokenizers.js';
import { splitWords } from '../src/chunking/words.js';
import { encodeText, loadTokenizer } from '../workers/tokenize.js';
import { tinyModel } from './helpers/models.js';
import { coverageProblem, englishPage, graphemeBoundaries, unicodePage } from './helpers/pages.js';

let tokenizer: PreTrainedTokenizer;
let tok: PageTokenizer;
const MAX_TOKENS = 512;

beforeAll(async () => {
  const model = await tinyModel();
  ({ tokenizer } = await loadTokenizer({ ref: model.dir, local: true, allowRemote: false }));
  tok = modelTokenizer(tokenizer, (text) => encodeText(tokenizer, text, MAX_TOKENS));
});

const tokensOf = (text: string) => tokenizer.encode(text).length;

function chunked(text: string, window: number, overlap: number, maxChunks = 10_000): PageChunks {
  const out = chunkPage(text, { window, overlap, maxChunks }, tok);
  if ('tooMany' in out) throw new Error(`too many chunks: ${out.tooMany}`);
  return out;
}

/** Chunks in order covering the page, each the exact substring of its span. */
function expectCovers(text: string, c: PageChunks): void {
  expect(coverageProblem(text, c.spans)).toBeUndefined();
  c.spans.forEach(([start, end], i) => expect(c.texts[i]).toBe(text.slice(start, end)));
}

describe('page chunker', () => {
  it('cuts a 5,000-token page into windows that fit, cover it in order, and overlap by at most the overlap', () => {
    const page = englishPage(5_000, tokensOf);
    expect(tokensOf(page)).toBeGreaterThanOrEqual(5_000);
    const c = chunked(page, 128, 16);
    expectCovers(page, c);
    expect(c.spans.length).toBeGreaterThan(5_000 / 128);
    c.texts.forEach((t, i) => {
      expect(tokensOf(t)).toBeLessThanOrEqual(128);
      expect(c.encoded?.[i]?.ids).toEqual(tokenizer.encode(t));
      expect(c.encoded?.[i]?.truncated).toBe(false);
    });
    for (let i = 1; i < c.spans.length; i++) {
      const start = (c.spans[i] as [number, number])[0];
      const prevEnd = (c.spans[i - 1] as [number, number])[1];
      const shared = start < prevEnd ? tokensOf(page.slice(start, prevEnd)) - 2 : 0;
      expect(shared).toBeLessThanOrEqual(16);
      expect(shared).toBeGreaterThan(0);
    }
    // Windows are full: at least 70% of the budget (the sentence/paragraph pull-back's floor).
    c.texts.slice(0, -1).forEach((t) => expect(tokensOf(t) - 2).toBeGreaterThanOrEqual(0.7 * 126));
  });

  it('ends a window at a sentence or paragraph when one is in its last part', () => {
    const page = englishPage(3_000, tokensOf);
    const c = chunked(page, 128, 16);
    const ends = c.spans.slice(0, -1).map(([, end]) => end);
    const atBreak = ends.filter((end) => /[.!?]$/.test(page.slice(0, end)) || page[end] === '\n');
    // One word in ~12 ends a sentence: a cut at the last word that fits would land
    // there ~8% of the time. With sentences of ~30 tokens and a look-back of the last
    // 20% (25 tokens; 30% for paragraphs), most windows find one.
    expect(atBreak.length).toBeGreaterThanOrEqual(0.6 * ends.length);
  });

  it('gives a page that fits one chunk spanning the whole text, as sent', () => {
    const text = '  A short page of one sentence.  ';
    const c = chunked(text, 128, 16);
    expect(c.spans).toEqual([[0, text.length]]);
    expect(c.texts).toEqual([text]);
  });

  it('keeps offsets on whole characters: emoji sequences, CJK, combining marks, surrogate pairs', () => {
    const page = unicodePage(2_000, tokensOf);
    const c = chunked(page, 64, 8);
    expectCovers(page, c);
    const boundaries = graphemeBoundaries(page);
    for (const [start, end] of c.spans) {
      expect(boundaries.has(start)).toBe(true);
      expect(boundaries.has(end)).toBe(true);
    }
    c.texts.forEach((t) => expect(tokensOf(t)).toBeLessThanOrEqual(64));
    // CJK runs have no spaces: the chunker still cut inside them (each ideograph is a word).
    expect(c.texts.some((t) => /^[\p{Script=Han}\p{Script=Hiragana}]/u.test(t))).toBe(true);
  });

  it('cuts a word longer than a window between grapheme clusters', () => {
    const blob = 'x'.repeat(300) + '👩‍👩‍👧‍👦'.repeat(40) + 'é'.normalize('NFD').repeat(200);
    const page = `before ${blob} after`;
    const c = chunked(page, 32, 4);
    expectCovers(page, c);
    const boundaries = graphemeBoundaries(page);
    for (const [start] of c.spans) expect(boundaries.has(start)).toBe(true);
    c.texts.forEach((t) => expect(tokensOf(t)).toBeLessThanOrEqual(32));
  });

  it('stops early and reports a page that needs more chunks than allowed', () => {
    const page = englishPage(2_000, tokensOf);
    const out = chunkPage(page, { window: 64, overlap: 8, maxChunks: 5 }, tok);
    expect(out).toEqual({ tooMany: 6 });
  });

  it('chunks on an estimate without a tokenizer (remote models), never over the window by it', () => {
    const page = unicodePage(2_000, tokensOf);
    const out = chunkPage(page, { window: 100, overlap: 10, maxChunks: 1000 }, estimatedTokenizer);
    if ('tooMany' in out) throw new Error('too many');
    expectCovers(page, out);
    expect(out.encoded).toBeUndefined();
    out.texts.forEach((t) => expect(estimatedTokenizer.count(t)).toBeLessThanOrEqual(98));
  });

  it('splits words at whitespace and around each CJK character', () => {
    const text = 'Hello, wörld!\n東京。 🇯🇵 e\u0301';
    const w = splitWords(text);
    const words = Array.from({ length: w.count }, (_, i) => text.slice(w.starts[i], w.ends[i]));
    expect(words).toEqual(['Hello,', 'wörld!', '東', '京', '。', '🇯🇵', 'e\u0301']);
    expect(Array.from(w.breaks.subarray(0, w.count))).toEqual([0, 2, 0, 0, 1, 0, 0]);
  });
});
