/**
 * Seeded random weights of a BERT encoder, as flat Float32Arrays named like
 * the Hugging Face checkpoint's parameters. Each tensor draws from its own
 * PRNG stream (prng.ts), keyed by that name.
 *
 * The scales are chosen for usefulness, not to imitate training: BERT's
 * 0.02 init makes every text embed to nearly the same vector, so word
 * embeddings are large (texts are told apart) and linear layers use
 * 1/sqrt(fan_in) (activations stay near unit scale through every layer, and
 * attention is neither uniform nor one-hot).
 */
import type { ModelShape } from './presets.js';
import { createRng, fillNormal } from './prng.js';

export const WEIGHT_STDS = {
  wordEmbeddings: 1.0,
  positionEmbeddings: 0.1,
  tokenTypeEmbeddings: 0.1,
  linear: '1/sqrt(fan_in)',
  bias: 0.02,
  layerNorm: 0.02,
} as const;

export interface Linear {
  name: string;
  /** Row-major [inFeatures, outFeatures], so the graph computes x @ weight. */
  weight: Float32Array;
  bias: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

export interface LayerNorm {
  name: string;
  gamma: Float32Array;
  beta: Float32Array;
}

export interface EncoderLayer {
  query: Linear;
  key: Linear;
  value: Linear;
  attentionOutput: Linear;
  attentionNorm: LayerNorm;
  intermediate: Linear;
  output: Linear;
  outputNorm: LayerNorm;
}

export interface BertWeights {
  wordEmbeddings: Float32Array;
  positionEmbeddings: Float32Array;
  tokenTypeEmbeddings: Float32Array;
  embeddingsNorm: LayerNorm;
  layers: EncoderLayer[];
}

function normal(seed: number, name: string, length: number, std: number, mean = 0): Float32Array {
  return fillNormal(new Float32Array(length), createRng(seed, name), std, mean);
}

function linear(seed: number, name: string, inFeatures: number, outFeatures: number): Linear {
  return {
    name,
    weight: normal(seed, `${name}.weight`, inFeatures * outFeatures, 1 / Math.sqrt(inFeatures)),
    bias: normal(seed, `${name}.bias`, outFeatures, WEIGHT_STDS.bias),
    inFeatures,
    outFeatures,
  };
}

function layerNorm(seed: number, name: string, size: number): LayerNorm {
  return {
    name,
    gamma: normal(seed, `${name}.weight`, size, WEIGHT_STDS.layerNorm, 1),
    beta: normal(seed, `${name}.bias`, size, WEIGHT_STDS.layerNorm),
  };
}

function encoderLayer(seed: number, shape: ModelShape, index: number): EncoderLayer {
  const p = `encoder.layer.${index}`;
  const h = shape.hidden;
  return {
    query: linear(seed, `${p}.attention.self.query`, h, h),
    key: linear(seed, `${p}.attention.self.key`, h, h),
    value: linear(seed, `${p}.attention.self.value`, h, h),
    attentionOutput: linear(seed, `${p}.attention.output.dense`, h, h),
    attentionNorm: layerNorm(seed, `${p}.attention.output.LayerNorm`, h),
    intermediate: linear(seed, `${p}.intermediate.dense`, h, shape.intermediate),
    output: linear(seed, `${p}.output.dense`, shape.intermediate, h),
    outputNorm: layerNorm(seed, `${p}.output.LayerNorm`, h),
  };
}

export function generateWeights(shape: ModelShape, seed: number): BertWeights {
  const h = shape.hidden;
  return {
    wordEmbeddings: normal(
      seed,
      'embeddings.word_embeddings.weight',
      shape.vocabSize * h,
      WEIGHT_STDS.wordEmbeddings,
    ),
    positionEmbeddings: normal(
      seed,
      'embeddings.position_embeddings.weight',
      shape.maxPositions * h,
      WEIGHT_STDS.positionEmbeddings,
    ),
    tokenTypeEmbeddings: normal(
      seed,
      'embeddings.token_type_embeddings.weight',
      shape.typeVocabSize * h,
      WEIGHT_STDS.tokenTypeEmbeddings,
    ),
    embeddingsNorm: layerNorm(seed, 'embeddings.LayerNorm', h),
    layers: Array.from({ length: shape.layers }, (_, i) => encoderLayer(seed, shape, i)),
  };
}
