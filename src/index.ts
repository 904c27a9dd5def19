/**
 * The producer SDK: `import { StreambedClient } from 'streambed'`.
 * Nothing here loads the worker, ONNX Runtime or prom-client.
 */
export {
  type ClientOptions,
  type EmbedOptions,
  StreambedClient,
  type SubmitOptions,
} from './client/client.js';
export { decodeResult } from './codec/result.js';
export {
  type ErrorCode,
  RESULT_ERROR_CODES,
  type ResultErrorCode,
  StreambedError,
} from './errors.js';
export { DEFAULT_GROUP, DEFAULT_PREFIX, type Keys, keys, type Lane } from './keys.js';
export type { EmbedResult, Envelope, ErrorPayload, OkPayload, Page, ReplyMode } from './types.js';
