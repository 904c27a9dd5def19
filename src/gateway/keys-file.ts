/**
 * API keys of the gateway, from a file mounted from a Secret: one
 * `key source [requests-per-minute]` per line, `#` comments and blank lines
 * ignored, re-read when the file changes. Keys are kept only as SHA-256
 * digests and compared in constant time; nothing here ever logs a key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';

import { StreambedError } from '../errors.js';
import type { Logger } from '../log.js';

export interface ApiKey {
  /** Tenant the key's requests are counted as (progress, metrics, bulk fairness). */
  source: string;
  /** Requests per minute, fleet-wide; undefined = unlimited. */
  rpm?: number;
  /** First 16 hex digits of the key's digest: names its rate counter, never the key. */
  id: string;
}

const SOURCE = /^[A-Za-z0-9._:-]{1,128}$/;

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

export class KeyRing {
  private constructor(private readonly entries: Array<{ digest: Buffer; key: ApiKey }>) {}

  static parse(text: string, file = 'keys file'): KeyRing {
    const entries: Array<{ digest: Buffer; key: ApiKey }> = [];
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const [key, source, rpm, ...rest] = line.split(/\s+/);
      // Line numbers only: the line itself holds a key.
      const where = `${file} line ${i + 1}`;
      if (!key || !source || rest.length > 0)
        throw new StreambedError('config', `${where}: expected "key source [rpm]"`);
      if (!SOURCE.test(source))
        throw new StreambedError(
          'config',
          `${where}: source must be 1-128 chars of [A-Za-z0-9._:-]`,
        );
      const limit = rpm === undefined ? undefined : Number(rpm);
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
        throw new StreambedError('config', `${where}: rpm must be a positive integer`);
      const d = digest(key);
      entries.push({
        digest: d,
        key: { source, id: d.toString('hex').slice(0, 16), ...(limit && { rpm: limit }) },
      });
    }
    if (entries.length === 0) throw new StreambedError('config', `${file} holds no keys`);
    return new KeyRing(entries);
  }

  static load(path: string): KeyRing {
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      throw new StreambedError('config', `GATEWAY_KEYS_FILE: ${(err as Error).message}`);
    }
    return KeyRing.parse(text, path);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The sources the keys map to (each gets its own reply stream). */
  get sources(): string[] {
    return [...new Set(this.entries.map((e) => e.key.source))];
  }

  /**
   * The key's entry, or undefined. Every stored digest is compared (no early
   * exit), each with timingSafeEqual, so timing says nothing about which
   * key or how much of one matched.
   */
  find(presented: string): ApiKey | undefined {
    const d = digest(presented);
    let found: ApiKey | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) found ??= e.key;
    return found;
  }
}

/** The key of an `Authorization: Bearer <key>` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/**
 * The keys file, followed: re-read when its stat changes (Kubernetes swaps a
 * mounted Secret's files when it is rotated), so keys are added and revoked
 * without a restart. A bad edit keeps the last good keys and logs the
 * problem (by line number: never a key).
 */
export class KeysFile {
  private ring: KeyRing;
  private stamp: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {
    this.ring = KeyRing.load(path);
    this.stamp = stampOf(path);
  }

  get size(): number {
    return this.ring.size;
  }

  get sources(): string[] {
    return this.ring.sources;
  }

  find(presented: string): ApiKey | undefined {
    return this.ring.find(presented);
  }

  follow(everyMs = 10_000): this {
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const stamp = stampOf(this.path);
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    try {
      this.ring = KeyRing.load(this.path);
      this.log.info({ keys: this.ring.size }, 'gateway API keys reloaded');
    } catch (err) {
      this.log.error(
        { err: (err as Error).message },
        'gateway API keys not reloaded; keeping the last good ones',
      );
    }
  }
}

/** What changes when the file does: inode (a swapped symlink target), size, mtime. */
function stampOf(path: string): string {
  try {
    const s = fs.statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
