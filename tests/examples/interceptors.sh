#!/usr/bin/env bash
# The shipped interceptors against an independent client: grpcio
# (tests/interceptors/auth_client.py) sends authorization metadata to a
# libminirpc server with the auth interceptor (BUILD_DIR/tests/e2e_interceptors
# --serve, which also has request_id, logging and recovery).
#
#   tests/examples/interceptors.sh BUILD_DIR        (e.g. build, build-asan)
#
# Prints "PASS interceptors <case>" / "FAIL interceptors <case>: why" (or
# "SKIP interceptors ...: why" without grpcio) and exits non-zero if anything
# failed.  The Python stubs are generated into BUILD_DIR/gen/py-ic; logs of
# the last run are kept in BUILD_DIR/interceptors-logs/.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=$(cd "$1" && pwd)
GEN=$BUILD_DIR/gen/py-ic
LOGS=$BUILD_DIR/interceptors-logs
SERVER=$BUILD_DIR/tests/e2e_interceptors
PY=/usr/bin/python3   # Debian's grpcio is only visible to the system python
TOKEN=ic-s3cret-token
STARTUP_TIMEOUT=20
SERVER_LIFETIME=300
CLIENT_TIMEOUT=120

mkdir -p "$LOGS"

if [[ ! -x $SERVER ]]; then
    echo "FAIL interceptors setup: $SERVER not built"
    exit 1
fi
if ! "$PY" -c 'import grpc' 2>/dev/null; then
    echo "SKIP interceptors grpcio: $PY can not import grpc"
    exit 0
fi
if ! command -v protoc >/dev/null || [[ ! -x /usr/bin/grpc_python_plugin ]]; then
    echo "SKIP interceptors grpcio: protoc or grpc_python_plugin missing"
    exit 0
fi

mkdir -p "$GEN"
if ! protoc -I"$ROOT/tests/interop" --python_out="$GEN" --grpc_out="$GEN" \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
        "$ROOT/tests/interop/test.proto" 2>"$LOGS/protoc.log"; then
    echo "FAIL interceptors stubs: protoc failed: $(head -c 300 "$LOGS/protoc.log")"
    exit 1
fi

SLOG=$LOGS/server.log
CLOG=$LOGS/client.log
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Port 0: the server picks one and says which on stdout.
timeout -k 5 "$SERVER_LIFETIME" "$SERVER" --serve 0 --token "$TOKEN" \
    >"$SLOG" 2>&1 &
server_pid=$!
port=
for _ in $(seq 1 $((STARTUP_TIMEOUT * 20))); do
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$SLOG" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $port ]]; then
    echo "FAIL interceptors server: did not start listening"
    sed 's/^/  | /' "$SLOG" | tail -n 40
    exit 1
fi

rc=0
timeout -k 5 "$CLIENT_TIMEOUT" env PYTHONPATH="$GEN" "$PY" \
    "$ROOT/tests/interceptors/auth_client.py" --port "$port" --token "$TOKEN" \
    >"$CLOG" 2>&1 || rc=$?
grep -E '^(PASS|FAIL) interceptors ' "$CLOG"
failed=0
if [[ $rc -ne 0 ]]; then
    failed=1
    if ! grep -q '^FAIL interceptors ' "$CLOG"; then
        echo "FAIL interceptors client: exit status $rc"
    fi
    sed 's/^/  | /' "$CLOG" | grep -v -E '^  \| (PASS|FAIL) ' | tail -n 40
fi

# The server must still be up, stop cleanly on SIGTERM and say nothing bad.
if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    echo "FAIL interceptors server-alive: the server died (status $?)"
    server_pid=
    failed=1
else
    kill -TERM "$server_pid"
    src=0
    wait "$server_pid" || src=$?
    server_pid=
    if [[ $src -ne 0 ]]; then
        echo "FAIL interceptors server-exit: status $src on SIGTERM"
        failed=1
    elif grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$SLOG"; then
        echo "FAIL interceptors server-exit: sanitizer report in $SLOG"
        failed=1
    elif ! grep -q 'status=UNAUTHENTICATED' "$SLOG" ||
         ! grep -q 'status=OK' "$SLOG"; then
        echo "FAIL interceptors server-log: no logging lines in $SLOG"
        failed=1
    else
        echo "PASS interceptors server-exit"
    fi
fi
if [[ $failed -ne 0 ]]; then
    echo "  --- server log (last 30 lines of $SLOG) ---"
    tail -n 30 "$SLOG" | sed 's/^/  | /'
fi
exit "$failed"
