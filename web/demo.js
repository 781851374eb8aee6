// The Herald demo page: start demo jobs and watch them live.
// All status updates come from ONE event stream, so the page stays within the
// browser's 6 connections per origin over HTTP/1.1; a job's log is streamed only
// while its "Log" panel is open. Where the site signs the visitor in (`make demo`
// answers POST /herald-demo/login with a read-token cookie, as an app would), the
// page submits its jobs with that owner and watches them all with the owner stream
// (watchMyJobs); elsewhere it watches the jobs it started with the multi-job stream.
import { watchJobs, watchJob, watchMyJobs, submitJob, cancelJob, listJobs, getLog, isTerminal } from './herald.mjs';

const MAX_LOG_CHARS = 20000;
const rows = new Map();          // job id -> {el, job, logWatch}
let stream = null;               // the current watchJobs handle
let streamIds = new Set();       // the ids it carries
let owner = null;                // the signed-in owner, when the site has a login
let ownerStream = null;          // the watchMyJobs handle

const $ = (sel, root = document) => root.querySelector(sel);
const jobsList = $('#jobs');
const announcer = $('#announcer');

// ---- connection indicator --------------------------------------------------

const CONNECTION_TEXT = {
  idle: 'Idle: no job to watch',
  connecting: 'Connecting…',
  open: 'Live: receiving updates',
  reconnecting: 'Reconnecting…',
  closed: 'Closed',
};

function setConnection(state) {
  const el = $('#connection');
  const was = el.dataset.state;
  el.dataset.state = state;
  $('.text', el).textContent = (owner && state === 'open') ? `Live: every job of ${owner} on one stream` : (CONNECTION_TEXT[state] || state);
  // The indicator itself is not a live region (every new job would read out Connecting… Live);
  // only losing the connection is worth interrupting for.
  if (state === 'reconnecting' && was === 'open') announce('Connection lost, reconnecting');
}

let announcements = [];
function announce(text) {
  // Messages within one tick are read together; clearing first makes screen readers repeat identical ones.
  announcements.push(text);
  if (announcements.length > 1) return;
  announcer.textContent = '';
  setTimeout(() => {
    announcer.textContent = announcements.join('. ');
    announcements = [];
  }, 50);
}

// ---- job rows ----------------------------------------------------------------

function shortId(id) {
  return id.slice(-6);
}

function rowFor(job) {
  let r = rows.get(job.id);
  if (r) return r;
  const el = $('#job-template').content.firstElementChild.cloneNode(true);
  el.dataset.jobId = job.id;
  el.id = 'job-' + job.id;
  const title = $('.job-title', el);
  title.id = 'job-title-' + job.id;
  $('.kind', el).textContent = job.kind;
  $('.job-id', el).textContent = job.id;
  $('.job-id', el).title = job.id;
  const bar = $('progress', el);
  bar.setAttribute('aria-label', `Progress of ${job.kind} job ${shortId(job.id)}`);
  $('.cancel', el).setAttribute('aria-label', `Cancel ${job.kind} job ${shortId(job.id)}`);
  $('.cancel', el).addEventListener('click', () => cancel(job.id));
  const details = $('details.log', el);
  details.addEventListener('toggle', () => toggleLog(job.id, details.open));
  r = { el, job: null, logWatch: null, gone: false };
  rows.set(job.id, r);
  jobsList.prepend(el);
  $('#no-jobs').hidden = true;
  return r;
}

// A focused button that gets disabled would drop keyboard focus to <body>: the row keeps it.
function disableCancel(row) {
  const button = $('.cancel', row);
  if (document.activeElement === button) row.focus();
  button.disabled = true;
}

function render(job) {
  const r = rowFor(job);
  const prev = r.job;
  // Two streams may carry the same job (list + log panel): never go back.
  if (prev && typeof job.seq === 'number' && typeof prev.seq === 'number' && job.seq < prev.seq) return;
  r.job = job;
  const el = r.el;
  const progress = Math.max(0, Math.min(100, Number(job.progress) || 0));
  el.dataset.state = job.state;
  $('.state', el).textContent = job.state;
  const bar = $('progress', el);
  bar.value = progress;
  bar.setAttribute('aria-valuetext', `${Math.floor(progress)} percent, ${job.state}`);
  $('.percent', el).textContent = `${Math.floor(progress)}%`;
  $('.message', el).textContent = job.message || '';
  const err = $('.error-text', el);
  if (job.error) {
    err.hidden = false;
    err.textContent = `${job.error.code}: ${job.error.message}`;
  } else {
    err.hidden = true;
    err.textContent = '';
  }
  if (isTerminal(job.state)) disableCancel(el); else $('.cancel', el).disabled = false;
  if (!prev || prev.state !== job.state) {
    const extra = job.state === 'failed' && job.error ? ` (${job.error.message})` : '';
    announce(`Job ${shortId(job.id)} ${job.state}${extra}`);
  }
  if (isTerminal(job.state) && r.logWatch === null && $('details.log', el).open) {
    loadLog(job.id); // make sure the panel ends with the whole log
  }
}

// ---- the one status stream ----------------------------------------------------

function activeIds() {
  return [...rows.values()].filter((r) => r.job && !r.gone && !isTerminal(r.job.state)).map((r) => r.job.id);
}

// A job the server no longer knows (its state directory was wiped): shown as gone and
// never asked for again, or every watch would end at once and start over, for ever.
function markGone(r) {
  r.gone = true;
  r.el.dataset.state = 'gone';
  $('.state', r.el).textContent = 'gone';
  $('.message', r.el).textContent = 'The server no longer knows this job.';
  disableCancel(r.el);
  announce(`Job ${shortId(r.job.id)} is gone`);
}

// Reopen the multi-job stream when a job it does not carry must be watched.
// (Jobs that end need nothing: the server drops them and ends the stream when
// all have ended.) Beyond 64 active jobs the newest 64 are watched.
function watchActive() {
  if (owner) {
    // One stream for every job of the owner, including the ones started later: nothing to reopen.
    ownerStream = ownerStream || watchMyJobs({
      // Called before every connection: a fresh cookie from the site instead of an expired one.
      token: () => signIn().then(() => undefined),
      onStatus: render,
      onConnection: setConnection,
      onError: (err) => showFormError(`Stream: ${err.message}`),
    });
    return;
  }
  const ids = activeIds().slice(-64);
  if (ids.every((id) => streamIds.has(id)) && (stream || !ids.length)) return;
  if (stream) stream.close();
  stream = null;
  streamIds = new Set(ids);
  if (!ids.length) { setConnection('idle'); return; }
  let mine = null; // still null while watchJobs reports 'connecting' synchronously
  mine = watchJobs(ids, {
    onStatus: render,
    onConnection: (state) => { if (mine === null || stream === mine) setConnection(state); },
    onEnd: (result) => {
      if (stream !== mine) return;
      for (const [id, state] of Object.entries((result && result.jobs) || {})) {
        const r = rows.get(id);
        if (r && r.job && !r.gone && !isTerminal(state) && !isTerminal(r.job.state)) markGone(r);
      }
      stream = null;
      streamIds = new Set();
      setConnection('idle');
      watchActive(); // a job added meanwhile still needs watching
    },
    onError: (err) => showFormError(`Stream: ${err.message}`),
  });
  stream = mine;
}

// ---- logs ---------------------------------------------------------------------

function setLog(id, text, append) {
  const r = rows.get(id);
  if (!r) return;
  const pre = $('.log-text', r.el);
  let value = append ? pre.textContent + text : text;
  if (value.length > MAX_LOG_CHARS) value = '…' + value.slice(-MAX_LOG_CHARS);
  pre.textContent = value;
  pre.scrollTop = pre.scrollHeight;
}

function loadLog(id) {
  getLog(id).then((text) => setLog(id, text || '(empty)', false), (err) => setLog(id, `(log unavailable: ${err.message})`, false));
}

function toggleLog(id, open) {
  const r = rows.get(id);
  if (!r) return;
  if (r.logWatch) { r.logWatch.close(); r.logWatch = null; }
  if (!open) return;
  if (r.job && isTerminal(r.job.state)) { loadLog(id); return; }
  setLog(id, '', false);
  r.logWatch = watchJob(id, {
    log: true,
    onStatus: render,
    onLog: (text) => setLog(id, text, true),
    onEnd: () => { r.logWatch = null; },
  });
}

// ---- actions --------------------------------------------------------------------

function showFormError(text) {
  const p = $('#form-error');
  p.textContent = text;
  p.hidden = !text;
}

function intField(id, { optional = false } = {}) {
  const input = $('#' + id);
  const raw = input.value.trim();
  if (raw === '' && optional) return { ok: true, value: null };
  const min = Number(input.min), max = Number(input.max);
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    input.setAttribute('aria-invalid', 'true');
    const label = $(`label[for="${id}"]`).textContent;
    return { ok: false, error: `${label}: enter a whole number from ${min} to ${max}.`, input };
  }
  input.removeAttribute('aria-invalid');
  return { ok: true, value: String(Number(raw)) };
}

async function start(event) {
  event.preventDefault();
  showFormError('');
  const steps = intField('steps');
  const interval = intField('interval');
  const failAt = intField('fail-at', { optional: true });
  const bad = [steps, interval, failAt].find((f) => !f.ok);
  if (bad) { showFormError(bad.error); bad.input.focus(); return; }
  const params = { steps: steps.value, interval_ms: interval.value };
  if (failAt.value !== null) params.fail_at = failAt.value;
  const button = $('#start');
  button.disabled = true;
  try {
    const job = await submitJob('demo', params, { owner: owner || undefined });
    render(job);
    watchActive();
  } catch (err) {
    showFormError(`Could not start the job: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

async function cancel(id) {
  const r = rows.get(id);
  const button = r && $('.cancel', r.el);
  if (button) button.disabled = true;
  try {
    render(await cancelJob(id));
  } catch (err) {
    if (err.status !== 409) {
      announce(`Could not cancel job ${shortId(id)}: ${err.message}`);
      if (button) button.disabled = false;
    }
  }
}

// ---- start-up ---------------------------------------------------------------------

// The site's sign-in, if it has one: sets the herald_token cookie and names the owner.
async function signIn() {
  const res = await fetch('/herald-demo/login', { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) throw new Error(`sign-in answered ${res.status}`);
  return (await res.json()).owner;
}

async function init() {
  $('#start-form').addEventListener('submit', start);
  owner = await signIn().catch(() => null);
  if (owner) $('#connection').dataset.owner = owner;
  try {
    // Recent jobs (needs submit rights; the demo allows anonymous submit).
    const { jobs } = await listJobs(owner ? { limit: 20, owner } : { limit: 20 });
    for (const job of jobs.slice().reverse()) render(job);
  } catch (err) {
    // 401 without a token: start with an empty list.
  }
  watchActive();
}

init();
