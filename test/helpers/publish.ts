/** Calling the publish-and-ack script the way the result writer does, for its unit tests. */
import type { Redis } from 'ioredis';

import {
  type PublishCall,
  type PublishEntry,
  type PublishReply,
  queuePublish,
} from '../../src/worker/publish-script.js';

/** Publish the entries in one pipeline; returns the per-entry replies and how many script calls it took. */
export async function publishEntries(
  redis: Redis,
  call: PublishCall,
  entries: PublishEntry[],
): Promise<{ replies: PublishReply[]; calls: number }> {
  const p = redis.pipeline();
  queuePublish(p, call, entries);
  const calls = p.length;
  const replies = ((await p.exec()) ?? []).flatMap(([err, r]) => {
    if (err) throw err;
    return r as PublishReply[];
  });
  return { replies, calls };
}
