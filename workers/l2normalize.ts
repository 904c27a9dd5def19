/**
 * Scale each row of `dim` values to unit length, in place (a zero row stays
 * zero). One implementation for every place a vector is normalised: the
 * embed core's output, a page's mean vector, a Matryoshka vector the
 * gateway cuts short.
 */
export function l2normalize(data: Float32Array, dim: number = data.length): Float32Array {
  for (let off = 0; off < data.length; off += dim) {
    let sum = 0;
    for (let d = 0; d < dim; d++) sum += (data[off + d] as number) ** 2;
    const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let d = 0; d < dim; d++) data[off + d]! *= inv;
  }
  return data;
}
