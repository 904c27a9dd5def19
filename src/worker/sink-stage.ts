/**
 * The worker's side of the optional vector sink: before compute, look up
 * chunks whose (source, id, chunk) already hold the same content hash under
 * this model's reference (dedupe); before the result is published, upsert the
 * new vectors, retrying with jittered backoff while the sink is down, so an
 * entry is acknowledged only after its vectors are stored (guarantee 1).
 */
import type { Logger } from '../log.js';
import { backoffMs } from '../redis/connect.js';
import { isDataError } from '../sink/driver-errors.js';
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

  /**
   * Upsert the vectors of computed answers, one statement per model; retries
   * until stored or aborted. A statement the server refuses for its data
   * (isDataError: a value a column cannot hold, an operator's constraint) is
   * never retried as it is: its pages are stored in halves down to one, and a page
   * refused alone is returned with the reason, to be answered `invalid`
   * instead of acknowledged unstored (it would otherwise hold its whole
   * group, and the worker's writes, forever).
   */
  async persist(answers: Answer[], abort: AbortSignal): Promise<Map<Answer, string>> {
    const refused = new Map<Answer, string>();
    for (const [model, pages] of this.pagesByModel(answers))
      await this.store(model, pages, abort, refused);
    return refused;
  }

  private async store(
    model: string,
    pages: StoredPage[],
    abort: AbortSignal,
    refused: Map<Answer, string>,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.sink.upsert(
          model,
          pages.flatMap((p) => p.rows),
        );
        if (this.outage) this.log.info({ model }, 'sink reachable again');
        this.outage = false;
        return;
      } catch (err) {
        if (abort.aborted) throw err;
        if (isDataError(err)) {
          if (pages.length > 1) {
            // Halves, as batch-failures splits a batch: one bad page in a group of 512
            // costs ~18 statements, not 512.
            const half = Math.ceil(pages.length / 2);
            await this.store(model, pages.slice(0, half), abort, refused);
            await this.store(model, pages.slice(half), abort, refused);
            return;
          }
          const page = pages[0] as StoredPage;
          const reason = (err as Error).message.slice(0, 300);
          this.log.warn(
            { model, entry: page.answer.delivery.id, err: reason },
            'sink refused a page for its data; answering it invalid',
          );
          // An earlier answer of the same page in this call was never stored either.
          for (const a of [page.answer, ...page.superseded])
            refused.set(a, `the sink cannot store this page: ${reason}`);
          return;
        }
        if (!this.outage)
          this.log.warn(
            { model, rows: pages.length, err: (err as Error).message },
            'sink write failed; entries stay pending, retrying',
          );
        this.outage = true;
        await new Promise((r) => setTimeout(r, backoffMs(attempt, 200, 10_000)));
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
  private pagesByModel(answers: Answer[]): Map<string, StoredPage[]> {
    const pages = new Map<string, { model: string; page: StoredPage }>();
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
      const key = `${a.delivery.model}\u0000${sinkKey(source, id, 0)}`;
      const before = pages.get(key)?.page;
      const superseded = before ? [...before.superseded, before.answer] : [];
      pages.delete(key); // re-inserted last, so rows keep the order of the answers
      pages.set(key, { model: a.delivery.model, page: { answer: a, superseded, rows } });
    }
    const byModel = new Map<string, StoredPage[]>();
    for (const { model, page } of pages.values()) {
      const all = byModel.get(model) ?? [];
      all.push(page);
      byModel.set(model, all);
    }
    return byModel;
  }
}

/** One page's rows, with the answer they came from (and earlier answers of the page they replace). */
interface StoredPage {
  answer: Answer;
  superseded: Answer[];
  rows: SinkRow[];
}
