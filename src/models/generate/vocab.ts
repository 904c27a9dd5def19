/**
 * The generated WordPiece vocabulary. It is not learned from text: it is a
 * deterministic list that guarantees every printable ASCII word tokenizes
 * without [UNK] (every single character and its "##" continuation is in it),
 * then common English words and suffixes, then letter pairs and triples to
 * fill the preset's vocab size so token counts look roughly like a real BERT's.
 */
import { StreambedError } from '../../errors.js';

export const SPECIAL_TOKENS = {
  pad: '[PAD]',
  unk: '[UNK]',
  cls: '[CLS]',
  sep: '[SEP]',
  mask: '[MASK]',
} as const;

export type VocabLayout = 'compact' | 'bert';

export interface Vocab {
  /** Token strings; the index is the token id. */
  tokens: string[];
  /** Ids of the special tokens. */
  special: Record<keyof typeof SPECIAL_TOKENS, number>;
}

// Non-ASCII characters common in English text that BertNormalizer keeps
// (it strips accents from letters, so é and ü already map to ASCII).
const EXTRA_CHARS = '‘’“”–—…•€£¥°±×÷§©®';

const COMMON_WORDS = (
  'the of and to in is was for on that with as by at it from he be this are or his an ' +
  'which not but they had have were has one their also first new her she its been more ' +
  'after two who all other when there time would can what some into only out about up ' +
  'we you so if no will do my your our them than then these may most over such ' +
  'years year made many where world any work used people well state city part between ' +
  'because while before through during each both under since three like make just ' +
  'data model text page user system file code test value list name type error result ' +
  'request stream worker queue redis vector search token hello good day night water ' +
  'house school music game book life home family company government number group ' +
  'university national american english history united found known called later'
).split(' ');

const SUFFIXES = [
  's', 'es', 'ed', 'ing', 'er', 'ers', 'est', 'ly', 'tion', 'tions', 'sion', 'ment', 'ments',
  'ness', 'able', 'ible', 'al', 'ial', 'ic', 'ical', 'ive', 'ity', 'ous', 'ful', 'less',
  'ize', 'ized', 'ise', 'ation', 'ations', 'ist', 'ism', 'ian', 'ant', 'ent', 'ence', 'ance',
];

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Printable ASCII except space and upper case (the normalizer lowercases). */
function singleChars(): string[] {
  const chars: string[] = [];
  for (let c = 0x21; c <= 0x7e; c++) {
    const ch = String.fromCharCode(c);
    if (ch >= 'A' && ch <= 'Z') continue;
    chars.push(ch);
  }
  return [...chars, ...EXTRA_CHARS];
}

function* letterCombos(length: number): Generator<string> {
  const n = LETTERS.length;
  const total = n ** length;
  for (let k = 0; k < total; k++) {
    let s = '';
    let x = k;
    for (let p = 0; p < length; p++) {
      s = (LETTERS[x % n] ?? '') + s;
      x = Math.floor(x / n);
    }
    yield s;
  }
}

/** Tokens in id order after the specials, most useful first. */
function* candidateTokens(): Generator<string> {
  const chars = singleChars();
  yield* chars;
  for (const ch of chars) yield `##${ch}`;
  yield* COMMON_WORDS;
  for (const s of SUFFIXES) yield `##${s}`;
  for (const len of [2, 3]) {
    yield* letterCombos(len);
    for (const s of letterCombos(len)) yield `##${s}`;
  }
}

function specialTokens(layout: VocabLayout): string[] {
  const { pad, unk, cls, sep, mask } = SPECIAL_TOKENS;
  if (layout === 'compact') return [pad, unk, cls, sep, mask];
  // The original BERT uncased layout: [PAD]=0, [unused0..98], [UNK]=100,
  // [CLS]=101, [SEP]=102, [MASK]=103, so ids look like all-MiniLM-L6-v2's.
  const unused = Array.from({ length: 99 }, (_, i) => `[unused${i}]`);
  return [pad, ...unused, unk, cls, sep, mask];
}

/** Builds a vocabulary of exactly `size` tokens. */
export function buildVocab(layout: VocabLayout, size: number): Vocab {
  const tokens = specialTokens(layout);
  const seen = new Set(tokens);
  for (const t of candidateTokens()) {
    if (tokens.length >= size) break;
    if (seen.has(t)) continue;
    seen.add(t);
    tokens.push(t);
  }
  if (tokens.length < size) {
    throw new StreambedError('config', `vocab size ${size} is larger than the generator can fill`);
  }
  const idOf = (t: string): number => tokens.indexOf(t);
  return {
    tokens,
    special: {
      pad: idOf(SPECIAL_TOKENS.pad),
      unk: idOf(SPECIAL_TOKENS.unk),
      cls: idOf(SPECIAL_TOKENS.cls),
      sep: idOf(SPECIAL_TOKENS.sep),
      mask: idOf(SPECIAL_TOKENS.mask),
    },
  };
}
