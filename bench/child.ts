/**
 * Case processes: each measured case runs in its own child process so its
 * peak RSS is its own and no case inherits another's warm state. The parent
 * talks to a role over the IPC channel: one request, one reply.
 */
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, peakRssMb } from './machine.js';

interface Reply {
  type: 'reply';
  seq: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export class RoleChild {
  private seq = 0;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    proc.on('message', (m: Reply) => {
      if (m?.type !== 'reply') return;
      this.pending.get(m.seq)?.(m);
      this.pending.delete(m.seq);
    });
    this.exited = new Promise((resolve) =>
      proc.on('exit', (code) => {
        for (const wake of this.pending.values())
          wake({
            type: 'reply',
            seq: -1,
            ok: false,
            error: `${name} exited (${code}): ${this.stderr}`,
          });
        this.pending.clear();
        resolve(code);
      }),
    );
  }

  /** Fork `roles/<file>.js` and wait for its `init` reply (model loaded, ready to measure). */
  static async start(
    name: string,
    role: string,
    init: unknown,
    opts: { execArgv?: string[] } = {},
  ): Promise<RoleChild> {
    const proc = fork(roleFile(role), [], {
      ...(opts.execArgv && { execArgv: opts.execArgv }),
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
    });
    const child = new RoleChild(name, proc);
    await child.call('init', init);
    return child;
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  async call<T>(op: string, arg?: unknown): Promise<T> {
    const seq = ++this.seq;
    const reply = await new Promise<Reply>((resolve) => {
      this.pending.set(seq, resolve);
      this.proc.send({ type: 'call', seq, op, arg });
    });
    if (!reply.ok) throw new Error(`${this.name} ${op}: ${reply.error}`);
    return reply.value as T;
  }

  /** Why this child can no longer answer (it exited), or undefined while it runs. */
  dead(): string | undefined {
    const p = this.proc;
    if (p.exitCode === null && p.signalCode === null) return undefined;
    return `${this.name} exited (${p.exitCode ?? p.signalCode}): ${this.stderr.slice(-2000)}`;
  }

  peakRssMb(): number | undefined {
    return peakRssMb(this.pid);
  }

  cpuSeconds(): number | undefined {
    return cpuSeconds(this.pid);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.send({ type: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Roles run as JavaScript: from dist/ the compiled role sits beside us; when
 * this module runs from TypeScript sources (the smoke test), use the build.
 */
function roleFile(role: string): string {
  const beside = fileURLToPath(new URL(`./roles/${role}.js`, import.meta.url));
  if (fs.existsSync(beside)) return beside;
  const built = fileURLToPath(new URL(`../dist/bench/roles/${role}.js`, import.meta.url));
  if (fs.existsSync(built)) return built;
  throw new Error(`bench role ${role} is not built (${built} missing): run npm run build`);
}

type Handler = (arg: unknown) => Promise<unknown> | unknown;

/** The child side: answer calls with the handlers; exit when told or when the parent goes away. */
export function serveRole(handlers: Record<string, Handler>, onExit?: () => Promise<void>): void {
  const exit = async () => {
    await onExit?.().catch(() => undefined);
    process.exit(0);
  };
  process.on('disconnect', () => void exit());
  process.on('message', (m: { type: string; seq: number; op: string; arg: unknown }) => {
    if (m.type === 'exit') {
      void exit();
      return;
    }
    if (m.type !== 'call') return;
    const handler = handlers[m.op];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown op ${m.op}`);
        return handler(m.arg);
      })
      .then(
        (value) => process.send?.({ type: 'reply', seq: m.seq, ok: true, value }),
        (err: unknown) =>
          process.send?.({
            type: 'reply',
            seq: m.seq,
            ok: false,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          }),
      );
  });
}
