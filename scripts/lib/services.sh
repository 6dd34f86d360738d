# shellcheck shell=bash
# scripts/lib/services.sh: the service helpers shared by scripts/test and scripts/soak —
# free ports, SecantusDB from the project virtualenv, redis-server, readiness checks and
# stopping what a script started. Sourced, never run.
#
# The caller defines, before sourcing:
#   log MESSAGE / die MESSAGE   its own prefixed logging
#   STATE_DIR                   where service logs go (must exist)
#   VENV                        the virtualenv holding SecantusDB and pymongo
#   SECANTUS_VERSION            the SecantusDB version to install and run
#   STARTUP_TIMEOUT_SECS        how long wait_until waits
# and uses:
#   SERVICE_PIDS / SERVICE_LOGS the services started here (stop them with stop_pid)
#   start_redis                 → REDIS_PID, REDIS_LOG, exported REDIS_URL
#   start_secantus              → MONGO_PID, MONGO_LOG, exported MONGODB_URI
#   PYMONGO_PYTHON              set by the caller from pymongo_python, for the mongo_* checks

SERVICE_PIDS=()   # PIDs of the services this run started, and nothing else
SERVICE_LOGS=()   # their log files, printed on failure

stop_pid() {
    # stop_pid PID [GROUP]: TERM it (its whole process group if GROUP is set),
    # give it 10 s, then KILL it.
    local pid="$1" target="$1" i
    if [[ -n "${2:-}" ]]; then target="-$1"; fi
    kill -TERM -- "$target" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 -- "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "$target" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

APT_UPDATED=""
apt_install() {
    # Try with the package lists we have; refresh them once and retry if that fails.
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; then
        if [[ -z "$APT_UPDATED" ]]; then
            as_root apt-get update -q
            APT_UPDATED=1
        fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

secantus_installed() {
    [[ -x "$VENV/bin/secantusd-py" ]] || return 1
    local v
    v="$("$VENV/bin/python" -m pip show SecantusDB 2>/dev/null | sed -n 's/^Version: *//p')"
    [[ "$v" == "$SECANTUS_VERSION" ]]
}

ensure_venv() {
    if secantus_installed; then
        return 0
    fi
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "creating virtualenv $VENV"
        python3 -m venv --clear "$VENV"
    fi
    log "installing SecantusDB==$SECANTUS_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "SecantusDB==$SECANTUS_VERSION"
    secantus_installed || die "SecantusDB==$SECANTUS_VERSION did not install into $VENV"
}

# A python interpreter that can import pymongo, for the MongoDB readiness check.
pymongo_python() {
    if "$VENV/bin/python" -c 'import pymongo' >/dev/null 2>&1; then
        printf '%s\n' "$VENV/bin/python"
    elif python3 -c 'import pymongo' >/dev/null 2>&1; then
        printf '%s\n' python3
    else
        ensure_venv >&2
        printf '%s\n' "$VENV/bin/python"
    fi
}

# wait_until NAME LOG PID CHECK...: run CHECK until it succeeds, or fail after
# STARTUP_TIMEOUT_SECS or as soon as the process PID (if given) has died.
wait_until() {
    local name="$1" logfile="$2" pid="$3"
    shift 3
    local deadline=$((SECONDS + STARTUP_TIMEOUT_SECS)) where
    if [[ -n "$logfile" ]]; then
        where="see its log: $logfile"
    else
        where="its address came from the environment: is that server running?"
    fi
    until "$@" >/dev/null 2>&1; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            die "$name exited during startup; $where"
        fi
        if ((SECONDS >= deadline)); then
            die "$name did not answer within ${STARTUP_TIMEOUT_SECS}s; $where"
        fi
        sleep 0.5
    done
}

redis_ready() {
    [[ "$(timeout 5 redis-cli -u "$REDIS_URL" ping 2>/dev/null)" == "PONG" ]]
}

# mongo_answers: the upstream still serves a storage-backed read within 20 s (a
# deadlocked SecantusDB keeps answering the handshake but not commands).
mongo_answers() {
    MONGODB_URI="$MONGODB_URI" timeout 20 "$PYMONGO_PYTHON" -c '
import os
from pymongo import MongoClient
client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=2000, socketTimeoutMS=10000)
try:
    client.tenantgate_health.probe.find_one()
finally:
    client.close()
' >/dev/null 2>&1
}

mongo_ready() {
    MONGODB_URI="$MONGODB_URI" timeout 20 "$PYMONGO_PYTHON" -c '
import os
from pymongo import MongoClient
client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=2000)
try:
    client.admin.command("ping")
finally:
    client.close()
'
}

# start_redis: a fresh redis-server (no persistence) on a free loopback port, exporting
# REDIS_URL; installs redis-server with apt when it is missing.
REDIS_PID=""
start_redis() {
    local port
    if ! command -v redis-server >/dev/null 2>&1; then
        log "redis-server not found; installing it with apt"
        apt_install redis-server
    fi
    port="$(free_port)"
    REDIS_LOG="$STATE_DIR/redis.log"
    (cd "$STATE_DIR" && exec redis-server --port "$port" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no) >"$REDIS_LOG" 2>&1 &
    REDIS_PID=$!
    SERVICE_PIDS+=("$REDIS_PID")
    SERVICE_LOGS+=("$REDIS_LOG")
    export REDIS_URL="redis://127.0.0.1:$port/"
}

MONGO_PID=""
MONGO_STARTS=0
# start_secantus: a fresh SecantusDB on a free port, exporting MONGODB_URI.
start_secantus() {
    local port
    port="$(free_port)"
    MONGO_STARTS=$((MONGO_STARTS + 1))
    MONGO_LOG="$STATE_DIR/secantusd.log"
    if ((MONGO_STARTS > 1)); then
        MONGO_LOG="$STATE_DIR/secantusd-$MONGO_STARTS.log"
    fi
    # Run from the state dir so it never picks up a ./secantusd.toml by accident.
    (cd "$STATE_DIR" && exec "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" \
        --storage-path :memory:) >"$MONGO_LOG" 2>&1 &
    MONGO_PID=$!
    SERVICE_PIDS+=("$MONGO_PID")
    SERVICE_LOGS+=("$MONGO_LOG")
    export MONGODB_URI="mongodb://127.0.0.1:$port/"
}
