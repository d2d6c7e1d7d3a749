// drover dashboard: plain JavaScript, no framework, no build step.
//
// The model lives on the server: it folds each run's events with the code
// the terminal's progress view uses (package runview) and streams the
// whole view (/api/v1/view, server-sent "view" events; a past run's view
// from /api/v1/deploys/{id}/view). This page only draws it (render).
// Drawing is batched to one animation frame, and host tiles are kept and
// only updated, so a fleet of hundreds of hosts stays cheap to follow.
// Everything that comes from the server is put on the page as text, never
// as HTML.
'use strict';

const API = '/api/v1';
const TOKEN_KEY = 'drover.token';
const SERVICE_KEY = 'drover.service';
const CAN_CHANGE = new Set(['deployer', 'admin']);

const STATE_LABEL = {
  pending: 'pending',
  skipped: 'skipped',
  staging: 'staging',
  staged: 'staged',
  running: 'running',
  ok: 'ok',
  failed: 'failed',
  restored: 'restored',
  'rolling-back': 'rolling back',
  'rolled-back': 'rolled back',
  stuck: 'stuck',
};
// Hosts in these states have finished their path in this run.
const FINAL = new Set(['skipped', 'ok', 'failed', 'restored', 'rolled-back', 'stuck']);
// How a run can end, in the words the CLI prints: filled from GET
// /outcomes (the one table, outcome.go) at sign-in.
let OUTCOME_LABEL = {};
// Above this many batches a group is drawn as one grid of tiles.
const MAX_BATCH_ROWS = 12;

const $ = (id) => document.getElementById(id);

const state = {
  token: localStorage.getItem(TOKEN_KEY) || '',
  me: null,
  services: [],
  key: '',
  source: null, // EventSource
  retry: 0, // reconnect timer
  live: null, // the run the stream is feeding
  viewed: null, // a past run picked in the history, shown instead of live
  selectedHost: '',
  history: [],
  busy: false,
};

// ---- small DOM helpers -------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtTime(t) {
  if (!t || t.startsWith('0001-')) return '';
  const d = new Date(t);
  return isNaN(d) ? '' : d.toLocaleString();
}

function fmtDuration(ms) {
  if (!(ms >= 0)) return '';
  if (ms < 1000) return Math.round(ms) + 'ms';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
  return Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') + 'm';
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function showError(msg) {
  const e = $('error');
  e.textContent = msg || '';
  e.hidden = !msg;
}

// ---- API ---------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || '';
    this.hint = err.hint || '';
  }
  describe() {
    return this.message + (this.hint ? ` (${this.hint})` : '');
  }
}

async function api(path, opts = {}) {
  const headers = { Authorization: 'Bearer ' + state.token, Accept: 'application/json' };
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(API + path, { method: opts.method || 'GET', headers, body, cache: 'no-store' });
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = new APIError(res.status, data);
    if (res.status === 401) signOut('Your token was refused: ' + err.message);
    throw err;
  }
  return data;
}

const svcPath = (key) => '/services/' + encodeURIComponent(key);

// ---- sign in -----------------------------------------------------------

function signOut(msg) {
  state.token = '';
  state.me = null;
  localStorage.removeItem(TOKEN_KEY);
  closeStream();
  $('app').hidden = true;
  $('whoami').hidden = true;
  $('signout').hidden = true;
  $('service-picker').hidden = true;
  $('conn').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  $('token').value = '';
  $('token').focus();
}

async function signIn(token) {
  state.token = token;
  let me;
  try {
    me = await api('/whoami');
  } catch (err) {
    if (err.status !== 401) signOut('Cannot reach the server: ' + err.message);
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  state.me = me;
  try {
    OUTCOME_LABEL = Object.fromEntries(((await api('/outcomes')) || []).map((o) => [o.outcome, o.label]));
  } catch (err) {
    // Without the words the badges show the outcome's name.
  }
  const who = $('whoami');
  who.replaceChildren(el('span', { class: 'name', text: me.name }), el('span', { class: 'role', text: me.role }));
  who.title = me.services && me.services.length ? 'services: ' + me.services.join(', ') : 'every service';
  who.hidden = false;
  $('signout').hidden = false;
  $('login').hidden = true;
  $('app').hidden = false;
  await loadServices();
}

async function loadServices() {
  try {
    state.services = (await api('/services')) || [];
  } catch (err) {
    showError('Listing services: ' + err.describe());
    return;
  }
  const sel = $('service');
  sel.replaceChildren(...state.services.map((s) => el('option', { value: s.key, text: s.key })));
  $('service-picker').hidden = state.services.length < 2;
  if (!state.services.length) {
    showError('This server serves no service your token may see.');
    return;
  }
  const saved = localStorage.getItem(SERVICE_KEY);
  const key = state.services.some((s) => s.key === saved) ? saved : state.services[0].key;
  sel.value = key;
  selectService(key);
}

function selectService(key) {
  state.key = key;
  localStorage.setItem(SERVICE_KEY, key);
  state.live = null;
  state.viewed = null;
  state.selectedHost = '';
  showError('');
  render();
  openStream();
  refreshStatus();
  refreshHistory(true);
}

// ---- the view stream ---------------------------------------------------

function closeStream() {
  clearTimeout(state.retry);
  if (state.source) state.source.close();
  state.source = null;
}

function setConn(live, text) {
  const c = $('conn');
  c.hidden = false;
  c.className = 'conn ' + (live ? 'live' : 'down');
  c.textContent = text;
}

// The server folds the events (runview, the fold of the terminal's
// progress view) and sends the whole view of the service's current run,
// a few times a second while it changes; this page only draws it.
function openStream() {
  closeStream();
  const url = API + '/view?service=' + encodeURIComponent(state.key) + '&access_token=' + encodeURIComponent(state.token);
  const src = new EventSource(url);
  state.source = src;
  src.onopen = () => setConn(true, 'live');
  src.addEventListener('view', (m) => {
    let v;
    try { v = JSON.parse(m.data); } catch { return; }
    if (src !== state.source || !v) return;
    applyView(v);
  });
  src.onerror = () => {
    if (src !== state.source) return;
    setConn(false, 'reconnecting');
    if (src.readyState === EventSource.CLOSED) {
      // The browser gave up (the server refused the stream): ask why
      // (an expired token signs out), then try again.
      api('/whoami').then(() => {
        state.retry = setTimeout(() => { if (src === state.source) openStream(); }, 3000);
      }, () => {});
    }
  };
}

// ---- the run, as the server's view says ---------------------------------

// runOf adapts a server view (runview.View as JSON) for drawing: times as
// numbers, hosts by name, each host's failed steps. It decides nothing.
function runOf(v) {
  const run = {
    id: v.deploy,
    operation: v.operation || 'deploy',
    release: v.release || '',
    version: v.version || '',
    message: v.title || '',
    // Emergency overrides of this deploy (--skip-check and friends): shown
    // as a banner so that a green deploy does not hide that nothing checked it.
    overrides: v.overrides || [],
    start: v.start ? Date.parse(v.start) : Date.now(),
    end: v.end ? Date.parse(v.end) : 0,
    running: !!v.running,
    groups: [],
    hosts: new Map(),
    halt: v.halt || '',
    rollingBack: !!v.rolling_back,
    verdict: v.verdict || null,
    notices: (v.notes || []).map((n) => (n.host ? n.host + ': ' : '') + n.message),
    analyses: v.analyses || [],
  };
  const shape = [];
  for (const g of v.groups || []) {
    const group = {
      name: g.name,
      batch: g.batch || 1,
      limit: g.failure_limit || 0,
      batches: g.batches || 0,
      started: !!g.started,
      done: !!g.done,
      gate: g.gate || '',
      awaitingApproval: !!g.awaiting_approval,
      gateFailed: g.gate_failed || '',
      hosts: [],
    };
    for (const h of g.hosts || []) {
      const steps = (h.steps || []).map((x) => ({ step: x.step, restoring: !!x.restoring, outcome: x.outcome || '', elapsed: x.elapsed_ns || 0, message: x.message || '' }));
      const host = {
        name: h.name,
        group: g.name,
        state: h.state,
        batch: h.batch,
        step: h.step || '',
        active: !!h.active,
        steps,
        failures: steps.filter((x) => x.outcome && x.outcome !== 'ok').map((x) => ({ step: x.step, message: x.message || x.outcome })),
        failed: h.failed_message || '',
        stuck: h.stuck_message || '',
      };
      group.hosts.push(host);
      run.hosts.set(h.name, host);
    }
    shape.push(g.name + ':' + g.hosts.length + ':' + group.batches);
    run.groups.push(group);
  }
  // The tiles are rebuilt only when the run or its shape changes.
  run.gen = run.id + '|' + shape.join(',');
  return run;
}

let statusTimer = 0;

function applyView(v) {
  const prev = state.live;
  const run = runOf(v);
  state.live = run;
  if (!prev || prev.id !== run.id) {
    refreshHistory(false);
  }
  const finished = (r) => r ? [...r.hosts.values()].filter((h) => FINAL.has(h.state)).length : 0;
  if (prev && prev.id === run.id && !prev.verdict && run.verdict) {
    clearTimeout(statusTimer);
    refreshStatus();
    refreshHistory(false);
  } else if (!prev || prev.id !== run.id || finished(prev) !== finished(run)) {
    clearTimeout(statusTimer);
    statusTimer = setTimeout(refreshStatus, 1500);
  }
  if (!state.viewed) scheduleRender();
}

// ---- actions -----------------------------------------------------------

async function act(path, body, what) {
  if (state.busy) return;
  state.busy = true;
  scheduleRender();
  try {
    await api(path, { method: 'POST', body });
    showError('');
  } catch (err) {
    showError(what + ': ' + err.describe());
  } finally {
    state.busy = false;
    scheduleRender();
  }
}

function approve(run, group) {
  act('/deploys/' + encodeURIComponent(run.id) + '/approve', { group: group.name, note: 'approved in the dashboard' }, 'Approving');
}

function abort(run) {
  if (!window.confirm(`Abort ${run.id}? Every host it switched goes back to the release it had before.`)) return;
  act('/deploys/' + encodeURIComponent(run.id) + '/abort', { reason: 'aborted in the dashboard' }, 'Aborting');
}

// ---- drawing -----------------------------------------------------------

let frame = 0;
function scheduleRender() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

// Tiles are kept per run and host, and only their class and text change.
let tileGen = null;
const tiles = new Map();

function tileFor(h) {
  let t = tiles.get(h.name);
  if (!t) {
    const name = el('span', { class: 'name', text: h.name });
    const label = el('span', { class: 'label' });
    t = el('button', { type: 'button', class: 'tile', dataset: { host: h.name } }, name, label);
    t._li = el('li', {}, t);
    t._label = label;
    t._key = '';
    tiles.set(h.name, t);
  }
  const text = STATE_LABEL[h.state] + (h.active && h.step ? ': ' + h.step : '');
  const key = h.state + '|' + text + '|' + (state.selectedHost === h.name);
  if (t._key !== key) {
    t._key = key;
    t.className = 'tile state-' + h.state + (state.selectedHost === h.name ? ' selected' : '');
    t.setAttribute('aria-pressed', String(state.selectedHost === h.name));
    t.dataset.state = h.state;
    t._label.textContent = text;
    t.setAttribute('aria-label', `${h.name}: ${text}`);
    t.title = (h.failures.length ? h.failures[h.failures.length - 1].message : '') || text;
  }
  return t;
}

function currentRun() {
  return state.viewed || state.live;
}

function render() {
  const run = currentRun();
  renderHead(run);
  renderGroups(run);
  renderFailures(run);
  renderAnalyses(run);
  renderHostDetail(run);
  renderHistoryMarks();
}

function renderHead(run) {
  const mode = $('live-mode');
  if (state.viewed) {
    mode.hidden = false;
    mode.textContent = 'past deploy';
  } else {
    mode.hidden = true;
  }
  const title = $('run-title');
  if (!run) {
    title.textContent = state.key ? `No deploy of ${state.key} yet.` : '';
  } else {
    const what = run.operation === 'deploy' ? `${run.version || run.release}` : run.operation;
    const took = run.running ? fmtDuration(Date.now() - run.start) : run.end ? fmtDuration(run.end - run.start) : '';
    title.replaceChildren(
      el('strong', { text: run.operation + ' ' + (run.operation === 'deploy' ? what : '') }),
      ' ', el('span', { class: 'mono', text: run.id }),
      run.message ? ' · ' + run.message : '',
      took ? ` · ${run.running ? 'running for' : 'took'} ${took}` : '');
    if (run.overrides.length) {
      title.append(el('span', { class: 'override-banner', id: 'override-banner', dataset: { overrides: String(run.overrides.length) } },
        el('strong', { text: 'OVERRIDE' }),
        ' skipped ' + run.overrides.map((o) => `${o.kind} ${o.name}`).join(', ') + ' — ' + run.overrides[0].reason));
    }
  }

  const v = $('verdict');
  if (run && run.verdict) {
    v.hidden = false;
    v.className = 'verdict ' + run.verdict.outcome;
    v.dataset.outcome = run.verdict.outcome;
    v.replaceChildren(OUTCOME_LABEL[run.verdict.outcome] || run.verdict.outcome,
      run.verdict.message ? el('span', { class: 'detail', text: run.verdict.message }) : '');
  } else if (run && run.halt) {
    v.hidden = false;
    v.className = 'verdict halted';
    v.dataset.outcome = 'halted';
    v.replaceChildren(run.rollingBack ? 'Halted: rolling back' : 'Halted',
      el('span', { class: 'detail', text: run.halt }));
  } else if (run && run.running) {
    const waiting = run.groups.filter((g) => g.awaitingApproval).map((g) => g.name);
    v.hidden = false;
    v.className = 'verdict running';
    v.dataset.outcome = 'running';
    v.replaceChildren(waiting.length ? `Waiting for approval: ${waiting.join(', ')}` : 'Running',
      run.notices.length ? el('span', { class: 'detail', text: run.notices[run.notices.length - 1] }) : '');
  } else {
    v.hidden = true;
    v.dataset.outcome = '';
  }

  // Buttons exist only for roles that may use them; the server refuses a
  // viewer's change all the same.
  const actions = $('actions');
  const buttons = [];
  if (state.viewed) {
    buttons.push(el('button', { type: 'button', class: 'quiet', id: 'back-live', text: 'Back to live', onclick: () => { state.viewed = null; state.selectedHost = ''; render(); } }));
  }
  const may = state.me && CAN_CHANGE.has(state.me.role);
  if (may && run && run.running && !run.halt) {
    for (const g of run.groups.filter((x) => x.awaitingApproval)) {
      buttons.push(el('button', { type: 'button', id: 'approve', dataset: { group: g.name }, disabled: state.busy, text: `Approve ${g.name}`, onclick: () => approve(run, g) }));
    }
    buttons.push(el('button', { type: 'button', class: 'danger', id: 'abort', disabled: state.busy, text: 'Abort', onclick: () => abort(run) }));
  }
  const sig = buttons.map((b) => b.id + (b.dataset.group || '') + b.disabled).join(',');
  if (actions.dataset.sig !== sig) {
    actions.dataset.sig = sig;
    actions.replaceChildren(...buttons);
  }
}

function groupCounts(g) {
  const c = { ok: 0, bad: 0, back: 0, run: 0, total: g.hosts.length, final: 0 };
  for (const h of g.hosts) {
    if (h.state === 'ok' || h.state === 'skipped') c.ok++;
    else if (h.state === 'failed' || h.state === 'stuck') c.bad++;
    else if (h.state === 'restored' || h.state === 'rolled-back') c.back++;
    else if (h.state === 'running' || h.state === 'rolling-back') c.run++;
    if (FINAL.has(h.state)) c.final++;
  }
  return c;
}

// A group's progress bar: finished hosts by how they ended, and the ones
// in flight.
function makeBar() {
  const segs = ['seg-ok', 'seg-back', 'seg-bad', 'seg-run'].map((cls) => el('span', { class: cls }));
  const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0' }, segs);
  bar._segs = segs;
  return bar;
}

function updateBar(bar, c) {
  bar.setAttribute('aria-valuemax', String(c.total));
  bar.setAttribute('aria-valuenow', String(c.final));
  bar.setAttribute('aria-valuetext', `${c.final} of ${c.total} hosts finished`);
  // Widths go through the CSSOM: the page's Content-Security-Policy
  // refuses style attributes.
  [c.ok, c.back, c.bad, c.run].forEach((n, i) => {
    bar._segs[i].style.width = (c.total ? (100 * n) / c.total : 0) + '%';
  });
}

// groupViews are the group cards of the run drawn, built once per run
// (and when a host the plan did not name turns up) and then updated in
// place, so a tile keeps its keyboard focus while the deploy goes on.
let groupViews = [];

function buildGroups(run) {
  tiles.clear();
  groupViews = run.groups.map((g) => {
    const v = { g, info: el('span', { class: 'muted' }), gate: el('span', { class: 'gate', hidden: true }), bar: makeBar(), rows: [] };
    const body = [];
    const row = (label, hs) => {
      const lab = el('span', { class: 'batch-label' });
      v.rows.push({ lab, label, names: hs.map((h) => h.name) });
      body.push(el('div', { class: 'batch' }, lab, el('ul', { class: 'tiles', 'aria-label': `${g.name} ${label}` }, hs.map((h) => tileFor(h)._li))));
    };
    if (g.batches > 1 && g.batches <= MAX_BATCH_ROWS) {
      for (let b = 0; b < g.batches; b++) row(`batch ${b + 1}`, g.hosts.filter((h) => h.batch === b));
      const skipped = g.hosts.filter((h) => h.batch < 0);
      if (skipped.length) row('skipped', skipped);
    } else {
      body.push(el('ul', { class: 'tiles', 'aria-label': `${g.name || 'hosts'}` }, g.hosts.map((h) => tileFor(h)._li)));
    }
    v.el = el('div', { class: 'group', dataset: { group: g.name } },
      el('div', { class: 'group-head' }, el('h3', { text: g.name || '(no group)' }), v.info, v.gate), v.bar, body);
    return v;
  });
  $('groups').replaceChildren(...groupViews.map((v) => v.el));
}

function renderGroups(run) {
  if ((run ? run.gen : null) !== tileGen) {
    tileGen = run ? run.gen : null;
    if (!run) {
      tiles.clear();
      groupViews = [];
      $('groups').replaceChildren();
      return;
    }
    buildGroups(run);
  }
  if (!run) return;
  groupViews.forEach((v, i) => { v.g = run.groups[i]; });
  for (const v of groupViews) {
    const g = v.g;
    const c = groupCounts(g);
    const started = g.hosts.filter((h) => h.batch >= 0 && !['pending', 'staging', 'staged'].includes(h.state));
    const curBatch = started.length ? Math.max(...started.map((h) => h.batch)) + 1 : 0;
    const info = `${c.final}/${c.total} done · ${plural(g.batch, 'host')} at a time · failure limit ${g.limit}` + (g.batches > 1 ? (curBatch ? ` · batch ${curBatch} of ${g.batches}` : ` · ${g.batches} batches`) : '');
    if (v.info.textContent !== info) v.info.textContent = info;
    const gate = g.gateFailed ? 'gate failed: ' + g.gateFailed : g.gate ? 'gate: ' + g.gate : '';
    v.gate.hidden = !gate;
    v.gate.className = 'gate' + (g.gateFailed ? ' error' : '');
    if (v.gate.textContent !== gate) v.gate.textContent = gate;
    updateBar(v.bar, c);
    for (const r of v.rows) {
      const text = `${r.label} · ${r.names.filter((n) => FINAL.has(run.hosts.get(n).state)).length}/${r.names.length}`;
      if (r.lab.textContent !== text) r.lab.textContent = text;
    }
    for (const h of g.hosts) tileFor(h);
  }
}

function renderFailures(run) {
  const box = $('failures');
  const failing = run ? [...run.hosts.values()].filter((h) => h.failures.length || h.failed || h.stuck) : [];
  box.hidden = !failing.length;
  const sig = failing.map((h) => h.name + h.failures.length + h.state).join(',');
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  $('failure-list').replaceChildren(...failing.map((h) => {
    const f = h.failures[0];
    return el('div', { class: 'failure', dataset: { host: h.name } },
      el('strong', { text: h.name }), ' ', el('span', { class: 'muted', text: `${h.group} · ${STATE_LABEL[h.state]}` + (f ? ` · ${f.step} failed` : '') }),
      el('pre', { text: f ? f.message : (h.failed || h.stuck) }),
      h.stuck ? el('pre', { class: 'error', text: 'stuck: ' + h.stuck }) : null);
  }));
}

function renderHostDetail(run) {
  const box = $('host-detail');
  const h = run && state.selectedHost ? run.hosts.get(state.selectedHost) : null;
  if (!h) {
    box.hidden = true;
    box.dataset.sig = '';
    return;
  }
  const sig = h.name + h.steps.length + h.state;
  box.hidden = false;
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(
    el('h3', { text: `${h.name} · ${STATE_LABEL[h.state]}` }),
    h.steps.length ? el('table', {},
      el('thead', {}, el('tr', {}, el('th', { text: 'step' }), el('th', { text: 'outcome' }), el('th', { text: 'took' }), el('th', { text: 'message' }))),
      el('tbody', {}, h.steps.map((s) => el('tr', {},
        el('td', { text: s.step + (s.restoring && s.step !== 'restore' ? ' (back)' : '') }),
        el('td', { class: s.outcome === 'ok' ? '' : 'error', text: s.outcome }),
        el('td', { text: s.elapsed ? fmtDuration(s.elapsed / 1e6) : '' }),
        el('td', {}, s.message ? el('pre', { text: s.message }) : ''))))) : el('p', { class: 'muted', text: 'No step finished yet.' }));
}

// ---- canary chart ------------------------------------------------------

// chartData caches each analysis's metric (GET /deploys/{id}/analyses/
// {group}/{name}), fetched again when it has new evaluations, at most
// every few seconds while the deploy runs.
const chartData = new Map();
const CHART_REFRESH = 3000;

function chartKey(run, a) {
  return run.id + '/' + a.group + '/' + a.name;
}

function wantChart(run, a) {
  const key = chartKey(run, a);
  const c = chartData.get(key) || { evals: -1, at: 0, busy: false, data: null };
  chartData.set(key, c);
  if (c.busy || c.evals === a.evals.length) return c;
  if (run.running && Date.now() - c.at < CHART_REFRESH) {
    setTimeout(scheduleRender, CHART_REFRESH);
    return c;
  }
  c.busy = true;
  const evals = a.evals.length;
  api('/deploys/' + encodeURIComponent(run.id) + '/analyses/' + encodeURIComponent(a.group) + '/' + encodeURIComponent(a.name))
    .then((d) => { c.data = d; c.evals = evals; }, (err) => { c.data = { error: err.describe(), series: [] }; c.evals = evals; })
    .finally(() => { c.busy = false; c.at = Date.now(); scheduleRender(); });
  return c;
}

function renderAnalyses(run) {
  const box = $('analyses');
  const list = run ? run.analyses : [];
  box.hidden = !list.length;
  const cards = [];
  for (const a of list) {
    const c = wantChart(run, a);
    const sig = a.evals.length + '|' + (c.data ? c.evals : -1);
    const id = 'analysis-' + a.group + '-' + a.name;
    let card = document.getElementById(id);
    if (!card || card.dataset.sig !== sig || card.dataset.run !== run.id) {
      card = drawAnalysis(a, c.data);
      card.id = id;
      card.dataset.sig = sig;
      card.dataset.run = run.id;
    }
    cards.push(card);
  }
  const list2 = $('analysis-list');
  if (cards.length !== list2.children.length || cards.some((c, i) => list2.children[i] !== c)) list2.replaceChildren(...cards);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    e.setAttribute(k, String(v));
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function fmtClock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function fmtNum(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
}

// drawAnalysis draws one analysis: its hosts' metric over time, the
// threshold, when the canary switched, and each evaluation along the top,
// the halting one ringed and marked down the chart.
function drawAnalysis(a, data) {
  const series = (data && data.series) || [];
  const halted = a.evals.find((e) => e.halted);
  const canary = series.filter((s) => s.role === 'canary');
  const head = el('h4', {}, `${a.name} `, el('span', { class: 'muted', text: `${a.kind} · group ${a.group} · canary ${a.canary.join(', ')}` + (a.baseline && a.baseline.length ? ` vs ${plural(a.baseline.length, 'baseline host')}` : '') }));
  const legend = el('p', { class: 'muted' },
    el('span', { class: 'legend-line' }), 'canary',
    el('span', { class: 'legend-line baseline' }), 'baseline',
    a.max != null || a.min != null ? [el('span', { class: 'legend-line threshold' }), 'threshold'] : null,
    ` · ${plural(a.evals.length, 'evaluation')}: ${a.evals.filter((e) => e.status === 'pass').length} pass, ${a.evals.filter((e) => e.status === 'fail').length} fail, ${a.evals.filter((e) => e.status === 'no_data').length} no data`);
  const W = 760, H = 240, L = 52, R = 14, T = 26, B = 24;
  const times = a.evals.map((e) => Date.parse(e.at));
  let t0 = data && data.start ? Date.parse(data.start) : Math.min(...times, Date.parse(a.since));
  let t1 = data && data.end ? Date.parse(data.end) : Math.max(...times) + 1000;
  if (!(t1 > t0)) t1 = t0 + 1000;
  let lo = 0, hi = 0;
  for (const s of series) for (const p of s.points) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
  if (a.max != null) hi = Math.max(hi, a.max);
  if (a.min != null) lo = Math.min(lo, a.min);
  if (!(hi > lo)) hi = lo + 1;
  hi += (hi - lo) * 0.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const g = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${a.name}: ${series.length} host series, ${a.evals.length} evaluations` + (halted ? ', halted the deploy' : ''), 'data-analysis': a.name, 'data-group': a.group });
  g.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    const t = svg('text', { class: 'tick', x: L - 4, y: y(v) + 3, 'text-anchor': 'end' });
    t.textContent = fmtNum(v);
    g.append(t);
  }
  for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
    const e = svg('text', { class: 'tick', x: x(t), y: H - 8, 'text-anchor': anchor });
    e.textContent = fmtClock(t);
    g.append(e);
  }
  const since = Date.parse(a.since);
  if (since >= t0 && since <= t1) {
    g.append(svg('line', { class: 'switched', x1: x(since), y1: T, x2: x(since), y2: H - B }));
    const lab = svg('text', { class: 'tick', x: x(since) + 3, y: H - B - 4 });
    lab.textContent = 'canary done';
    g.append(lab);
  }
  for (const [bound, v] of [['max', a.max], ['min', a.min]]) {
    if (v == null) continue;
    const line = svg('line', { class: 'threshold', x1: L, y1: y(v), x2: W - R, y2: y(v), 'data-bound': bound, 'data-value': v });
    line.append(svg('title', {}, document.createTextNode(`${bound} ${v}`)));
    g.append(line);
  }
  // Baseline first, so the canary is drawn over it.
  for (const s of [...series].sort((p, q) => (p.role === 'canary') - (q.role === 'canary'))) {
    const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    const i = canary.indexOf(s);
    const line = svg('polyline', { class: `series ${s.role}` + (i > 0 ? ` c${i % 3}` : ''), points: pts, 'data-host': s.host, 'data-role': s.role, 'data-points': s.points.length });
    line.append(svg('title', {}, document.createTextNode(`${s.host} (${s.role})`)));
    g.append(line);
  }
  for (const e of a.evals) {
    const t = Date.parse(e.at);
    if (e.halted) {
      g.append(svg('line', { class: 'halt-line', x1: x(t), y1: T - 10, x2: x(t), y2: H - B }));
      const right = x(t) < W - R - 60;
      const lab = svg('text', { class: 'label halt', x: x(t) + (right ? 10 : -10), y: T + 4, 'text-anchor': right ? 'start' : 'end' });
      lab.textContent = 'halted';
      g.append(lab);
    }
    const dot = svg('circle', { class: `eval ${e.status}` + (e.verdict ? ' verdict' : '') + (e.halted ? ' halted' : ''), cx: x(t), cy: 12, r: e.halted ? 7 : 4,
      'data-at': e.at, 'data-status': e.status, 'data-halted': e.halted ? 'true' : 'false' });
    dot.append(svg('title', {}, document.createTextNode(`${fmtClock(t)} ${e.status}${e.verdict ? ' (verdict)' : ''}${e.halted ? ' — halted the deploy' : ''}: ${e.message || ''}`)));
    g.append(dot);
  }
  return el('div', { class: 'analysis', dataset: { analysis: a.name, group: a.group, halted: halted ? 'true' : 'false' } },
    head, legend, g,
    halted ? el('p', { class: 'halt-reason', text: 'halted the deploy: ' + halted.message }) : null,
    data && data.error ? el('p', { class: 'muted', text: 'metric unavailable: ' + data.error }) : null);
}

// ---- fleet matrix ------------------------------------------------------

async function refreshStatus() {
  const key = state.key;
  let st;
  try {
    st = await api(svcPath(key) + '/status');
  } catch (err) {
    if (key === state.key) showError('Reading the fleet: ' + err.describe());
    return;
  }
  if (key !== state.key) return;
  renderMatrix(st);
}

function renderMatrix(st) {
  const hosts = (st && st.hosts) || [];
  // Columns: every release a host is on or could go back to, newest first
  // (by the latest time a host switched to it).
  const rel = new Map();
  for (const h of hosts) {
    for (const [id, when] of [[h.release, h.deployed_at], [h.previous, '']]) {
      if (!id) continue;
      const t = when && !when.startsWith('0001-') ? Date.parse(when) : 0;
      const r = rel.get(id) || { id, t: 0, version: '', n: 0, foreign: false };
      r.t = Math.max(r.t, t);
      // Another tool's release (Capistrano, Scap, Ansible) has no version.
      if ((id === h.release && h.foreign) || (id === h.previous && h.previous_foreign)) r.foreign = true;
      if (id === h.release) {
        r.n++;
        r.version = h.version || r.version;
      }
      rel.set(id, r);
    }
  }
  const cols = [...rel.values()].sort((a, b) => b.t - a.t || b.n - a.n || a.id.localeCompare(b.id));
  const unreachable = hosts.filter((h) => !h.reachable).length;
  $('fleet-summary').textContent = `${plural(hosts.length, 'host')} · ${plural(cols.filter((c) => c.n).length, 'release')} live` + (unreachable ? ` · ${unreachable} unreachable` : '');
  const head = el('thead', {}, el('tr', {},
    el('th', { scope: 'col', text: 'host' }), el('th', { scope: 'col', text: 'group' }),
    cols.map((c) => el('th', { scope: 'col', class: 'mono' + (c.foreign ? ' foreign' : ''), title: (c.foreign ? 'foreign release (not staged by drover): releases/' : '') + c.id,
      text: (c.foreign ? 'foreign releases/' + c.id : (c.version || c.id.replace(/-[0-9a-f]{12}$/, ''))) + ` (${c.n})` })),
    el('th', { scope: 'col', text: 'deployed' })));
  const body = el('tbody', {}, hosts.map((h) => el('tr', { class: h.reachable ? '' : 'unreachable', dataset: { host: h.name, release: h.release || '' } },
    el('th', { scope: 'row', text: h.name, title: h.reachable ? h.address : 'unreachable: ' + (h.error || '') }),
    el('td', { text: h.group || '' }),
    cols.map((c) => {
      if (c.id === h.release) return el('td', { class: 'cell cur', title: 'current: ' + c.id }, el('span', { 'aria-hidden': 'true', text: '●' }), el('span', { class: 'skip', text: 'current' }));
      if (c.id === h.previous) return el('td', { class: 'cell prev', title: 'previous: ' + c.id }, el('span', { 'aria-hidden': 'true', text: '○' }), el('span', { class: 'skip', text: 'previous' }));
      return el('td', { class: 'cell' });
    }),
    el('td', { class: 'muted', text: !h.reachable ? 'unreachable' : h.unadopted ? 'live directory as current: run drover adopt' : fmtTime(h.deployed_at) }))));
  $('matrix').replaceChildren(head, body);
}

// ---- history -----------------------------------------------------------

async function refreshHistory(first) {
  const key = state.key;
  let list;
  try {
    list = (await api(svcPath(key) + '/deploys?limit=25')) || [];
  } catch (err) {
    if (key === state.key) showError('Reading the history: ' + err.describe());
    return;
  }
  if (key !== state.key) return;
  state.history = list;
  renderHistory();
  // Opened while nothing runs: show the last deploy, until a new one starts.
  if (first && !state.live && list.length) {
    try {
      const v = await api('/deploys/' + encodeURIComponent(list[0].id) + '/view');
      if (key === state.key && !state.live) {
        state.live = runOf(v);
        scheduleRender();
      }
    } catch { /* the history row is still there */ }
  }
}

function renderHistory() {
  const rows = state.history.map((d) => {
    const outcome = d.outcome || 'running';
    const open = () => viewDeploy(d.id);
    return el('tr', { tabindex: '0', dataset: { deploy: d.id }, onclick: open, onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } } },
      el('td', { text: fmtTime(d.started) }),
      el('td', { class: 'mono', text: d.id }),
      el('td', {}, d.kind, d.overrides && d.overrides.length
        ? el('span', { class: 'override-badge', title: d.overrides.map((o) => `skipped ${o.kind} ${o.name}: ${o.reason}`).join('\n'), text: 'override' })
        : ''),
      el('td', { text: d.version || '' }),
      el('td', { text: d.user || '' }),
      el('td', {}, el('span', { class: 'outcome ' + outcome, text: OUTCOME_LABEL[outcome] || outcome })),
      el('td', { text: d.summary || d.message || '' }));
  });
  $('history-rows').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '7', class: 'muted', text: 'No deploy yet.' }))]));
  renderHistoryMarks();
}

function renderHistoryMarks() {
  const id = state.viewed ? state.viewed.id : '';
  for (const tr of $('history-rows').children) tr.classList.toggle('viewing', !!id && tr.dataset.deploy === id);
}

async function viewDeploy(id) {
  if (state.live && state.live.id === id) {
    state.viewed = null;
    render();
    return;
  }
  try {
    const v = await api('/deploys/' + encodeURIComponent(id) + '/view');
    state.viewed = runOf(v);
    state.selectedHost = '';
    showError('');
    render();
    $('live').scrollIntoView({ behavior: 'smooth', block: 'start' });
  } catch (err) {
    showError('Reading ' + id + ': ' + err.describe());
  }
}

// ---- wiring ------------------------------------------------------------

function selectTile(target) {
  const t = target.closest('.tile');
  if (!t) return;
  state.selectedHost = state.selectedHost === t.dataset.host ? '' : t.dataset.host;
  render();
}

function init() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const tok = $('token').value.trim();
    if (tok) signIn(tok);
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('service').addEventListener('change', (e) => selectService(e.target.value));
  $('groups').addEventListener('click', (e) => selectTile(e.target));
  // The elapsed time of a running deploy.
  setInterval(() => {
    const run = currentRun();
    if (run && run.running) renderHead(run);
  }, 1000);
  if (state.token) signIn(state.token);
  else signOut('');
}

init();
