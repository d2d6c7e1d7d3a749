// drover dashboard: plain JavaScript, no framework, no build step.
//
// The model: the server's event stream (/api/v1/events, server-sent events
// of drover.Event JSON, docs/events.md) is folded into one "run" per deploy
// (applyEvent), and the page is drawn from that run (render). Drawing is
// batched to one animation frame, and host tiles are kept and only updated,
// so a fleet of hundreds of hosts stays cheap to follow. Everything that
// comes from the server is put on the page as text, never as HTML.
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

// ---- the event stream --------------------------------------------------

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

function openStream() {
  closeStream();
  const url = API + '/events?service=' + encodeURIComponent(state.key) + '&access_token=' + encodeURIComponent(state.token);
  const src = new EventSource(url);
  state.source = src;
  src.onopen = () => setConn(true, 'live');
  src.addEventListener('drover', (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.service && ev.service !== state.key) return;
    applyEvent(ev);
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

// ---- the run model -----------------------------------------------------

function newRun(ev) {
  const run = {
    id: ev.deploy,
    operation: ev.operation || 'deploy',
    release: ev.release || '',
    version: ev.version || '',
    message: ev.message || '',
    // Emergency overrides of this deploy (--skip-check and friends): shown
    // as a banner so that a green deploy does not hide that nothing checked it.
    overrides: ev.overrides || [],
    start: ev.time ? Date.parse(ev.time) : Date.now(),
    end: 0,
    running: true,
    groups: [],
    hosts: new Map(),
    halt: '',
    rollingBack: false,
    verdict: null,
    notices: [],
    source: 'live',
    gen: 0, // bumped when the structure changes
  };
  for (const g of ev.groups || []) {
    const skipped = new Set(g.skipped || []);
    const group = {
      name: g.name,
      batch: g.batch > 0 ? g.batch : 1,
      limit: g.failure_limit || 0,
      hosts: [],
      started: false,
      done: false,
      gate: '',
      awaitingApproval: false,
      gateFailed: '',
    };
    let i = 0;
    for (const name of g.hosts || []) {
      const h = {
        name,
        group: g.name,
        state: skipped.has(name) ? 'skipped' : 'pending',
        batch: skipped.has(name) ? -1 : Math.floor(i++ / group.batch),
        step: '',
        active: false,
        steps: [],
        failures: [],
      };
      group.hosts.push(h);
      run.hosts.set(name, h);
    }
    group.batches = Math.ceil(i / group.batch);
    run.groups.push(group);
  }
  return run;
}

function hostOf(run, ev) {
  if (!ev.host) return null;
  let h = run.hosts.get(ev.host);
  if (!h) {
    // A host the plan did not name (a recovery's own hosts): add it.
    let g = run.groups.find((x) => x.name === (ev.group || ''));
    if (!g) {
      g = { name: ev.group || '', batch: 1, limit: 0, hosts: [], batches: 0, gate: '', awaitingApproval: false, gateFailed: '' };
      run.groups.push(g);
    }
    h = { name: ev.host, group: g.name, state: 'pending', batch: g.batches++, step: '', active: false, steps: [], failures: [] };
    g.hosts.push(h);
    run.hosts.set(ev.host, h);
    run.gen++;
  }
  return h;
}

// applyEvent folds one event into run; it returns the run it changed.
function fold(run, ev) {
  const h = hostOf(run, ev);
  const g = run.groups.find((x) => x.name === ev.group);
  switch (ev.kind) {
    case 'step_start':
      if (!h) break;
      h.step = ev.step + (ev.restoring && ev.step !== 'restore' ? ' (back)' : '');
      h.active = true;
      if (ev.step === 'stage') {
        h.state = 'staging';
      } else if (ev.restoring) {
        if (h.state !== 'failed' && h.state !== 'stuck') h.state = 'rolling-back';
      } else if (h.state === 'pending' || h.state === 'staged' || h.state === 'staging') {
        h.state = 'running';
      }
      break;
    case 'step_done': {
      if (!h) break;
      h.active = false;
      h.steps.push({ step: ev.step, restoring: !!ev.restoring, outcome: ev.outcome || '', elapsed: ev.elapsed_ns || 0, message: ev.message || '' });
      if (ev.outcome && ev.outcome !== 'ok') {
        h.failures.push({ step: ev.step, restoring: !!ev.restoring, message: ev.message || ev.outcome });
        if (ev.outcome === 'unreachable') h.unreachable = true;
        if (h.state !== 'stuck') h.state = 'failed';
      } else if (ev.step === 'stage' && h.state === 'staging') {
        h.state = 'staged';
      }
      break;
    }
    case 'host_failed':
      if (!h) break;
      h.state = 'failed';
      h.failed = ev.message || '';
      break;
    case 'host_done':
      if (h) h.state = 'ok';
      break;
    case 'host_restored':
      if (h) h.state = 'restored';
      break;
    case 'host_rolled_back':
      if (h) h.state = 'rolled-back';
      break;
    case 'host_stuck':
      if (!h) break;
      h.state = 'stuck';
      h.stuck = ev.message || '';
      break;
    case 'group_start':
      if (g) g.started = true;
      break;
    case 'group_done':
      if (g) g.done = true;
      break;
    case 'gate_start':
      if (!g) break;
      g.gate = ev.message || 'gate';
      g.awaitingApproval = ev.gate === 'approve';
      break;
    case 'gate_done':
    case 'gate_failed':
      if (!g) break;
      g.gate = '';
      g.awaitingApproval = false;
      if (ev.kind === 'gate_failed') g.gateFailed = ev.message || 'gate failed';
      break;
    case 'gate_skipped':
      if (g) { g.gate = ''; g.awaitingApproval = false; }
      run.notices.push('override: group ' + (ev.group || '') + ': ' + (ev.message || 'gate skipped'));
      break;
    case 'halt':
      run.halt = ev.message || 'halted';
      for (const x of run.groups) x.awaitingApproval = false;
      break;
    case 'abort':
      run.notices.push('aborted: ' + (ev.message || ''));
      break;
    case 'rollback_start':
      run.rollingBack = true;
      run.rollbackMessage = ev.message || '';
      break;
    case 'notice':
      run.notices.push((ev.host ? ev.host + ': ' : '') + (ev.message || ''));
      if (run.notices.length > 20) run.notices.shift();
      break;
    case 'verdict':
      run.verdict = { outcome: ev.outcome || '', message: ev.message || '' };
      run.running = false;
      run.end = ev.time ? Date.parse(ev.time) : Date.now();
      for (const x of run.groups) x.awaitingApproval = false;
      // Staged and never switched: the run left them as they were.
      for (const x of run.hosts.values()) {
        if (x.state === 'staged' || x.state === 'staging') x.state = 'pending';
        x.active = false;
      }
      break;
  }
  return run;
}

let statusTimer = 0;

function applyEvent(ev) {
  if (ev.kind === 'deploy_start') {
    state.live = newRun(ev);
  } else if (!state.live || ev.deploy !== state.live.id) {
    // An event of a run whose start this page never saw.
    return;
  } else {
    fold(state.live, ev);
  }
  switch (ev.kind) {
    case 'host_done':
    case 'host_restored':
    case 'host_rolled_back':
      clearTimeout(statusTimer);
      statusTimer = setTimeout(refreshStatus, 1500);
      break;
    case 'deploy_start':
      refreshHistory(false);
      break;
    case 'verdict':
      clearTimeout(statusTimer);
      refreshStatus();
      // The record is finished by the server just after the verdict.
      setTimeout(() => refreshHistory(false), 400);
      break;
  }
  if (!state.viewed) scheduleRender();
}

// runFromRecord makes a run to show from GET /deploys/{id}: its in-memory
// events when the server ran it, else its record and journal.
function runFromRecord(d) {
  const rec = d.record || {};
  const events = d.events || [];
  let run;
  if (events.length && events[0].kind === 'deploy_start') {
    run = newRun(events[0]);
    for (const ev of events.slice(1)) if (ev.deploy === run.id) fold(run, ev);
  } else {
    const byGroup = new Map();
    for (const h of rec.hosts || []) {
      if (!byGroup.has(h.group)) byGroup.set(h.group, { name: h.group, hosts: [], skipped: [], batch: 0, failure_limit: 0 });
      const g = byGroup.get(h.group);
      g.hosts.push(h.name);
      if (h.skipped) g.skipped.push(h.name);
    }
    for (const g of byGroup.values()) g.batch = Math.max(1, g.hosts.length);
    run = newRun({ deploy: rec.id, operation: rec.kind, release: rec.release, version: rec.version, message: rec.message, time: rec.started, groups: [...byGroup.values()], overrides: rec.overrides });
    run.source = 'journal';
    for (const j of d.journal || []) {
      const h = run.hosts.get(j.host);
      if (!h) continue;
      if (j.phase !== 'done') continue;
      h.steps.push({ step: j.step, restoring: j.step === 'restore', outcome: j.outcome || '', elapsed: j.elapsed_ns || 0, message: j.reason || j.output || '' });
      // The journal does not mark the steps of the way back; they are
      // the ones after a host's restore step.
      if (j.outcome && j.outcome !== 'ok') {
        h.failures.push({ step: j.step, message: j.output || j.reason || j.outcome });
        h.state = h.back ? 'stuck' : 'failed';
      } else if (j.step === 'restore') {
        h.state = h.state === 'failed' ? 'restored' : 'rolled-back';
        h.back = true;
      } else if (h.back) {
        // restart, check and repool of the way back
      } else if (j.step === 'repool' && h.state !== 'failed') {
        h.state = rec.kind === 'deploy' ? 'ok' : 'rolled-back';
      } else if (j.step === 'stage' && h.state === 'pending') {
        h.state = 'staged';
      }
    }
    if (rec.outcome) {
      for (const h of run.hosts.values()) if (h.state === 'staged') h.state = 'pending';
    }
  }
  run.running = !!d.running;
  if (!run.verdict && rec.outcome) run.verdict = { outcome: rec.outcome, message: rec.summary || '' };
  if (rec.finished && !rec.finished.startsWith('0001-')) run.end = Date.parse(rec.finished);
  return run;
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
let tileRun = null;
let tileGen = -1;
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
  renderHostDetail(run);
  renderHistoryMarks();
}

function renderHead(run) {
  const mode = $('live-mode');
  if (state.viewed) {
    mode.hidden = false;
    mode.textContent = state.viewed.source === 'journal' ? 'from the journal' : 'past deploy';
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
      v.rows.push({ lab, label, hs });
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
  if (run !== tileRun || (run && run.gen !== tileGen)) {
    tileRun = run;
    tileGen = run ? run.gen : -1;
    if (!run) {
      tiles.clear();
      groupViews = [];
      $('groups').replaceChildren();
      return;
    }
    buildGroups(run);
  }
  if (!run) return;
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
      const text = `${r.label} · ${r.hs.filter((h) => FINAL.has(h.state)).length}/${r.hs.length}`;
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
      const d = await api('/deploys/' + encodeURIComponent(list[0].id));
      if (key === state.key && !state.live) {
        state.live = runFromRecord(d);
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
    const d = await api('/deploys/' + encodeURIComponent(id));
    state.viewed = runFromRecord(d);
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
