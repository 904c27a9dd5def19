/**
 * The model generator: writes a BERT-architecture embedding model with
 * seeded random weights in the Hugging Face folder layout that
 * Transformers.js loads offline (config.json, tokenizer files,
 * onnx/model.onnx in fp32 and onnx/model_quantized.onnx in int8).
 * The same options always produce byte-identical files.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { buildBertModel, FP32 } from './bert-graph.js';
import {
  configJson,
  GENERATOR_VERSION,
  MARKER_FILE,
  markerFor,
  markerJson,
} from './config-files.js';
import { type GenerateOptions, type ModelPreset, resolveShape } from './presets.js';
import { dynamicInt8 } from './quantize.js';
import { tokenizerFiles } from './tokenizer-files.js';
import { buildVocab } from './vocab.js';
import { generateWeights } from './weights.js';

export { GENERATOR_VERSION, MARKER_FILE, type ModelMarker } from './config-files.js';
export { type GenerateOptions, MODEL_PRESETS, type ModelPreset } from './presets.js';

export interface GeneratedModel {
  /** Absolute path: Transformers.js takes it as the model id. */
  dir: string;
  dim: number;
  preset: ModelPreset;
  seed: number;
}

/**
 * Generates the model into `opts.out` (created if missing; files in it are
 * overwritten). Throws StreambedError 'config' on invalid options.
 */
export async function generateModel(opts: GenerateOptions): Promise<GeneratedModel> {
  const shape = resolveShape(opts);
  const dir = resolve(opts.out);
  const vocab = buildVocab(shape.vocab, shape.vocabSize);
  const weights = generateWeights(shape, opts.seed);
  const producerVersion = String(GENERATOR_VERSION);

  await mkdir(join(dir, 'onnx'), { recursive: true });
  // A marker left by an earlier run must not vouch for half-rewritten files.
  await rm(join(dir, MARKER_FILE), { force: true });
  // Built one at a time, so only one encoded graph is in memory at once.
  const files: [string, () => string | Uint8Array][] = [
    ['config.json', () => configJson(shape, vocab)],
    ...Object.entries(tokenizerFiles(vocab, shape.maxPositions)).map(
      ([name, text]): [string, () => string] => [name, () => text],
    ),
    ['onnx/model.onnx', () => buildBertModel(weights, shape, FP32, producerVersion)],
    [
      'onnx/model_quantized.onnx',
      () => buildBertModel(weights, shape, dynamicInt8(), producerVersion),
    ],
  ];
  for (const [name, build] of files) {
    await writeFile(join(dir, name), build());
  }
  // Last: a folder with the marker is complete.
  await writeFile(join(dir, MARKER_FILE), markerJson(markerFor(shape, opts.seed)));
  return { dir, dim: shape.hidden, preset: shape.preset, seed: opts.seed };
}
