/**
 * The model table (`MODELS` / `--models`): short stream-safe names mapped to a
 * Hugging Face id, a local folder or a remote provider, with per-model options:
 *   minilm=Xenova/all-MiniLM-L6-v2,tiny=./models/tiny;dtype=fp32;maxTokens=256
 *   embed=openai:text-embedding-3-small;apiKeyEnv=OPENAI_API_KEY;rpm=3000
 *   nomic=nomic-ai/nomic-embed-text-v1.5;matryoshka=256|512
 * Short names keep slashes out of stream keys (docs/design.md, "Keys"). A
 * ref's scheme picks its backend (src/worker/backends/registry.ts).
 */
import fs from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

import { StreambedError } from '../errors.js';
import { type ChunkDefaults, formatChunkOptions, takeChunkOptions } from './chunk-options.js';
import {
  formatRemoteOptions,
  type RemoteOptions,
  remoteOptionsSchema,
  remoteRefOptions,
} from './remote-options.js';

export interface ModelSpec {
  /** Short name used in stream keys. */
  name: string;
  /** Hub id, absolute local folder, `noop:DIM` (computes nothing: overhead benchmarks) or `fixture:DIM` (test fixture, workers/fixture-core.ts). */
  ref: string;
  local: boolean;
  dtype: 'q8' | 'fp32' | 'fp16';
  /** Unset: as the model's sentence-transformers config says, else mean. */
  pooling?: 'mean' | 'cls';
  /** Unset: as the model's config says, else true. */
  normalize?: boolean;
  /** Unset: the tokenizer's model_max_length, capped by the position embeddings. */
  maxTokens?: number;
  /** Set for `openai:<provider-model>` refs (remote-options.ts); the local options above are then unused. */
  remote?: RemoteOptions;
  /** Chunking of long pages by default (chunk-options.ts); unset: off. */
  chunk?: ChunkDefaults;
  /**
   * Shorter sizes the gateway may cut this model's vectors to (the OpenAI
   * API's `dimensions`), for a model trained Matryoshka-style, whose first N
   * components, re-normalised, are an N-dimensional embedding. Written
   * `matryoshka=256|512` (`,` separates models). Unset: only its full size.
   * (A remote model's own `dimensions` asks its provider for one size.)
   */
  matryoshka?: number[];
}

/** Ref prefix of a model served by an OpenAI-compatible `/v1/embeddings` endpoint. */
export const OPENAI_SCHEME = 'openai:';

const optionsSchema = z
  .object({
    dtype: z.enum(['q8', 'fp32', 'fp16']).default('q8'),
    pooling: z.enum(['mean', 'cls']).optional(),
    normalize: z
      .enum(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
    maxTokens: z.coerce.number().int().min(2).max(8192).optional(),
  })
  .strict();

export const MODEL_NAME = /^[a-z0-9_-]{1,32}$/;

export function parseModelTable(table: string, cwd = process.cwd()): ModelSpec[] {
  const specs: ModelSpec[] = [];
  for (const item of table.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [head = '', ...opts] = item.split(';').map((s) => s.trim());
    const eq = head.indexOf('=');
    if (eq <= 0) fail(`"${head}" is not name=model`);
    const name = head.slice(0, eq);
    const ref = head.slice(eq + 1);
    if (!MODEL_NAME.test(name)) fail(`model name "${name}" must be 1-32 chars of [a-z0-9_-]`);
    if (!ref) fail(`model "${name}" has no id or path`);
    if (specs.some((s) => s.name === name)) fail(`model name "${name}" appears twice`);
    const { chunk, rest, error } = takeChunkOptions(Object.fromEntries(opts.map(splitOption)));
    if (error) fail(`model "${name}" ${error}`);
    const { matryoshka, ...given } = rest;
    // Options any model takes, local or remote.
    const common = {
      ...(chunk && { chunk }),
      ...(matryoshka !== undefined && { matryoshka: parseSizes(name, matryoshka) }),
    };
    if (ref.startsWith(OPENAI_SCHEME)) {
      if (ref.length === OPENAI_SCHEME.length) fail(`model "${name}" has no provider model`);
      const remote = checked(name, remoteOptionsSchema.safeParse(given));
      specs.push({
        name,
        ref,
        local: false,
        dtype: 'fp32',
        remote: stripUndefined(remote) as RemoteOptions,
        ...common,
      });
      continue;
    }
    const parsed = { data: checked(name, optionsSchema.safeParse(given)) };
    const local = isLocalRef(ref, cwd);
    specs.push({
      name,
      ref: local ? path.resolve(cwd, ref) : ref,
      local,
      ...stripUndefined(parsed.data),
      ...common,
    });
  }
  return specs;
}

/**
 * A local folder that is not there is a configuration error, reported at
 * start: retrying cannot make it appear (a hub id that fails may be transient).
 */
export function checkLocalModels(specs: readonly ModelSpec[]): void {
  for (const s of specs) {
    if (!s.local) continue;
    const stat = fs.statSync(s.ref, { throwIfNoEntry: false });
    if (!stat) fail(
        `model "${s.name}": folder ${s.ref} does not exist (a relative path is resolved against the working directory)`,
      );
    if (!stat.isDirectory()) fail(`model "${s.name}": ${s.ref} is not a folder`);
    if (!fs.existsSync(path.join(s.ref, 'config.json')))
      fail(`model "${s.name}": no config.json in ${s.ref} (not a Hugging Face model folder)`);
  }
}

function checked<T>(name: string, parsed: z.ZodSafeParseResult<T>): T {
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const which = issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue?.path.join('.');
  fail(`model "${name}" option ${which}: ${issue?.message}`);
}

function splitOption(opt: string): [string, string] {
  const eq = opt.indexOf('=');
  if (eq <= 0) fail(`model option "${opt}" is not key=value`);
  return [opt.slice(0, eq), opt.slice(eq + 1)];
}

/** `noop:DIM` (bench) and `fixture:DIM` (tests): cores with no model files and no tokenizer. */
export function isBuiltInCore(ref: string): boolean {
  return ref.startsWith('noop:') || ref.startsWith('fixture:');
}

/** A path that exists, or one that plainly is a path, is local; anything else is a hub id. */
function isLocalRef(ref: string, cwd: string): boolean {
  if (isBuiltInCore(ref)) return false;
  if (ref.startsWith('.') || path.isAbsolute(ref)) return true;
  return fs.existsSync(path.resolve(cwd, ref));
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** `256|512`: distinct sizes, ascending in the result. */
function parseSizes(name: string, value: string): number[] {
  const sizes = value.split('|').map((s) => s.trim());
  const bad = sizes.find((s) => !/^[1-9][0-9]{0,5}$/.test(s));
  if (bad !== undefined)
    fail(`model "${name}" option matryoshka: "${bad}" is not a size (write e.g. matryoshka=256|512)`);
  return [...new Set(sizes.map(Number))].sort((a, b) => a - b);
}

function fail(message: string): never {
  throw new StreambedError('config', `MODELS: ${message}`);
}

/** Back to the MODELS string form (for child processes and the chart test). */
export function formatModelTable(specs: ModelSpec[]): string {
  return specs
    .map((s) => {
      const opts = s.remote ? formatRemoteOptions(s.remote) : localOptions(s);
      const sizes = s.matryoshka ? [`matryoshka=${s.matryoshka.join('|')}`] : [];
      return [`${s.name}=${s.ref}`, ...opts, ...formatChunkOptions(s.chunk), ...sizes].join(';');
    })
    .join(',');
}

function localOptions(s: ModelSpec): string[] {
  const opts = [`dtype=${s.dtype}`];
  if (s.pooling) opts.push(`pooling=${s.pooling}`);
  if (s.normalize !== undefined) opts.push(`normalize=${s.normalize}`);
  if (s.maxTokens !== undefined) opts.push(`maxTokens=${s.maxTokens}`);
  return opts;
}

/** What a model name stands for, as the sink records it: the ref plus what changes its vectors. */
export function modelRef(spec: ModelSpec): string {
  // Not the rate limits, the key's name or chunking: those do not change a text's vector.
  if (spec.remote) return [spec.ref, ...remoteRefOptions(spec.remote)].join(';');
  return [spec.ref, ...localOptions(spec)].join(';');
}
