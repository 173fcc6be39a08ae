#!/usr/bin/env bash
# Retries against a fake server in raw HTTP/2 (tests/retry/refuse_server.py):
# what the in-process tests (tests/e2e_retry.c) can not make our server do.
#
#   tests/retry/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Transparent retries, with BUILD_DIR/bin/interop_client --test_case=
# empty_unary (a blocking then an event-driven EmptyCall, no retry policy):
#   refused-stream   the first stream is refused (RST_STREAM REFUSED_STREAM):
#                    retried on the same connection, the call succeeds
#   goaway           the first request gets GOAWAY(last_stream_id=0) and the
#                    connection closes: retried on a new connection
#   refused-always   every stream is refused: one transparent retry, then
#                    UNAVAILABLE (no loop)
#   never-sent       the first connection dies (a connection error right
#                    after its SETTINGS, in one write) with the request
#                    queued on it but not written (nghttp2 then closes the
#                    stream REFUSED_STREAM from its send path, as seen in a
#                    debugger): no failure, the first connection never saw
#                    a request, the second saw both
# Retry policies, with BUILD_DIR/tests/retry/retry_client (one EmptyCall,
# a policy for UNAVAILABLE):
#   previous-attempts       grpc-previous-rpc-attempts is absent, 1, 2
#   pushback-zero           grpc-retry-pushback-ms: 0 retries at once (the
#                           policy's backoff is 10^9 ms)
#   pushback-wait           pushback 300 ms replaces a 1 ms backoff
#   pushback-negative, pushback-malformed   "-1" / "abc": no retry
#   refused-with-policy     refusals: the transparent retry, then the
#                           policy's attempts, then UNAVAILABLE
# Retry throttling (A6), three calls, the first two failing INTERNAL (not
# retryable), the third UNAVAILABLE:
#   throttle-off            no throttling: the third call makes its three
#                           attempts
#   throttle-pushback       4 tokens; the two INTERNAL failures carry a
#                           pushback saying not to retry, which makes them
#                           failures that take a token each: the third
#                           call's failure leaves 1, no retry
#   throttle-no-pushback    the same without the pushback: INTERNAL takes
#                           nothing, the third call is retried once (4 ->
#                           3 -> 2 tokens)
# Prints "PASS retry <case>" / "FAIL retry <case>: why" and exits non-zero
# if anything failed.  Every process runs under timeout(1) and is killed at
# exit.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=$1
INTEROP=$BUILD_DIR/bin/interop_client
CLIENT=$BUILD_DIR/tests/retry/retry_client
PY=/usr/bin/python3  # Debian's python3-h2 is only visible to this one
SAN_RE='ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer'

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

for f in "$INTEROP" "$CLIENT"; do
    if [[ ! -x $f ]]; then
        echo "FAIL retry all: $f is missing (build it with make)"
        exit 1
    fi
done
if ! "$PY" -c 'import h2' 2>/dev/null; then
    echo "FAIL retry all: $PY cannot import h2 (apt install python3-h2)"
    exit 1
fi

WORK=$(mktemp -d)
fake_pid=
cleanup() {
    [[ -n $fake_pid ]] && kill -KILL "$fake_pid" 2>/dev/null
    [[ -n $fake_pid ]] && wait "$fake_pid" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
pass() { echo "PASS retry $1"; }
fail() {
    echo "FAIL retry $1: ${*:2}"
    failures=$((failures + 1))
    for f in "$WORK"/client.out "$WORK"/client.err "$WORK"/fake.log \
             "$WORK"/fake.err; do
        [[ -s $f ]] && sed "s|^|    $(basename "$f"): |" "$f" | tail -n 15
    done
}

# start_fake ARGS...: the fake server (its log in WORK/fake.log); sets
# fake_pid and fake_port.
start_fake() {
    : >"$WORK/fake.log"
    : >"$WORK/fake.out"
    timeout -k 2 60 "$PY" "$HERE/refuse_server.py" --log "$WORK/fake.log" \
        --lifetime 50 "$@" >"$WORK/fake.out" 2>"$WORK/fake.err" &
    fake_pid=$!
    fake_port=
    local i
    for ((i = 0; i < 200; i++)); do
        fake_port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/fake.out")
        [[ -n $fake_port ]] && return 0
        kill -0 "$fake_pid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}

stop_fake() {
    kill -TERM "$fake_pid" 2>/dev/null
    wait "$fake_pid" 2>/dev/null
    fake_pid=
}

# The fake server's log as "conn:action:prev" words, in order.
streams() {
    sed -n 's/^stream conn=\([0-9]*\) id=[0-9]* t=[0-9]* prev=\([^ ]*\) action=\([a-z]*\)$/\1:\3:\2/p' \
        "$WORK/fake.log" | paste -sd' '
}

# run_client CMD...: runs a client (bounded); returns its exit status.
run_client() {
    timeout -k 2 30 "$@" >"$WORK/client.out" 2>"$WORK/client.err"
}

sanitized() { ! grep -qE "$SAN_RE" "$WORK/client.err"; }

# interop_case NAME MODE WANT_RC WANT_STREAMS [GREP]: empty_unary against
# the fake server in MODE; the client must exit WANT_RC, the server must
# log WANT_STREAMS and the client's output must match GREP.
interop_case() {
    local name=$1 mode=$2 want_rc=$3 want=$4 re=${5:-}
    if ! start_fake --mode "$mode"; then
        fail "$name" "the fake server did not start"
        return
    fi
    run_client "$INTEROP" --server_host=127.0.0.1 --server_port="$fake_port" \
        --test_case=empty_unary
    local rc=$?
    stop_fake
    local got
    got=$(streams)
    if ! sanitized; then
        fail "$name" "sanitizer report"
    elif [[ $rc -ne $want_rc ]]; then
        fail "$name" "interop_client exited $rc, want $want_rc"
    elif [[ -n $re ]] && ! grep -qE "$re" "$WORK/client.out"; then
        fail "$name" "interop_client output does not match /$re/"
    elif [[ $got != "$want" ]]; then
        fail "$name" "streams '$got', want '$want'"
    else
        pass "$name"
    fi
}

interop_case refused-stream refuse-first 0 "1:refused:- 1:ok:- 1:ok:-" \
    '^PASS empty_unary$'
interop_case goaway goaway-first 0 "1:goaway:- 2:ok:- 2:ok:-" \
    '^PASS empty_unary$'
interop_case never-sent junk-first 0 "2:ok:- 2:ok:-" '^PASS empty_unary$'
# Only the blocking call runs (the case stops at its first failure).
interop_case refused-always refuse-all 1 "1:refused:- 1:refused:-" \
    '^FAIL empty_unary: blocking: status UNAVAILABLE '

# policy_case NAME CLIENT_ARGS FAKE_ARGS WANT_STATUS WANT_STREAMS [CHECK]:
# one retry_client run (WANT_STATUS: the status of each call, in order,
# space-separated); CHECK (a function) may look further.
policy_case() {
    local name=$1 cargs=$2 fargs=$3 want_code=$4 want=$5 check=${6:-}
    # shellcheck disable=SC2086  # the argument lists are split on purpose
    if ! start_fake $fargs; then
        fail "$name" "the fake server did not start"
        return
    fi
    # shellcheck disable=SC2086
    run_client "$CLIENT" --target="127.0.0.1:$fake_port" $cargs
    local rc=$? why=
    stop_fake
    local got code
    got=$(streams)
    code=$(sed -n 's/^status \([0-9]*\).*/\1/p' "$WORK/client.out" | paste -sd' ')
    if ! sanitized; then
        fail "$name" "sanitizer report"
    elif [[ $rc -ne 0 ]]; then
        fail "$name" "retry_client exited $rc"
    elif [[ $code != "$want_code" ]]; then
        fail "$name" "status '$code', want $want_code"
    elif [[ $got != "$want" ]]; then
        fail "$name" "streams '$got', want '$want'"
    elif [[ -n $check ]] && ! why=$($check); then
        fail "$name" "$why"
    else
        pass "$name"
    fi
}

elapsed() { sed -n 's/^elapsed_ms //p' "$WORK/client.out"; }

# The 10^9 ms backoff was not waited.
quick() {
    local ms
    ms=$(elapsed)
    [[ -n $ms && $ms -lt 5000 ]] || { echo "took ${ms:-?} ms"; return 1; }
}

# The second attempt came at least the pushback's 300 ms after the first
# (the log has whole ms), and not much later.
waited_pushback() {
    local t
    mapfile -t t < <(sed -n 's/^stream .* t=\([0-9]*\) .*/\1/p' "$WORK/fake.log")
    local gap=$((t[1] - t[0]))
    [[ $gap -ge 299 && $gap -lt 5000 ]] || {
        echo "attempts $gap ms apart, want >= 300"
        return 1
    }
}

HUGE=1000000000
policy_case previous-attempts "--max_attempts=3" "--mode fail --fail 2" \
    0 "1:fail:- 1:fail:1 1:ok:2"
policy_case pushback-zero "--max_attempts=3 --backoff_ms=$HUGE" \
    "--mode fail --fail 1 --pushback 0" 0 "1:fail:- 1:ok:1" quick
policy_case pushback-wait "--max_attempts=3 --backoff_ms=1" \
    "--mode fail --fail 1 --pushback 300" 0 "1:fail:- 1:ok:1" waited_pushback
policy_case pushback-negative "--max_attempts=3 --backoff_ms=1" \
    "--mode fail --fail 5 --pushback -1" 14 "1:fail:-"
policy_case pushback-malformed "--max_attempts=3 --backoff_ms=1" \
    "--mode fail --fail 5 --pushback abc" 14 "1:fail:-"
# The transparent retry is not one of the policy's attempts (as in gRPC).
policy_case refused-with-policy "--max_attempts=3 --backoff_ms=1" \
    "--mode refuse-all" 14 "1:refused:- 1:refused:- 1:refused:1 1:refused:2"

THREE="--max_attempts=3 --backoff_ms=1 --calls=3"
policy_case throttle-off "$THREE" \
    "--mode fail --fail 2 --fail_code 13 --pushback -1 --then_fail" \
    "13 13 14" "1:fail:- 1:fail:- 1:unavail:- 1:unavail:1 1:unavail:2"
policy_case throttle-pushback "$THREE --max_tokens=4" \
    "--mode fail --fail 2 --fail_code 13 --pushback -1 --then_fail" \
    "13 13 14" "1:fail:- 1:fail:- 1:unavail:-"
policy_case throttle-no-pushback "$THREE --max_tokens=4" \
    "--mode fail --fail 2 --fail_code 13 --then_fail" \
    "13 13 14" "1:fail:- 1:fail:- 1:unavail:- 1:unavail:1"

[[ $failures -eq 0 ]]
