import { describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { SOLO_TOKENS } from '../src/worker/batcher.js';
import { DispatchQueue, type Queued } from '../src/worker/dispatch-queue.js';

interface Text extends Queued {
  name: string;
}

function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

const limits = { maxBatchTokens: 512, batchSize: 32, soloTokens: SOLO_TOKENS };
const limitsOf = () => limits;
const t = (seq: number, tokens: number): Text => ({ name: `t${seq}`, seq, urgent: false, tokens });

describe('dispatch queue', () => {
  it('hands out every text exactly once, each batch within the limits and holding the oldest text', () => {
    const r = rng(3);
    const q = new DispatchQueue<Text>(limitsOf);
    let seq = 0;
    const pushed: string[] = [];
    const taken: string[] = [];
    // Texts arrive in reads of varying size while batches are taken, as in the worker.
    for (let round = 0; round < 60; round++) {
      const read = Array.from({ length: 1 + Math.floor(r() * 12) }, () => {
        const t = {
          name: `t${seq}`,
          seq: seq++,
          urgent: false,
          tokens: 2 + Math.floor(r() ** 3 * 510),
        };
        pushed.push(t.name);
        return t;
      });
      q.push(r() < 0.5 ? 'a' : 'b', read);
      for (let k = 0; k < 1 + (round % 2); k++) {
        const waiting = pushed.filter((n) => !taken.includes(n)).map((n) => Number(n.slice(1)));
        const oldestWaiting = Math.min(...waiting);
        const next = q.take();
        if (!next) break;
        const { batch } = next;
        const oldest = Math.min(...batch.map((t) => t.seq));
        expect(batch.length).toBeLessThanOrEqual(32);
        if (batch.length > 1)
          expect(batch.length * Math.max(...batch.map((t) => t.tokens))).toBeLessThanOrEqual(512);
        // The oldest text waiting (urgent or not, any model) is always in the batch taken.
        expect(oldest).toBe(oldestWaiting);
        taken.push(...batch.map((t) => t.name));
      }
    }
    for (let next = q.take(); next; next = q.take()) taken.push(...next.batch.map((t) => t.name));
    expect(q.size).toBe(0);
    expect([...taken].sort()).toEqual([...pushed].sort());
  });

  it('takes the batch of the oldest text next, so a text waits behind at most a window', () => {
    const q = new DispatchQueue<Text>(limitsOf);
    q.push('m', [t(0, 300), t(1, 20), t(2, 21), t(3, 22), t(4, 310)]);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t0']);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t1', 't2', 't3']);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t4']);
    expect(q.take()).toBeUndefined();
  });

  it('holds back a batch that could still grow unless a thread would idle', () => {
    const q = new DispatchQueue<Text>(limitsOf);
    q.push('m', [t(0, 16), t(1, 16)]);
    expect(q.take(false)).toBeUndefined();
    q.push(
      'm',
      Array.from({ length: 30 }, (_, i) => t(2 + i, 16)),
    );
    // 32 texts now: a full batch goes whether or not a thread is idle.
    expect(q.take(false)?.batch).toHaveLength(32);
    q.push('m', [t(40, 16), t(41, 200), t(42, 100)]);
    // The 16-token text's batch was closed by the longer ones: it cannot grow by them.
    expect(q.take(false)?.batch.map((x) => x.name)).toEqual(['t40']);
    // Over SOLO_TOKENS a text runs alone: its batch cannot grow either.
    expect(q.take(false)?.batch.map((x) => x.name)).toEqual(['t41']);
    expect(q.take(false)).toBeUndefined();
    expect(q.take(true)?.batch.map((x) => x.name)).toEqual(['t42']);
  });

  it("packs each model by its own rules: long texts run alone only where the model's limits say so", () => {
    const q = new DispatchQueue<Text>((model) =>
      model === 'real' ? limits : { maxBatchTokens: 512, batchSize: 32 },
    );
    q.push('real', [t(0, 200), t(1, 200)]);
    q.push('noop', [t(2, 200), t(3, 200)]);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t0']);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t1']);
    expect(q.take()?.batch.map((x) => x.name)).toEqual(['t2', 't3']);
  });

  it('puts interactive texts first, never in a batch with bulk ones', () => {
    const q = new DispatchQueue<Text>(limitsOf);
    const bulk = Array.from({ length: 40 }, (_, i) => ({
      name: `b${i}`,
      seq: i,
      urgent: false,
      tokens: 16,
    }));
    q.push('m', bulk);
    q.push('m', [{ name: 'i0', seq: 100, urgent: true, tokens: 16 }]);
    q.push('n', [{ name: 'i1', seq: 101, urgent: true, tokens: 16 }]);
    // With every thread busy only interactive work may queue in the pool.
    expect(q.take(true, false)).toEqual({
      model: 'm',
      batch: [expect.objectContaining({ name: 'i0' })],
    });
    expect(q.take()).toEqual({ model: 'n', batch: [expect.objectContaining({ name: 'i1' })] });
    expect(q.take(true, false)).toBeUndefined();
    const next = q.take();
    expect(next?.batch).toHaveLength(32);
    expect(next?.batch.every((x) => !x.urgent)).toBe(true);
    expect(q.size).toBe(8);
  });
});

describe('lane of a request stream', () => {
  it('tells interactive from plain and per-source bulk streams', () => {
    const k = keys('p:x');
    expect(k.laneOf(k.request('m'))).toBe('interactive');
    expect(k.laneOf(k.request('m', 'bulk'))).toBe('bulk');
    expect(k.laneOf(k.bulkSource('m', 'crawl:1'))).toBe('bulk');
    expect(k.laneOf(k.bulkSource('bulk', 'src'))).toBe('bulk');
    expect(k.laneOf(k.request('bulk'))).toBe('interactive');
  });
});
