#!/usr/bin/env bash
# Interop tests: libminirpc's interop programs against grpcio's, both ways.
#
#   tests/interop/run.sh BUILD_DIR        (e.g. build, build-asan)
#
#   py-client/c-server: tests/interop/py_client.py vs BUILD_DIR/bin/interop_server
#   py-client/c-server-blocking: the same, server on blocking handlers only
#   c-client/py-server: BUILD_DIR/bin/interop_client vs tests/interop/py_server.py
#
# With INTEROP_SELFTEST=1 only py_client.py vs py_server.py is run (checks the
# Python side on its own; no C programs needed).
#
# Prints "PASS interop <direction> <case>" / "FAIL interop <direction> <case>"
# per case and exits non-zero if anything failed.  Logs of the last run are
# kept in BUILD_DIR/interop-logs/.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/interop
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
GEN=$BUILD_DIR/gen/py
LOGS=$BUILD_DIR/interop-logs
# Debian's grpcio/protobuf modules are only visible to the system python.
PY=/usr/bin/python3

CASES=(empty_unary large_unary client_streaming server_streaming ping_pong
       empty_stream custom_metadata status_code_and_message
       special_status_message unimplemented_method unimplemented_service
       cancel_after_begin cancel_after_first_response
       timeout_on_sleeping_server)

SERVER_LIFETIME=600   # s; upper bound even if this script is killed hard
CLIENT_ALL_TIMEOUT=300
CLIENT_ONE_TIMEOUT=60
STARTUP_TIMEOUT=20

failures=0
server_pids=()

cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${server_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# reap PID: SIGTERM our server PID (timeout(1) passes it on, and SIGKILLs 5 s
# later if needed), wait for it, forget it so cleanup() never signals a
# recycled PID.  Sets reap_status.
reap() {
    local pid=$1 p keep=()
    kill -TERM "$pid" 2>/dev/null || true
    reap_status=0
    wait "$pid" 2>/dev/null || reap_status=$?
    for p in "${server_pids[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    server_pids=("${keep[@]}")
}

fail() {  # fail DIRECTION WHAT REASON
    echo "FAIL interop $1 $2: $3"
    failures=$((failures + 1))
}

show_log() {  # show_log TITLE FILE: indented tail, for diagnosis
    [[ -s $2 ]] || return 0
    echo "  --- $1 (last 40 lines of $2) ---"
    tail -n 40 "$2" | sed 's/^/  | /'
}

free_port() {
    timeout 10 "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_server KIND LOG: starts a server on a free port; sets server_pid and
# server_port.  Retries a few times in case another process grabbed the port
# between picking and binding.
start_server() {
    local kind=$1 log=$2
    for _ in 1 2 3; do
        server_port=$(free_port)
        case $kind in
        c|cb)
            # cb: the same server with every method on blocking handlers.
            local extra=()
            [[ $kind == cb ]] && extra=(--handlers=blocking)
            timeout -k 5 "$SERVER_LIFETIME" \
                "$BUILD_DIR/bin/interop_server" --port="$server_port" \
                "${extra[@]}" >"$log" 2>&1 &
            server_pid=$!
            server_pids+=("$server_pid")
            # Ready once the port accepts a connection.
            # shellcheck disable=SC2016  # expanded by the inner bash
            if timeout "$STARTUP_TIMEOUT" bash -c '
                    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
                        kill -0 "$2" 2>/dev/null || exit 1
                        sleep 0.05
                    done' _ "$server_port" "$server_pid"; then
                return 0
            fi
            ;;
        py)
            timeout -k 5 "$SERVER_LIFETIME" \
                env PYTHONPATH="$GEN" "$PY" "$HERE/py_server.py" \
                --port="$server_port" >"$log" 2>&1 &
            server_pid=$!
            server_pids+=("$server_pid")
            # Ready once it has announced itself.
            # shellcheck disable=SC2016  # expanded by the inner bash
            if timeout "$STARTUP_TIMEOUT" bash -c '
                    until grep -q "^listening on" "$1"; do
                        kill -0 "$2" 2>/dev/null || exit 1
                        sleep 0.05
                    done' _ "$log" "$server_pid"; then
                return 0
            fi
            ;;
        esac
        # Only a server that died (port taken?) is worth another try.
        if kill -0 "$server_pid" 2>/dev/null; then
            reap "$server_pid"
            return 1
        fi
        reap "$server_pid"
    done
    return 1
}

# stop_server DIRECTION LOG: SIGTERM the current server; a server that had
# already died, or that exits uncleanly (e.g. a sanitizer report at exit),
# counts as a failure.
stop_server() {
    local dir=$1 log=$2 rc alive=1
    kill -0 "$server_pid" 2>/dev/null || alive=0
    reap "$server_pid"
    rc=$reap_status
    if [[ $alive -eq 0 ]]; then
        fail "$dir" server "died during the run (status $rc)"
        show_log "server log" "$log"
    elif [[ $rc -ne 0 && $rc -ne 143 ]]; then
        fail "$dir" server "exited with status $rc on SIGTERM"
        show_log "server log" "$log"
    elif grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
        fail "$dir" server "sanitizer report in server log"
        show_log "server log" "$log"
    fi
}

# run_client KIND PORT CASE: runs the client for one case name or "all".
run_client() {
    local kind=$1 port=$2 test_case=$3 limit=$CLIENT_ONE_TIMEOUT
    [[ $test_case == all ]] && limit=$CLIENT_ALL_TIMEOUT
    case $kind in
    c)
        timeout -k 5 "$limit" "$BUILD_DIR/bin/interop_client" \
            --server_host=127.0.0.1 --server_port="$port" \
            --test_case="$test_case"
        ;;
    py)
        timeout -k 5 "$limit" env PYTHONPATH="$GEN" "$PY" \
            "$HERE/py_client.py" --server_host=127.0.0.1 \
            --server_port="$port" --test_case="$test_case"
        ;;
    esac
}

# run_direction DIRECTION CLIENT_KIND SERVER_KIND
run_direction() {
    local dir=$1 client=$2 server=$3 tag=${1//\//-}
    local slog=$LOGS/$tag.server.log clog=$LOGS/$tag.client.log
    local rc=0 name line missing=()
    local -A result=()

    if ! start_server "$server" "$slog"; then
        fail "$dir" server "did not start listening within ${STARTUP_TIMEOUT}s"
        show_log "server log" "$slog"
        return 0
    fi

    run_client "$client" "$server_port" all >"$clog" 2>&1 || rc=$?

    # Per-case verdicts from "PASS name" / "FAIL name: reason" lines.
    while IFS= read -r line; do
        if [[ $line =~ ^(PASS|FAIL)[[:space:]:]+([a-z_]+) ]]; then
            result[${BASH_REMATCH[2]}]=${BASH_REMATCH[1]}
        fi
    done <"$clog"

    # Cases the "all" run did not report on (crash, hang, other output
    # format): run them one by one and go by the exit status.
    for name in "${CASES[@]}"; do
        [[ -n ${result[$name]:-} ]] || missing+=("$name")
    done
    for name in "${missing[@]}"; do
        kill -0 "$server_pid" 2>/dev/null || break
        if run_client "$client" "$server_port" "$name" \
                >>"$LOGS/$tag.$name.log" 2>&1; then
            result[$name]=PASS
        fi
    done

    local case_failures=0
    for name in "${CASES[@]}"; do
        if [[ ${result[$name]:-} == PASS ]]; then
            echo "PASS interop $dir $name"
        else
            local reason="no result"
            line=$(grep -m1 -E "^FAIL[[:space:]:]+${name}\\b" "$clog" || true)
            if [[ $line =~ ^FAIL[[:space:]:]+${name}[[:space:]:]*(.*)$ ]]; then
                reason=${BASH_REMATCH[1]:-failed}
            fi
            if [[ -s $LOGS/$tag.$name.log ]]; then
                reason="$reason (see $LOGS/$tag.$name.log)"
            fi
            fail "$dir" "$name" "$reason"
            case_failures=$((case_failures + 1))
        fi
    done
    if [[ $rc -ne 0 && $case_failures -eq 0 ]]; then
        # Every case passed, yet the "all" run failed (crash part-way, or a
        # sanitizer report at exit).
        fail "$dir" client "--test_case=all exited with status $rc"
    fi
    # The raw output only adds something when the verdicts above don't
    # explain the failure.
    if [[ $rc -ne 0 && ($case_failures -eq 0 || ${#missing[@]} -ne 0) ]]; then
        show_log "client output" "$clog"
    fi
    stop_server "$dir" "$slog"
}

# --- setup ------------------------------------------------------------------
if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
    echo "FAIL interop: $PY cannot import grpc/google.protobuf" \
         "(install python3-grpcio python3-protobuf: scripts/deps.sh)"
    exit 1
fi
for tool in protoc /usr/bin/grpc_python_plugin; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL interop: $tool not found (scripts/deps.sh installs it)"
        exit 1
    fi
done
rm -rf "$LOGS" "$GEN"
mkdir -p "$LOGS" "$GEN"
timeout 60 protoc -I"$HERE" --python_out="$GEN" --grpc_out="$GEN" \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$HERE/test.proto"

# --- the runs ---------------------------------------------------------------
if [[ ${INTEROP_SELFTEST:-0} == 1 ]]; then
    run_direction py-client/py-server py py
else
    if [[ -x $BUILD_DIR/bin/interop_server ]]; then
        run_direction py-client/c-server py c
        run_direction py-client/c-server-blocking py cb
    else
        fail py-client/c-server all \
             "$BUILD_DIR/bin/interop_server is missing (build it with make)"
    fi
    if [[ -x $BUILD_DIR/bin/interop_client ]]; then
        run_direction c-client/py-server c py
    else
        fail c-client/py-server all \
             "$BUILD_DIR/bin/interop_client is missing (build it with make)"
    fi
fi

if [[ $failures -ne 0 ]]; then
    echo "interop ($BUILD_DIR): $failures failure(s)"
    exit 1
fi
echo "interop ($BUILD_DIR): all passed"
