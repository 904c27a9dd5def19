/**
 * The gateway's parts on their own: the reply router against a real Redis
 * stream (a result before its XADD returned, a result with the wrong rid, a
 * late result after a timeout), the rate limiter (two gateways on one key),
 * the keys file, and the request parser.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { okFields } from '../src/codec/result.js';
import { bearer, KeyRing, KeysFile } from '../src/gateway/keys-file.js';
import { ModelCatalog } from '../src/gateway/model-catalog.js';
import { estimateTokens, parseEmbeddingsRequest } from '../src/gateway/openai-shapes.js';
import { RateLimiter } from '../src/gateway/rate-limit.js';
import { ReplyRouter } from '../src/gateway/reply-router.js';
import { gatewayReplyStreams } from '../src/gateway/reply-streams.js';
import { textOfTokenIds } from '../src/gateway/token-ids.js';
import { keys } from '../src/keys.js';
import { createLogger } from '../src/log.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { privateRedis } from './helpers/redis-server.js';

const prefix = randomPrefix('gwparts');
let redis: Redis;
let reader: Redis;
let router: ReplyRouter;

const streamOf = (source: string) => `${prefix}:reply:${source}/gateway-test`;
const stream = streamOf('s');
const answer = (id: string, rid: string, value: number, to = stream) =>
  redis.xadd(
    to,
    '*',
    ...okFields(
      { id, source: 's', rid },
      {
        model: 'm',
        dim: 2,
        vectors: [new Float32Array([value, value])],
        truncated: [false],
        hash: 'h',
        ms: 1,
        worker: 'w',
      },
    ),
  );

beforeAll(async () => {
  redis = redisClient();
  reader = redisClient();
  router = new ReplyRouter(redis, reader, streamOf, createLogger('silent'));
  router.start(['s']);
});

afterAll(async () => {
  await router.stop();
  reader.disconnect();
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe('ReplyRouter', () => {
  it('holds a result that arrives before its XADD returned, and checks its rid', async () => {
    const w = router.wait(['a', 'b'], 10_000);
    await answer('b', '2-0', 2);
    await answer('a', '1-0', 1);
    // Read (the router trims what it read, keeping the last entry) before the rids are known.
    await until('both read', async () => (await redis.xlen(stream)) === 1);
    expect(router.waiting).toBe(2);
    expect(router.strays).toBe(0);
    w.bind(['1-0', '2-0']);
    const results = await w.results;
    expect(results.map((r) => r.rid)).toEqual(['1-0', '2-0']);
    expect(results.map((r) => (r.status === 'ok' ? r.res.vectors[0]![0] : -1))).toEqual([1, 2]);
    expect(router.waiting).toBe(0);
  });

  it('never delivers a result whose rid is not the one its XADD returned', async () => {
    const strays = router.strays;
    const w = router.wait(['c'], 1_000);
    w.bind(['3-0']);
    await answer('c', '9-9', 9);
    await until('the wrong one is dropped', () => router.strays === strays + 1);
    await answer('c', '3-0', 3);
    const [r] = await w.results;
    expect(r?.rid).toBe('3-0');
  });

  it('times out, forgets the slot, and drops the late result', async () => {
    const strays = router.strays;
    const w = router.wait(['d'], 200);
    w.bind(['4-0']);
    await expect(w.results).rejects.toMatchObject({ code: 'timeout' });
    expect(router.waiting).toBe(0);
    await answer('d', '4-0', 4);
    await until('the late result is dropped', () => router.strays === strays + 1);
  });

  it('keeps its stream trimmed to what it has read, also after a burst ends', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
    const w = router.wait(ids, 10_000);
    w.bind(ids.map((_, i) => `${i + 10}-0`));
    // Sent without waiting, so reads land while a trim is in flight.
    await Promise.all(ids.map((id, i) => answer(id, `${i + 10}-0`, i)));
    expect(await w.results).toHaveLength(200);
    await until('trimmed up to the last read', async () => (await redis.xlen(stream)) <= 1);
    expect(await redis.ttl(stream)).toBeGreaterThan(0);
  });
});

describe('ReplyRouter, one stream per source', () => {
  it('reads every source stream in one loop, a source first seen after start included', async () => {
    const late = streamOf('late');
    expect(router.streamFor('late')).toBe(late);
    expect(router.streams).toEqual([stream, late]);
    const w = router.wait(['s-1', 'late-1'], 10_000);
    w.bind(['500-0', '500-0']); // the same rid on two streams: told apart by id
    await answer('late-1', '500-0', 7, late);
    await answer('s-1', '500-0', 5);
    const results = await w.results;
    expect(results.map((r) => (r.status === 'ok' ? r.res.vectors[0]![0] : -1))).toEqual([5, 7]);
    await until(
      'both trimmed',
      async () => (await redis.xlen(late)) <= 1 && (await redis.xlen(stream)) <= 1,
    );
    expect(await redis.ttl(late)).toBeGreaterThan(0);
  });
});

describe('ModelCatalog', () => {
  it('asks for an unknown model by its stream, never by a SCAN per request', async () => {
    // A private server: its command counts are this test's alone.
    const server = await privateRedis();
    const r = new Redis(server.url);
    try {
      const k = keys('cat');
      await r.xgroup('CREATE', k.request('m1'), k.group, '$', 'MKSTREAM');
      const catalog = new ModelCatalog(r, k, '');
      expect(await catalog.has('m1')).toBe(true);
      await r.config('RESETSTAT');
      for (let i = 0; i < 50; i++) expect(await catalog.has('typo')).toBe(false);
      const stats = await r.info('commandstats');
      expect(/cmdstat_scan:calls=(\d+)/.exec(stats)?.[1] ?? '0').toBe('0');
      // A model whose worker starts later is found at once, without waiting for a rescan.
      await r.xgroup('CREATE', k.request('m2'), k.group, '$', 'MKSTREAM');
      expect(await catalog.has('m2')).toBe(true);
      expect(catalog.hasNow('m2')).toBe(true);
    } finally {
      r.disconnect();
      await server.stop();
    }
  });
});

describe('gatewayReplyStreams', () => {
  it("names each source's stream, and refuses one the workers' pattern would refuse", () => {
    const k = keys('p');
    expect(gatewayReplyStreams(k, 'g1')('a')).toBe('p:reply:a/gateway-g1');
    expect(gatewayReplyStreams(k, 'g1', 'p:reply:*')('b')).toBe('p:reply:b/gateway-g1');
    // A source first seen later (a reloaded keys file) is refused when its stream is asked for.
    const streamOf = gatewayReplyStreams(k, 'g1', 'p:reply:docs/*');
    expect(streamOf('docs')).toBe('p:reply:docs/gateway-g1');
    expect(() => streamOf('web')).toThrow(/REPLY_TO_PATTERN=p:reply:docs\/\* refuses/);
  });
});

describe('RateLimiter', () => {
  // Mid-minute, so no batch of the test straddles a window.
  const clock = () => 1_800_000_000_000 + 30_000;

  it('counts requests of one turn together and grants exactly rpm across two gateways', async () => {
    const other = redisClient();
    const a = new RateLimiter(redis, keys(prefix), clock);
    const b = new RateLimiter(other, keys(prefix), clock);
    try {
      // One turn each on both gateways, then a second turn on one of them.
      const first = await Promise.all([
        ...Array.from({ length: 30 }, () => a.take('k1', 50)),
        ...Array.from({ length: 30 }, () => b.take('k1', 50)),
      ]);
      const second = await Promise.all(Array.from({ length: 20 }, () => a.take('k1', 50)));
      const waits = [...first, ...second];
      expect(waits.filter((w) => w === 0)).toHaveLength(50);
      for (const w of waits.filter((w) => w > 0)) expect(w).toBe(30);
      // Within one gateway's turn, places go in arrival order: the granted ones come first.
      const refusedThenGranted = (ws: number[]) =>
        ws.some((w, i) => i > 0 && w === 0 && ws[i - 1]! > 0);
      expect(refusedThenGranted(first.slice(0, 30))).toBe(false);
      expect(refusedThenGranted(first.slice(30))).toBe(false);
      // Every request was counted, refused ones too (as one INCR each would).
      const minute = Math.floor(clock() / 60_000);
      expect(await redis.get(keys(prefix).gatewayRate('k1', minute))).toBe('80');
      expect(await redis.ttl(keys(prefix).gatewayRate('k1', minute))).toBeGreaterThan(60);
      // Another key has its own count.
      expect(await Promise.all([a.take('k2', 1), a.take('k2', 1)])).toEqual([0, 30]);
    } finally {
      await other.quit();
    }
  });

  it('grants a busy key from reserved blocks: never over rpm, short of it by at most 1% per gateway', async () => {
    const other = redisClient();
    const a = new RateLimiter(redis, keys(prefix), clock);
    const b = new RateLimiter(other, keys(prefix), clock);
    try {
      // 25 clients per gateway, each taking one place after the other: 1,500 tries for 1,000 places.
      const client = async (limiter: RateLimiter) => {
        let granted = 0;
        for (let i = 0; i < 30; i++) if ((await limiter.take('busy', 1000)) === 0) granted++;
        return granted;
      };
      const granted = (
        await Promise.all([...Array(25).fill(a), ...Array(25).fill(b)].map(client))
      ).reduce((n, g) => n + g, 0);
      expect(granted).toBeLessThanOrEqual(1000);
      expect(granted).toBeGreaterThanOrEqual(1000 - 2 * 10);
      // A lone client on a roomy key: most requests are granted with no Redis call.
      const before = a.reservations;
      for (let i = 0; i < 1000; i++) expect(await a.take('roomy', 100_000)).toBe(0);
      expect(a.reservations - before).toBeLessThan(200);
    } finally {
      await other.quit();
    }
  });
});

describe('KeyRing', () => {
  const ring = KeyRing.parse('# comment\n\nsk-one  alpha\nsk-two beta 30\n', 'keys');

  it('maps keys to sources and limits, and knows no other key', () => {
    expect(ring.find('sk-one')).toMatchObject({ source: 'alpha' });
    expect(ring.find('sk-one')?.rpm).toBeUndefined();
    expect(ring.find('sk-two')).toMatchObject({ source: 'beta', rpm: 30 });
    expect(ring.find('sk-on')).toBeUndefined();
    expect(ring.find('')).toBeUndefined();
    expect(ring.find('sk-one')?.id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('reports a bad line by number, never by its content', () => {
    for (const [text, message] of [
      ['sk-secret-1', /line 1: expected "key source \[rpm\]"/],
      ['ok a\nsk-secret-2 bad/source', /line 2: source must be/],
      ['sk-secret-3 a 0', /line 1: rpm must be a positive integer/],
      ['# nothing', /holds no keys/],
    ] as const) {
      expect(() => KeyRing.parse(text, 'keys')).toThrow(message);
      try {
        KeyRing.parse(text, 'keys');
      } catch (err) {
        expect((err as Error).message).not.toContain('sk-secret');
      }
    }
  });

  it('follows the file: rotated keys apply, a bad edit keeps the last good ones', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-keys-'));
    const file = path.join(dir, 'keys');
    fs.writeFileSync(file, 'sk-old a\n');
    const keys = new KeysFile(file, createLogger('silent')).follow(20);
    try {
      expect(keys.find('sk-old')?.source).toBe('a');
      // As Kubernetes rotates a Secret: a new file put in place by rename.
      fs.writeFileSync(`${file}.new`, 'sk-new b 10\n');
      fs.renameSync(`${file}.new`, file);
      await until('the new key applies', () => keys.find('sk-new')?.source === 'b');
      expect(keys.find('sk-old')).toBeUndefined();
      fs.writeFileSync(file, 'not-a-valid-line\n');
      await new Promise((r) => setTimeout(r, 100));
      expect(keys.find('sk-new')?.rpm).toBe(10);
    } finally {
      keys.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads Bearer tokens', () => {
    expect(bearer('Bearer sk-1')).toBe('sk-1');
    expect(bearer('bearer   sk-1 ')).toBe('sk-1');
    expect(bearer('Basic abc')).toBeUndefined();
    expect(bearer(undefined)).toBeUndefined();
  });
});

describe('parseEmbeddingsRequest', () => {
  it('takes a string or strings, float by default for raw HTTP', () => {
    expect(parseEmbeddingsRequest({ model: 'm', input: 'a' })).toEqual({
      model: 'm',
      inputs: ['a'],
      encoding: 'float',
    });
    expect(
      parseEmbeddingsRequest({ model: 'm', input: ['a', 'b'], encoding_format: 'base64' }),
    ).toMatchObject({ inputs: ['a', 'b'], encoding: 'base64' });
  });

  it('takes cl100k_base token ids, one list or several, for the route to decode', async () => {
    expect(parseEmbeddingsRequest({ model: 'm', input: [15339, 29895] })).toMatchObject({
      inputs: [],
      tokenIds: [[15339, 29895]],
    });
    const two = parseEmbeddingsRequest({ model: 'm', input: [[15339], [29895, 11]] });
    expect(two.tokenIds).toEqual([[15339], [29895, 11]]);
    // What LangChain's OpenAIEmbeddings sends for "hello gateway, ..." (tiktoken cl100k_base).
    const enc = new Tiktoken(cl100k);
    const texts = ['hello gateway', 'ünïcode 日本語 🙂, a page'];
    expect(await textOfTokenIds(texts.map((t) => enc.encode(t)))).toEqual(texts);
    const blank = await textOfTokenIds([[220]]).catch((e: unknown) => e);
    expect((blank as { param: string }).param).toBe('input');
  });

  it('names the parameter of what it refuses', () => {
    const param = (body: unknown) => {
      try {
        parseEmbeddingsRequest(body);
      } catch (err) {
        return (err as { status: number; param: string | null }).param;
      }
      return 'accepted';
    };
    expect(param({ input: 'a' })).toBe('model');
    expect(param({ model: 'm' })).toBe('input');
    expect(param({ model: 'm', input: [] })).toBe('input');
    for (const ids of [[-1], [1.5], [100277], [[1], []], [['a']], [1, 'a']])
      expect(param({ model: 'm', input: ids }), JSON.stringify(ids)).toBe('input');
    expect(param({ model: 'm', input: 'a', encoding_format: 'int8' })).toBe('encoding_format');
    expect(param({ model: 'm', input: 'a', dimensions: 0 })).toBe('dimensions');
  });

  it('estimates WordPiece-like token counts', () => {
    expect(estimateTokens(['hello world'])).toBe(4);
    expect(estimateTokens(['a, b.', 'x'])).toBe(4 + 2 + 3);
  });
});
