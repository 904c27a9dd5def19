/**
 * Facts about the machine a run happened on, load checks (the machine is
 * shared, so numbers are noisy), and peak memory of processes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface MachineFacts {
  nproc: number;
  cpu: string;
  memGb: number;
  node: string;
  platform: string;
  redis: string;
  loadavgAtStart: number[];
}

export function machineFacts(redisVersion: string): MachineFacts {
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    memGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    redis: redisVersion,
    loadavgAtStart: loadavg(),
  };
}

/** 1, 5 and 15 minute load averages. */
export function loadavg(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** Runnable processes right now besides us (the 4th field of /proc/loadavg is running/total). */
export function runnableNow(): number | undefined {
  try {
    const field = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[3] ?? '';
    return Number(field.split('/')[0]);
  } catch {
    return undefined;
  }
}

/** Peak resident set (VmHWM) of a live process in MiB, from /proc; undefined where /proc is absent. */
export function peakRssMb(pid: number): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Math.round(Number(kb) / 1024);
  } catch {
    return undefined;
  }
}

/** Children of a process (e.g. BullMQ's sandbox processes), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
          // Fields after the parenthesised command name: state ppid ...
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) of each thread of a process, by thread id, from /proc/<pid>/task. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function systemBusySeconds(): number | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
    return busy / 100;
  } catch {
    return undefined;
  }
}

/** The commit measured and any uncommitted changes to the code under test (src/, workers/). */
export function codeState(cwd: string): { commit: string; dirty: string[] } {
  // A run from an exported tree (git archive) names its commit here.
  const exported = process.env.BENCH_COMMIT;
  if (exported) return { commit: exported, dirty: [] };
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      dirty: git('status', '--porcelain', '--', 'src', 'workers')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.slice(3)),
    };
  } catch {
    return { commit: 'unknown', dirty: [] };
  }
}
