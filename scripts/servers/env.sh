# Connection settings of the servers started by scripts/servers/servers.sh.
# Source it (`. scripts/servers/env.sh`) before running services on the production profile.
export ETCD_ENDPOINTS="http://127.0.0.1:${ETCD_PORT:-23790}"
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-63790}"
export POSTGRES_URL="postgres://chat:chat@127.0.0.1:${PG_PORT:-54320}/chat"
export CASSANDRA_CONTACT_POINTS="127.0.0.1:${CASSANDRA_PORT:-9042}"
export CASSANDRA_LOCAL_DC="datacenter1"
