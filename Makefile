# Herald — build, test, demo and install.
#   make demo      run nginx + herald-fcgi + herald-runner on http://127.0.0.1:$(PORT)
#                  (STORE=postgres: on a private PostgreSQL cluster in .demo/ instead of a state directory)
#   make demo-django   the same with the example Django app (examples/django) on http://127.0.0.1:$(PORT)/
#   make test      every test: Swift unit tests, the Python client's and the Django example's tests,
#                  integration through nginx, headless browser
#   make install   binaries, config example, nginx snippet, systemd units (PREFIX, DESTDIR)
#   make bench     Herald against nchan and Django SSE on this machine -> docs/BENCHMARKS.md
#                  (ROWS=fanout: only issue 11's rows, Herald / nchan / the relay floor, ~8 min;
#                   ROWS=stores: only issue 10's, the PostgreSQL store beside the state directory, ~9 min)

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
PORT       ?= 8080
CONFIG     ?= debug
SWIFT      ?= swift
PYTHON     ?= /usr/bin/python3

BUILD_DIR   = $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
RUN_PKGS    = nginx libfcgi-dev libssl-dev libpq-dev pkg-config
TEST_PKGS   = $(RUN_PKGS) postgresql spawn-fcgi chromium chromium-driver python3-selenium python3-pytest python3-venv procps
SUDO        = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps test-deps test unit-test python-test integration-test demo demo-django django-venv install bench clean

all: build

# Installs only what is missing, so a prepared machine pays nothing.
deps:
	@scripts/ensure-packages $(RUN_PKGS)

test-deps:
	@scripts/ensure-packages $(TEST_PKGS)

build: deps
	$(SWIFT) build -c $(CONFIG)

test: test-deps
	$(SWIFT) build -c $(CONFIG) --build-tests
	$(MAKE) unit-test python-test integration-test

unit-test:
	$(SWIFT) test -c $(CONFIG) --skip-build

# The Python client's tests and the example Django app's view tests: no server, no Swift build
# (the venv brings PyJWT to check tokens against).
python-test: django-venv
	$(DJANGO_VENV)/bin/python -m pytest -q clients/python/tests
	cd examples/django && .venv/bin/python manage.py test reports

# Then the stack-based suites again on the PostgreSQL store (a private cluster for the session, a
# database per stack); tests about the state directory itself are skipped there, each with its reason.
PG_SUITE = tests/test_api.py tests/test_streams.py tests/test_faults.py tests/test_bad_input.py tests/test_fuzz.py \
           tests/test_tokens.py tests/test_slow_clients.py

integration-test: django-venv
	HERALD_BIN_DIR="$(BUILD_DIR)" $(PYTHON) -m pytest -q tests
	HERALD_BIN_DIR="$(BUILD_DIR)" HERALD_TEST_STORE=postgres $(PYTHON) -m pytest -q -rs $(PG_SUITE)

# The stack on http://127.0.0.1:$(PORT)/herald/ with a private state dir in .demo/; Ctrl-C stops it.
demo: build
	$(if $(filter postgres,$(STORE)),@scripts/ensure-packages postgresql)
	$(PYTHON) scripts/herald_stack.py demo --port $(PORT) --bin-dir "$(BUILD_DIR)" --store $(or $(STORE),directory)

# The same stack with the example Django app behind the same nginx (gunicorn); prints a demo login.
demo-django: build django-venv
	$(PYTHON) scripts/herald_stack.py demo-django --port $(PORT) --bin-dir "$(BUILD_DIR)"

# The example's virtual environment: Django 5.2 LTS, gunicorn and the client from this tree (plus
# PyJWT and pytest for the client's tests). Made once, redone when a requirement or the client changes.
DJANGO_VENV = examples/django/.venv
CLIENT_SRC  = clients/python/pyproject.toml $(wildcard clients/python/src/herald/*.py)

django-venv: $(DJANGO_VENV)/.installed

$(DJANGO_VENV)/.installed: examples/django/requirements.txt examples/django/requirements-test.txt $(CLIENT_SRC)
	@scripts/ensure-packages python3-venv
	[ -x $(DJANGO_VENV)/bin/python ] || $(PYTHON) -m venv $(DJANGO_VENV)
	$(DJANGO_VENV)/bin/pip install -q --disable-pip-version-check -r examples/django/requirements-test.txt
	$(DJANGO_VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./clients/python
	cd /tmp && $(CURDIR)/$(DJANGO_VENV)/bin/python -c "import herald, django; assert django.VERSION[:2] == (5, 2), django.VERSION"
	touch $@

# BIN_DIR=DIR installs already built binaries (the tests pass the debug ones);
# without it a release build is made first. Paths inside the installed files
# (ExecStart, the web root alias, cron) are rewritten to PREFIX and SYSCONFDIR.
BIN_DIR         ?=
INSTALL_BIN_DIR  = $(or $(BIN_DIR),$(shell $(SWIFT) build -c release --show-bin-path 2>/dev/null))
SHARE_DIR        = $(DESTDIR)$(PREFIX)/share/herald
FIX_PATHS        = sed -e 's|/usr/local/|$(PREFIX)/|g' -e 's|/etc/herald/|$(SYSCONFDIR)/herald/|g' \
                       -e 's|/usr/share/herald/web/|$(PREFIX)/share/herald/web/|g'
UNITS            = herald-fcgi.socket herald-fcgi.service herald-runner.service herald-runner-once.service \
                   herald-runner.path herald-runner.timer herald-gc.service herald-gc.timer

install:
	$(if $(BIN_DIR),,$(MAKE) deps && $(SWIFT) build -c release)
	install -D -m 0755 "$(INSTALL_BIN_DIR)/herald-fcgi" "$(DESTDIR)$(PREFIX)/bin/herald-fcgi"
	install -D -m 0755 "$(INSTALL_BIN_DIR)/herald-runner" "$(DESTDIR)$(PREFIX)/bin/herald-runner"
	install -D -m 0644 config/herald.yml "$(DESTDIR)$(SYSCONFDIR)/herald/herald.yml.example"
	install -d -m 0755 "$(SHARE_DIR)/nginx" "$(SHARE_DIR)/web" "$(SHARE_DIR)/cron" "$(DESTDIR)$(UNITDIR)" \
	    "$(DESTDIR)$(PREFIX)/share/doc/herald"
	$(FIX_PATHS) nginx/herald.conf > "$(SHARE_DIR)/nginx/herald.conf"
	$(FIX_PATHS) nginx/example-site.conf > "$(SHARE_DIR)/nginx/example-site.conf"
	$(FIX_PATHS) nginx/example-cluster.conf > "$(SHARE_DIR)/nginx/example-cluster.conf"
	install -m 0644 nginx/herald-log.conf "$(SHARE_DIR)/nginx/herald-log.conf"
	chmod 0644 "$(SHARE_DIR)/nginx/herald.conf" "$(SHARE_DIR)/nginx/example-site.conf" "$(SHARE_DIR)/nginx/example-cluster.conf"
	install -m 0644 web/index.html web/demo.css web/demo.js web/herald.js web/herald.mjs "$(SHARE_DIR)/web/"
	$(FIX_PATHS) cron/herald > "$(SHARE_DIR)/cron/herald"
	chmod 0644 "$(SHARE_DIR)/cron/herald"
	for u in $(UNITS); do $(FIX_PATHS) "systemd/$$u" > "$(DESTDIR)$(UNITDIR)/$$u" && chmod 0644 "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; done
	for d in DEPLOY.md PROTOCOL.md API.md SECURITY.md openapi.yaml; do [ ! -f "docs/$$d" ] || install -m 0644 "docs/$$d" "$(DESTDIR)$(PREFIX)/share/doc/herald/"; done

# Starts each system on loopback, runs the same SSE workload, writes docs/BENCHMARKS.md and
# docs/bench-latency.png (~35 min; BENCH_N=1000,5000,10000 BENCH_SYSTEMS=herald,nchan,django,
# BENCH_ARGS=--quick for a dry run). Release build in .build-release; Django etc. in bench/.venv.
# ROWS picks the row sets: classic (the table above), fanout (Herald through herald-runner, nchan
# and bench/relay-floor.c at 5,000 streams, 3 repeats; BENCH_REPEATS, BENCH_FANOUT_N,
# BENCH_FANOUT_SYSTEMS=herald,nchan,floor), stores (the PostgreSQL store beside the state
# directory over two herald-fcgi nodes: submit, submit -> running, fan-out at 1,000 and 5,000
# streams, 3 repeats; BENCH_STORES, BENCH_STORES_N, BENCH_REPEATS), all (the three, the default).
BENCH_ARGS ?=
ROWS       ?= all
bench:
	$(PYTHON) bench/run.py --rows $(ROWS) $(BENCH_ARGS)

clean:
	rm -rf .build .demo .demo-django .test-tmp $(DJANGO_VENV)
