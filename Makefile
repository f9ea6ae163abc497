# Tugboat: every target does its own set-up (Debian packages, pinned Node 26,
# npm dependencies), so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
NODE  := vendor/node/bin/node
STAMP := build/.stamps

.PHONY: all setup build fixtures test test-unit test-integration demo bench install clean typecheck

all: build

$(STAMP)/system:
	@scripts/setup-system.sh
	@mkdir -p $(STAMP) && touch $@

$(NODE): scripts/setup-node.sh scripts/lib.sh
	@scripts/setup-node.sh
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	@echo "==> npm ci"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMP)/system $(NODE) node_modules/.package-lock.json

# Docker 20.10, containerd 1.6, podman, CNI plugins, registry: installed but
# never started as system services; the tests start private daemons.
$(STAMP)/daemons: scripts/setup-daemons.sh
	@scripts/setup-daemons.sh
	@mkdir -p $(STAMP) && touch $@

build: setup
	@echo "==> build (tsc, WASI host bundle, runtime kit, examples, test guests)"
	@$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json
	@$(NODE) scripts/bundle-host.mjs
	@scripts/build-kit.sh
	@examples/rust-wasm/build.sh
	@test/guests/build.sh

typecheck: setup
	@$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json --noEmit

fixtures: build
	@scripts/build-fixtures.sh

test: fixtures $(STAMP)/daemons
	@scripts/run-tests.sh

test-unit: build
	@$(NODE) node_modules/vitest/vitest.mjs run --project unit

test-integration: fixtures $(STAMP)/daemons
	@$(NODE) node_modules/vitest/vitest.mjs run --project integration

demo: fixtures
	@scripts/demo.sh

bench: fixtures $(STAMP)/daemons
	@$(NODE) bench/cli-start.mjs
	@$(NODE) bench/cold-start.mjs
	@$(NODE) bench/seccomp.mjs
	@$(NODE) bench/rm-watcher.mjs
	@$(NODE) bench/compute.mjs
	@$(NODE) bench/syscalls.mjs
	@$(NODE) bench/idle-pss.mjs
	@for b in compute-yield instrument component-fs docker-start ctr-start shim-delete density http http-reset pull; do \
	  $(NODE) scripts/bundle-bench.mjs $$b && $(NODE) build/bench/$$b.mjs || exit 1; \
	done

install: build
	ln -sf $(CURDIR)/bin/tugboat /usr/local/bin/tugboat
	ln -sf $(CURDIR)/bin/containerd-shim-tugboat-v1 /usr/local/bin/containerd-shim-tugboat-v1

clean:
	rm -rf dist build test/fixtures/out examples/rust-wasm/out
