# shellcheck shell=bash
# Connection settings of the servers that scripts/servers/servers.sh starts on loopback.
# Source it before running the services or tests on the production profile:
#   . scripts/servers/env.sh            (or: set -a; . scripts/servers/env.sh; set +a)
# The ports follow the same variables as servers.sh (ETCD_PORT, REDIS_PORT, REDIS_CLUSTER_PORT, PG_PORT, CASSANDRA_PORT).
export ETCD_ENDPOINTS="http://127.0.0.1:${ETCD_PORT:-23790}"
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-63790}"
# The three masters of the test Redis Cluster (seed nodes: the client finds the slots from them).
REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:${REDIS_CLUSTER_PORT:-63800},127.0.0.1:$((${REDIS_CLUSTER_PORT:-63800} + 1)),127.0.0.1:$((${REDIS_CLUSTER_PORT:-63800} + 2))"
export REDIS_CLUSTER_URL
export POSTGRES_URL="postgres://chat:chat@127.0.0.1:${PG_PORT:-54320}/chat"
# Its hot standby (servers.sh's postgres-replica), which serves the conversation lists as in a
# deployment (POSTGRES_REPLICA_URLS; docs/scaling.md, "Storage"); POSTGRES_REPLICA_URL is the one
# the tests of that routing and the directory bench use.
export POSTGRES_REPLICA_URL="postgres://chat:chat@127.0.0.1:${PG_REPLICA_PORT:-$((${PG_PORT:-54320} + 1))}/chat"
export POSTGRES_REPLICA_URLS="$POSTGRES_REPLICA_URL"
export CASSANDRA_CONTACT_POINTS="127.0.0.1:${CASSANDRA_PORT:-9042}"
export CASSANDRA_LOCAL_DC="datacenter1"
