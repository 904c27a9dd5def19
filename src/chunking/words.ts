/**
 * A page cut into the places a chunk may begin or end: words, never inside
 * one. Whitespace runs separate words; each CJK ideograph or kana is a word
 * of its own (those scripts have no spaces, and BERT-family tokenizers give
 * each its own token), so a chunk of Chinese or Japanese can still end at a
 * sentence. A word keeps its combining marks, emoji modifiers and ZWJ
 * sequences (none of them is whitespace or CJK), and surrogate pairs are read
 * as one code point, so offsets always fall between whole characters.
 *
 * A hand-written scanner: a `u`-flag regex with script properties cost more
 * than tokenising the chunks (22 ms against 21 ms on a 25,000-character page).
 */

/** How good a place to end a chunk the end of a word is. */
export const enum Break {
  /** Inside a sentence. */
  Word = 0,
  /** After sentence-ending punctuation. */
  Sentence = 1,
  /** Before a line break. */
  Paragraph = 2,
}

export interface Words {
  /** UTF-16 offset where word i begins. */
  starts: Uint32Array;
  /** UTF-16 offset just past word i. */
  ends: Uint32Array;
  /** Break quality after word i. */
  breaks: Uint8Array;
  count: number;
}

export function splitWords(text: string): Words {
  // At most one word per UTF-16 unit: allocate once.
  const starts = new Uint32Array(text.length);
  const ends = new Uint32Array(text.length);
  const breaks = new Uint8Array(text.length);
  let n = 0;
  let i = 0;
  const len = text.length;
  while (i < len) {
    let cp = text.codePointAt(i) as number;
    if (isSpace(cp)) {
      if (cp === 10 && n > 0) breaks[n - 1] = Break.Paragraph;
      i++;
      continue;
    }
    const start = i;
    if (isCjk(cp)) {
      i += cp > 0xffff ? 2 : 1;
      // Its combining marks (kana voicing marks, variation selectors) stay with it.
      while (i < len && isMark((cp = text.codePointAt(i) as number))) i += cp > 0xffff ? 2 : 1;
    } else {
      while (i < len && !isSpace(cp) && !isCjk(cp)) {
        i += cp > 0xffff ? 2 : 1;
        if (i < len) cp = text.codePointAt(i) as number;
      }
    }
    starts[n] = start;
    ends[n] = i;
    breaks[n] = endsSentence(text, start, i) ? Break.Sentence : Break.Word;
    n++;
  }
  return { starts, ends, breaks, count: n };
}

/** `\s` as JavaScript regexes define it. */
function isSpace(cp: number): boolean {
  if (cp <= 0x20) return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d);
  if (cp < 0xa0) return false;
  return (
    cp === 0xa0 ||
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000 ||
    cp === 0xfeff
  );
}

/** Han ideographs, hiragana and katakana (with their punctuation block), each one word. */
function isCjk(cp: number): boolean {
  if (cp < 0x3000) return false;
  return (
    (cp >= 0x3001 && cp <= 0x30ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xff01 && cp <= 0xff9f) ||
    (cp >= 0x20000 && cp <= 0x3ffff)
  );
}

function isMark(cp: number): boolean {
  return (
    (cp >= 0x0300 && cp <= 0x036f) ||
    cp === 0x3099 ||
    cp === 0x309a ||
    (cp >= 0xfe00 && cp <= 0xfe0f) ||
    (cp >= 0xe0100 && cp <= 0xe01ef)
  );
}

const CLOSERS = new Set([...')]"\'»”’」』）']);
const ENDERS = new Set([...'.!?。！？…‼⁇⁈⁉']);

/** Ends with sentence punctuation, possibly inside closing quotes or brackets. */
function endsSentence(text: string, start: number, end: number): boolean {
  let k = end - 1;
  while (k > start && CLOSERS.has(text[k] as string)) k--;
  return ENDERS.has(text[k] as string);
}
