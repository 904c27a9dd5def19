/**
 * Long pages for chunking tests, built to at least a token count under a
 * given tokenizer: English sentences in paragraphs, or the same mixed with
 * CJK, Hangul, emoji sequences and combining marks. Deterministic (seeded).
 */
const WORDS = (
  'the stream worker reads pages from redis and writes vectors to the sink while ' +
  'operators watch progress per source through status metrics and a console that shows ' +
  'backlog lag pending entries rate and time left for every model in the fleet'
).split(' ');

const UNICODE_PIECES = [
  '東京は日本の首都です。',
  'これはテストの文章です！',
  '한국어 문장입니다.',
  'naïve café',
  'e\u0301te\u0301',
  '👩‍👩‍👧‍👦',
  '🇯🇵',
  '👍🏽',
  'Ωμέγα',
  '数据流',
];

/** A tiny seeded PRNG (mulberry32), so pages are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function build(
  minTokens: number,
  tokensOf: (text: string) => number,
  sentence: (rand: () => number) => string,
): string {
  const rand = prng(7);
  const paragraphs: string[] = [];
  for (;;) {
    const sentences = Array.from({ length: 3 + Math.floor(rand() * 5) }, () => sentence(rand));
    paragraphs.push(sentences.join(' '));
    const page = paragraphs.join('\n\n');
    if (tokensOf(page) >= minTokens) return page;
  }
}

function englishSentence(rand: () => number): string {
  const n = 8 + Math.floor(rand() * 9);
  const words = Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)] as string);
  const s = words.join(' ');
  return `${s[0]?.toUpperCase()}${s.slice(1)}${rand() < 0.1 ? '?' : '.'}`;
}

export function englishPage(minTokens: number, tokensOf: (text: string) => number): string {
  return build(minTokens, tokensOf, englishSentence);
}

export function unicodePage(minTokens: number, tokensOf: (text: string) => number): string {
  return build(minTokens, tokensOf, (rand) => {
    const piece = () => UNICODE_PIECES[Math.floor(rand() * UNICODE_PIECES.length)] as string;
    // A long CJK run with no spaces now and then, then English around emoji and accents.
    if (rand() < 0.2)
      return Array.from({ length: 12 }, piece)
        .filter((p) => /\p{Script=Han}/u.test(p))
        .join('');
    return `${englishSentence(rand).slice(0, -1)} ${piece()} ${piece()}.`;
  });
}

/** Offsets where a reader's characters (grapheme clusters) begin, and the end. */
export function graphemeBoundaries(text: string): Set<number> {
  const out = new Set(
    [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)].map(
      (g) => g.index,
    ),
  );
  out.add(text.length);
  return out;
}

/**
 * Why these spans do not cover the page in order (undefined when they do):
 * every non-space character in some span, starts and ends increasing.
 */
export function coverageProblem(
  text: string,
  spans: readonly [number, number][],
): string | undefined {
  let covered = 0;
  for (const [i, [start, end]] of spans.entries()) {
    if (end <= covered) return `span ${i} ends at ${end}, not past ${covered}`;
    if (i > 0 && start <= (spans[i - 1] as [number, number])[0])
      return `span ${i} starts no later than span ${i - 1}`;
    if (start > covered && text.slice(covered, start).trim() !== '')
      return `text ${covered}-${start} is in no span`;
    covered = end;
  }
  return text.slice(covered).trim() === '' ? undefined : `text after ${covered} is in no span`;
}
