/**
 * `meta`, the producer's map echoed back in the result (docs/design.md,
 * "Request entry"). Other languages put 64-bit integers in it (ids, epoch
 * ns); msgpackr reads msgpack int64/uint64 as BigInt, which JSON.stringify
 * refuses and a double would round. So: the env form's meta bytes are kept
 * and echoed as they came; the flat form's JSON is parsed with integers
 * beyond 2^53 kept exact as BigInt (msgpack int64/uint64 in the result); and
 * the JSON text of a meta (its size rule, the sink's jsonb column) writes a
 * BigInt as its digits.
 */

/** The producer's own msgpack encoding of a decoded meta, kept beside it until answered. */
const packed = new WeakMap<object, Uint8Array>();

/** Remember the bytes `meta` was decoded from, so the result echoes them untouched. */
export function rememberPackedMeta(meta: object, bytes: Uint8Array): void {
  packed.set(meta, bytes);
}

/** The bytes `meta` was decoded from, when it came from an env field (not for a copy). */
export function packedMetaOf(meta: object): Uint8Array | undefined {
  return packed.get(meta);
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * JSON.parse, except that an integer literal beyond 2^53 that fits msgpack's
 * int64/uint64 range becomes a BigInt of its exact value. Wider integers stay
 * doubles (msgpack has nothing wider). Throws SyntaxError like JSON.parse.
 */
export function parseJsonExact(text: string): unknown {
  const value: unknown = JSON.parse(text);
  // 16 digits in a row is the shortest a JSON integer beyond 2^53 can be.
  if (!/\d{16}/.test(text)) return value;
  return new ExactJson(text).value();
}

/**
 * A JSON reader for text JSON.parse has already accepted: it only has to
 * tell numbers apart, so strings are handed back to JSON.parse for escapes.
 */
class ExactJson {
  private pos = 0;
  constructor(private readonly text: string) {}

  value(): unknown {
    this.space();
    const c = this.text[this.pos];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    const m = /-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null/y;
    m.lastIndex = this.pos;
    const token = m.exec(this.text)?.[0] ?? '';
    this.pos += token.length;
    if (token === 'true') return true;
    if (token === 'false') return false;
    if (token === 'null') return null;
    return exactNumber(token);
  }

  private object(): Record<string, unknown> {
    const entries: [string, unknown][] = [];
    this.pos++;
    while (this.next() !== '}') {
      const key = this.string();
      this.next(); // ':'
      entries.push([key, this.value()]);
      this.space();
      if (this.text[this.pos] === ',') this.pos++;
    }
    // fromEntries defines properties, so a "__proto__" key stays a plain key as in JSON.parse.
    return Object.fromEntries(entries);
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.pos++;
    while (this.next() !== ']') {
      out.push(this.value());
      this.space();
      if (this.text[this.pos] === ',') this.pos++;
    }
    return out;
  }

  private string(): string {
    this.space();
    const m = /"(?:[^"\\]|\\.)*"/y;
    m.lastIndex = this.pos;
    const token = m.exec(this.text)?.[0] ?? '""';
    this.pos += token.length;
    return JSON.parse(token) as string;
  }

  /** Skip white space; consume and return a closing bracket or a colon, else leave it. */
  private next(): string {
    this.space();
    const c = this.text[this.pos];
    // Unreachable for text JSON.parse accepted; stops a loop rather than spin.
    if (c === undefined) throw new SyntaxError('Unexpected end of JSON input');
    if (c === '}' || c === ']' || c === ':') this.pos++;
    return c;
  }

  private space(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }
}

function exactNumber(token: string): number | bigint {
  const n = Number(token);
  if (Number.isSafeInteger(n) || !/^-?\d+$/.test(token)) return n;
  const big = BigInt(token);
  return big >= INT64_MIN && big <= UINT64_MAX ? big : n;
}

/** JSON text of a meta, BigInts written as their digits (exact, as JSON allows). */
export function metaJson(meta: unknown): string {
  try {
    return JSON.stringify(meta);
  } catch (err) {
    // TypeError is JSON.stringify's refusal of a BigInt; anything else is not ours to hide.
    if (!(err instanceof TypeError)) throw err;
  }
  return withBigInts(meta) ?? 'null';
}

function withBigInts(v: unknown): string | undefined {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `[${v.map((x) => withBigInts(x) ?? 'null').join(',')}]`;
  if (v !== null && typeof v === 'object' && isPlain(v)) {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) {
      const s = withBigInts(x);
      if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
    }
    return `{${parts.join(',')}}`;
  }
  // Leaves and objects with their own toJSON (Buffer, Date) never hold a BigInt.
  return JSON.stringify(v);
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
