/**
 * `submit --wait` progress (issue 4): a bar redrawn in place on a terminal,
 * plain periodic lines otherwise, with done/total, rate and ETA; and the
 * per-source progress counters it rests on are exact.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ProgressBar } from '../src/cli/progress-bar.js';
import { keys } from '../src/keys.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient } from './helpers/redis.js';
import { BIN, startTestWorker, stopAllWorkers } from './helpers/worker.js';

function fakeOut(tty: boolean, columns = 80) {
  const out = Object.assign(new PassThrough(), { isTTY: tty, columns });
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

describe('progress bar', () => {
  it('redraws one line in place on a terminal, with rate and ETA', () => {
    let now = 0;
    const { out, text } = fakeOut(true);
    const bar = new ProgressBar({ total: 10, out, now: () => now });
    for (let i = 0; i < 4; i++) {
      now += 500;
      bar.tick(i === 1);
    }
    // 4 in 2 s: 2.0/s, 6 left: ETA 3s.
    expect(bar.line()).toMatch(
      /^\[#{12}-{18}\] 4\/10 40\.0% {2}2\.0\/s {2}ETA 3s {2}elapsed 2s {2}1 error$/,
    );
    now += 500;
    bar.interrupt(() => out.write('PRINTED\n'));
    bar.finish();
    const frames = text().split('\r').filter(Boolean);
    expect(frames.length).toBeGreaterThanOrEqual(5);
    expect(frames.every((f) => f.includes('\x1b[K'))).toBe(true);
    expect(text()).toContain('\x1b[KPRINTED\n');
    expect(text().endsWith('\n')).toBe(true);
    expect(bar.line().length).toBeLessThan(80);
  });

  it('prints plain lines when not on a terminal, and the rate covers the recent window', () => {
    let now = 0;
    const { out, text } = fakeOut(false);
    const bar = new ProgressBar({ total: 100, out, now: () => now });
    for (let i = 0; i < 50; i++) {
      now += 1000;
      bar.tick();
    }
    // A fast burst: 40 in the next second; the rate follows the last ~10 s, not the average.
    for (let i = 0; i < 40; i++) {
      now += 25;
      bar.tick();
    }
    expect(bar.rate()).toBeGreaterThan(4);
    bar.finish();
    expect(text()).not.toContain('\r');
    expect(text().trim().split('\n')).toEqual([
      expect.stringMatching(/^progress 90\/100 90\.0% {2}[\d.]+\/s {2}ETA \d+s {2}elapsed 51s$/),
    ]);
  });
});

describe('submit --wait', () => {
  const redis = redisClient();
  const prefix = randomPrefix('progress');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-progress-'));

  beforeAll(async () => {
    const model = await tinyModel({ hidden: 64 });
    await startTestWorker(prefix, { MODELS: `tiny=${model.dir}` });
  });
  afterAll(async () => {
    await stopAllWorkers();
    await deletePrefix(redis, prefix);
    redis.disconnect();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints periodic progress lines on a pipe and ends at total; counters are exact', async () => {
    const jsonl = path.join(dir, 'pages.jsonl');
    const lines = Array.from({ length: 60 }, (_, i) =>
      JSON.stringify({ id: `p${i}`, source: 'jobs', text: i === 3 ? ' ' : `page ${i}` }),
    );
    fs.writeFileSync(jsonl, `${lines.join('\n')}\n`);
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [BIN, 'submit', '-m', 'tiny', '--jsonl', jsonl, '--wait', '--progress-ms', '100'],
        { env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix } },
        (err, _out, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      ),
    );
    const progress = stderr.split('\n').filter((l) => l.startsWith('progress '));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress[0]).toMatch(/^progress \d+\/60 /);
    expect(progress.at(-1)).toMatch(
      /^progress 60\/60 100\.0% {2}[\d.]+\/s {2}ETA 0s {2}elapsed \d+s {2}1 error$/,
    );
    const done = progress.map((l) => Number(/^progress (\d+)\//.exec(l)?.[1]));
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(stderr).toMatch(/59 ok, errors: invalid=1/);
    expect(code).toBe(1);
    expect(await redis.hgetall(keys(prefix).progress('jobs'))).toMatchObject({
      submitted: '60',
      done: '59',
      failed: '1',
    });
  });
});
