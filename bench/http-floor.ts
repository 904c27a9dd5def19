/**
 * `node dist/bench/http-floor.js`: what any Node HTTP front door costs, as a
 * yardstick for the gateway. A bare `node:http` server that does the least
 * an embeddings endpoint must: read the body, JSON.parse it, answer a canned
 * response of the gateway's shape and size (one 384-dim vector in base64).
 * No Redis, no keys, no metrics. Prints its port on stdout.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const VECTOR = Buffer.from(new Float32Array(384).fill(0.5).buffer).toString('base64');

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model?: string };
    const text = JSON.stringify({
      object: 'list',
      data: [{ object: 'embedding', index: 0, embedding: VECTOR }],
      model: body.model,
      usage: { prompt_tokens: 17, total_tokens: 17 },
    });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
});
// As the gateway's (src/http/server.ts): the same keep-alive behaviour.
// As the gateway's default GATEWAY_KEEP_ALIVE_S, so both keep the load's idle connections alike.
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
