/** Small HTTP helpers of the console: JSON answers and bounded JSON bodies. */
import type http from 'node:http';

import { StreambedError } from '../errors.js';

/** Requests are a few ids: anything bigger is not ours. */
const MAX_BODY_BYTES = 64 * 1024;

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    // Status and dead letters change every second; text must never sit in a cache.
    'cache-control': 'no-store',
  });
  res.end(JSON.stringify(body));
}

export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
    throw new StreambedError('invalid', 'expected a JSON body (content-type application/json)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new StreambedError('invalid', 'request body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    // The parser's message may quote the body: say only that it is not JSON.
    throw new StreambedError('invalid', 'request body is not JSON');
  }
}
