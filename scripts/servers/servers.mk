# Targets for the real servers of the production profile (etcd, Redis, PostgreSQL, Cassandra 5.0),
# all on 127.0.0.1 with their files under var/servers/. Included by the top-level Makefile.
# Connection settings: `. scripts/servers/env.sh`. Details: scripts/servers/README.md.
SERVERS_SH := $(CURDIR)/scripts/servers/servers.sh

.PHONY: servers-install servers-up servers-down servers-status

## servers-install: apt-get the missing Debian packages, fetch Cassandra's jars (no-op when done)
servers-install:
	bash $(SERVERS_SH) install

## servers-up: start etcd, Redis, PostgreSQL and Cassandra and wait until each answers
servers-up: servers-install
	bash $(SERVERS_SH) start

## servers-down: stop them (data stays in var/servers/ for the next start)
servers-down:
	bash $(SERVERS_SH) stop

## servers-status: which of them are up
servers-status:
	@bash $(SERVERS_SH) status || true
