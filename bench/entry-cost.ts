/**
 * `node dist/bench/entry-cost.js [--from DIR] [--entries N] [--rounds R] [--group G]`:
 * main-thread CPU per entry of each stage of the worker's queue path, on
 * real SDK envelopes against the real Redis: read (XREADGROUP COUNT 200),
 * decode and validate, answer with its content hash, and the result write
 * (result encoding, the publish script's arguments, ioredis, its replies),
 * plus the Redis CPU of the publish script per entry (INFO commandstats).
 * Each stage keeps its least CPU over the rounds: CPU time moves less than
 * wall time on a shared machine, and the least is the least disturbed.
 * `--from` loads another build's dist/ (e.g. an older commit's) so both are
 * measured in one sitting.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

const HERE = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      from: { type: 'string', default: HERE },
      entries: { type: 'string', default: '2000' },
      rounds: { type: 'string', default: '5' },
      group: { type: 'string', default: '64' },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    },
  });
  const dist = path.resolve(values.from);
  const n = Number(values.entries);
  const rounds = Number(values.rounds);
  const group = Number(values.group);
  const load = (file: string) => import(path.join(dist, 'src', file));
  const { StreambedClient } = await load('client/client.js');
  const { envelopeDecoder } = await load('codec/envelope.js');
  const { contentHash } = await load('codec/result.js');
  const { ResultWriter } = await load('worker/result-writer.js');
  const { readGroup } = await load('worker/streams.js');
  const { keys: buildKeys } = await load('keys.js');

  const redis = new Redis(values['redis-url'], { maxRetriesPerRequest: 3 });
  const prefix = `sbcost-${randomBytes(3).toString('hex')}`;
  const client = new StreambedClient({ redis, prefix });
  const keys = buildKeys(prefix);
  const stream: string = keys.request('bench');
  const replyTo = `${prefix}:reply:cost`;
  await redis.xgroup('CREATE', stream, keys.group, '$', 'MKSTREAM');
  const decode = envelopeDecoder({
    maxEnvelopeBytes: 1 << 20,
    maxMetaBytes: 1 << 14,
    maxChunks: 256,
    replyToPattern: `${prefix}:reply:*`,
  });
  const writer = new ResultWriter(redis, { keys, consumer: 'c1', resultsMaxLen: 0 });
  const vector = new Float32Array(384);
  const least: Record<string, number> = {};
  const note = (stage: string, us: number) => {
    least[stage] = Math.min(least[stage] ?? Infinity, us / n);
  };
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  let redisUs = Infinity;
  try {
    for (let r = 0; r < rounds; r++) {
      const pages = Array.from({ length: n }, (_, i) => ({
        id: `p-${r}-${i}`,
        source: 'bench',
        text: `House be name have your in is they of all search, my ${r} ${i}`,
      }));
      await client.submit(pages, { model: 'bench', replyTo });
      let t = cpu();
      const deliveries: Array<{ id: string; fields: Buffer[] }> = [];
      while (deliveries.length < n) {
        const got = await readGroup(redis, {
          group: keys.group,
          consumer: 'c1',
          count: 200,
          streams: [stream],
          modelOf: () => 'bench',
        });
        deliveries.push(...got);
      }
      note('read', cpu() - t);
      t = cpu();
      const envelopes = deliveries.map((d) => decode(d.fields).envelope);
      note('decode', cpu() - t);
      t = cpu();
      const answers = deliveries.map((d, i) => {
        const env = envelopes[i];
        return {
          delivery: d,
          id: env.id,
          source: env.source,
          replyTo: env.replyTo,
          outcome: 'ok',
          ok: {
            model: 'bench',
            dim: 384,
            vectors: [vector],
            truncated: [false],
            hash: contentHash(env.texts),
            ms: 1.23,
            worker: 'c1',
          },
        };
      });
      note('answer (hash)', cpu() - t);
      await redis.config('RESETSTAT');
      t = cpu();
      let written = 0;
      for (let i = 0; i < n; i += group)
        written += (await writer.write(answers.slice(i, i + group))).written.length;
      note(`write (groups of ${group})`, cpu() - t);
      if (written !== n) throw new Error(`${written} of ${n} answers written`);
      const stats = /cmdstat_evalsha:calls=\d+,usec=(\d+)/.exec(await redis.info('commandstats'));
      redisUs = Math.min(redisUs, Number(stats?.[1]) / n);
      await redis.del(replyTo);
      await redis.xtrim(stream, 'MAXLEN', 0);
    }
  } finally {
    const found = await redis.keys(`${prefix}*`);
    if (found.length) await redis.del(...found);
    await client.close();
    redis.disconnect();
  }
  const stages = Object.entries(least).map(([stage, us]) => `${stage} ${us.toFixed(1)}`);
  console.log(
    `${dist}: main thread us/entry (least of ${rounds} x ${n}): ${stages.join(', ')}; ` +
      `Redis publish script ${redisUs.toFixed(1)} us/entry`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
