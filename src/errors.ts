/**
 * The closed set of error codes. Result codes are part of the contract
 * (docs/design.md, "Result entry"); the others are internal failures that
 * decide whether an entry is answered or left pending for a retry.
 */
export const RESULT_ERROR_CODES = [
  'invalid',
  'too_large',
  'reply_to_denied',
  'unknown_model',
  'expired',
  'model_error',
  'max_deliveries',
] as const;
export type ResultErrorCode = (typeof RESULT_ERROR_CODES)[number];

/** Failures that are not the entry's fault: leave it pending, retry later. */
export const TRANSIENT_ERROR_CODES = [
  'redis_unavailable',
  'model_load_failed',
  'worker_crashed',
  'sink_unavailable',
  'timeout',
  'shutting_down',
  // A remote provider: 429, 5xx, timeout, connection error, or a spent daily budget.
  'provider_unavailable',
  // A remote provider refused the key or the model (401/403/404): not ready until fixed.
  'provider_refused',
  // A remote provider answered 200 with something that is not one vector per input:
  // retried a few times (a proxy's hiccup), then split like a text's failure
  // (batch-failures.ts), so one input the provider always mishandles cannot hold a batch forever.
  'provider_malformed',
] as const;
export type TransientErrorCode = (typeof TRANSIENT_ERROR_CODES)[number];

export const OTHER_ERROR_CODES = ['config', 'internal', 'backpressure'] as const;
export type OtherErrorCode = (typeof OTHER_ERROR_CODES)[number];

export type ErrorCode = ResultErrorCode | TransientErrorCode | OtherErrorCode;

export class StreambedError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreambedError';
    this.code = code;
  }

  get transient(): boolean {
    return (TRANSIENT_ERROR_CODES as readonly string[]).includes(this.code);
  }
}

export function isResultErrorCode(code: string): code is ResultErrorCode {
  return (RESULT_ERROR_CODES as readonly string[]).includes(code);
}

/** Coerce anything thrown into a StreambedError, keeping the original as cause. */
export function toStreambedError(err: unknown, fallback: ErrorCode = 'internal'): StreambedError {
  if (err instanceof StreambedError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && isKnownCode(code)) {
      return new StreambedError(code, err.message, { cause: err });
    }
    return new StreambedError(fallback, err.message, { cause: err });
  }
  return new StreambedError(fallback, String(err));
}

function isKnownCode(code: string): code is ErrorCode {
  return (
    isResultErrorCode(code) ||
    (TRANSIENT_ERROR_CODES as readonly string[]).includes(code) ||
    (OTHER_ERROR_CODES as readonly string[]).includes(code)
  );
}
