import { pack, Packr, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';

import { envelopeDecoder } from '../src/codec/envelope.js';
import { metaJson, parseJsonExact } from '../src/codec/meta.js';
import { decodeResult, okFields } from '../src/codec/result.js';
import type { Envelope } from '../src/types.js';

const decode = envelopeDecoder({
  maxEnvelopeBytes: 1000,
  maxMetaBytes: 100,
  maxChunks: 3,
  replyToPattern: 'sb:reply:*',
});
/** Same limits but room for the bigger metas below. */
const roomy = envelopeDecoder({
  maxEnvelopeBytes: 1000,
  maxMetaBytes: 1000,
  maxChunks: 3,
  replyToPattern: 'sb:reply:*',
});
const flat = (o: Record<string, string | undefined>) =>
  Object.entries(o).flatMap(([k, v]) => (v === undefined ? [] : [Buffer.from(k), Buffer.from(v)]));
const packed = (o: unknown) => [Buffer.from('env'), pack(o)];

describe('envelope decoding', () => {
  it('accepts the flat form redis-cli writes', () => {
    const r = decode(
      flat({
        id: 'p1',
        source: 'docs',
        text: 'hello',
        meta: '{"a":1}',
        deadline_ms: '99999999999999',
      }),
    );
    expect(r).toEqual({
      ok: true,
      envelope: {
        id: 'p1',
        source: 'docs',
        texts: ['hello'],
        single: true,
        meta: { a: 1 },
        deadlineMs: 99999999999999,
      },
    });
  });

  it('accepts the msgpack form with chunks and reply_to', () => {
    const r = decode(packed({ id: 'p2', source: 's', texts: ['a', 'b'], reply_to: 'sb:reply:x' }));
    expect(r.ok && r.envelope).toMatchObject({
      texts: ['a', 'b'],
      single: false,
      replyTo: 'sb:reply:x',
    });
  });

  it.each([
    ['garbage env', [Buffer.from('env'), Buffer.from([0xc1, 0xff, 0x00])], 'invalid'],
    ['env not a map', packed([1, 2, 3]), 'invalid'],
    ['missing id', flat({ source: 's', text: 'x' }), 'invalid'],
    ['id too long', flat({ id: 'x'.repeat(257), source: 's', text: 'x' }), 'invalid'],
    ['bad source', flat({ id: 'a', source: 'has space', text: 'x' }), 'invalid'],
    ['no text', flat({ id: 'a', source: 's' }), 'invalid'],
    ['empty text', flat({ id: 'a', source: 's', text: '   ' }), 'invalid'],
    ['both text and texts', packed({ id: 'a', source: 's', text: 'x', texts: ['y'] }), 'invalid'],
    ['text not a string', packed({ id: 'a', source: 's', text: 42 }), 'invalid'],
    [
      'invalid utf-8',
      [
        Buffer.from('id'),
        Buffer.from('a'),
        Buffer.from('source'),
        Buffer.from('s'),
        Buffer.from('text'),
        Buffer.from([0xff, 0xfe]),
      ],
      'invalid',
    ],
    ['meta not JSON', flat({ id: 'a', source: 's', text: 'x', meta: '{' }), 'invalid'],
    ['oversize text', flat({ id: 'a', source: 's', text: 'x'.repeat(1001) }), 'too_large'],
    ['too many chunks', packed({ id: 'a', source: 's', texts: ['a', 'b', 'c', 'd'] }), 'too_large'],
    [
      'oversize meta',
      packed({ id: 'a', source: 's', text: 'x', meta: { k: 'v'.repeat(200) } }),
      'too_large',
    ],
    [
      'reply_to outside the pattern',
      flat({ id: 'a', source: 's', text: 'x', reply_to: 'other:stream' }),
      'reply_to_denied',
    ],
  ])('%s -> %s', (_name, fields, code) => {
    const r = decode(fields as Buffer[]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  it('salvages id, source and an allowed reply stream from a rejected entry', () => {
    const r = decode(flat({ id: 'a', source: 's', text: '', reply_to: 'sb:reply:me' }));
    expect(r).toMatchObject({
      ok: false,
      code: 'invalid',
      id: 'a',
      source: 's',
      replyTo: 'sb:reply:me',
    });
    const denied = decode(flat({ id: 'a', source: 's', text: 'x', reply_to: 'elsewhere' }));
    expect(denied).toMatchObject({ ok: false, code: 'reply_to_denied', id: 'a' });
    expect(!denied.ok && denied.replyTo).toBeUndefined();
  });
});

/** Hand-written msgpack: a map of [key, already-packed value] pairs, so tests control every byte. */
function rawMap(pairs: [string, Uint8Array][]): Buffer {
  return Buffer.concat([
    Buffer.from([0x80 | pairs.length]),
    ...pairs.flatMap(([k, v]) => [pack(k), v]),
  ]);
}
/** An env entry {id: 'a', source: 's', text: 'x'} plus one hand-packed field. */
const rawEnv = (extra: [string, Uint8Array]) => [
  Buffer.from('env'),
  rawMap([['id', pack('a')], ['source', pack('s')], ['text', pack('x')], extra]),
];
const u64 = (n: bigint) => Buffer.from([0xcf, ...bigBytes(n, 8)]);
const i64 = (n: bigint) => Buffer.from([0xd3, ...bigBytes(BigInt.asUintN(64, n), 8)]);
const f64 = (x: number) => {
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(x, 1);
  return b;
};
function bigBytes(n: bigint, width: number): number[] {
  return Array.from({ length: width }, (_, i) =>
    Number((n >> BigInt(8 * (width - 1 - i))) & 0xffn),
  );
}
const envOf = (r: ReturnType<typeof roomy>): Envelope => {
  if (!r.ok) throw new Error(`rejected: ${r.code} ${r.message}`);
  return r.envelope;
};
/** What a result written for this envelope carries back as meta, decoded. */
function echoedMeta(env: Envelope): { res: Buffer; meta: unknown } {
  const fields = okFields(
    { id: env.id, source: env.source, rid: '1-0' },
    {
      model: 'm',
      dim: 2,
      vectors: [new Float32Array([0.6, 0.8])],
      truncated: [false],
      hash: 'h',
      ...(env.meta !== undefined && { meta: env.meta }),
      ms: 1,
      worker: 'w',
    },
  );
  const res = fields[fields.length - 1] as Buffer;
  const decoded = decodeResult(
    '2-0',
    fields.map((f) => Buffer.from(f)),
  );
  expect(decoded.status === 'ok' && Array.from(decoded.res.vectors[0] ?? [])).toEqual([
    Math.fround(0.6),
    Math.fround(0.8),
  ]);
  return { res, meta: decoded.status === 'ok' ? decoded.res.meta : undefined };
}

describe('64-bit integers (producers in other languages)', () => {
  const now = 1_764_470_000_000; // epoch ms is past 2^32: msgpack writes it as uint64

  it('reads deadline_ms written as uint64 or int64 as a number', () => {
    for (const deadline of [u64(BigInt(now)), i64(BigInt(now))]) {
      const env = envOf(decode(rawEnv(['deadline_ms', deadline])));
      expect(env.deadlineMs).toBe(now);
    }
  });

  it('rejects a negative int64 deadline_ms as invalid', () => {
    const r = decode(rawEnv(['deadline_ms', i64(-5n)]));
    expect(r).toMatchObject({ ok: false, code: 'invalid', id: 'a' });
    expect(!r.ok && r.message).toMatch(/^deadline_ms: /);
  });

  it('echoes an env meta byte for byte: int64/uint64 exact, floats (even 3.0, float32) stay floats', () => {
    const metaBytes = rawMap([
      ['u64max', u64(2n ** 64n - 1n)],
      ['i64min', i64(-(2n ** 63n))],
      ['small64', i64(7n)],
      ['whole', f64(3)],
      ['f32', Buffer.from([0xca, 0x3d, 0xcc, 0xcc, 0xcd])], // float32 0.1
      ['nested', Buffer.concat([Buffer.from([0x92]), i64(-(2n ** 40n)), f64(2.5)])],
    ]);
    const env = envOf(roomy(rawEnv(['meta', metaBytes])));
    expect(env.meta).toMatchObject({ u64max: 2n ** 64n - 1n, i64min: -(2n ** 63n), whole: 3 });
    const { res, meta } = echoedMeta(env);
    expect(res.includes(Buffer.concat([pack('meta'), metaBytes]))).toBe(true);
    expect(meta).toEqual({
      u64max: 2n ** 64n - 1n,
      i64min: -(2n ** 63n),
      small64: 7n,
      whole: 3,
      f32: unpack(Buffer.from([0xca, 0x3d, 0xcc, 0xcc, 0xcd])),
      nested: [-(2n ** 40n), 2.5],
    });
    // The rest of the result map is intact around the spliced meta.
    expect(Object.keys(unpack(res) as object).sort()).toEqual(
      ['dim', 'hash', 'meta', 'model', 'ms', 'truncated', 'vectors', 'worker'].sort(),
    );
  });

  it('walks every msgpack type in meta and echoes it byte for byte', () => {
    const hex = (h: string) => Buffer.from(h.replace(/ /g, ''), 'hex');
    const metaBytes = rawMap([
      ['bin', hex('c4 03 010203')],
      // Timestamps (ext -1) are the extension msgpackr reads: it rejects unknown ones.
      ['ts32', hex('d6 ff 5f5e1000')],
      ['ts64', hex('d7 ff 00000004 5f5e1000')],
      ['ts96', hex('c7 0c ff 00000001 000000005f5e1000')],
      ['str16', Buffer.concat([hex('da 0100'), Buffer.alloc(256, 0x61)])],
      ['array16', Buffer.concat([hex('dc 0010'), Buffer.alloc(16, 0x01)])],
      ['map16', hex('de 0001 a1 6b c0')],
      [
        'scalars',
        hex('9c c2 c3 ff d0 80 d1 8000 d2 80000000 cc ff cd ffff ce ffffffff ca 3fc00000 c0 00'),
      ],
    ]);
    const env = envOf(roomy(rawEnv(['meta', metaBytes])));
    const { res } = echoedMeta(env);
    expect(res.includes(Buffer.concat([pack('meta'), metaBytes]))).toBe(true);
  });

  it("falls back to packing the values for msgpackr's records extension (not plain msgpack)", () => {
    const records = new Packr({ useRecords: true });
    const bytes = records.pack({ id: 'a', source: 's', text: 'x', meta: { n: 2n ** 64n - 1n } });
    expect(bytes[0]).not.toBe(0xde); // a record, not a map
    const env = envOf(roomy([Buffer.from('env'), bytes]));
    expect(echoedMeta(env).meta).toEqual({ n: 2n ** 64n - 1n });
  });

  it('a meta without its producer bytes (the flat form) is packed with BigInts as 64-bit ints', () => {
    const env = envOf(
      roomy(
        flat({
          id: 'a',
          source: 's',
          text: 'x',
          meta: '{"u":18446744073709551615,"i":-9223372036854775808,"safe":9007199254740991,"f":0.25,"huge":123456789012345678901234567890,"s":"12345678901234567"}',
        }),
      ),
    );
    expect(env.meta).toEqual({
      u: 2n ** 64n - 1n,
      i: -(2n ** 63n),
      safe: 9007199254740991,
      f: 0.25,
      huge: Number('123456789012345678901234567890'), // beyond 64 bits: a double, as msgpack has no wider int
      s: '12345678901234567',
    });
    const { res, meta } = echoedMeta(env);
    expect(meta).toEqual(env.meta);
    expect(res.includes(u64(2n ** 64n - 1n))).toBe(true);
    expect(res.includes(i64(-(2n ** 63n)))).toBe(true);
  });

  it('measures meta size as JSON with 64-bit integers as their digits', () => {
    const limit = 100;
    // {"n":18446744073709551615,"p":"..."}: 27 bytes plus the padding and its quotes.
    const withPad = (pad: number) =>
      decode(
        packed({
          id: 'a',
          source: 's',
          text: 'x',
          meta: { n: 2n ** 64n - 1n, p: 'p'.repeat(pad) },
        }),
      );
    expect(metaJson({ n: 2n ** 64n - 1n, p: '' })).toBe('{"n":18446744073709551615,"p":""}');
    const fits = limit - '{"n":18446744073709551615,"p":""}'.length;
    expect(withPad(fits).ok).toBe(true);
    expect(withPad(fits + 1)).toMatchObject({ ok: false, code: 'too_large' });
    expect(!withPad(fits + 1).ok && (withPad(fits + 1) as { message: string }).message).toBe(
      `meta is ${limit + 1} bytes, over the limit of ${limit}`,
    );
  });

  it('parses JSON exactly like JSON.parse when no integer needs 64 bits', () => {
    for (const text of [
      '{"a":[1,2.5,-3e2,true,false,null,"x\\"y\\u00e9"],"b":{}}',
      '[[],{"__proto__":1},"1234567890123456789"]',
      ' { "k" : [ 9007199254740993.5 , -0 ] , "k" : 2 } ',
    ]) {
      expect(parseJsonExact(text)).toEqual(JSON.parse(text));
    }
    expect(parseJsonExact('[9007199254740993, -9007199254740993]')).toEqual([
      9007199254740993n,
      -9007199254740993n,
    ]);
    expect(() => parseJsonExact('{"a":12345678901234567')).toThrow(SyntaxError);
  });
});

describe('ill-formed Unicode: one rule for both wire forms', () => {
  const lone = 'a\ud800b';
  const loneUtf8 = Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]); // the same, as WTF-8 bytes
  const good = { id: 'a', source: 's', reply_to: 'sb:reply:r', text: 'fine' };
  const message = (field: string) =>
    `field "${field}" is not well-formed Unicode (invalid UTF-8 or a lone surrogate)`;
  /** Flat fields of `good` (texts instead of text when it is the field), one value as raw bytes. */
  const flatWith = (field: string, bytes: Buffer) => {
    const out: Buffer[] = flat({ ...good, ...(field === 'texts' && { text: undefined }) });
    const at = out.findIndex((b, i) => i % 2 === 0 && b.toString() === field);
    if (at >= 0) out[at + 1] = bytes;
    else out.push(Buffer.from(field), bytes);
    return out;
  };

  it.each(['id', 'source', 'reply_to', 'text', 'texts', 'meta'])(
    '%s with a lone surrogate is invalid, with the same message, in env and flat form',
    (field) => {
      const envValue =
        field === 'texts' ? ['ok', lone] : field === 'meta' ? { [lone]: 1, k: lone } : lone;
      const { text, ...rest } = good;
      const fromEnv = decode(
        packed({ ...rest, ...(field !== 'texts' && { text }), [field]: envValue }),
      );
      // Flat text fields carry the bytes; flat texts and meta are JSON, where it is an escape.
      const flatValue =
        field === 'texts'
          ? Buffer.from('["ok","a\\ud800b"]')
          : field === 'meta'
            ? Buffer.from('{"k":"a\\ud800b"}')
            : loneUtf8;
      const fromFlat = decode(flatWith(field, flatValue));
      for (const r of [fromEnv, fromFlat]) {
        expect(r).toMatchObject({ ok: false, code: 'invalid', message: message(field) });
        // Routing never uses a repaired (U+FFFD) id or reply stream.
        if (field !== 'id') expect(r).toMatchObject({ id: 'a' });
        if (field === 'id') expect(!r.ok && r.id).toBeUndefined();
        if (field === 'reply_to') expect(!r.ok && r.replyTo).toBeUndefined();
        else expect(r).toMatchObject({ replyTo: 'sb:reply:r' });
      }
    },
  );

  it('invalid UTF-8 bytes inside env are invalid too, not decoded to U+FFFD', () => {
    const bytes = rawMap([
      ['id', pack('a')],
      ['source', pack('s')],
      ['text', Buffer.from([0xa3, 0x61, 0xff, 0x62])],
    ]);
    expect(decode([Buffer.from('env'), bytes])).toMatchObject({
      ok: false,
      code: 'invalid',
      message: message('text'),
    });
    // Flat: the same bytes in the same field, the same answer.
    expect(decode(flatWith('text', Buffer.from([0x61, 0xff, 0x62])))).toMatchObject({
      ok: false,
      message: message('text'),
    });
  });

  it('accepts well-formed astral characters (surrogate pairs) in both forms', () => {
    const text = 'emoji 😀 and 𝄞';
    expect(envOf(decode(packed({ ...good, text }))).texts).toEqual([text]);
    expect(envOf(decode(flat({ ...good, text }))).texts).toEqual([text]);
    const pair = flat({ ...good, text: undefined, texts: '["\\ud83d\\ude00"]' });
    expect(envOf(decode(pair)).texts).toEqual(['😀']);
  });
});
