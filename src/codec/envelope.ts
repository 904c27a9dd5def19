/**
 * Decoding and validation of request entries (docs/design.md, "Request entry").
 * Accepts the SDK's binary `env` field (a msgpack map) or flat string fields.
 * Never throws on bad input: returns a typed rejection carrying whatever could
 * be recovered (id, source, a usable reply stream) so the caller can answer it.
 */
import { unpack } from 'msgpackr';
import { z } from 'zod';

import type { ResultErrorCode } from '../errors.js';
import { SOURCE_NAME, SOURCE_PLACEHOLDER } from '../keys.js';
import { MIN_CHUNK_WINDOW } from '../models/chunk-options.js';
import type { Envelope } from '../types.js';
import { globMatcher } from './glob.js';
import { metaJson, parseJsonExact, rememberPackedMeta } from './meta.js';
import { packedFields } from './msgpack-walk.js';

export interface EnvelopeLimits {
  maxEnvelopeBytes: number;
  maxMetaBytes: number;
  maxChunks: number;
  /** Glob that `reply_to` must match, e.g. `sb:reply:{source}/*` (`{source}`: the envelope's). */
  replyToPattern: string;
}

export type DecodeOutcome =
  | { ok: true; envelope: Envelope }
  | {
      ok: false;
      code: ResultErrorCode;
      message: string;
      id?: string;
      source?: string;
      /** A reply stream the error may be sent to (only when it passed the allow pattern). */
      replyTo?: string;
    };

/** What an ok answer carries: `vectors` (the default) or `status` (everything but the vectors). */
export const REPLY_MODES = ['vectors', 'status'] as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

/** The envelope's field rules, shared with the CLI's JSONL lines (page-line.ts). */
export const idSchema = z
  .string()
  .refine((s) => byteLength(s) >= 1 && byteLength(s) <= 256, 'id must be 1-256 bytes')
  // Postgres text cannot hold U+0000: a sink could never store the page (nor look it up).
  .refine((s) => !s.includes('\u0000'), 'id must not contain U+0000 (NUL)');
export const sourceSchema = z
  .string()
  .regex(SOURCE_NAME, 'source must be 1-128 chars of [A-Za-z0-9._:-]');
export const chunkSchema = z.union([
  z.boolean(),
  z
    .object({
      window: z.number().int().min(MIN_CHUNK_WINDOW).optional(),
      overlap: z.number().int().min(0).optional(),
    })
    .strict()
    .refine(
      (c) => c.overlap === undefined || c.window === undefined || c.overlap * 2 < c.window,
      'overlap must be under half of window',
    ),
]);

const shape = z.object({
  id: idSchema,
  source: sourceSchema,
  text: z.string().optional(),
  texts: z.array(z.string()).optional(),
  reply_to: z.string().min(1).optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
  deadline_ms: z.number().int().nonnegative().optional(),
  reply: z.enum(REPLY_MODES).optional(),
  chunk: chunkSchema.optional(),
  page_vector: z.boolean().optional(),
});
type RawEnvelope = z.infer<typeof shape>;

/** Make a decoder bound to one set of limits (the pattern is compiled once). */
export function envelopeDecoder(limits: EnvelopeLimits) {
  const replyAllowed = replyMatcher(limits.replyToPattern);
  return (fields: Buffer[]): DecodeOutcome => decodeEntry(fields, limits, replyAllowed);
}

/**
 * `reply_to` allow check. A pattern with `{source}` (e.g. `sb:reply:{source}/*`)
 * binds reply streams to the envelope's source, so one tenant cannot have the
 * fleet write into another's streams. Sources are `[A-Za-z0-9._:-]`: no glob
 * character can come in through them, and a separator outside that set (`/`)
 * keeps source `a` out of source `a:b`'s streams.
 */
export function replyMatcher(pattern: string): (key: string, source: unknown) => boolean {
  if (!pattern.includes(SOURCE_PLACEHOLDER)) {
    const match = globMatcher(pattern);
    return (key) => match(key);
  }
  const bySource = new Map<string, (key: string) => boolean>();
  return (key, source) => {
    if (typeof source !== 'string' || !SOURCE_NAME.test(source)) return false;
    let match = bySource.get(source);
    if (!match) {
      // Bounded: a flood of distinct sources recompiles instead of growing the map.
      if (bySource.size >= 10_000) bySource.clear();
      match = globMatcher(pattern.split(SOURCE_PLACEHOLDER).join(source));
      bySource.set(source, match);
    }
    return match(key);
  };
}

function decodeEntry(
  fields: Buffer[],
  limits: EnvelopeLimits,
  replyAllowed: (key: string, source: unknown) => boolean,
): DecodeOutcome {
  const raw = readRaw(fields);
  if ('error' in raw) {
    // Still answer on the producer's reply stream when the rest of the entry names one.
    return {
      ok: false,
      code: 'invalid',
      message: raw.error,
      ...salvageRouting(raw.partial ?? {}, replyAllowed),
    };
  }
  const salvage = salvageRouting(raw.value, replyAllowed);
  const reject = (code: ResultErrorCode, message: string): DecodeOutcome => ({
    ok: false,
    code,
    message,
    ...salvage,
  });

  const parsed = shape.safeParse(raw.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return reject('invalid', `${issue?.path.join('.') || 'entry'}: ${issue?.message}`);
  }
  const env = parsed.data;
  // The parsed meta is a new object: the one the result will see.
  if (env.meta !== undefined && raw.metaBytes) rememberPackedMeta(env.meta, raw.metaBytes);
  const texts = chunksOf(env);
  if (env.chunk !== undefined && env.chunk !== false && env.texts !== undefined) {
    return reject('invalid', 'chunk splits one page (`text`); `texts` are chunks already');
  }
  if (typeof texts === 'string') return reject('invalid', texts);
  if (texts.length > limits.maxChunks) {
    return reject('too_large', `${texts.length} chunks exceed the limit of ${limits.maxChunks}`);
  }
  const total = texts.reduce((n, t) => n + byteLength(t), 0);
  if (total > limits.maxEnvelopeBytes) {
    return reject(
      'too_large',
      `text is ${total} bytes, over the limit of ${limits.maxEnvelopeBytes}`,
    );
  }
  if (env.meta !== undefined) {
    const metaBytes = jsonBytes(env.meta);
    if (metaBytes === undefined) return reject('invalid', 'meta is nested too deeply');
    if (metaBytes > limits.maxMetaBytes) {
      return reject(
        'too_large',
        `meta is ${metaBytes} bytes, over the limit of ${limits.maxMetaBytes}`,
      );
    }
    // The sink's jsonb column refuses U+0000 in a key or a string: refused here, with a
    // reason, rather than an upsert that could never succeed.
    if (holdsNul(env.meta)) return reject('invalid', 'meta must not contain U+0000 (NUL)');
  }
  if (env.reply_to !== undefined && !replyAllowed(env.reply_to, env.source)) {
    return reject(
      'reply_to_denied',
      `reply_to does not match the allowed pattern ${limits.replyToPattern}`,
    );
  }
  return {
    ok: true,
    envelope: {
      id: env.id,
      source: env.source,
      texts,
      single: env.text !== undefined,
      ...(env.reply_to !== undefined && { replyTo: env.reply_to }),
      ...(env.meta !== undefined && { meta: env.meta }),
      ...(env.deadline_ms !== undefined && { deadlineMs: env.deadline_ms }),
      ...(env.reply === 'status' && { reply: 'status' as const }),
      ...(env.chunk !== undefined && { chunk: env.chunk }),
      ...(env.page_vector === true && { pageVector: true as const }),
    },
  };
}

function chunksOf(env: RawEnvelope): string[] | string {
  if (env.text !== undefined && env.texts !== undefined)
    return 'give either text or texts, not both';
  const texts = env.text !== undefined ? [env.text] : env.texts;
  if (texts === undefined) return 'text or texts is required';
  if (texts.length === 0) return 'texts is empty';
  if (texts.some((t) => t.trim().length === 0)) return 'empty text';
  return texts;
}

/** Pull id, source and an allowed reply_to out of even an invalid entry, to answer it. */
function salvageRouting(
  value: Record<string, unknown>,
  replyAllowed: (key: string, source: unknown) => boolean,
) {
  const out: { id?: string; source?: string; replyTo?: string } = {};
  if (typeof value.id === 'string' && byteLength(value.id) <= 256) out.id = value.id;
  if (typeof value.source === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value.source)) {
    out.source = value.source;
  }
  if (typeof value.reply_to === 'string' && replyAllowed(value.reply_to, value.source))
    out.replyTo = value.reply_to;
  return out;
}

type Raw =
  | {
      value: Record<string, unknown>;
      /** The env form's own encoding of `meta`, echoed untouched in the result. */
      metaBytes?: Buffer;
    }
  | { error: string; partial?: Record<string, unknown> };

/**
 * One rule for text in both wire forms: a string that is not well-formed
 * Unicode (invalid UTF-8 bytes, or a lone surrogate however it was written:
 * `ED A0 80` in msgpack or flat bytes, `\ud800` in flat JSON) is rejected,
 * never repaired to U+FFFD, so a page is embedded and echoed as sent or not at all.
 */
const illFormed = (name: string) =>
  `field ${JSON.stringify(name.slice(0, 32))} is not well-formed Unicode (invalid UTF-8 or a lone surrogate)`;

/** Turn the entry's field list into one plain object, from either wire form. */
function readRaw(fields: Buffer[]): Raw {
  const flat = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    flat.set((fields[i] as Buffer).toString('latin1'), fields[i + 1] as Buffer);
  }
  const env = flat.get('env');
  if (env !== undefined) return readPacked(env);
  return readFlat(flat);
}

/** The fields but the ill-formed ones: routing must not answer to a repaired reply_to or id. */
const without = (value: Record<string, unknown>, names: string[]) =>
  Object.fromEntries(Object.entries(value).filter(([k]) => !names.includes(k)));

function readPacked(buf: Buffer): Raw {
  let value: unknown;
  try {
    value = unpack(buf);
  } catch (err) {
    return { error: `env is not valid msgpack (${(err as Error).message.slice(0, 80)})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Map) {
    return { error: 'env must be a msgpack map with string keys' };
  }
  const record = value as Record<string, unknown>;
  // Undefined for msgpackr's records extension (not a plain map; the SDK never writes
  // it): those still decode as before, with ill-formed bytes repaired to U+FFFD.
  const packed = packedFields(buf);
  const bad = [...(packed ?? [])].filter(([, f]) => !f.wellFormed).map(([name]) => name);
  if (bad.length > 0) {
    return { error: illFormed(bad[0] as string), partial: without(record, bad) };
  }
  // Epoch ms is past 2^32, so msgpack writes it as uint64, which msgpackr reads as BigInt.
  if (typeof record.deadline_ms === 'bigint') record.deadline_ms = Number(record.deadline_ms);
  const meta = packed?.get('meta');
  // A copy: a slice would keep the whole entry (its text) alive as long as the meta.
  return {
    value: record,
    ...(meta && { metaBytes: Buffer.from(buf.subarray(meta.start, meta.end)) }),
  };
}

function readFlat(flat: Map<string, Buffer>): Raw {
  const value: Record<string, unknown> = {};
  let error: string | undefined;
  for (const [name, buf] of flat) {
    try {
      value[name] = utf8.decode(buf);
    } catch {
      error ??= illFormed(name);
    }
  }
  for (const [field, what, parse] of [
    ['meta', 'meta is not valid JSON', parseJsonExact],
    ['texts', 'texts is not a valid JSON array', JSON.parse],
  ] as const) {
    if (typeof value[field] !== 'string') continue;
    try {
      value[field] = parse(value[field] as string);
    } catch {
      error ??= what;
    }
  }
  if (error) return { error, partial: value };
  // The other fields passed the fatal decoder; JSON escapes can still write a lone surrogate.
  const lone = (['meta', 'texts'] as const).find((field) => hasLoneSurrogate(value[field]));
  if (lone !== undefined) return { error: illFormed(lone), partial: without(value, [lone]) };
  for (const field of ['chunk', 'page_vector'] as const) {
    if (typeof value[field] === 'string') value[field] = flatFlag(value[field] as string);
  }
  if (typeof value.deadline_ms === 'string') {
    value.deadline_ms = /^\d+$/.test(value.deadline_ms)
      ? Number(value.deadline_ms)
      : value.deadline_ms;
  }
  return { value };
}

/** A flat `true`/`false`/`1`/`0`, or (for `chunk`) a JSON object; anything else stays a string and fails validation. */
function flatFlag(v: string): unknown {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  if (v.startsWith('{')) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  return v;
}

/** Whether a key or a string anywhere in `value` holds U+0000 (meta's depth is bounded by then). */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([k, v]) => k.includes('\u0000') || holdsNul(v));
  return false;
}

/** Encoded size of meta as JSON (64-bit integers as their digits), or undefined when too deep to encode. */
function jsonBytes(meta: unknown): number | undefined {
  try {
    return byteLength(metaJson(meta));
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

/** True when a string in `value` (at any depth, map keys included) holds a lone surrogate. */
function hasLoneSurrogate(value: unknown): boolean {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return true;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
      for (const [k, x] of Object.entries(v)) stack.push(k, x);
    }
  }
  return false;
}

/** In a `u` regex a surrogate pair is one code point, so this matches only lone halves. */
const LONE_SURROGATE = /\p{Surrogate}/u;
