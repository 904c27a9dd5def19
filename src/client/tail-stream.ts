/**
 * One blocking read of a stream after `last` (up to 1,000 entries, 500 ms):
 * the step of every loop that follows a reply stream (the SDK's private
 * reply reader, the backfill runner).
 */
import type { Redis } from 'ioredis';

export async function readAfter(
  conn: Redis,
  stream: string,
  last: string,
): Promise<Array<[id: string, fields: Buffer[]]>> {
  const reply = (await conn.callBuffer(
    'XREAD',
    'COUNT',
    '1000',
    'BLOCK',
    '500',
    'STREAMS',
    stream,
    last,
  )) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
  return (reply ?? []).flatMap(([, entries]) =>
    entries.map(([id, fields]): [string, Buffer[]] => [id.toString(), fields]),
  );
}

/**
 * `readAfter` for a loop that must outlive Redis outages: a failed read
 * (ioredis is reconnecting) is reported, waited out briefly and returns no
 * entries, so the loop just goes round again.
 */
export async function readAfterOrPause(
  conn: Redis,
  stream: string,
  last: string,
  onError: (err: Error) => void = () => undefined,
): Promise<Array<[id: string, fields: Buffer[]]>> {
  try {
    return await readAfter(conn, stream, last);
  } catch (err) {
    onError(err as Error);
    await new Promise((r) => setTimeout(r, 200));
    return [];
  }
}
