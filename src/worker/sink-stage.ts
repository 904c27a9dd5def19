/**
 * The worker's side of the optional vector sink: before compute, look up
 * chunks whose (source, id, chunk) already hold the same content hash under
 * this model's reference (dedupe); before the result is published, upsert the
 * new vectors, retrying with jittered backoff while the sink is down, so an
 * entry is acknowledged only after its vectors are stored (guarantee 1).
 */
import type { Logger } from '../log.js';
import { backoffMs } from '../redis/connect.js';
import { type Sink, sinkKey, type SinkRow } from '../sink/index.js';
import type { Answer } from './answer.js';

export interface DedupeCandidate {
  source: string;
  id: string;
  hashes: string[];
}

export class SinkStage {
  private outage = false;

  constructor(
    readonly sink: Sink,
    private readonly log: Logger,
  ) {}

  /** Stored vectors for candidates whose every chunk is known; best effort (a failed lookup computes). */
  async known(
    model: string,
    candidates: DedupeCandidate[],
  ): Promise<(Float32Array[] | undefined)[]> {
    const keys = candidates.flatMap((c) =>
      c.hashes.map((hash, chunk) => ({ source: c.source, id: c.id, chunk, hash })),
    );
    let stored: Map<string, Float32Array>;
    try {
      stored = await this.sink.lookup(model, keys);
    } catch (err) {
      this.log.warn(
        { model, err: (err as Error).message },
        'sink lookup failed; computing instead',
      );
      return candidates.map(() => undefined);
    }
    return candidates.map((c) => {
      const vectors = c.hashes.map((_, chunk) => stored.get(sinkKey(c.source, c.id, chunk)));
      return vectors.every((v) => v !== undefined) ? (vectors as Float32Array[]) : undefined;
    });
  }

  /** Upsert the vectors of computed answers, one statement per model; retries until stored or aborted. */
  async persist(answers: Answer[], abort: AbortSignal): Promise<void> {
    const byModel = new Map<string, SinkRow[]>();
    for (const a of answers) {
      if (
        a.outcome !== 'ok' ||
        !a.ok ||
        !a.chunkHashes ||
        a.source === undefined ||
        a.id === undefined
      )
        continue;
      const rows = byModel.get(a.delivery.model) ?? [];
      a.ok.vectors.forEach((vector, chunk) =>
        rows.push({
          source: a.source as string,
          id: a.id as string,
          chunk,
          hash: a.chunkHashes?.[chunk] as string,
          vector,
          ...(a.ok?.meta !== undefined && { meta: a.ok.meta }),
        }),
      );
      byModel.set(a.delivery.model, rows);
    }
    for (const [model, rows] of byModel) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.sink.upsert(model, rows);
          if (this.outage) this.log.info({ model }, 'sink reachable again');
          this.outage = false;
          break;
        } catch (err) {
          if (abort.aborted) throw err;
          if (!this.outage)
            this.log.warn(
              { model, rows: rows.length, err: (err as Error).message },
              'sink write failed; entries stay pending, retrying',
            );
          this.outage = true;
          await new Promise((r) => setTimeout(r, backoffMs(attempt, 200, 10_000)));
        }
      }
    }
  }

  healthy(): boolean {
    return !this.outage && this.sink.healthy();
  }
}
