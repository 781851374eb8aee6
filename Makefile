# Herald — build, test, demo and install.
#   make demo      run nginx + herald-fcgi + herald-runner on http://127.0.0.1:$(PORT)
#   make test      every test: Swift unit tests, integration through nginx, headless browser
#   make install   binaries, config example, nginx snippet, systemd units (PREFIX, DESTDIR)

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
PORT       ?= 8080
CONFIG     ?= debug
SWIFT      ?= swift
PYTHON     ?= /usr/bin/python3

BUILD_DIR   = $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
RUN_PKGS    = nginx libfcgi-dev pkg-config
TEST_PKGS   = $(RUN_PKGS) spawn-fcgi chromium chromium-driver python3-selenium python3-pytest procps
SUDO        = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps test-deps test unit-test integration-test demo install bench clean

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
	$(MAKE) unit-test integration-test

unit-test:
	$(SWIFT) test -c $(CONFIG) --skip-build

integration-test:
	HERALD_BIN_DIR="$(BUILD_DIR)" $(PYTHON) -m pytest -q tests

clean:
	rm -rf .build .demo .test-tmp
