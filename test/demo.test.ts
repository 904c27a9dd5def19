/**
 * Issue 18, the first five minutes: `streambed demo` with no Redis at its
 * (local) REDIS_URL runs a private redis-server on a free port and stops it
 * at the end; with none installed it says in one line what is missing and
 * how to get it, and exits 3.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { runCli } from './helpers/cli.js';
import { freePort } from './helpers/redis-server.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-demo-'));

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('streambed demo without a Redis', () => {
  it('runs a private redis-server for itself and stops it at the end', async () => {
    const nobody = `redis://127.0.0.1:${await freePort()}`;
    const run = await runCli(
      ['demo', '--preset', 'tiny', '--pages', '20', '--dir', path.join(dir, 'models')],
      { REDIS_URL: nobody },
      120_000,
    );
    expect(run.code, run.stderr).toBe(0);
    const started = /started a private redis-server on redis:\/\/127\.0\.0\.1:(\d+)/.exec(
      run.stdout,
    );
    expect(started, run.stdout).not.toBeNull();
    expect(run.stdout).toContain(`no Redis answers at ${nobody}`);
    expect(run.stdout).toMatch(/^20 ok in /m);
    expect(await refuses(Number(started?.[1]))).toBe(true);
  });

  it('says what is missing and how to get it when no redis-server is installed', async () => {
    const emptyPath = fs.mkdtempSync(path.join(dir, 'path-'));
    const run = await runCli(['demo', '--preset', 'tiny', '--pages', '5'], {
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      PATH: emptyPath,
    });
    expect(run.code).toBe(3);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('redis-server is not installed');
    expect(lines[0]).toContain('apt-get install redis-server');
    expect(run.stdout).toBe('');
  });
});
