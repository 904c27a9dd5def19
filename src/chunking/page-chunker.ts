/**
 * A page longer than a model's window becomes overlapping chunks, each cut
 * on word boundaries (words.ts) at the window the model's own tokenizer
 * measures, pulled back to a sentence or paragraph end when one is near
 * (windows.ts). Every chunk is the exact substring `[start, end)` of the
 * page (UTF-16 offsets), so embedding that substring anywhere gives the
 * chunk's vector; with a tokenizer every chunk is re-encoded whole and
 * shortened until it fits, so no chunk is ever truncated.
 */
import { nextStart, prefixSums, windowEnd } from './windows.js';
import { splitWords, type Words } from './words.js';

export interface Encoded {
  ids: number[];
  truncated: boolean;
}

/** What the chunker needs of a model's tokenizer. */
export interface PageTokenizer {
  /** Tokens of a piece of text, without the model's special tokens (an estimate without a tokenizer). */
  count(text: string): number;
  /** The ids the model reads for a text, specials included, cut at its limit; absent for models without a local tokenizer. */
  encode?(text: string): Encoded;
  /** Special tokens the model adds to every text (BERT's [CLS] and [SEP]: 2). */
  specials: number;
}

export interface ChunkOptions {
  /** Most tokens of one chunk, the model's special tokens included. */
  window: number;
  /** Most tokens a chunk shares with the one before it. */
  overlap: number;
  /** More chunks than this and the page is refused (chunking stops early). */
  maxChunks: number;
}

export interface PageChunks {
  /** `[start, end)` of each chunk in the page, in UTF-16 code units. */
  spans: [number, number][];
  texts: string[];
  /** Each chunk's ids (with a tokenizer), so they are not tokenised twice. */
  encoded?: Encoded[];
}

/** Texts this short (in UTF-16 units per window token) are tried whole first: most pages of a sentence or two. */
const WHOLE_FIRST_CHARS_PER_TOKEN = 4;

/** Split a page; `{ tooMany }` when it needs more than `maxChunks` chunks. */
export function chunkPage(
  text: string,
  o: ChunkOptions,
  tok: PageTokenizer,
): PageChunks | { tooMany: number } {
  const whole = wholePage(text, o, tok);
  if (whole) return whole;
  const budget = o.window - tok.specials;
  const words = splitLongWords(text, splitWords(text), budget, tok);
  const prefix = prefixSums(words.counts);
  const out: PageChunks = { spans: [], texts: [], ...(tok.encode && { encoded: [] }) };
  let first = 0;
  while (first < words.count) {
    let end = windowEnd(first, prefix, words.breaks, budget);
    let piece = text.slice(words.starts[first], words.ends[end - 1]);
    let encoded = tok.encode?.(piece);
    // Counted word by word, a window is exact for WordPiece; other tokenizers
    // merge across words, so the whole chunk is checked and trimmed from its end.
    while (encoded && overWindow(encoded, o.window) && end - 1 > first) {
      let excess = Math.max(1, encoded.ids.length - o.window);
      while (end - 1 > first && excess > 0) excess -= words.counts[--end] as number;
      piece = text.slice(words.starts[first], words.ends[end - 1]);
      encoded = tok.encode?.(piece);
    }
    out.spans.push([words.starts[first] as number, words.ends[end - 1] as number]);
    out.texts.push(piece);
    if (encoded) out.encoded?.push(encoded);
    if (out.spans.length > o.maxChunks) return { tooMany: out.spans.length };
    if (end >= words.count) break;
    first = nextStart(first, end, prefix, o.overlap);
  }
  return out;
}

function overWindow(e: Encoded, window: number): boolean {
  return e.truncated || e.ids.length > window;
}

/** The page as one chunk when it fits the window (the span is the whole text, so its vector is today's). */
function wholePage(text: string, o: ChunkOptions, tok: PageTokenizer): PageChunks | undefined {
  if (tok.encode) {
    if (text.length > o.window * WHOLE_FIRST_CHARS_PER_TOKEN) return undefined;
    const encoded = tok.encode(text);
    if (overWindow(encoded, o.window)) return undefined;
    return { spans: [[0, text.length]], texts: [text], encoded: [encoded] };
  }
  if (tok.count(text) + tok.specials > o.window) return undefined;
  return { spans: [[0, text.length]], texts: [text] };
}

interface CountedWords extends Words {
  counts: Float64Array;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * Count every word; a word longer than a whole window (a URL, a base64 blob,
 * a run of Hangul) is cut into pieces that fit, between grapheme clusters,
 * so an emoji or a letter with its accents is never split.
 */
function splitLongWords(
  text: string,
  words: Words,
  budget: number,
  tok: PageTokenizer,
): CountedWords {
  const starts: number[] = [];
  const ends: number[] = [];
  const breaks: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < words.count; i++) {
    const s = words.starts[i] as number;
    const e = words.ends[i] as number;
    const n = tok.count(text.slice(s, e));
    if (n <= budget) {
      starts.push(s);
      ends.push(e);
      breaks.push(words.breaks[i] as number);
      counts.push(n);
      continue;
    }
    const cuts = [...graphemes.segment(text.slice(s, e))].map((g) => s + g.index);
    cuts.push(e);
    let from = 0;
    while (from < cuts.length - 1) {
      // The most grapheme clusters from `from` that fit, by bisection (at least one).
      let lo = from + 1;
      let hi = cuts.length - 1;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (tok.count(text.slice(cuts[from], cuts[mid])) <= budget) lo = mid;
        else hi = mid - 1;
      }
      starts.push(cuts[from] as number);
      ends.push(cuts[lo] as number);
      breaks.push(lo === cuts.length - 1 ? (words.breaks[i] as number) : 0);
      counts.push(tok.count(text.slice(cuts[from], cuts[lo])));
      from = lo;
    }
  }
  return {
    starts: Uint32Array.from(starts),
    ends: Uint32Array.from(ends),
    breaks: Uint8Array.from(breaks),
    counts: Float64Array.from(counts),
    count: starts.length,
  };
}
