/**
 * The OpenAI-compatible routes: `POST /v1/embeddings`, `GET /v1/models`
 * and `GET /v1/models/{id}`. Here a request is authenticated, rate limited,
 * its body read within the size limit and parsed; what it becomes in the
 * fleet is embeddings.ts. Every failure is a GatewayError answered in
 * OpenAI's error shape. Nothing here logs a key or a text.
 */
import type http from 'node:http';

import type { Lane } from '../keys.js';
import type { Logger } from '../log.js';
import { REDIS_WAIT_MS, withDeadline } from './deadline.js';
import { checkInputCount, embed, type EmbedDeps, type LongInput } from './embeddings.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import { bearer, type KeyRing } from './keys-file.js';
import {
  GatewayError,
  modelNotFound,
  modelsResponse,
  parseEmbeddingsRequest,
  requestTooLarge,
} from './openai-shapes.js';
import type { RateLimiter } from './rate-limit.js';
import { textOfTokenIds } from './token-ids.js';

export interface RouteDeps extends EmbedDeps {
  keys: Pick<KeyRing, 'find'> | undefined;
  /** Source of requests when no keys file is configured. */
  defaultSource: string;
  limiter: RateLimiter;
  metrics: GatewayMetrics;
  log: Logger;
  /** Set once SIGTERM arrived: new requests get 503 and the connection is closed. */
  draining: () => boolean;
}

/** JSON text is at most ~2x its strings (escapes), plus room for the rest of the body. */
const bodyLimit = (maxRequestBytes: number) => 2 * maxRequestBytes + 64 * 1024;
const STARTED_S = Math.floor(Date.now() / 1000);

export function gatewayRoutes(deps: RouteDeps) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const path = req.url?.split('?')[0] ?? '';
    if (!path.startsWith('/v1/')) return false;
    void handle(deps, path, req, res);
    return true;
  };
}

async function handle(
  deps: RouteDeps,
  path: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const isEmbed = path === '/v1/embeddings';
  const done = isEmbed ? deps.metrics.begin() : undefined;
  const labels = { model: 'unknown', code: 200, source: 'unknown' };
  const answered = { inputs: 0, tokens: 0 };
  try {
    if (deps.draining())
      throw new GatewayError(503, 'server_error', 'shutting_down', 'the gateway is shutting down');
    labels.source = await authenticate(deps, req);
    if (isEmbed) {
      if (req.method !== 'POST') throw notAllowed('POST');
      const parsed = parseEmbeddingsRequest(await readJson(req, bodyLimit(deps.maxRequestBytes)));
      if (parsed.tokenIds) checkInputCount(deps, parsed.tokenIds.length);
      const body = parsed.tokenIds
        ? { ...parsed, inputs: await textOfTokenIds(parsed.tokenIds) }
        : parsed;
      const known =
        deps.catalog.hasNow(body.model) ??
        (await withDeadline(deps.catalog.has(body.model), REDIS_WAIT_MS));
      if (known) labels.model = body.model;
      const how = { source: labels.source, lane: laneOf(req), longInput: longInputOf(deps, req) };
      const response = await embed(deps, body, how);
      answered.inputs = body.inputs.length;
      answered.tokens = response.usage.prompt_tokens;
      send(res, 200, response);
    } else if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') throw notAllowed('GET');
      const models = await withDeadline(deps.catalog.list(), REDIS_WAIT_MS);
      const one = path.slice('/v1/models/'.length);
      if (!one) send(res, 200, modelsResponse(models, STARTED_S));
      else if (models.includes(one)) send(res, 200, modelsResponse([one], STARTED_S).data[0]);
      else throw modelNotFound(one);
    } else {
      throw new GatewayError(404, 'invalid_request_error', 'not_found', `no route ${path}`);
    }
  } catch (err) {
    // Anything else came from Redis (the rate counter, the model scan): the fleet is out of reach.
    const e =
      err instanceof GatewayError
        ? err
        : new GatewayError(503, 'server_error', 'unavailable', 'the fleet cannot be reached');
    if (!(err instanceof GatewayError))
      deps.log.error({ err: (err as Error).message, path }, 'gateway request failed');
    labels.code = e.status;
    send(res, e.status, e.body(), {
      ...(e.retryAfterS !== undefined && { 'retry-after': String(e.retryAfterS) }),
      ...((deps.draining() || e.status === 413) && { connection: 'close' }),
    });
    // The rest of an oversize body is not worth reading.
    if (e.status === 413) req.resume();
  } finally {
    done?.(labels, answered);
  }
}

async function authenticate(deps: RouteDeps, req: http.IncomingMessage): Promise<string> {
  if (!deps.keys) return deps.defaultSource;
  const key = deps.keys.find(bearer(req.headers.authorization) ?? '');
  if (!key)
    throw new GatewayError(
      401,
      'invalid_request_error',
      'invalid_api_key',
      'Incorrect or missing API key: send Authorization: Bearer <key>',
    );
  if (key.rpm !== undefined) {
    const taken = deps.limiter.take(key.id, key.rpm);
    const wait = typeof taken === 'number' ? taken : await withDeadline(taken, REDIS_WAIT_MS);
    if (wait > 0)
      throw new GatewayError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `rate limit of ${key.rpm} requests per minute reached; retry in ${wait} s`,
        null,
        wait,
      );
  }
  return key.source;
}

function laneOf(req: http.IncomingMessage): Lane {
  const lane = req.headers['x-streambed-lane'];
  if (lane === undefined || lane === 'interactive') return 'interactive';
  if (lane === 'bulk') return 'bulk';
  throw new GatewayError(
    400,
    'invalid_request_error',
    'invalid_lane',
    'X-Streambed-Lane must be interactive or bulk',
  );
}

function longInputOf(deps: RouteDeps, req: http.IncomingMessage): LongInput {
  const asked = req.headers['x-streambed-long-input'];
  if (asked === undefined) return deps.longInput;
  if (asked === 'truncate' || asked === 'chunk' || asked === 'error') return asked;
  throw new GatewayError(
    400,
    'invalid_request_error',
    'invalid_long_input',
    'X-Streambed-Long-Input must be truncate, chunk or error',
  );
}

async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () => requestTooLarge(`request body is over ${limit} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge();
  // Events, not for-await: leaving a for-await destroys the socket, and the 413 with it.
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData);
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError(400, 'invalid_request_error', 'invalid_json', 'body is not valid JSON');
  }
}

function notAllowed(method: string): GatewayError {
  return new GatewayError(405, 'invalid_request_error', 'method_not_allowed', `use ${method}`);
}

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
