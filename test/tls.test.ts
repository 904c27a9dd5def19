/**
 * `rediss://` with a CA file and an ACL user (issue 3, security basics): a
 * private TLS-only redis-server whose certificate is signed by a throwaway
 * CA. A worker given REDIS_TLS_CA_FILE answers an envelope; one without it
 * refuses the unknown certificate, retries and stays up.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { expectGatewayAndConsoleReach } from './helpers/gateway.js';
import { randomPrefix, until } from './helpers/redis.js';
import { aclArgs, freePort } from './helpers/redis-server.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tls-'));
const file = (name: string) => path.join(dir, name);
const auth = { user: 'sbtls', password: `pw-${randomBytes(8).toString('hex')}` };
const children: ChildWorker[] = [];
let server: ChildProcess | undefined;
let url: string;
let redis: Redis;

function openssl(args: string): void {
  execFileSync('openssl', args.split(' '), { cwd: dir, stdio: 'ignore' });
}

/** A throwaway CA, and a certificate for 127.0.0.1 signed by it. */
function makeCertificates(): void {
  openssl(
    'req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=streambed-test-ca -keyout ca.key -out ca.pem',
  );
  openssl('req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr');
  fs.writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out server.pem',
  );
}

beforeAll(async () => {
  makeCertificates();
  const port = await freePort();
  server = spawn(
    'redis-server',
    [
      ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', ''],
      ['--dir', dir, '--tls-cert-file', file('server.pem'), '--tls-key-file', file('server.key')],
      ['--tls-ca-cert-file', file('ca.pem'), '--tls-auth-clients', 'no'],
      aclArgs(auth),
    ].flat(),
    { stdio: 'ignore' },
  );
  url = `rediss://${auth.user}:${auth.password}@127.0.0.1:${port}`;
  redis = new Redis(url, { tls: { ca: fs.readFileSync(file('ca.pem')) }, maxRetriesPerRequest: 3 });
  redis.on('error', () => undefined); // refused until the server listens
  await until('TLS redis up', async () => (await redis.ping()) === 'PONG', 20_000);
});
afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  redis?.disconnect();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server?.once('exit', r));
    server.kill('SIGKILL');
    await exited;
  }
  // The server kept everything in memory: its keys go with it.
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('rediss:// with a CA file and an ACL user', () => {
  it('answers an envelope', async () => {
    const prefix = randomPrefix('tls');
    const w = spawnWorker(prefix, {
      REDIS_URL: url,
      REDIS_TLS_CA_FILE: file('ca.pem'),
      MODELS: 'fx=fixture:4',
    });
    children.push(w);
    const client = new StreambedClient({ redis, prefix });
    try {
      const [v] = await client.embed(['over TLS'], { model: 'fx', timeoutMs: 30_000 });
      expect(v).toHaveLength(4);
    } finally {
      await client.close();
    }
    // The gateway and the console take the same settings and reach the fleet over TLS too.
    await expectGatewayAndConsoleReach(
      prefix,
      { REDIS_URL: url, REDIS_TLS_CA_FILE: file('ca.pem') },
      'fx',
      `${prefix}:req:fx`,
    );
    const clients = String(await redis.client('LIST'));
    expect(clients).toContain(`user=${auth.user}`);
    expect(w.output()).not.toContain(auth.password);
    // An IP is not a TLS server name (RFC 6066): Node warns if one is passed as such.
    expect(w.output()).not.toMatch(/DEP0123|RFC 6066/);
    expect(w.proc.exitCode).toBeNull();
  }, 60_000);

  it('without the CA file, refuses the certificate, retries and stays up', async () => {
    const prefix = randomPrefix('tls-noca');
    const w = spawnWorker(prefix, { REDIS_URL: url, MODELS: 'fx=fixture:4', LOG_LEVEL: 'debug' });
    children.push(w);
    await until(
      'certificate refused',
      () => /certificate/i.test(w.output()) && w.output().includes('redis unreachable, retrying'),
      30_000,
      100,
    );
    expect(await redis.exists(`${prefix}:req:fx`)).toBe(0); // it never got in
    expect(w.proc.exitCode).toBeNull();
    expect(w.output()).not.toContain(auth.password);
  }, 60_000);
});
