# Benchmarks, included by the main Makefile. Results: bench/results/{latest,quick}.{md,json}.
.PHONY: bench bench-quick bench-production bench-directory capacity

## bench: every scenario of docs/requirements.md ("Performance targets") on the embedded profile (< 15 minutes)
bench: build
	node dist/bench/run.js

## bench-quick: small sizes, about 2 minutes
bench-quick: build
	node dist/bench/run.js --quick

## bench-production: the same on the production profile: starts the servers under ./var/servers (left
## running; `make servers-down` stops them), results in bench/results/production/
bench-production: build
	bash scripts/servers/servers.sh start
	set -a; . scripts/servers/env.sh; set +a; node dist/bench/run.js --profile production --out bench/results/production

## bench-directory: what one PostgreSQL gives the conversation list (read at every connect), and what
## its primary and a replica each spend when the lists go to the replica: starts PostgreSQL and its
## standby (left running), writes bench/results/directory-list.json for `make capacity`
bench-directory: build
	bash scripts/servers/servers.sh start postgres-replica
	set -a; . scripts/servers/env.sh; set +a; node dist/bench/directory-list.js

## capacity: the capacity model for 50M daily users from bench/capacity-model.yaml and the figures
## `make bench` measured (bench/results/latest.json); writes bench/results/capacity-model.md
capacity: build
	node dist/bench/capacity.js | tee bench/results/capacity-model.md
