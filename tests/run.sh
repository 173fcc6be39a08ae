#!/usr/bin/env bash
# Runs the whole suite for each build directory given and prints the closing
# line "N passed, N failed" (", N skipped" when some were).  Exit status
# non-zero if anything failed.  Parts, per build:
#   - cmocka unit tests (BUILD/tests/test_*) and end-to-end tests (e2e_*),
#     one verdict per binary;
#   - scripts that print one "PASS <kind> <name>" / "FAIL <kind> <name>: why"
#     / "SKIP <kind> <name>: why" line per case: tests/h2/run.sh,
#     tests/codegen/run.sh, tests/examples/*.sh, tests/interop/run.sh,
#     tests/retry/run.sh, tests/lb/run.sh, tests/nginx/run.sh.
# Then, once, the install test from the first build.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
failures=()

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; }

# run NAME CMD...: one verdict from the exit status.
run() {
  local name=$1; shift
  local log
  log=$(mktemp)
  if timeout 300 "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
  rm -f "$log"
}

# run_cases BUILD CMD...: one verdict per PASS/FAIL/SKIP line of the script.
run_cases() {
  local build=$1; shift
  local out rc n_before=$failed verdict kind name rest
  out=$(mktemp)
  timeout 900 "$@" >"$out" 2>&1
  rc=$?
  while read -r verdict kind name rest; do
    case "$verdict" in
      PASS) pass "$build/$kind/$name${rest:+ $rest}" ;;
      FAIL) fail "$build/$kind/$name $rest" ;;
      SKIP) skipped=$((skipped + 1)); echo "SKIP $build/$kind/$name $rest" ;;
    esac
  done < <(grep -E '^(PASS|FAIL|SKIP) [a-z0-9_-]+ ' "$out")
  if [ $rc -ne 0 ] && [ $failed -eq $n_before ]; then
    fail "$build/$* (exit $rc)"
  fi
  [ $failed -eq $n_before ] || tail -n 60 "$out" | sed 's/^/    /'
  rm -f "$out"
}

# Sanitizers: any report fails the run; leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

for build in "$@"; do
  for t in "$build"/tests/test_* "$build"/tests/e2e_*; do
    [ -x "$t" ] || continue
    run "$build/$(basename "$t")" "$t"
  done
  for script in tests/h2/run.sh tests/codegen/run.sh tests/examples/*.sh \
                tests/interop/run.sh tests/retry/run.sh tests/lb/run.sh \
                tests/nginx/run.sh; do
    [ -x "$script" ] || continue
    run_cases "$build" "$script" "$build"
  done
done

# Install and link like a user, from the first (plain) build.
run "install/pkg-config consumer" tests/install/run.sh "$1"

echo
if [ $failed -ne 0 ]; then
  echo "Failed:"; printf '  %s\n' "${failures[@]}"
fi
if [ $skipped -ne 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
