/**
 * A model's chunking defaults in the model table (`;chunk=true;chunkWindow=256;chunkOverlap=32`):
 * pages sent as one `text` to this model are split into token windows unless
 * the envelope says otherwise (its `chunk` field). Off unless set, so
 * producers that send chunks already see no change.
 */
import { z } from 'zod';

export interface ChunkDefaults {
  /** Split `text` envelopes that do not say `chunk` themselves. */
  on: boolean;
  /** Tokens per window (specials included); unset: the model's own limit. */
  window?: number;
  /** Tokens shared by consecutive windows; unset: an eighth of the window. */
  overlap?: number;
}

export const CHUNK_OPTION_KEYS = ['chunk', 'chunkWindow', 'chunkOverlap'] as const;

/** Smallest window worth a chunk: room for the specials and a few words. */
export const MIN_CHUNK_WINDOW = 8;

const schema = z
  .object({
    chunk: z
      .enum(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
    chunkWindow: z.coerce.number().int().min(MIN_CHUNK_WINDOW).max(1_000_000).optional(),
    chunkOverlap: z.coerce.number().int().min(0).optional(),
  })
  .refine(
    (o) => o.chunkOverlap === undefined || o.chunkWindow === undefined || o.chunkOverlap * 2 < o.chunkWindow,
    { message: 'chunkOverlap must be under half of chunkWindow', path: ['chunkOverlap'] },
  );

/** Take the chunk options out of a model's `;key=value` options; the rest go to its backend's schema. */
export function takeChunkOptions(given: Record<string, string>): {
  chunk?: ChunkDefaults;
  rest: Record<string, string>;
  error?: string;
} {
  const mine: Record<string, string> = {};
  const rest: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) {
    if ((CHUNK_OPTION_KEYS as readonly string[]).includes(k)) mine[k] = v;
    else rest[k] = v;
  }
  if (Object.keys(mine).length === 0) return { rest };
  const parsed = schema.safeParse(mine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { rest, error: `option ${issue?.path.join('.')}: ${issue?.message}` };
  }
  const { chunk, chunkWindow, chunkOverlap } = parsed.data;
  return {
    rest,
    chunk: {
      on: chunk ?? true,
      ...(chunkWindow !== undefined && { window: chunkWindow }),
      ...(chunkOverlap !== undefined && { overlap: chunkOverlap }),
    },
  };
}

/** Back to `;key=value` form (formatModelTable). */
export function formatChunkOptions(c: ChunkDefaults | undefined): string[] {
  if (!c) return [];
  return [
    `chunk=${c.on}`,
    ...(c.window !== undefined ? [`chunkWindow=${c.window}`] : []),
    ...(c.overlap !== undefined ? [`chunkOverlap=${c.overlap}`] : []),
  ];
}
