"""The example Django app (examples/django) behind the same nginx as Herald, in headless Chromium:
Django's login, "Generate report" (a double click starts one job), every job of the user live on
one owner stream authorised by the herald_token cookie, and nobody else's.

Needs the example's virtual environment (`make django-venv`; `make test` makes it)."""

import json
import os
import re
import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from herald_stack import DEMO_PASSWORD, DJANGO_PYTHON, StackError, django_site
from support_herald import wait_until

JOB_EVENTS = re.compile(r"^/jobs/[0-9a-hjkmnp-tv-z]{26}/events")


@pytest.fixture
def make_site(make_stack, tmp_path):
    if not os.access(DJANGO_PYTHON, os.X_OK):
        pytest.fail(f"{DJANGO_PYTHON} is missing: run `make django-venv` (make test does)", pytrace=False)

    def make(pages=8, page_ms=300, **kwargs):
        workdir = tmp_path / "site"
        try:
            return make_stack(workdir=workdir, **django_site(workdir, pages=pages, page_ms=page_ms, **kwargs))
        except StackError as e:
            pytest.fail(str(e), pytrace=False)
    return make


def submit_token(site) -> str:
    with open(os.path.join(site.workdir, "submit-tokens")) as f:
        return f.read().strip()


def herald_jobs(site, **query) -> list:
    path = "/jobs?" + "&".join(f"{k}={v}" for k, v in query.items())
    status, _, body = site.json("GET", path, headers={"Authorization": "Bearer " + submit_token(site)})
    assert status == 200, body
    return body["jobs"]


def wait_for(driver, condition, timeout=30, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def log_in(driver, site, user):
    driver.get(site.url + "/")
    wait_for(driver, lambda d: d.find_elements(By.ID, "login"), 15, "no login form")
    driver.find_element(By.ID, "id_username").send_keys(user)
    driver.find_element(By.ID, "id_password").send_keys(DEMO_PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "generate"), 15, f"{user} did not reach the reports page")
    wait_for_stream(driver)


def wait_for_stream(driver):
    wait_for(driver, lambda d: d.find_element(By.ID, "connection").text == "open", 15,
             "the owner stream did not open")


def rows(driver) -> list:
    """[id, state, progress, log] of every job row on the page, newest first."""
    return driver.execute_script("""
        return [...document.querySelectorAll('[data-job-id]')].map(li => [li.dataset.jobId, li.dataset.state,
            li.querySelector('progress').value, li.querySelector('.log pre').textContent]);""")


def watch_row(driver, timeout=40):
    """Samples the page until its only job row has succeeded with its log; returns (samples, row)."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = rows(driver)
        if now and (not samples or samples[-1] != now):
            samples.append(now)
        if now and now[0][1] == "succeeded" and "wrote report-" in now[0][3]:
            return samples, now[0]
        time.sleep(0.05)
    raise AssertionError(f"the job row never showed succeeded with its log: {samples[-5:]}")


def test_two_quick_clicks_start_one_job_shown_live_to_100_then_its_log(make_site, browser):
    site = make_site(pages=8, page_ms=300)
    log_in(browser, site, "alice")
    assert rows(browser) == []
    # Two clicks 30 ms apart on a slow network: the browser abandons the first POST for the second (as
    # with a user's double click), and Django has already handled both. Without the latency a fast machine
    # answered the first POST within the 30 ms, and the second click met no form (one POST, CI 12-03).
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                            {"offline": False, "latency": 300, "downloadThroughput": -1, "uploadThroughput": -1})
    ActionChains(browser).click(browser.find_element(By.ID, "generate")).pause(0.03).click().perform()

    samples, final = watch_row(browser)
    assert all(len(s) == 1 for s in samples), f"more than one job row appeared: {[s for s in samples if len(s) > 1][:2]}"
    job_id = final[0]
    progress = [s[0][2] for s in samples]
    assert progress == sorted(progress) and progress[-1] == 100, progress
    assert any(0 < p < 100 for p in progress), f"no live progress between 0 and 100: {progress}"
    assert "rendered page 8/8" in final[3]

    # The double click reached the server twice; Herald made one job of it.
    posts = site.requests_seen("POST", "/reports/generate")
    herald_posts = [r[2] for r in site.requests_seen("POST", "/jobs") if r[1] == "/jobs"]
    assert len(posts) >= 2 and len(herald_posts) >= 2, f"the double click did not submit twice: {posts} {herald_posts}"
    assert herald_posts.count(201) == 1 and set(herald_posts) == {200, 201}, herald_posts
    jobs = herald_jobs(site, owner="user-1")
    assert [j["id"] for j in jobs] == [job_id]
    month = jobs[0]["params"]["month"]
    assert jobs[0]["result"] == {"file": f"report-{month}.pdf", "pages": 8}, jobs[0]

    # One connection for the page: the owner stream, no per-job stream, no polling.
    browser.get("about:blank")
    wait = time.monotonic() + 10
    while not site.requests_seen("GET", "/jobs/events") and time.monotonic() < wait:
        time.sleep(0.1)
    gets = site.requests_seen("GET", "/jobs")
    assert [uri for _, uri, _ in gets if uri.startswith("/jobs/events")] == ["/jobs/events"], gets
    assert not [uri for _, uri, _ in gets if JOB_EVENTS.match(uri) or uri == f"/jobs/{job_id}"], gets


def test_another_user_sees_none_of_the_jobs_and_cannot_read_them_with_their_cookie(make_site, make_browser):
    site = make_site(pages=10, page_ms=300)
    alice, bob = make_browser(), make_browser()
    log_in(alice, site, "alice")
    alice.find_element(By.ID, "generate").click()
    wait_for(alice, lambda d: rows(d), 15, "alice's job did not appear")
    alice_job = rows(alice)[0][0]

    log_in(bob, site, "bob")
    assert rows(bob) == [], "bob's page lists alice's job"
    bob.find_element(By.ID, "generate").click()
    wait_for(bob, lambda d: rows(d), 15, "bob's job did not appear")
    _, bob_final = watch_row(bob)
    _, alice_final = watch_row(alice)
    assert [r[0] for r in rows(bob)] == [bob_final[0]] and [r[0] for r in rows(alice)] == [alice_job]

    # Bob's read token, as his browser holds it: HttpOnly, SameSite=Lax, only sent to /jobs.
    bob.get(site.url + f"/jobs/{alice_job}")
    error = json.loads(bob.find_element(By.TAG_NAME, "body").text)
    assert error["error"]["status"] == 401, error
    cookie = bob.get_cookie("herald_token")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/jobs" \
        and not cookie["secure"], cookie
    as_bob = {"Cookie": f"herald_token={cookie['value']}"}
    for path in (f"/jobs/{alice_job}", f"/jobs/{alice_job}/log", f"/jobs/{alice_job}/events",
                 f"/jobs/events?ids={alice_job}"):
        status, _, body = site.request("GET", path, headers=as_bob)
        assert status == 401, f"bob's cookie read {path}: {status} {body[:200]!r}"
    # The same cookie does read bob's own job, and a bare id reads nothing (require_read_token).
    assert site.request("GET", f"/jobs/{bob_final[0]}", headers=as_bob)[0] == 200
    assert site.request("GET", f"/jobs/{alice_job}")[0] == 401


def test_the_page_survives_a_fcgi_restart_mid_job_and_ends_with_the_final_state(make_site, browser):
    site = make_site(pages=30, page_ms=300)
    log_in(browser, site, "alice")
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, lambda d: (lambda r: r and r[0][1] == "running" and 0 < r[0][2] < 60)(rows(d)), 20,
             "the job never showed progress before the restart")
    # Down until the browser's reconnect has been refused (502), so herald.js has to come back by
    # itself; the job may well end while nobody can stream it.
    site.stop_fcgi()
    wait_until(lambda: [r for r in site.requests_seen("GET", "/jobs/events") if r[2] == 502], 30,
               what="the page's reconnect refused while herald-fcgi is down")
    site.start_fcgi()
    site.wait_healthy()
    samples, final = watch_row(browser, timeout=60)
    progress = [s[0][2] for s in samples]
    assert progress == sorted(progress) and final[2] == 100, progress
    assert herald_jobs(site, owner="user-1")[0]["state"] == "succeeded"


def test_the_page_renews_its_expired_cookie_through_django_and_keeps_watching(make_site, browser):
    # A 3 s cookie: by the time herald-fcgi restarts, the browser has dropped it (and the token
    # in it is past exp and its 5 s of leeway), so the reconnect is refused until the page asks
    # Django for a fresh one.
    site = make_site(pages=40, page_ms=400, read_token_ttl=3)
    log_in(browser, site, "alice")
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, lambda d: (lambda r: r and r[0][1] == "running")(rows(d)), 20, "the job did not start")
    time.sleep(3 + 5 + 1.5)
    site.restart_fcgi()
    samples, final = watch_row(browser, timeout=60)
    assert final[2] == 100
    renewals = site.requests_seen("POST", "/reports/token")
    assert any(status == 204 for _, _, status in renewals), renewals
    refused = [r for r in site.requests_seen("GET", "/jobs/events") if r[2] == 401]
    assert refused, "the expired cookie was never refused: the renewal was not exercised"
    assert browser.find_element(By.ID, "connection").text == "open"
