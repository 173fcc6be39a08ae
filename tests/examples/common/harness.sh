# The machinery tests/examples/{user,llm,file,chat,services}.sh share:
# reporting, log directories, cleanup, setup checks and starting and
# stopping servers.  Sourced first thing (after set -uo pipefail); sets ROOT
# and PY and sources lib.sh (certificates, health and reflection helpers).
#
# Start and setup
#   ex_begin NAME PREFIX ARGS...   the script's "$@" must be one BUILD_DIR
#                     (else usage, exit 2); sets BUILD_DIR (created), BIN,
#                     GEN (BUILD_DIR/gen/py-NAME), EX_NAME and the PREFIX of
#                     PASS/FAIL lines ("example chat-", "services ")
#   ex_logs_run       LOGS: a fresh BUILD_DIR/example-logs/NAME.XXXXXX (ones
#                     older than an hour go); at exit removed when every case
#                     passed, kept (and named) when not
#   ex_logs_fixed     LOGS: BUILD_DIR/example-logs/NAME, the last run's (made
#                     by ex_require); at exit, servers still running are
#                     killed outright; SIGINT/SIGTERM exit 130
#   ex_example_setup PROG...  (with ex_logs_run) BIN/PROG built, grpcio
#                     importable and examples/NAME/NAME.proto's Python stubs
#                     renamed into GEN; else "FAIL PREFIX{build,setup}: why",
#                     exit 1
#   ex_require FILE...  (with ex_logs_fixed) every FILE executable, grpcio,
#                     protoc and grpc_python_plugin there; else a failed case
#                     build or setup, exit 1.  Then LOGS and GEN made afresh.
#   ex_protoc_py OUT PROTOC_ARGS...  protoc's Python and grpcio stubs into OUT
#                     (bounded)
#   ex_at_exit        defined by a script: called by the cleanup at exit,
#                     after the servers (and clients) are gone
#   ex_finish LABEL   "LABEL (BUILD_DIR): N failure(s)" and exit 1, or
#                     "LABEL (BUILD_DIR): all passed"
# Reporting
#   pass CASE, fail CASE WHY...  "PASS PREFIX<case>", "FAIL PREFIX<case>: why"
#                     (fail counts in failures)
#   show FILE, show_log TITLE FILE  FILE's last 20 / 30 lines, indented
#   sanitizer_report FILE...  true if one has a report (SAN_RE)
# Servers: each runs under timeout(1) (SERVER_LIFETIME s, then SIGKILL
# SERVER_KILL_AFTER s after any signal) and its timeout's pid is kept in
# server_pids until it is stopped; client_pids (chat.sh's) are ended at exit
# too.  A script sets SERVER_LIFETIME, SERVER_KILL_AFTER and STOP_TIMEOUT (s
# from SIGTERM to exit); STARTUP_TIMEOUT (s to the "listening on" line) is
# 20 unless set.
#   ex_start_server NAME CMD...   (the run-log style) CMD with stdout in
#                     srv_out = LOGS/server-NAME.out, stderr in srv_err; sets
#                     srv_pid and srv_port once srv_out has "listening on
#                     127.0.0.1:PORT"; else fails case server-NAME, returns 1
#   ex_stop_server NAME PID ERR  SIGTERM; reported as case server-NAME: it
#                     must exit 0 within STOP_TIMEOUT s with no sanitizer
#                     report in ERR.  One that hangs gets its threads' stacks
#                     dumped (gdb) into ERR.hang before it is killed.
#   ex_services_server SERVICE [ARGS...]  start_server services ARGS (the
#                     script's, run-log style), lib.sh's ex_services_cases
#                     against it, ex_stop_server
#   ex_start_logged [--ready FN] LOG SED CMD...  (the fixed-log style) CMD
#                     with stdout and stderr in LOG; sets server_pid and
#                     server_port, the first thing `sed -n -E SED` prints from
#                     LOG (and FN, if given, must be true too); else stops it
#                     and returns 1
#   ex_stop_logged LOG  SIGTERM the current server (server_pid), then
#                     ex_wait_logged
#   ex_wait_logged LOG  waits (STOP_TIMEOUT s) for the current server to exit
#                     by itself.  Sets stop_why to "" when it exited 0 in time
#                     with no sanitizer report in LOG, else to the reason, and
#                     stop_secs.  A server that had died before
#                     ex_stop_logged says so; its exit status is added only
#                     when STOP_DIED_STATUS=1.
#   stop_case CASE LOG  ex_stop_logged, reported as case CASE
#   child_of PID      the process under a timeout(1) wrapper
#   forget PID        no longer a server to stop at exit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PY=/usr/bin/python3  # Debian's grpcio is only visible to the system python
STARTUP_TIMEOUT=20
# chat, llm and file's; user.sh and services.sh set their own.
SAN_RE='ERROR: (Address|Leak|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: .*Sanitizer'
STOP_DIED_STATUS=0
failures=0
server_pids=()
client_pids=()
EX_RUN_LOGS=0
EX_KILL_AT_EXIT=0

ex_begin() {
    EX_NAME=$1 EX_PREFIX=$2
    shift 2
    if [[ $# -ne 1 ]]; then
        echo "usage: $0 BUILD_DIR" >&2
        exit 2
    fi
    mkdir -p "$1"
    BUILD_DIR=$(cd "$1" && pwd)
    BIN=$BUILD_DIR/bin
    GEN=$BUILD_DIR/gen/py-$EX_NAME
}

pass() { echo "PASS $EX_PREFIX$1"; }
fail() {  # fail CASE WHY...
    echo "FAIL $EX_PREFIX$1: ${*:2}"
    failures=$((failures + 1))
}
ex_tail() {  # ex_tail HEADER LINES FILE
    [[ -s $3 ]] || return 0
    echo "  --- $1 ---"
    tail -n "$2" "$3" | sed 's/^/  | /'
}
show() { ex_tail "$1" 20 "$1"; }
show_log() { ex_tail "$1 (last 30 lines of $2)" 30 "$2"; }
sanitizer_report() { grep -qE "$SAN_RE" "$@" 2>/dev/null; }

ex_finish() {
    if [[ $failures -ne 0 ]]; then
        echo "$1 ($BUILD_DIR): $failures failure(s)"
        exit 1
    fi
    echo "$1 ($BUILD_DIR): all passed"
}

# ---- logs and cleanup ------------------------------------------------------
ex_logs_run() {
    mkdir -p "$BUILD_DIR/example-logs" "$BUILD_DIR/gen"
    # Logs kept by failed runs go after an hour (no run lasts that long).
    find "$BUILD_DIR/example-logs" -maxdepth 1 -name "$EX_NAME.??????" \
        -mmin +60 -exec rm -rf {} + 2>/dev/null
    LOGS=$(mktemp -d "$BUILD_DIR/example-logs/$EX_NAME.XXXXXX")
    EX_RUN_LOGS=1
    trap ex_cleanup EXIT
}

ex_logs_fixed() {
    LOGS=$BUILD_DIR/example-logs/$EX_NAME
    EX_KILL_AT_EXIT=1
    trap ex_cleanup EXIT
    trap 'exit 130' INT TERM
}

ex_cleanup() {
    local pid child
    for pid in "${client_pids[@]}" "${server_pids[@]}"; do
        child=
        ((EX_KILL_AT_EXIT)) && child=$(child_of "$pid")
        kill -TERM "$pid" 2>/dev/null
        [[ -n $child ]] && kill -KILL "$child" 2>/dev/null
    done
    for pid in "${client_pids[@]}" "${server_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    declare -F ex_at_exit >/dev/null && ex_at_exit
    ((EX_RUN_LOGS)) || return 0
    if [[ $failures -eq 0 ]]; then
        rm -rf "$LOGS"
    else
        echo "examples/$EX_NAME: logs kept in $LOGS"
    fi
}

# ---- setup -------------------------------------------------------------------
ex_protoc_py() {
    local out=$1
    shift
    timeout 60 protoc --python_out="$out" --grpc_out="$out" \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$@"
}

ex_example_setup() {
    local prog
    for prog in "$@"; do
        if [[ ! -x $BIN/$prog ]]; then
            echo "FAIL ${EX_PREFIX}build: $BIN/$prog is missing (build it with make)"
            exit 1
        fi
    done
    if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
        echo "FAIL ${EX_PREFIX}setup: $PY cannot import grpc (python3-grpcio)"
        exit 1
    fi
    mkdir -p "$GEN"
    # Generated aside, then renamed into $GEN file by file: a run that
    # overlaps this one never sees a half-written module.
    if ! ex_protoc_py "$LOGS" -I"$ROOT/examples/$EX_NAME" \
            "$ROOT/examples/$EX_NAME/$EX_NAME.proto" 2>"$LOGS/protoc.err" ||
       ! mv -f "$LOGS/${EX_NAME}_pb2.py" "$LOGS/${EX_NAME}_pb2_grpc.py" "$GEN/"; then
        echo "FAIL ${EX_PREFIX}setup: protoc for Python failed"
        show "$LOGS/protoc.err"
        exit 1
    fi
}

ex_require() {
    local f missing=()
    for f in "$@"; do
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
}

# ---- servers -----------------------------------------------------------------
child_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -n1 | tr -d ' '; }

forget() {
    local p keep=()
    for p in "${server_pids[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    server_pids=("${keep[@]}")
}

# ex_spawn OUT ERR CMD...: CMD under timeout(1) in the background, stdout in
# OUT, stderr in ERR ("": in OUT too); sets ex_pid (timeout's).
ex_spawn() {
    local out=$1 err=$2
    shift 2
    if [[ -z $err ]]; then
        timeout -k "$SERVER_KILL_AFTER" "$SERVER_LIFETIME" "$@" >"$out" 2>&1 &
    else
        timeout -k "$SERVER_KILL_AFTER" "$SERVER_LIFETIME" "$@" >"$out" 2>"$err" &
    fi
    ex_pid=$!
    server_pids+=("$ex_pid")
}

# ex_await_port PID FILE SED [READY...]: waits up to STARTUP_TIMEOUT s for
# `sed -n -E SED FILE` to print a port (and READY, if given, to be true);
# sets ex_port.  Returns 1 when the time is up or PID is gone.
ex_await_port() {
    local pid=$1 file=$2 sed=$3 i
    shift 3
    for ((i = 0; i < STARTUP_TIMEOUT * 20; i++)); do
        ex_port=$(sed -n -E "$sed" "$file" 2>/dev/null | head -n1)
        if [[ -n $ex_port ]] && { [[ $# -eq 0 ]] || "$@"; }; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}

# ex_await_exit PID [HANG]: waits up to STOP_TIMEOUT s for PID (a timeout(1)
# wrapper) to exit; one still running has its server killed (with HANG, the
# server's threads' stacks are dumped (gdb) into HANG first).  Sets halt_hung
# (1: it had to be killed), halt_rc (exit status), halt_us and halt_ms (time
# since the call); forgets PID.
ex_await_exit() {
    local pid=$1 hang=${2:-} i child t0=${EPOCHREALTIME/[.,]/}
    halt_hung=0 halt_rc=0
    for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        halt_hung=1
        child=$(child_of "$pid")
        if [[ -n $child ]]; then
            [[ -n $hang ]] && command -v gdb >/dev/null &&
                timeout 60 gdb -p "$child" -batch \
                    -ex 'thread apply all bt' >"$hang" 2>&1
            kill -KILL "$child" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null || halt_rc=$?
    halt_us=$((${EPOCHREALTIME/[.,]/} - t0))
    halt_ms=$((halt_us / 1000))
    forget "$pid"
}

# ex_halt PID [HANG]: SIGTERM PID unless it is gone already (halt_dead=1),
# then ex_await_exit.
ex_halt() {
    halt_dead=0
    if kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1"
    else
        halt_dead=1
    fi
    ex_await_exit "$@"
}

ex_start_server() {
    local name=$1
    shift
    srv_out=$LOGS/server-$name.out
    srv_err=$LOGS/server-$name.err
    ex_spawn "$srv_out" "$srv_err" "$@"
    srv_pid=$ex_pid
    if ex_await_port "$srv_pid" "$srv_out" \
            's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/p'; then
        srv_port=$ex_port
        return 0
    fi
    fail "server-$name" "did not start listening within ${STARTUP_TIMEOUT}s"
    show "$srv_out"
    show "$srv_err"
    return 1
}

ex_stop_server() {
    local name=$1 pid=$2 err=$3
    ex_halt "$pid" "$err.hang"
    if ((halt_dead)); then
        fail "server-$name" "died during the run (status $halt_rc)"
        show "$err"
    elif ((halt_hung)); then
        fail "server-$name" "still running ${STOP_TIMEOUT}s after SIGTERM" \
             "(stacks in $err.hang)"
    elif [[ $halt_rc -ne 0 ]]; then
        fail "server-$name" "exited with status $halt_rc on SIGTERM"
        show "$err"
    elif sanitizer_report "$err"; then
        fail "server-$name" "sanitizer report on stderr"
        show "$err"
    else
        ((halt_ms > 3000)) && echo "  note: server-$name took $halt_ms ms to exit"
        pass "server-$name"
    fi
}

ex_services_server() {
    local svc=$1
    shift
    start_server services "$@" || return 0
    local services=("services" "$srv_pid" "$srv_err")
    ex_services_cases "$LOGS" "127.0.0.1:$srv_port" "$svc"
    ex_stop_server "${services[@]}"
}

ex_start_logged() {
    local ready=()
    if [[ $1 == --ready ]]; then
        ready=("$2")
        shift 2
    fi
    local log=$1 sed=$2
    shift 2
    server_port=
    : >"$log"
    ex_spawn "$log" "" "$@"
    server_pid=$ex_pid
    if ex_await_port "$server_pid" "$log" "$sed" "${ready[@]}"; then
        server_port=$ex_port
        return 0
    fi
    ex_stop_logged "$log" >/dev/null 2>&1
    return 1
}

ex_stop_logged() {
    ex_halt "$server_pid"
    ex_why "$1"
}

ex_wait_logged() {
    halt_dead=0
    ex_await_exit "$server_pid"
    ex_why "$1"
}

ex_why() {  # ex_why LOG: stop_why and stop_secs from ex_halt's results
    stop_why=
    ((halt_dead)) && stop_why="the server had died"
    if ((halt_hung)); then
        stop_why="still running ${STOP_TIMEOUT}s after SIGTERM"
    elif [[ $halt_rc -ne 0 ]] && [[ -z $stop_why || $STOP_DIED_STATUS -eq 1 ]]; then
        stop_why="${stop_why:+$stop_why; }exit status $halt_rc after SIGTERM"
    fi
    if grep -qE "$SAN_RE" "$1"; then
        stop_why="${stop_why:+$stop_why; }sanitizer report in the server log"
    fi
    stop_secs=$(awk -v us="$halt_us" 'BEGIN{printf "%.1f", us / 1000000}')
}

stop_case() {
    ex_stop_logged "$2"
    if [[ -z $stop_why ]]; then
        pass "$1"
    else
        fail "$1" "$stop_why (log: $2)"
        show_log "server log" "$2"
    fi
}

. "$ROOT/tests/examples/common/lib.sh"
