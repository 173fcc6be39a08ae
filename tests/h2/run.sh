#!/usr/bin/env bash
# Bad-input tests in raw HTTP/2 against the interop server of a build.
#
#   tests/h2/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Runs tests/h2/test_bad_input.py against BUILD_DIR/bin/interop_server and
# prints "PASS h2 <name>" / "FAIL h2 <name>: why" per case (server_exit is
# the server's clean exit on SIGTERM with no sanitizer report).  Exits
# non-zero if anything failed.  Extra arguments go to the script (e.g.
# --only NAME,NAME or --verbose).
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

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The script bounds every wait itself; this only guards against a harness
# bug.  Its own lines go through as they come, prefixed with "h2".
timeout -k 10 600 "$PY" "$HERE/test_bad_input.py" --server "$SERVER" "$@" 2>&1 |
    tee "$out" | sed -u -E 's/^(PASS|FAIL) /\1 h2 /'
rc=${PIPESTATUS[0]}
if [[ $rc -ne 0 ]] && ! grep -q '^FAIL ' "$out"; then
    echo "FAIL h2 harness: test_bad_input.py exited with status $rc"
fi
exit "$rc"
