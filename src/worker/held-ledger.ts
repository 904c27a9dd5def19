/**
 * The ledger of what this process holds: every entry from its delivery until
 * its answer is written (or fenced), with the delivery count it came with,
 * when it was taken and when its lease was last renewed. Leases
 * (lease-keeper.ts) and hand-back work on this and nothing else; reads
 * reserve room here before they go to Redis, so what the process holds never
 * exceeds `maxHeld` however many streams, lanes and reclaims read at once.
 */
import type { Delivery } from './answer.js';

export interface HeldEntry {
  stream: string;
  id: string;
  /** Delivery count when we took it (1 on a first read, XPENDING's count + 1 on a reclaim). */
  deliveries: number;
  heldSince: number;
  /** Last time Redis' idle clock for it was reset (delivery, or a lease renewal). */
  renewedAt: number;
}

export class HeldLedger {
  private readonly held = new Map<string, HeldEntry>();
  /** Room promised to reads in flight: they may bring this many more entries. */
  private reservedCount = 0;
  /**
   * Room the reclaimer asked for and did not get: kept from ordinary reads as
   * it frees, so a busy worker with a backlog still takes over a dead
   * worker's (older) entries within a sweep or two instead of after the
   * backlog is drained.
   */
  private wantedByReclaim = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly maxHeld: number) {}

  get size(): number {
    return this.held.size;
  }

  get reserved(): number {
    return this.reservedCount;
  }

  /** Entries an ordinary read may still bring without passing `maxHeld` (after what reclaim wants). */
  get free(): number {
    return Math.max(0, this.freeForReclaim - this.wantedByReclaim);
  }

  private get freeForReclaim(): number {
    return Math.max(0, this.maxHeld - this.held.size - this.reservedCount);
  }

  has(stream: string, id: string): boolean {
    return this.held.has(keyOf(stream, id));
  }

  /** Take an entry; false when it is already held (our own, delivered again). */
  add(d: Delivery, now = Date.now()): boolean {
    const key = keyOf(d.stream, d.id);
    if (this.held.has(key)) return false;
    this.held.set(key, {
      stream: d.stream,
      id: d.id,
      deliveries: d.deliveries,
      heldSince: now,
      renewedAt: now,
    });
    return true;
  }

  delete(stream: string, id: string): void {
    if (this.held.delete(keyOf(stream, id))) this.notify();
  }

  /**
   * Promise room to a read before it goes to Redis: at most `free`. The
   * caller gives back the promise with `unreserve` once the read's entries
   * are added (or the read failed).
   */
  reserve(count: number): number {
    const granted = Math.max(0, Math.min(count, this.free));
    this.reservedCount += granted;
    return granted;
  }

  /**
   * The reclaimer's reservation: it may take room kept for it. What it asked
   * for and did not get is kept from ordinary reads until its next call.
   */
  reserveForReclaim(count: number): number {
    const granted = Math.max(0, Math.min(count, this.freeForReclaim));
    this.reservedCount += granted;
    this.wantedByReclaim = count - granted;
    return granted;
  }

  unreserve(count: number): void {
    this.reservedCount = Math.max(0, this.reservedCount - count);
    this.notify();
  }

  /** Held entries whose lease was last renewed before `cutoff`, by stream. */
  due(cutoff: number): Map<string, HeldEntry[]> {
    const out = new Map<string, HeldEntry[]>();
    for (const e of this.held.values()) {
      if (e.renewedAt > cutoff) continue;
      const list = out.get(e.stream) ?? [];
      list.push(e);
      out.set(e.stream, list);
    }
    return out;
  }

  /** Every held entry, by stream (hand-back). */
  byStream(): Map<string, HeldEntry[]> {
    return this.due(Infinity);
  }

  renewed(entries: readonly HeldEntry[], at: number): void {
    for (const e of entries) e.renewedAt = at;
  }

  /** Resolves at the next change of what is held or reserved (or a notify()). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wake whoever waits on changed(): something else that decides room changed (a batch ended). */
  notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

function keyOf(stream: string, id: string): string {
  return `${stream} ${id}`;
}
