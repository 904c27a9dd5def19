/**
 * The console's admin key: read from the file CONSOLE_ADMIN_KEY_FILE names
 * (a mounted Secret in a pod, never a flag or an environment value, so it
 * does not show in `ps` or a pod spec), and the check of a request's
 * `Authorization: Bearer <key>`. Kept apart so the gateway's API keys file
 * can take over this reading later without touching the console.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { StreambedError } from '../errors.js';

/** Shorter keys are guessable; refuse them rather than serve a weak admin surface. */
const MIN_KEY_LENGTH = 16;

export interface AdminKey {
  /** True when the request carries the admin key. */
  allows(authorization: string | undefined): boolean;
}

/**
 * The key in `file`, or undefined without a file: a read-only console. The
 * key is the first word of the first line that is not blank or a `#`
 * comment, so a file in the gateway's keys format (`key source [rpm]`,
 * docs/gateway.md) works here too.
 */
export function readAdminKey(file: string | undefined): AdminKey | undefined {
  if (file === undefined) return undefined;
  const line = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  const key = line?.split(/\s+/)[0] ?? '';
  if (key.length < MIN_KEY_LENGTH)
    throw new StreambedError(
      'config',
      `CONSOLE_ADMIN_KEY_FILE ${file}: the key (the first word of its first line) must be at least ${MIN_KEY_LENGTH} characters`,
    );
  return adminKey(key);
}

export function adminKey(key: string): AdminKey {
  // Digests have one length, so timingSafeEqual never throws on a length
  // mismatch and the comparison time says nothing about the key's length.
  const want = digest(key);
  return {
    allows(authorization) {
      const m = /^Bearer (.+)$/.exec(authorization ?? '');
      return m !== null && timingSafeEqual(digest((m[1] as string).trim()), want);
    },
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
