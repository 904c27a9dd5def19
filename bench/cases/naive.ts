/**
 * Case b driver: the hand-written ioredis + Transformers.js consumer in its
 * own process; the runner XADDs plain entries and reads its result stream.
 */
import type { Redis } from 'ioredis';

import type { NaiveInit } from '../roles/naive-consumer.js';
import type { EmbedConfig } from '../roles/transformers-embed.js';
import { PlainStreamCase } from './plain-stream.js';

export class NaiveCase extends PlainStreamCase {
  constructor(redis: Redis, redisUrl: string, prefix: string, embed: EmbedConfig) {
    super(redis, prefix, {
      id: 'b',
      label: 'b. naive consumer (ioredis + Transformers.js, COUNT 1, 1 process)',
      role: 'naive-consumer',
      init: (names): NaiveInit => ({ ...embed, redisUrl, ...names }),
    });
  }
}
