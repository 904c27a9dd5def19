/**
 * Case b (naive consumer): what a user writes by hand with ioredis and
 * Transformers.js. One process, one entry at a time: XREADGROUP COUNT 1,
 * embed, XADD the vector, XACK, loop.
 */
import { Redis } from 'ioredis';

import { serveRole } from '../child.js';
import { type EmbedConfig, loadEmbedOne } from './transformers-embed.js';

export interface NaiveInit extends EmbedConfig {
  redisUrl: string;
  stream: string;
  group: string;
  results: string;
}

let stopping = false;
let loop: Promise<void> | undefined;
let redis: Redis | undefined;

async function consume(init: NaiveInit, r: Redis, embed: (t: string) => Promise<Float32Array>) {
  while (!stopping) {
    const reply = (await r.xreadgroup(
      'GROUP',
      init.group,
      'naive-1',
      'COUNT',
      1,
      'BLOCK',
      500,
      'STREAMS',
      init.stream,
      '>',
    )) as Array<[string, Array<[string, string[]]>]> | null;
    const entry = reply?.[0]?.[1][0];
    if (!entry) continue;
    const [rid, fields] = entry;
    const field = (name: string) => fields[fields.indexOf(name) + 1] ?? '';
    const vector = await embed(field('text'));
    await r.xadd(
      init.results,
      '*',
      'id',
      field('id'),
      'rid',
      rid,
      'vector',
      Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength),
    );
    await r.xack(init.stream, init.group, rid);
  }
}

serveRole(
  {
    async init(arg) {
      const init = arg as NaiveInit;
      const embed = await loadEmbedOne(init);
      redis = new Redis(init.redisUrl, { maxRetriesPerRequest: null });
      await redis.xgroup('CREATE', init.stream, init.group, '$', 'MKSTREAM');
      loop = consume(init, redis, embed);
      return {};
    },
  },
  async () => {
    stopping = true;
    await loop;
    await redis?.quit();
  },
);
