/**
 * The three benchmark corpora, generated from a fixed seed and calibrated
 * against the model's own tokenizer: each text is built word by word to an
 * exact WordPiece token count (including [CLS] and [SEP]) drawn from the
 * corpus's length distribution, then re-tokenised whole to check the claim.
 *   short  ~16 tokens (uniform 12-20)
 *   long   128-256 tokens (uniform)
 *   mixed  heavy-tailed 8-512 (log-normal, median 40, sigma 1, clipped)
 */
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';

import { createRng, type Rng } from '../src/models/generate/prng.js';
import type { CorpusName } from './options.js';
import { quantile, round } from './stats.js';
import { WORDS } from './words.js';

export interface Corpus {
  name: CorpusName;
  texts: string[];
  /** Token ids of each text as the model's tokenizer produces them. */
  ids: number[][];
  stats: CorpusStats;
}

export interface CorpusStats {
  texts: number;
  tokens: { mean: number; p50: number; p90: number; p99: number; min: number; max: number };
  totalTokens: number;
  tokensPerWord: number;
  charsPerToken: number;
  /** Texts whose whole-text token count differs from the count they were built to. */
  offTarget: number;
}

const SIZES: Record<CorpusName, { quick: number; full: number }> = {
  short: { quick: 1200, full: 4800 },
  long: { quick: 96, full: 384 },
  mixed: { quick: 320, full: 1280 },
};

export function corpusSize(name: CorpusName, quick: boolean, scale: number): number {
  return Math.max(8, Math.round(SIZES[name][quick ? 'quick' : 'full'] * scale));
}

export async function loadTokenizer(modelDir: string): Promise<PreTrainedTokenizer> {
  env.allowRemoteModels = false;
  return AutoTokenizer.from_pretrained(modelDir, { local_files_only: true });
}

interface Word {
  text: string;
  tokens: number;
}

/** Token cost of every word, measured by the tokenizer (WordPiece splits per word, so costs add). */
function measureWords(tokenizer: PreTrainedTokenizer): { words: Word[]; weights: number[] } {
  const unique = [...new Set(WORDS)];
  const words = unique.map((text) => ({ text, tokens: tokenizer.encode(text).length - 2 }));
  // Zipf-like: frequent (short) words dominate, long words still appear.
  const weights = words.map((_, rank) => 1 / (rank + 8) ** 0.9);
  return { words, weights };
}

function targetLength(name: CorpusName, rng: Rng): number {
  const u = () => (rng() + 0.5) / 4294967296;
  if (name === 'short') return 12 + Math.floor(u() * 9);
  if (name === 'long') return 128 + Math.floor(u() * 129);
  const normal = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return Math.max(8, Math.min(512, Math.round(40 * Math.exp(normal))));
}

export function generateCorpus(
  name: CorpusName,
  size: number,
  seed: number,
  tokenizer: PreTrainedTokenizer,
): Corpus {
  const rng = createRng(seed, `bench-corpus:${name}`);
  const { words, weights } = measureWords(tokenizer);
  const cumulative: number[] = [];
  weights.reduce((sum, w, i) => (cumulative[i] = sum + w), 0);
  const total = cumulative[cumulative.length - 1] as number;
  const oneToken = words.filter((w) => w.tokens === 1);
  const pick = (): Word => {
    const x = (rng() / 4294967296) * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return words[lo] as Word;
  };

  const texts: string[] = [];
  const targets: number[] = [];
  let wordCount = 0;
  for (let i = 0; i < size; i++) {
    const target = targetLength(name, rng);
    let need = target - 2;
    const parts: string[] = [];
    let capital = true;
    while (need > 0) {
      let w = pick();
      if (w.tokens > need) w = oneToken[rng() % oneToken.length] as Word;
      parts.push(capital ? w.text[0]?.toUpperCase() + w.text.slice(1) : w.text);
      wordCount++;
      need -= w.tokens;
      capital = false;
      // Punctuation is one token of its own.
      if (need >= 2 && rng() % 100 < 12) {
        const end = rng() % 2 === 0;
        parts[parts.length - 1] += end ? '.' : ',';
        capital = end;
        need -= 1;
      }
    }
    texts.push(parts.join(' '));
    targets.push(target);
  }

  const ids = texts.map((t) => tokenizer.encode(t) as number[]);
  const lengths = ids.map((t) => t.length);
  const sorted = [...lengths].sort((a, b) => a - b);
  const totalTokens = lengths.reduce((a, b) => a + b, 0);
  const chars = texts.reduce((a, t) => a + t.length, 0);
  return {
    name,
    texts,
    ids,
    stats: {
      texts: size,
      tokens: {
        mean: round(totalTokens / size, 1),
        p50: quantile(sorted, 0.5),
        p90: quantile(sorted, 0.9),
        p99: quantile(sorted, 0.99),
        min: sorted[0] ?? 0,
        max: sorted[sorted.length - 1] ?? 0,
      },
      totalTokens,
      tokensPerWord: round((totalTokens - 2 * size) / wordCount, 2),
      charsPerToken: round(chars / (totalTokens - 2 * size), 2),
      offTarget: lengths.filter((n, i) => n !== targets[i]).length,
    },
  };
}

/** A few texts of every corpus, for warming each case up once before it is measured. */
export function warmupTexts(corpora: readonly Corpus[], perCorpus = 8): string[] {
  return corpora.flatMap((c) => c.texts.slice(0, perCorpus));
}
