"""A real headless Chromium against the real stack (nginx + herald-fcgi + herald-runner):
the demo page and herald.js, driven only by EventSource."""

import os
import re
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from support_herald import READ_SECRET, mint_read_token, wait_until

JOB_PATH = re.compile(r"^/jobs/[0-9a-hjkmnp-tv-z]{26}(\?.*)?$")


def wait_for(driver, condition, timeout=30, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def open_demo(browser, stack):
    browser.get(stack.demo_url)
    wait_for(browser, lambda d: d.execute_script("return !!(window.Herald && window.Herald.watchJob)"), 15,
             "herald.js did not load on the demo page")
    wait_for(browser, lambda d: d.find_element(By.ID, "start").is_enabled(), 15, "#start is not usable")


def start_from_the_form(browser, steps, interval, fail_at=""):
    """Starts a demo job with the page's form; returns its id from the row that appears."""
    for field, value in (("steps", steps), ("interval", interval), ("fail-at", fail_at)):
        el = browser.find_element(By.ID, field)
        el.clear()
        if value:
            el.send_keys(value)
    browser.find_element(By.ID, "start").click()
    row = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-job-id]"), 15,
                   "no job row appeared after #start")[0]
    job_id = row.get_attribute("data-job-id")
    assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{26}", job_id), job_id
    return job_id


def test_demo_page_shows_live_progress_without_polling(stack, browser):
    open_demo(browser, stack)
    job_id = start_from_the_form(browser, steps="5", interval="300")
    row = browser.find_element(By.CSS_SELECTOR, f"[data-job-id='{job_id}']")

    # Watch the row as it updates: the progress must move through intermediate values.
    seen_progress, seen_states = [], []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state, progress = browser.execute_script(
            "const r = document.querySelector(`[data-job-id='${arguments[0]}']`);"
            "return [r.querySelector('.state').textContent.trim(), r.querySelector('progress').value];", job_id)
        if not seen_progress or seen_progress[-1] != progress:
            seen_progress.append(progress)
        if not seen_states or seen_states[-1] != state:
            seen_states.append(state)
        if state == "succeeded" and progress == 100:
            break
        time.sleep(0.05)
    assert seen_states[-1] == "succeeded" and seen_progress[-1] == 100, \
        f"states {seen_states}, progress {seen_progress}\n{stack.diagnostics()}"
    assert any(0 < p < 100 for p in seen_progress), f"no live progress seen between 0 and 100: {seen_progress}"
    assert row.find_element(By.CSS_SELECTOR, ".cancel").get_attribute("disabled") is not None
    assert "step 5/5" in row.find_element(By.CSS_SELECTOR, ".message").text

    # Driven by EventSource alone: event streams, and no GET /jobs/ID polling.
    wait_for(browser, lambda d: any("/events" in uri for _, uri, _ in stack.requests_seen("GET", "/jobs")), 10,
             "nginx logged no finished event stream")
    gets = stack.requests_seen("GET", "/jobs")
    streams = [uri for _, uri, status in gets if "/events" in uri]
    polls = [uri for _, uri, _ in gets if JOB_PATH.match(uri)]
    assert streams, gets
    assert job_id in " ".join(streams), streams
    assert not polls, f"the page polled: {polls}"
    assert [m for m, uri, s in stack.requests_seen("POST", "/jobs") if uri == "/jobs" and s == 201], "no POST /jobs"


WATCH_SCRIPT = """
const [id, multi] = arguments;
window.__watch = {statuses: [], connection: [], end: null, errors: []};
const w = window.__watch;
const handlers = {
  onStatus: (job) => w.statuses.push({id: job.id, state: job.state, progress: job.progress, seq: job.seq}),
  onConnection: (s) => w.connection.push(s),
  onEnd: (result) => { w.end = result; },
  onError: (e) => w.errors.push(String(e.message)),
};
window.__handle = multi ? Herald.watchJobs(id, handlers) : Herald.watchJob(id, handlers);
"""


def watch_state(browser):
    return browser.execute_script("return window.__watch")


@pytest.mark.parametrize("fcgi_mode", ["socket", "systemd"])
def test_herald_js_keeps_final_state_across_fcgi_restart(make_stack, browser, fcgi_mode):
    # socket: herald-fcgi creates its socket, so nginx answers 502 while it is down.
    # systemd: the socket is handed over on fd 3 and outlives the process (socket
    # activation): connections wait in the backlog and nothing is refused.
    stack = make_stack(fcgi_mode=fcgi_mode)
    open_demo(browser, stack)
    job = stack.submit("demo", {"steps": "12", "interval_ms": "400"})
    browser.execute_script(WATCH_SCRIPT, job["id"], False)

    wait_for(browser, lambda d: any(s["state"] == "running" and s["progress"] > 0 for s in watch_state(d)["statuses"]),
             20, "no running status with progress arrived before the restart")
    # herald-fcgi goes away mid-job for a moment. With its own socket nginx answers
    # 502 meanwhile, which makes EventSource give up; herald.js must come back and
    # still see the end.
    stack.restart_fcgi(down_for=1.0)

    w = wait_for(browser, lambda d: (lambda w: w if w["end"] is not None else None)(watch_state(d)), 40,
                 "onEnd never came after the restart")
    assert w["end"] == "succeeded", w
    last = w["statuses"][-1]
    assert last["state"] == "succeeded" and last["progress"] == 100, w["statuses"]
    seqs = [s["seq"] for s in w["statuses"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"statuses went back or repeated: {seqs}"
    assert "reconnecting" in w["connection"], w["connection"]
    assert w["connection"][-1] == "closed", w["connection"]
    assert not w["errors"], w["errors"]
    assert stack.wait_job(job["id"], timeout=5)["state"] == "succeeded"
    refused = [r for r in stack.requests_seen() if r[2] == 502]
    if fcgi_mode == "systemd":
        assert not refused, f"requests refused although the socket outlived herald-fcgi: {refused}"


def test_herald_js_watches_several_jobs_over_one_stream(stack, browser):
    open_demo(browser, stack)
    ok = stack.submit("demo", {"steps": "3", "interval_ms": "200"})
    bad = stack.submit("demo", {"steps": "4", "interval_ms": "200", "fail_at": "2"})
    browser.execute_script(WATCH_SCRIPT, [ok["id"], bad["id"]], True)

    w = wait_for(browser, lambda d: (lambda w: w if w["end"] is not None else None)(watch_state(d)), 30,
                 "onEnd never came for the multi-job stream")
    assert w["end"] == {"jobs": {ok["id"]: "succeeded", bad["id"]: "failed"}}, w
    finals = {}
    for s in w["statuses"]:
        finals[s["id"]] = s
    assert finals[ok["id"]]["state"] == "succeeded" and finals[ok["id"]]["progress"] == 100
    assert finals[bad["id"]]["state"] == "failed"
    # nginx logs a stream when it finalizes the request, which may be just after the browser got the end.
    streams = wait_for(browser, lambda d: [uri for _, uri, _ in stack.requests_seen("GET", "/jobs/events")], 5,
                       "nginx never logged the multi-job stream")
    assert all("ids=" in uri for uri in streams), streams


LOG_WATCH_SCRIPT = """
const [id] = arguments;
window.__watch = {statuses: [], connection: [], end: null, errors: [], log: ''};
const w = window.__watch;
// The next stream herald.js opens (not the browser's own reconnects) asks for an unknown job,
// so it fails hard (404) while GET /jobs/ID works: herald.js then learns from the GET that
// the job has ended, before any stream has carried the end of its log.
window.__breakOnce = false;
const Real = window.EventSource;
window.EventSource = class extends Real {
  constructor(url, init) {
    if (window.__breakOnce) {
      window.__breakOnce = false;
      url = url.replace(/\\/jobs\\/[0-9a-z]{26}\\/events/, '/jobs/00000000000000000000000000/events');
    }
    super(url, init);
  }
};
window.__handle = Herald.watchJob(id, {
  log: true,
  onStatus: (job) => w.statuses.push({id: job.id, state: job.state, progress: job.progress, seq: job.seq}),
  onLog: (text) => { w.log += text; },
  onConnection: (s) => w.connection.push(s),
  onEnd: (result) => { w.end = result; },
  onError: (e) => w.errors.push(String(e.message)),
});
"""


def test_herald_js_log_watch_gets_the_whole_log_when_the_job_ends_during_an_outage(make_stack, browser):
    stack = make_stack()
    open_demo(browser, stack)
    job = stack.submit("demo", {"steps": "8", "interval_ms": "250"})
    browser.execute_script(LOG_WATCH_SCRIPT, job["id"])
    wait_for(browser, lambda d: "step 2/8" in watch_state(d)["log"], 20, "no log before the outage")
    stack.stop_fcgi()  # nginx answers 502 meanwhile: EventSource gives up, herald.js retries
    status_file = stack.state_dir + f"/jobs/{job['id']}.json"
    wait_until(lambda: '"succeeded"' in open(status_file).read(), 20, what="the job to end during the outage")
    browser.execute_script("window.__breakOnce = true")
    stack.start_fcgi()
    stack.wait_healthy()
    w = wait_for(browser, lambda d: (lambda w: w if w["end"] is not None else None)(watch_state(d)), 40,
                 "onEnd never came after the outage")
    assert w["end"] == "succeeded", w
    assert w["statuses"][-1]["state"] == "succeeded", w["statuses"]
    status, _, log = stack.request("GET", f"/jobs/{job['id']}/log")
    assert status == 200 and "step 8/8" in log.decode()
    assert w["log"] == log.decode(), f"the watch got {w['log']!r}, the log is {log.decode()!r}"


@pytest.mark.parametrize("while_serving", [False, True])
def test_demo_page_marks_a_job_the_server_forgot_as_gone_and_stops_asking(make_stack, browser, while_serving):
    """The state directory loses a watched job (wiped between two `make demo` runs, or under a
    running herald-fcgi, which then ends the job's stream): the page shows it as gone instead
    of reopening its stream at once, for ever (or, before, of waiting on pings for ever)."""
    stack = make_stack()
    open_demo(browser, stack)
    job = {"id": start_from_the_form(browser, steps="400", interval="250")}
    wait_for(browser, lambda d: d.execute_script(
        "return document.querySelector(`[data-job-id='${arguments[0]}']`).dataset.state", job["id"]) == "running",
        20, "the page never showed the job running")
    stack.stop_runner(grace=1)
    if not while_serving:
        stack.stop_fcgi()
    for sub in ("jobs", "new", "logs"):
        path = os.path.join(stack.state_dir, sub, job["id"] + (".log" if sub == "logs" else ".json"))
        if os.path.exists(path):
            os.unlink(path)
    stack.start_runner()
    if not while_serving:
        stack.start_fcgi()
    stack.wait_healthy()
    wait_for(browser, lambda d: d.execute_script(
        "return document.querySelector(`[data-job-id='${arguments[0]}']`).dataset.state", job["id"]) == "gone", 30,
        "the page never marked the forgotten job as gone")
    asked = len(stack.requests_seen("GET", "/jobs"))
    time.sleep(3)
    again = stack.requests_seen("GET", "/jobs")[asked:]
    assert len(again) <= 2, f"the page kept asking for the forgotten job: {again}"


# ---------------------------------------------------------------------------
# read tokens (SPEC §9): the owner stream with a cookie, and a renewed token


def _token_stack(make_stack, tmp_path, **extra):
    secret = tmp_path / "read.key"
    secret.write_text(READ_SECRET + "\n")
    return make_stack(config_overrides={"read_token_secret_file": str(secret), **extra})


MY_JOBS_SCRIPT = """
window.__watch = {statuses: [], connection: [], errors: []};
const w = window.__watch;
window.__handle = Herald.watchMyJobs({
  onStatus: (job) => w.statuses.push({id: job.id, owner: job.owner, state: job.state, progress: job.progress, seq: job.seq}),
  onConnection: (s) => w.connection.push(s),
  onError: (e) => w.errors.push(String(e.message)),
});
"""


def test_a_page_with_a_cookie_token_watches_its_users_jobs_on_one_connection(make_stack, browser, tmp_path):
    stack = _token_stack(make_stack, tmp_path, require_read_token=True)
    open_demo(browser, stack)
    browser.add_cookie({"name": "herald_token", "value": mint_read_token({"sub": "alice", "exp": int(time.time()) + 600}),
                        "path": "/", "httpOnly": True, "sameSite": "Lax"})
    browser.execute_script(MY_JOBS_SCRIPT)
    wait_for(browser, lambda d: "open" in watch_state(d)["connection"], 10, "the owner stream never opened")
    first = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "4", "interval_ms": "200"}, "owner": "alice"})[2]
    other = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "4", "interval_ms": "200"}, "owner": "bob"})[2]
    second = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "6", "interval_ms": "200"}, "owner": "alice"})[2]

    def both_ended(d):
        finals = {s["id"]: s for s in watch_state(d)["statuses"]}
        return all(finals.get(j["id"], {}).get("state") == "succeeded" for j in (first, second)) and finals
    finals = wait_for(browser, both_ended, 30, "the page did not see both of alice's jobs end")
    w = watch_state(browser)
    assert set(finals) == {first["id"], second["id"]}, f"the page saw another user's job: {finals}"
    assert all(s["owner"] == "alice" for s in w["statuses"])
    assert finals[second["id"]]["progress"] == 100
    for j in (first, second):
        seqs = [s["seq"] for s in w["statuses"] if s["id"] == j["id"]]
        assert seqs == sorted(set(seqs)), f"a state repeated or went back: {seqs}"
        assert len(seqs) >= 3, f"not live: {seqs}"
    assert not w["errors"] and w["connection"] == ["connecting", "open"], w
    browser.execute_script("window.__handle.close()")
    # One connection for both jobs: nginx logs the stream once it ends; no per-job stream, no polling
    # (the demo page's own GET /jobs?limit=20 on load aside).
    streams = wait_for(browser, lambda d: [r for r in stack.requests_seen("GET", "/jobs") if "/events" in r[1]], 10,
                       "nginx logged no stream")
    assert [uri for _, uri, _ in streams] == ["/jobs/events"], streams
    polls = [r for r in stack.requests_seen("GET", "/jobs") if JOB_PATH.match(r[1])]
    assert not polls, polls
    assert other["id"]


RENEW_SCRIPT = """
const [id] = arguments;
window.__watch = {statuses: [], connection: [], end: null, errors: [], tokenCalls: 0};
const w = window.__watch;
window.__handle = Herald.watchJob(id, {
  // Called before every connection: the first token expires soon, later ones come from the test.
  token: () => { w.tokenCalls += 1; return w.tokenCalls === 1 ? window.__firstToken : window.__laterToken; },
  onStatus: (job) => w.statuses.push({id: job.id, state: job.state, progress: job.progress, seq: job.seq}),
  onConnection: (s) => w.connection.push(s),
  onEnd: (result) => { w.end = result; },
  onError: (e) => w.errors.push(String(e.message)),
});
"""


def test_herald_js_renews_an_expired_token_and_resumes_without_losing_a_state(make_stack, browser, tmp_path):
    stack = _token_stack(make_stack, tmp_path, require_read_token=True)
    open_demo(browser, stack)
    job = stack.submit("demo", {"steps": "40", "interval_ms": "300"})
    now = int(time.time())
    browser.execute_script("window.__firstToken = arguments[0]; window.__laterToken = arguments[1]",
                           mint_read_token({"jobs": [job["id"]], "exp": now + 1}), mint_read_token({"jobs": [job["id"]], "exp": now + 600}))
    browser.execute_script(RENEW_SCRIPT, job["id"])
    wait_for(browser, lambda d: watch_state(d)["statuses"], 10, "no status before the token expired")
    time.sleep(max(0.0, now + 1 + 5 + 1.5 - time.time()))  # past exp and its 5 s of leeway
    # The stream is cut (a restart): the browser reconnects with the expired token, gets 401,
    # and herald.js must renew it and resume from its Last-Event-ID.
    stack.restart_fcgi()
    w = wait_for(browser, lambda d: (lambda w: w if w["end"] is not None else None)(watch_state(d)), 40,
                 "onEnd never came after the token expired")
    assert w["end"] == "succeeded" and w["statuses"][-1]["progress"] == 100, w
    seqs = [s["seq"] for s in w["statuses"]]
    assert seqs == sorted(set(seqs)), f"a state repeated or went back: {seqs}"
    assert w["tokenCalls"] >= 2 and not w["errors"], w
    seen = stack.requests_seen("GET", f"/jobs/{job['id']}")
    refused = [r for r in seen if r[2] == 401 and "/events" in r[1]]
    resumed = [r for r in seen if "last_event_id=" in r[1] and r[2] == 200]
    assert refused, f"the expired token was never refused: {seen}"
    assert resumed, f"no stream resumed from the last event id: {seen}"


def test_the_demo_page_signed_in_watches_its_owners_jobs_on_the_owner_stream(make_stack, browser):
    stack = make_stack(demo_owner="demo")
    open_demo(browser, stack)
    wait_for(browser, lambda d: d.find_element(By.ID, "connection").get_attribute("data-owner") == "demo", 10,
             "the page did not sign in")
    first = start_from_the_form(browser, steps="3", interval="200")
    second = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "3", "interval_ms": "200"}, "owner": "demo"})[2]
    stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "3", "interval_ms": "200"}, "owner": "someone-else"})
    state = lambda d, i: d.execute_script(  # noqa: E731
        "const r = document.querySelector(`[data-job-id='${arguments[0]}']`); return r && r.dataset.state", i)
    wait_for(browser, lambda d: state(d, first) == "succeeded" and state(d, second["id"]) == "succeeded", 30,
             "the page did not show both of its owner's jobs end (one started elsewhere)")
    assert stack.json("GET", f"/jobs/{first}")[2]["owner"] == "demo"
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-job-id]")) == 2, "another owner's job appeared"
    assert "one stream" in browser.find_element(By.ID, "connection").text
    # One stream open for the page (the owner stream, which nginx logs only when it ends), and none
    # ever opened per job or for a list of ids.
    assert stack.json("GET", "/healthz")[2]["streams"] == 1
    assert not [r for r in stack.requests_seen("GET", "/jobs") if "/events" in r[1]], stack.access_log()
