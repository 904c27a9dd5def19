/**
 * One process per embedded data dir. PGlite takes no lock of its own: two
 * processes can open the same directory, each with its own buffer cache, and
 * silently lose or corrupt each other's writes (seen with PGlite 0.5.14). A
 * pid file created with O_EXCL refuses the second process with a clear error.
 */
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import { StreambedError } from '../errors.js';

const LOCK_FILE = 'streambed-sink.lock';
/** Lock files this process holds: a pid file naming us is stale unless it is in here. */
const held = new Set<string>();

export interface DirLock {
  release(): Promise<void>;
}

export async function lockDataDir(dir: string): Promise<DirLock> {
  const path = resolve(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      held.add(path);
      return {
        release: async () => {
          held.delete(path);
          await unlink(path);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await readFile(path, 'utf8').catch(missingAs(undefined));
    if (text === undefined) continue; // released meanwhile: try again
    const holder = Number.parseInt(text, 10);
    const ours = holder === process.pid;
    if ((ours && held.has(path)) || (!ours && Number.isSafeInteger(holder) && isAlive(holder))) {
      throw new StreambedError(
        'config',
        `sink: embedded data dir ${JSON.stringify(dir)} is in use by process ${holder}. ` +
          `SINK=pglite:DIR is opened by one process at a time (a worker, or \`streambed search\`): ` +
          `stop that process first, or use PG_URL (a Postgres server with pgvector) ` +
          `for several workers or to search beside them.`,
      );
    }
    // Left by a process that died without closing the sink (or by an earlier
    // container whose process had our pid): take it over.
    // (Two processes doing this at the same instant could both win; start-up
    // after a crash is the only window, and it is a narrow one.)
    await unlink(path).catch(missingAs(undefined));
  }
  throw new StreambedError(
    'config',
    `sink: could not lock embedded data dir ${JSON.stringify(dir)}`,
  );
}

/** For fs calls racing another process: a file that vanished yields `value`, other errors rethrow. */
function missingAs<T>(value: T): (err: unknown) => T {
  return (err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return value;
    throw err;
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else, which still counts as alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
