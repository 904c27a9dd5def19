/**
 * `--chunk [window]` and `--chunk-overlap N`, shared by `submit` and
 * `backfill`: the chunking asked for every text page that does not say its
 * own (a JSONL line's `chunk` wins; docs/design.md, "Chunking").
 */
import type { Command } from 'commander';

import { chunkSchema } from '../codec/envelope.js';
import { CHUNK_RULE } from '../codec/page-line.js';
import { StreambedError } from '../errors.js';
import type { ChunkRequest } from '../types.js';

export function addChunkOptions(cmd: Command): Command {
  return cmd
    .option(
      '--chunk [window]',
      'split each text page without its own "chunk" into token windows (the model\'s own window unless given; docs/design.md, Chunking)',
    )
    .option('--chunk-overlap <tokens>', 'with --chunk, tokens shared by consecutive chunks');
}

/** `--chunk` alone: the model's window; `--chunk 256`: that window; `--chunk-overlap` either way. */
export function chunkOption(o: Record<string, unknown>): ChunkRequest | undefined {
  const { chunk, chunkOverlap: overlap } = o;
  if (chunk === undefined) return undefined;
  const int = (v: unknown, name: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new StreambedError('config', `${name} must be a whole number, got ${String(v)}`);
    return n;
  };
  const window = chunk === true ? undefined : int(chunk, '--chunk');
  const own = {
    ...(window !== undefined && { window }),
    ...(overlap !== undefined && { overlap: int(overlap, '--chunk-overlap') }),
  };
  const request = Object.keys(own).length > 0 ? own : true;
  // The envelope's own rule, so a bad window stops the command instead of every page failing.
  if (!chunkSchema.safeParse(request).success)
    throw new StreambedError('config', `--chunk/--chunk-overlap: ${CHUNK_RULE}`);
  return request;
}
