/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * tests: every line must be a HELP, a TYPE or a sample of a declared family,
 * or parsing throws naming the line.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  type: string;
  help: string;
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
  /** Whether any sample has this exact name (e.g. `x_bucket`) or family. */
  hasSeries(name: string): boolean;
  /** The value of the one sample with exactly these labels; undefined if none. */
  value(name: string, labels: Record<string, string>): number | undefined;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// Values as Prometheus reads them (Go's ParseFloat): NaN and Inf in any case
// (prom-client writes NaN as `Nan`, e.g. the event-loop lag before its first sample).
const VALUE =
  '[-+]?(?:\\d+(?:\\.\\d*)?(?:[eE][-+]?\\d+)?|\\.\\d+(?:[eE][-+]?\\d+)?|[nN][aA][nN]|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)';
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`,
);
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    if (line === '') continue;
    let m = HELP.exec(line);
    if (m) {
      const f = families.get(m[1] as string) ?? { type: 'untyped', help: '' };
      families.set(m[1] as string, { ...f, help: m[2] as string });
      continue;
    }
    m = TYPE.exec(line);
    if (m) {
      const f = families.get(m[1] as string) ?? { type: 'untyped', help: '' };
      families.set(m[1] as string, { ...f, type: m[2] as string });
      continue;
    }
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    const family = [...families.entries()].find(
      ([f, { type }]) => f === name || (SUFFIXES[type] ?? []).some((s) => name === f + s),
    );
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[k as string] = (v as string).replace(/\\(.)/g, (_s, c: string) =>
        c === 'n' ? '\n' : c,
      );
    const raw = m[3] as string;
    const value = /^[-+]?inf/i.test(raw)
      ? raw.startsWith('-')
        ? -Infinity
        : Infinity
      : /nan/i.test(raw)
        ? NaN
        : Number(raw);
    samples.push({ name, labels, value });
  }
  return {
    families,
    samples,
    hasSeries: (name) => families.has(name) || samples.some((s) => s.name === name),
    value(name, labels) {
      const want = Object.entries(labels);
      const found = samples.filter(
        (s) =>
          s.name === name &&
          Object.keys(s.labels).length === want.length &&
          want.every(([k, v]) => s.labels[k] === v),
      );
      if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} is ambiguous`);
      return found[0]?.value;
    },
  };
}
