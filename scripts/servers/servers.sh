#!/usr/bin/env bash
# The real servers of the production profile, on loopback, every file under ./var/servers/<name>/:
#   etcd        Debian etcd-server (+ etcd-client for etcdctl)
#   redis       Debian redis-server
#   redis-cluster  three Debian redis-server nodes with --cluster-enabled yes, joined by redis-cli --cluster create
#   postgres    Debian postgresql (run as the `postgres` OS user when invoked as root: initdb refuses root)
#   postgres-replica  a hot standby of it, streaming (pg_basebackup), for the directory's read routing
#   cassandra   Apache Cassandra 5.0 (org.apache.cassandra:cassandra-all and its runtime dependencies,
#               fetched with Maven from Central into var/servers/cassandra/lib, run on JDK 17 or 11)
#
# Usage: scripts/servers/servers.sh COMMAND [etcd|redis|redis-cluster|postgres|postgres-replica|cassandra|all]   (default: all)
#   install  apt-get installs the missing Debian packages (apt-get update only when one is missing)
#            and fetches Cassandra's jars (skipped when already there). Idempotent; needs root for apt.
#   start    installs what is missing, starts each server in the background (own session, pid file
#            under var/servers/<name>/) and waits until it answers. No-op for a server already up.
#   stop     stops each server cleanly (SIGTERM / pg_ctl -m fast), SIGKILL after a timeout.
#   status   prints which servers are up; exit code 0 only when all asked for are up.
#   wait     waits until the servers answer (for a start run elsewhere); exit code 1 on timeout.
# Connection settings for the app: `. scripts/servers/env.sh`.
#
# Settings (environment variables, defaults shown):
#   ETCD_PORT=23790  ETCD_PEER_PORT=23800      etcd client / peer ports
#   REDIS_PORT=63790                           Redis
#   REDIS_CLUSTER_PORT=63800                   Redis Cluster: three masters on this port and the next two
#   REDIS_CLUSTER_BUS_PORT=63810               their cluster bus ports (this one and the next two)
#   PG_PORT=54320                              PostgreSQL; superuser chat, password chat, database chat
#   PG_REPLICA_PORT=PG_PORT+1                  its hot standby (read only)
#   CASSANDRA_PORT=9042                        Cassandra CQL (native transport)
#   CASSANDRA_STORAGE_PORT=7000                Cassandra internode (127.0.0.1 only)
#   CASSANDRA_JMX_PORT=                        empty: JMX off; a port: JMX on 127.0.0.1 only (nodetool)
#   CASSANDRA_VERSION=5.0.9                    cassandra-all version fetched from Maven Central
#   CASSANDRA_HEAP=1G                          -Xms/-Xmx
#   CASSANDRA_JAVA=                            java binary (default: the JDK 17, else 11, under /usr/lib/jvm)
#   SERVERS_START_TIMEOUT=60                   seconds to wait for etcd, Redis, PostgreSQL
#   CASSANDRA_START_TIMEOUT=240                seconds to wait for Cassandra
#   SERVERS_STOP_TIMEOUT=60                    seconds before a server that ignores SIGTERM is killed
# All servers listen on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
VAR="$ROOT/var/servers"

ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
REDIS_PORT="${REDIS_PORT:-63790}"
REDIS_CLUSTER_PORT="${REDIS_CLUSTER_PORT:-63800}"
REDIS_CLUSTER_BUS_PORT="${REDIS_CLUSTER_BUS_PORT:-63810}"
PG_PORT="${PG_PORT:-54320}"
PG_REPLICA_PORT="${PG_REPLICA_PORT:-$((PG_PORT + 1))}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_JMX_PORT="${CASSANDRA_JMX_PORT:-}"
CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"
CASSANDRA_HEAP="${CASSANDRA_HEAP:-1G}"
SERVERS_START_TIMEOUT="${SERVERS_START_TIMEOUT:-60}"
CASSANDRA_START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-240}"
SERVERS_STOP_TIMEOUT="${SERVERS_STOP_TIMEOUT:-60}"
PG_USER=chat PG_PASSWORD=chat PG_DB=chat

ALL=(etcd redis redis-cluster postgres postgres-replica cassandra)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[servers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of our running server NAME from PIDFILE if alive and its command line matches PATTERN.
# A process that exited but was not reaped (PID 1 here does not reap orphans) is a
# zombie: `kill -0` still succeeds on it, so look at its state instead.
running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$st" ] && [ "${st:0:1}" != Z ]; }

# Prefix that runs "$@" with every file descriptor above 2 closed: a server must not keep our lock
# (fd 9: every later call would wait on it) or a pipe of the caller (make's or CI's log: its reader
# would never see end-of-file) open.
# (No redirection on the loop: bash would park stderr on a spare fd that the loop then closes.)
CLOSEFDS='for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@"'

live_pid() { # pidfile pattern
  local pid
  [ -s "$1" ] || return 1
  pid="$(head -n1 "$1" | tr -dc 0-9)"
  [ -n "$pid" ] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

# Run CMD... detached (own session, stdin /dev/null, output appended to LOGFILE); its pid goes to PIDFILE.
daemonize() { # pidfile logfile cmd...
  local pidfile=$1 logfile=$2 i
  shift 2
  rm -f "$pidfile"
  setsid bash -c 'echo $$ > "$0"; '"$CLOSEFDS" "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  for i in $(seq 1 100); do [ -s "$pidfile" ] && return 0; sleep 0.02; done
  die "could not start $3"
}

# Fail early, and clearly, when a port we need is taken by a process that is not ours.
need_free_ports() { # name port...
  local name=$1 p
  shift
  for p in "$@"; do
    if port_open "$p"; then
      log "port 127.0.0.1:$p is in use by another process:"
      ss -ltnp "sport = :$p" 2>/dev/null | tail -n +2 >&2 || true
      die "$name cannot start: port $p is taken (set another port, see the top of $0)"
    fi
  done
}

show_log() { # file...
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    log "---- last lines of $f"
    tail -n 40 "$f" >&2
  done
}

# Poll PROBE until it succeeds; fail at once when the process (pidfile/pattern) is gone.
wait_for() { # name timeout pidfile pattern probe... ; logs shown on failure come from $LOGS
  local name=$1 timeout=$2 pidfile=$3 pattern=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$pidfile" "$pattern" >/dev/null; then
      if [ "$cmd" = wait ]; then
        # Not launched yet: fine while a start elsewhere holds the lock, an error otherwise.
        flock -n "$VAR/.lock" true 2>/dev/null && die "$name is not running (start it: $0 start $name)"
      else
        show_log "${LOGS[@]}"
        die "$name is not running (it exited during start-up? logs above)"
      fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log "${LOGS[@]}"
      die "$name did not answer within ${timeout}s (logs above; process still running, '$0 stop $name' ends it)"
    fi
    sleep 0.1
  done
}

stop_pid() { # name pidfile pattern
  local name=$1 pidfile=$2 pattern=$3 pid i
  if ! pid="$(live_pid "$pidfile" "$pattern")"; then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < SERVERS_STOP_TIMEOUT * 10; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    log "$name ignored SIGTERM for ${SERVERS_STOP_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while running "$pid"; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "$name stopped"
}

# ================================================================ install
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# A JVM Cassandra 5.0 runs on: 17 or 11 (not 8, not 21+).
find_java() {
  local j v
  for j in ${CASSANDRA_JAVA:-} /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-11-openjdk-*/bin/java \
    "$(command -v java || true)"; do
    [ -n "$j" ] && [ -x "$j" ] || continue
    v="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    case "$v" in 17 | 11) echo "$j"; return 0 ;; esac
  done
  return 1
}

packages_for() { # server
  case "$1" in
    etcd) echo etcd-server etcd-client ;;
    redis | redis-cluster) echo redis-server redis-tools ;;
    postgres | postgres-replica) echo postgresql ;;
    cassandra)
      find_java >/dev/null || echo openjdk-17-jre-headless
      command -v mvn >/dev/null || echo maven
      ;;
  esac
}

install_packages() { # server...
  local missing=() t p
  for t in "$@"; do
    for p in $(packages_for "$t"); do pkg_installed "$p" || missing+=("$p"); done
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing Debian packages ${missing[*]}; installing them needs root"
    SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
  else
    SUDO=()
  fi
  local t0 apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  t0="$(now)"
  log "installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" "${apt[@]}" update -qq >&2 || die "apt-get update failed"
  "${SUDO[@]}" "${apt[@]}" install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed"
  log "Debian packages installed in $(since "$t0") s"
}

cassandra_lib() { echo "$VAR/cassandra/lib"; }

install_cassandra() {
  local lib tmp mvnlog t0 java_home
  lib="$(cassandra_lib)"
  [ -f "$lib/.fetched-$CASSANDRA_VERSION" ] && return 0
  t0="$(now)"
  log "fetching Apache Cassandra $CASSANDRA_VERSION (cassandra-all + runtime dependencies) with Maven"
  mkdir -p "$VAR/cassandra"
  tmp="$VAR/cassandra/lib.partial"
  mvnlog="$VAR/cassandra/maven.log"
  rm -rf "$tmp"
  java_home="$(dirname "$(dirname "$(readlink -f "$(find_java)")")")"
  local mvn=(env JAVA_HOME="$java_home" mvn -B -f "$HERE/cassandra/pom.xml" -Dcassandra.version="$CASSANDRA_VERSION"
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp")
  # Offline first (everything in ~/.m2 already: no network), then online.
  if ! "${mvn[@]}" -o >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    "${mvn[@]}" >"$mvnlog" 2>&1 || { tail -n 40 "$mvnlog" >&2; die "Maven could not fetch cassandra-all $CASSANDRA_VERSION (log: $mvnlog)"; }
  fi
  [ -f "$tmp/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "cassandra-all-$CASSANDRA_VERSION.jar missing after the fetch (log: $mvnlog)"
  touch "$tmp/.fetched-$CASSANDRA_VERSION"
  rm -rf "$lib"
  mv "$tmp" "$lib"
  log "Cassandra $CASSANDRA_VERSION: $(ls "$lib" | wc -l) jars in $lib ($(since "$t0") s)"
}

do_install() { # server...
  install_packages "$@"
  local t
  for t in "$@"; do [ "$t" = cassandra ] && install_cassandra; done
  return 0
}

# ================================================================ etcd
ETCD_DIR="$VAR/etcd"
ETCD_PID="$ETCD_DIR/etcd.pid"
etcd_up() { etcdctl --endpoints="http://127.0.0.1:$ETCD_PORT" --dial-timeout=1s --command-timeout=2s endpoint health; }

launch_etcd() {
  live_pid "$ETCD_PID" etcd >/dev/null && { RUNNING=1; return 0; }
  need_free_ports etcd "$ETCD_PORT" "$ETCD_PEER_PORT"
  mkdir -p "$ETCD_DIR"
  local url="http://127.0.0.1:$ETCD_PORT" peer="http://127.0.0.1:$ETCD_PEER_PORT" unset_etcd=() v
  # etcd reads every ETCD_* variable as a flag: keep ours (ETCD_PORT, ETCD_ENDPOINTS, ...) away from it.
  for v in $(compgen -e | grep '^ETCD' || true); do unset_etcd+=(-u "$v"); done
  daemonize "$ETCD_PID" "$ETCD_DIR/etcd.log" env "${unset_etcd[@]}" etcd \
    --name meshchat --data-dir "$ETCD_DIR/data" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "meshchat=$peer" --initial-cluster-state new --initial-cluster-token meshchat-dev \
    --auto-compaction-mode periodic --auto-compaction-retention 1h \
    --heartbeat-interval 100 --election-timeout 500 # one member: elect itself in 0.5 s, not 1 s
}
ready_etcd() { LOGS=("$ETCD_DIR/etcd.log"); wait_for etcd "$SERVERS_START_TIMEOUT" "$ETCD_PID" etcd etcd_up; }
stop_etcd() { stop_pid etcd "$ETCD_PID" etcd; }
pid_etcd() { live_pid "$ETCD_PID" etcd; }
status_etcd() { live_pid "$ETCD_PID" etcd && etcd_up >/dev/null 2>&1; }
endpoint_etcd() { echo "http://127.0.0.1:$ETCD_PORT"; }

# ================================================================ redis
REDIS_DIR="$VAR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

launch_redis() {
  live_pid "$REDIS_PID" redis-server >/dev/null && { RUNNING=1; return 0; }
  need_free_ports redis "$REDIS_PORT"
  mkdir -p "$REDIS_DIR"
  # RDB snapshots (Redis's defaults), written on a clean stop too: a restart finds the data again.
  daemonize "$REDIS_PID" "$REDIS_DIR/redis.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --protected-mode yes --daemonize no --dir "$REDIS_DIR" --dbfilename dump.rdb \
    --save "3600 1 300 100 60 10000" --appendonly no --logfile ""
}
ready_redis() { LOGS=("$REDIS_DIR/redis.log"); wait_for redis "$SERVERS_START_TIMEOUT" "$REDIS_PID" redis-server redis_up; }
stop_redis() { stop_pid redis "$REDIS_PID" redis-server; }
pid_redis() { live_pid "$REDIS_PID" redis-server; }
status_redis() { live_pid "$REDIS_PID" redis-server && redis_up; }
endpoint_redis() { echo "redis://127.0.0.1:$REDIS_PORT"; }

# ================================================================ redis-cluster
# Three masters, no replicas: the smallest Redis Cluster whose slots are spread over several
# nodes, so a script or command touching keys of two slots fails here as it would in production.
# Every start builds a new cluster: nodes.conf names the ports, and the tests need no data kept.
RC_DIR="$VAR/redis-cluster"
rc_ports() { echo "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + 1)) $((REDIS_CLUSTER_PORT + 2)); }
rc_pid() { echo "$RC_DIR/$1/redis.pid"; }
rc_nodes_up() { local p; for p in $(rc_ports); do [ "$(redis-cli -h 127.0.0.1 -p "$p" ping 2>/dev/null)" = PONG ] || return 1; done; }
rc_ok() { local p; for p in $(rc_ports); do redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1; done; }

launch_redis-cluster() {
  local p i=0 all=1
  for p in $(rc_ports); do live_pid "$(rc_pid "$p")" redis-server >/dev/null || all=0; done
  [ "$all" = 1 ] && { RUNNING=1; return 0; }
  stop_redis-cluster 2>/dev/null # a partial cluster from an interrupted start
  # shellcheck disable=SC2046
  need_free_ports redis-cluster $(rc_ports) $((REDIS_CLUSTER_BUS_PORT)) $((REDIS_CLUSTER_BUS_PORT + 1)) $((REDIS_CLUSTER_BUS_PORT + 2))
  rm -rf "$RC_DIR"
  for p in $(rc_ports); do
    mkdir -p "$RC_DIR/$p"
    daemonize "$(rc_pid "$p")" "$RC_DIR/$p/redis.log" redis-server --bind 127.0.0.1 --port "$p" \
      --cluster-enabled yes --cluster-port $((REDIS_CLUSTER_BUS_PORT + i)) --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --protected-mode yes --daemonize no --dir "$RC_DIR/$p" \
      --save "" --appendonly no --logfile ""
    i=$((i + 1))
  done
}
ready_redis-cluster() {
  local p nodes=()
  LOGS=()
  for p in $(rc_ports); do LOGS+=("$RC_DIR/$p/redis.log"); done
  for p in $(rc_ports); do wait_for redis-cluster "$SERVERS_START_TIMEOUT" "$(rc_pid "$p")" redis-server rc_nodes_up; done
  rc_ok && return 0
  if [ "$cmd" != wait ] && [ -z "$(redis-cli -h 127.0.0.1 -p "$REDIS_CLUSTER_PORT" cluster slots 2>/dev/null)" ]; then
    for p in $(rc_ports); do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$RC_DIR/create.log" 2>&1 ||
      { show_log "$RC_DIR/create.log"; die "redis-cli --cluster create failed (log above)"; }
  fi
  # The nodes agree on the slots over the bus within a second or two.
  wait_for redis-cluster "$SERVERS_START_TIMEOUT" "$(rc_pid "$REDIS_CLUSTER_PORT")" redis-server rc_ok
}
stop_redis-cluster() { local p; for p in $(rc_ports); do stop_pid "redis-cluster node $p" "$(rc_pid "$p")" redis-server; done; }
pid_redis-cluster() { live_pid "$(rc_pid "$REDIS_CLUSTER_PORT")" redis-server; }
status_redis-cluster() { local p; for p in $(rc_ports); do live_pid "$(rc_pid "$p")" redis-server >/dev/null || return 1; done; rc_ok; }
endpoint_redis-cluster() { local p out=""; for p in $(rc_ports); do out+="${out:+,}127.0.0.1:$p"; done; echo "redis+cluster://$out"; }

# ================================================================ postgres
PG_DIR="$VAR/postgres"
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
# initdb and the server refuse to run as root: as root they run as the `postgres` OS user
# (created by Debian's postgresql-common), who owns var/servers/postgres.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_data() { echo "$(readlink -f "$PG_DIR")/data"; }
pg_pidfile() { echo "$(pg_data)/postmaster.pid"; }
pg_up() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1; }
pg_psql() { PGPASSWORD="$PG_PASSWORD" "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$@"; }

# Make var/servers/postgres usable by the postgres OS user. If the checkout sits where that
# user cannot reach (e.g. under /root, mode 700), keep the files in /var/tmp and link them here.
pg_prepare_dir() { # dir: the server's folder under var/servers (the primary's or the standby's)
  local dir=$1
  [ -L "$dir" ] && [ -d "$dir/" ] && return 0 # already moved to /var/tmp (below)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] || return 0
  chown postgres: "$dir" 2>/dev/null || true
  if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    [ -L "$dir" ] || [ -z "$(ls -A "$dir")" ] || die "the postgres OS user cannot write $dir"
    local alt
    alt="/var/tmp/meshchat-servers/$(printf %s "$ROOT" | md5sum | cut -c1-12)/$(basename "$dir")"
    log "the postgres OS user cannot reach $dir: its files go to $alt (linked from there)"
    mkdir -p "$alt"
    chmod 755 "$(dirname "$(dirname "$alt")")" "$(dirname "$alt")"
    chown postgres: "$alt"
    rmdir "$dir" 2>/dev/null || true
    ln -sfn "$alt" "$dir"
  fi
}

launch_postgres() {
  local bin data pwfile
  bin="$(pg_bin)"
  [ -x "$bin/initdb" ] || die "PostgreSQL is not installed: run '$0 install postgres'"
  [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1 || die "the postgres OS user is missing (package postgresql-common)"
  pg_prepare_dir "$PG_DIR"
  data="$(pg_data)"
  live_pid "$(pg_pidfile)" postgres >/dev/null && { RUNNING=1; return 0; }
  need_free_ports postgres "$PG_PORT"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    pwfile="$(readlink -f "$PG_DIR")/.pwfile"
    (umask 077 && echo "$PG_PASSWORD" >"$pwfile")
    [ "$(id -u)" != 0 ] || chown postgres: "$pwfile"
    # Superuser chat/chat; password (SCRAM) over TCP, which is all the server listens on.
    as_pg "$bin/initdb" -D "$data" -U "$PG_USER" --pwfile="$pwfile" --auth-host=scram-sha-256 \
      --auth-local=trust -E UTF8 --locale=C --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 ||
      { rm -f "$pwfile"; show_log "$PG_DIR/initdb.log"; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  local have want
  have="$(cat "$data/PG_VERSION")" want="$(basename "$(dirname "$bin")")"
  [ "${have%%.*}" = "${want%%.*}" ] || die "$data was made by PostgreSQL $have, the installed server is $want: stop, remove it, start again"
  pg_start postgres "$PG_DIR" "$data" "$PG_PORT"
}
# Starts a server on its data folder (a primary, or a standby made by pg_basebackup) and waits
# for its pid file: pg_ctl -W returns before the server writes it, and wait_for would take a
# server still starting for one that exited. No Unix socket: TCP on 127.0.0.1 only; pg_ctl
# daemonizes the server in its own session.
pg_start() { # name dir data port
  local name=$1 dir=$2 data=$3 port=$4 i
  as_pg bash -c "$CLOSEFDS" pg_ctl "$(pg_bin)/pg_ctl" -D "$data" -l "$(readlink -f "$dir")/postgres.log" -W -s \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300" start </dev/null >/dev/null 9>&-
  for i in $(seq 1 100); do [ -s "$data/postmaster.pid" ] && return 0; sleep 0.05; done
  show_log "$dir/postgres.log"
  die "$name did not start (log above)"
}
ready_postgres() {
  LOGS=("$PG_DIR/postgres.log")
  wait_for postgres "$SERVERS_START_TIMEOUT" "$(pg_pidfile)" postgres pg_up
  # The database the app uses (the superuser is the bootstrap user of initdb).
  if [ "$(pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]; then
    pg_psql -d postgres -c "create database $PG_DB owner $PG_USER" || die "could not create database $PG_DB"
  fi
}
pg_stop() { # name data-dir
  local name=$1 data=$2 pid
  pid="$(live_pid "$data/postmaster.pid" postgres)" || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$data" -m fast -w -t "$SERVERS_STOP_TIMEOUT" -s stop >/dev/null 2>&1 || true
  if running "$pid"; then
    log "$name did not stop in ${SERVERS_STOP_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while running "$pid"; do sleep 0.1; done
  fi
  log "$name stopped"
}
stop_postgres() { [ -d "$PG_DIR" ] || return 0; pg_stop postgres "$(pg_data)"; }
pid_postgres() { [ -d "$PG_DIR" ] && live_pid "$(pg_pidfile)" postgres; }
status_postgres() { [ -d "$PG_DIR" ] && live_pid "$(pg_pidfile)" postgres && pg_up; }
endpoint_postgres() { echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"; }

# ================================================================ postgres-replica
# A hot standby of the primary above, made by pg_basebackup and streaming from it: what the
# directory's lists are routed to (internal/store/directory-reads-replica.ts). It is made
# again at every start, so it never streams from a primary that initdb made anew since: a
# copy of the primary takes under a second here with the checkpoint taken at once
# (--checkpoint=fast; the default spreads it over minutes: 237 s measured).
PGR_DIR="$VAR/postgres-replica"
pgr_data() { echo "$(readlink -f "$PGR_DIR")/data"; }
pgr_pidfile() { echo "$(pgr_data)/postmaster.pid"; }
pgr_up() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_REPLICA_PORT" -t 1; }
launch_postgres-replica() {
  live_pid "$(pgr_pidfile)" postgres >/dev/null && { RUNNING=1; return 0; }
  # Made in ready_postgres-replica, once the primary answers.
  return 0
}
ready_postgres-replica() {
  local bin data
  bin="$(pg_bin)"
  # Made only by a start (a wait only waits: a start elsewhere may be copying the primary now).
  if [ "$cmd" = start ] && ! live_pid "$(pgr_pidfile)" postgres >/dev/null; then
    ready_postgres
    need_free_ports postgres-replica "$PG_REPLICA_PORT"
    pg_prepare_dir "$PGR_DIR"
    data="$(pgr_data)"
    rm -rf "$data"
    # -R writes standby.signal and primary_conninfo: the copy starts as a streaming standby.
    as_pg env PGPASSWORD="$PG_PASSWORD" "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" \
      -D "$data" -R -X stream --checkpoint=fast --no-sync >"$PGR_DIR/basebackup.log" 2>&1 ||
      { show_log "$PGR_DIR/basebackup.log"; die "pg_basebackup failed"; }
    # hot_standby is on by default: the standby answers reads while it replays.
    pg_start postgres-replica "$PGR_DIR" "$data" "$PG_REPLICA_PORT"
  fi
  LOGS=("$PGR_DIR/basebackup.log" "$PGR_DIR/postgres.log")
  wait_for postgres-replica "$SERVERS_START_TIMEOUT" "$(pgr_pidfile)" postgres pgr_up
}
stop_postgres-replica() { [ -d "$PGR_DIR" ] || return 0; pg_stop postgres-replica "$(pgr_data)"; }
pid_postgres-replica() { [ -d "$PGR_DIR" ] && live_pid "$(pgr_pidfile)" postgres; }
status_postgres-replica() { [ -d "$PGR_DIR" ] && live_pid "$(pgr_pidfile)" postgres && pgr_up; }
endpoint_postgres-replica() { echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_REPLICA_PORT/$PG_DB"; }

# ================================================================ cassandra
CASS_DIR="$VAR/cassandra"
CASS_PID="$CASS_DIR/cassandra.pid"
CASS_PATTERN=org.apache.cassandra.service.CassandraDaemon
CASS_LOG="$CASS_DIR/logs/system.log"
CASS_READY_MSG="Starting listening for CQL clients"
# Each start begins a new logs/system.log (the previous one is kept as system.log.1).
cassandra_up() { port_open "$CASSANDRA_PORT" && grep -q "$CASS_READY_MSG" "$CASS_LOG" 2>/dev/null; }

cassandra_logback() { # logback config: INFO to logs/system.log, warnings also to the console log
  cat >"$CASS_DIR/conf/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <append>true</append>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
    <appender-ref ref="STDOUT"/>
  </root>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
EOF
}

launch_cassandra() {
  local lib java jamm jmx=()
  live_pid "$CASS_PID" "$CASS_PATTERN" >/dev/null && { RUNNING=1; return 0; }
  lib="$(cassandra_lib)"
  [ -f "$lib/.fetched-$CASSANDRA_VERSION" ] || die "Cassandra $CASSANDRA_VERSION is not installed: run '$0 install cassandra'"
  java="$(find_java)" || die "no JDK 17 or 11 found for Cassandra 5.0 (set CASSANDRA_JAVA or run '$0 install cassandra')"
  jamm="$(ls "$lib"/jamm-*.jar | head -n1)"
  case "$ROOT" in *[[:space:]]*) die "Cassandra needs a checkout path without spaces (cassandra.config is a URL): $ROOT" ;; esac
  need_free_ports cassandra "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" ${CASSANDRA_JMX_PORT:+"$CASSANDRA_JMX_PORT"}
  mkdir -p "$CASS_DIR/data" "$CASS_DIR/logs" "$CASS_DIR/conf/triggers"
  cassandra_logback
  [ -n "$CASSANDRA_JMX_PORT" ] && jmx=(-Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" -Djava.rmi.server.hostname=127.0.0.1)
  [ -f "$CASS_LOG" ] && mv -f "$CASS_LOG" "$CASS_LOG.1"
  : >"$CASS_DIR/logs/stdout.log"
  # Flags: Cassandra's conf/jvm-server.options + conf/jvm17-server.options (JPMS exports/opens, netty,
  # G1), the jamm agent, and system properties that skip the waits a multi-node cluster needs.
  daemonize "$CASS_PID" "$CASS_DIR/logs/stdout.log" "$java" \
    -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k \
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m \
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70 \
    -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError \
    -XX:StringTableSize=1000003 -XX:-UsePerfData \
    -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true \
    -Dio.netty.allocator.maxOrder=11 -Dchronicle.announcer.disable=true \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
    --add-exports java.sql/java.sql=ALL-UNNAMED \
    --add-exports java.base/java.lang.ref=ALL-UNNAMED \
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
    --add-opens java.base/java.lang.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$HERE/cassandra/cassandra.yaml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$CASS_DIR/data" \
    -Dcassandra.triggers_dir="$CASS_DIR/conf/triggers" \
    -Dcassandra.logdir="$CASS_DIR/logs" \
    -Dlogback.configurationFile="$CASS_DIR/conf/logback.xml" \
    -Dcassandra.native_transport_port="$CASSANDRA_PORT" \
    -Dcassandra.storage_port="$CASSANDRA_STORAGE_PORT" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.shutdown_announce_in_ms=0 \
    "${jmx[@]}" \
    -cp "$lib/*" $CASS_PATTERN
}
ready_cassandra() {
  LOGS=("$CASS_DIR/logs/stdout.log" "$CASS_LOG")
  wait_for cassandra "$CASSANDRA_START_TIMEOUT" "$CASS_PID" "$CASS_PATTERN" cassandra_up
}
stop_cassandra() { stop_pid cassandra "$CASS_PID" "$CASS_PATTERN"; }
pid_cassandra() { live_pid "$CASS_PID" "$CASS_PATTERN"; }
status_cassandra() { live_pid "$CASS_PID" "$CASS_PATTERN" && cassandra_up; }
endpoint_cassandra() { echo "127.0.0.1:$CASSANDRA_PORT (CQL)"; }

# ================================================================ main
usage() { die "usage: $0 install|start|stop|status|wait [etcd|redis|redis-cluster|postgres|postgres-replica|cassandra|all]"; }

cmd="${1:-}"
case "${2:-all}" in
  all) targets=("${ALL[@]}") ;;
  etcd | redis | redis-cluster | postgres | cassandra) targets=("$2") ;;
  # A standby streams from its primary: starting (or waiting for) one needs both.
  postgres-replica) if [ "$cmd" = stop ]; then targets=(postgres-replica); else targets=(postgres postgres-replica); fi ;;
  *) usage ;;
esac
[ $# -le 2 ] || usage

lock() { # one start/stop/install at a time (tests in parallel may all ask for the servers)
  mkdir -p "$VAR"
  exec 9>"$VAR/.lock"
  flock -w 900 9 || die "another $0 holds $VAR/.lock"
}

case "$cmd" in
  install)
    lock
    t0="$(now)"
    do_install "${targets[@]}"
    log "install done in $(since "$t0") s"
    ;;
  start)
    lock
    do_install "${targets[@]}"
    # Launch the slowest first, then wait for each in turn.
    order=()
    for t in cassandra etcd redis redis-cluster postgres postgres-replica; do
      [[ " ${targets[*]} " == *" $t "* ]] && order+=("$t")
    done
    declare -A started
    for t in "${order[@]}"; do
      started[$t]="$(now)"
      RUNNING=0
      "launch_$t"
      if [ "$RUNNING" = 1 ]; then
        log "$t already running"
        started[$t]=""
      else
        log "$t starting"
      fi
    done
    # ... and wait for the quick ones first, so that each one's time is its own.
    for t in etcd redis redis-cluster postgres postgres-replica cassandra; do
      [ -n "${started[$t]+set}" ] || continue
      "ready_$t"
      if [ -n "${started[$t]}" ]; then log "$t ready in $(since "${started[$t]}") s on $("endpoint_$t")"; fi
    done
    ;;
  stop)
    lock
    # In the reverse of the start order: a standby before its primary.
    for ((i = ${#targets[@]} - 1; i >= 0; i--)); do "stop_${targets[$i]}"; done
    ;;
  wait)
    for t in "${targets[@]}"; do
      t0="$(now)"
      "ready_$t"
      log "$t up ($(since "$t0") s)"
    done
    ;;
  status)
    rc=0
    for t in "${targets[@]}"; do
      if "status_$t" >/dev/null 2>&1; then
        printf '%-16s up    %s\n' "$t" "$("endpoint_$t")"
      elif "pid_$t" >/dev/null 2>&1; then
        printf '%-16s starting (process up, not answering yet)\n' "$t"
        rc=1
      else
        printf '%-16s down\n' "$t"
        rc=1
      fi
    done
    exit $rc
    ;;
  *) usage ;;
esac
