#!/usr/bin/env bash
# Installs, starts, stops the real servers of the production profile, on loopback,
# with every file under ./var/servers/<name>/:
#   etcd (Debian etcd-server), Redis (redis-server), PostgreSQL (postgresql),
#   Apache Cassandra 5.0 (cassandra-all and its dependencies from Maven Central, on the JDK).
#
# Usage: scripts/servers/servers.sh install|start|stop|status [etcd|redis|postgres|cassandra|all]
#
# Ports (override with these variables):
#   ETCD_PORT=23790 ETCD_PEER_PORT=23800 REDIS_PORT=63790 PG_PORT=54320
#   CASSANDRA_PORT=9042 CASSANDRA_STORAGE_PORT=7000
# Connection settings for the services: scripts/servers/env.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="$ROOT/var/servers"
HERE="$ROOT/scripts/servers"
ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
REDIS_PORT="${REDIS_PORT:-63790}"
PG_PORT="${PG_PORT:-54320}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.8}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"

log() { printf '[servers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until() { # seconds description command...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
  log "$what is up"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() { # pidfile name
  local f=$1
  pid_alive "$f" || { rm -f "$f"; return 0; }
  local pid; pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
  log "$2 stopped"
}

# ---------------------------------------------------------------- install
install_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "installing packages needs root (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
}

install_cassandra() {
  local lib="$VAR/cassandra/lib"
  if ls "$lib"/cassandra-all-"$CASSANDRA_VERSION".jar >/dev/null 2>&1; then return; fi
  log "fetching Apache Cassandra $CASSANDRA_VERSION from Maven Central"
  mkdir -p "$lib"
  (cd "$HERE/cassandra" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" -Dcassandra.version="$CASSANDRA_VERSION") \
    || die "maven could not fetch cassandra-all $CASSANDRA_VERSION"
}

# ---------------------------------------------------------------- etcd
start_etcd() {
  local d="$VAR/etcd"; mkdir -p "$d"
  if pid_alive "$d/etcd.pid"; then log "etcd already running"; return; fi
  nohup etcd --name dev --data-dir "$d/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "dev=http://127.0.0.1:$ETCD_PEER_PORT" --auto-compaction-retention 1 \
    > "$d/etcd.log" 2>&1 &
  echo $! > "$d/etcd.pid"
  wait_until 30 etcd etcdctl --endpoints "127.0.0.1:$ETCD_PORT" endpoint health || { tail -20 "$d/etcd.log"; die "etcd did not start"; }
}
stop_etcd() { stop_pid "$VAR/etcd/etcd.pid" etcd; }

# ---------------------------------------------------------------- redis
start_redis() {
  local d="$VAR/redis"; mkdir -p "$d"
  if pid_alive "$d/redis.pid"; then log "redis already running"; return; fi
  # Presence and caches only: nothing in Redis needs to survive a restart.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --pidfile "$d/redis.pid" \
    --dir "$d" --logfile "$d/redis.log" --save "" --appendonly no
  wait_until 15 redis redis-cli -p "$REDIS_PORT" ping || { tail -20 "$d/redis.log"; die "redis did not start"; }
}
stop_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  stop_pid "$VAR/redis/redis.pid" redis
}

# ---------------------------------------------------------------- postgres
pg_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  local d="$VAR/postgres"; mkdir -p "$d"
  [ "$(id -u)" = 0 ] && chown "$(pg_user)" "$d"
  if [ -f "$d/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$d/data" status >/dev/null 2>&1; then log "postgres already running"; return; fi
  if [ ! -f "$d/data/PG_VERSION" ]; then
    # initdb refuses to run as root: the data directory belongs to the postgres user.
    as_pg "$PG_BIN/initdb" -D "$d/data" -U chat --auth=trust --no-sync -E UTF8 >/dev/null
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 30 \
    -o "-p $PG_PORT -k $d -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
    || { tail -20 "$d/postgres.log"; die "postgres did not start"; }
  wait_until 30 postgres "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" || die "postgres not ready"
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U chat -d postgres -tAc "select 1 from pg_database where datname='chat'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U chat chat
  fi
}
stop_postgres() {
  local d="$VAR/postgres"
  [ -f "$d/data/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
  log "postgres stopped"
}

# ---------------------------------------------------------------- cassandra
start_cassandra() {
  local d="$VAR/cassandra"; mkdir -p "$d/data" "$d/logs"
  if pid_alive "$d/cassandra.pid"; then log "cassandra already running"; return; fi
  [ -f "$d/lib/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "cassandra is not installed: run '$0 install cassandra'"
  local jamm; jamm=$(ls "$d"/lib/jamm-*.jar | head -1)
  # The JVM flags of Cassandra's own conf/jvm17-server.options (JPMS opens/exports, netty).
  nohup java -Xms1G -Xmx1G -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m \
    -javaagent:"$jamm" -Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
    --add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED \
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
    --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    -Dcassandra.config="file://$HERE/cassandra/cassandra.yaml" -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$d/data" -Dcassandra.logdir="$d/logs" \
    -Dcassandra.native_transport_port="$CASSANDRA_PORT" -Dcassandra.storage_port="$CASSANDRA_STORAGE_PORT" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100 -Dcassandra.jmx.local.port=0 \
    -cp "$d/lib/*" org.apache.cassandra.service.CassandraDaemon > "$d/logs/stdout.log" 2>&1 &
  echo $! > "$d/cassandra.pid"
  wait_until 180 cassandra port_open "$CASSANDRA_PORT" || { tail -30 "$d/logs/stdout.log"; die "cassandra did not start"; }
}
stop_cassandra() { stop_pid "$VAR/cassandra/cassandra.pid" cassandra; }

# ---------------------------------------------------------------- main
cmd="${1:-status}"
what="${2:-all}"
case "$what" in all) targets=(etcd redis postgres cassandra) ;; etcd|redis|postgres|cassandra) targets=("$what") ;; *) die "unknown server: $what" ;; esac

case "$cmd" in
  install)
    install_packages
    for t in "${targets[@]}"; do [ "$t" = cassandra ] && install_cassandra; done
    log "installed"
    ;;
  start)
    for t in "${targets[@]}"; do t0=$SECONDS; "start_$t"; log "$t ready in $((SECONDS - t0)) s"; done
    ;;
  stop)
    for t in "${targets[@]}"; do "stop_$t"; done
    ;;
  status)
    pid_alive "$VAR/etcd/etcd.pid" && echo "etcd       up   127.0.0.1:$ETCD_PORT" || echo "etcd       down"
    pid_alive "$VAR/redis/redis.pid" && echo "redis      up   127.0.0.1:$REDIS_PORT" || echo "redis      down"
    [ -n "$PG_BIN" ] && [ -f "$VAR/postgres/data/postmaster.pid" ] && echo "postgres   up   127.0.0.1:$PG_PORT" || echo "postgres   down"
    pid_alive "$VAR/cassandra/cassandra.pid" && echo "cassandra  up   127.0.0.1:$CASSANDRA_PORT" || echo "cassandra  down"
    ;;
  *) die "usage: $0 install|start|stop|status [etcd|redis|postgres|cassandra|all]" ;;
esac
