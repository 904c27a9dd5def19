/**
 * Case c driver (and the BullMQ half of e): one BullMQ job per page, a
 * BullMQ Worker in its own process, completions read back with QueueEvents.
 * Jobs use removeOnComplete/removeOnFail, BullMQ's fastest usual setting.
 */
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';

import { RoleChild } from '../child.js';
import type { Corpus } from '../corpus.js';
import { childPids, cpuSeconds, peakRssMb } from '../machine.js';
import type { BullInit } from '../roles/bullmq-worker.js';
import type { EmbedConfig } from '../roles/transformers-embed.js';
import { idTimeMs, latencyOf, round } from '../stats.js';
import { deletePrefix } from './redis-util.js';
import type { CaseDriver, Measurement } from './types.js';

export class BullmqCase implements CaseDriver {
  readonly id: string;
  readonly label: string;
  private child: RoleChild | undefined;
  private queue: Queue | undefined;
  private events: QueueEvents | undefined;
  private readonly queueName = 'pages';
  private runs = 0;

  constructor(
    private readonly redis: Redis,
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly mode: BullInit['mode'],
    private readonly concurrency: number,
    private readonly embed: EmbedConfig,
  ) {
    this.id = mode === 'noop' ? 'e:bullmq' : 'c';
    this.label =
      mode === 'noop'
        ? `e. BullMQ no-op jobs (concurrency ${concurrency})`
        : `c. BullMQ peer (Transformers.js processor, ${mode}, concurrency ${concurrency})`;
  }

  async start(warmup: readonly string[]): Promise<void> {
    const connection = { url: this.redisUrl, maxRetriesPerRequest: null };
    this.queue = new Queue(this.queueName, {
      connection,
      prefix: this.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    this.events = new QueueEvents(this.queueName, { connection, prefix: this.prefix });
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
    const init: BullInit = {
      ...this.embed,
      redisUrl: this.redisUrl,
      queue: this.queueName,
      prefix: this.prefix,
      mode: this.mode,
      concurrency: this.concurrency,
    };
    this.child = await RoleChild.start(this.id, 'bullmq-worker', init);
    // Sandboxed: the first jobs also start the sandbox processes and load their models.
    await this.pass([...warmup, ...warmup], 'warm');
  }

  async run(corpus: Corpus): Promise<Measurement> {
    const cpu0 = this.cpu();
    const m = await this.pass(corpus.texts, `${corpus.name}-${++this.runs}`);
    const cpu1 = this.cpu();
    return {
      ...m,
      ...(cpu0 !== undefined && cpu1 !== undefined && { cpuSeconds: round(cpu1 - cpu0, 2) }),
    };
  }

  pids(): number[] {
    const pid = this.child?.pid ?? -1;
    return [pid, ...childPids(pid)];
  }

  private cpu(): number | undefined {
    const all = this.pids().map(cpuSeconds);
    return all.some((c) => c === undefined)
      ? undefined
      : all.reduce((a, b) => (a ?? 0) + (b ?? 0), 0);
  }

  private async pass(texts: readonly string[], tag: string): Promise<Measurement> {
    const queue = this.queue as Queue;
    const events = this.events as QueueEvents;
    const waiting = new Map<string, number>();
    // A fast worker can finish a job before addBulk has returned its id to us.
    const early = new Map<string, { eventId: string; ok: boolean }>();
    const latencies: number[] = [];
    let failed = 0;
    let adding = true;
    let doneAt = 0;
    let wake: () => void = () => undefined;
    const finished = new Promise<void>((r) => (wake = r));
    const settle = (jobId: string, eventId: string, ok: boolean) => {
      const createdAt = waiting.get(jobId);
      if (createdAt === undefined) {
        if (adding) early.set(jobId, { eventId, ok });
        return;
      }
      waiting.delete(jobId);
      if (ok) latencies.push(idTimeMs(eventId) - createdAt);
      else failed++;
      if (waiting.size === 0 && !adding) {
        doneAt = performance.now();
        wake();
      }
    };
    const onCompleted = ({ jobId }: { jobId: string }, id: string) => settle(jobId, id, true);
    const onFailed = ({ jobId }: { jobId: string }, id: string) => settle(jobId, id, false);
    events.on('completed', onCompleted);
    events.on('failed', onFailed);
    const started = performance.now();
    try {
      for (let start = 0; start < texts.length; start += 1000) {
        const jobs = await queue.addBulk(
          texts.slice(start, start + 1000).map((text, k) => ({
            name: 'embed',
            data: { id: `${tag}-${start + k}`, text },
          })),
        );
        for (const job of jobs) if (job.id) waiting.set(job.id, job.timestamp);
        for (const [jobId, e] of early) if (waiting.has(jobId)) settle(jobId, e.eventId, e.ok);
      }
      adding = false;
      for (const [jobId, e] of early) if (waiting.has(jobId)) settle(jobId, e.eventId, e.ok);
      early.clear();
      if (waiting.size > 0) {
        // Stop waiting when nothing completes for a minute or the worker process is gone.
        let seen = waiting.size;
        let progressAt = Date.now();
        const watch = setInterval(() => {
          if (waiting.size < seen) [seen, progressAt] = [waiting.size, Date.now()];
          if (Date.now() - progressAt > 60_000 || this.child?.dead()) wake();
        }, 250);
        await finished;
        clearInterval(watch);
      } else doneAt = performance.now();
      if (waiting.size > 0)
        throw new Error(
          `${this.id}: ${waiting.size} of ${texts.length} jobs never completed${this.child?.dead() ? `: ${this.child.dead()}` : ''}`,
        );
    } finally {
      events.off('completed', onCompleted);
      events.off('failed', onFailed);
      await this.redis.xtrim(`${this.prefix}:${this.queueName}:events`, 'MAXLEN', 0);
    }
    const seconds = (doneAt - started) / 1000;
    const latency = latencyOf(latencies);
    return {
      texts: texts.length,
      seconds,
      perSecond: texts.length / seconds,
      ...(latency && { latency }),
      ...(failed > 0 && { detail: { failed } }),
    };
  }

  async stop(): Promise<{ peakRssMb?: number }> {
    const rss = this.pids().map((pid) => peakRssMb(pid));
    const peak = rss.every((r) => r !== undefined)
      ? rss.reduce<number>((a, b) => a + (b ?? 0), 0)
      : undefined;
    await this.child?.stop();
    await this.events?.close();
    await this.queue?.close();
    await deletePrefix(this.redis, this.prefix);
    return { ...(peak !== undefined && { peakRssMb: peak }) };
  }
}
