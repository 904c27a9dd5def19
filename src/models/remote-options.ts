/**
 * Options of a remote model (`openai:<provider-model>` in MODELS), in the
 * model table's `;key=value` style:
 *   embed=openai:text-embedding-3-small;baseUrl=https://api.openai.com/v1;apiKeyEnv=OPENAI_API_KEY;rpm=3000;tpm=1000000
 * `apiKeyEnv` is the NAME of an environment variable: a key never appears in
 * MODELS, logs, status or metrics.
 */
import { z } from 'zod';

export interface RemoteOptions {
  /** The provider's `/v1` root; `/embeddings` is appended. */
  baseUrl: string;
  /** Name of the env var holding the bearer key (none: no Authorization header, e.g. Ollama). */
  apiKeyEnv?: string;
  /** Requests per minute, fleet-wide (Redis); unset: no limit. */
  rpm?: number;
  /** Tokens per minute, fleet-wide, estimated before a call and reconciled from `usage`. */
  tpm?: number;
  /** Inputs per request (the model's micro-batch size). */
  maxInputs: number;
  /** Estimated tokens per request (the model's micro-batch token budget). */
  maxRequestTokens: number;
  /** Requests in flight per process. */
  concurrency: number;
  /** Sent as `dimensions` when set (OpenAI text-embedding-3 shortening). */
  dimensions?: number;
  /** One request's deadline; past it the request is a transient failure. */
  timeoutMs: number;
  /** Tokens per UTC day, fleet-wide; when spent the model pauses until midnight UTC. */
  budgetTokensPerDay?: number;
  /** `base64` (default: a quarter of the bytes of JSON floats) or `float` for servers that reject it. */
  encoding: 'base64' | 'float';
}

const positive = z.coerce.number().int().min(1);

export const remoteOptionsSchema = z
  .object({
    baseUrl: z
      .string()
      .regex(/^https?:\/\/[^\s;,]+$/, 'must be an http(s) URL')
      .default('https://api.openai.com/v1'),
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    rpm: positive.optional(),
    tpm: positive.optional(),
    maxInputs: z.coerce.number().int().min(1).max(2048).default(64),
    maxRequestTokens: positive.default(8192),
    concurrency: z.coerce.number().int().min(1).max(256).default(4),
    dimensions: z.coerce.number().int().min(1).max(65536).optional(),
    timeoutMs: z.coerce.number().int().min(100).default(30_000),
    budgetTokensPerDay: positive.optional(),
    encoding: z.enum(['base64', 'float']).default('base64'),
  })
  .strict();

/** Options written back by formatModelTable, in a fixed order (defaults omitted). */
export function formatRemoteOptions(o: RemoteOptions): string[] {
  const defaults = remoteOptionsSchema.parse({});
  return (Object.keys(remoteOptionsSchema.shape) as Array<keyof RemoteOptions>)
    .filter((k) => o[k] !== undefined && o[k] !== (defaults as Partial<RemoteOptions>)[k])
    .map((k) => `${k}=${String(o[k])}`);
}

/** What changes a remote model's vectors (the sink's and dedupe's model reference). */
export function remoteRefOptions(o: RemoteOptions): string[] {
  return [`baseUrl=${o.baseUrl}`, ...(o.dimensions ? [`dimensions=${o.dimensions}`] : [])];
}
