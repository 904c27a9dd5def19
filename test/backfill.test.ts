/**
 * `streambed backfill` (issue 8 acceptance): a 5,000-page backfill SIGKILLed
 * halfway and re-run ends with exactly one result per page and never sends
 * an answered (or submitted) page again; `--wait` exits non-zero and lists
 * the pages that were dead-lettered.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { cliSpawner } from './helpers/cli.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('backfill');
const k = keys(prefix);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-backfill-'));
const cli = cliSpawner(prefix);

beforeAll(async () => {
  // TRIM off: the request stream keeps every entry, so resubmissions would show.
  await startTestWorker(prefix, { MODELS: 'fx=fixture:8', THREADS: 2, TRIM_INTERVAL_MS: 0 });
});

afterAll(async () => {
  cli.killAll();
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
});

const backfill = (args: string[], env: Record<string, string> = {}) =>
  cli.run(['backfill', ...args], env);

/** Page ids in a request stream, from the SDK's msgpack envelopes. */
async function requestIds(stream: string): Promise<string[]> {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([, f]) => (unpack(f[f.length - 1] as Buffer) as { id: string }).id);
}

/** Pages the job has submitted, from its checkpoint. */
const submittedOf = async (job: string) =>
  Number(await redis.hget(k.backfillJob(job), 'submitted'));

async function resultKeys(stream: string): Promise<string[]> {
  const entries = await redis.xrange(stream, '-', '+');
  return entries.map(([, f]) => `${f[f.indexOf('source') + 1]}/${f[f.indexOf('id') + 1]}`);
}

describe('streambed backfill', () => {
  it('resumes a SIGKILLed 5,000-page backfill: one result per page, nothing answered sent again', async () => {
    const corpus = path.join(dir, 'corpus');
    for (const sub of ['a', 'b/c']) fs.mkdirSync(path.join(corpus, sub), { recursive: true });
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const id = `${i % 2 ? 'a' : 'b/c'}/page-${i}.${i % 3 ? 'txt' : 'md'}`;
      ids.push(id);
      // 1 ms of compute per page: the run takes a few seconds, so "halfway" is a real moment.
      fs.writeFileSync(path.join(corpus, id), `page ${i} of the corpus @@slow:1`);
    }
    fs.writeFileSync(path.join(corpus, 'skipped.json'), '{}'); // not .txt/.md: not a page
    const args = [corpus, '-m', 'fx', '--job', 'kill', '--source', 'corpus'];
    const env = { BACKFILL_MAX_IN_FLIGHT: '1000' };
    const reply = k.backfillReply('corpus', 'kill');

    const first = backfill(args, env);
    let most = 0;
    await until(
      'half answered',
      async () => {
        const [answered, submitted] = await Promise.all([redis.xlen(reply), submittedOf('kill')]);
        most = Math.max(most, submitted - answered);
        return answered >= 2500;
      },
      40_000,
      20,
    );
    first.proc.kill('SIGKILL');
    await first.exited;
    const answeredAtKill = await redis.xlen(reply);
    const submittedAtKill = await submittedOf('kill');
    expect(submittedAtKill).toBeLessThan(5000);
    // Backpressure: never more than BACKFILL_MAX_IN_FLIGHT unanswered (one poll of slack).
    expect(most).toBeLessThanOrEqual(1000 + 100);

    const second = backfill([...args, '--wait'], env);
    const code = await second.exited;
    const out = second.output();
    console.log(
      `backfill: killed at ${answeredAtKill} answered / ${submittedAtKill} submitted (most unanswered ${most}); re-run: ` +
        (out.split('\n').find((l) => l.includes('already answered')) ?? out),
    );
    expect(code, out).toBe(0);
    const plan =
      /(\d+) already answered, (\d+) submitted earlier \(waiting\), (\d+) to submit/.exec(out);
    expect(plan).not.toBeNull();
    const [answeredBefore, waiting, toSubmit] = (plan as RegExpExecArray).slice(1).map(Number);
    expect((answeredBefore as number) + (waiting as number)).toBe(submittedAtKill);
    expect(toSubmit).toBe(5000 - submittedAtKill);

    const results = await resultKeys(reply);
    expect(results).toHaveLength(5000);
    expect(new Set(results)).toEqual(new Set(ids.map((id) => `corpus/${id}`)));
    const sent = await requestIds(k.bulkSource('fx', 'corpus'));
    expect(sent).toHaveLength(5000); // no page was sent twice
    expect(new Set(sent).size).toBe(5000);
    expect(await redis.xlen(k.dlq('fx'))).toBe(0);
  });

  it('--wait exits non-zero and lists dead-lettered pages; a re-run resubmits nothing', async () => {
    const file = path.join(dir, 'pages.jsonl');
    const lines = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({
        id: `j${i}`,
        source: i < 10 ? 'left' : 'right',
        text: i === 7 ? 'bad @@throw' : `line ${i}`,
      }),
    );
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const run = backfill([file, '-m', 'fx', '--job', 'jsonl', '--wait']);
    expect(await run.exited, run.output()).toBe(1);
    expect(run.output()).toContain('1 page(s) dead-lettered');
    expect(run.output()).toMatch(/left\/j7: model_error/);

    const again = backfill([file, '-m', 'fx', '--job', 'jsonl', '--wait']);
    expect(await again.exited).toBe(1);
    expect(again.output()).toContain(
      '20 already answered, 0 submitted earlier (waiting), 0 to submit',
    );
    expect(again.output()).toMatch(/left\/j7: model_error/);
    const sent = [
      ...(await requestIds(k.bulkSource('fx', 'left'))),
      ...(await requestIds(k.bulkSource('fx', 'right'))),
    ];
    expect(sent.sort()).toEqual(lines.map((_, i) => `j${i}`).sort());
  });
});
