/**
 * A page longer than a model's window becomes overlapping chunks, each cut
 * on word boundaries (words.ts) at the window the model's own tokenizer
 * measures, pulled back to a sentence or paragraph end when one is near
 * (windows.ts). Every chunk is the exact substring `[start, end)` of the
 * page (UTF-16 offsets), so embedding that substring anywhere gives the
 * chunk's vector; with a tokenizer every chunk is re-encoded whole and
 * shortened until it fits, so no chunk is ever truncated.
 */
import { type CountedWords, nextStart, windowEnd } from './windows.js';
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
  const words = new PageWords(text, splitWords(text), budget, tok);
  const out: PageChunks = { spans: [], texts: [], ...(tok.encode && { encoded: [] }) };
  let first = 0;
  while (words.has(first)) {
    let { end, done } = windowEnd(first, words, budget);
    let piece = words.text(first, end);
    let encoded = tok.encode?.(piece);
    // Counted word by word, a window is exact for WordPiece; other tokenizers
    // merge across words, so the whole chunk is checked and trimmed from its end.
    while (encoded && overWindow(encoded, o.window) && end - 1 > first) {
      let excess = Math.max(1, encoded.ids.length - o.window);
      while (end - 1 > first && excess > 0) excess -= words.prefix(end) - words.prefix(--end);
      done = false;
      piece = words.text(first, end);
      encoded = tok.encode?.(piece);
    }
    out.spans.push(words.span(first, end));
    out.texts.push(piece);
    if (encoded) out.encoded?.push(encoded);
    if (out.spans.length > o.maxChunks) return { tooMany: out.spans.length };
    if (done) break;
    first = nextStart(first, end, words, o.overlap);
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

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The page's words, counted as the windows reach them. A word longer than a
 * whole window (a URL, a base64 blob, a run of Hangul) is cut into pieces
 * that fit, between grapheme clusters, so an emoji or a letter with its
 * accents is never split.
 */
class PageWords implements CountedWords {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly breaks: number[] = [];
  /** prefix[i]: tokens of words [0, i). */
  private readonly sums: number[] = [0];
  /** Next word of the plain split to count. */
  private next = 0;

  constructor(
    private readonly page: string,
    private readonly raw: Words,
    private readonly budget: number,
    private readonly tok: PageTokenizer,
  ) {}

  has(i: number): boolean {
    while (this.starts.length <= i && this.next < this.raw.count) this.countNext();
    return i < this.starts.length;
  }

  prefix(i: number): number {
    return this.sums[i] as number;
  }

  breakAfter(i: number): number {
    return this.breaks[i] as number;
  }

  text(first: number, end: number): string {
    return this.page.slice(this.starts[first], this.ends[end - 1]);
  }

  span(first: number, end: number): [number, number] {
    return [this.starts[first] as number, this.ends[end - 1] as number];
  }

  private countNext(): void {
    const i = this.next++;
    const s = this.raw.starts[i] as number;
    const e = this.raw.ends[i] as number;
    const brk = this.raw.breaks[i] as number;
    const n = this.tok.count(this.page.slice(s, e));
    if (n <= this.budget) {
      this.push(s, e, brk, n);
      return;
    }
    const cuts = [...graphemes.segment(this.page.slice(s, e))].map((g) => s + g.index);
    cuts.push(e);
    let from = 0;
    while (from < cuts.length - 1) {
      // The most grapheme clusters from `from` that fit, by bisection (at least one).
      let lo = from + 1;
      let hi = cuts.length - 1;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (this.tok.count(this.page.slice(cuts[from], cuts[mid])) <= this.budget) lo = mid;
        else hi = mid - 1;
      }
      const piece = this.page.slice(cuts[from], cuts[lo]);
      this.push(
        cuts[from] as number,
        cuts[lo] as number,
        lo === cuts.length - 1 ? brk : 0,
        this.tok.count(piece),
      );
      from = lo;
    }
  }

  private push(start: number, end: number, brk: number, tokens: number): void {
    this.starts.push(start);
    this.ends.push(end);
    this.breaks.push(brk);
    this.sums.push((this.sums[this.sums.length - 1] as number) + tokens);
  }
}
