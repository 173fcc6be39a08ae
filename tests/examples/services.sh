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
# Reporting, logs, setup and servers: tests/examples/common/harness.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common/harness.sh"
ex_begin services "services " "$@"
HERE=$ROOT/tests/services
ex_logs_fixed
HEALTH_SRV=$BUILD_DIR/tests/e2e_health
REFL_SRV=$BUILD_DIR/tests/e2e_reflection

SERVER_LIFETIME=600  # s; upper bound even if this script is killed hard
SERVER_KILL_AFTER=5
STOP_TIMEOUT=20      # s for a server to exit after SIGTERM
STOP_DIED_STATUS=1   # a server that had died: its exit status too
CLIENT_TIMEOUT=120   # s for one client run
SAN_RE='ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# start_server BIN LOG [ARGS...]: BIN --serve; sets server_pid (timeout's),
# server_child (the server's own pid) and server_port; returns 1 if it did
# not come up.
start_server() {
    server_child=
    ex_start_logged --ready server_ready "$2" 's/^listening on ([0-9]+).*/\1/p' \
        "$1" --serve --port 0 "${@:3}"
}
server_ready() {
    server_child=$(child_of "$server_pid")
    [[ -n $server_child ]]
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
ex_require "$HEALTH_SRV" "$REFL_SRV"
# Health and reflection stubs from lib/proto only (tests/examples/common/lib.sh).
if ! ex_health_stubs "$GEN" >"$LOGS/protoc.log" 2>&1; then
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
    ex_wait_logged "$slog"
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

ex_finish services
