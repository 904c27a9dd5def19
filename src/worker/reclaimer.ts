/**
 * Crash recovery: on its own timer, takes over entries that sat idle longer
 * than CLAIM_IDLE_MS on any consumer (XAUTOCLAIM), reads their delivery
 * counts (XPENDING), dead-letters those past MAX_DELIVERIES and hands the rest
 * to the in-flight tracker like freshly read entries. It walks every bulk
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

  private async sweepStream(stream: string): Promise<number> {
    const o = this.options;
    let cursor = '0-0';
    let total = 0;
    do {
      const room = this.inFlight.room();
      if (room <= 0) break;
      const [next, entries] = (await this.redis.callBuffer(
        'XAUTOCLAIM',
        stream,
        o.group,
        o.consumer,
        String(o.claimIdleMs),
        cursor,
        'COUNT',
        String(Math.min(room, 100)),
      )) as [Buffer, Array<[Buffer, Buffer[] | null]>, Buffer[]];
      cursor = next.toString();
      // Our own entries can come back here when a batch runs long: we still hold them.
      const fresh = entries.filter(([id]) => !this.inFlight.holds(stream, id.toString()));
      if (fresh.length === 0) continue;
      const counts = await this.deliveryCounts(
        stream,
        fresh.map(([id]) => id.toString()),
      );
      const deliveries = toDeliveries(
        stream,
        o.modelOf(stream),
        fresh,
        (id) => counts.get(id) ?? 1,
      );
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
      total += deliveries.length;
      this.events.emit('reclaimed', { model: o.modelOf(stream), stream, count: deliveries.length });
      const byDeliveryCount: Record<number, number> = {};
      for (const d of deliveries)
        byDeliveryCount[d.deliveries] = (byDeliveryCount[d.deliveries] ?? 0) + 1;
      this.log.info(
        { stream, reclaimed: deliveries.length, deadLettered: over.length, byDeliveryCount },
        'reclaimed idle entries',
      );
    } while (cursor !== '0-0' && !this.periodic.stopped);
    return total;
  }

  private async deliveryCounts(stream: string, ids: string[]): Promise<Map<string, number>> {
    const sorted = [...ids].sort(compareIds);
    const rows = (await this.redis.xpending(
      stream,
      this.options.group,
      sorted[0] as string,
      sorted[sorted.length - 1] as string,
      ids.length * 2 + 100,
      this.options.consumer,
    )) as Array<[string, string, number, number]>;
    return new Map(rows.map(([id, , , count]) => [id, Number(count)]));
  }
}

function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  return am === bm ? (as < bs ? -1 : as > bs ? 1 : 0) : am < bm ? -1 : 1;
}
