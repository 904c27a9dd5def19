/**
 * The console's small parts without Redis or a browser: the admin key check
 * (Bearer only, exact key, any length refused alike, the gateway's keys
 * format read too, a short key file refused at start) and the throughput series (per-bucket rates from
 * acknowledged totals, the bucket under way over its own seconds, gaps where
 * the console was not sampling, no negative rate when a stream restarts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { adminKey, readAdminKey } from '../src/console/admin-key.js';
import { BUCKET_MS, HISTORY_MS, Throughput } from '../src/console/throughput.js';
import type { Sample } from '../src/status/gather.js';

const KEY = 'a-key-that-is-long-enough';

describe('admin key', () => {
  const key = adminKey(KEY);

  it('allows exactly `Bearer <key>`', () => {
    expect(key.allows(`Bearer ${KEY}`)).toBe(true);
    for (const h of [
      undefined,
      '',
      KEY,
      `Basic ${KEY}`,
      `Bearer ${KEY}x`,
      `Bearer ${KEY.slice(1)}`,
      'Bearer ',
    ])
      expect(key.allows(h), String(h)).toBe(false);
  });

  it('reads the first line of the file, and refuses a short key naming the setting', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-admin-key-'));
    try {
      fs.writeFileSync(path.join(dir, 'ok'), `  ${KEY}  \nsecond line\n`);
      expect(readAdminKey(path.join(dir, 'ok'))?.allows(`Bearer ${KEY}`)).toBe(true);
      // The gateway's keys format: comments skipped, the key is the line's first word.
      fs.writeFileSync(path.join(dir, 'gw'), `# key source rpm\n\n${KEY}   ops   60\n`);
      const gw = readAdminKey(path.join(dir, 'gw'));
      expect(gw?.allows(`Bearer ${KEY}`)).toBe(true);
      expect(gw?.allows(`Bearer ${KEY}   ops   60`)).toBe(false);
      fs.writeFileSync(path.join(dir, 'short'), 'short\n');
      expect(() => readAdminKey(path.join(dir, 'short'))).toThrow(/CONSOLE_ADMIN_KEY_FILE/);
      expect(readAdminKey(undefined)).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A sample with one model whose single stream has acknowledged `acked` entries. */
function sample(atMs: number, acked: number): Sample {
  return {
    atMs,
    models: [
      {
        model: 'fx',
        dlq: 'sb:dlq:fx',
        dlqLength: 0,
        streams: [
          {
            lane: 'interactive',
            source: null,
            stream: 'sb:req:fx',
            read: {
              exists: true,
              length: acked,
              group: { lag: 0, pending: 0, entriesRead: acked },
              pending: [],
            },
            consumers: [],
            overIdle: null,
          },
        ],
      },
    ],
    sources: [],
    jobs: [],
  } as unknown as Sample;
}

describe('throughput series', () => {
  const t0 = 1_000 * BUCKET_MS; // a bucket boundary

  it('turns acknowledged totals into a rate per bucket, the current one over its own seconds', () => {
    const t = new Throughput();
    t.add(sample(t0, 0));
    t.add(sample(t0 + 5_000, 50)); // bucket t0: 50 in the first 5 s
    t.add(sample(t0 + BUCKET_MS + 2_000, 150)); // bucket t0+10s: 100 in its first 2 s
    const s = t.series(t0 + BUCKET_MS + 2_000);
    const points = s.models.fx!;
    expect(points).toHaveLength(HISTORY_MS / BUCKET_MS);
    expect(s.startMs + (points.length - 1) * BUCKET_MS).toBe(t0 + BUCKET_MS);
    expect(points.at(-2)).toBe(5); // 50 over a whole 10 s bucket
    expect(points.at(-1)).toBe(50); // 100 over the 2 s so far
    expect(points.slice(0, -2).every((p) => p === null)).toBe(true); // not sampled then
    expect(s.sinceMs).toBe(t0);
  });

  it('never goes negative when a stream starts again from zero', () => {
    const t = new Throughput();
    t.add(sample(t0, 500));
    t.add(sample(t0 + 1_000, 0));
    t.add(sample(t0 + 2_000, 30));
    expect(t.series(t0 + BUCKET_MS).models.fx!.at(-2)).toBe(3);
  });
});
