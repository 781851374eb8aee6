/*
 * herald.js — a dependency-free browser client for Herald job status streams.
 *
 * Plain script:  <script src="/herald/herald.js"></script>   then  Herald.watchJob(...)
 * ES module:     import { watchJob, watchJobs } from '/herald/herald.mjs';
 *                (herald.mjs imports this file and re-exports window.Herald)
 *
 *   const w = Herald.watchJob(id, {
 *     onStatus(job) {}, onLog(text) {}, onEnd(state) {},
 *     onConnection(state) {},   // 'connecting' | 'open' | 'reconnecting' | 'closed'
 *     onError(err) {},          // a HeraldError: e.g. 404 no such job
 *     log: false, baseUrl: '/jobs',
 *   });
 *   w.close();
 *
 *   Herald.watchJobs([id1, id2], {...})   // one connection for up to 64 jobs;
 *                                         // onEnd({jobs: {id1: 'succeeded', ...}})
 *   Herald.watchMyJobs({onStatus(job) {}, onConnection(state) {}, onError(err) {}})
 *                                         // every job of the user, on ONE connection, including
 *                                         // jobs submitted later (GET /jobs/events with a read
 *                                         // token whose `sub` is the user); never ends by itself
 *   await Herald.submitJob('demo', {steps: '5'}, {token})
 *   await Herald.cancelJob(id, {token})
 *
 * Tokens. A per-job stream needs none (its id is the capability) unless the server
 * sets require_read_token. The read token (SPEC §9, a short-lived JWT minted by
 * your server) is best set by your server as the HttpOnly cookie `herald_token`:
 * then there is nothing to pass. Otherwise give `token`: a string, or a function
 * (returning a string or a Promise of one) called before every (re)connection,
 * so an expired token is renewed instead of ending in a 401 loop. EventSource
 * cannot send headers: a given token travels as `?token=` on stream URLs (the
 * shipped nginx log format hides it), as `Authorization: Bearer` on fetches.
 * A function that returns nothing lets the cookie speak (e.g. it refreshes the
 * cookie by calling your server). The submitter token never goes to a browser.
 *
 * Why it never loses the final state: EventSource reconnects by itself and sends
 * Last-Event-ID, so the server resends only what is missing. But EventSource
 * gives up for good on any answer other than a 200 stream (a 502 while
 * herald-fcgi restarts, the 204 the server sends to a client that has seen the
 * end). Then this client asks GET /jobs/ID for the current state: a terminal one
 * is delivered and ends the watch; otherwise it reconnects itself (with
 * backoff), handing over the last event id as ?last_event_id=.
 */
(function (global) {
  'use strict';

  var MAX_IDS = 64;
  var TERMINAL = { succeeded: true, failed: true, canceled: true };
  var UNKNOWN = 'unknown'; // a watched id the server does not know (multi-job streams)

  /** An HTTP error from Herald: .status, .code and .message from its JSON error body. */
  function HeraldError(status, code, message) {
    var err = new Error(message || ('HTTP ' + status));
    err.name = 'HeraldError';
    err.status = status;
    err.code = code || 'http_' + status;
    Object.setPrototypeOf(err, HeraldError.prototype);
    return err;
  }
  HeraldError.prototype = Object.create(Error.prototype, {
    constructor: { value: HeraldError, writable: true, configurable: true }
  });

  function isTerminal(state) {
    return Object.prototype.hasOwnProperty.call(TERMINAL, state);
  }

  function trimSlash(s) {
    return String(s).replace(/\/+$/, '');
  }

  function withQuery(url, query) {
    var parts = [];
    for (var k in query) {
      if (Object.prototype.hasOwnProperty.call(query, k) && query[k] !== undefined && query[k] !== null && query[k] !== '') {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(query[k]));
      }
    }
    if (!parts.length) return url;
    return url + (url.indexOf('?') < 0 ? '?' : '&') + parts.join('&');
  }

  function call(fn, arg) {
    if (typeof fn !== 'function') return;
    try { fn(arg); } catch (e) { setTimeout(function () { throw e; }, 0); }
  }

  function jitter(ms) {
    return Math.round(ms * (0.7 + Math.random() * 0.6));
  }

  /** fetch + JSON; throws HeraldError for non-2xx answers (and for network errors, status 0). */
  function request(method, url, body, opts) {
    opts = opts || {};
    return resolveToken(opts).then(function (token) {
      var headers = { 'Accept': 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token) headers['Authorization'] = 'Bearer ' + token;
      if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
      return send(method, url, body, opts, headers);
    });
  }

  function send(method, url, body, opts, headers) {
    return fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal
    }).then(function (res) {
      var type = res.headers.get('Content-Type') || '';
      var parse = type.indexOf('application/json') === 0 ? res.json() : res.text();
      return parse.then(function (data) {
        if (res.ok) return data;
        var e = data && data.error;
        if (e && typeof e === 'object') throw HeraldError(res.status, e.code, e.message);
        throw HeraldError(res.status, 'http_' + res.status, 'HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : ''));
      }, function () {
        if (res.ok) return null;
        throw HeraldError(res.status, 'http_' + res.status, 'HTTP ' + res.status);
      });
    }, function (err) {
      if (err && err.name === 'AbortError') throw err;
      throw HeraldError(0, 'network', 'network error: ' + (err && err.message || err));
    });
  }

  function baseOf(opts) {
    return trimSlash((opts && opts.baseUrl) || '/jobs');
  }

  /** The token option, resolved now: a Promise of a string or undefined (then the cookie, if any, is used). */
  function resolveToken(opts) {
    var t = opts && opts.token;
    try {
      return Promise.resolve(typeof t === 'function' ? t() : t).then(function (v) { return v || undefined; });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * POST /jobs {kind, params}: resolves to the new job. Param values are sent as given (strings).
   * opts.owner sets the job's owner; opts.idempotencyKey sends Idempotency-Key (a repeat resolves
   * to the same job).
   */
  function submitJob(kind, params, opts) {
    opts = opts || {};
    var body = { kind: kind, params: params || {} };
    if (opts.owner) body.owner = opts.owner;
    return request('POST', baseOf(opts), body, opts);
  }

  /** POST /jobs/ID/cancel: resolves to the job (202); a job that already ended rejects with status 409. */
  function cancelJob(id, opts) {
    return request('POST', baseOf(opts) + '/' + encodeURIComponent(id) + '/cancel', undefined, opts);
  }

  /** GET /jobs/ID: resolves to the job. */
  function getJob(id, opts) {
    return request('GET', baseOf(opts) + '/' + encodeURIComponent(id), undefined, opts);
  }

  /** GET /jobs?state=&kind=&limit=&before=: resolves to {jobs, next}. */
  function listJobs(query, opts) {
    return request('GET', withQuery(baseOf(opts), query || {}), undefined, opts);
  }

  /** GET /jobs/ID/log?offset=N: resolves to the log text from byte N. */
  function getLog(id, opts) {
    opts = opts || {};
    var url = withQuery(baseOf(opts) + '/' + encodeURIComponent(id) + '/log', { offset: opts.offset || undefined });
    return resolveToken(opts).then(function (token) {
      var headers = { 'Accept': 'text/plain' };
      if (token) headers['Authorization'] = 'Bearer ' + token;
      return fetch(url, { headers: headers, cache: 'no-store', credentials: 'same-origin' });
    }).then(function (res) {
      if (!res.ok) throw HeraldError(res.status, 'http_' + res.status, 'HTTP ' + res.status);
      return res.text();
    });
  }

  /*
   * The watch: one EventSource, recreated when the browser gives up on it.
   * spec: {url, ids (array) or id, multi, opts}
   */
  function watch(spec) {
    var opts = spec.opts || {};
    var es = null;
    var closed = false;
    var ended = false;
    var connState = null;
    var lastEventId = opts.lastEventId || '';
    var seen = {};       // job id -> highest seq delivered
    var states = {};     // job id -> latest state delivered
    var backoff = 1000;
    var timer = null;
    var ids = spec.ids;
    var logTailAsked = false;
    var token;             // the token the current connection uses (undefined: the cookie, or none)
    var opened = false;    // a connection has been open before: a reconnect must catch up

    function setConn(s) {
      if (s === connState) return;
      connState = s;
      call(opts.onConnection, s);
    }

    function deliver(job) {
      if (!job || typeof job !== 'object') return;
      var id = job.id;
      if (seen[id] !== undefined && typeof job.seq === 'number' && job.seq <= seen[id]) return;
      if (typeof job.seq === 'number') seen[id] = job.seq;
      states[id] = job.state;
      call(opts.onStatus, job);
    }

    function finish(result) {
      if (ended || closed) return;
      ended = true;
      shutdown();
      call(opts.onEnd, result);
      setConn('closed');
    }

    function endResult() {
      if (!spec.multi) return states[ids[0]];
      var jobs = {};
      for (var i = 0; i < ids.length; i++) jobs[ids[i]] = states[ids[i]];
      return { jobs: jobs };
    }

    // Settled: ended, or unknown to the server (404), which no stream will ever change.
    function settled(id) {
      return isTerminal(states[id]) || states[id] === UNKNOWN;
    }

    function allTerminal() {
      for (var i = 0; i < ids.length; i++) if (!settled(ids[i])) return false;
      return true;
    }

    function shutdown() {
      if (timer) { clearTimeout(timer); timer = null; }
      if (es) {
        es.onopen = es.onerror = null;
        es.close();
        es = null;
      }
    }

    // Renews the token (calling the token function) and then connects.
    function connect() {
      timer = null;
      if (closed || ended) return;
      setConn(connState === null ? 'connecting' : 'reconnecting');
      resolveToken(opts).then(function (t) {
        token = t;
        open();
      }, function (err) {
        call(opts.onError, HeraldError(0, 'token', 'the token function failed: ' + (err && err.message || err)));
        scheduleConnect();
      });
    }

    function streamUrl() {
      var query = {};
      if (spec.multi) query.ids = ids.filter(function (id) { return states[id] !== UNKNOWN; }).join(',');
      if (opts.log) query.log = '1';
      // A fresh EventSource cannot send Last-Event-ID itself: hand it over.
      if (lastEventId && !spec.owner) query.last_event_id = lastEventId;
      // A token only when one is given (a per-job stream needs none; the cookie needs no help),
      // and last: the shipped log format hides the query from `token=` on.
      query.token = token;
      return withQuery(spec.url, query);
    }

    function open() {
      if (closed || ended) return;
      var source = new EventSource(streamUrl(), { withCredentials: !!opts.withCredentials });
      es = source;

      source.onopen = function () {
        backoff = 1000;
        setConn('open');
        // The owner stream starts again from the jobs not yet ended: one that ended while
        // disconnected is asked for, so its final state is never lost.
        if (spec.owner && opened) catchUpOwnerJobs();
        opened = true;
      };
      source.addEventListener('status', function (e) {
        if (e.lastEventId) lastEventId = e.lastEventId;
        var job;
        try { job = JSON.parse(e.data); } catch (err) { return; }
        deliver(job);
      });
      source.addEventListener('log', function (e) {
        if (e.lastEventId) lastEventId = e.lastEventId;
        call(opts.onLog, e.data);
      });
      source.addEventListener('end', function (e) {
        var data = {};
        try { data = JSON.parse(e.data) || {}; } catch (err) { /* keep what we know */ }
        if (spec.multi) {
          var jobs = data.jobs || {};
          for (var k in jobs) if (Object.prototype.hasOwnProperty.call(jobs, k)) states[k] = jobs[k];
          finish({ jobs: endResult().jobs });
        } else {
          if (data.state) states[ids[0]] = data.state;
          finish(states[ids[0]]);
        }
      });
      source.onerror = function () {
        if (source !== es || closed || ended) return;
        if (source.readyState === 0 /* CONNECTING: the browser retries by itself */) {
          setConn('reconnecting');
          return;
        }
        // CLOSED: the browser gave up (204, 404, 502, wrong type). Find out why.
        setConn('reconnecting');
        es = null;
        source.onopen = source.onerror = null;
        source.close();
        recover();
      };
    }

    function scheduleConnect() {
      if (closed || ended || timer) return;
      var delay = jitter(backoff);
      backoff = Math.min(backoff * 2, 30000);
      timer = setTimeout(connect, delay);
    }

    function catchUpOwnerJobs() {
      Object.keys(states).filter(function (id) { return !isTerminal(states[id]); }).forEach(function (id) {
        getJob(id, { baseUrl: opts.baseUrl, token: token }).then(deliver, function () { /* the stream will tell */ });
      });
    }

    // The owner stream was refused or cut: renew the token, then ask the server why with one plain
    // GET (EventSource hides the status). 401/403 with a fresh token end the watch; others retry.
    function recoverOwner() {
      resolveToken(opts).then(function (t) {
        token = t;
        var ctrl = typeof AbortController === 'function' ? new AbortController() : null;
        return fetch(streamUrl(), { headers: { 'Accept': 'text/event-stream' }, credentials: 'same-origin', cache: 'no-store',
                                    signal: ctrl && ctrl.signal }).then(function (res) {
          if (ctrl) ctrl.abort();  // a 200 is a stream: do not read it here
          if (res.status === 401 || res.status === 403) {
            return res.json().catch(function () { return null; }).then(function (data) {
              var e = data && data.error || {};
              throw HeraldError(res.status, e.code, e.message);
            });
          }
          return res.status;
        });
      }).then(function (status) {
        if (closed || ended) return;
        if (status === 200) { backoff = 1000; connect(); } else scheduleConnect();
      }, function (err) {
        if (closed || ended) return;
        if (err && (err.status === 401 || err.status === 403)) {
          call(opts.onError, err);
          closed = true;
          shutdown();
          setConn('closed');
          return;
        }
        scheduleConnect();
      });
    }

    // Ask for the current state of every job not known to have ended.
    function recover() {
      if (spec.owner) { recoverOwner(); return; }
      var pending = ids.filter(function (id) { return !settled(id); });
      if (!pending.length) { finish(endResult()); return; }
      var failedHard = null;
      // A fresh token first: the stream may have been refused because the old one expired.
      resolveToken(opts).then(function (t) { token = t; }, function () {}).then(function () {
      return Promise.all(pending.map(function (id) {
        return getJob(id, { baseUrl: opts.baseUrl, token: token }).then(function (job) {
          // A log watch of a job that ended meanwhile still lacks the end of its log: one more
          // stream brings it, then the final status and `end` (or 204 if nothing is missing).
          if (opts.log && !spec.multi && job && isTerminal(job.state) && !logTailAsked) {
            logTailAsked = true;
            backoff = 1000;  // the server answered: ask soon, not after the outage's backoff
            return;
          }
          deliver(job);
        }, function (err) {
          if (err && (err.status === 404 || err.status === 401 || err.status === 403)) {
            failedHard = err;
            if (spec.multi && err.status === 404) states[id] = UNKNOWN;
          }
        });
      }));
      }).then(function () {
        if (closed || ended) return;
        if (failedHard && !spec.multi) {
          call(opts.onError, failedHard);
          closed = true;
          shutdown();
          setConn('closed');
          return;
        }
        if (failedHard) call(opts.onError, failedHard);
        if (allTerminal()) { finish(endResult()); return; }
        scheduleConnect();
      });
    }

    connect();

    return {
      /** Stop watching: closes the connection; no more callbacks except onConnection('closed'). */
      close: function () {
        if (closed) return;
        closed = true;
        shutdown();
        if (!ended) setConn('closed');
      },
      /** The last event id received (resume token), e.g. to keep across page loads. */
      get lastEventId() { return lastEventId; },
      /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
      get connection() { return connState; }
    };
  }

  /** Watch one job: status events (and log chunks with log: true) until it ends. */
  function watchJob(id, opts) {
    if (!id) throw new TypeError('watchJob: a job id is required');
    opts = opts || {};
    return watch({
      url: baseOf(opts) + '/' + encodeURIComponent(id) + '/events',
      ids: [String(id)],
      multi: false,
      opts: opts
    });
  }

  /**
   * Watch every job of the user over one connection: GET /jobs/events with the user's read token
   * (the `herald_token` cookie, or opts.token). onStatus(job) for each job's states, including
   * jobs submitted after the watch began; it never ends by itself (close() it). A token the
   * server refuses even after renewal ends the watch with onError (status 401 or 403).
   */
  function watchMyJobs(opts) {
    opts = opts || {};
    if (opts.log) throw new TypeError('watchMyJobs: log is only available per job (watchJob)');
    return watch({ url: baseOf(opts) + '/events', ids: [], multi: false, owner: true, opts: opts });
  }

  /** Watch up to 64 jobs over one connection: GET /jobs/events?ids=A,B. */
  function watchJobs(ids, opts) {
    opts = opts || {};
    ids = Array.prototype.slice.call(ids || []).map(String).filter(function (id, i, all) {
      return id && all.indexOf(id) === i;
    });
    if (!ids.length) throw new TypeError('watchJobs: at least one job id is required');
    if (ids.length > MAX_IDS) throw new RangeError('watchJobs: at most ' + MAX_IDS + ' ids per stream');
    if (opts.log) throw new TypeError('watchJobs: log is only available per job (watchJob)');
    return watch({ url: baseOf(opts) + '/events', ids: ids, multi: true, opts: opts });
  }

  global.Herald = {
    watchJob: watchJob,
    watchJobs: watchJobs,
    watchMyJobs: watchMyJobs,
    submitJob: submitJob,
    cancelJob: cancelJob,
    getJob: getJob,
    getLog: getLog,
    listJobs: listJobs,
    isTerminal: isTerminal,
    HeraldError: HeraldError,
    MAX_IDS: MAX_IDS
  };
})(typeof globalThis !== 'undefined' ? globalThis : window);
