/**
 * The console's JSON API. Reads are open to whoever reaches the port; what
 * changes Redis (replay, purge) or shows page text needs the admin key.
 *   GET  /api/state                  status report, throughput, last error
 *   GET  /api/dlq?model&source&reason&limit   dead letters, never their text
 *   GET  /api/admin                  200 when the Authorization header holds the admin key
 *   POST /api/dlq/replay {model, ids}   POST /api/dlq/purge {model, ids}
 *   POST /api/dlq/text {model, id}   one entry's text
 * Mutations name their entries by id: nothing replays or purges "everything
 * that matches" behind the operator's back.
 */
import type http from 'node:http';

import type { Redis } from 'ioredis';
import { z } from 'zod';

import { purgeDlq } from '../dlq/purge.js';
import { summarize } from '../dlq/record.js';
import { replayDlq } from '../dlq/replay.js';
import { selectDlq } from '../dlq/select.js';
import { RESULT_ERROR_CODES, StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';
import type { AdminKey } from './admin-key.js';
import { dlqTexts } from './dlq-text.js';
import { readJson, sendJson } from './respond.js';
import type { Sampler } from './sampler.js';

/** ioredis refusing a command while it reconnects (the console's connection has no offline queue). */
const REDIS_AWAY = /Stream isn't writeable|Connection is closed|ECONNREFUSED|ETIMEDOUT/i;
const DEFAULT_LIST = 200;
const MAX_LIST = 1000;
const MAX_IDS = 1000;

const entryId = z.string().regex(/^\d+-\d+$/);
const model = z.string().min(1).max(128);
const byIds = z.object({ model, ids: z.array(entryId).min(1).max(MAX_IDS) }).strict();
const oneId = z.object({ model, id: entryId }).strict();

export interface RouteContext {
  redis: Redis;
  keys: Keys;
  sampler: Sampler;
  admin: AdminKey | undefined;
  log: Logger;
}

type Handler = (req: http.IncomingMessage, url: URL, ctx: RouteContext) => Promise<unknown>;

const GET: Record<string, Handler> = {
  '/api/state': async (_req, _url, ctx) => ({
    ...ctx.sampler.current(),
    adminConfigured: ctx.admin !== undefined,
    reasons: RESULT_ERROR_CODES,
    // Pages poll as often as the console samples: faster would show the same numbers.
    refreshMs: ctx.sampler.intervalMs,
  }),
  '/api/dlq': async (_req, url, ctx) => {
    const q = url.searchParams;
    const limit = Math.min(MAX_LIST, Number(q.get('limit') ?? DEFAULT_LIST) || DEFAULT_LIST);
    const { records, more } = await selectDlq(ctx.redis, ctx.keys, {
      ...(q.get('model') && { model: q.get('model') as string }),
      ...(q.get('source') && { source: q.get('source') as string }),
      ...(q.get('reason') && { reason: q.get('reason') as string }),
      limit,
    });
    return { entries: records.map(summarize), more };
  },
  '/api/admin': async (req, _url, ctx) => {
    requireAdmin(req, ctx);
    return { admin: true };
  },
};

const POST: Record<string, Handler> = {
  '/api/dlq/replay': async (req, _url, ctx) => {
    requireAdmin(req, ctx);
    const body = parse(byIds, await readJson(req));
    const report = await replayDlq(ctx.redis, ctx.keys, body);
    ctx.log.info(
      { model: body.model, replayed: report.replayed.length, skipped: report.skipped.length },
      'console: dead letters replayed',
    );
    await ctx.sampler.refresh();
    return report;
  },
  '/api/dlq/purge': async (req, _url, ctx) => {
    requireAdmin(req, ctx);
    const body = parse(byIds, await readJson(req));
    const report = await purgeDlq(ctx.redis, ctx.keys, body);
    ctx.log.info({ model: body.model, deleted: report.deleted }, 'console: dead letters purged');
    await ctx.sampler.refresh();
    return report;
  },
  '/api/dlq/text': async (req, _url, ctx) => {
    requireAdmin(req, ctx);
    const body = parse(oneId, await readJson(req));
    const { records } = await selectDlq(ctx.redis, ctx.keys, {
      model: body.model,
      ids: [body.id],
    });
    const record = records[0];
    if (!record) throw new HttpError(404, `no dead letter ${body.id} for model ${body.model}`);
    // Who looked, not what they saw: the text never reaches the log.
    ctx.log.info({ model: body.model, dlqId: body.id }, 'console: dead letter text shown');
    return { dlqId: record.dlqId, texts: dlqTexts(record) };
  },
};

/** Answers an /api/ request; false when the path is not an API route. */
export async function handleApi(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  ctx: RouteContext,
): Promise<boolean> {
  if (!url.pathname.startsWith('/api/')) return false;
  const table = req.method === 'GET' ? GET : req.method === 'POST' ? POST : undefined;
  const handler = table?.[url.pathname];
  if (!handler) {
    const known = url.pathname in GET || url.pathname in POST;
    sendJson(res, known ? 405 : 404, { error: known ? 'method not allowed' : 'not found' });
    return true;
  }
  try {
    sendJson(res, 200, await handler(req, url, ctx));
  } catch (err) {
    const { status, message } = describe(err);
    if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="streambed console"');
    // 503 is Redis away: the sampler logs the outage once, not once per request.
    if (status >= 500 && status !== 503)
      ctx.log.error({ err: message, path: url.pathname }, 'console: API failed');
    sendJson(res, status, { error: message });
  }
  return true;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function requireAdmin(req: http.IncomingMessage, ctx: RouteContext): void {
  if (!ctx.admin)
    throw new HttpError(
      403,
      'this console is read-only: start it with CONSOLE_ADMIN_KEY_FILE to replay, purge or show text',
    );
  if (!ctx.admin.allows(req.headers.authorization))
    throw new HttpError(401, 'the admin key is missing or wrong');
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new HttpError(400, `${issue?.path.join('.') || 'body'}: ${issue?.message}`);
}

function describe(err: unknown): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof StreambedError && (err.code === 'invalid' || err.code === 'config'))
    return { status: 400, message: err.message };
  if (
    (err instanceof StreambedError && err.code === 'redis_unavailable') ||
    REDIS_AWAY.test((err as Error).message)
  )
    return { status: 503, message: `Redis unavailable: ${(err as Error).message}` };
  return { status: 500, message: (err as Error).message };
}
