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
#   log-default           (e) logging is on by default: the server's stderr
#                         has the chain line and one logging-interceptor line
#                         per call (request id included), the stream handlers'
#                         own lines; user_client logs one line per call
#   log-quiet             (e) user_server --quiet and user_client --quiet: no
#                         per-call line at all
#   ic-request-id-*       (e) grpcio (tests/examples/user/py_user_ic.py):
#                         x-request-id echoed when sent, generated (a UUID)
#                         when not or when too long, server-version: 1.0.0, on
#                         unary and streaming responses
#   ic-auth-*             (e) grpcio against user_server --auth-token: the six
#                         RPCs with "authorization: Bearer T"; UNAUTHENTICATED
#                         without it, with a wrong token, with another scheme,
#                         for the four patterns; refused calls carry the
#                         request id; the server logs the refused calls
#   c-client-token        (e) user_client --token T: six steps against
#                         user_server --auth-token T
#   c-client-no-token     (e) user_client without --token (or with a wrong
#                         one): exit status 1 and a message that says so
#   ic-ratelimit          (e) user_server --rate-limit 2: a burst of calls gets
#                         RESOURCE_EXHAUSTED (streams too); calls pass again a
#                         second later
#   ic-auth-before-ratelimit  (e) with both: unauthenticated calls do not
#                         drain the bucket (auth comes first in the chain)
#   ic-auth-health-exempt (e) with --auth-token, grpc.health.v1.Health/Check
#                         needs no token (SERVING)
#   tls-*                 (f) user_server --tls-cert/--tls-key (test
#                         certificates from tests/tls/make-certs.sh):
#                         user_client --tls-ca --authority foo.test.google.fr
#                         (and by "localhost" with no --authority) passes its
#                         six steps; a wrong --authority fails with "hostname
#                         mismatch"; a plaintext client fails; grpcio over TLS
#                         (ssl_channel_credentials with the test CA,
#                         ssl_target_name_override) creates, lists, gets and
#                         streams users; health Check over TLS: SERVING
#   mtls-*                (f) user_server --tls-client-ca: user_client
#                         without a client certificate is refused
#                         ("certificate required"), with one of another CA
#                         too, with the test client certificate it passes;
#                         grpcio likewise (refused without, SERVING with)
#   health, reflect-*     (f) plaintext: health Check("" and
#                         user.UserService) SERVING, unknown NOT_FOUND
#                         (grpcio, stubs from lib/proto only);
#                         tests/services/reflect.py lists the services (v1,
#                         v1alpha) and calls CreateUser, GetUser and
#                         ListUsers with requests built from the descriptors
#                         it fetched, without user.proto
#   no-health-reflection  (f) --no-health --no-reflection: both UNIMPLEMENTED
#   *-server-exit         every server started here is stopped with SIGTERM
#                         and must exit 0 with no sanitizer report
# Servers listen on free 127.0.0.1 ports (port 0, read back from their
# "listening on" line); every step is bounded by timeouts.  Logs of the last
# run are kept in BUILD_DIR/example-logs/user/.
set -uo pipefail
# Reporting, logs, setup and servers: tests/examples/common/harness.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common/harness.sh"
ex_begin user "example user-" "$@"
HERE=$ROOT/tests/examples/user
ex_logs_fixed
SERVER=$BIN/user_server
CLIENT=$BIN/user_client
STORE_TEST=$BUILD_DIR/tests/examples/user_store_test

SERVER_LIFETIME=600  # s; upper bound even if this script is killed hard
SERVER_KILL_AFTER=5
STOP_TIMEOUT=20      # s for a server to exit after SIGTERM
CLIENT_TIMEOUT=120   # s for one client run
SAN_RE='ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# start_server KIND LOG [ARGS...]: KIND c (user_server) or py; sets
# server_pid and server_port; returns 1 if it did not come up.
start_server() {
    local kind=$1 log=$2 cmd
    shift 2
    case $kind in
    c)  cmd=("$SERVER" --listen 127.0.0.1:0) ;;
    py) cmd=(env PYTHONPATH="$GEN" "$PY" "$HERE/py_user_server.py" --port 0) ;;
    esac
    ex_start_logged "$log" \
        's/^(user_server: )?listening on (127\.0\.0\.1:)?([0-9]+).*/\3/p' \
        "${cmd[@]}" "$@"
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

# run_ic MODE CASE... -- ARGS...: py_user_ic.py MODE ARGS against the current
# server, output to $LOGS/ic-MODE.client.log; relays its PASS/FAIL lines and
# fails each CASE it did not report.
run_ic() {
    local mode=$1 rc=0 c log cases=()
    shift
    while [[ $# -gt 0 && $1 != -- ]]; do cases+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    log=$LOGS/ic-$mode.client.log
    timeout -k 5 "$CLIENT_TIMEOUT" env PYTHONPATH="$GEN" "$PY" \
        "$HERE/py_user_ic.py" "$mode" --target "127.0.0.1:$server_port" \
        "$@" >"$log" 2>&1 || rc=$?
    grep -E '^(PASS|FAIL) example user-' "$log"
    failures=$((failures + $(grep -cE '^FAIL example user-' "$log")))
    for c in "${cases[@]}"; do
        if ! grep -qE "^(PASS|FAIL) example user-$c( |:|$)" "$log"; then
            fail "$c" "no result (py_user_ic.py $mode exited with $rc)"
            show_log "py_user_ic.py output" "$log"
        fi
    done
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
ex_require "$SERVER" "$CLIENT" "$STORE_TEST"
if ! ex_protoc_py "$GEN" -I"$ROOT/examples/user" \
        "$ROOT/examples/user/user.proto" >"$LOGS/protoc.log" 2>&1; then
    fail setup "protoc could not generate the Python stubs"
    show_log protoc "$LOGS/protoc.log"
    exit 1
fi
# Certificates, health and reflection stubs (tests/examples/common/lib.sh).
have_ex=1
ex_setup "$LOGS/ex" || have_ex=0

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
    # (e) the request_id interceptor, on by default.
    run_ic headers ic-request-id-echo ic-request-id-generated \
        ic-request-id-stream ic-request-id-too-long
    stop_case py-server-exit "$slog"
else
    fail py-suite "user_server did not start"
    show_log "server log" "$slog"
fi

# check_log_default SERVER_LOG CLIENT_LOG...: (e) logging on by default.  The
# server's stderr: the chain line, one logging-interceptor line per call of
# the clients (12 calls for two runs), with a generated request id, and the
# stream handlers' own lines; each user_client log: one line per call.
LOG_SERVER_OK='^minirpc server /user\.UserService/[A-Za-z]+ peer=ipv4:127\.0\.0\.1:[0-9]+ status=OK duration_ms=[0-9.]+ in=[0-9]+ out=[0-9]+ request_id="[0-9a-f-]{36}"$'
LOG_CLIENT_OK='^minirpc client /user\.UserService/[A-Za-z]+ peer=ipv4:127\.0\.0\.1:[0-9]+ status=OK duration_ms=[0-9.]+ in=[0-9]+ out=[0-9]+$'
LOG_HANDLER='^user_server: (StreamUsers|CreateBatchUsers|ChatWithUsers) handler ipv4:127\.0\.0\.1:[0-9]+ -> '
check_log_default() {
    local slog=$1 clog n m
    shift
    local want_chain='user_server: interceptors, outermost first: logging, request_id (server-version 1.0.0), recovery'
    n=$(grep -cE "$LOG_SERVER_OK" "$slog")
    m=$(grep -cE "$LOG_HANDLER" "$slog")
    if ! grep -qxF "$want_chain" "$slog"; then
        fail log-default "no \"$want_chain\" line in the server log ($slog)"
        show_log "server log" "$slog"
        return 1
    elif [[ $n -ne $((6 * $#)) ]]; then
        fail log-default "$n logging-interceptor lines (status=OK, request_id) in the server log for $# client runs, expected $((6 * $#)) ($slog)"
        show_log "server log" "$slog"
        return 1
    elif [[ $m -ne $((3 * $#)) ]]; then
        fail log-default "$m stream handler lines in the server log, expected $((3 * $#)) ($slog)"
        show_log "server log" "$slog"
        return 1
    fi
    for clog in "$@"; do
        n=$(grep -cE "$LOG_CLIENT_OK" "$clog")
        if [[ $n -ne 6 ]]; then
            fail log-default "$n client logging lines in $clog, expected 6"
            show_log "user_client output" "$clog"
            return 1
        fi
    done
    pass log-default
}

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
        check_log_default "$slog" "$clog.1" "$clog.2"
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
    ex_stop_logged "$log"
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
        ex_stop_logged "$slog"
    else
        ex_stop_logged "$slog"
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

# --- (e) interceptors: auth, rate limit, logging off ----------------------------
TOKEN=user-s3cret-token
slog=$LOGS/ic-auth.server.log
if start_server c "$slog" --auth-token "$TOKEN"; then
    run_ic auth ic-auth-accepted ic-auth-missing ic-auth-wrong-token \
        ic-auth-not-bearer ic-auth-refused-request-id -- --token "$TOKEN"
    # The refused calls are logged, with their status, message and id.
    want_chain="user_server: interceptors, outermost first: logging, request_id (server-version 1.0.0), auth (1 token), recovery"
    if ! grep -qxF "$want_chain" "$slog"; then
        fail ic-auth-log "no \"$want_chain\" line in the server log ($slog)"
    elif ! grep -qE '^minirpc server /user\.UserService/ChatWithUsers peer=ipv4:127\.0\.0\.1:[0-9]+ status=UNAUTHENTICATED .* message="missing authorization metadata' "$slog" ||
         ! grep -qE '^minirpc server /user\.UserService/CreateUser .* status=UNAUTHENTICATED .* message="invalid token"$' "$slog" ||
         ! grep -qE '^minirpc server /user\.UserService/GetUser .* status=UNAUTHENTICATED .* request_id="refused-42" ' "$slog"; then
        fail ic-auth-log "the server did not log the refused calls (log: $slog)"
        show_log "server log" "$slog"
    else
        pass ic-auth-log
    fi
    # The health service is exempt (the auth interceptor's default).
    if [[ $have_ex -eq 1 ]]; then
        if ex_health "$LOGS/ic-auth-health.log" "127.0.0.1:$server_port" \
                "" user.UserService; then
            pass ic-auth-health-exempt
        else
            fail ic-auth-health-exempt "health Check without a token (log: $LOGS/ic-auth-health.log)"
            show_log "health_probe.py output" "$LOGS/ic-auth-health.log"
        fi
    fi
    # user_client with the token: the six steps.
    run_client c-client-token "$LOGS/c-client-token.client.log" \
        "127.0.0.1:$server_port" --token "$TOKEN" --stream-delay 0 &&
        pass c-client-token
    # Without it, or with a wrong one: exit status 1 and a clear message.
    clog=$LOGS/c-client-no-token.client.log
    rc=0
    timeout -k 5 "$CLIENT_TIMEOUT" "$CLIENT" --target "127.0.0.1:$server_port" \
        --stream-delay 0 >"$clog" 2>&1 || rc=$?
    rc2=0
    timeout -k 5 "$CLIENT_TIMEOUT" "$CLIENT" --target "127.0.0.1:$server_port" \
        --stream-delay 0 --token "$TOKEN-wrong" >"$clog.2" 2>&1 || rc2=$?
    if [[ $rc -ne 1 ]]; then
        fail c-client-no-token "user_client without --token exited with $rc, expected 1 (log: $clog)"
        show_log "user_client output" "$clog"
    elif ! grep -qF 'step 1 CreateUser failed: UNAUTHENTICATED: missing authorization metadata' "$clog" ||
         ! grep -qF '6 of 6 steps failed' "$clog" ||
         ! grep -qF 'user_client: the server requires a token (UNAUTHENTICATED): run with --token TOKEN' "$clog"; then
        fail c-client-no-token "user_client without --token did not say why it failed (log: $clog)"
        show_log "user_client output" "$clog"
    elif [[ $rc2 -ne 1 ]] || ! grep -qF 'step 2 GetUser failed: UNAUTHENTICATED: invalid token' "$clog.2" ||
         ! grep -qF 'user_client: the server refused the token given with --token' "$clog.2"; then
        fail c-client-no-token "user_client with a wrong token: exit status $rc2 (log: $clog.2)"
        show_log "user_client output" "$clog.2"
    elif grep -qE "$SAN_RE" "$clog" "$clog.2"; then
        fail c-client-no-token "sanitizer report in the user_client output ($clog)"
    else
        pass c-client-no-token
    fi
    stop_case ic-auth-server-exit "$slog"
else
    fail ic-auth "user_server --auth-token did not start"
    show_log "server log" "$slog"
fi

# --rate-limit 2: a fresh server (its bucket untouched).
slog=$LOGS/ic-ratelimit.server.log
if start_server c "$slog" --rate-limit 2; then
    run_ic ratelimit ic-ratelimit -- --rate 2
    if ! grep -qE '^minirpc server /user\.UserService/ListUsers .* status=RESOURCE_EXHAUSTED .* message="rate limit exceeded"$' "$slog"; then
        fail ic-ratelimit-log "no RESOURCE_EXHAUSTED line in the server log ($slog)"
        show_log "server log" "$slog"
    else
        pass ic-ratelimit-log
    fi
    stop_case ic-ratelimit-server-exit "$slog"
else
    fail ic-ratelimit "user_server --rate-limit did not start"
    show_log "server log" "$slog"
fi

slog=$LOGS/ic-auth-ratelimit.server.log
if start_server c "$slog" --auth-token "$TOKEN" --rate-limit 2; then
    run_ic auth-first ic-auth-before-ratelimit -- --token "$TOKEN" --rate 2
    stop_case ic-auth-ratelimit-server-exit "$slog"
else
    fail ic-auth-before-ratelimit "user_server did not start"
    show_log "server log" "$slog"
fi

# --quiet on both sides: no per-call line (the server's start and stop lines
# stay).
slog=$LOGS/log-quiet.server.log
clog=$LOGS/log-quiet.client.log
if start_server c "$slog" --quiet; then
    if run_client log-quiet "$clog" "127.0.0.1:$server_port" --quiet \
            --stream-delay 0; then
        if grep -qE '^minirpc |handler ' "$slog"; then
            fail log-quiet "per-call lines in the log of user_server --quiet ($slog)"
            show_log "server log" "$slog"
        elif grep -qE '^minirpc ' "$clog"; then
            fail log-quiet "per-call lines in the output of user_client --quiet ($clog)"
            show_log "user_client output" "$clog"
        elif ! grep -qxF "user_server: interceptors, outermost first: request_id (server-version 1.0.0), recovery" "$slog"; then
            fail log-quiet "the chain line of user_server --quiet is not right ($slog)"
            show_log "server log" "$slog"
        else
            pass log-quiet
        fi
    fi
    stop_case log-quiet-server-exit "$slog"
else
    fail log-quiet "user_server --quiet did not start"
    show_log "server log" "$slog"
fi

# --- (f) TLS, mutual TLS, health, reflection ------------------------------------
# expect_client_fail CASE LOG WANT TARGET ARGS...: user_client must exit 1,
# every step failed, and its output must have WANT (fixed string).
expect_client_fail() {
    local name=$1 log=$2 want=$3 target=$4 rc=0
    shift 4
    timeout -k 5 "$CLIENT_TIMEOUT" "$CLIENT" --target "$target" \
        --stream-delay 0 --quiet "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 1 ]] || ! grep -qF '6 of 6 steps failed' "$log"; then
        fail "$name" "user_client exited with $rc, expected 1 with every step failed (log: $log)"
    elif ! grep -qF -- "$want" "$log"; then
        fail "$name" "no \"$want\" in the user_client output (log: $log)"
    elif grep -qE "$SAN_RE" "$log"; then
        fail "$name" "sanitizer report in the user_client output (log: $log)"
    else
        pass "$name"
        return 0
    fi
    show_log "user_client output" "$log"
    return 1
}

if [[ $have_ex -eq 1 ]]; then
    slog=$LOGS/tls.server.log
    if start_server c "$slog" "${EX_SERVER_TLS[@]}"; then
        t=127.0.0.1:$server_port
        if grep -qF "user_server: serving user.UserService over TLS ($EX_CERTS/server1.pem); health on; reflection on with user.proto" "$slog"; then
            pass tls-server-line
        else
            fail tls-server-line "no \"serving ... over TLS\" line (log: $slog)"
            show_log "server log" "$slog"
        fi
        # grpcio first, on the fresh server: users 1..3 (and 4), a stream.
        py_log=$LOGS/tls-py.client.log
        : >"$py_log"
        if ex_grpcio_tls check_py db-fill --count 3 &&
           ex_grpcio_tls check_py db-check --count 3 &&
           ex_grpcio_tls check_py stream-cancel --delay 1; then
            pass tls-py-client
        else
            fail tls-py-client "grpcio over TLS: $(tail -n1 "$py_log") (log: $py_log)"
        fi
        run_client tls-c-client "$LOGS/tls-c-client.client.log" "$t" \
            "${EX_CLIENT_TLS[@]}" --stream-delay 0 && pass tls-c-client
        # No --authority: the name checked is the target's host.
        run_client tls-c-client-localhost \
            "$LOGS/tls-c-client-localhost.client.log" "localhost:$server_port" \
            --tls-ca "$EX_CERTS/ca.pem" --stream-delay 0 &&
            pass tls-c-client-localhost
        expect_client_fail tls-wrong-name "$LOGS/tls-wrong-name.client.log" \
            "hostname mismatch" "$t" --tls-ca "$EX_CERTS/ca.pem" \
            --authority wrong.example.com
        expect_client_fail tls-untrusted-ca "$LOGS/tls-untrusted-ca.client.log" \
            "certificate verify failed" "$t" --tls-ca "$EX_CERTS/other-ca.pem" \
            --authority "$EX_AUTHORITY"
        expect_client_fail tls-plaintext-client \
            "$LOGS/tls-plaintext-client.client.log" "UNAVAILABLE" "$t"
        ex_health_case tls-health "$LOGS/tls-health.log" --tls "$t" "" \
            user.UserService
        stop_case tls-server-exit "$slog"
    else
        fail tls "user_server with TLS did not start"
        show_log "server log" "$slog"
    fi

    slog=$LOGS/mtls.server.log
    if start_server c "$slog" "${EX_SERVER_MTLS[@]}"; then
        t=127.0.0.1:$server_port
        expect_client_fail mtls-no-cert "$LOGS/mtls-no-cert.client.log" \
            "certificate required" "$t" "${EX_CLIENT_TLS[@]}"
        expect_client_fail mtls-other-ca-cert \
            "$LOGS/mtls-other-ca-cert.client.log" "unknown ca" "$t" \
            "${EX_CLIENT_TLS[@]}" "${EX_CLIENT_OTHER_CERT[@]}"
        run_client mtls-c-client "$LOGS/mtls-c-client.client.log" "$t" \
            "${EX_CLIENT_TLS[@]}" "${EX_CLIENT_CERT[@]}" --stream-delay 0 &&
            pass mtls-c-client
        log=$LOGS/mtls-py-no-cert.log
        if ex_grpcio_tls ex_health "$log" "$t" ""; then
            fail mtls-py-no-cert "grpcio without a client certificate got in (log: $log)"
        elif ! grep -q 'UNAVAILABLE' "$log"; then
            fail mtls-py-no-cert "not refused with UNAVAILABLE (log: $log)"
            show_log "health_probe.py output" "$log"
        else
            pass mtls-py-no-cert
        fi
        ex_health_case mtls-py-cert "$LOGS/mtls-py-cert.log" --tls-cert "$t" \
            "" user.UserService
        stop_case mtls-server-exit "$slog"
    else
        fail mtls "user_server with mutual TLS did not start"
        show_log "server log" "$slog"
    fi

    slog=$LOGS/services.server.log
    if start_server c "$slog"; then
        t=127.0.0.1:$server_port
        ex_health_case health "$LOGS/health.log" "$t" "" user.UserService
        for api in v1 v1alpha; do
            ex_reflect_case reflect-list-$api "$LOGS/reflect-list-$api.log" \
                "$t" --api $api list \
                --expect user.UserService "${EX_SERVICES[@]}"
        done
        # A user made, fetched and listed by a client that has no user.proto.
        ex_reflect_case reflect-call-create "$LOGS/reflect-call-create.log" \
            "$t" call --service user.UserService --method CreateUser \
            --request '{"name": "Reflected", "email": "refl@example.com", "age": 7}' \
            --expect '{"user": {"id": 1, "name": "Reflected", "status": "ACTIVE"}, "message": "user Reflected created"}'
        ex_reflect_case reflect-call-get "$LOGS/reflect-call-get.log" "$t" \
            call --service user.UserService --method GetUser \
            --request '{"id": 1}' \
            --expect '{"id": 1, "name": "Reflected", "email": "refl@example.com", "age": 7, "status": "ACTIVE"}'
        ex_reflect_case reflect-call-list "$LOGS/reflect-call-list.log" "$t" \
            --api v1alpha call --service user.UserService --method ListUsers \
            --request '{"limit": 5}' --expect '{"total": 1}'
        stop_case services-server-exit "$slog"
    else
        fail health "user_server did not start"
        show_log "server log" "$slog"
    fi

    slog=$LOGS/no-services.server.log
    if start_server c "$slog" --no-health --no-reflection; then
        t=127.0.0.1:$server_port
        ex_health "$LOGS/no-health.log" "$t" --unimplemented "" user.UserService
        hrc=$?
        ex_reflect "$LOGS/no-reflection.log" --target "$t" \
            --case no-reflection list
        rrc=$?
        if [[ $hrc -ne 0 ]]; then
            fail no-health-reflection "health is served (log: $LOGS/no-health.log)"
        elif [[ $rrc -eq 0 ]] || ! grep -q UNIMPLEMENTED "$LOGS/no-reflection.log"; then
            fail no-health-reflection "reflection is served (log: $LOGS/no-reflection.log)"
        elif ! grep -qF "health off; reflection off" "$slog"; then
            fail no-health-reflection "the server does not say so (log: $slog)"
        else
            pass no-health-reflection
        fi
        stop_case no-services-server-exit "$slog"
    else
        fail no-health-reflection "user_server --no-health --no-reflection did not start"
        show_log "server log" "$slog"
    fi
fi

ex_finish "example user"
