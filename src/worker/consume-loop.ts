/**
 * The read loop: XREADGROUP across the served streams, handing entries to
 * the in-flight tracker, and not reading at all while it is full.
 */
import type { Redis } from 'ioredis';

import type { Logger } from '../log.js';
import { backoffMs } from '../redis/connect.js';
import type { WorkerEvents } from './events.js';
import type { InFlight } from './in-flight.js';
import { ensureGroups, readGroup } from './streams.js';

export interface ConsumeOptions {
  group: string;
  consumer: string;
  /** The streams to read now (those whose model is loaded). */
  streams: () => readonly string[];
  modelOf: (stream: string) => string;
  readCount: number;
  blockMs: number;
  /** Most entries held at once (delivered, not yet answered). */
  maxHeld: number;
}

export class ConsumeLoop {
  private stopping = false;
  private done: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly inFlight: InFlight,
    private readonly options: ConsumeOptions,
    private readonly events: WorkerEvents,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.done ??= this.run();
  }

  /** Stop reading; resolves when the current read (at most BLOCK ms) has returned and been handed over. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
  }

  /**
   * Invariant: every entry this loop reads is handed to the in-flight tracker,
   * which either writes its result and acknowledges it, or leaves it pending
   * under our name for the reclaimer of another consumer. Reading pauses while
   * `maxHeld` entries are held, so a saturated pool is never fed more.
   */
  private async run(): Promise<void> {
    const o = this.options;
    let failures = 0;
    while (!this.stopping) {
      await this.inFlight.waitForRoom();
      if (this.stopping) break;
      const room = this.inFlight.room();
      const streams = o.streams();
      if (streams.length === 0) {
        // No model loaded yet: nothing may be read (entries stay in the stream, undelivered).
        await new Promise((r) => setTimeout(r, Math.min(o.blockMs, 500)));
        continue;
      }
      try {
        const deliveries = await readGroup(this.redis, {
          group: o.group,
          consumer: o.consumer,
          count: Math.max(1, Math.min(o.readCount, room)),
          blockMs: o.blockMs,
          streams,
          modelOf: o.modelOf,
        });
        if (failures > 0) this.events.emit('redis', { up: true });
        failures = 0;
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
        await new Promise((r) => setTimeout(r, backoffMs(failures, 100, 5_000)));
      }
    }
  }
}
