# meshchat: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
NODE_BIN := node_modules/.bin

include mesh/mesh.mk
include bench/bench.mk
include scripts/servers/servers.mk


.PHONY: certs run up cluster deps gen build typecheck lint test test-unit test-e2e test-e2e-embedded test-e2e-production clean

## run: build and start the whole product on the embedded default (five services, no servers to install)
run: build
	node dist/cmd/meshchat/main.js

up: run

## deps: install the npm packages at the versions package-lock.json pins (no-op when up to date).
## (`npm install`, not `npm ci`: npm 11 here drops other platforms' optional packages from the
## lock file and `npm ci` then refuses it; `npm install` honours the pinned versions.)
deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

## gen: lint the protos and generate TypeScript with ts-proto (gen/ is never edited by hand)
gen: deps
	$(NODE_BIN)/buf lint
	rm -rf gen && $(NODE_BIN)/buf generate

build: gen
	$(NODE_BIN)/tsc -p tsconfig.json
	$(NODE_BIN)/tsc -p web/tsconfig.json
	$(NODE_BIN)/vite build --config web/vite.config.ts --logLevel warn

typecheck: gen
	$(NODE_BIN)/tsc -p tsconfig.json --noEmit

## cluster: the production profile on this machine: starts etcd, Redis, PostgreSQL and Cassandra under
## ./var/servers (installing what is missing), then two edges (HTTP 8080, 8081), two chat instances and one
## of each other service. Ctrl-C stops the services; `make servers-down` stops the servers.
cluster: build
	bash scripts/servers/servers.sh install
	bash scripts/servers/servers.sh start
	set -a; . scripts/servers/env.sh; set +a; PROFILE=production node dist/cmd/meshchat/main.js --edges 2 --chats 2

## test: every test, on both profiles; installs and starts the real servers under ./var and stops them
test: build
	bash test/browser/ensure-chromium.sh
	$(NODE_BIN)/vitest run --project unit
	$(NODE_BIN)/vitest run --project e2e
	$(MAKE) mesh-validate
	$(MAKE) test-production

## test-production: install and start the real servers under ./var/servers, run the server-backed tests
## (etcd discovery, Redis presence, Cassandra and PostgreSQL stores, PostgreSQL push tokens) and the end-to-end
## suite on the production profile (incl. the two-edge, two-chat cluster tests), then stop the servers whatever happened
test-production: build
	bash scripts/servers/servers.sh install
	bash scripts/servers/servers.sh start
	set -a; . scripts/servers/env.sh; set +a; \
	  status=0; \
	  $(NODE_BIN)/vitest run --project servers || status=$$?; \
	  [ $$status -eq 0 ] && { $(NODE_BIN)/vitest run --project unit test/notifier/token-store.test.ts || status=$$?; }; \
	  [ $$status -eq 0 ] && { E2E_PROFILE=production $(NODE_BIN)/vitest run --project e2e --dir test/e2e || status=$$?; }; \
	  bash scripts/servers/servers.sh stop; \
	  exit $$status

test-unit: build
	$(NODE_BIN)/vitest run --project unit

test-e2e: build
	$(NODE_BIN)/vitest run --project e2e

## certs: development CA and one certificate per service under var/certs (also made by `make run`)
certs:
	bash mesh/certs.sh var/certs

clean:
	rm -rf dist gen var/test
