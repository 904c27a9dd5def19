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
