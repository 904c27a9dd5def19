/**
 * The operator HTTP surface: /metrics (Prometheus text), /healthz (the
 * process and its event loop answer) and /readyz (Redis reachable, models
 * loaded, not draining; 503 with the reasons otherwise). A process with an
 * API of its own (the gateway) passes `routes`, tried before these.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

export interface HealthSource {
  readiness(): { ready: boolean; reasons: string[] };
}

/** Handles the request and returns true, or returns false to leave it to the operator routes. */
export type Routes = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

export interface HttpOptions {
  /** How long an idle keep-alive connection stays open (default 5 s, Node's). */
  keepAliveMs?: number;
}

export async function startHttp(
  port: number,
  health: HealthSource,
  registry: Registry,
  routes?: Routes,
  options: HttpOptions = {},
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (routes?.(req, res)) return;
    const url = req.url?.split('?')[0];
    if (url === '/healthz') return send(res, 200, 'ok\n');
    if (url === '/readyz') {
      const r = health.readiness();
      return send(
        res,
        r.ready ? 200 : 503,
        r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n`,
      );
    }
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => send(res, 200, text, registry.contentType),
        (err: Error) => send(res, 500, `metrics failed: ${err.message}\n`),
      );
      return;
    }
    send(res, 404, 'not found\n');
  });
  server.keepAliveTimeout = options.keepAliveMs ?? 5_000;
  // The headers timer must not end a connection before the idle timer does
  // (and Node wants the request timer no shorter than the headers timer).
  server.headersTimeout = Math.max(server.headersTimeout, server.keepAliveTimeout + 1_000);
  server.requestTimeout = Math.max(server.requestTimeout, server.headersTimeout);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  return server;
}

export function boundPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
) {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}
