/**
 * Envelope interop (issue #12): a Python producer (Debian's python3-msgpack
 * and python3-redis, test/fixtures/py-producer.py) against a real worker
 * process. Python's msgpack writes epoch-ms deadlines and big meta integers
 * as uint64/int64; the worker must serve them, echo meta exactly, and treat
 * ill-formed text the same in the env and the flat form. The script checks
 * the answers as a Python consumer sees them; this test checks them again as
 * the JS SDK decodes them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { envelopeDecoder } from '../src/codec/envelope.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { createPgliteClient } from '../src/sink/pglite-client.js';
import { createSqlSink } from '../src/sink/sql-sink.js';
import type { EmbedResult } from '../src/types.js';
import { fill } from '../workers/fixture-core.js';
import {
  deletePrefix,
  groupInfo,
  randomPrefix,
  REDIS_URL,
  redisClient,
  until,
} from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const run = promisify(execFile);
/** Debian's interpreter: the python3 first on PATH may lack the Debian packages. */
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./fixtures/py-producer.py', import.meta.url));
const DIM = 8;

const redis = redisClient();
const prefix = randomPrefix('interop');
const k = keys(prefix);
const stream = k.request('fx');
const REPLY = `${prefix}:reply:py`;
let worker: ChildWorker;

interface Answer {
  rid: string;
  stream: string;
  id: string;
  status: string;
  code?: string;
  message?: string;
}

beforeAll(async () => {
  try {
    await run(PYTHON, ['-I', '-c', 'import redis, msgpack']);
  } catch (err) {
    throw new Error(
      `${PYTHON} needs python3-redis and python3-msgpack (apt-get install -y python3-redis python3-msgpack; .ci/run does): ${String(err)}`,
    );
  }
  worker = spawnWorker(prefix, {
    MODELS: `fx=fixture:${DIM}`,
    TRIM_INTERVAL_MS: 0,
    // The Python producer's cases (bad sources included) answered on one stream: the open pattern.
    REPLY_TO_PATTERN: `${prefix}:reply:*`,
  });
  await until('group created', async () => (await redis.exists(stream)) === 1, 60_000);
});
afterAll(async () => {
  worker.proc.kill('SIGKILL');
  await worker.exited;
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const vectorOf = (text: string) => {
  const v = new Float32Array(DIM);
  fill(v, text);
  return Array.from(v);
};

describe('a Python producer', () => {
  it('gets exact meta, epoch-ms deadlines and one text rule in both forms', async () => {
    const { stdout } = await run(
      PYTHON,
      ['-I', SCRIPT, REDIS_URL, stream, REPLY, k.results(), String(DIM)],
      {
        timeout: 90_000,
      },
    );
    const report = JSON.parse(stdout) as Record<string, Answer>;

    // Python's own view: every case answered, on the reply stream (id errors included:
    // their reply_to is fine), with the status the script already asserted.
    expect(
      Object.fromEntries(
        Object.entries(report).map(([name, a]) => [name, [a.stream, a.status, a.code]]),
      ),
    ).toEqual({
      'env-ok': [REPLY, 'ok', undefined],
      'env-texts': [REPLY, 'ok', undefined],
      'flat-ok': [REPLY, 'ok', undefined],
      'env-expired': [REPLY, 'error', 'expired'],
      'flat-expired': [REPLY, 'error', 'expired'],
      'env-lone-text': [REPLY, 'error', 'invalid'],
      'flat-lone-text': [REPLY, 'error', 'invalid'],
      'env-lone-texts': [REPLY, 'error', 'invalid'],
      'flat-lone-texts': [REPLY, 'error', 'invalid'],
      'env-lone-id': [REPLY, 'error', 'invalid'],
      'flat-lone-id': [REPLY, 'error', 'invalid'],
    });

    // The same answers as the JS SDK decodes them.
    const entries = (await redis.xrangeBuffer(REPLY, '-', '+')) as Array<[Buffer, Buffer[]]>;
    const byRid = new Map<string, EmbedResult>(
      entries.map(([id, f]) => {
        const r = decodeResult(id.toString(), f);
        return [r.rid, r];
      }),
    );
    expect(byRid.size).toBe(Object.keys(report).length);
    const answer = (name: string) => byRid.get(report[name]?.rid ?? '') as EmbedResult;

    const envOk = answer('env-ok');
    expect(envOk.status === 'ok' && envOk.res.vectors.map((v) => Array.from(v))).toEqual([
      vectorOf('hello from python'),
    ]);
    // msgpackr reads int64/uint64 as BigInt: exact, where a double would round all but `small`.
    expect(envOk.status === 'ok' && envOk.res.meta).toEqual({
      u64max: 2n ** 64n - 1n,
      i64min: -(2n ** 63n),
      big: 2n ** 63n + 5n,
      neg40: -(2n ** 40n),
      small: 7,
      f: 0.1,
      whole: 3,
      s: 'ünï 東京',
      nested: { list: [1, -(2n ** 40n), 2.5], deep: { n: 2n ** 53n + 1n } },
    });
    const texts = answer('env-texts');
    expect(texts.status === 'ok' && texts.res.vectors.map((v) => Array.from(v))).toEqual([
      vectorOf('chunk one'),
      vectorOf('chunk two'),
    ]);
    expect(texts.status === 'ok' && texts.res.dim).toBe(DIM);
    const flatOk = answer('flat-ok');
    expect(flatOk.status === 'ok' && flatOk.res.meta).toEqual({
      u64max: 2n ** 64n - 1n,
      i64min: -(2n ** 63n),
      f: 0.25,
      whole: 3,
      s: 'x',
    });
    expect(flatOk.status === 'ok' && flatOk.res.vectors.map((v) => Array.from(v))).toEqual([
      vectorOf('hello from python'),
    ]);

    for (const field of ['text', 'texts', 'id']) {
      const [fromEnv, fromFlat] = [answer(`env-lone-${field}`), answer(`flat-lone-${field}`)];
      const expected = `field "${field}" is not well-formed Unicode (invalid UTF-8 or a lone surrogate)`;
      expect(fromEnv.status === 'error' && fromEnv.res).toEqual({
        code: 'invalid',
        message: expected,
      });
      expect(fromFlat.status === 'error' && fromFlat.res).toEqual({
        code: 'invalid',
        message: expected,
      });
      // A repaired id is never echoed.
      expect([fromEnv.id, fromFlat.id]).toEqual(
        field === 'id' ? ['', ''] : [`env-lone-${field}`, `flat-lone-${field}`],
      );
    }

    await until(
      'nothing pending',
      async () => (await groupInfo(redis, stream, k.group))?.pending === 0,
    );
    expect(await redis.xlen(k.results())).toBe(0);
    expect(worker.proc.exitCode).toBeNull();
  }, 120_000);
});

describe('the pgvector sink', () => {
  it('stores a meta holding 64-bit integers exactly (jsonb digits) instead of failing the upsert', async () => {
    // msgpackr packs these BigInts as uint64/int64, as Python's msgpack does.
    const decoded = envelopeDecoder({
      maxEnvelopeBytes: 1024,
      maxMetaBytes: 1024,
      maxChunks: 1,
      replyToPattern: 'sb:reply:*',
    })([
      Buffer.from('env'),
      pack({
        id: 'p1',
        source: 'py',
        text: 'x',
        meta: { u64max: 2n ** 64n - 1n, i64min: -(2n ** 63n), f: 0.5 },
      }),
    ]);
    if (!decoded.ok) throw new Error(decoded.message);
    const dir = await mkdtemp(join(tmpdir(), 'sb-interop-'));
    const client = createPgliteClient(dir);
    const sink = createSqlSink(client, { tablePrefix: 'interop_', index: 'none' });
    try {
      await sink.ensureTable({ model: 'fx', modelRef: `fixture:${DIM}`, dim: DIM });
      const vector = Float32Array.from(vectorOf('x'));
      const meta = decoded.envelope.meta;
      await sink.upsert('fx', [{ source: 'py', id: 'p1', chunk: 0, hash: 'h', vector, meta }]);
      // ->> gives the stored digits; pg's own jsonb parsing would go through doubles.
      const row = await client.query<{ u: string; i: string; f: string }>(
        `SELECT meta->>'u64max' AS u, meta->>'i64min' AS i, meta->>'f' AS f FROM "interop_fx"`,
      );
      expect(row.rows).toEqual([
        { u: '18446744073709551615', i: '-9223372036854775808', f: '0.5' },
      ]);
    } finally {
      await sink.close();
      await client.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
