/**
 * What a test watches from outside while workers run: how often each text
 * was computed (SB_COMPUTE_LOG, written by the threads themselves) and the
 * highest delivery count any pending entry reached (sampled XPENDING).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Redis } from 'ioredis';

/** A fresh file for SB_COMPUTE_LOG. */
export function computeLogFile(tag: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), `sb-compute-${tag}-`)), 'computed.log');
}

/** Texts computed, and how many of those computations were repeats. */
export function computations(file: string): { total: number; distinct: number; repeats: number } {
  const lines = fs.existsSync(file)
    ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)
    : [];
  const distinct = new Set(lines).size;
  return { total: lines.length, distinct, repeats: lines.length - distinct };
}

/** Samples every `everyMs` the highest delivery count among the streams' pending entries. */
export function sampleDeliveries(
  redis: Redis,
  streams: readonly string[],
  group: string,
  everyMs = 100,
): { max: () => number; stop: () => Promise<void> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const stream of streams) {
        const rows = (await redis
          .xpending(stream, group, '-', '+', 10_000)
          .catch(() => [])) as Array<[string, string, number, number]>;
        for (const [, , , count] of rows) max = Math.max(max, Number(count));
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    max: () => max,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
