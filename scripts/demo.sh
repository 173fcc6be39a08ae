#!/usr/bin/env bash
# The demo (`make demo`):
#   1. the UserService example: build/bin/user_server, driven by
#      build/bin/user_client through the tutorial's six steps (unary
#      CreateUser/GetUser/ListUsers, server streaming StreamUsers, client
#      streaming CreateBatchUsers, bidirectional ChatWithUsers), with
#      deadlines and the server's one-line-per-call log;
#   2. an LLM answer streamed token by token: build/bin/llm_server and
#      build/bin/llm_client (skipped with a message when they are not built).
# Every server started here is stopped on exit (trap), also on failure or ^C.
# Environment: BUILD (default build), DEMO_USER_PORT / DEMO_LLM_PORT (default:
# free ports, read back from the servers' "listening on" lines).  The
# interop programs are exercised by `make test`, not here.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

pids=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/minirpc-demo.XXXXXX")
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$logdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID NAME: SIGTERM one server we started and wait for it (10 s max).
stop() {
    local pid=$1 name=$2 rc=0 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
    echo "== $name stopped (exit status $rc)"
}

# --- 1. UserService -----------------------------------------------------------
ulog=$logdir/user_server.log
"$BUILD/bin/user_server" --listen "127.0.0.1:${DEMO_USER_PORT:-0}" 2>"$ulog" &
user_pid=$!
pids+=("$user_pid")
port=
for _ in $(seq 200); do
    port=$(sed -n -E 's/^user_server: listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$ulog")
    [[ -n $port ]] && break
    kill -0 "$user_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $port ]]; then
    echo "demo: user_server did not start:" >&2
    cat "$ulog" >&2
    exit 1
fi
echo "== UserService: user_client -> user_server on 127.0.0.1:$port"
echo "   (the tutorial's six steps, each with a deadline)"
client_rc=0
timeout 120 "$BUILD/bin/user_client" --target "127.0.0.1:$port" || client_rc=$?
echo "== user_server's log, one line per call:"
sed 's/^/   /' "$ulog"
stop "$user_pid" user_server
if [[ $client_rc -ne 0 ]]; then
    echo "demo: user_client failed (exit status $client_rc)" >&2
    exit 1
fi

# --- 2. LLM token streaming ----------------------------------------------------
if [[ -x $BUILD/bin/llm_server && -x $BUILD/bin/llm_client ]]; then
    llog=$logdir/llm_server.log
    "$BUILD/bin/llm_server" --listen "127.0.0.1:${DEMO_LLM_PORT:-0}" \
        --token-delay-ms 30 >"$llog" 2>&1 &
    llm_pid=$!
    pids+=("$llm_pid")
    # The port from its "listening on" line (a fixed port: once it accepts).
    llm_port=
    for _ in $(seq 400); do
        llm_port=$(sed -n -E 's/^llm_server: listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$llog")
        [[ -n $llm_port ]] && break
        if [[ -n ${DEMO_LLM_PORT:-} ]] &&
           (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_LLM_PORT") 2>/dev/null; then
            llm_port=$DEMO_LLM_PORT
            break
        fi
        kill -0 "$llm_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $llm_port ]]; then
        echo "demo: llm_server did not start:" >&2
        cat "$llog" >&2
        exit 1
    fi
    echo "== LLM: llm_client -> llm_server on 127.0.0.1:$llm_port (tokens streamed as generated)"
    llm_rc=0
    timeout 120 "$BUILD/bin/llm_client" --target "127.0.0.1:$llm_port" \
        --prompt "The fox saw the grapes and" --max-tokens 60 || llm_rc=$?
    echo
    stop "$llm_pid" llm_server
    if [[ $llm_rc -ne 0 ]]; then
        echo "demo: llm_client failed (exit status $llm_rc)" >&2
        cat "$llog" >&2
        exit 1
    fi
else
    echo "== LLM token streaming: skipped: $BUILD/bin/llm_server and" \
         "$BUILD/bin/llm_client are not built yet (examples/llm)"
fi
echo "== demo done"
