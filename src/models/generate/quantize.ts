/**
 * Dynamic int8 quantization, laid out the way onnxruntime's quantize_dynamic
 * writes it, so ORT's graph optimizer fuses it into its fast integer kernels
 * (DynamicQuantizeMatMul): weights are stored as symmetric per-tensor int8,
 * activations are quantized at run time with DynamicQuantizeLinear, then
 * MatMulInteger + Cast + Mul by (activation scale * weight scale) + bias.
 * The word-embedding table is int8 too (Gather, then DequantizeLinear of the
 * gathered rows), which is most of the file-size saving on a 30K vocab.
 */
import type { WeightEncoding } from './bert-graph.js';
import { attr, ELEM, type GraphBuilder } from './onnx-builder.js';

export interface QuantizedTensor {
  data: Int8Array;
  /** Real value = data * scale (zero point 0). */
  scale: number;
}

/**
 * Symmetric per-tensor int8 in [-127, 127]. -128 is left out so the range is
 * symmetric and the u8 x s8 products stay further from int16 saturation in
 * AVX2 kernels.
 */
export function quantizeInt8(values: Float32Array): QuantizedTensor {
  let maxAbs = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i] ?? 0);
    if (a > maxAbs) maxAbs = a;
  }
  // Float32 scale, because that is what the graph stores and multiplies by.
  const scale = Math.fround(maxAbs > 0 ? maxAbs / 127 : 1);
  const inverse = 1 / scale;
  const data = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = Math.round((values[i] ?? 0) * inverse);
    // Int8Array wraps out-of-range values instead of clamping them.
    data[i] = q > 127 ? 127 : q < -127 ? -127 : q;
  }
  return { data, scale };
}

/** A fresh int8 encoding (it remembers which activations it already quantized). */
export function dynamicInt8(): WeightEncoding {
  // Q, K and V read the same activation: quantize it once, as ORT does.
  const quantized = new Map<string, string[]>();
  const quantizeActivation = (g: GraphBuilder, x: string): string[] => {
    const known = quantized.get(x);
    if (known) return known;
    const outs = g.node('DynamicQuantizeLinear', [x], [], 3);
    quantized.set(x, outs);
    return outs;
  };
  return {
    linear(g, x, lin) {
      const [xq = '', xScale = '', xZero = ''] = quantizeActivation(g, x);
      const { data, scale } = quantizeInt8(lin.weight);
      const w = g.int8(`${lin.name}.weight_quantized`, [lin.inFeatures, lin.outFeatures], data);
      const wScale = g.floatScalar(`${lin.name}.weight_scale`, scale);
      const wZero = g.int8('const.int8_zero', [], Int8Array.of(0));
      const product = g.op('MatMulInteger', [xq, w, xZero, wZero]);
      const asFloat = g.op('Cast', [product], [attr.int('to', ELEM.float)]);
      const scales = g.op('Mul', [xScale, wScale]);
      const bias = g.float(`${lin.name}.bias`, [lin.outFeatures], lin.bias);
      return g.op('Add', [g.op('Mul', [asFloat, scales]), bias]);
    },
    embed(g, ids, table, shape) {
      const { data, scale } = quantizeInt8(table);
      const name = 'embeddings.word_embeddings.weight';
      const w = g.int8(`${name}_quantized`, [shape.vocabSize, shape.hidden], data);
      const rows = g.op('Gather', [w, ids], [attr.int('axis', 0)]);
      const wScale = g.floatScalar(`${name}_scale`, scale);
      const wZero = g.int8('const.int8_zero', [], Int8Array.of(0));
      return g.op('DequantizeLinear', [rows, wScale, wZero]);
    },
  };
}
