#!/usr/bin/env bash
# Runs the whole suite for each build directory given (unit tests, end-to-end
# tests, interop against Debian's grpcio) and prints the closing line
# "N passed, N failed".  Exit status non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
failures=()

run() { # name, command...
  local name=$1; shift
  local log
  log=$(mktemp)
  if timeout 300 "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
  rm -f "$log"
}

# Sanitizers: any report fails the run; leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

for build in "$@"; do
  for t in "$build"/tests/test_* "$build"/tests/e2e_*; do
    [ -x "$t" ] || continue
    run "$build/$(basename "$t")" "$t"
  done
  # Raw HTTP/2 bad input against the interop server, one line per case.
  out=$(mktemp)
  timeout 600 tests/h2/run.sh "$build" >"$out" 2>&1
  rc=$?
  n_before=$failed
  while read -r verdict _ name rest; do
    case "$verdict" in
      PASS) passed=$((passed + 1)); echo "PASS $build/h2/$name" ;;
      FAIL) failed=$((failed + 1)); failures+=("$build/h2/$name $rest")
            echo "FAIL $build/h2/$name $rest" ;;
    esac
  done < <(grep -E '^(PASS|FAIL) h2 ' "$out")
  if [ $rc -ne 0 ] && [ $failed -eq $n_before ]; then
    failed=$((failed + 1)); failures+=("$build/h2 (run.sh exit $rc)")
    echo "FAIL $build/h2 (run.sh exit $rc)"
  fi
  [ $failed -eq $n_before ] || tail -n 60 "$out" | sed 's/^/    /'
  rm -f "$out"

  # Each interop case counts on its own.
  out=$(mktemp)
  timeout 600 tests/interop/run.sh "$build" >"$out" 2>&1
  rc=$?
  while read -r verdict _ dir case rest; do
    case "$verdict" in
      PASS) passed=$((passed + 1)); echo "PASS $build/interop/$dir/$case" ;;
      FAIL) failed=$((failed + 1)); failures+=("$build/interop/$dir/$case $rest")
            echo "FAIL $build/interop/$dir/$case $rest" ;;
    esac
  done < <(grep -E '^(PASS|FAIL) interop ' "$out")
  while read -r line; do
    skipped=$((skipped + 1)); echo "$line"
  done < <(grep -E '^SKIP interop ' "$out")
  if [ $rc -ne 0 ] && ! grep -q '^FAIL interop ' "$out"; then
    failed=$((failed + 1)); failures+=("$build/interop (run.sh exit $rc)")
    echo "FAIL $build/interop (run.sh exit $rc)"; tail -n 40 "$out" | sed 's/^/    /'
  fi
  rm -f "$out"
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
