/**
 * Float32Array <-> pgvector's text form. Vectors travel as text ('[1,2,3]') in
 * both directions: it works the same over `pg` and PGlite, and float4 values
 * survive the round trip exactly (JS prints the shortest decimal that parses
 * back to the same double, and pgvector prints float4 the same way).
 */
import { fromSql, toSql } from 'pgvector';

import { StreambedError } from '../errors.js';

/** Text form for a `$n::vector` parameter; rejects (`invalid`) what pgvector would reject. */
export function encodeVector(vector: Float32Array, dim: number, where: string): string {
  if (vector.length !== dim) {
    throw new StreambedError(
      'invalid',
      `sink: ${where}: vector has ${vector.length} dimensions, table expects ${dim}`,
    );
  }
  for (const v of vector) {
    if (!Number.isFinite(v)) {
      throw new StreambedError('invalid', `sink: ${where}: vector contains ${v}`);
    }
  }
  return toSql(Array.from(vector)) as string;
}

/**
 * A `vector` column as the driver returned it: number[] once pgvector's parser
 * is registered, or its text form otherwise (a query issued before
 * registration), which is parsed the same way.
 */
export function decodeVector(value: unknown): Float32Array {
  if (Array.isArray(value)) return Float32Array.from(value as number[]);
  if (typeof value === 'string') return Float32Array.from(fromSql(value) as number[]);
  throw new StreambedError('internal', `sink: unexpected vector value of type ${typeof value}`);
}
