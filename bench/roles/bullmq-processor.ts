/**
 * Case c, sandboxed form: BullMQ runs this file in its own child process per
 * concurrent job slot, so each slot loads its own copy of the model.
 */
import type { Job } from 'bullmq';

import { embedConfigFromEnv, type EmbedOne, loadEmbedOne } from './transformers-embed.js';

let embed: Promise<EmbedOne> | undefined;

export default async function embedJob(job: Job<{ text: string }>): Promise<number[]> {
  embed ??= loadEmbedOne(embedConfigFromEnv());
  return Array.from(await (await embed)(job.data.text));
}
