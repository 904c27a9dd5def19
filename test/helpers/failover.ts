/**
 * Measuring a Redis failover from a result consumer's side: a reader tails
 * the reply stream through the failover, and the accounting compares what it
 * saw with what the new master holds. Every page is answered once, more than
 * once (duplicated) or never (lost) as the reader saw it; a result it saw
 * that the new master lacks was lost with the old one.
 */
import type { Redis } from 'ioredis';

import type { StreambedClient } from '../../src/client/client.js';
import type { Page } from '../../src/types.js';
import { until } from './redis.js';

export interface Seen {
  /** Result entry ids per page id, in the order the reader saw them. */
  byPage: Map<string, string[]>;
  stop(): Promise<void>;
}

/** Tail `reply` on `redis` (which follows the failover) until stopped; errors mean "read again". */
export function tailReplies(redis: Redis, reply: string): Seen {
  const byPage = new Map<string, string[]>();
  let last = '0';
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const got = (await redis.xread('COUNT', 1000, 'BLOCK', 200, 'STREAMS', reply, last)) ?? [];
        for (const [, entries] of got) {
          for (const [id, fields] of entries) {
            last = id;
            const page = fields[fields.indexOf('id') + 1] as string;
            byPage.set(page, [...(byPage.get(page) ?? []), id]);
          }
        }
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // failover under way: read again
      }
    }
  })();
  return {
    byPage,
    async stop() {
      running = false;
      await loop;
      redis.disconnect();
    },
  };
}

export interface Accounting {
  answeredOnce: number;
  duplicated: number;
  lost: number;
  /** Results the reader saw that the new master does not have. */
  resultsLostWithOldMaster: number;
  /** Pages with more than one result on the new master. */
  pagesTwiceOnNewMaster: number;
  /** Pages answered on the new master, each counted once. */
  answeredOnNewMaster: number;
  /** Duplicates with no cause: neither a lost first result nor two on the new master. */
  unexplained: string[];
}

/** `final`: XRANGE of the reply stream on the new master. */
export function account(
  pages: string[],
  seen: Map<string, string[]>,
  final: Array<[string, string[]]>,
): Accounting {
  const finalIds = new Set(final.map(([id]) => id));
  const perPage = new Map<string, number>();
  for (const [, f] of final) {
    const page = f[f.indexOf('id') + 1] as string;
    perPage.set(page, (perPage.get(page) ?? 0) + 1);
  }
  const out: Accounting = {
    answeredOnce: 0,
    duplicated: 0,
    lost: 0,
    resultsLostWithOldMaster: 0,
    pagesTwiceOnNewMaster: [...perPage.values()].filter((n) => n > 1).length,
    answeredOnNewMaster: pages.filter((p) => (perPage.get(p) ?? 0) >= 1).length,
    unexplained: [],
  };
  for (const page of pages) {
    const ids = seen.get(page) ?? [];
    const gone = ids.filter((id) => !finalIds.has(id)).length;
    out.resultsLostWithOldMaster += gone;
    if (ids.length === 0) out.lost++;
    else if (ids.length === 1) out.answeredOnce++;
    else {
      out.duplicated++;
      // A second answer needs a cause: the first one lost with the old master, or two on the new.
      if (gone === 0 && (perPage.get(page) ?? 0) < 2) out.unexplained.push(page);
    }
  }
  return out;
}

/**
 * After the kill: wait until `check` (on the new master) holds a result for
 * every page and the reader has seen them all, stop the reader, and count.
 * Prints the numbers with `label`.
 */
export async function settle(o: {
  label: string;
  check: Redis;
  reply: string;
  reader: Seen;
  pages: string[];
  killedAt: number;
  extra: Record<string, number>;
}): Promise<Accounting> {
  const answered = async () => {
    const results = await o.check.xrange(o.reply, '-', '+');
    return new Set(results.map(([, f]) => f[f.indexOf('id') + 1])).size >= o.pages.length;
  };
  await until('every entry answered on the new master', answered, 50_000, 250);
  const allAnsweredMs = Date.now() - o.killedAt;
  await until('the reader caught up', () => o.reader.byPage.size >= o.pages.length, 10_000, 50);
  await o.reader.stop();
  const counts = account(o.pages, o.reader.byPage, await o.check.xrange(o.reply, '-', '+'));
  const report = {
    total: o.pages.length,
    ...counts,
    unexplained: counts.unexplained.length,
    ...o.extra,
    allAnsweredMs,
  };
  console.log(`${o.label}: ${JSON.stringify(report)}`);
  return counts;
}

/** What a test expects of the counts: exact, everything answered, every duplicate explained. */
export function verdict(counts: Accounting, total: number) {
  return {
    exact: counts.answeredOnce + counts.duplicated + counts.lost === total,
    allAnswered: counts.answeredOnNewMaster === total,
    unexplained: counts.unexplained,
  };
}

/**
 * The load of a failover test, submitted (and the client closed): 1,000 bulk
 * pages for each of two sources, 1,000 interactive. Returns the page ids.
 */
export async function submitLoad(client: StreambedClient, replyTo: string): Promise<string[]> {
  const pages = (source: string): Page[] =>
    Array.from({ length: 1000 }, (_, i) => ({
      id: `${source}-${i}`,
      source,
      text: `${source} ${i} @@slow:4`,
    }));
  const bulk = [...pages('a'), ...pages('b')];
  await client.submit(bulk, { model: 'fx', lane: 'bulk', replyTo });
  await client.submit(pages('web'), { model: 'fx', replyTo });
  await client.close();
  return [...bulk.map((p) => p.id), ...pages('web').map((p) => p.id)];
}
