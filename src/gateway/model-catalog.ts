/**
 * Which models the gateway offers. With `MODELS` set, exactly its names
 * (the chart gives the gateway the workers' table, so the two cannot
 * disagree). Without it, the models the fleet serves: every interactive
 * request stream `{p}:req:{model}` on which the consumer group exists (a
 * worker has started on it), found by SCAN and cached CACHE_MS so a
 * request costs no Redis call. Also remembers each model's vector
 * dimension once seen, to refuse a `dimensions` it cannot give up front,
 * and, from MODELS, the shorter sizes a model's vectors may be cut to
 * (`;matryoshka=256|512`) and whether they are
 * normalised.
 */
import type { Redis } from 'ioredis';

import { groupRow, toRecord } from '../client/backlog.js';
import { StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';
import { MODEL_NAME, type ModelSpec, parseModelTable } from '../models/table.js';
import { scanKeys } from '../status/scan.js';

const CACHE_MS = 5_000;

export class ModelCatalog {
  private readonly fixed: string[] | undefined;
  /** MODELS entries with a ref (a bare name says nothing of its options). */
  private readonly specs: Map<string, ModelSpec>;
  private cached: { at: number; models: string[] } | undefined;
  private refreshing: Promise<string[]> | undefined;
  private readonly dims = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    modelsSetting: string,
  ) {
    const names = modelNames(modelsSetting);
    this.fixed = names.length > 0 ? names : undefined;
    const withRefs = modelsSetting.split(',').filter((item) => item.includes('='));
    this.specs = new Map(parseModelTable(withRefs.join(',')).map((s) => [s.name, s]));
  }

  /** Sizes the model's vectors may be cut to besides their full size (MODELS `matryoshka`). */
  shorterSizes(model: string): readonly number[] {
    return this.specs.get(model)?.matryoshka ?? [];
  }

  /** Whether the model's vectors are L2-normalised (then a cut one is normalised again). */
  normalizes(model: string): boolean {
    return this.specs.get(model)?.normalize !== false;
  }

  async list(): Promise<string[]> {
    if (this.fixed) return this.fixed;
    if (this.cached && Date.now() - this.cached.at < CACHE_MS) return this.cached.models;
    this.refreshing ??= this.discover().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * The answer without Redis when there is one (MODELS set, or a fresh scan
   * that lists the model): undefined when only `has` can tell. Lets a
   * request skip a wait (and its timer) on the common path.
   */
  hasNow(model: string): boolean | undefined {
    if (!MODEL_NAME.test(model)) return false;
    if (this.fixed) return this.fixed.includes(model);
    const fresh = this.cached && Date.now() - this.cached.at < CACHE_MS;
    return fresh && this.cached?.models.includes(model) ? true : undefined;
  }

  async has(model: string): Promise<boolean> {
    if (!MODEL_NAME.test(model)) return false;
    if ((await this.list()).includes(model)) return true;
    if (this.fixed) return false;
    // Not in the last scan: its own stream is asked (one command), not the keyspace
    // scanned again, so a model whose worker just started is served at once and a
    // client retrying a misspelt one in a loop costs Redis no SCAN per request.
    const served =
      (await groupRow(this.redis, this.keys.request(model), this.keys.group)) !== undefined;
    if (served) this.cached?.models.push(model);
    return served;
  }

  dimension(model: string): number | undefined {
    return this.dims.get(model);
  }

  noteDimension(model: string, dim: number): void {
    this.dims.set(model, dim);
  }

  private async discover(): Promise<string[]> {
    const head = this.keys.request('');
    const found = new Set<string>();
    // On every node: a Cluster's SCAN sees one node's keys only.
    for (const key of await scanKeys(this.redis, this.keys.request('*'), 'stream')) {
      const model = key.slice(head.length);
      if (MODEL_NAME.test(model)) found.add(model);
    }
    const models = [...found].sort();
    const pipe = this.redis.pipeline();
    for (const m of models) pipe.xinfo('GROUPS', this.keys.request(m));
    const groups = (await pipe.exec()) ?? [];
    const served = models.filter((_, i) => {
      const [err, rows] = groups[i] ?? [];
      return !err && (rows as unknown[][]).map(toRecord).some((g) => g.name === this.keys.group);
    });
    this.cached = { at: Date.now(), models: served };
    return served;
  }
}

/** The names of a MODELS value: `a=ref;opt=v,b` -> [a, b]. */
function modelNames(table: string): string[] {
  const names = table
    .split(',')
    .map((item) => (item.split(';')[0] ?? '').split('=')[0]?.trim() ?? '')
    .filter(Boolean);
  const bad = names.find((n) => !MODEL_NAME.test(n));
  if (bad)
    throw new StreambedError(
      'config',
      `MODELS: model name "${bad}" must be 1-32 chars of [a-z0-9_-]`,
    );
  return [...new Set(names)];
}
