/**
 * Writes answers: one pipelined round trip per batch of answers, through the
 * publish-and-ack script (per entry: result + DLQ record + progress + XACK,
 * atomically, only while we still own the entry; one script call covers many
 * entries, up to the script's per-call limits). Connection failures are
 * retried with backoff until the answers are written or we are told to stop;
 * unwritten entries stay pending and are reclaimed elsewhere, so nothing
 * acknowledged is ever lost.
 */
import type { Redis } from 'ioredis';

import { errorFields, okFields } from '../codec/result.js';
import type { Keys } from '../keys.js';
import type { Logger } from '../log.js';
import { backoffMs } from '../redis/connect.js';
import type { Answer } from './answer.js';
import {
  definePublish,
  type PublishEntry,
  type PublishReply,
  queuePublish,
} from './publish-script.js';

export interface WriteReport {
  written: Answer[];
  /** Entries another consumer took over before we could publish (lease fence). */
  fenced: Answer[];
  /**
   * Entries whose DLQ stream or progress hash has the wrong type: nothing was
   * written or acknowledged; they stay pending (reclaimed, and retried, after
   * CLAIM_IDLE_MS) instead of stalling every write behind them.
   */
  unwritable: Answer[];
}

/** What the answer queue needs of a writer (ResultWriter; an in-memory fake in unit tests). */
export interface AnswerWriter {
  write(answers: Answer[], abort?: AbortSignal): Promise<WriteReport>;
}

export interface WriterOptions {
  keys: Keys;
  log?: Logger;
  consumer: string;
  resultsMaxLen: number;
}

export class ResultWriter implements AnswerWriter {
  private refused: string | undefined;
  /** Times the connection closed: a call out across a close may have been sent twice. */
  private closes = 0;

  constructor(
    private readonly redis: Redis,
    private readonly options: WriterOptions,
  ) {
    definePublish(redis);
    redis.on('close', () => this.closes++);
  }

  /** Why Redis refuses our writes right now (e.g. OOM), for /readyz; undefined when writes land. */
  refusedBy(): string | undefined {
    return this.refused;
  }

  /**
   * Write every answer; resolves once each is written, fenced or unwritable.
   * Throws only when `abort` fires. A lost connection or a refusing Redis
   * (maxmemory) is retried with a bounded, jittered backoff for as long as it
   * takes; the entries stay held, their leases renewed.
   */
  async write(answers: Answer[], abort?: AbortSignal): Promise<WriteReport> {
    const report: WriteReport = { written: [], fenced: [], unwritable: [] };
    // Answers sent in a call whose outcome we never learned (the connection dropped):
    // finding one of them acked on a resend means our own earlier write landed.
    const maybeWritten = new Set<Answer>();
    let todo = answers;
    let failures = 0;
    while (todo.length > 0) {
      let replies: Array<PublishReply | undefined>;
      const closes = this.closes;
      try {
        replies = await this.send(todo);
        // The connection dropped with the call out and ioredis sent it again on reconnect
        // (autoResendUnfulfilledCommands): if the first send landed, the entries are acked.
        if (this.closes !== closes) for (const a of todo) maybeWritten.add(a);
      } catch (err) {
        if (abort?.aborted) throw err;
        for (const a of todo) maybeWritten.add(a);
        this.options.log?.warn(
          { attempt: failures, entries: todo.length, err: (err as Error).message },
          'result write failed, retrying',
        );
        await sleep(backoffMs(failures++, 100, 2_000), abort);
        continue;
      }
      const retry: Answer[] = [];
      let refused: string | undefined;
      replies.forEach((reply, i) => {
        const answer = todo[i] as Answer;
        if (reply === undefined || reply[0] === -3) {
          refused ??= reply?.[1] ?? 'not attempted';
          retry.push(answer);
        } else if (reply[0] === 1) report.written.push(answer);
        else if (reply[0] === 2 && maybeWritten.has(answer)) report.written.push(answer);
        else if (reply[0] === 0 || reply[0] === 2) report.fenced.push(answer);
        else if (reply[0] === -2 || answer.replyTo === undefined) {
          // A DLQ/progress key, or the global results stream itself, of the wrong type.
          report.unwritable.push(answer);
          this.options.log?.error(
            { stream: answer.delivery.stream, entry: answer.delivery.id, err: reply[1] },
            'answer cannot be written: a key has the wrong type; left pending',
          );
        } else retry.push(unusableReply(answer, reply[1]));
      });
      todo = retry;
      // Only a write that landed says Redis takes writes again (a call of fenced entries
      // writes nothing either way): /readyz does not flicker during an outage.
      if (refused !== undefined) this.refused = refused;
      else if (replies.some((r) => r?.[0] === 1)) this.refused = undefined;
      if (refused !== undefined) {
        if (abort?.aborted) throw new Error(`redis refuses writes: ${refused}`);
        if (failures === 0)
          this.options.log?.warn(
            { entries: retry.length, err: refused.slice(0, 120) },
            'redis refuses result writes; entries stay held, retrying with backoff',
          );
        await sleep(backoffMs(failures++, 250, 5_000), abort);
      } else failures = 0;
    }
    return report;
  }

  private async send(answers: Answer[]): Promise<Array<PublishReply | undefined>> {
    const { keys, consumer, resultsMaxLen } = this.options;
    const pipeline = this.redis.pipeline();
    const sizes = queuePublish(
      pipeline,
      { group: keys.group, consumer, resultsMaxLen },
      answers.map((a) => this.publishEntry(a)),
    );
    const results = (await pipeline.exec()) ?? [];
    // A call cut short by a refused write has fewer replies than entries: pad with "retry".
    return results.flatMap(([err, replies], call) => {
      if (err) throw err;
      const got = replies as PublishReply[];
      return Array.from({ length: sizes[call] ?? 0 }, (_, i) => got[i]);
    });
  }

  private publishEntry(a: Answer): PublishEntry {
    const { keys, consumer } = this.options;
    const head = { id: a.id ?? '', source: a.source ?? '', rid: a.delivery.id };
    const failed = a.outcome === 'error';
    const resultFields =
      a.outcome !== 'error' && a.ok
        ? okFields(head, a.ok, a.statusOnly ? 'status' : 'vectors')
        : errorFields(head, a.error?.code ?? 'model_error', a.error?.message ?? 'unknown failure');
    return {
      requestStream: a.delivery.stream,
      entryId: a.delivery.id,
      resultStream: a.replyTo ?? keys.results(),
      resultFields,
      ...(a.source && {
        progress: {
          key: keys.progress(a.source),
          field: failed ? 'failed' : a.outcome === 'deduped' ? 'deduped' : 'done',
        },
      }),
      ...(failed && {
        dlq: { stream: keys.dlq(a.delivery.model), fields: dlqRecord(a, consumer) },
      }),
    };
  }
}

/** The DLQ record: the original fields untouched, then why and where it failed. */
function dlqRecord(a: Answer, consumer: string): (string | Buffer)[] {
  return [
    ...a.delivery.fields,
    'reason',
    a.error?.code ?? 'model_error',
    'message',
    a.error?.message ?? '',
    'deliveries',
    String(a.delivery.deliveries),
    'stream',
    a.delivery.stream,
    'rid',
    a.delivery.id,
    'consumer',
    consumer,
    'failed_ms',
    String(Date.now()),
  ];
}

/** The reply stream exists but is not a stream: answer on the global stream instead. */
function unusableReply(a: Answer, err: string): Answer {
  const rest: Answer = { ...a };
  delete rest.replyTo;
  return {
    ...rest,
    outcome: 'error',
    error: { code: 'reply_to_denied', message: `reply_to is not usable: ${err.slice(0, 120)}` },
  };
}

function sleep(ms: number, abort?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    abort?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
