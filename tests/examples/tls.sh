#!/usr/bin/env bash
# TLS interop with Debian's grpcio, both ways.
#
#   tests/examples/tls.sh BUILD_DIR        (e.g. build, build-asan)
#
# Makes fresh test certificates (tests/tls/make-certs.sh, into
# BUILD_DIR/tls-certs), generates the Python stubs of tests/interop/test.proto
# into BUILD_DIR/gen/py-tls, then runs:
#   py-client-c-server              grpcio client (ssl_channel_credentials with
#                                   the test CA) -> BUILD_DIR/tests/e2e_tls --serve
#   py-client-c-server-mtls         the same with a client certificate, which
#                                   the server requires; the handler reports
#                                   the client's subject back
#   py-client-c-server-mtls-no-cert the server requires one, the client has
#                                   none: the calls must fail
#   c-client-py-server              e2e_tls --call -> grpcio server
#                                   (ssl_server_credentials)
#   c-client-py-server-mtls         the same, client certificate required;
#                                   grpcio reports the client's common name
#   c-client-py-server-wrong-name   hostname verification failure: must fail
#                                   with "hostname mismatch"
# Prints "PASS tls <case>" / "FAIL tls <case>: why" ("SKIP tls ..." without
# grpcio); exits non-zero if any failed.  Our servers are stopped with
# SIGTERM and must exit 0 with no sanitizer report.  Logs of the last run:
# BUILD_DIR/tls-logs/.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/tls
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
E2E=$BUILD_DIR/tests/e2e_tls
CERTS=$BUILD_DIR/tls-certs
GEN=$BUILD_DIR/gen/py-tls
LOGS=$BUILD_DIR/tls-logs
PY=/usr/bin/python3  # Debian's grpcio is only visible to the system python
SUBJECT="CN=testclient,O=minirpc tests"

SERVER_LIFETIME=300
CLIENT_LIFETIME=120
STARTUP_TIMEOUT=20
failures=0
server_pids=()

pass() { echo "PASS tls $1"; }
fail() {
    echo "FAIL tls $1: $2"
    failures=$((failures + 1))
}
show() {
    [[ -s $1 ]] || return 0
    echo "  --- $1 ---"
    tail -n 20 "$1" | sed 's/^/  | /'
}
sanitizer_report() {
    grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$1" 2>/dev/null
}

cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT

# start_server NAME CMD...: sets srv_pid srv_port srv_out srv_err
start_server() {
    local name=$1
    shift
    srv_out=$LOGS/server-$name.out
    srv_err=$LOGS/server-$name.err
    timeout -k 5 "$SERVER_LIFETIME" "$@" >"$srv_out" 2>"$srv_err" </dev/null &
    srv_pid=$!
    server_pids+=("$srv_pid")
    local i line
    for ((i = 0; i < STARTUP_TIMEOUT * 20; i++)); do
        line=$(grep -m1 -o 'listening on [0-9]*' "$srv_out" 2>/dev/null)
        if [[ -n $line ]]; then
            srv_port=${line##* }
            return 0
        fi
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.05
    done
    srv_port=
    return 1
}

# stop_server CASE: SIGTERM, wait; fails CASE unless it exited 0 cleanly.
# Returns 0 when the server was fine.
stop_server() {
    local rc
    kill -TERM "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
    rc=$?
    local keep=()
    for p in "${server_pids[@]}"; do [[ $p == "$srv_pid" ]] || keep+=("$p"); done
    server_pids=("${keep[@]}")
    if [[ $rc -ne 0 ]]; then
        fail "$1" "server exited with status $rc"
        show "$srv_err"
        return 1
    fi
    if sanitizer_report "$srv_err"; then
        fail "$1" "sanitizer report from the server"
        show "$srv_err"
        return 1
    fi
    return 0
}

# client_case CASE EXPECT(ok|fail) [GREP] -- CMD...: runs the client.
client_case() {
    local name=$1 expect=$2 pattern=$3
    shift 4
    local out=$LOGS/client-$name.out err=$LOGS/client-$name.err rc
    timeout -k 5 "$CLIENT_LIFETIME" "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if sanitizer_report "$err"; then
        fail "$name" "sanitizer report from the client"
        show "$err"
        return 1
    fi
    if [[ $expect == ok && $rc -ne 0 ]]; then
        fail "$name" "client exited with status $rc: $(grep -m1 '^fail' "$out")"
        show "$out"
        show "$err"
        return 1
    fi
    if [[ $expect == fail && ( $rc -eq 0 || $rc -ge 124 ) ]]; then
        fail "$name" "client was expected to fail (status $rc)"
        show "$out"
        show "$err"
        return 1
    fi
    if [[ -n $pattern ]] && ! grep -q "$pattern" "$out" "$err"; then
        fail "$name" "no \"$pattern\" in the client's output"
        show "$out"
        show "$err"
        return 1
    fi
    return 0
}

rm -rf "$LOGS" "$CERTS"
mkdir -p "$LOGS"

if [[ ! -x $E2E ]]; then
    fail build "$E2E not built (make BUILD=$1)"
    exit 1
fi
if ! "$HERE/make-certs.sh" "$CERTS" >"$LOGS/certs.log" 2>&1; then
    fail certs "tests/tls/make-certs.sh failed"
    show "$LOGS/certs.log"
    exit 1
fi
pass certs

have_py=1
if ! "$PY" -c 'import grpc' 2>/dev/null; then
    have_py=0
    why="python3-grpcio not installed"
elif ! command -v protoc >/dev/null || [[ ! -x /usr/bin/grpc_python_plugin ]]; then
    have_py=0
    why="protoc or grpc_python_plugin missing (protobuf-compiler-grpc)"
else
    mkdir -p "$GEN"
    if ! protoc -I"$ROOT/tests/interop" --python_out="$GEN" --grpc_out="$GEN" \
            --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
            "$ROOT/tests/interop/test.proto" >"$LOGS/protoc.log" 2>&1; then
        fail stubs "protoc failed"
        show "$LOGS/protoc.log"
        exit 1
    fi
fi
PYTLS=(env PYTHONPATH="$GEN" "$PY" "$HERE/py_tls.py")

if [[ $have_py -eq 0 ]]; then
    for c in py-client-c-server py-client-c-server-mtls \
             py-client-c-server-mtls-no-cert c-client-py-server \
             c-client-py-server-mtls c-client-py-server-wrong-name; do
        echo "SKIP tls $c: $why"
    done
    exit 0
fi

# ---- grpcio client -> our server ----

# c_server CASE CLIENT_AUTH CLIENT_EXPECT CLIENT_ARGS...
c_server() {
    local name=$1 auth=$2 expect=$3
    shift 3
    if ! start_server "$name" "$E2E" --serve 0 --certs "$CERTS" --client-auth "$auth"; then
        fail "$name" "e2e_tls --serve did not start"
        show "$srv_err"
        return
    fi
    local ok=1
    client_case "$name" "$expect" "" -- "${PYTLS[@]}" client --port "$srv_port" \
        --certs "$CERTS" "$@" || ok=0
    stop_server "$name" || ok=0
    [[ $ok -eq 1 ]] && pass "$name"
}

c_server py-client-c-server none ok
c_server py-client-c-server-mtls require ok --client-cert --expect-username "$SUBJECT"
c_server py-client-c-server-mtls-no-cert require fail

# ---- our client -> grpcio server ----

# py_server CASE REQUIRE(0|1) EXPECT GREP CALL_ARGS...
py_server() {
    local name=$1 require=$2 expect=$3 pattern=$4
    shift 4
    local extra=()
    [[ $require -eq 1 ]] && extra=(--require-client-cert)
    if ! start_server "$name" "${PYTLS[@]}" server --certs "$CERTS" "${extra[@]}"; then
        fail "$name" "py_tls.py server did not start"
        show "$srv_err"
        return
    fi
    local ok=1
    client_case "$name" "$expect" "$pattern" -- "$E2E" --call "127.0.0.1:$srv_port" \
        --certs "$CERTS" "$@" || ok=0
    kill -TERM "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
    [[ $ok -eq 1 ]] && pass "$name"
}

py_server c-client-py-server 0 ok "" --override foo.test.google.fr
py_server c-client-py-server-mtls 1 ok "" --override foo.test.google.fr \
    --client-cert --expect-username testclient
py_server c-client-py-server-wrong-name 0 fail "hostname mismatch" \
    --override wrong.example.com

[[ $failures -eq 0 ]]
