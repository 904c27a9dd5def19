import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';

import { envelopeDecoder } from '../src/codec/envelope.js';

const decode = envelopeDecoder({
  maxEnvelopeBytes: 1000,
  maxMetaBytes: 100,
  maxChunks: 3,
  replyToPattern: 'sb:reply:*',
});
const flat = (o: Record<string, string>) =>
  Object.entries(o).flatMap(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
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
