/**
 * Command-line options of `npm run bench` (and `bench/profile.ts`). Strict:
 * an unknown flag or a malformed value is an error that names it.
 */
import { parseArgs } from 'node:util';

export const CORPORA = ['short', 'long', 'mixed'] as const;
export type CorpusName = (typeof CORPORA)[number];

export const CASES = ['a', 'b', 'c', 'd', 'e', 'f'] as const;
export type CaseName = (typeof CASES)[number];

export type BullmqMode = 'inline' | 'sandboxed';

export interface BenchOptions {
  quick: boolean;
  dtype: 'q8' | 'fp32';
  seed: number;
  cases: CaseName[];
  corpora: CorpusName[];
  /** Rounds per corpus (each round runs every case once, in alternating order). */
  rounds: number;
  /** Multiplies the corpus sizes (1 = the mode's default). */
  scale: number;
  bullmq: BullmqMode;
  redisUrl: string;
  /** Where the generated model is cached. */
  modelDir: string;
  /** bench/results/<name>.json; default `latest`. */
  resultName: string;
  /** Skip rewriting BENCHMARKS.md (ad-hoc runs). */
  writeMarkdown: boolean;
}

const USAGE = `usage: npm run bench -- [--quick] [--dtype q8|fp32] [--cases a,b,c,d,e,f]
  [--corpora short,long,mixed] [--rounds N] [--scale X] [--bullmq inline|sandboxed]
  [--seed N] [--redis-url URL] [--model-dir DIR] [--out NAME] [--no-markdown]`;

export function parseOptions(argv: string[]): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        dtype: { type: 'string', default: 'q8' },
        seed: { type: 'string', default: '7' },
        cases: { type: 'string', default: CASES.join(',') },
        corpora: { type: 'string', default: CORPORA.join(',') },
        rounds: { type: 'string' },
        scale: { type: 'string', default: '1' },
        bullmq: { type: 'string', default: 'inline' },
        'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
        'model-dir': { type: 'string', default: '.streambed/bench/models' },
        out: { type: 'string', default: 'latest' },
        'no-markdown': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`, { cause: err });
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const dtype = oneOf('--dtype', v.dtype, ['q8', 'fp32'] as const);
  const quick = v.quick;
  return {
    quick,
    dtype,
    seed: intIn('--seed', v.seed, 0, 2 ** 31),
    cases: listOf('--cases', v.cases, CASES),
    corpora: listOf('--corpora', v.corpora, CORPORA),
    rounds: v.rounds === undefined ? (quick ? 1 : 2) : intIn('--rounds', v.rounds, 1, 20),
    scale: numIn('--scale', v.scale, 0.01, 100),
    bullmq: oneOf('--bullmq', v.bullmq, ['inline', 'sandboxed'] as const),
    redisUrl: v['redis-url'],
    modelDir: v['model-dir'],
    resultName: safeName('--out', v.out),
    writeMarkdown: !v['no-markdown'],
  };
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`${flag} ${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`);
}

function listOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new Error(`${flag} is empty`);
  const out = items.map((s) => oneOf(flag, s, allowed));
  // Keep the canonical order whatever order was typed.
  return allowed.filter((a) => out.includes(a));
}

function numIn(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`${flag} ${JSON.stringify(value)}: expected a number in [${min}, ${max}]`);
  return n;
}

function intIn(flag: string, value: string, min: number, max: number): number {
  const n = numIn(flag, value, min, max);
  if (!Number.isInteger(n))
    throw new Error(`${flag} ${JSON.stringify(value)}: expected an integer`);
  return n;
}

function safeName(flag: string, value: string): string {
  if (/^[A-Za-z0-9._-]{1,64}$/.test(value)) return value;
  throw new Error(`${flag} ${JSON.stringify(value)}: expected 1-64 chars of [A-Za-z0-9._-]`);
}
