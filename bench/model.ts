/**
 * The one model every case runs: the generated `minilm` preset (the compute
 * shape of all-MiniLM-L6-v2, seeded random weights), generated into a cache
 * folder on first use. A folder counts only once its marker file exists.
 */
import fs from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

import { generateModel, GENERATOR_VERSION, MARKER_FILE } from '../src/models/generate/index.js';

/** Fixed: every run of every machine benchmarks the same weights. */
export const MODEL_SEED = 1;

export interface BenchModel {
  dir: string;
  /** The ONNX file the dtype selects (what Transformers.js loads for it). */
  onnxFile: string;
  dtype: 'q8' | 'fp32';
  generatedMs: number;
}

export async function ensureModel(cacheDir: string, dtype: 'q8' | 'fp32'): Promise<BenchModel> {
  const dir = path.resolve(cacheDir, `minilm-s${MODEL_SEED}-g${GENERATOR_VERSION}`);
  const started = performance.now();
  if (!fs.existsSync(path.join(dir, MARKER_FILE))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await generateModel({ preset: 'minilm', seed: MODEL_SEED, out: tmp });
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  }
  const onnxFile = path.join(dir, 'onnx', dtype === 'q8' ? 'model_quantized.onnx' : 'model.onnx');
  return { dir, onnxFile, dtype, generatedMs: performance.now() - started };
}
