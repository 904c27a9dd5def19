/**
 * The web console's HTTP server: the page and its script and style as files
 * from this server (no inline script or style, no external asset, so it works
 * offline and under `Content-Security-Policy: default-src 'self'`), and the
 * JSON API of routes.ts. Request bodies, page text and keys are never logged.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Redis } from 'ioredis';

import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';
import type { AdminKey } from './admin-key.js';
import { handleApi } from './routes.js';
import type { Sampler } from './sampler.js';

/** Copied next to the compiled server by `npm run build` (scripts/copy-assets.mjs). */
const ASSETS = new URL('./assets/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/chart.js': { file: 'chart.js', type: 'text/javascript; charset=utf-8' },
  '/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export interface ConsoleServerOptions {
  host: string;
  port: number;
  redis: Redis;
  keys: Keys;
  sampler: Sampler;
  admin: AdminKey | undefined;
  log: Logger;
}

export async function startConsoleServer(o: ConsoleServerOptions): Promise<http.Server> {
  // Read once at start: a build that forgot the assets fails here, not on the first visit.
  const assets = new Map(
    Object.entries(FILES).map(([path, { file, type }]) => [
      path,
      { body: readFileSync(new URL(file, ASSETS)), type },
    ]),
  );
  const ctx = { redis: o.redis, keys: o.keys, sampler: o.sampler, admin: o.admin, log: o.log };
  const server = http.createServer((req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    handleApi(req, res, url, ctx)
      .then((handled) => {
        if (handled) return;
        const asset = assets.get(url.pathname);
        if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) {
          res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('not found\n');
          return;
        }
        res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache' });
        res.end(req.method === 'HEAD' ? undefined : asset.body);
      })
      .catch((err: Error) => {
        o.log.error({ err: err.message }, 'console: request failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, resolve);
  });
  return server;
}

export function consoleUrl(server: http.Server): string {
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${a.port}/`;
}
