/**
 * Issue 18, the web console, in a real browser (Debian's chromium driven by
 * playwright-core) against the built CLI, a real Redis and a fixture worker:
 * a slow backfill's progress bar moves through intermediate values to done,
 * with a rate and an ETA while it runs;
 * a dead letter appears without its text, shows its text only when asked
 * with the admin key, and Replay (confirmed) sends it back to fail again
 * under a new id; Purge asks first and cancelling keeps it. A read-only
 * console shows everything but offers no action and refuses them; page
 * text and the key never reach the console's output; every response carries
 * the strict CSP and the page runs under it without a violation.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from './helpers/cli.js';
import { type ConsoleProcess, launchChromium, startConsole } from './helpers/console.js';
import { answersById, deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('console');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-console-'));
const KEY = 'console-test-admin-key-0123456789';
const keyFile = path.join(dir, 'admin-key');
const PAGES = 200;
const POISON = 7;
/** In the poisoned page's text only: must never show unless asked for. */
const MARKER = 'private-words-9c1e';
const CSP = "default-src 'self'";

let admin: ConsoleProcess;
let readOnly: ConsoleProcess;
let browser: Browser;
const cspViolations: string[] = [];

beforeAll(async () => {
  fs.writeFileSync(keyFile, `${KEY}\n`);
  [admin, readOnly, browser] = await Promise.all([
    startConsole(prefix, { CONSOLE_ADMIN_KEY_FILE: keyFile }, ['--interval-ms', '250']),
    startConsole(prefix, {}, ['--interval-ms', '250']),
    launchChromium(),
    startTestWorker(prefix, { MODELS: 'fx=fixture:8', THREADS: 1 }),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([admin?.stop(), readOnly?.stop()]);
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on('console', (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => cspViolations.push(`page error: ${e.message}`));
  await page.goto(url);
  return page;
}

function post(base: string, route: string, body: unknown, auth?: string): Promise<Response> {
  return fetch(new URL(route, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth && { authorization: auth }) },
    body: JSON.stringify(body),
  });
}

const dlqLength = () => redis.xlen(`${prefix}:dlq:fx`);

describe('streambed console', () => {
  it('follows a backfill, then shows, replays and purges its dead letter', async () => {
    const corpus = path.join(dir, 'pages.jsonl');
    const lines = Array.from({ length: PAGES }, (_, i) =>
      JSON.stringify({
        id: `p${i}`,
        text: i === POISON ? `${MARKER} page ${i} @@throw` : `page ${i} @@slow:20`,
      }),
    );
    fs.writeFileSync(corpus, `${lines.join('\n')}\n`);
    const page = await open(admin.url);
    const run = runCli(['backfill', corpus, '-m', 'fx', '--job', 'j1', '--source', 'docs', '-w'], {
      KEY_PREFIX: prefix,
    });

    // The bar's value, sampled as a user would watch it: 0 (or little) .. several steps .. done.
    const bar = page.locator('[role=progressbar][data-source="docs"]');
    await bar.waitFor({ timeout: 20_000 });
    const meta = page.locator('.progress:has([data-source="docs"]) .meta');
    const metas = new Set<string | null>();
    const seen: number[] = [];
    await until(
      'the docs progress bar to reach done',
      async () => {
        const now = Number(await bar.getAttribute('aria-valuenow'));
        const max = Number(await bar.getAttribute('aria-valuemax'));
        if (seen.at(-1) !== now) seen.push(now);
        if (now < PAGES) metas.add(await meta.textContent());
        return max === PAGES && now === PAGES;
      },
      40_000,
      60,
    );
    expect(seen[0]).toBeLessThan(PAGES / 2);
    expect(seen.filter((v) => v > 0 && v < PAGES).length, `values ${seen}`).toBeGreaterThanOrEqual(
      3,
    );
    expect([...seen].sort((a, b) => a - b)).toEqual(seen); // never moves back
    // While it runs, the row has a rate and an ETA (from its second sample on).
    expect(
      [...metas].some((m) => /rate \d[\d.]*\/s\s*ETA \d/.test(m ?? '')),
      [...metas].join(' | '),
    ).toBe(true);
    const done = await run;
    expect(done.code, done.stderr).toBe(1); // one page dead-lettered
    await expect
      .poll(() => page.locator('.progress:has([data-job="j1"]) .badge').textContent())
      .toBe('done');

    // The dead letter: listed with its page id, reason and message, never its text.
    const row = page.locator(`#dlq tr[data-page-id="p${POISON}"]`);
    await row.waitFor();
    const firstId = (await row.getAttribute('data-dlq-id')) as string;
    expect(await row.locator('td').nth(4).textContent()).toBe('model_error');
    expect(await page.content()).not.toContain(MARKER);
    const listed = await (await fetch(new URL('/api/dlq', admin.url))).text();
    expect(listed).toContain(`"id":"p${POISON}"`);
    expect(listed).not.toContain(MARKER);

    // Filters: by reason (none is invalid), then by source.
    const reason = page.locator('#dlq-filter select[name="reason"]');
    await reason.selectOption('invalid');
    await page.locator('#dlq-empty').waitFor();
    expect(await row.count()).toBe(0);
    await reason.selectOption('');
    await page.locator('#dlq-filter select[name="source"]').selectOption('docs');
    await row.waitFor();

    // A read-only console shows the same entry and offers no action.
    const viewer = await open(readOnly.url);
    await viewer.locator(`#dlq tr[data-dlq-id="${firstId}"]`).waitFor();
    expect(await viewer.locator('body.read-only').count()).toBe(1);
    expect(await viewer.locator('#dlq button.replay').first().isVisible()).toBe(false);
    expect(await viewer.locator('#access').textContent()).toBe('read-only');
    await viewer.close();

    // Unlock: a wrong key is refused in the dialog; the right one shows the actions.
    expect(await row.locator('button.replay').isVisible()).toBe(false);
    await page.click('#unlock-open');
    await page.fill('#unlock-key', 'not-the-key-at-all');
    await page.click('#unlock-ok');
    await expect.poll(() => page.textContent('#unlock-error')).toContain('missing or wrong');
    await page.fill('#unlock-key', KEY);
    await page.click('#unlock-ok');
    await page.locator('#access .badge.live').waitFor();

    // Show text: that entry's text, and only on request.
    await row.locator('button.show-text').click();
    await expect
      .poll(() => page.locator(`tr[data-text-of="${firstId}"] pre`).textContent())
      .toBe(`${MARKER} page ${POISON} @@throw`);

    // Replay, confirmed: it leaves the DLQ, runs again, and fails again under a new id.
    await row.locator('button.replay').click();
    expect(await page.textContent('#confirm-title')).toBe(`Replay dead letter ${firstId}?`);
    await page.click('#confirm-ok');
    await expect.poll(() => page.textContent('#banner')).toContain('replayed 1, skipped 0');
    const again = page.locator(
      `#dlq tr[data-page-id="p${POISON}"]:not([data-dlq-id="${firstId}"])`,
    );
    await again.waitFor({ timeout: 20_000 });
    expect(await page.locator(`#dlq tr[data-dlq-id="${firstId}"]`).count()).toBe(0);
    expect(await redis.xlen(`${prefix}:dlq:fx:replayed`)).toBe(1);
    const answers = await answersById(redis, [`${prefix}:reply:docs/backfill:j1`]);
    expect(answers.get(`p${POISON}`)).toEqual(['error', 'error']);
    expect(await dlqLength()).toBe(1);
    // The replay was answered (and failed) again: the bar still ends at PAGES of PAGES,
    // its first failure no longer counted, and the replay shown.
    await expect.poll(() => meta.textContent()).toMatch(/failed 1\s*replayed 1/);
    expect(Number(await bar.getAttribute('aria-valuenow'))).toBe(PAGES);
    expect(Number(await bar.getAttribute('aria-valuemax'))).toBe(PAGES);

    const shot = path.join(os.tmpdir(), `streambed-console-${Date.now()}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`console screenshot: ${shot}`);
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);

    // Purge asks first: Cancel keeps the entry, confirming deletes it.
    await again.locator('button.purge').click();
    await page.click('#confirm-cancel');
    expect(await again.count()).toBe(1);
    expect(await dlqLength()).toBe(1);
    await again.locator('button.purge').click();
    expect(await page.textContent('#confirm-ok')).toBe('Purge');
    await page.click('#confirm-ok');
    await page.locator('#dlq-empty').waitFor();
    expect(await dlqLength()).toBe(0);

    // Lock forgets the key; a kept key the console no longer takes is dropped on load.
    await page.click('#lock');
    expect(await page.locator('body.read-only').count()).toBe(1);
    // Strings, not functions: they run in the page, where sessionStorage is (Node's types lack it).
    const STORED = "sessionStorage.getItem('streambed-console-admin-key')";
    await page.evaluate(
      "sessionStorage.setItem('streambed-console-admin-key', 'stale-key-0123456789')",
    );
    await page.reload();
    await page.locator('#unlock-open').waitFor();
    expect(await page.locator('body.read-only').count()).toBe(1);
    expect(await page.evaluate(STORED)).toBeNull();
    await page.close();

    expect(cspViolations).toEqual([]);
    for (const out of [admin.output(), readOnly.output()]) {
      expect(out).not.toContain(MARKER);
      expect(out).not.toContain(KEY);
    }
  });

  it('lists what status --check fails on, while it lasts', async () => {
    const page = await open(readOnly.url);
    // Entries for a model no worker serves: the breach `unserved`.
    const ghost = `${prefix}:req:ghost`;
    await redis.xadd(ghost, '*', 'v', '1');
    const item = page.locator('#breaches li[data-kind="unserved"]');
    await item.waitFor({ timeout: 10_000 });
    expect(await item.textContent()).toContain('model ghost: 1 entries waiting');
    expect(await page.locator('#breaches').isVisible()).toBe(true);
    await redis.del(ghost);
    await item.waitFor({ state: 'detached', timeout: 10_000 });
    await page.close();
  });

  it('sends the strict CSP and keeps actions behind the admin key', async () => {
    for (const route of ['/', '/console.js', '/console.css', '/api/state']) {
      const res = await fetch(new URL(route, admin.url));
      expect(res.status, route).toBe(200);
      expect(res.headers.get('content-security-policy'), route).toContain(CSP);
    }
    const body = { model: 'fx', ids: ['1-1'] };
    const anonymous = await post(admin.url, '/api/dlq/purge', body);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await post(admin.url, '/api/dlq/purge', body, 'Bearer wrong')).status).toBe(401);
    expect((await post(admin.url, '/api/dlq/text', { model: 'fx', id: '1-1' })).status).toBe(401);
    const bad = await post(
      admin.url,
      '/api/dlq/replay',
      { model: 'fx', ids: ['x'] },
      `Bearer ${KEY}`,
    );
    expect(bad.status).toBe(400);
    const missing = await post(
      admin.url,
      '/api/dlq/text',
      { model: 'fx', id: '1-1' },
      `Bearer ${KEY}`,
    );
    expect(missing.status).toBe(404);
    const refused = await post(readOnly.url, '/api/dlq/replay', body, `Bearer ${KEY}`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toContain('read-only');
  });

  it('fails fast with one line: Redis unreachable (3), a weak admin key (2)', async () => {
    const weak = path.join(dir, 'weak-key');
    fs.writeFileSync(weak, 'short\n');
    const [down, short] = await Promise.all([
      runCli(['console'], { REDIS_URL: 'redis://127.0.0.1:1', CONSOLE_PORT: '0' }),
      runCli(['console'], { KEY_PREFIX: prefix, CONSOLE_PORT: '0', CONSOLE_ADMIN_KEY_FILE: weak }),
    ]);
    expect(down.code).toBe(3);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toContain('redis_unavailable');
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('CONSOLE_ADMIN_KEY_FILE');
    expect(short.stderr).not.toContain('short');
  });
});
