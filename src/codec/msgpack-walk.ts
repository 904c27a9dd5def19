/**
 * A byte-level walk over a msgpack map, without decoding it: where each
 * top-level value starts and ends, and whether every string inside it is
 * well-formed UTF-8. msgpackr decodes ill-formed UTF-8 (lone surrogates
 * written as `ED A0 80`, stray bytes) to U+FFFD without a word, so only the
 * bytes can say whether a producer sent text the flat form would refuse; and
 * only the bytes let `meta` be echoed exactly as it was encoded.
 */
import { isUtf8 } from 'node:buffer';

export interface PackedField {
  /** Offset of the value's first byte in the buffer. */
  start: number;
  /** Offset just past the value. */
  end: number;
  /** False when some string inside the value (or a key of a nested map) is not UTF-8. */
  wellFormed: boolean;
}

/** Thrown internally when the bytes are not plain msgpack (e.g. msgpackr's records extension). */
class NotPlain extends Error {}

/**
 * The top-level fields of a msgpack map with string keys, or undefined when
 * `buf` does not start with a plain map (msgpackr records, truncation). A
 * repeated key keeps its last value, as decoders do.
 */
export function packedFields(buf: Uint8Array): Map<string, PackedField> | undefined {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const head = mapHeader(buf, view, 0);
  if (head === undefined) return undefined;
  const out = new Map<string, PackedField>();
  let pos = head.next;
  try {
    for (let i = 0; i < head.count; i++) {
      const str = strAt(buf, view, pos);
      const keyEnd = skip(buf, view, pos, () => true);
      let wellFormed = true;
      const end = skip(buf, view, keyEnd, (s, e) => (wellFormed &&= isUtf8(buf.subarray(s, e))));
      if (str !== undefined) {
        const key = Buffer.from(buf.buffer, buf.byteOffset + str.start, str.end - str.start);
        out.set(key.toString('utf8'), { start: keyEnd, end, wellFormed });
      }
      pos = end;
    }
  } catch (err) {
    if (err instanceof NotPlain) return undefined;
    throw err;
  }
  return out;
}

function mapHeader(buf: Uint8Array, view: DataView, pos: number) {
  const b = buf[pos];
  if (b === undefined) return undefined;
  if (b >= 0x80 && b <= 0x8f) return { count: b & 0x0f, next: pos + 1 };
  if (b === 0xde && pos + 3 <= buf.length) return { count: view.getUint16(pos + 1), next: pos + 3 };
  if (b === 0xdf && pos + 5 <= buf.length) return { count: view.getUint32(pos + 1), next: pos + 5 };
  return undefined;
}

/** Payload span of the str at `pos`, or undefined when the value there is not a str. */
function strAt(buf: Uint8Array, view: DataView, pos: number) {
  const b = buf[pos];
  if (b === undefined) throw new NotPlain();
  if (b >= 0xa0 && b <= 0xbf) return span(buf, pos + 1, b & 0x1f);
  if (b === 0xd9) return span(buf, pos + 2, need(buf, pos, 2) && view.getUint8(pos + 1));
  if (b === 0xda) return span(buf, pos + 3, need(buf, pos, 3) && view.getUint16(pos + 1));
  if (b === 0xdb) return span(buf, pos + 5, need(buf, pos, 5) && view.getUint32(pos + 1));
  return undefined;
}

function need(buf: Uint8Array, pos: number, n: number): true {
  if (pos + n > buf.length) throw new NotPlain();
  return true;
}

function span(buf: Uint8Array, start: number, length: number) {
  if (start + length > buf.length) throw new NotPlain();
  return { start, end: start + length };
}

/** Fixed sizes after the type byte, for the types whose size the byte alone gives. */
const FIXED: Record<number, number> = {
  0xc0: 0, 0xc2: 0, 0xc3: 0, // nil, false, true
  0xca: 4, 0xcb: 8, // float 32, 64
  0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, // uint 8-64
  0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, // int 8-64
  0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17, // fixext 1-16 (type byte + data)
}; // prettier-ignore

/**
 * Offset just past the value at `pos`, calling `onStr` with the payload span
 * of every str inside it (map keys included). Iterative: a count of values
 * still to skip replaces recursion, so deep nesting cannot exhaust the stack.
 */
function skip(
  buf: Uint8Array,
  view: DataView,
  pos: number,
  onStr: (start: number, end: number) => boolean,
): number {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const str = strAt(buf, view, pos);
    if (str !== undefined) {
      onStr(str.start, str.end);
      pos = str.end;
      continue;
    }
    const b = buf[pos] as number;
    pos += 1;
    if (b <= 0x7f || b >= 0xe0) continue; // positive / negative fixint
    if (b <= 0x8f) pending += 2 * (b & 0x0f);
    else if (b <= 0x9f) pending += b & 0x0f;
    else if (FIXED[b] !== undefined) pos += FIXED[b];
    else if (b === 0xc4 || b === 0xc7) pos += (need(buf, pos - 1, 2) && view.getUint8(pos)) + 1;
    else if (b === 0xc5 || b === 0xc8) pos += (need(buf, pos - 1, 3) && view.getUint16(pos)) + 2;
    else if (b === 0xc6 || b === 0xc9) pos += (need(buf, pos - 1, 5) && view.getUint32(pos)) + 4;
    else if (b === 0xdc) pending += need(buf, pos - 1, 3) && view.getUint16(pos);
    else if (b === 0xdd) pending += need(buf, pos - 1, 5) && view.getUint32(pos);
    else if (b === 0xde) pending += 2 * (need(buf, pos - 1, 3) && view.getUint16(pos));
    else if (b === 0xdf) pending += 2 * (need(buf, pos - 1, 5) && view.getUint32(pos));
    else throw new NotPlain(); // 0xc1 is never used
    // ext 8/16/32 carry a type byte after the length.
    if (b === 0xc7 || b === 0xc8 || b === 0xc9) pos += 1;
    if (b >= 0xdc) pos += b === 0xdc || b === 0xde ? 2 : 4;
    if (pos > buf.length) throw new NotPlain();
  }
  return pos;
}
