/**
 * Crash recovery: on its own timer, takes over entries that sat idle longer
 * than CLAIM_IDLE_MS on any other consumer (XPENDING IDLE, then XCLAIM),
 * dead-letters those past MAX_DELIVERIES and hands the rest to the in-flight
 * tracker like freshly read entries. Live workers renew their leases
 * (lease-keeper.ts), so only a dead, frozen or cut-off worker's entries
 * pass CLAIM_IDLE_MS, and a delivery count above 1 means a crash. It walks every bulk
 * stream too (the per-source ones from their registry), and re-schedules bulk
 * sources whose backlog is outside the fair scheduler.
 */
import type { Redis } from 'ioredis';

import type { Logger } from '../log.js';
import type { WorkerEvents } from './events.js';
import type { InFlight } from './in-flight.js';
import { Periodic } from './periodic.js';
import { toDeliveries } from './streams.js';

export interface ReclaimOptions {
  group: string;
  consumer: string;
  /** The streams to sweep now (those whose model is loaded; per-source bulk streams come from a registry). */
  streams: () => readonly string[] | Promise<readonly string[]>;
  /** Also on each sweep: put back in the bulk schedule sources with stranded backlog (bulk-scheduler.ts). */
  heal?: () => Promise<number>;
  modelOf: (stream: string) => string;
  claimIdleMs: number;
  intervalMs: number;
  maxDeliveries: number;
  maxHeld: number;
}

export class Reclaimer {
  private readonly periodic: Periodic;

  constructor(
    private readonly redis: Redis,
    private readonly inFlight: InFlight,
    private readonly options: ReclaimOptions,
    private readonly events: WorkerEvents,
    private readonly log: Logger,
  ) {
    this.periodic = new Periodic(
      options.intervalMs,
      () => this.sweep(),
      (err) => log.warn({ err: err.message }, 'reclaim sweep failed'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass over every stream; returns how many entries were taken over. */
  async sweep(): Promise<number> {
    // What the last sweep could not take is asked again below, stream by stream.
    this.inFlight.reserveForReclaim(0);
    let total = 0;
    for (const stream of await this.options.streams()) {
      try {
        total += await this.sweepStream(stream);
      } catch (err) {
        // A per-source bulk stream gets its group on its first scheduled read: none yet is normal.
        if (!(err as Error).message.startsWith('NOGROUP')) throw err;
      }
      if (this.periodic.stopped) break;
    }
    const healed = await this.options.heal?.();
    if (healed)
      this.log.info({ sources: healed }, 'bulk sources with stranded backlog rescheduled');
    return total;
  }

  /**
   * Pending entries idle past CLAIM_IDLE_MS, found with `XPENDING ... IDLE`
   * and taken with `XCLAIM` (which checks the idle time again, atomically, so
   * an owner renewing its lease at that moment keeps the entry). Entries this
   * process holds are skipped: a live holder's lease keeps them fresh, and we
   * never take over our own work (that would count a delivery for slowness).
   */
  private async sweepStream(stream: string): Promise<number> {
    const o = this.options;
    let start = '-';
    let total = 0;
    for (;;) {
      const rows = (await this.redis.xpending(
        stream,
        o.group,
        'IDLE',
        o.claimIdleMs,
        start,
        '+',
        SCAN_COUNT,
      )) as Array<[string, string, number, number]>;
      if (rows.length === 0) break;
      start = `(${rows[rows.length - 1]?.[0]}`;
      const candidates = rows.filter(([id]) => !this.inFlight.holds(stream, id));
      if (candidates.length > 0) {
        // Ahead of ordinary reads: what is not granted now is kept for the next sweep.
        const granted = this.inFlight.reserveForReclaim(candidates.length);
        if (granted === 0) return total;
        try {
          total += await this.claim(stream, candidates.slice(0, granted));
        } finally {
          this.inFlight.unreserve(granted);
        }
        if (granted < candidates.length) return total;
      }
      if (rows.length < SCAN_COUNT || this.periodic.stopped) break;
    }
    return total;
  }

  private async claim(
    stream: string,
    rows: Array<[string, string, number, number]>,
  ): Promise<number> {
    const o = this.options;
    const claimed = (await this.redis.callBuffer(
      'XCLAIM',
      stream,
      o.group,
      o.consumer,
      String(o.claimIdleMs),
      ...rows.map(([id]) => id),
    )) as Array<[Buffer, Buffer[] | null]>;
    // XCLAIM adds one to the count XPENDING showed; an entry renewed meanwhile is not returned.
    const counts = new Map(rows.map(([id, , , count]) => [id, Number(count) + 1]));
    const deliveries = toDeliveries(
      stream,
      o.modelOf(stream),
      claimed,
      (id) => counts.get(id) ?? 1,
    );
    if (deliveries.length === 0) return 0;
    const over = deliveries.filter((d) => d.deliveries > o.maxDeliveries);
    const retry = deliveries.filter((d) => d.deliveries <= o.maxDeliveries);
    if (over.length) {
      this.inFlight.reject(
        over,
        'max_deliveries',
        `delivered ${o.maxDeliveries}+ times without an answer`,
      );
    }
    this.inFlight.accept(retry);
    this.events.emit('reclaimed', { model: o.modelOf(stream), stream, count: deliveries.length });
    const byDeliveryCount: Record<number, number> = {};
    for (const d of deliveries)
      byDeliveryCount[d.deliveries] = (byDeliveryCount[d.deliveries] ?? 0) + 1;
    const from = [...new Set(rows.map(([, consumer]) => consumer))];
    this.log.info(
      { stream, reclaimed: deliveries.length, deadLettered: over.length, byDeliveryCount, from },
      'reclaimed idle entries',
    );
    return deliveries.length;
  }
}

/** Pending entries looked at per XPENDING call. */
const SCAN_COUNT = 100;
