/**
 * Result entries (docs/design.md, "Result entry"): plain `id`, `source`,
 * `rid`, `status` fields for simple consumers, plus `res`, a msgpack map whose
 * vectors are raw float32 little-endian `bin` values, one per chunk.
 */
import { createHash } from 'node:crypto';

import { Packr } from 'msgpackr';

import type { ResultErrorCode } from '../errors.js';
import type { EmbedResult, ErrorPayload, OkPayload, ReplyMode } from '../types.js';
import { packedMetaOf } from './meta.js';

// Plain maps (no records extension) so any msgpack library can read results.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export interface ResultHead {
  id: string;
  source: string;
  rid: string;
}

/**
 * Field/value list for XADD of a successful result; without `vectors` when
 * the request asked for `reply: status` (a page answered into a sink: its
 * vectors would be ~4 x dim bytes per page of Redis nobody reads).
 */
export function okFields(
  head: ResultHead,
  payload: OkPayload,
  reply: ReplyMode = 'vectors',
): (string | Buffer)[] {
  // The producer's own meta bytes when it sent an env: a re-encoding would turn
  // its 3.0 into 3 and its float32 into float64 (JS numbers cannot tell them apart).
  const metaBytes = payload.meta !== undefined ? packedMetaOf(payload.meta) : undefined;
  const res = {
    model: payload.model,
    dim: payload.dim,
    ...(reply === 'vectors' && { vectors: payload.vectors.map(float32Bytes) }),
    truncated: payload.truncated,
    ...(payload.tokens && { tokens: payload.tokens }),
    ...(payload.spans && { spans: payload.spans }),
    ...(reply === 'vectors' &&
      payload.pageVector && { page_vector: float32Bytes(payload.pageVector) }),
    hash: payload.hash,
    ...(payload.meta !== undefined && metaBytes === undefined && { meta: payload.meta }),
    ms: payload.ms,
    worker: payload.worker,
  };
  const packed = packr.pack(res);
  return [
    'id',
    head.id,
    'source',
    head.source,
    'rid',
    head.rid,
    'status',
    'ok',
    'res',
    metaBytes ? withEntry(packed, META_KEY, metaBytes) : packed,
  ];
}

const META_KEY = Buffer.from([0xa4, ...Buffer.from('meta')]); // fixstr "meta"

/** A packed map (as msgpackr writes it: map16, or fixmap) with one more packed key/value pair at its end. */
function withEntry(map: Buffer, key: Uint8Array, value: Uint8Array): Buffer {
  const b = map[0] as number;
  const [count, headLength] = b === 0xde ? [map.readUInt16BE(1), 3] : [b & 0x0f, 1];
  // map16 is valid for any count, as msgpackr itself writes it.
  const head = Buffer.alloc(3);
  head[0] = 0xde;
  head.writeUInt16BE(count + 1, 1);
  return Buffer.concat([head, map.subarray(headLength), key, value]);
}

/** Field/value list for XADD of an error result. */
export function errorFields(head: Partial<ResultHead>, code: ResultErrorCode, message: string) {
  const res: ErrorPayload = { code, message };
  return [
    'id',
    head.id ?? '',
    'source',
    head.source ?? '',
    'rid',
    head.rid ?? '',
    'status',
    'error',
    'res',
    packr.pack(res),
  ];
}

/** A view of the vector's bytes: no copy (x86 and ARM are little-endian). */
function float32Bytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Decode one result entry read with a Buffer-returning command. */
export function decodeResult(resultId: string, fields: Buffer[]): EmbedResult {
  const plain: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    plain[(fields[i] as Buffer).toString()] = fields[i + 1] as Buffer;
  }
  const head = {
    resultId,
    id: plain.id?.toString() ?? '',
    source: plain.source?.toString() ?? '',
    rid: plain.rid?.toString() ?? '',
  };
  const res = plain.res ? (packr.unpack(plain.res) as Record<string, unknown>) : {};
  if (plain.status?.toString() === 'ok') {
    const { page_vector: page, ...rest } = res;
    const vectors = ((res.vectors as Uint8Array[] | undefined) ?? []).map(toFloat32);
    const ok = { ...(rest as unknown as OkPayload), vectors };
    if (page instanceof Uint8Array) ok.pageVector = toFloat32(page);
    return { ...head, status: 'ok', res: ok };
  }
  return { ...head, status: 'error', res: res as unknown as ErrorPayload };
}

/** Copy into a fresh, aligned Float32Array (msgpack bins are not 4-byte aligned). */
function toFloat32(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Content hash of an envelope's chunks: what dedupe and the sink compare. */
export function contentHash(texts: readonly string[]): string {
  const h = createHash('sha256');
  for (const t of texts) {
    h.update(String(Buffer.byteLength(t)));
    h.update(':');
    h.update(t);
  }
  return h.digest('hex').slice(0, 32);
}
