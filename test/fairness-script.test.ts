/**
 * The bulk-pick Lua script on its own (bulk-scheduler.ts): picks the lowest
 * virtual time, advances it by count / weight, drops sources that ran dry and
 * places rejoining ones at max(own tag, clock); creates the group on a
 * per-source stream; rejoins the plain bulk stream; and a producer's
 * XADD + ZADD NX in one MULTI is never stranded outside the schedule.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { healSchedule, readBulk, readBulkSchedule } from '../src/worker/bulk-scheduler.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const redis = redisClient();
const prefix = randomPrefix('pick');
const k = keys(prefix);
const client = new StreambedClient({ redis, prefix });
let n = 0;
/** A fresh model name per test: its own schedule, clock and streams. */
const nextModel = () => `m${++n}`;

afterAll(async () => {
  await client.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const page = (source: string, i: number) => ({ id: `${source}-${i}`, source, text: `t ${i}` });
const pages = (source: string, count: number) =>
  Array.from({ length: count }, (_, i) => page(source, i));

async function read(model: string, count: number) {
  return readBulk(redis, k, { model, consumer: 'c1', count });
}
const sourcesOf = (r: Awaited<ReturnType<typeof read>>) =>
  r.deliveries.map((d) => k.bulkSourceOf(d.stream)?.source ?? '*');
const schedule = async (model: string) =>
  Object.fromEntries(
    (await redis.zrange(k.bulkSchedule(model), 0, -1, 'WITHSCORES')).flatMap((v, i, all) =>
      i % 2 === 0 ? [[v, Number(all[i + 1])]] : [],
    ),
  ) as Record<string, number>;

describe('bulk-pick script', () => {
  it('alternates equal sources and advances each by count / weight', async () => {
    const model = nextModel();
    await client.submit([...pages('a', 10), ...pages('b', 10)], { model, lane: 'bulk' });
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(sourcesOf(await read(model, 2)).join(''));
    // Ties go to the lexically first member; then the one behind is always served next.
    expect(seen).toEqual(['aa', 'bb', 'aa', 'bb']);
    expect(await schedule(model)).toEqual({ a: 4, b: 4 });
    expect(Number(await redis.get(k.bulkClock(model)))).toBe(2);
  });

  it('serves sources in proportion to their weights', async () => {
    const model = nextModel();
    await client.setSourceWeight(model, 'heavy', 3);
    await client.submit([...pages('heavy', 60), ...pages('light', 60)], { model, lane: 'bulk' });
    const got: string[] = [];
    for (let i = 0; i < 20; i++) got.push(...sourcesOf(await read(model, 2)));
    const heavy = got.filter((s) => s === 'heavy').length;
    expect(heavy / got.length).toBeCloseTo(0.75, 1);
  });

  it('drops a source that ran dry in the same call and fills the read from the next', async () => {
    const model = nextModel();
    await client.submit([...pages('a', 3), ...pages('b', 10)], { model, lane: 'bulk' });
    const r = await read(model, 5);
    expect(sourcesOf(r)).toEqual(['a', 'a', 'a', 'b', 'b']);
    const s = await schedule(model);
    expect(s.a).toBeUndefined();
    expect(s.b).toBe(2);
    // a's tag (3) is kept, above the clock (0): it does not come back ahead of what it was owed.
    expect(Number(await redis.zscore(k.bulkIdle(model), 'a'))).toBe(3);
  });

  it('places a rejoining source at max(its tag, clock): idle time is not banked', async () => {
    const model = nextModel();
    await client.submit([...pages('a', 2), ...pages('b', 40)], { model, lane: 'bulk' });
    await read(model, 4); // a: 2 and dry (tag 2), b: 2
    for (let i = 0; i < 5; i++) await read(model, 4); // b alone: clock moves to 18
    await client.submit(
      pages('a', 4).map((p) => ({ ...p, id: `${p.id}-again` })),
      {
        model,
        lane: 'bulk',
      },
    );
    expect((await schedule(model)).a).toBe(-1); // joined, not placed yet
    const r = await read(model, 2);
    const clock = Number(await redis.get(k.bulkClock(model)));
    expect(clock).toBeGreaterThan(2);
    // a was placed at the clock (not at its old tag 2, which would let it catch up 16 entries).
    expect(sourcesOf(r)).toEqual(['a', 'a']);
    const s = await schedule(model);
    expect(s.a).toBe(clock + 2);
    expect(s.b).toBeGreaterThanOrEqual(clock);
    // Had a kept its old tag it would have the next reads to itself; at the clock it shares.
    const next: string[] = [];
    for (let i = 0; i < 4; i++) next.push(...sourcesOf(await read(model, 2)));
    expect(next.filter((x) => x === 'b').length).toBeGreaterThanOrEqual(4);
  });

  it('creates the group at 0 on a per-source stream, so entries added before it are served', async () => {
    const model = nextModel();
    await client.submit(pages('fresh', 3), { model, lane: 'bulk' });
    expect(await redis.exists(k.bulkSource(model, 'fresh'))).toBe(1);
    await expect(redis.xinfo('GROUPS', k.bulkSource(model, 'fresh'))).resolves.toEqual([]);
    const r = await read(model, 10);
    expect(r.deliveries.map((d) => d.id)).toHaveLength(3);
    expect(r.deliveries.every((d) => d.deliveries === 1 && d.model === model)).toBe(true);
    expect((await redis.xpending(k.bulkSource(model, 'fresh'), k.group))[0]).toBe(3);
  });

  it('serves the plain bulk stream (redis-cli producers) as one more source', async () => {
    const model = nextModel();
    const plain = k.request(model, 'bulk');
    await redis.xgroup('CREATE', plain, k.group, '0', 'MKSTREAM');
    await client.submit(pages('a', 4), { model, lane: 'bulk' });
    for (let i = 0; i < 4; i++)
      await redis.xadd(plain, '*', 'id', `p${i}`, 'source', 'x', 'text', 't');
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(sourcesOf(await read(model, 2)).join(''));
    expect(got.sort()).toEqual(['**', '**', 'aa', 'aa']);
    expect(await read(model, 2)).toEqual({ deliveries: [], more: false });
    expect(await schedule(model)).toEqual({});
    // Added later, with no ZADD: read in its turn (the plain stream is always in the rotation).
    await redis.xadd(plain, '*', 'id', 'late', 'source', 'x', 'text', 't');
    expect(sourcesOf(await read(model, 2))).toEqual(['*']);
  });

  it('never strands an entry: XADD+ZADD in one MULTI against reads draining the source', async () => {
    const model = nextModel();
    const total = 400;
    let delivered = 0;
    const producer = (async () => {
      for (let i = 0; i < total; i += 4)
        await client.submit(
          [0, 1, 2, 3].map((j) => page('race', i + j)),
          { model, lane: 'bulk' },
        );
    })();
    let producing = true;
    void producer.then(() => (producing = false));
    while (producing || delivered < total) {
      const r = await read(model, 3);
      delivered += r.deliveries.length;
      if (!producing && r.deliveries.length === 0 && delivered < total) break;
    }
    await producer;
    expect(delivered).toBe(total);
    // The read that finds the stream empty drops the source.
    expect((await read(model, 3)).deliveries).toHaveLength(0);
    expect(await schedule(model)).toEqual({});
  });

  it('heal re-schedules a per-source stream with backlog that is not scheduled', async () => {
    const model = nextModel();
    await client.submit(pages('lost', 2), { model, lane: 'bulk' });
    await redis.del(k.bulkSchedule(model)); // e.g. an XADD that skipped the SDK's ZADD
    expect((await read(model, 5)).deliveries).toHaveLength(0);
    expect(await healSchedule(redis, k, model)).toEqual(['lost']);
    expect((await read(model, 5)).deliveries).toHaveLength(2);
    expect(await healSchedule(redis, k, model)).toEqual([]);
  });

  it('reports each source with backlog, score and weight (for streambed status)', async () => {
    const model = nextModel();
    await client.setSourceWeight(model, 'b', 2);
    await client.submit([...pages('a', 5), ...pages('b', 3)], { model, lane: 'bulk' });
    await read(model, 2);
    const state = await readBulkSchedule(redis, k, model);
    expect(state.model).toBe(model);
    expect(state.sources).toEqual([
      expect.objectContaining({ source: 'a', lag: 3, pending: 2, score: 2, weight: 1 }),
      expect.objectContaining({ source: 'b', lag: 3, pending: 0, score: 0, weight: 2 }),
    ]);
  });
});
