/**
 * The embedding core: loads a model with Transformers.js (ONNX Runtime) and
 * turns a batch of texts into pooled, optionally L2-normalised vectors.
 * Runs inside a worker thread; imports nothing that opens a socket.
 *
 * Texts usually arrive tokenised by the main thread (which packs batches on
 * exact token counts); raw texts are tokenised here. Either way we know each
 * text's real token count and whether it was truncated, and pad only to the
 * longest text of this micro-batch.
 */
import fs from 'node:fs';
import path from 'node:path';

import {
  AutoModel,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  Tensor,
} from '@huggingface/transformers';

import { fixtureEmbedder } from './fixture-core.js';
import { l2normalize } from './l2normalize.js';
import { encodeText, joinRows, loadTokenizer, type TokenizedBatch } from './tokenize.js';

export interface CoreSpec {
  ref: string;
  local: boolean;
  dtype: 'q8' | 'fp32' | 'fp16';
  pooling?: 'mean' | 'cls';
  normalize?: boolean;
  maxTokens?: number;
  intraOpThreads: number;
  allowRemote: boolean;
  cacheDir?: string;
}

export interface EmbedOutput {
  /** n x dim, row-major. */
  data: Float32Array;
  dim: number;
  /** 1 where the text was cut to the model's token limit. */
  truncated: Uint8Array;
  /** Real (unpadded) tokens of each text. */
  tokens: Uint32Array;
  /** Tokens fed to the model including padding (n x longest). */
  paddedTokens: number;
}

export interface Embedder {
  dim: number;
  maxTokens: number;
  /**
   * `tokenized`, when given, holds the texts' ids (cut to maxTokens) and is
   * used instead of tokenising. `inNative`, when given, is set to 1 for the
   * whole ONNX Runtime path (tensors, the native run, pooling) and 2 after:
   * terminating the thread inside native code would take the whole process
   * down, so the pool waits for it to return.
   */
  embed(
    texts: readonly string[],
    tokenized?: TokenizedBatch,
    inNative?: Int32Array,
  ): Promise<EmbedOutput>;
}

export async function loadEmbedder(spec: CoreSpec): Promise<Embedder> {
  if (spec.ref.startsWith('noop:')) return noopEmbedder(Number(spec.ref.slice(5)));
  if (spec.ref.startsWith('fixture:')) return fixtureEmbedder(Number(spec.ref.slice(8)));
  const { tokenizer, options } = await loadTokenizer(spec);
  const model = await AutoModel.from_pretrained(spec.ref, {
    ...options,
    dtype: spec.dtype,
    session_options: { intraOpNumThreads: spec.intraOpThreads, interOpNumThreads: 1 },
  });
  const cfg = model.config as unknown as { hidden_size?: number; max_position_embeddings?: number };
  const declared = spec.local ? readPoolingConfig(spec.ref) : {};
  const pooling = spec.pooling ?? declared.pooling ?? 'mean';
  const normalize = spec.normalize ?? declared.normalize ?? true;
  const maxTokens = Math.min(
    spec.maxTokens ?? Infinity,
    tokenizer.model_max_length ?? Infinity,
    cfg.max_position_embeddings ?? Infinity,
  );
  if (!Number.isFinite(maxTokens))
    throw new Error(`model ${spec.ref}: cannot tell its token limit`);
  const core = new TransformersCore(tokenizer, model, maxTokens, pooling, normalize);
  // The dimension comes from running the model, never from a constant.
  const probe = await core.embed(['dimension probe']);
  return core.withDim(probe.dim);
}

class TransformersCore implements Embedder {
  dim = 0;
  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly model: PreTrainedModel,
    readonly maxTokens: number,
    private readonly pooling: 'mean' | 'cls',
    private readonly normalize: boolean,
  ) {}

  withDim(dim: number): this {
    this.dim = dim;
    return this;
  }

  async embed(
    texts: readonly string[],
    tokenized?: TokenizedBatch,
    inNative?: Int32Array,
  ): Promise<EmbedOutput> {
    if (inNative) Atomics.store(inNative, 0, 1);
    try {
      return await this.run(texts, tokenized);
    } finally {
      if (inNative) Atomics.store(inNative, 0, 2);
    }
  }

  private async run(texts: readonly string[], tokenized?: TokenizedBatch): Promise<EmbedOutput> {
    const batch =
      tokenized ?? joinRows(texts.map((t) => encodeText(this.tokenizer, t, this.maxTokens)));
    const { ids, offsets, truncated } = batch;
    const n = offsets.length - 1;
    const tokens = new Uint32Array(n);
    for (let i = 0; i < n; i++) tokens[i] = (offsets[i + 1] as number) - (offsets[i] as number);
    const len = Math.max(...tokens);
    const inputIds = new BigInt64Array(n * len);
    const mask = new BigInt64Array(n * len);
    const padId = BigInt(this.tokenizer.pad_token_id ?? 0);
    for (let i = 0; i < n; i++) {
      const start = offsets[i] as number;
      const count = tokens[i] as number;
      for (let j = 0; j < len; j++) {
        inputIds[i * len + j] = j < count ? BigInt(ids[start + j] as number) : padId;
        mask[i * len + j] = j < count ? 1n : 0n;
      }
    }
    const dims = [n, len];
    const out = (await this.model({
      input_ids: new Tensor('int64', inputIds, dims),
      attention_mask: new Tensor('int64', mask, dims),
      token_type_ids: new Tensor('int64', new BigInt64Array(n * len), dims),
    })) as Record<string, Tensor>;
    const hidden = out.last_hidden_state ?? out.token_embeddings ?? Object.values(out)[0];
    if (!hidden) throw new Error('model returned no output');
    const dim = hidden.dims[2] as number;
    const data = pool(hidden.data as Float32Array, tokens, n, len, dim, this.pooling);
    if (this.normalize) l2normalize(data, dim);
    return { data, dim, truncated, tokens, paddedTokens: n * len };
  }
}

/** Mean over real tokens (padding excluded) or the first ([CLS]) token. */
function pool(
  hidden: Float32Array,
  tokens: Uint32Array,
  n: number,
  len: number,
  dim: number,
  mode: 'mean' | 'cls',
): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const count = mode === 'cls' ? 1 : (tokens[i] as number);
    const base = i * len * dim;
    for (let j = 0; j < count; j++) {
      const off = base + j * dim;
      for (let d = 0; d < dim; d++) out[i * dim + d]! += hidden[off + d] as number;
    }
    for (let d = 0; d < dim; d++) out[i * dim + d]! /= count;
  }
  return out;
}

/** sentence-transformers folders say how they pool and whether they normalise. */
function readPoolingConfig(dir: string): { pooling?: 'mean' | 'cls'; normalize?: boolean } {
  const out: { pooling?: 'mean' | 'cls'; normalize?: boolean } = {};
  const poolingFile = path.join(dir, '1_Pooling', 'config.json');
  if (fs.existsSync(poolingFile)) {
    const cfg = JSON.parse(fs.readFileSync(poolingFile, 'utf8')) as Record<string, boolean>;
    if (cfg.pooling_mode_cls_token) out.pooling = 'cls';
    else if (cfg.pooling_mode_mean_tokens) out.pooling = 'mean';
  }
  const modulesFile = path.join(dir, 'modules.json');
  if (fs.existsSync(modulesFile)) {
    const modules = JSON.parse(fs.readFileSync(modulesFile, 'utf8')) as Array<{ type?: string }>;
    out.normalize = modules.some((m) => m.type?.endsWith('Normalize'));
  }
  return out;
}

/** A core that computes nothing: measures the fleet's own overhead (bench case e). */
function noopEmbedder(dim: number): Embedder {
  if (!Number.isInteger(dim) || dim < 1) throw new Error('noop model needs a dimension: noop:DIM');
  return {
    dim,
    maxTokens: 512,
    embed: async (texts) => ({
      data: new Float32Array(texts.length * dim),
      dim,
      truncated: new Uint8Array(texts.length),
      tokens: new Uint32Array(texts.length).fill(1),
      paddedTokens: texts.length,
    }),
  };
}
