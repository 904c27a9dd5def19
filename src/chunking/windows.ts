/**
 * Where windows of a page begin and end, in words (words.ts), given each
 * word's token count. Pure arithmetic: page-chunker.ts supplies the counts
 * and checks every window against the real tokenizer.
 */
import { Break } from './words.js';

/** Cumulative token counts: prefix[i] = tokens of words [0, i). */
export function prefixSums(tokens: ArrayLike<number>): Float64Array {
  const prefix = new Float64Array(tokens.length + 1);
  for (let i = 0; i < tokens.length; i++)
    prefix[i + 1] = (prefix[i] as number) + (tokens[i] as number);
  return prefix;
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
 * when one is near the end. Always at least one word.
 */
export function windowEnd(
  first: number,
  prefix: Float64Array,
  breaks: Uint8Array,
  budget: number,
): number {
  const n = prefix.length - 1;
  const base = prefix[first] as number;
  let end = first + 1;
  while (end < n && (prefix[end + 1] as number) - base <= budget) end++;
  if (end >= n) return n;
  let sentence = -1;
  for (let k = end; k > first + 1; k--) {
    const used = (prefix[k] as number) - base;
    if (used < budget * PARAGRAPH_FROM) break;
    const b = breaks[k - 1] as number;
    if (b === Break.Paragraph) return k;
    if (b === Break.Sentence && sentence < 0 && used >= budget * SENTENCE_FROM) sentence = k;
  }
  return sentence >= 0 ? sentence : end;
}

/**
 * First word of the next window: the earliest word after `first` whose tail
 * up to `end` fits `overlap` tokens, so consecutive windows share at most
 * that many tokens and every window starts later than the one before.
 */
export function nextStart(
  first: number,
  end: number,
  prefix: Float64Array,
  overlap: number,
): number {
  let start = end;
  while (start - 1 > first && (prefix[end] as number) - (prefix[start - 1] as number) <= overlap)
    start--;
  return start;
}
