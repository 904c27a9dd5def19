/**
 * The ONNX graph of a BERT encoder (opset 17), with the same inputs and
 * output as Hugging Face's exported feature-extraction models: input_ids,
 * attention_mask, token_type_ids (int64 [batch, seq]) -> last_hidden_state
 * (float [batch, seq, hidden]). How weight matrices are stored and multiplied
 * is delegated to a WeightEncoding, so fp32 and int8 share this file.
 */
import { attr, ELEM, GraphBuilder, tensorInfo } from './onnx-builder.js';
import type { ModelShape } from './presets.js';
import type { BertWeights, EncoderLayer, LayerNorm, Linear } from './weights.js';

/** How weight matrices appear in the graph (fp32 here, int8 in quantize.ts). */
export interface WeightEncoding {
  /** Emits `x @ weight + bias` and returns the output name. */
  linear(g: GraphBuilder, x: string, lin: Linear): string;
  /** Emits the word-embedding lookup of `ids` and returns [batch, seq, hidden]. */
  embed(g: GraphBuilder, ids: string, table: Float32Array, shape: ModelShape): string;
}

export const FP32: WeightEncoding = {
  linear(g, x, lin) {
    const w = g.float(`${lin.name}.weight`, [lin.inFeatures, lin.outFeatures], lin.weight);
    const b = g.float(`${lin.name}.bias`, [lin.outFeatures], lin.bias);
    return g.op('Add', [g.op('MatMul', [x, w]), b]);
  },
  embed(g, ids, table, shape) {
    const w = g.float('embeddings.word_embeddings.weight', [shape.vocabSize, shape.hidden], table);
    return g.op('Gather', [w, ids], [attr.int('axis', 0)]);
  },
};

const DIMS = ['batch_size', 'sequence_length'];

function layerNorm(g: GraphBuilder, x: string, ln: LayerNorm, shape: ModelShape): string {
  const gamma = g.float(`${ln.name}.weight`, [shape.hidden], ln.gamma);
  const beta = g.float(`${ln.name}.bias`, [shape.hidden], ln.beta);
  return g.op('LayerNormalization', [x, gamma, beta], [
    attr.int('axis', -1),
    attr.float('epsilon', shape.layerNormEps),
  ]);
}

function embeddings(g: GraphBuilder, w: BertWeights, shape: ModelShape, enc: WeightEncoding) {
  g.scope = '/embeddings';
  const h = shape.hidden;
  const words = enc.embed(g, 'input_ids', w.wordEmbeddings, shape);
  // Position ids 0..seq-1 come from the input's shape, so any length up to
  // max_position_embeddings works without a position_ids input.
  const one = g.int64Scalar('const.one', 1);
  const seqLen = g.op('Gather', [g.op('Shape', ['input_ids']), one], [attr.int('axis', 0)]);
  const positionIds = g.op('Range', [g.int64Scalar('const.zero', 0), seqLen, one]);
  const posTable = g.float(
    'embeddings.position_embeddings.weight',
    [shape.maxPositions, h],
    w.positionEmbeddings,
  );
  const positions = g.op('Gather', [posTable, positionIds], [attr.int('axis', 0)]);
  const typeTable = g.float(
    'embeddings.token_type_embeddings.weight',
    [shape.typeVocabSize, h],
    w.tokenTypeEmbeddings,
  );
  const types = g.op('Gather', [typeTable, 'token_type_ids'], [attr.int('axis', 0)]);
  const sum = g.op('Add', [g.op('Add', [words, types]), positions]);
  return layerNorm(g, sum, w.embeddingsNorm, shape);
}

/** (1 - mask) * -10000 as [batch, 1, 1, seq]: padded keys get no attention. */
function additiveMask(g: GraphBuilder): string {
  g.scope = '/mask';
  const mask = g.op('Cast', ['attention_mask'], [attr.int('to', ELEM.float)]);
  const expanded = g.op('Unsqueeze', [mask, g.int64('const.axes_1_2', [2], [1, 2])]);
  const inverted = g.op('Sub', [g.floatScalar('const.one_f', 1), expanded]);
  return g.op('Mul', [inverted, g.floatScalar('const.mask_value', -10000)]);
}

function selfAttention(
  g: GraphBuilder,
  x: string,
  mask: string,
  layer: EncoderLayer,
  shape: ModelShape,
  enc: WeightEncoding,
): string {
  const headDim = shape.hidden / shape.heads;
  // Reshape's 0 copies the input dimension: [batch, seq, heads, headDim].
  const split = g.int64('const.split_heads', [4], [0, 0, shape.heads, headDim]);
  const heads = (lin: Linear, perm: number[]) =>
    g.op('Transpose', [g.op('Reshape', [enc.linear(g, x, lin), split])], [attr.ints('perm', perm)]);
  const q = heads(layer.query, [0, 2, 1, 3]);
  const k = heads(layer.key, [0, 2, 3, 1]);
  const v = heads(layer.value, [0, 2, 1, 3]);
  const scale = g.floatScalar('const.attention_scale', Math.sqrt(headDim));
  const scores = g.op('Add', [g.op('Div', [g.op('MatMul', [q, k]), scale]), mask]);
  const probs = g.op('Softmax', [scores], [attr.int('axis', -1)]);
  const context = g.op('Transpose', [g.op('MatMul', [probs, v])], [attr.ints('perm', [0, 2, 1, 3])]);
  const merge = g.int64('const.merge_heads', [3], [0, 0, shape.hidden]);
  return enc.linear(g, g.op('Reshape', [context, merge]), layer.attentionOutput);
}

/** GELU as BERT defines it: 0.5 * x * (1 + erf(x / sqrt(2))). */
function gelu(g: GraphBuilder, x: string): string {
  const erf = g.op('Erf', [g.op('Div', [x, g.floatScalar('const.sqrt2', Math.SQRT2)])]);
  const onePlus = g.op('Add', [erf, g.floatScalar('const.one_f', 1)]);
  return g.op('Mul', [g.op('Mul', [x, onePlus]), g.floatScalar('const.half', 0.5)]);
}

function encoderLayer(
  g: GraphBuilder,
  x: string,
  mask: string,
  layer: EncoderLayer,
  index: number,
  shape: ModelShape,
  enc: WeightEncoding,
): string {
  g.scope = `/encoder/layer.${index}/attention`;
  const attended = selfAttention(g, x, mask, layer, shape, enc);
  const afterAttention = layerNorm(g, g.op('Add', [attended, x]), layer.attentionNorm, shape);
  g.scope = `/encoder/layer.${index}/ffn`;
  const inner = gelu(g, enc.linear(g, afterAttention, layer.intermediate));
  const out = enc.linear(g, inner, layer.output);
  return layerNorm(g, g.op('Add', [out, afterAttention]), layer.outputNorm, shape);
}

/** Builds and encodes the whole model. */
export function buildBertModel(
  weights: BertWeights,
  shape: ModelShape,
  enc: WeightEncoding,
  producerVersion: string,
): Uint8Array {
  const g = new GraphBuilder();
  const mask = additiveMask(g);
  let x = embeddings(g, weights, shape, enc);
  weights.layers.forEach((layer, i) => {
    x = encoderLayer(g, x, mask, layer, i, shape, enc);
  });
  g.renameLastOutput('last_hidden_state');
  return g.encode({
    graphName: `streambed-bert-${shape.preset}`,
    producerVersion,
    inputs: ['input_ids', 'attention_mask', 'token_type_ids'].map((n) =>
      tensorInfo(n, ELEM.int64, DIMS),
    ),
    outputs: [tensorInfo('last_hidden_state', ELEM.float, [...DIMS, shape.hidden])],
  });
}
