/**
 * The chunker's view of a model's tokenizer (page-chunker.ts PageTokenizer):
 * the model's own, with word counts cached (pages repeat their words), or an
 * estimate for models without a local tokenizer (remote providers, the test
 * and no-op cores).
 */
import type { Encoded, PageTokenizer } from './page-chunker.js';

/** Distinct words remembered per model; past it the cache starts again (a bound, not an LRU). */
const CACHED_WORDS = 100_000;

export interface TokenizerLike {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
}

/** The model's own tokenizer: exact counts; `encode` as the threads will read the text. */
export function modelTokenizer(
  tokenizer: TokenizerLike,
  encode: (text: string) => Encoded,
): PageTokenizer {
  const cache = new Map<string, number>();
  return {
    specials: tokenizer.encode('').length,
    encode,
    count(text) {
      let n = cache.get(text);
      if (n === undefined) {
        n = tokenizer.encode(text, { add_special_tokens: false }).length;
        if (cache.size >= CACHED_WORDS) cache.clear();
        cache.set(text, n);
      }
      return n;
    },
  };
}

/**
 * Without a tokenizer: about four ASCII characters a token (English prose in
 * WordPiece and BPE vocabularies) and one token for every other character
 * (CJK, emoji, accented letters): an over-estimate outside ASCII, so chunks
 * come out shorter than the window rather than truncated.
 */
export const estimatedTokenizer: PageTokenizer = {
  specials: 2,
  count(text) {
    let ascii = 0;
    let other = 0;
    for (const ch of text) {
      if (ch.charCodeAt(0) < 0x80) ascii++;
      else other++;
    }
    return Math.ceil(ascii / 4) + other;
  },
};
