/**
 * The generator's presets and option validation: turns GenerateOptions into
 * the full architecture (ModelShape) that every other generator file reads.
 */
import { z } from 'zod';

import { StreambedError } from '../../errors.js';

export const MODEL_PRESETS = ['tiny', 'minilm'] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

export interface GenerateOptions {
  preset: ModelPreset;
  seed: number;
  out: string;
  hidden?: number;
  layers?: number;
}

/** Everything that decides the generated architecture. */
export interface ModelShape {
  preset: ModelPreset;
  vocab: 'compact' | 'bert';
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
}

type PresetShape = Omit<ModelShape, 'preset' | 'intermediate'>;

const PRESETS: Record<ModelPreset, PresetShape> = {
  // Small enough to generate in milliseconds and run in tests; the vocab
  // still covers every printable ASCII character (see vocab.ts).
  tiny: {
    vocab: 'compact',
    vocabSize: 2048,
    hidden: 64,
    layers: 2,
    heads: 4,
    maxPositions: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
  },
  // The compute shape of sentence-transformers/all-MiniLM-L6-v2, for benchmarks.
  minilm: {
    vocab: 'bert',
    vocabSize: 30522,
    hidden: 384,
    layers: 6,
    heads: 12,
    maxPositions: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
  },
};

const optionsSchema = z.object({
  preset: z.enum(MODEL_PRESETS),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  out: z.string().min(1),
  hidden: z.number().int().min(1).max(4096).optional(),
  layers: z.number().int().min(1).max(48).optional(),
});

/** Validates options (throws StreambedError 'config') and resolves the architecture. */
export function resolveShape(opts: GenerateOptions): ModelShape {
  const parsed = optionsSchema.safeParse(opts);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`);
    throw new StreambedError('config', `invalid model generator options: ${problems.join('; ')}`);
  }
  const { preset, hidden, layers } = parsed.data;
  const base = PRESETS[preset];
  const h = hidden ?? base.hidden;
  if (h % base.heads !== 0) {
    throw new StreambedError(
      'config',
      `invalid model generator options: hidden ${h} must be a multiple of the ${base.heads} attention heads of preset ${preset}`,
    );
  }
  return { ...base, preset, hidden: h, layers: layers ?? base.layers, intermediate: 4 * h };
}
