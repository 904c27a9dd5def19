/**
 * Admitted entries' texts as the dispatcher's items: tokenised here, on the
 * main thread, where the model has a tokenizer (so micro-batches are packed
 * by true token counts and the threads receive ids), estimated from their
 * length otherwise. Tokenising a read of long texts takes tens of ms (0.5 ms
 * a 190-token text), so items come out in slices of TOKENIZE_SLICE_MS with a
 * turn of the event loop between them: pool hand-offs, result writes and
 * health probes do not wait behind a read.
 */
import type { Entry } from './admit.js';
import type { TextItem } from './batch-vectors.js';
import { estimateTokens } from './batcher.js';
import type { LoadedModel } from './pool.js';

/** Longest the main thread tokenises (or chunks) before letting the event loop run. */
export const TOKENIZE_SLICE_MS = 1;

export interface TextItemOptions {
  /** From an interactive stream: dispatched before bulk texts. */
  urgent(entry: Entry): boolean;
  /** Arrival order, across every read. */
  nextSeq(): number;
  /** Forced shutdown: stop here, nothing more is dispatched. */
  aborted(): boolean;
}

/** Slices of items, the last one possibly empty; ends early (nothing more) once aborted. */
export async function* textItems(
  entries: readonly Entry[],
  loaded: LoadedModel,
  opts: TextItemOptions,
): AsyncGenerator<TextItem[]> {
  let items: TextItem[] = [];
  let sliceStarted = performance.now();
  for (const entry of entries) {
    if (opts.aborted()) return;
    const urgent = opts.urgent(entry);
    entry.envelope.texts.forEach((text, chunk) => {
      const encoded = entry.encoded?.[chunk] ?? loaded.encode?.(text);
      items.push({
        entry,
        chunk,
        text,
        tokens: encoded ? encoded.ids.length : estimateTokens(text, loaded.maxTokens),
        ...(encoded && { encoded }),
        seq: opts.nextSeq(),
        urgent,
        done: false,
        strikes: 0,
      });
    });
    // Without a tokenizer an entry costs microseconds: nothing to yield for (and a batch
    // is not cut in two by a GC pause longer than the slice).
    if (loaded.encode && performance.now() - sliceStarted > TOKENIZE_SLICE_MS) {
      yield items;
      items = [];
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStarted = performance.now();
    }
  }
  yield items;
}
