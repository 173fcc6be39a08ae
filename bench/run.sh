#!/usr/bin/env bash
# libminirpc benchmark harness (issue 6).  Run through `make bench` or
# `make bench-smoke`, which build the programs first.
#
#   BUILD=build bench/run.sh [--smoke] [--reps=N] [--secs=S] [--only=W1,W4,...]
#                            [--no-callgrind] [--no-strace] [--wait-quiet=SECS]
#                            [--servers=mrpc-event,mrpc-blocking,grpc++,floor]
#
# (make bench passes BENCH_ARGS on.)  --wait-quiet waits before each workload,
# up to SECS, for other processes to leave the machine nearly idle: on a
# shared machine their load would be measured too.
#
# Servers (each pinned to core SERVER_CPU with taskset, the load generator to
# LOAD_CPU; every server listens on 127.0.0.1 only):
#   mrpc-event     bench/mrpc_server.c, event-driven handlers, 1 I/O thread
#   mrpc-blocking  the same with blocking handlers (worker pool)
#   grpc++         bench/grpc_server.cc, Debian's libgrpc++, callback API
#   floor          bench/floor_server.c, epoll + nghttp2, no protobuf
# Workloads:
#   W1   unary, 16-byte body, h2load 10 connections x 10 streams
#   W2   unary, 1 KiB body echoed, h2load 10 x 10
#   W3a  server streaming of 1 KiB messages (MB/s)
#   W3b  server streaming of 64 KiB messages (MB/s)
#   W4   bidi ping-pong of 16-byte messages on one stream (p50/p99)
#   W5   unary, 16-byte body, h2load 100 connections x 10 streams
#   W6   10,000 idle HTTP/2 connections: server memory per connection, and
#        whether every one still answers a PING afterwards
# W3 and W4 run with both clients (bench/mrpc_client.c, bench/grpc_client.cc)
# against every server.
#
# Per server and workload: rate (median of --reps runs, each about --secs
# long: a calibration run first sizes the count, and also warms up), ratio to
# grpc C++ (grpc++ server, and for W3/W4 grpc++ client too) of the same run,
# server CPU per RPC or message (utime+stime of the server process over the
# timed runs), instructions per RPC (callgrind: two server runs with
# different counts, the difference divided by the difference of the counts,
# so start-up and connection set-up cancel), syscalls per RPC (strace -c -f
# attached to the running server for a fixed count), peak RSS (VmHWM of the
# server process), p50/p99 latency (h2load's per-request log, or the
# clients' own measurements).
#
# Every load is bounded in count and wrapped in timeout(1); every server runs
# under timeout(1) too (SERVER_LIFETIME), and the EXIT trap stops whatever is
# still running.  Output: BUILD/bench/results.md (also printed),
# BUILD/bench/raw.tsv (every measurement), BUILD/bench/logs/, the callgrind
# files in BUILD/bench/callgrind/ and the per-RPC profiles of W1 in
# BUILD/bench/profile-W1-*.txt.  Exits 1 if any step failed (the table then
# shows ERR where it did).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
OUT=$BUILD/bench
BIN=$OUT/bin
LOGS=$OUT/logs
CG=$OUT/callgrind
RAW=$OUT/raw.tsv
META=$OUT/meta.tsv

SMOKE=0 REPS=3 SECS=1.0 ONLY="" DO_CALLGRIND=1 DO_STRACE=1 WAIT_QUIET=0
SERVERS=(mrpc-event mrpc-blocking grpc++ floor)
COMMAND="bench/run.sh $*"
for arg in "$@"; do
    case $arg in
    --smoke) SMOKE=1 ;;
    --reps=*) REPS=${arg#*=} ;;
    --secs=*) SECS=${arg#*=} ;;
    --only=*) ONLY=${arg#*=} ;;
    --no-callgrind) DO_CALLGRIND=0 ;;
    --no-strace) DO_STRACE=0 ;;
    --wait-quiet=*) WAIT_QUIET=${arg#*=} ;;
    --servers=*) IFS=, read -ra SERVERS <<<"${arg#*=}" ;;
    *) echo "usage: $0 [--smoke] [--reps=N] [--secs=S] [--only=W1,...]" \
            "[--no-callgrind] [--no-strace] [--wait-quiet=SECS]" \
            "[--servers=NAME,...]" >&2
       exit 2 ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "--reps: 1..99" >&2; exit 2; }
[[ $SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--secs: a number" >&2; exit 2; }
[[ $WAIT_QUIET =~ ^[0-9]+$ ]] || { echo "--wait-quiet: seconds" >&2; exit 2; }

for s in "${SERVERS[@]}"; do
    case $s in
    mrpc-event | mrpc-blocking | grpc++ | floor) ;;
    *) echo "--servers: unknown server $s" >&2; exit 2 ;;
    esac
done
CLIENTS=(mrpc grpc++)
if (( SMOKE )); then
    REPS=1
    LOAD_TIMEOUT=15       # s per load process
    STARTUP_TIMEOUT=15    # s for "listening on"
    IDLE_CONNS=100
    IDLE_HOLD_MS=200
else
    LOAD_TIMEOUT=90
    STARTUP_TIMEOUT=60    # grpc++ under callgrind takes a few seconds
    IDLE_CONNS=10000
    IDLE_HOLD_MS=2000
fi
SERVER_LIFETIME=600       # s: upper bound of any server, even if we are killed
CG_STARTUP_TIMEOUT=120
NCPU=$(nproc)
if (( NCPU >= 2 )); then
    SERVER_CPU=1 LOAD_CPU=0
else
    SERVER_CPU=0 LOAD_CPU=0
    echo "bench: only one core: server and load share it" >&2
fi
CLK_TCK=$(getconf CLK_TCK)

for prog in mrpc_server mrpc_client floor_server idle_conns grpc_server \
            grpc_client; do
    [[ -x $BIN/$prog ]] || { echo "bench: $BIN/$prog missing (make bench-build)" >&2; exit 1; }
done
for tool in h2load taskset timeout python3; do
    command -v $tool >/dev/null || { echo "bench: $tool not found (bench/deps.sh)" >&2; exit 1; }
done
if (( DO_CALLGRIND )) && ! command -v valgrind >/dev/null; then
    echo "bench: valgrind not found: no instruction counts" >&2; DO_CALLGRIND=0
fi
if (( DO_STRACE )) && ! command -v strace >/dev/null; then
    echo "bench: strace not found: no syscall counts" >&2; DO_STRACE=0
fi

rm -rf "$LOGS" "$CG" "$OUT/results.md" "$OUT"/profile-*.txt
mkdir -p "$LOGS" "$CG"
: >"$RAW"
ERRORS=0
T_START=$(date +%s)

# ---- process bookkeeping ---------------------------------------------------

PIDS=()   # timeout(1) processes wrapping our servers and background tools
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget() {  # forget PID: drop it from PIDS
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

err() {  # err W S C MESSAGE
    echo "bench: ERROR $1 $2 $3: $4" >&2
    printf '%s\t%s\t%s\terror\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"
    ERRORS=$((ERRORS + 1))
}

rec() {  # rec W S C KEY VALUE
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"
}

server_cmd() {  # server_cmd NAME: sets CMD
    case $1 in
    mrpc-event) CMD=("$BIN/mrpc_server" --handlers=event --io-threads=1) ;;
    mrpc-blocking) CMD=("$BIN/mrpc_server" --handlers=blocking --io-threads=1) ;;
    grpc++) CMD=("$BIN/grpc_server") ;;
    floor) CMD=("$BIN/floor_server") ;;
    esac
}

NSERV=0
# start_server NAME [WRAPPER...]: starts the server pinned to SERVER_CPU,
# waits for "listening on PORT".  Sets SRV_TPID (timeout's pid), SRV_PID (the
# server's, or valgrind's), SRV_PORT, SRV_LOG.  Returns 1 on failure.
start_server() {
    local name=$1 limit=$STARTUP_TIMEOUT i
    shift
    (( $# > 0 )) && limit=$CG_STARTUP_TIMEOUT
    server_cmd "$name"
    NSERV=$((NSERV + 1))
    SRV_LOG=$LOGS/server.$NSERV.$name.log
    timeout -k 5 $SERVER_LIFETIME taskset -c $SERVER_CPU "$@" "${CMD[@]}" \
        >"$SRV_LOG" 2>&1 &
    SRV_TPID=$!
    PIDS+=("$SRV_TPID")
    SRV_PORT=""
    for ((i = 0; i < limit * 20; i++)); do
        SRV_PORT=$(awk '/^listening on/ {print $3; exit}' "$SRV_LOG" 2>/dev/null)
        [[ -n $SRV_PORT ]] && break
        kill -0 "$SRV_TPID" 2>/dev/null || break
        sleep 0.05
    done
    SRV_PID=$(cat "/proc/$SRV_TPID/task/$SRV_TPID/children" 2>/dev/null | awk '{print $1}')
    if [[ -z $SRV_PORT || -z $SRV_PID ]]; then
        echo "bench: server $name did not start (log $SRV_LOG):" >&2
        tail -n 5 "$SRV_LOG" >&2
        stop_server
        return 1
    fi
    return 0
}

stop_server() {  # SIGTERM through timeout(1), which passes it on
    [[ -n ${SRV_TPID:-} ]] || return 0
    kill -TERM "$SRV_TPID" 2>/dev/null
    wait "$SRV_TPID" 2>/dev/null
    forget "$SRV_TPID"
    SRV_TPID=""
}

cpu_ticks() {  # "utime stime" of every thread, dead ones included
    awk '{sub(/^.*\) /, ""); print $12, $13}' "/proc/$1/stat" 2>/dev/null || echo 0 0
}

status_kb() {  # status_kb PID FIELD (VmHWM, VmRSS)
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null
}

calc() { awk "BEGIN {printf \"%.6g\", $*}"; }

busy_ticks() {  # user + nice + system + steal of the whole machine
    awk '/^cpu / {print $2 + $3 + $4 + $9; exit}' /proc/stat
}

# children_ticks: sets CT to the CPU ticks of this shell's reaped children
# (the load runs).  `times` must run in this shell, not in a $(...) subshell.
children_ticks() {
    times >"$OUT/.times"
    CT=$(awk -v hz="$CLK_TCK" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%.1f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz}' "$OUT/.times")
}

clamp_count() {  # clamp_count RATE MIN MAX: RATE * SECS within MIN..MAX
    awk -v r="$1" -v s="$SECS" -v lo="$2" -v hi="$3" \
        'BEGIN {n = int(r * s); if (n < lo) n = lo; if (n > hi) n = hi; print n}'
}

# ---- load generators ------------------------------------------------------

NLOAD=0
REQ_SMALL=$OUT/req-16.bin
REQ_1K=$OUT/req-1k.bin
python3 bench/report.py frame 16 "$REQ_SMALL"
python3 bench/report.py frame 1024 "$REQ_1K"

# h2load_run N BODY CONNS STREAMS: unary load on the current server.  Sets
# H_RATE (req/s), H_OK (1 if every request succeeded), H_P50, H_P99 (us).
h2load_run() {
    local n=$1 body=$2 c=$3 m=$4 log reqlog
    NLOAD=$((NLOAD + 1))
    log=$LOGS/load.$NLOAD.h2load.txt
    reqlog=$LOGS/load.$NLOAD.h2load.tsv
    rm -f "$reqlog"
    timeout -k 2 $LOAD_TIMEOUT taskset -c $LOAD_CPU h2load -n "$n" -c "$c" \
        -m "$m" -t 1 -d "$body" -H 'content-type: application/grpc' \
        -H 'te: trailers' --log-file="$reqlog" \
        "http://127.0.0.1:$SRV_PORT/bench.Bench/Unary" >"$log" 2>&1
    H_RATE=$(awk '/^finished in/ {print $4; exit}' "$log")
    local ok
    ok=$(awk '/^requests:/ {print $8; exit}' "$log")
    H_OK=0
    [[ -n $H_RATE && $ok == "$n" ]] && H_OK=1
    read -r H_P50 H_P99 < <(python3 bench/report.py pct "$reqlog" 2>/dev/null || echo "0 0")
    rm -f "$reqlog"
    [[ -n $H_RATE ]] || H_RATE=0
}

# client_run CLIENT MODE COUNT SIZE: sets C_RATE C_MBPS C_P50 C_P99 C_CPU
# (client CPU us per message) and C_OK.
client_run() {
    local client=$1 mode=$2 n=$3 size=$4 prog log line
    [[ $client == mrpc ]] && prog=$BIN/mrpc_client || prog=$BIN/grpc_client
    NLOAD=$((NLOAD + 1))
    log=$LOGS/load.$NLOAD.$client-$mode.txt
    timeout -k 2 $LOAD_TIMEOUT taskset -c $LOAD_CPU "$prog" \
        --target="127.0.0.1:$SRV_PORT" --mode="$mode" --count="$n" \
        --size="$size" --timeout-ms=$(((LOAD_TIMEOUT - 5) * 1000)) >"$log" 2>&1
    local rc=$?
    line=$(grep -m1 '^RESULT' "$log")
    kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    C_RATE=$(kv rate) C_MBPS=$(kv mbps) C_P50=$(kv p50_us) C_P99=$(kv p99_us)
    C_CPU=$(kv cpu_us_per_msg)
    C_OK=0
    [[ $rc == 0 && -n $line && $(kv msgs) == "$n" ]] && C_OK=1
    [[ -n $C_RATE ]] || C_RATE=0
}

# A load "kind" for the generic helpers: "h2load BODY CONNS STREAMS" or
# "client CLIENT MODE SIZE".  load_run KIND... N runs it; LOAD_RATE, LOAD_OK.
load_run() {
    if [[ $1 == h2load ]]; then
        h2load_run "$5" "$2" "$3" "$4"
        LOAD_RATE=$H_RATE LOAD_OK=$H_OK
    else
        client_run "$2" "$3" "$5" "$4"
        LOAD_RATE=$C_RATE LOAD_OK=$C_OK
    fi
}

# strace_count W S C N KIND...: syscalls of the running server per RPC.
strace_count() {
    local w=$1 s=$2 c=$3 n=$4 out tpid calls i
    shift 4
    NLOAD=$((NLOAD + 1))
    out=$LOGS/strace.$NLOAD.$w.$s.txt
    timeout -k 2 $LOAD_TIMEOUT strace -c -f -p "$SRV_PID" -o "$out" \
        >/dev/null 2>&1 &
    tpid=$!
    PIDS+=("$tpid")
    # strace writes nothing until it detaches: give it time to attach
    # to every thread (it stops each one).
    sleep 0.5
    load_run "$@" "$n"
    kill -INT "$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null)" 2>/dev/null
    wait "$tpid" 2>/dev/null
    forget "$tpid"
    calls=$(awk '$NF == "total" {print $4}' "$out" 2>/dev/null)
    if [[ $LOAD_OK == 1 && -n $calls ]]; then
        rec "$w" "$s" "$c" syscalls "$(calc "$calls / $n")"
    else
        err "$w" "$s" "$c" "strace run failed ($out)"
    fi
}

# callgrind_count W S C N1 N2 KIND...: server instructions per RPC from two
# runs under callgrind.
callgrind_count() {
    local w=$1 s=$2 c=$3 n1=$4 n2=$5 n f ir1="" ir2=""
    shift 5
    for n in "$n1" "$n2"; do
        f=$CG/$w.$s.$n.out
        rm -f "$f"
        start_server "$s" valgrind --tool=callgrind --callgrind-out-file="$f" \
            || { err "$w" "$s" "$c" "server under callgrind did not start"; return; }
        load_run "$@" "$n"
        local ok=$LOAD_OK
        stop_server
        if [[ $ok != 1 || ! -s $f ]]; then
            err "$w" "$s" "$c" "callgrind run of $n failed"
            return
        fi
        [[ $n == "$n1" ]] && ir1=$(awk '/^totals:/ {print $2}' "$f") ||
            ir2=$(awk '/^totals:/ {print $2}' "$f")
    done
    rec "$w" "$s" "$c" instr "$(calc "($ir2 - $ir1) / ($n2 - $n1)")"
    rec "$w" "$s" "$c" cg_files "$CG/$w.$s.$n1.out $CG/$w.$s.$n2.out $n1 $n2"
}

# ---- workloads -------------------------------------------------------------

want() { [[ -z $ONLY || ,$ONLY, == *",$1,"* ]]; }

busy_pct() {  # share of all CPUs busy over the next second (others' load)
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {split(a, x); split(b, y);
        t = (y[1] - x[1]) + (y[2] - x[2]); print (t > 0 ? int(100 * (y[1] - x[1]) / t) : 0)}'
}

# --wait-quiet=SECS: before each workload, wait (up to SECS) until the other
# processes of the machine leave it at most 10 % busy; other sessions on a
# shared machine would otherwise be measured too.  The busy share seen at
# the start of each workload goes into the results.
wait_quiet() {  # wait_quiet W
    local w=$1 waited=0 b
    b=$(busy_pct)
    while (( WAIT_QUIET > 0 && b > 10 && waited < WAIT_QUIET )); do
        sleep 4
        waited=$((waited + 5))
        b=$(busy_pct)
    done
    rec "$w" - - busy_pct "$b"
    (( waited > 0 )) && echo "bench: waited ${waited} s for a quiet machine ($b % busy)" >&2
    return 0
}

# measure W S C CAL MAX KIND...: calibration run of CAL (also the warm-up),
# then REPS timed runs of about SECS each; records rate, latency, server CPU.
# In smoke mode the count is CAL for every run.
measure() {
    local w=$1 s=$2 c=$3 cal=$4 max=$5 n r tries=0 srv=0 sys=0
    local b0 b1 c0 c1 u0 s0 u1 s1 t0 t1 other
    shift 5
    load_run "$@" "$cal"
    if [[ $LOAD_OK != 1 ]]; then
        err "$w" "$s" "$c" "calibration run failed (see $LOGS, load $NLOAD)"
        return 1
    fi
    n=$cal
    (( SMOKE )) || n=$(clamp_count "$LOAD_RATE" "$cal" "$max")
    rec "$w" "$s" "$c" count "$n"
    for ((r = 0; r < REPS; r++)); do
        children_ticks
        b0=$(busy_ticks) c0=$CT t0=$(date +%s%N)
        read -r u0 s0 < <(cpu_ticks "$SRV_PID")
        load_run "$@" "$n"
        read -r u1 s1 < <(cpu_ticks "$SRV_PID")
        children_ticks
        b1=$(busy_ticks) c1=$CT t1=$(date +%s%N)
        if [[ $LOAD_OK != 1 ]]; then
            err "$w" "$s" "$c" "run failed (see $LOGS, load $NLOAD)"
            continue
        fi
        # CPU that neither the server nor the load generator used: other
        # processes of the machine.  A run they disturbed is done again
        # (twice at most per measurement).
        other=$(awk -v b="$((b1 - b0))" -v sv="$((u1 + s1 - u0 - s0))" \
            -v c0="$c0" -v c1="$c1" -v t="$((t1 - t0))" -v hz="$CLK_TCK" \
            -v n="$NCPU" 'BEGIN {o = b - sv - (c1 - c0); if (o < 0) o = 0;
                w = t / 1e9 * hz * n; printf "%.0f", (w > 0 ? 100 * o / w : 0)}')
        if (( other > 20 && tries < 2 && ! SMOKE )); then
            tries=$((tries + 1))
            echo "bench: $w $s $c: run disturbed (other processes ${other}% busy), again" >&2
            sleep 2
            r=$((r - 1))
            continue
        fi
        srv=$((srv + u1 + s1 - u0 - s0)) sys=$((sys + s1 - s0))
        rec "$w" "$s" "$c" other_pct "$other"
        rec "$w" "$s" "$c" rate "$LOAD_RATE"
        if [[ $1 == h2load ]]; then
            rec "$w" "$s" "$c" p50 "$H_P50"
            rec "$w" "$s" "$c" p99 "$H_P99"
        else
            rec "$w" "$s" "$c" mbps "$C_MBPS"
            rec "$w" "$s" "$c" p50 "$C_P50"
            rec "$w" "$s" "$c" p99 "$C_P99"
            rec "$w" "$s" "$c" client_cpu "$C_CPU"
        fi
    done
    rec "$w" "$s" "$c" server_cpu "$(calc "$srv * 1e6 / $CLK_TCK / ($n * $REPS)")"
    (( srv > 0 )) && rec "$w" "$s" "$c" server_sys_pct "$(calc "100 * $sys / $srv")"
    return 0
}

# Instruction and syscall counts: in smoke mode only for mrpc-event on W1
# (checks that the machinery works).
extras_for() {  # extras_for W S
    (( SMOKE == 0 )) || [[ $1 == W1 && $2 == mrpc-event ]]
}

# h2load_workload W BODY CONNS STREAMS CAL MAX STRACE_N CG_N1 CG_N2
h2load_workload() {
    local w=$1 body=$2 c=$3 m=$4 cal=$5 max=$6 sn=$7 n1=$8 n2=$9 s
    want "$w" || return 0
    echo "bench: $w ($(($(date +%s) - T_START)) s)" >&2
    (( SMOKE )) || wait_quiet "$w"
    for s in "${SERVERS[@]}"; do
        start_server "$s" || { err "$w" "$s" h2load "server did not start"; continue; }
        measure "$w" "$s" h2load "$cal" "$max" h2load "$body" "$c" "$m"
        rec "$w" "$s" h2load rss_kb "$(status_kb "$SRV_PID" VmHWM)"
        if (( DO_STRACE )) && extras_for "$w" "$s"; then
            strace_count "$w" "$s" h2load "$sn" h2load "$body" "$c" "$m"
        fi
        stop_server
        if (( DO_CALLGRIND )) && extras_for "$w" "$s"; then
            callgrind_count "$w" "$s" h2load "$n1" "$n2" h2load "$body" "$c" "$m"
        fi
    done
}

# client_workload W MODE SIZE CAL MAX STRACE_N CG_N1 CG_N2
client_workload() {
    local w=$1 mode=$2 size=$3 cal=$4 max=$5 sn=$6 n1=$7 n2=$8 s c
    want "$w" || return 0
    echo "bench: $w ($(($(date +%s) - T_START)) s)" >&2
    (( SMOKE )) || wait_quiet "$w"
    for s in "${SERVERS[@]}"; do
        start_server "$s" || { err "$w" "$s" - "server did not start"; continue; }
        for c in "${CLIENTS[@]}"; do
            measure "$w" "$s" "$c" "$cal" "$max" client "$c" "$mode" "$size"
        done
        rec "$w" "$s" - rss_kb "$(status_kb "$SRV_PID" VmHWM)"
        if (( DO_STRACE )) && extras_for "$w" "$s"; then
            strace_count "$w" "$s" mrpc "$sn" client mrpc "$mode" "$size"
        fi
        stop_server
        if (( DO_CALLGRIND )) && extras_for "$w" "$s"; then
            callgrind_count "$w" "$s" mrpc "$n1" "$n2" client mrpc "$mode" "$size"
        fi
    done
}

idle_workload() {  # W6
    local w=W6 s base rss out tpid i ready alive
    want "$w" || return 0
    echo "bench: $w ($(($(date +%s) - T_START)) s)" >&2
    (( SMOKE )) || wait_quiet "$w"
    for s in "${SERVERS[@]}"; do
        start_server "$s" || { err "$w" "$s" - "server did not start"; continue; }
        client_run mrpc unary 10 16 # warm-up: lazily made state is there
        sleep 0.2
        base=$(status_kb "$SRV_PID" VmRSS)
        NLOAD=$((NLOAD + 1))
        out=$LOGS/load.$NLOAD.idle.txt
        timeout -k 2 $LOAD_TIMEOUT taskset -c $LOAD_CPU "$BIN/idle_conns" \
            --target="127.0.0.1:$SRV_PORT" --conns=$IDLE_CONNS --hold-ms=$IDLE_HOLD_MS \
            --timeout-ms=$(((LOAD_TIMEOUT - 10) * 1000 / 2)) >"$out" 2>&1 &
        tpid=$!
        PIDS+=("$tpid")
        for ((i = 0; i < LOAD_TIMEOUT * 10; i++)); do
            grep -qs '^READY' "$out" && break
            kill -0 "$tpid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 0.5  # the server has settled every handshake
        rss=$(status_kb "$SRV_PID" VmRSS)
        wait "$tpid"
        forget "$tpid"
        ready=$(awk -F= '/^READY/ {print $2}' "$out")
        alive=$(awk -F= '/^ALIVE/ {print $2}' "$out")
        rec "$w" "$s" - conns "$IDLE_CONNS"
        rec "$w" "$s" - ready "${ready:-0}"
        rec "$w" "$s" - alive "${alive:-0}"
        if [[ -n $ready && $ready -gt 0 ]]; then
            rec "$w" "$s" - conn_kb "$(calc "($rss - $base) / $ready")"
        fi
        [[ ${alive:-0} == "$IDLE_CONNS" ]] ||
            err "$w" "$s" - "only ${ready:-0} set up, ${alive:-0} alive of $IDLE_CONNS"
        rec "$w" "$s" - rss_kb "$(status_kb "$SRV_PID" VmHWM)"
        stop_server
    done
}

# ---- the run ---------------------------------------------------------------

{
    printf 'command\t%s\n' "${BENCH_COMMAND:-$COMMAND}"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'cpu\t%s\n' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    printf 'cores\t%s\n' "$NCPU"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'pinning\tserver on CPU %s, load on CPU %s\n' "$SERVER_CPU" "$LOAD_CPU"
    printf 'versions\tnghttp2 %s, protobuf-c %s, grpc++ %s, protobuf %s, %s, %s\n' \
        "$(pkg-config --modversion libnghttp2 2>/dev/null)" \
        "$(pkg-config --modversion libprotobuf-c 2>/dev/null)" \
        "$(pkg-config --modversion grpc++ 2>/dev/null)" \
        "$(pkg-config --modversion protobuf 2>/dev/null)" \
        "$(h2load --version 2>/dev/null | head -1)" \
        "$(valgrind --version 2>/dev/null)"
    printf 'reps\t%s\n' "$REPS"
    printf 'secs\t%s\n' "$SECS"
    printf 'smoke\t%s\n' "$SMOKE"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$META"

if (( SMOKE )); then
    #               W   body          c   m   cal  max  strace cg1 cg2
    h2load_workload W1  "$REQ_SMALL"  10  10  200  200  200    100 200
    h2load_workload W2  "$REQ_1K"     10  10  200  200  0      0   0
    #               W   mode     size   cal  max strace cg1 cg2
    client_workload W3a stream   1024   200  200 0      0   0
    client_workload W3b stream   65536  50   50  0      0   0
    client_workload W4  pingpong 16     200  200 0      0   0
    h2load_workload W5  "$REQ_SMALL"  100 10  1000 1000 0      0   0
    idle_workload
else
    h2load_workload W1  "$REQ_SMALL"  10  10  5000 2000000 20000 1000 3000
    h2load_workload W2  "$REQ_1K"     10  10  5000 2000000 20000 1000 3000
    client_workload W3a stream   1024   5000 5000000 20000 1000 3000
    client_workload W3b stream   65536  500  200000  2000  100  300
    client_workload W4  pingpong 16     1000 200000  5000  500  1500
    h2load_workload W5  "$REQ_SMALL"  100 10  10000 2000000 20000 2000 4000
    idle_workload
fi

printf 'elapsed\t%s s\n' "$(($(date +%s) - T_START))" >>"$META"
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
python3 bench/report.py report --raw "$RAW" --meta "$META" \
    --out "$OUT/results.md" || ERRORS=$((ERRORS + 1))
[[ -s $OUT/results.md ]] && cat "$OUT/results.md"
echo "bench: $(($(date +%s) - T_START)) s, $ERRORS error(s); results in $OUT/results.md" >&2
(( ERRORS == 0 ))
