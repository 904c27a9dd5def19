/**
 * Case f driver: the hand-written no-op batch consumer
 * (roles/batch-consumer.ts) on case e's inputs, fed and read back like
 * case b: the ceiling case e's full path (decode, validation, the lease
 * fence) is measured against, in the same run.
 */
import type { Redis } from 'ioredis';

import type { BatchConsumerInit } from '../roles/batch-consumer.js';
import { PlainStreamCase } from './plain-stream.js';

/** Entries per read, as the hand-written consumer. */
export const BATCH_CONSUMER_COUNT = 200;

export class BatchConsumerCase extends PlainStreamCase {
  constructor(redis: Redis, redisUrl: string, prefix: string) {
    super(redis, prefix, {
      id: 'f',
      label: `f. hand-written batch consumer (ioredis, no-op, COUNT ${BATCH_CONSUMER_COUNT}, no fence)`,
      role: 'batch-consumer',
      init: (names): BatchConsumerInit => ({
        redisUrl,
        ...names,
        count: BATCH_CONSUMER_COUNT,
        // A 384-d float32 vector: the size of case e's no-op results.
        vectorBytes: 384 * 4,
      }),
    });
  }
}
