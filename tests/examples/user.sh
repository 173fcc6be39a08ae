#!/usr/bin/env bash
# The UserService example (examples/user): user_server and user_client
# against grpcio and against each other.
#
#   tests/examples/user.sh BUILD_DIR        (e.g. build, build-asan)
#
# Cases (one "PASS example user-<case>" / "FAIL example user-<case>: why"
# line each; exit status non-zero if any failed):
#   store                 the storage layer's unit tests
#                         (BUILD_DIR/tests/examples/user_store_test)
#   py-*                  (a) Debian's grpcio drives BUILD_DIR/bin/user_server
#                         through the six RPCs and every error case
#                         (tests/examples/user/py_user_check.py suite)
#   c-client-py-server    (b) user_client's six steps against a grpcio server
#                         of the same proto (tests/examples/user/py_user_server.py)
#   c-client-c-server     (b) user_client against user_server, twice (ids go
#                         on), the second time through "localhost"
#   c-client-exit-status  user_client exits 1 and names the step when one
#                         fails (a suspended user; no server at all)
#   db-restart            (c) --db: users survive a restart, new ids continue
#   db-suspend            (c) --suspend on a db, still suspended after another
#                         restart without the flag
#   stream-cancel         (d) StreamUsers(delay_seconds=1) cancelled after the
#                         first user: the handler stops, the server stays
#                         healthy
#   stream-cancel-prompt  (d) the same with delay_seconds=10: the handler
#                         stops within 3 s, not after the delay
#   stream-deadline       (d) a StreamUsers(delay_seconds=10) whose 1.5 s
#                         deadline passes during the wait: DEADLINE_EXCEEDED
#                         at the client, the handler ends at once
#   stream-shutdown       SIGTERM during a slow stream: the server exits 0
#                         within its grace period
#   *-server-exit         every server started here is stopped with SIGTERM
#                         and must exit 0 with no sanitizer report
# Servers listen on free 127.0.0.1 ports (port 0, read back from their
# "listening on" line); every step is bounded by timeouts.  Logs of the last
# run are kept in BUILD_DIR/example-logs/user/.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/examples/user
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
GEN=$BUILD_DIR/gen/py-user
LOGS=$BUILD_DIR/example-logs/user
SERVER=$BUILD_DIR/bin/user_server
CLIENT=$BUILD_DIR/bin/user_client
STORE_TEST=$BUILD_DIR/tests/examples/user_store_test
# Debian's grpcio/protobuf modules are only visible to the system python.
PY=/usr/bin/python3

SERVER_LIFETIME=600  # s; upper bound even if this script is killed hard
STARTUP_TIMEOUT=20   # s for a server to say "listening on"
STOP_TIMEOUT=20      # s for a server to exit after SIGTERM
CLIENT_TIMEOUT=120   # s for one client run
SAN_RE='ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

failures=0
server_pids=()

pass() { echo "PASS example user-$1"; }
fail() {  # fail CASE WHY
    echo "FAIL example user-$1: $2"
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

# start_server KIND LOG [ARGS...]: KIND c (user_server) or py; sets
# server_pid and server_port; returns 1 if it did not come up.
start_server() {
    local kind=$1 log=$2 i
    shift 2
    server_port=
    : >"$log"
    case $kind in
    c)  timeout -k 5 "$SERVER_LIFETIME" "$SERVER" --listen 127.0.0.1:0 "$@" \
            >"$log" 2>&1 & ;;
    py) timeout -k 5 "$SERVER_LIFETIME" env PYTHONPATH="$GEN" "$PY" \
            "$HERE/py_user_server.py" --port 0 "$@" >"$log" 2>&1 & ;;
    esac
    server_pid=$!
    server_pids+=("$server_pid")
    for ((i = 0; i < STARTUP_TIMEOUT * 20; i++)); do
        server_port=$(sed -n -E 's/^(user_server: )?listening on (127\.0\.0\.1:)?([0-9]+).*/\3/p' \
                      "$log" | head -n1)
        [[ -n $server_port ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    stop_server "$log" >/dev/null 2>&1
    return 1
}

# stop_server LOG: SIGTERM the current server and wait (bounded) for it.
# Sets stop_why to "" when it was alive, exited 0 within STOP_TIMEOUT and
# left no sanitizer report in LOG; else to the reason.  Sets stop_secs.
stop_server() {
    local log=$1 pid=$server_pid rc=0 i child t0=$EPOCHREALTIME
    stop_why=
    if ! kill -0 "$pid" 2>/dev/null; then
        stop_why="the server had died"
    fi
    kill -TERM "$pid" 2>/dev/null
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

# check_py MODE ARGS...: runs py_user_check.py MODE against the current
# server; output to $py_log.  Returns its status.
check_py() {
    local mode=$1
    shift
    timeout -k 5 "$CLIENT_TIMEOUT" env PYTHONPATH="$GEN" "$PY" \
        "$HERE/py_user_check.py" "$mode" --target "127.0.0.1:$server_port" \
        "$@" >>"$py_log" 2>&1
}

# run_client CASE LOG TARGET [ARGS...]: user_client's six steps must succeed.
run_client() {
    local name=$1 log=$2 target=$3 rc=0
    shift 3
    timeout -k 5 "$CLIENT_TIMEOUT" "$CLIENT" --target "$target" "$@" \
        >"$log" 2>&1 || rc=$?
    local missing=()
    for want in "== 6. ChatWithUsers" "batch done: 3 users created" \
                "chat done" "user_client: all 6 steps succeeded"; do
        grep -qF "$want" "$log" || missing+=("$want")
    done
    if [[ $rc -ne 0 ]]; then
        fail "$name" "user_client exited with status $rc (log: $log)"
    elif [[ ${#missing[@]} -ne 0 ]]; then
        fail "$name" "user_client output lacks \"${missing[0]}\" (log: $log)"
    elif grep -qE "$SAN_RE" "$log"; then
        fail "$name" "sanitizer report in the user_client output (log: $log)"
    else
        return 0
    fi
    show_log "user_client output" "$log"
    return 1
}

# --- setup ------------------------------------------------------------------
missing=()
for f in "$SERVER" "$CLIENT" "$STORE_TEST"; do
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
mkdir -p "$LOGS" "$GEN"
if ! timeout 60 protoc -I"$ROOT/examples/user" --python_out="$GEN" \
        --grpc_out="$GEN" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
        "$ROOT/examples/user/user.proto" >"$LOGS/protoc.log" 2>&1; then
    fail setup "protoc could not generate the Python stubs"
    show_log protoc "$LOGS/protoc.log"
    exit 1
fi

# --- store: unit tests of the storage layer -----------------------------------
mkdir -p "$LOGS/store"
if timeout -k 5 120 "$STORE_TEST" "$LOGS/store" >"$LOGS/store.log" 2>&1 &&
        ! grep -qE "$SAN_RE" "$LOGS/store.log"; then
    pass store
else
    fail store "user_store_test failed (log: $LOGS/store.log)"
    show_log "user_store_test" "$LOGS/store.log"
fi

# --- (a) grpcio client -> user_server: six RPCs and the error cases ------------
PY_CASES=(create get list page-past-end bad-page stream stream-delay batch chat
          empty-name empty-email id-zero id-negative unknown-id suspended
          batch-bad-item chat-bad-item concurrent-creates)
slog=$LOGS/py-suite.server.log
py_log=$LOGS/py-suite.client.log
if start_server c "$slog" --suspend 5; then
    check_py suite --suspended-id 5
    rc=$?
    grep -E '^(PASS|FAIL) example user-py-' "$py_log"
    failures=$((failures + $(grep -cE '^FAIL example user-py-' "$py_log")))
    for c in "${PY_CASES[@]}"; do
        grep -qE "^(PASS|FAIL) example user-py-$c( |:|$)" "$py_log" ||
            fail "py-$c" "no result (py_user_check.py exited with $rc)"
    done
    if [[ $rc -ne 0 ]] && ! grep -q '^FAIL' "$py_log"; then
        fail py-suite "py_user_check.py exited with status $rc"
        show_log "py_user_check.py output" "$py_log"
    fi
    stop_case py-server-exit "$slog"
else
    fail py-suite "user_server did not start"
    show_log "server log" "$slog"
fi

# --- (b) user_client -> grpcio server; user_client -> user_server --------------
slog=$LOGS/c-client-py-server.server.log
if start_server py "$slog"; then
    run_client c-client-py-server "$LOGS/c-client-py-server.client.log" \
        "127.0.0.1:$server_port" && pass c-client-py-server
    stop_case c-client-py-server-exit "$slog"
else
    fail c-client-py-server "py_user_server.py did not start"
    show_log "server log" "$slog"
fi

slog=$LOGS/c-client-c-server.server.log
if start_server c "$slog"; then
    clog=$LOGS/c-client-c-server.client.log
    if run_client c-client-c-server "$clog.1" "127.0.0.1:$server_port" &&
       run_client c-client-c-server "$clog.2" "localhost:$server_port"; then
        # 6 users per run: the second run's first user is id 7.
        if grep -q '^user created: id:7 ' "$clog.2"; then
            pass c-client-c-server
        else
            fail c-client-c-server "second run did not create user 7 (log: $clog.2)"
        fi
    fi
    stop_case c-client-c-server-exit "$slog"
else
    fail c-client-c-server "user_server did not start"
    show_log "server log" "$slog"
fi

# user_client's exit status: non-zero when a step fails.
slog=$LOGS/c-client-fail.server.log
clog=$LOGS/c-client-fail.client.log
if start_server c "$slog" --suspend 1; then
    rc=0 stopped=0
    timeout -k 5 "$CLIENT_TIMEOUT" "$CLIENT" --target "127.0.0.1:$server_port" \
        --stream-delay 0 >"$clog" 2>&1 || rc=$?
    want="step 2 GetUser failed: PERMISSION_DENIED: user is suspended: 1"
    if [[ $rc -ne 1 ]]; then
        fail c-client-exit-status "user_client exited with $rc when GetUser failed, expected 1 (log: $clog)"
    elif ! grep -qF "$want" "$clog" || ! grep -qF "1 of 6 steps failed" "$clog"; then
        fail c-client-exit-status "user_client did not report the failed step (log: $clog)"
        show_log "user_client output" "$clog"
    else
        port=$server_port
        stop_case c-client-fail-server-exit "$slog"
        stopped=1
        # The server is gone now: every step fails, quickly.
        rc=0
        timeout -k 5 60 "$CLIENT" --target "127.0.0.1:$port" >"$clog.2" 2>&1 || rc=$?
        if [[ $rc -eq 1 ]] && grep -qF "6 of 6 steps failed" "$clog.2"; then
            pass c-client-exit-status
        else
            fail c-client-exit-status "without a server: exit status $rc (log: $clog.2)"
            show_log "user_client output" "$clog.2"
        fi
    fi
    [[ $stopped -eq 1 ]] || stop_case c-client-fail-server-exit "$slog"
else
    fail c-client-exit-status "user_server did not start"
    show_log "server log" "$slog"
fi

# --- (c) --db: users survive a restart ------------------------------------------
db=$LOGS/users.db
rm -f "$db" "$db-wal" "$db-shm"
py_log=$LOGS/db.client.log
db_step() {  # db_step CASE N MODE ARGS...: server N on the db, then the check
    local name=$1 n=$2 mode=$3 log=$LOGS/db.server.$2.log
    shift 3
    if ! start_server c "$log" --db "$db" "${server_args[@]}"; then
        fail "$name" "user_server --db did not start (log: $log)"
        show_log "server log" "$log"
        return 1
    fi
    local rc=0
    check_py "$mode" "$@" || rc=$?
    stop_server "$log"
    if [[ $rc -ne 0 ]]; then
        fail "$name" "server $n: py_user_check.py $mode failed: $(tail -n1 "$py_log")"
        show_log "server log" "$log"
        return 1
    fi
    if [[ -n $stop_why ]]; then
        fail "$name" "server $n: $stop_why (log: $log)"
        show_log "server log" "$log"
        return 1
    fi
}
server_args=()
if db_step db-restart 1 db-fill --count 3 &&
   db_step db-restart 2 db-check --count 3; then
    pass db-restart
fi
server_args=(--suspend 2)
if db_step db-suspend 3 expect-suspended --id 2; then
    server_args=()
    if db_step db-suspend 4 expect-suspended --id 2; then
        n=$(timeout 10 sqlite3 "$db" 'SELECT COUNT(*) FROM users' 2>&1)
        if [[ $n == 4 ]]; then
            pass db-suspend
        else
            fail db-suspend "sqlite3 counts \"$n\" users in $db, expected 4"
        fi
    fi
fi
server_args=()

# --- (d) StreamUsers cancelled by the client ------------------------------------
slog=$LOGS/stream.server.log
py_log=$LOGS/stream.client.log
# wait_log PATTERN: up to 5 s for a line of the server log; prints it.
wait_log() {
    local i line
    for ((i = 0; i < 100; i++)); do
        line=$(grep -E "$1" "$slog" | tail -n1)
        [[ -n $line ]] && { echo "$line"; return 0; }
        sleep 0.05
    done
    return 1
}
if start_server c "$slog"; then
    if ! check_py stream-cancel --delay 1; then
        fail stream-cancel "py_user_check.py stream-cancel: $(tail -n1 "$py_log")"
    elif ! line=$(wait_log 'StreamUsers .* -> CANCELLED \(sent 1 of'); then
        fail stream-cancel "the server did not log StreamUsers ending CANCELLED after 1 user"
        show_log "server log" "$slog"
    else
        pass stream-cancel
    fi
    # delay_seconds=10: the handler must notice the cancel during the wait.
    n_before=$(grep -cE 'StreamUsers .* -> CANCELLED' "$slog")
    if ! check_py stream-cancel --delay 10; then
        fail stream-cancel-prompt "py_user_check.py stream-cancel: $(tail -n1 "$py_log")"
    else
        ok=0
        for ((i = 0; i < 100; i++)); do
            [[ $(grep -cE 'StreamUsers .* -> CANCELLED' "$slog") -gt $n_before ]] &&
                { ok=1; break; }
            sleep 0.05
        done
        line=$(grep -E 'StreamUsers .* -> CANCELLED' "$slog" | tail -n1)
        ms=$(sed -n -E 's/.*\(([0-9.]+) ms\)$/\1/p' <<<"$line")
        if [[ $ok -ne 1 || -z $ms ]]; then
            fail stream-cancel-prompt "no CANCELLED StreamUsers line in the server log"
            show_log "server log" "$slog"
        elif awk -v ms="$ms" 'BEGIN{exit !(ms < 3000)}'; then
            pass stream-cancel-prompt
        else
            fail stream-cancel-prompt "the cancelled stream ran ${ms} ms (delay 10 s): the wait is not interruptible"
        fi
    fi
    # A client deadline during the wait: the handler ends at once too.  The
    # server sees either its own deadline pass or the client's RST_STREAM
    # sent at the client's deadline, whichever comes first.
    if ! check_py stream-deadline --delay 10; then
        fail stream-deadline "py_user_check.py stream-deadline: $(tail -n1 "$py_log")"
    elif ! line=$(wait_log 'StreamUsers .* -> (DEADLINE_EXCEEDED|CANCELLED) \(sent 1 of .* \([12][0-9]{3}\.[0-9] ms\)$'); then
        fail stream-deadline "the server did not log StreamUsers ending after 1 user at the 1.5 s deadline (within 3 s)"
        show_log "server log" "$slog"
    else
        pass stream-deadline
    fi
    stop_case stream-server-exit "$slog"
else
    fail stream-cancel "user_server did not start"
    show_log "server log" "$slog"
fi

# --- SIGTERM during a slow stream: graceful shutdown ------------------------------
slog=$LOGS/shutdown.server.log
py_log=$LOGS/shutdown.client.log
if start_server c "$slog" --grace-ms 1000; then
    : >"$py_log"
    timeout -k 5 "$CLIENT_TIMEOUT" env PYTHONPATH="$GEN" "$PY" \
        "$HERE/py_user_check.py" stream-hold --delay 10 \
        --target "127.0.0.1:$server_port" >"$py_log" 2>&1 &
    hold=$!
    for ((i = 0; i < 400; i++)); do
        grep -q '^streaming' "$py_log" && break
        kill -0 "$hold" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q '^streaming' "$py_log"; then
        fail stream-shutdown "the slow stream did not start: $(tail -n1 "$py_log")"
        stop_server "$slog"
    else
        stop_server "$slog"
        hrc=0
        wait "$hold" || hrc=$?
        if [[ -n $stop_why ]]; then
            fail stream-shutdown "$stop_why (log: $slog)"
            show_log "server log" "$slog"
        elif awk -v s="$stop_secs" 'BEGIN{exit !(s > 6)}'; then
            fail stream-shutdown "the server took ${stop_secs}s to stop (grace 1 s)"
        elif [[ $hrc -ne 0 ]]; then
            fail stream-shutdown "client: $(tail -n1 "$py_log")"
        else
            pass stream-shutdown
        fi
    fi
    wait "$hold" 2>/dev/null
else
    fail stream-shutdown "user_server did not start"
    show_log "server log" "$slog"
fi

if [[ $failures -ne 0 ]]; then
    echo "example user ($BUILD_DIR): $failures failure(s)"
    exit 1
fi
echo "example user ($BUILD_DIR): all passed"
