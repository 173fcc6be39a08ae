#!/usr/bin/env bash
# Bad-input tests in raw HTTP/2 against the interop server of a build.
#
#   tests/h2/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Runs tests/h2/test_bad_input.py, then tests/h2/test_limits.py (keepalive
# and abuse limits: one server per case, started with small limits), against
# BUILD_DIR/bin/interop_server and prints "PASS h2 <name>" / "FAIL h2 <name>:
# why" per case (server_exit is the server's clean exit on SIGTERM with no
# sanitizer report; each test_limits case checks its own).  Exits non-zero
# if anything failed.  Extra arguments go to the scripts (e.g. --verbose);
# --only NAME,NAME gives each script the names it has.
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 BUILD_DIR [test_bad_input.py options]" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=$1
shift
SERVER=$BUILD_DIR/bin/interop_server
# Debian's python3-h2 (hpack, hyperframe) is only visible to this one.
PY=/usr/bin/python3

# Sanitizer reports must fail the run (leaks included); the same defaults
# as tests/run.sh when run on its own.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

if [[ ! -x $SERVER ]]; then
    echo "FAIL h2 all: $SERVER is missing (build it with make)"
    exit 1
fi
if ! "$PY" -c 'import hpack, hyperframe' 2>/dev/null; then
    echo "FAIL h2 all: $PY cannot import hpack/hyperframe" \
         "(apt install python3-h2)"
    exit 1
fi

only="" rest=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --only) only=${2:-}; shift $(( $# > 1 ? 2 : 1 )) ;;
        --only=*) only=${1#--only=}; shift ;;
        *) rest+=("$1"); shift ;;
    esac
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
known=""
for script in test_bad_input.py test_limits.py; do
    args=(${rest[@]+"${rest[@]}"})
    if [[ -n $only ]]; then
        names=$("$PY" "$HERE/$script" --list)
        known+=" $names"
        mine=$(comm -12 <(sort <<<"$names") <(tr ',' '\n' <<<"$only" | sort) |
               paste -sd,)
        [[ -n $mine ]] || continue
        args+=(--only "$mine")
    fi
    # The scripts bound every wait themselves; this only guards against a
    # harness bug.  Their lines go through as they come, prefixed with "h2".
    timeout -k 10 600 "$PY" "$HERE/$script" --server "$SERVER" \
        ${args[@]+"${args[@]}"} 2>&1 |
        tee "$out" | sed -u -E 's/^(PASS|FAIL) /\1 h2 /'
    r=${PIPESTATUS[0]}
    if [[ $r -ne 0 ]] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL h2 harness: $script exited with status $r"
    fi
    [[ $r -eq 0 ]] || rc=$r
done
if [[ -n $only ]]; then
    for n in ${only//,/ }; do
        if ! grep -qxF "$n" <<<"${known// /$'\n'}"; then
            echo "FAIL h2 harness: unknown case $n"
            rc=1
        fi
    done
fi
exit "$rc"
