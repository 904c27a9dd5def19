/**
 * One blocking read of a stream (or several) after the last id read (up to
 * 1,000 entries, 500 ms): the step of every loop that follows reply streams
 * (the SDK's private reply reader, the backfill runner, the gateway).
 */
import type { Redis } from 'ioredis';

export type StreamEntries = Array<[id: string, fields: Buffer[]]>;

/**
 * One blocking read of several streams, each after its own last id, in one
 * XREAD (a reader of one reply stream per source, e.g. the gateway or a
 * backfill job): the entries of each stream that had any.
 */
export async function readStreamsAfter(
  conn: Redis,
  last: ReadonlyMap<string, string>,
): Promise<Map<string, StreamEntries>> {
  const reply = (await conn.callBuffer(
    'XREAD',
    'COUNT',
    '1000',
    'BLOCK',
    '500',
    'STREAMS',
    ...last.keys(),
    ...last.values(),
  )) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
  return new Map(
    (reply ?? []).map(([stream, entries]) => [
      stream.toString(),
      entries.map(([id, fields]): [string, Buffer[]] => [id.toString(), fields]),
    ]),
  );
}

/**
 * `readStreamsAfter` for a loop that must outlive Redis outages: a failed
 * read (ioredis is reconnecting) is reported, waited out briefly and returns
 * no entries, so the loop just goes round again.
 */
export async function readStreamsOrPause(
  conn: Redis,
  last: ReadonlyMap<string, string>,
  onError: (err: Error) => void = () => undefined,
): Promise<Map<string, StreamEntries>> {
  try {
    return await readStreamsAfter(conn, last);
  } catch (err) {
    onError(err as Error);
    await new Promise((r) => setTimeout(r, 200));
    return new Map();
  }
}

/** `readStreamsOrPause` of one stream. */
export async function readAfterOrPause(
  conn: Redis,
  stream: string,
  last: string,
  onError: (err: Error) => void = () => undefined,
): Promise<StreamEntries> {
  return (await readStreamsOrPause(conn, new Map([[stream, last]]), onError)).get(stream) ?? [];
}
