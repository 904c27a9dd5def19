/**
 * Generated tiny models for tests, cached under os.tmpdir() so a test run
 * generates each (hidden, seed) once. The cache folder name carries a hash of
 * the generator's sources, so a changed generator never serves stale files.
 * Several vitest forks may ask at once: each writes a private temp folder and
 * renames it into place; rename is atomic, and the loser drops its copy
 * (the bytes are identical by construction).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  type GeneratedModel,
  generateModel,
  MARKER_FILE,
} from '../../src/models/generate/index.js';

export const TEST_MODELS_DIR = join(tmpdir(), 'streambed-test-models');

const GENERATOR_SOURCES = fileURLToPath(new URL('../../src/models/generate/', import.meta.url));

let sourcesHash: Promise<string> | undefined;
const inProcess = new Map<string, Promise<GeneratedModel>>();

async function hashGeneratorSources(): Promise<string> {
  const hash = createHash('sha256');
  const names = (await readdir(GENERATOR_SOURCES)).sort();
  for (const name of names) {
    hash
      .update(name)
      .update('\0')
      .update(await readFile(join(GENERATOR_SOURCES, name)));
  }
  return hash.digest('hex').slice(0, 12);
}

function hasCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

async function isComplete(dir: string): Promise<boolean> {
  try {
    await stat(join(dir, MARKER_FILE));
    return true;
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return false;
    throw err;
  }
}

async function ensureModel(
  preset: 'tiny' | 'minilm',
  hidden: number,
  seed: number,
): Promise<GeneratedModel> {
  sourcesHash ??= hashGeneratorSources();
  const dir = join(TEST_MODELS_DIR, `${preset}-h${hidden}-s${seed}-${await sourcesHash}`);
  const model: GeneratedModel = { dir, dim: hidden, preset, seed };
  if (await isComplete(dir)) return model;
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await generateModel({ preset, seed, hidden, out: tmp });
  try {
    await rename(tmp, dir);
  } catch (err) {
    // Another fork renamed its (identical) copy first.
    if (!hasCode(err, 'ENOTEMPTY', 'EEXIST')) throw err;
    await rm(tmp, { recursive: true, force: true });
    if (!(await isComplete(dir))) throw new Error(`incomplete test model folder ${dir}`);
  }
  return model;
}

/** The tiny preset (default hidden 64, seed 1), generated once and reused. */
export function tinyModel(opts: { hidden?: number; seed?: number } = {}): Promise<GeneratedModel> {
  return cachedModel('tiny', opts.hidden ?? 64, opts.seed ?? 1);
}

/**
 * The compute shape of all-MiniLM-L6-v2 (hidden 384, 6 layers) with seeded
 * weights: real ONNX Runtime work, slow enough for timeouts and leases to matter.
 */
export function minilmModel(): Promise<GeneratedModel> {
  return cachedModel('minilm', 384, 1);
}

function cachedModel(
  preset: 'tiny' | 'minilm',
  hidden: number,
  seed: number,
): Promise<GeneratedModel> {
  const key = `${preset}/${hidden}/${seed}`;
  let pending = inProcess.get(key);
  if (!pending) {
    pending = ensureModel(preset, hidden, seed);
    // A failure is not cached: the next call tries again.
    pending.catch(() => inProcess.delete(key));
    inProcess.set(key, pending);
  }
  return pending;
}
