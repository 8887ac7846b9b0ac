// The Perch web console (docs/api.md "Web console"): the device's status from GET /v1/status,
// then everything live over one Server-Sent Events stream (/v1/events): metrics once a second
// (charts, queues, backlog), events as they happen, model changes. No polling: the page changes
// when the device pushes.
import { events, getJson, setToken, token, Unauthorized } from './api.js';
import { LineChart } from './chart.js';
import { setupTry } from './try.js';

const $ = (id) => document.getElementById(id);
const MAX_EVENTS = 100;
const state = { status: null, rates: {}, source: null, lastSeq: null, fetchedAt: 0 };

const throughput = new LineChart($('throughput'), [{ name: 'items/s', colour: '--ok' }]);
const latency = new LineChart($('latency'), [{ name: 'p50', colour: '--p50' }, { name: 'p99', colour: '--p99' }], { unit: ' ms' });

async function start() {
  try {
    state.status = await getJson('/v1/status');
    state.fetchedAt = Date.now();
  } catch (err) {
    if (err instanceof Unauthorized) return askToken(token() ? 'that token was refused' : '');
    $('link').textContent = 'device unreachable';
    $('link').dataset.state = 'lost';
    setTimeout(start, 3000);
    return;
  }
  $('login').hidden = true;
  $('main').hidden = false;
  renderStatus();
  setupTry(state.status.models);
  listen();
}

function askToken(message) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token').focus();
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($('token').value.trim());
  start();
});

function listen() {
  state.source?.close();
  // The first connect resumes nothing (the page starts with the next event); the browser's own
  // reconnects send Last-Event-ID, so events emitted while the link was down come from the outbox.
  const source = (state.source = events(['models', 'connectivity', 'events', 'metrics']));
  source.onopen = () => setLink(state.status?.connectivity);
  source.onerror = () => {
    $('link').textContent = 'reconnecting';
    $('link').dataset.state = 'lost';
  };
  source.addEventListener('metrics', (e) => onMetrics(JSON.parse(e.data)));
  source.addEventListener('events', (e) => onEvent(JSON.parse(e.data)));
  source.addEventListener('connectivity', (e) => {
    state.status.connectivity = JSON.parse(e.data).state;
    renderCloud();
  });
  source.addEventListener('models', () => refresh());
}

/** A model changed state: read the status again (once per change, not on a timer). */
async function refresh() {
  try {
    state.status = await getJson('/v1/status');
    state.fetchedAt = Date.now();
    renderStatus();
  } catch (err) {
    if (err instanceof Unauthorized) askToken('the token was refused');
  }
}

function onMetrics(m) {
  state.rates = m.models;
  state.status.queue = m.queue;
  state.status.connectivity = m.connectivity;
  Object.assign(state.status.outbox, m.outbox);
  // The last desired document the cloud agent did not apply: in every sample while there is one.
  state.status.cloud = { ...state.status.cloud, ignored: m.cloudIgnored ?? null };
  throughput.add(m.at, [m.itemsPerSec]);
  latency.add(m.at, [m.latencyP50Ms, m.latencyP99Ms]);
  renderModels();
  renderCloud();
}

function onEvent(e) {
  state.lastSeq = e.seq;
  const li = item(new Date(), e.type, e.payload, e.seq);
  const list = $('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (e.type.startsWith('model.')) {
    state.status.modelChanges = [{ at: Date.now(), seq: e.seq, type: e.type, payload: e.payload }, ...(state.status.modelChanges ?? [])].slice(0, 20);
    renderChanges();
  }
}

function item(at, type, payload, seq) {
  const li = document.createElement('li');
  if (seq !== undefined) li.dataset.seq = String(seq);
  const t = document.createElement('span');
  t.className = 't';
  t.textContent = at.toLocaleTimeString();
  const k = document.createElement('span');
  k.className = 'k';
  k.textContent = type;
  li.append(t, k, document.createTextNode(JSON.stringify(payload ?? null).slice(0, 300)));
  return li;
}

function renderStatus() {
  const s = state.status;
  $('device').textContent = `${s.device?.id ?? ''} · ${s.device?.version ?? ''}`;
  renderModels();
  renderCloud();
  renderChanges();
}

function renderModels() {
  const s = state.status;
  const rows = (s.models ?? []).map((m) => {
    const r = state.rates[m.name] ?? {};
    const ready = m.ready ? (m.loadsOnFirstUse ? 'on first use' : 'yes') : 'NO';
    const p50 = sum(r.queueP50Ms, r.computeP50Ms);
    const p99 = sum(r.queueP99Ms, r.computeP99Ms);
    return [m.name, m.version ?? '-', ready, s.queue?.[m.name] ?? 0, r.itemsPerSec ?? 0, r.avgBatch || '-', p50 ?? '-', p99 ?? '-'];
  });
  const body = $('models').tBodies[0];
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    tr.dataset.model = String(cells[0]);
    for (const [i, c] of cells.entries()) {
      const td = document.createElement('td');
      td.textContent = String(c);
      if (i === 2) td.className = c === 'NO' ? 'no' : 'yes';
      tr.append(td);
    }
    return tr;
  }));
}

function renderCloud() {
  const s = state.status;
  setLink(s.connectivity);
  $('connectivity').textContent = s.connectivity;
  $('broker').textContent = s.cloud?.broker ?? 'no cloud configured';
  $('backlog').textContent = String(s.outbox?.count ?? 0);
  $('backlog-bytes').textContent = `(${bytes(s.outbox?.bytes ?? 0)})`;
  $('oldest').textContent = s.outbox?.count ? `${duration(s.outbox.oldestAgeMs)} old` : '-';
  // The device's own words (bounded, controls replaced: docs/cloud-sync.md), shown as text only.
  const ignored = s.cloud?.ignored;
  $('ignored').textContent = ignored ? `${ignored.code ?? ''}${ignored.code ? ': ' : ''}${ignored.reason}` : '-';
  $('uptime').textContent = duration((s.device?.uptimeMs ?? 0) + Date.now() - state.fetchedAt);
}

function renderChanges() {
  const list = $('changes');
  const changes = state.status.modelChanges ?? [];
  list.replaceChildren(...changes.map((c) => item(new Date(c.at), c.type, c.payload, c.seq)));
  if (changes.length === 0) list.append(Object.assign(document.createElement('li'), { textContent: 'none since start' }));
}

function setLink(connectivity) {
  const el = $('link');
  el.dataset.state = connectivity ?? 'unknown';
  el.textContent = connectivity === 'disabled' ? 'no cloud' : `cloud ${connectivity}`;
}

function sum(a, b) {
  return a == null || b == null ? null : Math.round((a + b) * 100) / 100;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor(s / 60) % 60}m`;
}

function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

start();
