/**
 * The embedding call a user writes by hand with Transformers.js (cases b and
 * c): pipeline('feature-extraction') with mean pooling and normalisation,
 * Transformers.js's default session options (ORT picks its own thread count).
 */
import { env, pipeline } from '@huggingface/transformers';

export interface EmbedConfig {
  modelDir: string;
  dtype: 'q8' | 'fp32';
}

export type EmbedOne = (text: string) => Promise<Float32Array>;

export async function loadEmbedOne(config: EmbedConfig): Promise<EmbedOne> {
  env.allowRemoteModels = false;
  const extractor = await pipeline('feature-extraction', config.modelDir, {
    dtype: config.dtype,
    local_files_only: true,
  });
  return async (text) => {
    const out = await extractor(text, { pooling: 'mean', normalize: true });
    return out.data as Float32Array;
  };
}

/** How the sandboxed BullMQ processor (a separate process) learns the model. */
export function embedConfigFromEnv(): EmbedConfig {
  const modelDir = process.env.BENCH_MODEL_DIR;
  const dtype = process.env.BENCH_DTYPE;
  if (!modelDir || (dtype !== 'q8' && dtype !== 'fp32'))
    throw new Error('BENCH_MODEL_DIR and BENCH_DTYPE must be set');
  return { modelDir, dtype };
}
