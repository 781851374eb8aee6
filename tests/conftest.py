"""Shared fixtures for Herald's integration tests (pytest, /usr/bin/python3).

    bin_dir     the directory with herald-fcgi and herald-runner: $HERALD_BIN_DIR
                (the Makefile sets it), else .build/debug. Missing binaries FAIL
                the test with a clear message; nothing is skipped silently.
    stack       a started scripts/herald_stack.Stack in tmp_path (nginx + herald-fcgi
                + herald-runner), stopped afterwards. Configure it per test with
                @pytest.mark.stack(config_overrides={...}, runner=False, fcgi_mode='systemd', ...)
                (any keyword argument of Stack).
    make_stack  a factory: make_stack(**kwargs) -> started Stack; all stopped afterwards.
                With HERALD_TEST_STORE=postgres every stack runs on a fresh database of the
                session's private PostgreSQL cluster (support_postgres.py) instead of a state
                directory; tests that read or write the state directory themselves are marked
                @pytest.mark.directory_only("what it checks") and skipped there, with that reason.
    browser     headless Chromium through Debian's chromium-driver (selenium).
    make_browser  a factory of them, each with its own cookies (one per user).

When a test using a stack fails, the tail of every process's log is printed.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

from herald_stack import Stack, StackError  # noqa: E402
from support_postgres import STORE, postgres, postgres_database  # noqa: E402,F401

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def pytest_configure(config):
    config.addinivalue_line("markers", "stack(**kwargs): keyword arguments for the `stack` fixture's Stack")
    config.addinivalue_line("markers", "directory_only(why): the test reads or writes the state directory itself (why: what it checks)")


def pytest_collection_modifyitems(config, items):
    if STORE != "postgres":
        return
    for item in items:
        marker = item.get_closest_marker("directory_only")
        if marker:
            why = marker.args[0] if marker.args else "reads or writes the state directory itself"
            item.add_marker(pytest.mark.skip(reason=f"directory store only: {why}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, "rep_" + when, None), "failed", False) for when in ("setup", "call"))


@pytest.fixture(scope="session")
def bin_dir():
    d = os.environ.get("HERALD_BIN_DIR") or os.path.join(REPO, ".build", "debug")
    missing = [b for b in ("herald-fcgi", "herald-runner") if not os.access(os.path.join(d, b), os.X_OK)]
    if missing:
        pytest.fail(f"Herald binaries missing in {d}: {', '.join(missing)}. Build with `swift build` "
                    "and run through `make integration-test`, or set HERALD_BIN_DIR.", pytrace=False)
    return os.path.abspath(d)


@pytest.fixture
def make_stack(bin_dir, tmp_path, request):
    stacks = []

    def make(**kwargs):
        workdir = kwargs.pop("workdir", None) or tmp_path / f"stack{len(stacks)}"
        if STORE == "postgres" and "database_url" not in kwargs:
            cluster = request.getfixturevalue("postgres")
            kwargs["database_url"] = cluster.conninfo(cluster.create_database())
        s = Stack(bin_dir, workdir, **kwargs)
        stacks.append(s)
        return s.start()

    yield make
    for s in stacks:
        s.stop()
        if _failed(request):
            print(f"\n===== stack in {s.workdir} =====\n{s.diagnostics()}")


@pytest.fixture
def stack(make_stack, request):
    marker = request.node.get_closest_marker("stack")
    kwargs = dict(marker.kwargs) if marker else {}
    try:
        return make_stack(**kwargs)
    except StackError as e:
        pytest.fail(str(e), pytrace=False)


def _new_browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("python3-selenium is not installed (make test-deps installs it)", pytrace=False)
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} missing: apt-get install chromium chromium-driver (make test-deps)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture
def make_browser(request):
    """A factory of headless Chromiums, each its own profile (cookies apart): one per user."""
    drivers = []

    def make():
        drivers.append(_new_browser())
        return drivers[-1]

    yield make
    for n, driver in enumerate(drivers):
        if _failed(request):
            try:
                for entry in driver.get_log("browser"):
                    print(f"browser {n} console:", entry.get("level"), entry.get("message"))
            except Exception:
                pass
        driver.quit()


@pytest.fixture
def browser(make_browser):
    return make_browser()
