/**
 * A small builder for ONNX graphs on top of onnx-proto: it names nodes and
 * outputs deterministically (so the same calls always encode to the same
 * bytes), stores tensors as little-endian raw_data, and encodes a ModelProto.
 */
import { endianness } from 'node:os';

// onnx-proto is CommonJS without a named-export hint Node can see, so the
// namespace comes off the default import.
import onnxProto from 'onnx-proto';

import { StreambedError } from '../../errors.js';

const { onnx } = onnxProto;
export type Attribute = onnxProto.onnx.IAttributeProto;
type Tensor = onnxProto.onnx.ITensorProto;
type Node = onnxProto.onnx.INodeProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

export const attr = {
  int: (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i }),
  float: (name: string, f: number): Attribute => ({ name, type: AttributeType.FLOAT, f }),
  ints: (name: string, ints: number[]): Attribute => ({ name, type: AttributeType.INTS, ints }),
};

export const ELEM = { float: DataType.FLOAT, int64: DataType.INT64, int8: DataType.INT8 } as const;

function rawBytes(view: ArrayBufferView): Uint8Array {
  // ONNX raw_data is little-endian; typed arrays use the host's byte order.
  if (endianness() !== 'LE') {
    throw new StreambedError('internal', 'the model generator needs a little-endian host');
  }
  // A view, not a copy: weights are hundreds of MB and never mutated after generation.
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly initializers: Tensor[] = [];
  private readonly tensorsByName = new Map<string, Tensor>();
  private readonly used = new Map<string, number>();
  /** Prefix of node names, like torch.onnx's module paths. */
  scope = '';

  /** Adds a node and returns its output names. */
  node(opType: string, inputs: string[], attributes: Attribute[] = [], outputs = 1): string[] {
    const base = `${this.scope}/${opType}`;
    const n = this.used.get(base) ?? 0;
    this.used.set(base, n + 1);
    const name = n === 0 ? base : `${base}_${n}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, opType, input: inputs, output: outs, attribute: attributes });
    return outs;
  }

  /** Adds a single-output node and returns its output name. */
  op(opType: string, inputs: string[], attributes: Attribute[] = []): string {
    const [out] = this.node(opType, inputs, attributes, 1);
    if (out === undefined) throw new StreambedError('internal', 'node without output');
    return out;
  }

  /** Renames the output of the most recent node (for graph outputs). */
  renameLastOutput(name: string): string {
    const last = this.nodes[this.nodes.length - 1];
    if (!last?.output?.[0]) throw new StreambedError('internal', 'no node to rename');
    last.output[0] = name;
    return name;
  }

  /**
   * Adds an initializer. Adding the same name again with the same contents is
   * a no-op, so shared constants can be declared where they are used.
   */
  private tensor(name: string, dims: number[], dataType: number, data: ArrayBufferView): string {
    const rawData = rawBytes(data);
    const existing = this.tensorsByName.get(name);
    if (existing) {
      const same =
        existing.dataType === dataType &&
        String(existing.dims) === String(dims) &&
        Buffer.from(existing.rawData ?? []).equals(rawData);
      if (!same) throw new StreambedError('internal', `initializer ${name} defined twice`);
      return name;
    }
    const t: Tensor = { name, dims, dataType, rawData };
    this.tensorsByName.set(name, t);
    this.initializers.push(t);
    return name;
  }

  float(name: string, dims: number[], data: Float32Array): string {
    return this.tensor(name, dims, DataType.FLOAT, data);
  }

  int8(name: string, dims: number[], data: Int8Array): string {
    return this.tensor(name, dims, DataType.INT8, data);
  }

  int64(name: string, dims: number[], values: number[]): string {
    return this.tensor(name, dims, DataType.INT64, BigInt64Array.from(values, (v) => BigInt(v)));
  }

  floatScalar(name: string, value: number): string {
    return this.float(name, [], Float32Array.of(value));
  }

  int64Scalar(name: string, value: number): string {
    return this.int64(name, [], [value]);
  }

  /** Encodes the graph as an opset-17 ModelProto. */
  encode(meta: {
    graphName: string;
    producerVersion: string;
    inputs: ValueInfo[];
    outputs: ValueInfo[];
  }): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      // IR 8 is the first to allow opset 17 and what onnx 1.12+ writes for it.
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      producerName: 'streambed',
      producerVersion: meta.producerVersion,
      graph: {
        name: meta.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: meta.inputs,
        output: meta.outputs,
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}

/** A tensor value info with named (dynamic) or fixed dimensions. */
export function tensorInfo(name: string, elemType: number, dims: (string | number)[]): ValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })),
        },
      },
    },
  };
}
