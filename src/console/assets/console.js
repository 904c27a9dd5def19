// The console page: polls /api/state and /api/dlq, renders with textContent
// only (names and messages come from producers), and asks for confirmation
// before anything that changes Redis. The admin key lives in this tab only.
import { drawChart } from './chart.js';

const KEY_STORE = 'streambed-console-admin-key';
const $ = (id) => document.getElementById(id);

let adminKey = sessionStorage.getItem(KEY_STORE);
let adminConfigured = false;
let lastState = null;
/** The console's sampling interval, from /api/state. */
let pollMs = 1000;
let lastDlq = [];
/** Texts the operator asked to see, by dead letter id; nothing else is ever fetched. */
const shownText = new Map();

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c);
  return node;
}

const fmt = {
  n: (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en-US')),
  rate: (v) =>
    v === null || v === undefined
      ? '–'
      : `${v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US')}/s`,
  dur(ms) {
    if (ms === null || ms === undefined) return '–';
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
    if (s < 86400)
      return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  },
  eta: (sec) => (sec === null || sec === undefined ? '–' : fmt.dur(sec * 1000)),
  ago: (ms) => (ms === null || ms === undefined ? 'never' : `${fmt.dur(ms)} ago`),
  /** Local time as 2026-01-31 14:05:09: sortable, and the same in every browser locale. */
  time(ms) {
    if (!ms) return '–';
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
};

async function api(path, body) {
  const headers = {};
  if (adminKey) headers.authorization = `Bearer ${adminKey}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw Object.assign(new Error(json.error ?? res.statusText), { status: res.status });
  return json;
}

function banner(text, kind = '') {
  const b = $('banner');
  b.hidden = !text;
  b.className = `banner ${kind}`;
  b.textContent = text ?? '';
}

/** The report's breaches, one line each (kind and message), as `status --check` lists them. */
function renderBreaches(report) {
  const list = report.breaches ?? [];
  $('breaches').hidden = list.length === 0;
  $('breaches')
    .querySelector('ul')
    .replaceChildren(
      ...list.map((b) => h('li', { 'data-kind': b.kind }, h('code', {}, b.kind), ` ${b.message}`)),
    );
}

function fill(tbodyId, emptyId, rows) {
  $(tbodyId)
    .querySelector('tbody')
    .replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
}

function renderModels(report) {
  fill(
    'models',
    'models-empty',
    report.models.map((m) => {
      // Summed over the streams that have a rate: a lane's sum is unknown while any of its
      // streams (an empty interactive stream, a new source's) has none.
      const rate = m.streams.reduce(
        (n, st) => (st.ratePerSec === null ? n : (n ?? 0) + st.ratePerSec),
        null,
      );
      const eta = rate ? Math.ceil(m.backlog / rate) : null;
      const lag = m.lanes.reduce((n, l) => (l.lag === null || n === null ? null : n + l.lag), 0);
      const pending = m.lanes.reduce((n, l) => n + l.pending, 0);
      return h(
        'tr',
        { 'data-model': m.model },
        h('td', { class: 'mono' }, m.model),
        h('td', { class: 'num' }, fmt.n(m.backlog)),
        h('td', { class: 'num' }, fmt.n(lag)),
        h('td', { class: 'num' }, fmt.n(pending)),
        h('td', { class: 'num' }, fmt.rate(rate)),
        h('td', { class: 'num' }, m.backlog === 0 ? '–' : fmt.eta(eta)),
        h(
          'td',
          { class: `num ${m.backlog > 0 && m.liveConsumers === 0 ? 'bad' : ''}` },
          `${m.liveConsumers} live / ${m.consumers.length}`,
        ),
        h('td', { class: `num ${m.dlqLength > 0 ? 'bad' : ''}` }, fmt.n(m.dlqLength)),
      );
    }),
  );
  fill(
    'consumers',
    'consumers-empty',
    report.models.flatMap((m) =>
      m.consumers.map((c) =>
        h(
          'tr',
          {},
          h('td', { class: 'mono' }, m.model),
          h('td', { class: 'mono' }, c.name),
          h('td', {}, h('span', { class: `badge ${c.state}` }, c.state)),
          h('td', { class: 'num' }, fmt.n(c.pending)),
          h('td', { class: 'num' }, fmt.dur(c.idleMs)),
          h('td', { class: 'num' }, c.oldestPending ? fmt.dur(c.oldestPending.idleMs) : '–'),
          h('td', { class: 'num' }, c.oldestPending ? fmt.n(c.oldestPending.deliveries) : '–'),
        ),
      ),
    ),
  );
}

/** A progress row: the bar carries its numbers in aria attributes (screen readers, tests). */
function progressRow(kind, name, p) {
  const total = p.submitted;
  const ok = kind === 'source' ? p.done + p.deduped : p.ok;
  const finished = kind === 'source' ? p.finished : p.answered;
  const bar = h('div', {
    class: `bar ${p.state === 'done' ? 'done' : ''}`,
    role: 'progressbar',
    'aria-label': `${kind} ${name}`,
    'aria-valuemin': 0,
    'aria-valuemax': total,
    'aria-valuenow': finished,
    [`data-${kind}`]: name,
  });
  const okFill = h('div', { class: 'fill' });
  const failFill = h('div', { class: 'fill failed' });
  // Widths through CSSOM, which the page's style-src 'self' allows (a style attribute it would not).
  okFill.style.width = `${total ? (100 * Math.min(ok, total)) / total : 0}%`;
  failFill.style.width = `${total ? (100 * Math.min(p.failed, total)) / total : 0}%`;
  bar.append(okFill, failFill);
  const lastMs =
    kind === 'source'
      ? p.lastDoneAgeMs
      : p.lastAnswerMs && lastState
        ? lastState.report.generatedAtMs - p.lastAnswerMs
        : null;
  return h(
    'div',
    { class: 'progress' },
    h(
      'div',
      { class: 'top' },
      h('span', { class: 'name mono' }, name),
      h('span', { class: `badge ${p.state}` }, p.state),
      h(
        'span',
        { class: 'count' },
        `${fmt.n(finished)} / ${fmt.n(total)}`,
        p.percent === null ? '' : `  (${p.percent}%)`,
      ),
    ),
    bar,
    h(
      'div',
      { class: 'meta' },
      h('span', {}, `rate ${fmt.rate(p.ratePerSec)}`),
      h('span', {}, `ETA ${p.state === 'done' ? 'done' : fmt.eta(p.etaSec)}`),
      h('span', { class: p.failed ? 'bad' : '' }, `failed ${fmt.n(p.failed)}`),
      p.replayed ? h('span', {}, `replayed ${fmt.n(p.replayed)}`) : undefined,
      h('span', { class: p.state === 'stale' ? 'bad' : '' }, `last answer ${fmt.ago(lastMs)}`),
    ),
  );
}

function renderProgress(report) {
  const sources = report.sources.filter((s) => s.submitted > 0 || s.finished > 0);
  $('sources').replaceChildren(...sources.map((s) => progressRow('source', s.source, s)));
  $('sources-empty').hidden = sources.length > 0;
  $('jobs').replaceChildren(...report.jobs.map((j) => progressRow('job', j.job, j)));
  $('jobs-empty').hidden = report.jobs.length > 0;
}

function syncSelect(select, values, label) {
  const current = select.value;
  const want = ['', ...values];
  const have = [...select.options].map((o) => o.value);
  if (want.join('\n') !== have.join('\n'))
    select.replaceChildren(...want.map((v) => h('option', { value: v }, v || `all ${label}`)));
  select.value = want.includes(current) ? current : '';
}

function renderFilters(state) {
  const f = $('dlq-filter');
  syncSelect(
    f.model,
    state.report.models.map((m) => m.model),
    'models',
  );
  syncSelect(
    f.source,
    state.report.sources.map((s) => s.source),
    'sources',
  );
  syncSelect(f.reason, state.reasons, 'reasons');
}

function renderDlq(entries, more) {
  const rows = [];
  for (const e of entries) {
    rows.push(
      h(
        'tr',
        { 'data-dlq-id': e.dlqId, 'data-page-id': e.id ?? '' },
        h('td', { class: 'mono' }, e.dlqId),
        h('td', { class: 'mono' }, e.model),
        h('td', { class: 'mono' }, e.source ?? '–'),
        h('td', { class: 'mono' }, e.id ?? '–'),
        h('td', {}, h('span', { class: 'badge dead' }, e.reason ?? '?')),
        h('td', { class: 'num' }, fmt.n(e.deliveries)),
        h('td', { class: 'tnum' }, fmt.time(e.failedMs)),
        h('td', { class: 'message' }, e.message ?? ''),
        h(
          'td',
          { class: 'actions admin-only' },
          h(
            'button',
            { type: 'button', class: 'show-text', onclick: () => toggleText(e) },
            shownText.has(e.dlqId) ? 'Hide text' : 'Show text',
          ),
          h(
            'button',
            { type: 'button', class: 'replay', onclick: () => act('replay', [e]) },
            'Replay',
          ),
          h(
            'button',
            { type: 'button', class: 'purge danger', onclick: () => act('purge', [e]) },
            'Purge',
          ),
        ),
      ),
    );
    const texts = shownText.get(e.dlqId);
    if (texts !== undefined)
      rows.push(
        h(
          'tr',
          { class: 'text-row', 'data-text-of': e.dlqId },
          h(
            'td',
            { colspan: 9 },
            h(
              'pre',
              { class: 'text' },
              texts === null ? '(no decodable text in this entry)' : texts.join('\n\n'),
            ),
          ),
        ),
      );
  }
  fill('dlq', 'dlq-empty', rows);
  $('dlq-count').textContent = entries.length ? `${entries.length}${more ? '+' : ''} shown` : '';
}

async function toggleText(e) {
  if (shownText.has(e.dlqId)) shownText.delete(e.dlqId);
  else {
    try {
      shownText.set(e.dlqId, (await api('/api/dlq/text', { model: e.model, id: e.dlqId })).texts);
    } catch (err) {
      return banner(`show text: ${err.message}`);
    }
  }
  renderDlq(lastDlq, false);
}

function confirmDialog(title, body, action) {
  $('confirm-title').textContent = title;
  $('confirm-body').textContent = body;
  $('confirm-ok').textContent = action;
  $('confirm-ok').className = `primary ${action.startsWith('Purge') ? 'danger' : ''}`;
  const d = $('confirm');
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) =>
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }),
  );
}

async function act(kind, entries) {
  if (!entries.length) return;
  const n =
    entries.length === 1 ? `dead letter ${entries[0].dlqId}` : `${entries.length} dead letters`;
  const ok = await confirmDialog(
    kind === 'replay' ? `Replay ${n}?` : `Purge ${n}?`,
    kind === 'replay'
      ? 'Each is sent back, with its original fields, to the request stream it came from, and leaves the dead-letter queue. If it fails again it comes back here with a new id.'
      : 'Each is deleted from the dead-letter queue for good. Nothing keeps a copy.',
    kind === 'replay' ? 'Replay' : 'Purge',
  );
  if (!ok) return;
  const byModel = new Map();
  for (const e of entries) byModel.set(e.model, [...(byModel.get(e.model) ?? []), e]);
  const done = [];
  try {
    for (const [model, list] of byModel) {
      const r = await api(`/api/dlq/${kind}`, { model, ids: list.map((e) => e.dlqId) });
      done.push(
        kind === 'replay'
          ? `replayed ${r.replayed.length}, skipped ${r.skipped.length}${r.skipped.length ? ` (${r.skipped[0].why})` : ''}`
          : `purged ${r.deleted}`,
      );
    }
    banner(done.join('; '), 'note');
  } catch (err) {
    banner(`${kind}: ${err.message}`);
  }
  await poll();
}

function renderAccess() {
  const box = $('access');
  document.body.classList.toggle('read-only', !adminConfigured || !adminKey);
  if (!adminConfigured)
    return box.replaceChildren(
      h(
        'span',
        {
          class: 'badge',
          title: 'start the console with CONSOLE_ADMIN_KEY_FILE to replay or purge',
        },
        'read-only',
      ),
    );
  if (adminKey)
    return box.replaceChildren(
      h('span', { class: 'badge live' }, 'admin'),
      ' ',
      h(
        'button',
        {
          type: 'button',
          id: 'lock',
          onclick: () => {
            forgetKey();
            renderAccess();
            renderDlq(lastDlq, false);
          },
        },
        'Lock',
      ),
    );
  box.replaceChildren(
    h('span', { class: 'badge' }, 'read-only'),
    ' ',
    h('button', { type: 'button', id: 'unlock-open', onclick: openUnlock }, 'Unlock'),
  );
}

function forgetKey() {
  adminKey = null;
  sessionStorage.removeItem(KEY_STORE);
  shownText.clear();
}

function openUnlock() {
  $('unlock-key').value = '';
  $('unlock-error').textContent = '';
  $('unlock').showModal();
}

async function tryUnlock(event) {
  event.preventDefault();
  const key = $('unlock-key').value.trim();
  const before = adminKey;
  adminKey = key;
  try {
    await api('/api/admin');
    sessionStorage.setItem(KEY_STORE, key);
    $('unlock').close();
    renderAccess();
    renderDlq(lastDlq, false);
  } catch (err) {
    adminKey = before;
    $('unlock-error').textContent = err.message;
  }
}

let timer;
async function poll() {
  clearTimeout(timer);
  try {
    const state = await api('/api/state');
    lastState = state;
    pollMs = Math.max(100, state.refreshMs ?? pollMs);
    if (state.adminConfigured !== adminConfigured) {
      adminConfigured = state.adminConfigured;
      // A key kept from before (the console restarted with another one) is checked once.
      if (adminConfigured && adminKey) await api('/api/admin').catch(forgetKey);
      renderAccess();
    }
    if (state.report) {
      const r = state.report;
      $('where').textContent = `prefix ${r.prefix} · group ${r.group}`;
      $('updated').textContent =
        `updated ${new Date(r.generatedAtMs).toLocaleTimeString('en-GB', { hour12: false })}`;
      renderBreaches(r);
      renderModels(r);
      renderProgress(r);
      renderFilters(state);
      drawChart($('chart'), state.throughput);
    }
    if (state.error) banner(state.error);
    else if ($('banner').className.trim() === 'banner') banner(null);
    const f = $('dlq-filter');
    const q = new URLSearchParams();
    for (const k of ['model', 'source', 'reason']) if (f[k].value) q.set(k, f[k].value);
    try {
      const dlq = await api(`/api/dlq?${q}`);
      lastDlq = dlq.entries;
      for (const id of shownText.keys())
        if (!lastDlq.some((e) => e.dlqId === id)) shownText.delete(id);
      renderDlq(dlq.entries, dlq.more);
    } catch (err) {
      // While Redis is away the status banner already says so.
      if (!state.error) banner(`dead letters: ${err.message}`);
    }
  } catch (err) {
    banner(`console unreachable: ${err.message}`);
  }
  timer = setTimeout(poll, pollMs);
}

$('unlock-ok').addEventListener('click', tryUnlock);
$('dlq-filter').addEventListener('change', () => poll());
$('dlq-filter').addEventListener('submit', (e) => e.preventDefault());
$('replay-shown').addEventListener('click', () => act('replay', lastDlq));
$('purge-shown').addEventListener('click', () => act('purge', lastDlq));
renderAccess();
poll();
