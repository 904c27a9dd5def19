/**
 * `streambed demo`: the main job on one machine, offline. Generates a model
 * (seeded random weights: its vectors are NOT semantic), starts a worker in
 * this process against the configured Redis, submits pages through the SDK,
 * reads the results back and prints a throughput line. With no Redis at a
 * local REDIS_URL it runs its own (demo-redis.ts).
 */
import fs from 'node:fs';
import path from 'node:path';

import { Command } from 'commander';

import { type Config, loadConfig } from '../config/load.js';
import { generateModel, type ModelPreset } from '../models/generate/index.js';
import { startWorker } from '../worker/worker-process.js';
import { openCliConnection } from './client-connection.js';
import { demoRedis } from './demo-redis.js';
import { addSettingOptions } from './settings-options.js';
import { formatSummary, waitForResults } from './wait-results.js';

const WORDS =
  'stream group worker vector embed redis batch thread model token page source lane pending claim ack result fleet'.split(
    ' ',
  );

export function demoCommand(): Command {
  const cmd = new Command('demo')
    .description(
      'Run the whole path locally: generate a model, start a worker, submit pages, read results.',
    )
    .option('--pages <n>', 'pages to submit', '400')
    .option(
      '--preset <preset>',
      'generated model shape: tiny or minilm (all-MiniLM-L6-v2 compute shape)',
      'minilm',
    )
    .option('--dir <path>', 'where the generated model is kept', '.streambed/models');
  addSettingOptions(cmd, [
    'redisUrl',
    'keyPrefix',
    'threads',
    'intraOpThreads',
    'batchSize',
    'maxBatchTokens',
    'logLevel',
  ]);
  cmd.action(async (o: Record<string, string>) => {
    const pagesWanted = Number(o.pages);
    const preset = o.preset as ModelPreset;
    const modelDir = path.resolve(o.dir as string, `${preset}-seed1`);
    const config = loadConfig(process.env, {
      ...o,
      logLevel: o.logLevel ?? 'warn',
      models: `demo=${modelDir}`,
      metricsPort: '0',
      allowRemoteModels: 'false',
    });
    // Redis first: a missing one is found (or stood in for) in seconds, before any model work.
    const redis = await demoRedis(config.redisUrl, config.redisTlsCaFile);
    try {
      await runDemo({ ...config, redisUrl: redis.url }, pagesWanted, preset, modelDir);
    } finally {
      await redis.stop();
    }
  });
  return cmd;
}

async function runDemo(
  config: Config,
  pagesWanted: number,
  preset: ModelPreset,
  modelDir: string,
): Promise<void> {
  if (!fs.existsSync(path.join(modelDir, 'config.json'))) {
    console.log(`generating a ${preset} model in ${modelDir} ...`);
    await generateModel({ preset, seed: 1, out: modelDir });
  }
  console.log(
    'note: this model has seeded random weights, so its vectors are NOT semantic; use a real model (MODELS=minilm=Xenova/all-MiniLM-L6-v2) where a hub or mounted folder exists.',
  );
  const conn = await openCliConnection(config, 'streambed-demo');
  const { client } = conn;
  const worker = startWorker(config);
  const replyTo = client.keys.sourceReply('demo', `demo-${process.pid}`);
  try {
    await worker.started;
    const dim = worker.models.get('demo')?.dim;
    console.log(`worker ${worker.consumer} is reading ${client.keys.request('demo')} (dim ${dim})`);
    const pages = Array.from({ length: pagesWanted }, (_, i) => ({
      id: `page-${i}`,
      source: 'demo',
      text: sentence(i),
    }));
    const startedAt = Date.now();
    const ids = await client.submit(pages, { model: 'demo', replyTo });
    console.log(`submitted ${ids.length} pages; waiting for results on ${replyTo} ...`);
    const summary = await waitForResults(client, replyTo, new Set(ids), {
      timeoutMs: 300_000,
      startedAt,
    });
    console.log(formatSummary(summary));
    const first = summary.results.find((r) => r.status === 'ok');
    if (first?.status === 'ok') {
      console.log(
        `first result: id=${first.id} dim=${first.res.dim} vector[0..4]=${Array.from(
          first.res.vectors[0]?.slice(0, 4) ?? [],
        )
          .map((v) => v.toFixed(4))
          .join(', ')}`,
      );
    }
    process.exitCode = summary.ok === pagesWanted ? 0 : 1;
  } finally {
    await conn.redis.del(replyTo);
    await conn.close();
    await worker.stop();
  }
}

/** Deterministic prose-like text of varied length. */
function sentence(i: number): string {
  const n = 8 + ((i * 37) % 90);
  return Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * 13) % WORDS.length]).join(' ');
}
