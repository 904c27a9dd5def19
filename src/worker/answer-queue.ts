/**
 * Finished answers on their way out: stored in the sink (if any), then
 * published and acknowledged by the result writer. Answers that finish while
 * MAX_WRITES writes are in flight wait and go together in the next one (group
 * commit): a worker finishing many small batches (long texts go one or two to
 * a batch) then pays one sink statement and one round trip per group, not per
 * batch. An idle queue writes at once, so latency does not change.
 */
import type { Logger } from '../log.js';
import { type Answer, errorAnswer } from './answer.js';
import type { WorkerEvents } from './events.js';
import type { AnswerWriter, WriteReport } from './result-writer.js';
import type { SinkStage } from './sink-stage.js';
import { entryTimeMs } from './streams.js';

/** Two: one write's round trip overlaps the next group's building. */
const MAX_WRITES = 2;
/** Most answers in one write (the publish script splits them into calls of 64). */
const MAX_GROUP = 512;

export interface AnswerQueueDeps {
  writer: AnswerWriter;
  events: WorkerEvents;
  log: Logger;
  sink?: SinkStage;
  /** Forced shutdown: writes in progress give up, the entries stay pending for others. */
  abort: AbortSignal;
  /** The answers are written, fenced or given up on: their entries are no longer held. */
  settled: (answers: Answer[]) => void;
}

export class AnswerQueue {
  private waiting: Answer[] = [];
  private readonly writes = new Set<Promise<void>>();

  constructor(private readonly deps: AnswerQueueDeps) {}

  /** Answers waiting or being written. */
  get busy(): boolean {
    return this.waiting.length > 0 || this.writes.size > 0;
  }

  /** Resolves when some write in flight ends; never while none is (race it with another wake-up). */
  async someWriteEnds(): Promise<void> {
    await Promise.race(this.writes);
  }

  push(answers: Answer[]): void {
    this.waiting.push(...answers);
    this.flush();
  }

  private flush(): void {
    while (this.writes.size < MAX_WRITES && this.waiting.length > 0) {
      const group = this.waiting.splice(0, MAX_GROUP);
      const write = this.write(group).finally(() => {
        this.writes.delete(write);
        this.flush();
      });
      this.writes.add(write);
    }
  }

  private async write(answers: Answer[]): Promise<void> {
    try {
      // A page the sink refuses for its data is answered `invalid`: never acknowledged unstored.
      const refused = await this.deps.sink?.persist(answers, this.deps.abort);
      const final = refused?.size
        ? answers.map((a) => {
            const why = refused.get(a);
            return why === undefined ? a : errorAnswer(a.delivery, 'invalid', why, a);
          })
        : answers;
      this.announce(await this.deps.writer.write(final, this.deps.abort));
    } catch (err) {
      // Only an abandoned (forced) shutdown gets here: the entries stay pending for others.
      this.deps.log.warn(
        { err: (err as Error).message, entries: answers.length },
        'answers left unwritten',
      );
    }
    this.deps.settled(answers);
  }

  private announce(report: WriteReport): void {
    const now = Date.now();
    for (const a of report.written) {
      this.deps.events.emit('answered', {
        model: a.delivery.model,
        stream: a.delivery.stream,
        outcome: a.outcome,
        ...(a.error && { code: a.error.code }),
        latencyMs: now - entryTimeMs(a.delivery.id),
        deliveries: a.delivery.deliveries,
        id: a.delivery.id,
        ...(a.source && { source: a.source }),
      });
    }
    for (const a of report.fenced) {
      this.deps.events.emit('fenced', {
        model: a.delivery.model,
        stream: a.delivery.stream,
        id: a.delivery.id,
      });
    }
  }
}
