/**
 * The model backend seam (src/worker/backends/): which backend a ref selects,
 * and the router the dispatcher talks to, with in-memory fake backends.
 */
import { describe, expect, it } from 'vitest';

import { parseModelTable } from '../src/models/table.js';
import type { BatchRun, EmbedBackend } from '../src/worker/backend.js';
import { BACKENDS, kindOf } from '../src/worker/backends/registry.js';
import { RouterBackend } from '../src/worker/backends/router.js';
import type { LoadedModel } from '../src/worker/pool.js';

class Fake implements EmbedBackend {
  readonly loaded: string[] = [];
  readonly sent: string[] = [];
  closed = false;
  constructor(
    readonly threads: number,
    private readonly why: string[] = [],
  ) {}
  async load(spec: LoadedModel['spec']): Promise<LoadedModel> {
    this.loaded.push(spec.name);
    return { spec, dim: 3, maxTokens: 8, loadMs: 0 };
  }
  embed(model: string): BatchRun {
    this.sent.push(model);
    return {
      result: new Promise(() => undefined),
      startedAt: () => undefined,
      uninterruptible: () => false,
    };
  }
  reasons(): string[] {
    return this.why;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('backend registry', () => {
  it('sends openai: refs to the HTTP backend and every other ref to the thread pool', () => {
    const specs = parseModelTable(
      'a=openai:text-embedding-3-small,b=fixture:4,c=noop:8,d=Xenova/all-MiniLM-L6-v2',
      '/srv',
    );
    expect(specs.map((s) => kindOf(s).name)).toEqual(['openai', 'threads', 'threads', 'threads']);
    // The catch-all is last, so a new scheme added above it wins for its refs.
    expect(BACKENDS.at(-1)?.name).toBe('threads');
  });

  it('routes each model to the backend that loaded it, sums their slots, gathers reasons, closes all', async () => {
    const [remote, threads] = [new Fake(4, ['model a: provider refused (HTTP 401)']), new Fake(2)];
    const specs = parseModelTable('a=openai:m,b=fixture:4', '/srv');
    const router = new RouterBackend([remote, threads], (s) => (s.remote ? remote : threads));
    expect(router.threads).toBe(6);
    for (const s of specs) await router.load(s);
    router.embed('a', ['x']);
    router.embed('b', ['y']);
    expect([remote.loaded, remote.sent, threads.loaded, threads.sent]).toEqual([
      ['a'],
      ['a'],
      ['b'],
      ['b'],
    ]);
    await expect(router.embed('nope', ['z']).result).rejects.toMatchObject({
      code: 'model_load_failed',
    });
    expect(router.reasons()).toEqual(['model a: provider refused (HTTP 401)']);
    await router.close();
    expect(remote.closed && threads.closed).toBe(true);
  });
});
