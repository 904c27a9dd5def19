/**
 * Fuzz (issue 3 acceptance): 10,000 garbage or malformed request entries
 * interleaved with 1,000 valid ones on one stream, served by ONE worker
 * process. Every valid entry gets its correct vectors; every bad one is
 * dead-lettered once with the documented code and answered with an error
 * result on the stream it names (when that is allowed) or the global one;
 * nothing stays pending and the process never restarts.
 */
import os from 'node:os';

import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeResult } from '../src/codec/result.js';
import { parseRecord } from '../src/dlq/record.js';
import { keys } from '../src/keys.js';
import type { EmbedResult } from '../src/types.js';
import { fill } from '../workers/fixture-core.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const VALID = 1_000;
const BAD = 10_000;
const DIM = 16;
const LIMITS = { MAX_CHUNKS: 4, MAX_ENVELOPE_BYTES: 1024, MAX_META_BYTES: 200 };

const redis = redisClient();
const prefix = randomPrefix('fuzz');
const k = keys(prefix);
const stream = k.request('fx');
const REPLY = `${prefix}:reply:fz`;
/** Matches the allowed pattern (`{prefix}:reply:*`) but holds a string / hash: WRONGTYPE on XADD. */
const NOT_A_STREAM = [`${prefix}:reply:str`, `${prefix}:reply:hash`];
const DENIED = [
  k.results(),
  k.request('fx'),
  k.dlq('fx'),
  `${prefix}:replyx`,
  `${prefix}-other:reply:x`,
  'reply:x',
];
let worker: ChildWorker;

beforeAll(async () => {
  await redis.set(NOT_A_STREAM[0] as string, 'not a stream');
  await redis.hset(NOT_A_STREAM[1] as string, 'f', 'v');
  worker = spawnWorker(prefix, {
    MODELS: `fx=fixture:${DIM}`,
    // Sources of every shape answered on one stream: the earlier, open reply pattern.
    REPLY_TO_PATTERN: `${prefix}:reply:*`,
    ...LIMITS,
    BATCH_SIZE: 64,
    READ_COUNT: 128,
    TRIM_INTERVAL_MS: 0,
    LOG_LEVEL: 'info',
  });
  await until('group created', async () => (await redis.exists(stream)) === 1, 60_000);
});
afterAll(async () => {
  worker.proc.kill('SIGKILL');
  await worker.exited;
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

/** mulberry32: the garbage is the same on every run. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  return { next, int, pick, bytes };
}
const rnd = prng(0x5eed);

const WORDS = 'river stone café naïve 東京 données embed vector page crawl índice ünïcödé'.split(
  ' ',
);
const words = (n: number) => Array.from({ length: n }, () => rnd.pick(WORDS)).join(' ');

interface Case {
  kind: string;
  fields: (string | Buffer)[];
  /** 'ok' or the documented error code. */
  expect: string;
  /** Stream the result must land on. */
  resultStream: string;
  /** For ok: the chunks whose vectors are expected. */
  texts?: string[];
  meta?: Record<string, unknown>;
  rid?: string;
}

type Env = Record<string, unknown>;
const envFields = (env: unknown): Buffer[] => [Buffer.from('env'), pack(env)];
function flatFields(env: Env): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  for (const [name, v] of Object.entries(env)) {
    if (v === undefined) continue;
    out.push(name, Buffer.isBuffer(v) ? v : typeof v === 'string' ? v : JSON.stringify(v));
  }
  return out;
}
/** The same envelope in either wire form, chosen at random. */
const someForm = (env: Env) => (rnd.next() < 0.5 ? envFields(env) : flatFields(env));

function base(i: number, withReply: boolean): Env {
  return {
    id: `e${i}`,
    source: rnd.pick(['docs', 'wiki.en', 'crawl:2024', 's-1_x']),
    ...(withReply && { reply_to: REPLY }),
  };
}

function validCase(i: number): Case {
  const reply = rnd.next() < 0.5;
  const env = base(i, reply);
  const many = rnd.next() < 0.4;
  const texts = Array.from({ length: many ? rnd.int(1, LIMITS.MAX_CHUNKS) : 1 }, () =>
    words(rnd.int(1, 12)),
  );
  if (many) env.texts = texts;
  else env.text = texts[0];
  const meta = rnd.next() < 0.3 ? { n: i, tag: words(2) } : undefined;
  if (meta) env.meta = meta;
  if (rnd.next() < 0.2) env.deadline_ms = Date.now() + 600_000;
  return {
    kind: 'valid',
    fields: someForm(env),
    expect: 'ok',
    resultStream: reply ? REPLY : k.results(),
    texts,
    ...(meta && { meta }),
  };
}

/** One bad entry per category; `reply` = it names an allowed reply stream that must get the error. */
const BAD_KINDS: Array<(i: number) => Omit<Case, 'kind'>> = [
  // Undecodable env: random bytes (a few happen to decode to a non-map, also `invalid`).
  () => ({
    fields: ['env', rnd.bytes(rnd.int(1, 64))],
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // env of the wrong shape: array, number, string, nil, bool, binary.
  () => ({
    fields: envFields(
      rnd.pick<unknown>([[1, 'a', {}], rnd.int(-1e6, 1e6), 'text', null, true, rnd.bytes(8)]),
    ),
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // env map with wrong types; its routing fields are fine, so the error goes to its reply stream.
  (i) => {
    const env = { ...base(i, true), text: 'fine text' } as Env;
    const bad = rnd.pick<[string, unknown]>([
      ['text', 42],
      ['text', ['nested', ['deeper']]],
      ['texts', 'not an array'],
      ['texts', [1, 2]],
      ['meta', 'not a map'],
      ['meta', [1, 2]],
      ['deadline_ms', 'soon'],
      ['deadline_ms', -5],
      ['deadline_ms', 1.5],
      ['text', null],
    ]);
    env[bad[0]] = bad[1];
    if (bad[0] === 'texts') delete env.text;
    return { fields: envFields(env), expect: 'invalid', resultStream: REPLY };
  },
  // id or source of the wrong type: unroutable, answered on the global stream.
  (i) => ({
    fields: envFields({
      ...(rnd.next() < 0.5 ? { id: i, source: 's' } : { id: `e${i}`, source: 7 }),
      text: 'x',
    }),
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // Missing id, source or text.
  (i) => {
    const env = { ...base(i, false), text: 'some text' };
    const drop = rnd.pick(['id', 'source', 'text'] as const);
    delete (env as Env)[drop];
    return { fields: someForm(env), expect: 'invalid', resultStream: k.results() };
  },
  // Oversize id (257+ bytes; a multi-byte id may be short in characters).
  (i) => ({
    fields: someForm({
      ...base(i, false),
      id: rnd.next() < 0.5 ? 'i'.repeat(257) : 'é'.repeat(129),
      text: 'x',
    }),
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // Bad source characters or length.
  (i) => ({
    fields: someForm({
      ...base(i, false),
      source: rnd.pick([
        'has space',
        'slash/y',
        'emoji😀',
        'q"uote',
        '',
        's'.repeat(129),
        'semi;colon',
      ]),
      text: 'x',
    }),
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // Empty text: '', whitespace, no chunks, one empty chunk among good ones, both text and texts.
  (i) => {
    const env = base(i, true);
    const v = rnd.int(0, 4);
    if (v === 0) env.text = '';
    else if (v === 1) env.text = ' \n\t ';
    else if (v === 2) env.texts = [];
    else if (v === 3) env.texts = ['fine', '  '];
    else Object.assign(env, { text: 'a', texts: ['b'] });
    // Flat '' fields are absent-like; send these as env so the field is really there.
    return { fields: envFields(env), expect: 'invalid', resultStream: REPLY };
  },
  // Too many chunks.
  (i) => ({
    fields: someForm({
      ...base(i, true),
      texts: Array.from({ length: rnd.int(LIMITS.MAX_CHUNKS + 1, 40) }, () => 'c'),
    }),
    expect: 'too_large',
    resultStream: REPLY,
  }),
  // Oversize text: over MAX_ENVELOPE_BYTES in bytes, one chunk or summed over a few.
  (i) => {
    const env = base(i, true);
    if (rnd.next() < 0.5) env.text = 'é'.repeat(rnd.int(513, 900));
    else env.texts = Array.from({ length: LIMITS.MAX_CHUNKS }, () => 'x'.repeat(300));
    return { fields: someForm(env), expect: 'too_large', resultStream: REPLY };
  },
  // Invalid UTF-8 in a flat field. Only reply_to itself may be the bad one here, so the
  // answer goes to the global stream either way (routing around a bad field: its own test).
  (i) => {
    const target = rnd.pick(['id', 'source', 'text', 'reply_to']);
    const env: Env = { ...base(i, target === 'reply_to'), text: 'text' };
    const bad = rnd.pick([
      [0x61, 0xff, 0x62],
      [0x80],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    ]);
    env[target] = Buffer.concat([Buffer.from(String(env[target])), Buffer.from(bad)]);
    return { fields: flatFields(env), expect: 'invalid', resultStream: k.results() };
  },
  // Oversize meta.
  (i) => ({
    fields: someForm({ ...base(i, true), text: 'x', meta: { pad: 'm'.repeat(rnd.int(200, 600)) } }),
    expect: 'too_large',
    resultStream: REPLY,
  }),
  // Flat meta that is not JSON.
  (i) => ({
    fields: flatFields({
      ...base(i, false),
      text: 'x',
      meta: rnd.pick(['{bad', "{'a':1}", 'nul', '{"a":']),
    }),
    expect: 'invalid',
    resultStream: k.results(),
  }),
  // reply_to outside the allowed pattern.
  (i) => ({
    fields: someForm({ ...base(i, false), text: 'x', reply_to: rnd.pick(DENIED) }),
    expect: 'reply_to_denied',
    resultStream: k.results(),
  }),
  // reply_to allowed by the pattern but not a stream (WRONGTYPE): answered on the global stream.
  (i) => ({
    fields: someForm({
      ...base(i, false),
      text: `computed ${i}`,
      reply_to: rnd.pick(NOT_A_STREAM),
    }),
    expect: 'reply_to_denied',
    resultStream: k.results(),
  }),
  // deadline_ms passed.
  (i) => {
    const reply = rnd.next() < 0.5;
    return {
      fields: someForm({
        ...base(i, reply),
        text: 'too late',
        deadline_ms: rnd.pick([0, 1, Date.now() - rnd.int(1_000, 1e9)]),
      }),
      expect: 'expired',
      resultStream: reply ? REPLY : k.results(),
    };
  },
];

function buildCases(): Case[] {
  const cases: Case[] = [];
  for (let i = 0; i < VALID; i++) cases.push(validCase(i));
  for (let i = 0; i < BAD; i++) {
    const kind = i % BAD_KINDS.length;
    cases.push({
      kind: `bad-${kind}`,
      ...(BAD_KINDS[kind] as (i: number) => Omit<Case, 'kind'>)(VALID + i),
    });
  }
  // Interleave: Fisher-Yates with the seeded generator.
  for (let i = cases.length - 1; i > 0; i--) {
    const j = rnd.int(0, i);
    [cases[i], cases[j]] = [cases[j] as Case, cases[i] as Case];
  }
  return cases;
}

async function submit(cases: Case[]): Promise<void> {
  for (let start = 0; start < cases.length; start += 500) {
    const slice = cases.slice(start, start + 500);
    const pipeline = redis.pipeline();
    for (const c of slice) pipeline.xadd(stream, '*', ...c.fields);
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([err, id], j) => {
      if (err) throw err;
      (slice[j] as Case).rid = id as string;
    });
  }
}

async function readResults(key: string): Promise<EmbedResult[]> {
  const entries = (await redis.xrangeBuffer(key, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, f]) => decodeResult(id.toString(), f));
}

function expectedVector(text: string): number[] {
  const v = new Float32Array(DIM);
  fill(v, text);
  return Array.from(v);
}

describe('fuzz', () => {
  it(`serves ${VALID} valid entries among ${BAD} bad ones; each bad one dead-lettered with its code`, async () => {
    const cases = buildCases();
    await submit(cases);
    await until(
      'everything answered',
      async () => {
        const g = await groupInfo(redis, stream, k.group);
        if (g?.lag !== 0 || g?.pending !== 0) return false;
        return (await redis.xlen(k.results())) + (await redis.xlen(REPLY)) >= cases.length;
      },
      120_000,
      200,
    );

    const byRid = new Map<string, Array<{ stream: string; r: EmbedResult }>>();
    for (const key of [k.results(), REPLY]) {
      for (const r of await readResults(key)) {
        const list = byRid.get(r.rid) ?? [];
        list.push({ stream: key, r });
        byRid.set(r.rid, list);
      }
    }
    const dlq = new Map<string, string[]>();
    const dlqEntries = (await redis.xrangeBuffer(k.dlq('fx'), '-', '+')) as Array<
      [Buffer, Buffer[]]
    >;
    for (const [id, f] of dlqEntries) {
      const rec = parseRecord(k.dlq('fx'), 'fx', id.toString(), f);
      const list = dlq.get(rec.rid ?? '?') ?? [];
      list.push(rec.reason ?? '?');
      dlq.set(rec.rid ?? '?', list);
    }

    const consumers = (await redis.xinfo('CONSUMERS', stream, k.group)) as unknown[][];
    const consumer = `${os.hostname()}-${worker.proc.pid}`;
    // Mismatches grouped by kind, so a failure says which category broke and how.
    const wrong = new Map<string, string[]>();
    const note = (c: Case, what: string) => {
      const list = wrong.get(c.kind) ?? [];
      if (list.length < 3) list.push(`${c.rid}: ${what}`);
      wrong.set(c.kind, list);
    };
    for (const c of cases) {
      const got = byRid.get(c.rid as string) ?? [];
      if (got.length !== 1) {
        note(c, `${got.length} results`);
        continue;
      }
      const { stream: where, r } = got[0] as { stream: string; r: EmbedResult };
      if (where !== c.resultStream) note(c, `result on ${where}, expected ${c.resultStream}`);
      const code = r.status === 'ok' ? 'ok' : r.res.code;
      if (code !== c.expect)
        note(
          c,
          `code ${code} (${r.status === 'error' ? r.res.message : ''}), expected ${c.expect}`,
        );
      const letters = dlq.get(c.rid as string) ?? [];
      if (c.expect === 'ok') {
        if (letters.length) note(c, `dead-lettered ${letters.join(',')}`);
        if (r.status !== 'ok') continue;
        const vectors = r.res.vectors.map((v) => Array.from(v));
        if (JSON.stringify(vectors) !== JSON.stringify(c.texts?.map(expectedVector)))
          note(c, 'wrong vectors');
        if (JSON.stringify(r.res.meta) !== JSON.stringify(c.meta)) note(c, 'meta not echoed');
        if (r.res.worker !== consumer) note(c, `answered by ${r.res.worker}`);
      } else if (letters.length !== 1 || letters[0] !== c.expect) {
        note(c, `DLQ reasons [${letters.join(',')}], expected [${c.expect}]`);
      }
    }
    expect(Object.fromEntries(wrong)).toEqual({});
    expect(byRid.size).toBe(cases.length);
    expect(dlqEntries).toHaveLength(BAD);
    expect((await redis.xpending(stream, k.group))[0]).toBe(0);
    // One process, never restarted, never stalled on an exception in the read path.
    expect(worker.proc.exitCode).toBeNull();
    expect(consumers).toHaveLength(1);
    expect(consumers[0]?.[1]).toBe(consumer);
    expect(worker.output()).not.toMatch(/read failed|"level":(50|60)/);
  }, 180_000);

  it('a flat entry with one unreadable field is answered on the reply stream it names', async () => {
    // The producer (redis-cli, another language) waits on reply_to: the error must go there.
    const reply = `${prefix}:reply:flat`;
    const head = (i: number) => ['id', `flat${i}`, 'source', 's', 'reply_to', reply];
    const cases: Case[] = [
      ['text', 'x', 'meta', '{not json'],
      ['texts', '[not json'],
      ['text', Buffer.from([0x61, 0xff, 0x62])],
      ['text', 'x', 'meta', Buffer.from([0xc0, 0xaf])],
    ].map((rest, i) => ({
      kind: `flat-${i}`,
      fields: [...head(i), ...rest],
      expect: 'invalid',
      resultStream: reply,
    }));
    await submit(cases);
    await until('answered', async () => {
      const g = await groupInfo(redis, stream, k.group);
      return g?.lag === 0 && g?.pending === 0;
    });
    const onReply = await readResults(reply);
    const missing = cases.filter((c) => !onReply.some((r) => r.rid === c.rid)).map((c) => c.kind);
    expect(missing).toEqual([]);
    for (const r of onReply) expect(r.status === 'error' && r.res.code).toBe('invalid');
  }, 60_000);

  it('an env whose meta holds a 64-bit integer is answered, not left stuck in the worker', async () => {
    // msgpack uint64/int64 outside the double range decode to BigInt (valid msgpack from e.g. Go).
    const weird = [2n ** 63n + 5n, -(2n ** 60n), 2n ** 64n - 1n].map((n, i) => ({
      kind: 'bigint-meta',
      fields: envFields({ id: `big${i}`, source: 's', text: `big ${i}`, meta: { n } }),
      expect: 'ok-or-invalid',
      resultStream: k.results(),
    }));
    const after = Array.from({ length: 3 }, (_, i) => ({
      kind: 'after',
      fields: envFields({ id: `after${i}`, source: 's', text: `after ${i}` }),
      expect: 'ok',
      resultStream: k.results(),
    }));
    const cases: Case[] = [...weird, ...after];
    await submit(cases);
    await until(
      'answered and acked',
      async () => {
        const results = await readResults(k.results());
        const answered = cases.filter((c) => results.some((r) => r.rid === c.rid));
        return (
          answered.length === cases.length &&
          (await groupInfo(redis, stream, k.group))?.pending === 0
        );
      },
      20_000,
      200,
    );
    const results = await readResults(k.results());
    for (const c of cases.slice(0, weird.length)) {
      const r = results.filter((x) => x.rid === c.rid);
      expect(r).toHaveLength(1);
      expect(
        r[0]?.status === 'ok' || (r[0]?.status === 'error' && r[0].res.code === 'invalid'),
      ).toBe(true);
    }
    expect(worker.output()).not.toMatch(/read failed/);
  }, 60_000);
});
