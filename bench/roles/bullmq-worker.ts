/**
 * Case c (BullMQ peer) and the BullMQ half of case e: a BullMQ Worker in its
 * own process. `embed` runs a Transformers.js processor in process
 * (`inline`) or in BullMQ's sandbox (`sandboxed`, a child process per slot);
 * `noop` returns at once, BullMQ's best case for queue overhead.
 * The vector goes back the BullMQ way: as the job's JSON return value.
 */
import { fileURLToPath } from 'node:url';

import { type Job, Worker } from 'bullmq';

import { serveRole } from '../child.js';
import { type EmbedConfig, loadEmbedOne } from './transformers-embed.js';

export interface BullInit extends EmbedConfig {
  redisUrl: string;
  queue: string;
  prefix: string;
  mode: 'inline' | 'sandboxed' | 'noop';
  concurrency: number;
}

let worker: Worker | undefined;

serveRole(
  {
    async init(arg) {
      const init = arg as BullInit;
      const url = new URL(init.redisUrl);
      const connection = {
        host: url.hostname,
        port: Number(url.port || 6379),
        ...(url.username && { username: decodeURIComponent(url.username) }),
        ...(url.password && { password: decodeURIComponent(url.password) }),
        maxRetriesPerRequest: null,
      };
      let processor: string | ((job: Job<{ text: string }>) => Promise<unknown>);
      if (init.mode === 'sandboxed') {
        process.env.BENCH_MODEL_DIR = init.modelDir;
        process.env.BENCH_DTYPE = init.dtype;
        processor = fileURLToPath(new URL('./bullmq-processor.js', import.meta.url));
      } else if (init.mode === 'inline') {
        const embed = await loadEmbedOne(init);
        processor = async (job) => Array.from(await embed(job.data.text));
      } else {
        processor = async () => undefined;
      }
      worker = new Worker(init.queue, processor, {
        connection,
        prefix: init.prefix,
        concurrency: init.concurrency,
      });
      worker.on('error', (err) => console.error('bullmq worker error:', err.message));
      await worker.waitUntilReady();
      return {};
    },
  },
  async () => {
    await worker?.close();
  },
);
