// The throughput chart: one line per model, drawn as inline SVG by hand
// (no chart library, nothing fetched from elsewhere, no inline style).
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#1f6feb', '#1a7f37', '#bf3989', '#9a6700', '#8250df', '#cf222e'];
const H = 200;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A round upper bound for the y axis (1, 2 or 5 times a power of ten). */
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function clock(ms) {
  return new Date(ms).toTimeString().slice(0, 5);
}

/** Buckets shown at least (5 minutes), so a fresh console still draws a readable window. */
const MIN_BUCKETS = 30;

/**
 * The part of the hour the console has seen (at least MIN_BUCKETS): a console
 * started two minutes ago draws two minutes across the width, not a sliver.
 */
function visible(series) {
  const names = Object.keys(series?.models ?? {});
  const n = names.length ? series.models[names[0]].length : 0;
  const known = series?.sinceMs
    ? Math.floor((series.sinceMs - series.startMs) / series.bucketMs)
    : 0;
  const from = Math.max(0, Math.min(known, n - MIN_BUCKETS));
  const models = Object.fromEntries(names.map((m) => [m, series.models[m].slice(from)]));
  return {
    names,
    models,
    n: n - from,
    startMs: (series?.startMs ?? 0) + from * (series?.bucketMs ?? 0),
  };
}

export function drawChart(host, series) {
  // Drawn at the host's pixel width, so text is never stretched.
  const W = Math.max(320, host.clientWidth || 1000);
  host.replaceChildren();
  const { names, models, n, startMs } = visible(series);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  svg.setAttribute('aria-label', 'entries acknowledged per second over the last hour');
  const max = niceMax(Math.max(0, ...names.flatMap((m) => models[m].filter((v) => v !== null))));
  const x = (i) => PAD.left + (i * (W - PAD.left - PAD.right)) / Math.max(1, n - 1);
  const y = (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  for (const f of [0, 0.5, 1]) {
    svg.append(
      el('line', {
        class: 'axis',
        x1: PAD.left,
        x2: W - PAD.right,
        y1: y(max * f),
        y2: y(max * f),
      }),
    );
    svg.append(
      el(
        'text',
        { class: 'tick', x: PAD.left - 6, y: y(max * f) + 4, 'text-anchor': 'end' },
        `${+(max * f).toPrecision(3)}`,
      ),
    );
  }
  if (series && n > 1) {
    for (const i of [0, Math.floor(n / 2), n - 1]) {
      const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
      svg.append(
        el(
          'text',
          { class: 'tick', x: x(i), y: H - 6, 'text-anchor': anchor },
          clock(startMs + i * series.bucketMs),
        ),
      );
    }
  }
  names.forEach((m, k) => {
    // A gap (the console was not sampling) breaks the line instead of drawing a false zero.
    let d = '';
    let pen = 'M';
    models[m].forEach((v, i) => {
      if (v === null) {
        pen = 'M';
        return;
      }
      d += `${pen}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = 'L';
    });
    const color = COLORS[k % COLORS.length];
    svg.append(
      el('path', {
        d,
        fill: 'none',
        stroke: color,
        'stroke-width': 1.8,
        'stroke-linejoin': 'round',
      }),
    );
  });
  host.append(svg);
  const legend = document.createElement('div');
  legend.className = 'legend';
  names.forEach((m, k) => {
    const item = document.createElement('span');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    // CSSOM, not a style attribute: allowed under style-src 'self'.
    swatch.style.background = COLORS[k % COLORS.length];
    const last = [...models[m]].reverse().find((v) => v !== null);
    item.append(swatch, `${m}${last === undefined ? '' : `  ${last}/s now`}`);
    legend.append(item);
  });
  if (!names.length) legend.append('No acknowledged entries since the console started.');
  host.append(legend);
}
