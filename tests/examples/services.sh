#!/usr/bin/env bash
# The health and reflection services (lib/health.c, lib/reflection.c)
# against clients that are not ours: Debian's grpcio (/usr/bin/python3).
#
#   tests/examples/services.sh BUILD_DIR        (e.g. build, build-asan)
#
# Servers: BUILD_DIR/tests/e2e_health --serve and e2e_reflection --serve
# (tests/services/serve.h: grpc.testing.TestService, health, reflection).
# Python stubs are generated here from lib/proto/ only (health and
# reflection): the reflection client never sees test.proto.
#
# Cases (one "PASS services <case>" / "FAIL services <case>: why" line each;
# exit status non-zero if any failed):
#   health-check          Check("") and Check(grpc.testing.TestService): SERVING
#   health-unknown        Check(no.Such): NOT_FOUND
#   health-list           List: exactly "" and the TestService, SERVING
#   health-watch          Watch sees SERVING, NOT_SERVING after the server's
#                         SIGUSR1 (Check agrees), SERVING after another
#   health-watch-unknown  Watch(no.Such): SERVICE_UNKNOWN, open until its
#                         deadline
#   health-shutdown       a Watch("") sees NOT_SERVING when the server gets
#                         SIGTERM, then UNAVAILABLE; the server exits 0
#                         well within its 10 s grace
#   reflect-list-v1, reflect-list-v1alpha
#                         list_services names TestService, Health and both
#                         reflection services
#   reflect-call-v1, reflect-call-v1alpha
#                         describe grpc.testing.TestService by reflection
#                         and call UnaryCall with a request built from the
#                         fetched descriptors; the echo comes back
#   reflect-health        the same for grpc.health.v1.Health/Check
#   reflect-missing       an unknown symbol: error_response NOT_FOUND, the
#                         stream goes on
#   *-server-exit         each server stops on SIGTERM with status 0 and no
#                         sanitizer report
# Logs of the last run: BUILD_DIR/example-logs/services/.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/services
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
GEN=$BUILD_DIR/gen/py-services
LOGS=$BUILD_DIR/example-logs/services
HEALTH_SRV=$BUILD_DIR/tests/e2e_health
REFL_SRV=$BUILD_DIR/tests/e2e_reflection
PY=/usr/bin/python3  # Debian's grpcio is only visible to the system python

SERVER_LIFETIME=600  # s; upper bound even if this script is killed hard
STARTUP_TIMEOUT=20   # s for a server to say "listening on"
STOP_TIMEOUT=20      # s for a server to exit after SIGTERM
CLIENT_TIMEOUT=120   # s for one client run
SAN_RE='ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

failures=0
server_pids=()

pass() { echo "PASS services $1"; }
fail() {  # fail CASE WHY
    echo "FAIL services $1: $2"
    failures=$((failures + 1))
}

show_log() {  # show_log TITLE FILE: indented tail, for diagnosis
    [[ -s $2 ]] || return 0
    echo "  --- $1 (last 30 lines of $2) ---"
    tail -n 30 "$2" | sed 's/^/  | /'
}

# The server process under a timeout(1) wrapper: its child.
child_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -n1 | tr -d ' '; }

cleanup() {
    local pid child
    for pid in "${server_pids[@]}"; do
        child=$(child_of "$pid")
        kill -TERM "$pid" 2>/dev/null || true
        [[ -n $child ]] && kill -KILL "$child" 2>/dev/null
    done
    for pid in "${server_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {  # forget PID: no longer ours to clean up
    local p keep=()
    for p in "${server_pids[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    server_pids=("${keep[@]}")
}

# start_server BIN LOG [ARGS...]: BIN --serve; sets server_pid (timeout's),
# server_child (the server's own pid) and server_port; returns 1 if it did
# not come up.
start_server() {
    local bin=$1 log=$2 i
    shift 2
    server_port= server_child=
    : >"$log"
    timeout -k 5 "$SERVER_LIFETIME" "$bin" --serve --port 0 "$@" >"$log" 2>&1 &
    server_pid=$!
    server_pids+=("$server_pid")
    for ((i = 0; i < STARTUP_TIMEOUT * 20; i++)); do
        server_port=$(sed -n -E 's/^listening on ([0-9]+).*/\1/p' "$log" | head -n1)
        if [[ -n $server_port ]]; then
            server_child=$(child_of "$server_pid")
            [[ -n $server_child ]] && return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    stop_server "$log" >/dev/null 2>&1
    return 1
}

# wait_server LOG: waits (bounded) for the current server to exit by itself
# (after a SIGTERM sent elsewhere).  Sets stop_why ("" when it exited 0
# within STOP_TIMEOUT with no sanitizer report in LOG) and stop_secs.
wait_server() {
    local log=$1 pid=$server_pid rc=0 i child t0=$EPOCHREALTIME
    stop_why=
    for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        stop_why="still running ${STOP_TIMEOUT}s after SIGTERM"
        child=$(child_of "$pid")
        [[ -n $child ]] && kill -KILL "$child" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || rc=$?
    stop_secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
    forget "$pid"
    if [[ -z $stop_why && $rc -ne 0 ]]; then
        stop_why="exit status $rc after SIGTERM"
    fi
    if grep -qE "$SAN_RE" "$log"; then
        stop_why="${stop_why:+$stop_why; }sanitizer report in the server log"
    fi
}

# stop_server LOG: SIGTERM the current server, then wait_server.
stop_server() {
    local why=
    kill -0 "$server_pid" 2>/dev/null || why="the server had died"
    kill -TERM "$server_pid" 2>/dev/null
    wait_server "$1"
    [[ -n $why ]] && stop_why="$why${stop_why:+; $stop_why}"
}

# stop_case CASE LOG: stop_server, reported as case CASE.
stop_case() {
    stop_server "$2"
    if [[ -z $stop_why ]]; then
        pass "$1"
    else
        fail "$1" "$stop_why (log: $2)"
        show_log "server log" "$2"
    fi
}

# relay LOG CASE...: the client's PASS/FAIL lines for the cases, each
# expected once; a missing one fails.
relay() {
    local log=$1 c line
    shift
    for c in "$@"; do
        line=$(grep -E "^(PASS|FAIL) services $c( |:|$)" "$log" | head -n1)
        if [[ -z $line ]]; then
            fail "$c" "no result from the client (log: $log)"
            show_log "client log" "$log"
        elif [[ $line == FAIL* ]]; then
            echo "$line"
            failures=$((failures + 1))
            show_log "client log" "$log"
        else
            echo "$line"
        fi
    done
}

py() {  # py LOG SCRIPT ARGS...: a client run, bounded
    local log=$1
    shift
    timeout -k 5 "$CLIENT_TIMEOUT" env PYTHONPATH="$GEN" "$PY" "$@" >"$log" 2>&1
}

# --- setup ------------------------------------------------------------------
missing=()
for f in "$HEALTH_SRV" "$REFL_SRV"; do
    [[ -x $f ]] || missing+=("$f")
done
if [[ ${#missing[@]} -ne 0 ]]; then
    fail build "missing ${missing[*]} (build them with make)"
    exit 1
fi
if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
    fail setup "$PY cannot import grpc/google.protobuf (install python3-grpcio python3-protobuf: scripts/deps.sh)"
    exit 1
fi
if [[ ! -x /usr/bin/grpc_python_plugin ]] || ! command -v protoc >/dev/null; then
    fail setup "protoc or /usr/bin/grpc_python_plugin missing (scripts/deps.sh)"
    exit 1
fi
rm -rf "$LOGS" "$GEN"
mkdir -p "$LOGS" "$GEN/src"
# Our protos under package directories of our own ("grpc" is grpcio's).
for p in health/v1/health reflection/v1/reflection reflection/v1alpha/reflection; do
    d=$GEN/src/mrpc_$(dirname "$p" | tr / _)
    mkdir -p "$d"
    cp "$ROOT/lib/proto/grpc/$p.proto" "$d/"
done
if ! (cd "$GEN/src" && timeout 60 protoc -I. --python_out="$GEN" \
        --grpc_out="$GEN" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
        mrpc_health_v1/health.proto mrpc_reflection_v1/reflection.proto \
        mrpc_reflection_v1alpha/reflection.proto) >"$LOGS/protoc.log" 2>&1; then
    fail setup "protoc could not generate the Python stubs"
    show_log protoc "$LOGS/protoc.log"
    exit 1
fi

# --- health through grpcio ----------------------------------------------------
slog=$LOGS/health.server.log
clog=$LOGS/health.client.log
HEALTH_CASES=(health-check health-unknown health-list health-watch
              health-watch-unknown)
if start_server "$HEALTH_SRV" "$slog"; then
    py "$clog" "$HERE/health_check.py" suite --target "127.0.0.1:$server_port" \
        --server-pid "$server_child"
    relay "$clog" "${HEALTH_CASES[@]}"
    stop_case health-server-exit "$slog"
else
    fail health-check "e2e_health --serve did not start"
    show_log "server log" "$slog"
fi

# --- graceful shutdown: the watcher sees NOT_SERVING, the server exits ---------
slog=$LOGS/shutdown.server.log
clog=$LOGS/shutdown.client.log
if start_server "$HEALTH_SRV" "$slog" --grace-ms 10000; then
    py "$clog" "$HERE/health_check.py" shutdown \
        --target "127.0.0.1:$server_port" --server-pid "$server_child"
    relay "$clog" health-shutdown
    wait_server "$slog"
    if [[ -n $stop_why ]]; then
        fail health-shutdown-server-exit "$stop_why (log: $slog)"
        show_log "server log" "$slog"
    elif ! grep -q '^stopped' "$slog"; then
        fail health-shutdown-server-exit "the server did not shut down (log: $slog)"
    elif awk -v s="$stop_secs" 'BEGIN{exit !(s > 8)}'; then
        fail health-shutdown-server-exit "the server took ${stop_secs}s to stop: the watch held the grace period"
    else
        pass health-shutdown-server-exit
    fi
else
    fail health-shutdown "e2e_health --serve did not start"
    show_log "server log" "$slog"
fi

# --- reflection: a client that knows nothing but reflection ------------------
slog=$LOGS/reflect.server.log
SERVICES=(grpc.testing.TestService grpc.health.v1.Health
          grpc.reflection.v1.ServerReflection
          grpc.reflection.v1alpha.ServerReflection)
BODY=aGVsbG8gcmVmbGVjdGlvbg==  # "hello reflection"
if start_server "$REFL_SRV" "$slog"; then
    t=127.0.0.1:$server_port
    for api in v1 v1alpha; do
        clog=$LOGS/reflect-list-$api.log
        py "$clog" "$HERE/reflect.py" --target "$t" --api $api \
            --case reflect-list-$api list --expect "${SERVICES[@]}"
        relay "$clog" reflect-list-$api
        clog=$LOGS/reflect-call-$api.log
        py "$clog" "$HERE/reflect.py" --target "$t" --api $api \
            --case reflect-call-$api call --service grpc.testing.TestService \
            --method UnaryCall --request "{\"payload\": {\"body\": \"$BODY\"}}" \
            --expect "{\"payload\": {\"body\": \"$BODY\"}, \"username\": \"minirpc-services\"}"
        relay "$clog" reflect-call-$api
    done
    clog=$LOGS/reflect-health.log
    py "$clog" "$HERE/reflect.py" --target "$t" --case reflect-health call \
        --service grpc.health.v1.Health --method Check \
        --request '{"service": "grpc.testing.TestService"}' \
        --expect '{"status": "SERVING"}'
    relay "$clog" reflect-health
    clog=$LOGS/reflect-missing.log
    py "$clog" "$HERE/reflect.py" --target "$t" --case reflect-missing \
        missing --symbol no.such.Service
    relay "$clog" reflect-missing
    stop_case reflect-server-exit "$slog"
else
    fail reflect-list-v1 "e2e_reflection --serve did not start"
    show_log "server log" "$slog"
fi

if [[ $failures -ne 0 ]]; then
    echo "services ($BUILD_DIR): $failures failure(s)"
    exit 1
fi
echo "services ($BUILD_DIR): all passed"
