/**
 * How a worker splits its read capacity between the lanes (docs/design.md,
 * "Lanes"). Pure bookkeeping, no I/O: the consume loop asks it
 * how many entries each lane may read now and tells it what each read got.
 *
 * - Interactive first: interactive reads may use all the room that bulk is
 *   not owed, and bulk takes more than it is owed only while the interactive
 *   lane is parked in a blocking read (nothing waiting there).
 * - Even then bulk has at most `bulkSlots` reads of a batch each in flight
 *   (BULK_IN_FLIGHT_BATCHES, default one per thread), so an interactive
 *   entry arriving finds at most one bulk batch ahead of it on each thread.
 * - Bulk never starves: it gets at least `minShare` of the entries read. A
 *   deficit counter grows by `minShare` per entry read in either lane while
 *   bulk has backlog and shrinks by one per bulk entry; bulk is owed once
 *   the counter reaches a `quantum` (a batch), so its batches stay full. The
 *   counter is clamped, so neither lane banks more than about a batch of
 *   credit. A bulk lane that looked empty is probed every poll interval.
 */
export interface LaneOptions {
  /** Fraction of entries bulk gets at least while it has backlog (0 < share < 1). */
  minShare: number;
  /** Most entries per read. */
  readCount: number;
}

/** The state a decision depends on, read fresh for each one. */
export interface LaneState {
  /** Entries the worker may read now, all lanes (InFlight.room(): free batch slots of the pool). */
  room: number;
  /** Entries the worker may still hold (MAX held minus held). */
  heldRoom: number;
  /** Bulk reads (about a batch each) the worker may still have in flight. */
  bulkSlots: number;
  /** A full micro-batch, in entries: the size of a bulk read. */
  quantum: number;
}

export class LaneBudget {
  /** Bulk entries owed to reach its minimum share (negative: bulk is ahead). */
  private deficit = 0;
  /** The interactive lane is parked in a blocking read: it has nothing waiting. */
  private interactiveIdle = false;
  /** The last bulk read found entries (assumed at start). */
  private bulkBacklogged = true;
  /** Entries asked for by the bulk read in progress. */
  private pendingBulk = 0;
  /** Last quantum seen: the clamp of the deficit. */
  private quantum = 1;

  constructor(private readonly o: LaneOptions) {}

  /** Entries the bulk lane may read now. */
  bulkCount(s: LaneState): number {
    if (!this.interactiveIdle) {
      // Interactive may have work (it is reading, or waiting for room): bulk gets what it is owed.
      if (this.bulkBacklogged)
        return Math.max(0, Math.min(s.room - this.pendingBulk, this.o.readCount, this.owed(s)));
      // Bulk looked empty: probe it (the loop waits a poll interval after an empty read). A
      // probe ignores the pool's room, which a busy interactive lane would always take first.
      return this.pendingBulk > 0
        ? 0
        : Math.max(0, Math.min(s.heldRoom, this.o.readCount, s.quantum));
    }
    // Interactive is parked on an empty lane: a full batch per free bulk slot. Bulk's own
    // slots, not the pool's room, bound it: at most `bulkSlots` bulk batches are ever in flight.
    if (s.bulkSlots <= 0 || this.pendingBulk > 0) return 0;
    return Math.max(0, Math.min(s.heldRoom, this.o.readCount, Math.max(s.quantum, this.owed(s))));
  }

  /**
   * Entries the interactive lane may read now: all the room but what bulk is
   * owed. A blocking interactive read keeps its count while bulk fills the
   * room meanwhile, so an arrival can overshoot the room by that count once;
   * bulk then has at most `bulkSlots` batches in flight, so the queue stays short.
   */
  interactiveCount(s: LaneState): number {
    const room = s.room - this.pendingBulk;
    return Math.max(0, Math.min(this.o.readCount, room - Math.min(room, this.owed(s))));
  }

  /** A read of `asked` entries is starting; `blocking`: an interactive read that waits for arrivals. */
  reading(lane: 'interactive' | 'bulk', asked: number, blocking = false): void {
    if (lane === 'bulk') this.pendingBulk = asked;
    else this.interactiveIdle = blocking;
  }

  /** A read of `asked` entries returned `got` (0 on failure). */
  read(lane: 'interactive' | 'bulk', got: number): void {
    const share = this.o.minShare;
    if (lane === 'bulk') {
      this.pendingBulk = 0;
      this.bulkBacklogged = got > 0;
      this.deficit += share * got - got;
    } else {
      this.interactiveIdle = false;
      // Credit accrues only while bulk has something to claim it with.
      if (this.bulkBacklogged) this.deficit += share * got;
    }
    // Neither lane banks more than about a batch of credit.
    this.deficit = Math.min(2 * this.quantum, Math.max(-this.quantum, this.deficit));
  }

  /** What bulk is owed now: nothing until a whole quantum, so its batches stay full. */
  private owed(s: LaneState): number {
    this.quantum = Math.max(1, s.quantum);
    return this.bulkBacklogged && this.deficit >= this.quantum ? Math.ceil(this.deficit) : 0;
  }

  /** For logs and tests. */
  state(): { deficit: number; interactiveIdle: boolean; bulkBacklogged: boolean } {
    return {
      deficit: this.deficit,
      interactiveIdle: this.interactiveIdle,
      bulkBacklogged: this.bulkBacklogged,
    };
  }
}
