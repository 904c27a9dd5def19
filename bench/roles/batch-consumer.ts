/**
 * Case f (the hand-written ceiling of a queue path): an ioredis consumer
 * with no model and no fence. XREADGROUP COUNT 200, then one pipeline per
 * read: an XADD of a result per entry (a zero vector of streambed's no-op
 * size, so Redis stores as much as case e's results) and one XACK of them
 * all. What one Node process moves on this Redis with nothing but the queue.
 */
import { Redis } from 'ioredis';

import { serveRole } from '../child.js';

export interface BatchConsumerInit {
  redisUrl: string;
  stream: string;
  group: string;
  results: string;
  /** Entries per XREADGROUP. */
  count: number;
  /** Bytes of the result's vector field (384 float32 = 1,536, like `noop:384`). */
  vectorBytes: number;
}

let stopping = false;
let loop: Promise<void> | undefined;
let redis: Redis | undefined;

type Reply = Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;

async function consume(init: BatchConsumerInit, r: Redis): Promise<void> {
  const vector = Buffer.alloc(init.vectorBytes);
  while (!stopping) {
    const reply = (await r.callBuffer(
      'XREADGROUP',
      'GROUP',
      init.group,
      'f-1',
      'COUNT',
      String(init.count),
      'BLOCK',
      '200',
      'STREAMS',
      init.stream,
      '>',
    )) as Reply;
    const entries = reply?.[0]?.[1];
    if (!entries || entries.length === 0) continue;
    const pipeline = r.pipeline();
    const ids: Buffer[] = [];
    for (const [id, fields] of entries) {
      ids.push(id);
      let name: Buffer = Buffer.alloc(0);
      for (let i = 0; i + 1 < fields.length; i += 2)
        if ((fields[i] as Buffer).toString() === 'id') name = fields[i + 1] as Buffer;
      pipeline.xadd(init.results, '*', 'id', name, 'rid', id, 'status', 'ok', 'res', vector);
    }
    pipeline.xack(init.stream, init.group, ...ids);
    for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
  }
}

serveRole(
  {
    async init(arg) {
      const init = arg as BatchConsumerInit;
      redis = new Redis(init.redisUrl, { maxRetriesPerRequest: null });
      await redis.xgroup('CREATE', init.stream, init.group, '$', 'MKSTREAM');
      loop = consume(init, redis);
      return {};
    },
  },
  async () => {
    stopping = true;
    await loop;
    await redis?.quit();
  },
);
