/**
 * Where windows of a page begin and end, in words, given each word's token
 * count. Pure arithmetic over a `CountedWords` that counts on demand, so a
 * page refused at MAX_CHUNKS is never counted past its limit; page-chunker.ts
 * checks every window against the real tokenizer.
 */
import { Break } from './words.js';

/** Words with cumulative token counts, counted as far as they are asked for. */
export interface CountedWords {
  /** Whether word i exists (counting up to it). */
  has(i: number): boolean;
  /** Tokens of words [0, i); i at most one past a word `has` said exists. */
  prefix(i: number): number;
  /** Break quality after word i. */
  breakAfter(i: number): number;
}

/**
 * A break this late in a window ends it there rather than mid-sentence: a
 * paragraph in the last 30% of the budget, a sentence in the last 20%. Later
 * than that, the text lost from the window costs more than the cut.
 */
const PARAGRAPH_FROM = 0.7;
const SENTENCE_FROM = 0.8;

/**
 * End (exclusive, in words) of the window starting at word `first`: as many
 * words as fit `budget` tokens, pulled back to a paragraph or sentence end
 * when one is near the end. Always at least one word; `done` when the page ends there.
 */
export function windowEnd(
  first: number,
  words: CountedWords,
  budget: number,
): { end: number; done: boolean } {
  const base = words.prefix(first);
  let end = first + 1;
  while (words.has(end) && words.prefix(end + 1) - base <= budget) end++;
  if (!words.has(end)) return { end, done: true };
  let sentence = -1;
  for (let k = end; k > first + 1; k--) {
    const used = words.prefix(k) - base;
    if (used < budget * PARAGRAPH_FROM) break;
    const b = words.breakAfter(k - 1);
    if (b === Break.Paragraph) return { end: k, done: false };
    if (b === Break.Sentence && sentence < 0 && used >= budget * SENTENCE_FROM) sentence = k;
  }
  return { end: sentence >= 0 ? sentence : end, done: false };
}

/**
 * First word of the next window: the earliest word after `first` whose tail
 * up to `end` fits `overlap` tokens, so consecutive windows share at most
 * that many tokens and every window starts later than the one before.
 */
export function nextStart(
  first: number,
  end: number,
  words: CountedWords,
  overlap: number,
): number {
  let start = end;
  while (start - 1 > first && words.prefix(end) - words.prefix(start - 1) <= overlap) start--;
  return start;
}
