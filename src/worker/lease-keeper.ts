/**
 * Where leases are renewed. While this process holds an entry (HeldLedger),
 * its idle time in the group's pending list is reset every
 * `renewEveryMs` (a quarter of CLAIM_IDLE_MS), so no reclaimer takes over
 * work that is merely slow, queued or waiting for its write: an entry's idle
 * time stays under about half of CLAIM_IDLE_MS while we are alive, and
 * passes it only when we are not (crashed, frozen, cut off from Redis).
 *
 * Hand-back (`handBackAll`) is the other end: on a forced stop or a fatal
 * error, whatever is still held is made reclaimable at once, keeping its
 * delivery count, so the survivors answer it within a reclaim sweep instead
 * of after CLAIM_IDLE_MS. Both go through the fenced lease script.
 */
import type { Redis } from 'ioredis';

import type { Logger } from '../log.js';
import type { HeldLedger } from './held-ledger.js';
import { defineLease, handBack, renewLeases } from './lease-script.js';
import { Periodic } from './periodic.js';

/** Handed-back entries look idle this long: older than any CLAIM_IDLE_MS. */
const HAND_BACK_IDLE_MS = 365 * 24 * 3600 * 1000;
/** Ids per script call: keeps one call short. */
const IDS_PER_CALL = 500;

export interface LeaseOptions {
  group: string;
  consumer: string;
  claimIdleMs: number;
}

export class LeaseKeeper {
  private readonly periodic: Periodic;
  readonly renewEveryMs: number;
  /** Entries found taken over by another consumer (their answers will be fenced). */
  lost = 0;

  constructor(
    private readonly redis: Redis,
    private readonly ledger: HeldLedger,
    private readonly options: LeaseOptions,
    private readonly log: Logger,
  ) {
    defineLease(redis);
    this.renewEveryMs = Math.max(25, Math.floor(options.claimIdleMs / 4));
    this.periodic = new Periodic(
      this.renewEveryMs,
      () => this.renew(),
      (err) => log.warn({ err: err.message }, 'lease renewal failed; retrying'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** Renew every held entry not renewed for `renewEveryMs`. Returns how many were renewed. */
  async renew(): Promise<number> {
    const now = Date.now();
    let renewed = 0;
    for (const [stream, entries] of this.ledger.due(now - this.renewEveryMs)) {
      for (let i = 0; i < entries.length; i += IDS_PER_CALL) {
        const part = entries.slice(i, i + IDS_PER_CALL);
        const lost = await renewLeases(this.redis, {
          stream,
          group: this.options.group,
          consumer: this.options.consumer,
          ids: part.map((e) => e.id),
        });
        this.ledger.renewed(part, now);
        renewed += part.length - lost.length;
        if (lost.length) {
          // Answered already (its write landed as we read the ledger) or taken over: the
          // fence in the publish script keeps either from being answered twice.
          this.lost += lost.length;
          this.log.debug({ stream, entries: lost.length }, 'held entries no longer ours');
        }
      }
    }
    return renewed;
  }

  /** Make every held entry reclaimable now (forced stop, fatal error); never throws. */
  async handBackAll(): Promise<number> {
    let handed = 0;
    for (const [stream, entries] of this.ledger.byStream()) {
      for (let i = 0; i < entries.length; i += IDS_PER_CALL) {
        const part = entries.slice(i, i + IDS_PER_CALL);
        try {
          const lost = await handBack(this.redis, {
            stream,
            group: this.options.group,
            consumer: this.options.consumer,
            idleMs: HAND_BACK_IDLE_MS,
            entries: part,
          });
          handed += part.length - lost.length;
        } catch (err) {
          this.log.warn(
            { stream, entries: part.length, err: (err as Error).message },
            'hand-back failed; those entries are reclaimed after CLAIM_IDLE_MS',
          );
        }
      }
    }
    return handed;
  }
}
