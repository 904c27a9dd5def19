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
  /** A chunked page's offsets: a stored chunk answers only at the same span. */
  spans?: [number, number][];
}

export interface SinkStageOptions {
  /** SINK_STORE_PASSAGES: store each chunk's text (Answer.chunkTexts) beside its vector. */
  storePassages: boolean;
}

export class SinkStage {
  private outage = false;

  constructor(
    readonly sink: Sink,
    private readonly log: Logger,
    private readonly opts: SinkStageOptions = { storePassages: false },
  ) {}

  /** The worker puts each chunk's text on its answers (Answer.chunkTexts) only when this is true. */
  get storesPassages(): boolean {
    return this.opts.storePassages;
  }

  /** Stored vectors for candidates whose every chunk is known; best effort (a failed lookup computes). */
  async known(
    model: string,
    candidates: DedupeCandidate[],
  ): Promise<(Float32Array[] | undefined)[]> {
    const keys = candidates.flatMap((c) =>
      c.hashes.map((hash, chunk) => {
        const span = c.spans?.[chunk];
        return { source: c.source, id: c.id, chunk, hash, ...(span && { span }) };
      }),
    );
    let stored: Map<string, Float32Array>;
    try {
      // With passages on, a row stored without one is computed again once, so it gains it.
      stored = await this.sink.lookup(model, keys, { withPassage: this.opts.storePassages });
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
    for (const [model, rows] of this.rowsByModel(answers)) {
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

  /**
   * One row per chunk of each computed answer. The sink treats a call's rows
   * of a page as the whole page (it deletes stored chunks past them), so when
   * one page is answered twice here (a re-submission next to the original),
   * only its last answer's rows go: mixing two versions' chunks would keep
   * chunks the last version no longer has.
   */
  private rowsByModel(answers: Answer[]): Map<string, SinkRow[]> {
    const pages = new Map<string, { model: string; rows: SinkRow[] }>();
    for (const a of answers) {
      const { ok, chunkHashes, source, id } = a;
      if (a.outcome !== 'ok' || !ok || !chunkHashes || source === undefined || id === undefined)
        continue;
      const rows = ok.vectors.map((vector, chunk): SinkRow => {
        const span = ok.spans?.[chunk];
        // Postgres text cannot hold U+0000; U+FFFD keeps every offset of `span` where it was.
        const passage = this.opts.storePassages
          ? a.chunkTexts?.[chunk]?.replaceAll('\u0000', '\uFFFD')
          : undefined;
        return {
          source,
          id,
          chunk,
          hash: chunkHashes[chunk] as string,
          vector,
          ...(ok.meta !== undefined && { meta: ok.meta }),
          ...(span && { span }),
          ...(passage !== undefined && { passage }),
        };
      });
      const page = `${a.delivery.model}\u0000${sinkKey(source, id, 0)}`;
      pages.delete(page); // re-inserted last, so rows keep the order of the answers
      pages.set(page, { model: a.delivery.model, rows });
    }
    const byModel = new Map<string, SinkRow[]>();
    for (const { model, rows } of pages.values()) {
      const all = byModel.get(model) ?? [];
      all.push(...rows);
      byModel.set(model, all);
    }
    return byModel;
  }
}
