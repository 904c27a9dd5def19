/**
 * The publish script's one packed argument: msgpack written by hand, because
 * the script reads it with Redis' own `cmsgpack`, which knows no `bin` type
 * (msgpackr writes every Buffer as bin). Here every string and byte string is
 * a msgpack `str`, which cmsgpack turns into a Lua string byte for byte,
 * whatever the bytes; numbers are non-negative integers (key indexes).
 */

/** What a record may hold. */
export type Packable = string | Uint8Array | number | readonly Packable[];

/** Encode `value` (arrays of strings, byte strings and small integers) as msgpack. */
export function packRecords(value: Packable): Buffer {
  const out = Buffer.allocUnsafe(sizeOf(value));
  const end = write(out, 0, value);
  return out.subarray(0, end);
}

function headerSize(n: number, fix: number): number {
  return n < fix ? 1 : n < 0x10000 ? 3 : 5;
}

/** An upper bound of the encoded size (strings count 3 bytes a UTF-16 unit at most). */
function sizeOf(v: Packable): number {
  if (typeof v === 'string') return 5 + 3 * v.length;
  if (typeof v === 'number') return 5;
  if (v instanceof Uint8Array) return 5 + v.length;
  let n = headerSize(v.length, 16);
  for (const x of v) n += sizeOf(x);
  return n;
}

function write(out: Buffer, pos: number, v: Packable): number {
  if (typeof v === 'string') {
    // Written in place after a header sized for its longest UTF-8 form (3 bytes a UTF-16
    // unit): a str8 may then hold a string fixstr could have, which is still msgpack.
    const most = 3 * v.length;
    if (most < 32) {
      const n = out.write(v, pos + 1, 'utf8');
      out[pos] = 0xa0 | n;
      return pos + 1 + n;
    }
    if (most < 0x100) {
      const n = out.write(v, pos + 2, 'utf8');
      out[pos] = 0xd9;
      out[pos + 1] = n;
      return pos + 2 + n;
    }
    return writeBytes(out, pos, Buffer.from(v, 'utf8'));
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new RangeError(`cannot pack ${v}: key indexes only`);
    if (v < 0x80) {
      out[pos] = v;
      return pos + 1;
    }
    out[pos] = 0xce;
    out.writeUInt32BE(v, pos + 1);
    return pos + 5;
  }
  if (v instanceof Uint8Array) return writeBytes(out, pos, v);
  pos = writeHeader(out, pos, v.length, 0x90, 16, 0xdc);
  for (const x of v) pos = write(out, pos, x);
  return pos;
}

function writeBytes(out: Buffer, pos: number, bytes: Uint8Array): number {
  const n = bytes.length;
  if (n < 32) out[pos++] = 0xa0 | n;
  else if (n < 0x100) {
    out[pos++] = 0xd9;
    out[pos++] = n;
  } else pos = writeHeader(out, pos, n, 0, 0, 0xda);
  out.set(bytes, pos);
  return pos + n;
}

/** Array (fix 0x90, 16 0xdc, 32 0xdd) or str (16 0xda, 32 0xdb) length header. */
function writeHeader(
  out: Buffer,
  pos: number,
  n: number,
  fixBase: number,
  fix: number,
  b16: number,
): number {
  if (n < fix) {
    out[pos] = fixBase | n;
    return pos + 1;
  }
  if (n < 0x10000) {
    out[pos] = b16;
    out.writeUInt16BE(n, pos + 1);
    return pos + 3;
  }
  out[pos] = b16 + 1;
  out.writeUInt32BE(n, pos + 1);
  return pos + 5;
}
