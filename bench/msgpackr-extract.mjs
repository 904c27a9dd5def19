#!/usr/bin/env node
// msgpackr with and without its native string extractor (msgpackr-extract) on
// the payloads the fleet encodes and decodes: envelopes (the worker unpacks
// one per entry) and results (a client unpacks one per answer). Plain JS so
// it can load msgpackr from another install: MSGPACKR_FROM=/path/to/project
// (a folder with node_modules/msgpackr), default this project (the real
// accelerator since the stand-in went; MSGPACKR_NATIVE_ACCELERATION_DISABLED=true
// for pure JS).
// Prints one JSON line per case; BENCHMARKS.md ("msgpackr-extract") has the
// numbers and how they were taken.
//   node bench/msgpackr-extract.mjs
//   MSGPACKR_FROM=/tmp/mx-real node bench/msgpackr-extract.mjs
import { createRequire } from 'node:module';
import path from 'node:path';

const from = process.env.MSGPACKR_FROM
  ? path.join(path.resolve(process.env.MSGPACKR_FROM), 'package.json')
  : import.meta.url;
const { Packr, isNativeAccelerationEnabled } = createRequire(from)('msgpackr');

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const ROUND_MS = Number(process.env.ROUND_MS ?? 400);

const WORDS =
  'the stream group worker reads each page and writes a vector for it so search can find it later'.split(
    ' ',
  );
const prose = (n, seed) =>
  Array.from({ length: n }, (_, k) => WORDS[(seed * 7 + k * 13) % WORDS.length]).join(' ');
const accented = (n, seed) => prose(n, seed).replace(/e/g, 'é').replace(/a/g, 'ä');

// The SDK's envelope Packr and the worker's result Packr (src/client/client.ts, src/codec/result.ts).
const envPackr = new Packr({ useRecords: false });
const resPackr = new Packr({ useRecords: false, mapsAsObjects: true });

const envelope = (text) => ({
  id: 'docs/guide/install.md',
  source: 'docs',
  text,
  reply_to: 'sb:reply:docs',
  meta: { url: 'https://example.org/guide/install', lang: 'en', rev: 42 },
});
const result = (dim) => ({
  model: 'minilm',
  dim,
  vectors: [Buffer.from(new Float32Array(dim).map((_, i) => Math.sin(i)).buffer)],
  truncated: [false],
  hash: 'f3b2a1c4d5e6f708',
  ms: 12.5,
  worker: 'streambed-worker-7c9f-12345',
});

const CASES = [
  ['envelope, 100-word page', envPackr, envelope(prose(100, 1))],
  ['envelope, 100-word page, accented', envPackr, envelope(accented(100, 2))],
  [
    'envelope, 32 chunks of 40 words',
    envPackr,
    {
      ...envelope(undefined),
      text: undefined,
      texts: Array.from({ length: 32 }, (_, i) => prose(40, i)),
    },
  ],
  ['envelope, 10-word query', envPackr, envelope(prose(10, 3))],
  ['result, dim 384', resPackr, result(384)],
];

function opsPerSec(fn) {
  for (let i = 0; i < 2000; i++) fn(); // warm up the JIT
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(ROUND_MS) * 1_000_000n;
    let now = start;
    while (now < end) {
      for (let i = 0; i < 200; i++) fn();
      n += 200;
      now = process.hrtime.bigint();
    }
    rates.push((n * 1e9) / Number(now - start));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)];
}

for (const [name, packr, value] of CASES) {
  const bytes = packr.pack(value);
  const decode = opsPerSec(() => packr.unpack(bytes));
  const encode = opsPerSec(() => packr.pack(value));
  console.log(
    JSON.stringify({
      case: name,
      native: isNativeAccelerationEnabled === true,
      bytes: bytes.length,
      decodePerSec: Math.round(decode),
      encodePerSec: Math.round(encode),
    }),
  );
}
