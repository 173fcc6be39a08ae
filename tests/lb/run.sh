#!/usr/bin/env bash
# Servers killed (SIGKILL) and restarted under a client that keeps calling:
# BUILD_DIR/tests/lb/lb_client (sequential EmptyCalls, one in flight at
# most) against BUILD_DIR/bin/interop_server processes.
#
#   tests/lb/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Cases:
#   rr-wait-for-ready  round_robin over three servers, wait_for_ready calls;
#                      one server is killed while the client is paused (no
#                      call in flight): no call fails, the other two take
#                      every call, and once the server is restarted on its
#                      port it gets calls again
#   rr-fail-fast       the same with fail-fast calls and the kill at any
#                      moment: at most the one call in flight fails
#                      (UNAVAILABLE), and the restarted server rejoins
#   rr-retry-policy    wait_for_ready calls with a retry policy on
#                      UNAVAILABLE, the kill at any moment: no call fails
#                      (the one in flight is retried on another server)
#   single-wait-for-ready  pick_first to one server, killed while the
#                      client is paused: the next call waits through the
#                      outage (no line while the server is down) and
#                      succeeds on the restarted server; no call fails
#   single-fail-fast   the same with fail-fast calls: they fail
#                      (UNAVAILABLE) while the server is down, and none
#                      after the first success on the restarted one
#   rr-grpcio          round_robin over two grpcio servers (py_server.py):
#                      every call succeeds, both servers get calls
# Events are ordered through the client's output and its control files
# (lb_client --control); the only sleep is the outage of the single-server
# cases, and nothing is asserted about its length.  Prints "PASS lb <case>"
# / "FAIL lb <case>: why"; exits non-zero if anything failed.  Every process
# runs under timeout(1) and is killed at exit.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD_DIR=$1
SERVER=$BUILD_DIR/bin/interop_server
CLIENT=$BUILD_DIR/tests/lb/lb_client
SAN_RE='ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer'
WAIT=20  # s, the bound of every wait for an event (ASan builds included)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

for f in "$SERVER" "$CLIENT"; do
    if [[ ! -x $f ]]; then
        echo "FAIL lb all: $f is missing (build it with make)"
        exit 1
    fi
done

WORK=$(mktemp -d)
srv_pid=()   # timeout(1) wrappers of the servers, by index
srv_port=()
cli_pid=
cleanup() {
    local p
    for p in "${srv_pid[@]}" $cli_pid; do
        [[ -n $p ]] || continue
        # shellcheck disable=SC2046  # the child's pid, if any
        kill -KILL $(ps -o pid= --ppid "$p" 2>/dev/null) "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
case_failed=0
pass() { echo "PASS lb $1"; }
fail() {
    echo "FAIL lb $1: ${*:2}"
    failures=$((failures + 1))
    case_failed=1
    [[ -s $WORK/client.out ]] && tail -n 12 "$WORK/client.out" | sed 's/^/    client: /'
    [[ -s $WORK/client.err ]] && tail -n 12 "$WORK/client.err" | sed 's/^/    client stderr: /'
}

# start_server I PORT: server I on PORT (0: a free one); sets srv_pid[I]
# and srv_port[I] once it listens.  A port just freed by a killed server
# may take a moment to bind again: retried.
start_server() {
    local i=$1 port=$2 try n p
    for ((try = 0; try < 20; try++)); do
        : >"$WORK/server$i.out"
        timeout -k 2 120 "$SERVER" --port="$port" >"$WORK/server$i.out" \
            2>>"$WORK/server$i.err" &
        srv_pid[i]=$!
        for ((n = 0; n < WAIT * 20; n++)); do
            p=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/server$i.out")
            if [[ -n $p ]]; then
                srv_port[i]=$p
                return 0
            fi
            kill -0 "${srv_pid[$i]}" 2>/dev/null || break
            sleep 0.05
        done
        wait "${srv_pid[$i]}" 2>/dev/null
        srv_pid[i]=
        sleep 0.1
    done
    return 1
}

# kill_server I: SIGKILL to server I itself (not its timeout wrapper).
kill_server() {
    local t=${srv_pid[$1]} child
    child=$(ps -o pid= --ppid "$t" 2>/dev/null | tr -d ' ')
    [[ -n $child ]] && kill -KILL "$child"
    wait "$t" 2>/dev/null
    srv_pid[$1]=
}

# stop_servers: SIGTERM to every server still up; reports a sanitizer
# report of any server (killed ones included) as a failure of CASE.
stop_servers() {
    local i
    for i in "${!srv_pid[@]}"; do
        [[ -n ${srv_pid[$i]} ]] || continue
        kill -TERM "${srv_pid[$i]}" 2>/dev/null
        wait "${srv_pid[$i]}" 2>/dev/null
    done
    srv_pid=()
    if grep -qE "$SAN_RE" "$WORK"/server*.err 2>/dev/null; then
        fail "$1" "sanitizer report from a server"
        grep -hE "$SAN_RE" "$WORK"/server*.err | head -n 5 | sed 's/^/    /'
    fi
    rm -f "$WORK"/server*.err "$WORK"/server*.out
}

start_client() {
    rm -rf "$WORK/ctl"
    mkdir -p "$WORK/ctl"
    : >"$WORK/client.out"
    : >"$WORK/client.err"
    timeout -k 2 120 "$CLIENT" --control="$WORK/ctl" --interval_ms=2 \
        --backoff_ms=100 "$@" >"$WORK/client.out" 2>"$WORK/client.err" &
    cli_pid=$!
}

# stop_client: the run ends (DIR/stop); returns the client's exit status.
stop_client() {
    touch "$WORK/ctl/stop"
    wait "$cli_pid"
    local rc=$?
    cli_pid=
    return $rc
}

lines() { wc -l <"$WORK/client.out"; }

# count_after N RE: lines after the first N of the client's output that
# match RE.
count_after() { tail -n +$(($1 + 1)) "$WORK/client.out" | grep -cE "$2"; }

# wait_count N RE K: until K lines after the first N match RE (or WAIT s,
# or the client exits); 0 if they did.
wait_count() {
    local n
    for ((n = 0; n < WAIT * 100; n++)); do
        [[ $(count_after "$1" "$2") -ge $3 ]] && return 0
        kill -0 "$cli_pid" 2>/dev/null || break
        sleep 0.01
    done
    [[ $(count_after "$1" "$2") -ge $3 ]]
}

# pause: the client stops between calls; 0 once it says so.
pause() {
    touch "$WORK/ctl/pause"
    wait_count 0 '^paused$' 1
}

# resume R: the client goes on once its channel has R READY connections.
resume() {
    local before
    before=$(lines)
    echo "$1" >"$WORK/ctl/resume.tmp"
    mv "$WORK/ctl/resume.tmp" "$WORK/ctl/resume"
    wait_count "$before" '^resumed ' 1
}

peer_re() { echo "^ok [0-9]+ ipv4:127\\.0\\.0\\.1:$1\$"; }

# The calls that succeeded on server I per the client's final counts.
final_count() {
    sed -n "s/^peer ipv4:127\\.0\\.0\\.1:${srv_port[$1]} \\([0-9]*\\)$/\\1/p" \
        "$WORK/client.out"
}

client_checks() {  # CASE RC: the client's exit and sanitizer reports
    if grep -qE "$SAN_RE" "$WORK/client.err"; then
        fail "$1" "sanitizer report from the client"
    elif [[ $2 -ne 0 ]]; then
        fail "$1" "lb_client exited $2"
    fi
}

# restart_and_finish CASE I RE N: server I back on its port, then at least N
# more client lines matching RE, then the client and the servers stopped and
# checked.  Sets before_restart (the client's line count at the restart).
restart_and_finish() {
    local name=$1 i=$2 re=$3 n=$4 rc
    before_restart=$(lines)
    if ((!case_failed)); then
        start_server "$i" "${srv_port[$i]}" ||
            fail "$name" "server $i did not restart on port ${srv_port[$i]}"
    fi
    ((case_failed)) || wait_count "$before_restart" "$re" "$n" ||
        fail "$name" "the restarted server got no calls"
    stop_client
    rc=$?
    stop_servers "$name"
    ((case_failed)) || client_checks "$name" $rc
}

# ---- round_robin over three servers ----------------------------------------
# retry: the client has a retry policy on UNAVAILABLE, and the kill comes
# at any moment; without one, a wait-for-ready client is paused for the
# kill (a call in flight on a killed server fails whatever wait_for_ready
# says: only a retry policy saves it).
rr_case() {
    local name=$1 wfr=$2 retry=${3:-0} i rc sync=0
    ((wfr && !retry)) && sync=1
    case_failed=0
    for i in 1 2 3; do
        start_server $i 0 || { fail "$name" "server $i did not start"; stop_servers "$name"; return; }
    done
    start_client --target="ipv4:127.0.0.1:${srv_port[1]},127.0.0.1:${srv_port[2]},127.0.0.1:${srv_port[3]}" \
        --lb=round_robin --wait_for_ready="$wfr" --timeout_ms=5000 \
        $( ((retry)) && echo --retry=4)
    # Every server takes calls before anything happens.
    for i in 1 2 3; do
        wait_count 0 "$(peer_re "${srv_port[$i]}")" 5 ||
            { fail "$name" "server $i got no calls"; break; }
    done
    local victim=2 vre
    vre=$(peer_re "${srv_port[2]}")
    if ((!case_failed)); then
        if ((sync)); then
            # Between two calls, and on once the channel saw the loss.
            pause || fail "$name" "the client did not pause"
            kill_server $victim
            ((case_failed)) || resume 2 || fail "$name" "the client did not resume"
        fi
    fi
    # Fail-fast: the kill at any moment.  The call in flight then may still
    # end after killed_at, with a response that beat the kill.
    ((case_failed || sync)) || kill_server $victim
    local killed_at
    killed_at=$(lines)
    # The survivors take the calls meanwhile.
    ((case_failed)) || wait_count "$killed_at" '^ok ' 30 ||
        fail "$name" "calls stopped after the kill"
    local before_count before_restart
    before_count=$(grep -cE "$vre" "$WORK/client.out")
    restart_and_finish "$name" $victim "$vre" 3
    ((case_failed)) && return
    local failed after_kill_on_victim n_fail_lines bad_fail
    failed=$(sed -n 's/^summary ok=[0-9]* failed=\([0-9]*\)$/\1/p' "$WORK/client.out")
    # Between the kill and the restart the victim got nothing, but for the
    # call in flight at an unsynchronized kill (the first line after it).
    after_kill_on_victim=$(sed -n "$((killed_at + 1 + !sync)),${before_restart}p" \
        "$WORK/client.out" | grep -cE "$vre")
    n_fail_lines=$(grep -c '^fail ' "$WORK/client.out")
    bad_fail=$(grep '^fail ' "$WORK/client.out" | grep -vc '^fail [0-9]* 14 ')
    local final
    final=$(final_count $victim)
    if [[ -z $failed ]]; then
        fail "$name" "no summary line"
    elif ((sync || retry)) && [[ $failed -ne 0 ]]; then
        fail "$name" "$failed call(s) failed, want none"
    elif [[ $failed -gt 1 ]]; then
        fail "$name" "$failed calls failed, want at most the one in flight"
    elif [[ $n_fail_lines -ne $failed || $bad_fail -ne 0 ]]; then
        fail "$name" "failures other than UNAVAILABLE"
    elif [[ $after_kill_on_victim -ne 0 ]]; then
        fail "$name" "calls succeeded on the killed server"
    elif [[ -z $final || $final -le $before_count ]]; then
        fail "$name" "final count ${final:-none} for the restarted server, want more than $before_count"
    else
        pass "$name"
    fi
}

# ---- pick_first to one server ----------------------------------------------
single_case() {
    local name=$1 wfr=$2 rc
    case_failed=0
    start_server 1 0 || { fail "$name" "the server did not start"; stop_servers "$name"; return; }
    start_client --target="ipv4:127.0.0.1:${srv_port[1]}" --lb=pick_first \
        --wait_for_ready="$wfr" --timeout_ms=10000
    wait_count 0 '^ok ' 5 || fail "$name" "no call succeeded"
    ((case_failed)) || pause || fail "$name" "the client did not pause"
    if ((!case_failed)); then
        kill_server 1
        resume 0 || fail "$name" "the client did not resume"
    fi
    local resumed_at
    resumed_at=$(lines)
    if ((!case_failed)); then
        if ((wfr)); then
            sleep 1 # the outage; the waiting call must not end meanwhile
        else
            wait_count "$resumed_at" '^fail ' 3 ||
                fail "$name" "no call failed while the server was down"
        fi
    fi
    local down_lines before_restart
    down_lines=$(($(lines) - resumed_at))
    restart_and_finish "$name" 1 '^ok ' 5
    ((case_failed)) && return
    local failed first_ok_after late_fail bad_fail
    failed=$(sed -n 's/^summary ok=[0-9]* failed=\([0-9]*\)$/\1/p' "$WORK/client.out")
    bad_fail=$(grep '^fail ' "$WORK/client.out" | grep -vc '^fail [0-9]* 14 ')
    # No failure once the restarted server answered.
    first_ok_after=$(awk -v n="$before_restart" 'NR > n && /^ok / {print NR; exit}' \
        "$WORK/client.out")
    late_fail=$(awk -v n="${first_ok_after:-0}" 'NR > n && /^fail /' \
        "$WORK/client.out" | wc -l)
    if [[ -z $failed ]]; then
        fail "$name" "no summary line"
    elif ((wfr)) && [[ $failed -ne 0 ]]; then
        fail "$name" "$failed call(s) failed, want none"
    elif ((wfr)) && [[ $down_lines -ne 0 ]]; then
        fail "$name" "a call ended while the server was down"
    elif [[ $bad_fail -ne 0 ]]; then
        fail "$name" "failures other than UNAVAILABLE"
    elif [[ $late_fail -ne 0 ]]; then
        fail "$name" "calls failed after the restarted server answered"
    elif [[ $(grep -c '^fail ' "$WORK/client.out") -ne $failed ]]; then
        fail "$name" "fail lines and summary disagree"
    else
        pass "$name"
    fi
}

rr_case rr-wait-for-ready 1
rr_case rr-fail-fast 0
rr_case rr-retry-policy 1 1
single_case single-wait-for-ready 1
single_case single-fail-fast 0

# ---- round_robin over grpcio servers -----------------------------------------
# The same channel against another implementation's servers: Debian's
# grpcio (tests/interop/py_server.py, stubs generated here as
# tests/interop/run.sh does).  20 calls, none fails, both servers get some.
grpcio_case() {
    local name=rr-grpcio i n p rc
    case_failed=0
    local gen=$WORK/py pids=() ports=()
    mkdir -p "$gen"
    if ! timeout 60 protoc -Itests/interop --python_out="$gen" --grpc_out="$gen" \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
        tests/interop/test.proto >"$WORK/protoc.log" 2>&1; then
        fail "$name" "protoc for Python failed: $(head -c 300 "$WORK/protoc.log")"
        return
    fi
    for i in 1 2; do
        timeout -k 2 60 env PYTHONPATH="$gen" /usr/bin/python3 \
            tests/interop/py_server.py --port=0 >"$WORK/py$i.out" \
            2>"$WORK/py$i.err" &
        pids+=($!)
        srv_pid[10 + i]=$!
        p=
        for ((n = 0; n < WAIT * 20; n++)); do
            p=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/py$i.out")
            [[ -n $p ]] && break
            sleep 0.05
        done
        [[ -n $p ]] || { fail "$name" "grpcio server $i did not start"; break; }
        ports+=("$p")
    done
    if ((!case_failed)); then
        : >"$WORK/client.err"
        timeout -k 2 60 "$CLIENT" --target="ipv4:127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}" \
            --lb=round_robin --calls=20 --interval_ms=0 >"$WORK/client.out" \
            2>"$WORK/client.err"
        rc=$?
    fi
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    srv_pid=()
    ((case_failed)) && return
    client_checks "$name" "$rc"
    ((case_failed)) && return
    local a b
    a=$(grep -cE "$(peer_re "${ports[0]}")" "$WORK/client.out")
    b=$(grep -cE "$(peer_re "${ports[1]}")" "$WORK/client.out")
    if ! grep -qx 'summary ok=20 failed=0' "$WORK/client.out"; then
        fail "$name" "not every call succeeded"
    elif ((a < 5 || b < 5)); then
        fail "$name" "calls per server $a and $b, want each at least 5"
    else
        pass "$name"
    fi
}
grpcio_case

[[ $failures -eq 0 ]]
