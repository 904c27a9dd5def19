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
 * `buf` does not hold a plain map (msgpackr records, truncation). A repeated
 * key keeps its last value, as decoders do.
 */
export function packedFields(buf: Buffer): Map<string, PackedField> | undefined {
  const out = new Map<string, PackedField>();
  try {
    const b = byte(buf, 0);
    let count: number;
    let pos: number;
    if (b >= 0x80 && b <= 0x8f) [count, pos] = [b & 0x0f, 1];
    else if (b === 0xde) [count, pos] = [uint(buf, 1, 2), 3];
    else if (b === 0xdf) [count, pos] = [uint(buf, 1, 4), 5];
    else return undefined;
    for (let i = 0; i < count; i++) {
      const key = strAt(buf, pos);
      const start = skip(buf, pos, () => true);
      let wellFormed = true;
      const end = skip(buf, start, (s, e) => (wellFormed &&= utf8(buf, s, e)));
      if (key !== undefined)
        out.set(buf.toString('utf8', key.start, key.end), { start, end, wellFormed });
      pos = end;
    }
  } catch (err) {
    if (err instanceof NotPlain) return undefined;
    throw err;
  }
  return out;
}

function byte(buf: Buffer, pos: number): number {
  const b = buf[pos];
  if (b === undefined) throw new NotPlain();
  return b;
}

/** Big-endian unsigned integer of `n` bytes (1, 2 or 4) at `pos`. */
function uint(buf: Buffer, pos: number, n: number): number {
  if (pos + n > buf.length) throw new NotPlain();
  return n === 1 ? (buf[pos] as number) : n === 2 ? buf.readUInt16BE(pos) : buf.readUInt32BE(pos);
}

/** Short strings are checked here: a native call costs more than the loop (measured ~0.3 us). */
function utf8(buf: Buffer, start: number, end: number): boolean {
  if (end - start > 64) return isUtf8(buf.subarray(start, end));
  for (let i = start; i < end; i++) {
    if ((buf[i] as number) >= 0x80) return isUtf8(buf.subarray(start, end));
  }
  return true;
}

/** Payload span of the str at `pos`, or undefined when the value there is not a str. */
function strAt(buf: Buffer, pos: number): { start: number; end: number } | undefined {
  const b = byte(buf, pos);
  let start: number;
  let length: number;
  if (b >= 0xa0 && b <= 0xbf) [start, length] = [pos + 1, b & 0x1f];
  else if (b === 0xd9) [start, length] = [pos + 2, uint(buf, pos + 1, 1)];
  else if (b === 0xda) [start, length] = [pos + 3, uint(buf, pos + 1, 2)];
  else if (b === 0xdb) [start, length] = [pos + 5, uint(buf, pos + 1, 4)];
  else return undefined;
  if (start + length > buf.length) throw new NotPlain();
  return { start, end: start + length };
}

/** Bytes after the type byte for the types whose size the byte alone gives; -1: not one of them. */
const FIXED = new Int8Array(256).fill(-1);
for (const [b, n] of [
  [0xc0, 0], [0xc2, 0], [0xc3, 0], // nil, false, true
  [0xca, 4], [0xcb, 8], // float 32, 64
  [0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8], // uint 8-64
  [0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8], // int 8-64
  [0xd4, 2], [0xd5, 3], [0xd6, 5], [0xd7, 9], [0xd8, 17], // fixext 1-16: type byte + data
] as const) FIXED[b] = n; // prettier-ignore

/**
 * Offset just past the value at `pos`, calling `onStr` with the payload span
 * of every str inside it (map keys included). Iterative: a count of values
 * still to skip replaces recursion, so deep nesting cannot exhaust the stack.
 */
function skip(buf: Buffer, pos: number, onStr: (start: number, end: number) => boolean): number {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const str = strAt(buf, pos);
    if (str !== undefined) {
      onStr(str.start, str.end);
      pos = str.end;
      continue;
    }
    const b = buf[pos] as number;
    pos += 1;
    if (b <= 0x7f || b >= 0xe0) continue; // positive / negative fixint
    if (b <= 0x8f)
      pending += 2 * (b & 0x0f); // fixmap
    else if (b <= 0x9f)
      pending += b & 0x0f; // fixarray
    else if ((FIXED[b] as number) >= 0) pos += FIXED[b] as number;
    // bin 8/16/32: length, data; ext 8/16/32: length, type byte, data.
    else if (b === 0xc4 || b === 0xc7) pos += 1 + uint(buf, pos, 1) + (b === 0xc7 ? 1 : 0);
    else if (b === 0xc5 || b === 0xc8) pos += 2 + uint(buf, pos, 2) + (b === 0xc8 ? 1 : 0);
    else if (b === 0xc6 || b === 0xc9) pos += 4 + uint(buf, pos, 4) + (b === 0xc9 ? 1 : 0);
    else if (b === 0xdc)
      [pending, pos] = [pending + uint(buf, pos, 2), pos + 2]; // array 16
    else if (b === 0xdd)
      [pending, pos] = [pending + uint(buf, pos, 4), pos + 4]; // array 32
    else if (b === 0xde)
      [pending, pos] = [pending + 2 * uint(buf, pos, 2), pos + 2]; // map 16
    else if (b === 0xdf)
      [pending, pos] = [pending + 2 * uint(buf, pos, 4), pos + 4]; // map 32
    else throw new NotPlain(); // 0xc1 is never used
    if (pos > buf.length) throw new NotPlain();
  }
  return pos;
}
