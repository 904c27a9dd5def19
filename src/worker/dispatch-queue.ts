/**
 * Texts read but not yet handed to the pool. The worker reads about a batch
 * ahead of its free pool slots, so when a slot frees the packer chooses from
 * a sorted window of texts instead of the three or four of one small read
 * (BENCHMARKS.md, "Profile": reads sized to free slots gave 43% padding on
 * mixed lengths). The next batch is the one holding the oldest text, so no
 * text waits behind more than a window of later arrivals; interactive texts
 * always go before bulk ones. A batch that could still grow waits while every
 * thread is busy: more texts may arrive to fill it before a thread is free.
 * Bulk batches go to the pool only for an idle thread, so an interactive
 * arrival never queues behind bulk work that has not started.
 */
import { canGrow, packBatches, type PackLimits, type Sized } from './batcher.js';

export interface Queued extends Sized {
  /** Arrival order. */
  seq: number;
  /** From an interactive stream: dispatched before any bulk text. */
  urgent: boolean;
}

export class DispatchQueue<T extends Queued> {
  private readonly byModel = new Map<string, T[]>();
  private count = 0;

  /** `limitsOf(model)`: how that model's texts may be packed. */
  constructor(private readonly limitsOf: (model: string) => PackLimits) {}

  /** Texts waiting, all models. */
  get size(): number {
    return this.count;
  }

  push(model: string, items: readonly T[]): void {
    if (items.length === 0) return;
    const list = this.byModel.get(model) ?? [];
    list.push(...items);
    this.byModel.set(model, list);
    this.count += items.length;
  }

  /**
   * Take the next micro-batch: the packing of its model's waiting texts that
   * holds the oldest urgent (else oldest) text; undefined if there is none or
   * it could still grow and `partial` (a thread would idle without it) is false,
   * or it is bulk work and `bulk` is false.
   */
  take(partial = true, bulk = true): { model: string; batch: T[] } | undefined {
    let model: string | undefined;
    let first: T | undefined;
    for (const [name, list] of this.byModel) {
      for (const item of list) if (!first || before(item, first)) [model, first] = [name, item];
    }
    if (model === undefined || !first || (!bulk && !first.urgent)) return undefined;
    const list = this.byModel.get(model) as T[];
    const candidates = list.filter((i) => i.urgent === first.urgent);
    const limits = this.limitsOf(model);
    const packed = packBatches(candidates, limits);
    const at = packed.findIndex((b) => b.includes(first));
    const batch = packed[at] as T[];
    // A batch the packer closed before a longer text cannot take that text; the last one may grow.
    if (!partial && at === packed.length - 1 && canGrow(batch, limits)) return undefined;
    const taken = new Set(batch);
    const rest = list.filter((i) => !taken.has(i));
    if (rest.length > 0) this.byModel.set(model, rest);
    else this.byModel.delete(model);
    this.count -= batch.length;
    return { model, batch };
  }

  /** Drop everything (forced shutdown: the entries stay pending for another consumer). */
  clear(): void {
    this.byModel.clear();
    this.count = 0;
  }
}

function before(a: Queued, b: Queued): boolean {
  return a.urgent !== b.urgent ? a.urgent : a.seq < b.seq;
}
