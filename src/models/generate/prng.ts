/**
 * Seeded pseudo-random numbers for the model generator. Every weight tensor
 * gets its own stream derived from (seed, tensor name), so the bytes of one
 * tensor do not depend on the order in which tensors are generated.
 * sfc32 is used because it is fast in 32-bit integer JavaScript arithmetic;
 * normals come from Box-Muller, written straight into Float32Arrays.
 */

/** A uniform generator of 32-bit unsigned integers. */
export type Rng = () => number;

const TWO_POW_32 = 4294967296;

/** FNV-1a over UTF-16 code units: a stable 32-bit hash of a tensor name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32 step: spreads low-entropy seeds over the whole sfc32 state. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** An sfc32 generator keyed by a safe-integer seed and a stream name. */
export function createRng(seed: number, stream: string): Rng {
  // Both halves of the seed count, so seeds above 2^32 still differ.
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  const mix = { s: lo ^ Math.imul(hashString(stream), 0x27d4eb2f) ^ Math.imul(hi, 0x165667b1) };
  let a = splitmix32(mix);
  let b = splitmix32(mix);
  let c = splitmix32(mix);
  let d = splitmix32(mix);
  const rng: Rng = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Discard the first outputs: sfc32 mixes its state in a few rounds.
  for (let i = 0; i < 12; i++) rng();
  return rng;
}

/** Fills `out` with normal(mean, std) samples (Box-Muller, two per draw pair). */
export function fillNormal(out: Float32Array, rng: Rng, std: number, mean = 0): Float32Array {
  const n = out.length;
  let i = 0;
  while (i < n) {
    // (x + 0.5) / 2^32 is in (0, 1): log() never sees zero.
    const u1 = (rng() + 0.5) / TWO_POW_32;
    const u2 = (rng() + 0.5) / TWO_POW_32;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    const theta = 2 * Math.PI * u2;
    out[i++] = mean + r * Math.cos(theta);
    if (i < n) out[i++] = mean + r * Math.sin(theta);
  }
  return out;
}
