/**
 * The read loop, one per lane: XREADGROUP on the interactive streams, and the
 * fair bulk scheduler for the bulk lane, both handing entries to the
 * in-flight tracker. A lane budget (lanes.ts) decides how much each may read:
 * interactive first, bulk at most about a batch per thread while interactive
 * is quiet and never less than its minimum share while it is busy.
 */
import type { Redis } from 'ioredis';

import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';
import { backoffMs } from '../redis/connect.js';
import type { Delivery } from './answer.js';
import { readBulk } from './bulk-scheduler.js';
import type { WorkerEvents } from './events.js';
import type { InFlight } from './in-flight.js';
import { LaneBudget, type LaneState } from './lanes.js';
import { ensureGroups, readGroup } from './streams.js';

export interface BulkLaneOptions {
  /** A non-blocking connection for the scheduler script. */
  redis: Redis;
  keys: Keys;
  /** Models whose bulk lane to read now (those loaded). */
  models: () => readonly string[];
  /** Micro-batches of bulk work held while interactive has no backlog (BULK_IN_FLIGHT_BATCHES). */
  batches: number;
  /** Least fraction of entries read from bulk while it has backlog (BULK_MIN_SHARE). */
  minShare: number;
  /** How often an empty bulk lane is looked at again. */
  idlePollMs: number;
}

export interface ConsumeOptions {
  group: string;
  consumer: string;
  /** The interactive streams to read now (those whose model is loaded). */
  streams: () => readonly string[];
  modelOf: (stream: string) => string;
  readCount: number;
  blockMs: number;
  /** Most entries held at once (delivered, not yet answered). */
  maxHeld: number;
  /** Texts per micro-batch at most (BATCH_SIZE). */
  batchSize: number;
  /** Padded tokens per micro-batch at most (MAX_BATCH_TOKENS). */
  maxBatchTokens: number;
  /** The bulk lane; without it only the interactive streams are read. */
  bulk?: BulkLaneOptions;
}

export class ConsumeLoop {
  private stopping = false;
  private done: Promise<void> | undefined;
  private readonly budget: LaneBudget;
  /** Something that changes what may be read: an answer, a read, stop(). */
  private readonly changed = new Signal();
  private readonly stopped = new Signal();
  /** Each bulk read in flight: `${stream} ${id}` of its entries maybe still held. */
  private bulkReads: string[][] = [];
  /**
   * Moving average of padded tokens per text, to size a full micro-batch
   * (BATCH_SIZE texts, or fewer long ones under MAX_BATCH_TOKENS). Measured
   * per text, not per batch: a lane's reads then never shrink the batches
   * they are sized by (small interactive batches do not make bulk ones small).
   */
  private tokensPerText = 1;
  /** Which model's stream an interactive read starts at (readGroup), in turn. */
  private readTurn = 0;
  private readonly onBatch = (b: { texts: number; paddedTokens: number }) => {
    if (b.texts > 0)
      this.tokensPerText = 0.8 * this.tokensPerText + (0.2 * b.paddedTokens) / b.texts;
  };

  constructor(
    private readonly redis: Redis,
    private readonly inFlight: InFlight,
    private readonly options: ConsumeOptions,
    private readonly events: WorkerEvents,
    private readonly log: Logger,
  ) {
    this.budget = new LaneBudget({
      minShare: options.bulk?.minShare ?? 0,
      readCount: options.readCount,
    });
  }

  start(): void {
    if (this.done) return;
    this.events.on('batch', this.onBatch);
    this.done = Promise.all([this.runInteractive(), this.runBulk(), this.relayRoom()]).then(
      () => undefined,
    );
  }

  /** Stop reading; resolves when the current reads (at most BLOCK ms) have returned and been handed over. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.changed.notify();
    this.stopped.notify();
    await this.done;
    this.events.off('batch', this.onBatch);
  }

  /** Room changes (an answer written, a batch ended) wake the lanes waiting on `changed`. */
  private async relayRoom(): Promise<void> {
    while (!this.stopping) {
      await Promise.race([this.inFlight.changed(), this.stopped.wait(60_000)]);
      this.changed.notify();
    }
  }

  /** What the lane budget decides on, now. */
  private laneState(room: number): LaneState {
    const o = this.options;
    const quantum = Math.max(
      1,
      Math.min(o.batchSize, Math.floor(o.maxBatchTokens / Math.max(1, this.tokensPerText))),
    );
    return {
      room,
      heldRoom: o.maxHeld - this.inFlight.size,
      bulkSlots: (o.bulk?.batches ?? 0) - this.bulkReadsInFlight(),
      quantum,
    };
  }

  /** Wait until the pool has room (a batch finished or an answer was written), or stop(). */
  private async roomOrStop(): Promise<void> {
    if (this.stopping) return;
    await this.stopped.wait(60_000, this.inFlight.waitForRoom());
  }

  /** Wait for a signal or the timeout; not at all once stopping. */
  private pause(signal: Signal, ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : signal.wait(ms);
  }

  /** Bulk reads with an entry still held (answered entries free their read's slot). */
  bulkReadsInFlight(): number {
    this.bulkReads = this.bulkReads.filter((keys) =>
      keys.some((key) => {
        const at = key.indexOf(' ');
        return this.inFlight.holds(key.slice(0, at), key.slice(at + 1));
      }),
    );
    return this.bulkReads.length;
  }

  /**
   * Invariant (both lanes): every entry read is handed to the in-flight
   * tracker, which either writes its result and acknowledges it, or leaves it
   * pending under our name for the reclaimer of another consumer. Reads stop
   * while the pool has no room (InFlight.room()), so a saturated pool is never fed more.
   * Interactive reads are non-blocking while they find entries and block only
   * on empty streams: only then may bulk take more than its minimum share.
   */
  private async runInteractive(): Promise<void> {
    const o = this.options;
    let failures = 0;
    let empty = false;
    while (!this.stopping) {
      const room = this.inFlight.room();
      if (room <= 0) {
        await this.roomOrStop();
        continue;
      }
      const count = this.budget.interactiveCount(this.laneState(room));
      if (count <= 0) {
        await this.pause(this.changed, o.blockMs);
        continue;
      }
      const streams = o.streams();
      if (streams.length === 0) {
        // No model loaded yet: nothing may be read (entries stay in the stream, undelivered).
        await this.pause(this.stopped, Math.min(o.blockMs, 500));
        continue;
      }
      // Reserved before the read: what a read may bring counts against the hold bound
      // while it is in flight, so concurrent reads (lanes, reclaims) never pass it. A
      // blocking read on an empty lane reserves a quarter batch only: it holds its
      // reservation for up to BLOCK_MS, and the reclaimer and bulk need the room meanwhile;
      // the reads after it, non-blocking, take the rest of a burst.
      const parkedCount = Math.max(1, Math.ceil(o.batchSize / 4));
      const reserved = this.inFlight.reserve(empty ? Math.min(count, parkedCount) : count);
      if (reserved === 0) {
        await this.roomOrStop();
        continue;
      }
      this.budget.reading('interactive', reserved, empty);
      // Parked on an empty lane: bulk may use the room meanwhile.
      if (empty) this.changed.notify();
      let got = 0;
      try {
        const deliveries = await readGroup(this.redis, {
          group: o.group,
          consumer: o.consumer,
          count: reserved,
          turn: this.readTurn++,
          ...(empty && { blockMs: o.blockMs }),
          streams,
          modelOf: o.modelOf,
        });
        if (failures > 0) this.events.emit('redis', { up: true });
        failures = 0;
        got = deliveries.length;
        empty = got === 0;
        this.inFlight.accept(deliveries);
      } catch (err) {
        const message = (err as Error).message;
        if (failures++ === 0) this.events.emit('redis', { up: false });
        if (message.startsWith('NOGROUP')) {
          // The stream or group was deleted under us (e.g. FLUSHALL): recreate and carry on.
          this.log.warn({ err: message }, 'consumer group missing, recreating');
          await ensureGroups(this.redis, streams, o.group).catch(() => undefined);
        } else {
          this.log.warn({ err: message, attempt: failures }, 'read failed, retrying');
        }
        await this.pause(this.stopped, backoffMs(failures, 100, 5_000));
      } finally {
        this.inFlight.unreserve(reserved);
        this.budget.read('interactive', got);
        this.changed.notify();
      }
    }
  }

  /**
   * The bulk lane: one fair read (bulk-scheduler.ts) of one model at a time,
   * models in turn, about a batch per read. An empty lane is looked at again
   * every `idlePollMs`.
   */
  private async runBulk(): Promise<void> {
    const b = this.options.bulk;
    if (!b) return;
    let turn = 0;
    let failures = 0;
    while (!this.stopping) {
      const models = b.models();
      const count = this.budget.bulkCount(this.laneState(this.inFlight.room()));
      if (models.length === 0 || count <= 0) {
        // Woken by an answer (a bulk slot frees), an interactive read or park, or stop().
        await this.pause(this.changed, b.idlePollMs);
        continue;
      }
      const reserved = this.inFlight.reserve(count);
      if (reserved === 0) {
        await this.pause(this.changed, b.idlePollMs);
        continue;
      }
      this.budget.reading('bulk', reserved);
      let got = 0;
      let more = false;
      try {
        for (let i = 0; i < models.length && got === 0; i++) {
          const model = models[turn++ % models.length] as string;
          const read = await readBulk(b.redis, b.keys, {
            model,
            consumer: this.options.consumer,
            count: reserved,
          });
          more ||= read.more;
          got += read.deliveries.length;
          this.handOver(read.deliveries);
        }
        failures = 0;
      } catch (err) {
        this.log.warn(
          { err: (err as Error).message, attempt: ++failures },
          'bulk read failed, retrying',
        );
        await this.pause(this.stopped, backoffMs(failures, 100, 5_000));
      } finally {
        this.inFlight.unreserve(reserved);
        this.budget.read('bulk', got);
        this.changed.notify();
      }
      if (got === 0 && !more && failures === 0) await this.pause(this.stopped, b.idlePollMs);
    }
  }

  private handOver(deliveries: Delivery[]): void {
    if (deliveries.length > 0) this.bulkReads.push(deliveries.map((d) => `${d.stream} ${d.id}`));
    this.inFlight.accept(deliveries);
  }
}

/** Wakes every waiter on notify(); a wait also ends after its timeout. */
class Signal {
  private readonly waiters = new Set<() => void>();

  notify(): void {
    const woken = [...this.waiters];
    this.waiters.clear();
    for (const wake of woken) wake();
  }

  wait(timeoutMs: number, or?: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      this.waiters.add(wake);
      or?.then(wake, wake);
    });
  }
}
