/**
 * Producer backpressure (guarantee 6): before adding, look at the stream's
 * unprocessed backlog (the group's lag + pending, or the stream length when
 * no worker has created the group yet) and wait or fail above the limit.
 * The reading is cached briefly so a fast producer costs one XINFO per 250 ms.
 */
import type { Redis } from 'ioredis';

import { StreambedError } from '../errors.js';

const CACHE_MS = 250;

export class Backlog {
  private readonly seen = new Map<string, { at: number; backlog: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly group: string,
    private readonly max: number,
    private readonly mode: 'wait' | 'fail',
  ) {}

  async admit(stream: string, adding: number): Promise<void> {
    for (let waitMs = 50; ; waitMs = Math.min(waitMs * 2, 2_000)) {
      const { backlog, at } = await this.read(stream);
      if (backlog + adding <= this.max || backlog === 0) {
        // Keep the reading's time: counting our own adds onto a cached reading must not
        // keep it fresh, or a steady producer would never read Redis again and would
        // count its way up to the limit while the workers keep up.
        this.seen.set(stream, { at, backlog: backlog + adding });
        return;
      }
      if (this.mode === 'fail') {
        throw new StreambedError(
          'backpressure',
          `${stream} has ${backlog} unprocessed entries (max ${this.max})`,
        );
      }
      this.seen.delete(stream);
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }

  private async read(stream: string): Promise<{ backlog: number; at: number }> {
    const cached = this.seen.get(stream);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached;
    const at = Date.now();
    return { backlog: await this.readRedis(stream), at };
  }

  private async readRedis(stream: string): Promise<number> {
    const mine = await groupRow(this.redis, stream, this.group);
    if (!mine) return Number(await this.redis.xlen(stream));
    // lag is null when Redis cannot compute it (after XDEL/trim past the group): fall back to length.
    const lag = mine.lag === null ? Number(await this.redis.xlen(stream)) : Number(mine.lag);
    return lag + Number(mine.pending);
  }
}

/**
 * The group's row of XINFO GROUPS as a record; undefined when the stream or
 * the group does not exist. Any other error (Redis away) is thrown.
 */
export async function groupRow(
  redis: Redis,
  stream: string,
  group: string,
): Promise<Record<string, unknown> | undefined> {
  const groups = (await redis.xinfo('GROUPS', stream).catch((err: Error) => {
    if (/no such key/i.test(err.message)) return [];
    throw err;
  })) as unknown[][];
  return groups.map(toRecord).find((g) => g.name === group);
}

/** A flat XINFO reply (`[k1, v1, k2, v2...]`) as a record. */
export function toRecord(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}
