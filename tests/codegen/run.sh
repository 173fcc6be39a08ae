#!/usr/bin/env bash
# protoc-gen-minirpc's tests.
#
#   tests/codegen/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Uses BUILD_DIR/bin/protoc-gen-minirpc and BUILD_DIR/lib/libminirpc.a (run
# `make` first) and works in BUILD_DIR/codegen-test/:
#   generate   protoc --c_out --minirpc_out on tests/codegen/proto/**.proto
#              and on the files they import from /usr/include (well-known
#              types, protobuf-c.proto and descriptor.proto)
#   golden     each NAME.mrpc.{h,c} of tests/codegen/proto equals
#              tests/codegen/golden/NAME.mrpc.{h,c} (UPDATE_GOLDEN=1 rewrites
#              the golden files instead)
#   compile    every generated file, protoc-c's too, with -std=c11 -Wall
#              -Wextra -Werror (plus sanitizers when the plugin has them);
#              the headers also as C++ when a C++ compiler is there
#   check.c    links all of it: tables, embedded descriptors, every symbol,
#              and calls of every kind through a server on 127.0.0.1 (its
#              own PASS/FAIL lines)
#   reject     each tests/codegen/bad/*.proto (and an unknown option) makes
#              protoc fail with the plugin's message, writing nothing
#
# Prints "PASS codegen <name>" / "FAIL codegen <name>: why" and exits
# non-zero if anything failed.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/codegen
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "FAIL codegen setup: no directory $1"; exit 1; }
PLUGIN=$BUILD/bin/protoc-gen-minirpc
LIB=$BUILD/lib/libminirpc.a
OUT=$BUILD/codegen-test
WKT=${MRPC_WKT_DIR:-/usr/include}
PROTOC=${PROTOC:-protoc}
CC=${CC:-cc}
CXX=${CXX:-c++}
# The imports from outside tests/codegen/proto, generated like the rest.
WKT_PROTOS=(google/protobuf/empty.proto google/protobuf/timestamp.proto
            google/protobuf/descriptor.proto protobuf-c/protobuf-c.proto)

# Sanitizer reports fail the run (tests/run.sh sets the same).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}

failures=0
pass() { echo "PASS codegen $1"; }
fail() {
    echo "FAIL codegen $1: $2"
    failures=$((failures + 1))
}
# The last lines of a log, indented, after a FAIL.
show() { tail -n "${2:-20}" "$1" | sed 's/^/    /'; }

for need in "$PLUGIN" "$LIB"; do
    if [[ ! -e $need ]]; then
        fail setup "$need is missing: run make (BUILD=$1) first"
        exit 1
    fi
done

rm -rf "$OUT"
mkdir -p "$OUT/gen" "$OUT/obj"
cd "$HERE/proto" || exit 1
mapfile -t PROTOS < <(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
cd "$ROOT" || exit 1

# ---- generate ----------------------------------------------------------
gen() { # out_dir log protoc-args...
    local out=$1 log=$2
    shift 2
    "$PROTOC" --plugin=protoc-gen-minirpc="$PLUGIN" "$@" >"$log" 2>&1
}
if gen "$OUT/gen" "$OUT/generate.log" -I"$HERE/proto" -I"$WKT" \
        --c_out="$OUT/gen" --minirpc_out="$OUT/gen" \
        "${PROTOS[@]/#/$HERE/proto/}" &&
   gen "$OUT/gen" "$OUT/generate-wkt.log" -I"$WKT" \
        --c_out="$OUT/gen" --minirpc_out="$OUT/gen" \
        "${WKT_PROTOS[@]/#/$WKT/}"; then
    pass generate
else
    fail generate "protoc failed"
    show "$OUT/generate.log"
    [[ -s $OUT/generate-wkt.log ]] && show "$OUT/generate-wkt.log"
    exit 1
fi

# ---- golden ------------------------------------------------------------
golden_ok=1
for p in "${PROTOS[@]}"; do
    for ext in mrpc.h mrpc.c; do
        f=${p%.proto}.$ext
        if [[ ${UPDATE_GOLDEN:-0} == 1 ]]; then
            mkdir -p "$(dirname "$HERE/golden/$f")"
            cp "$OUT/gen/$f" "$HERE/golden/$f"
        elif [[ ! -f $HERE/golden/$f ]]; then
            fail "golden $f" "no tests/codegen/golden/$f (UPDATE_GOLDEN=1 makes it)"
            golden_ok=0
        elif ! diff -u "$HERE/golden/$f" "$OUT/gen/$f" >"$OUT/golden.diff"; then
            fail "golden $f" "differs from tests/codegen/golden/$f (UPDATE_GOLDEN=1 rewrites it)"
            show "$OUT/golden.diff" 40
            golden_ok=0
        fi
    done
done
# Golden files of protos that are gone.
while IFS= read -r g; do
    rel=${g#"$HERE/golden/"}
    base=${rel%.mrpc.[hc]}
    if [[ ! -f $HERE/proto/$base.proto ]]; then
        if [[ ${UPDATE_GOLDEN:-0} == 1 ]]; then
            rm -f "$g"
        else
            fail "golden $rel" "stale: tests/codegen/proto/$base.proto is gone"
            golden_ok=0
        fi
    fi
done < <(find "$HERE/golden" -name '*.mrpc.[hc]' 2>/dev/null | LC_ALL=C sort)
if [[ ${UPDATE_GOLDEN:-0} == 1 ]]; then
    pass "golden (rewritten)"
elif [[ $golden_ok == 1 ]]; then
    pass golden
fi

# ---- compile -----------------------------------------------------------
# Sanitized like the plugin (and libminirpc.a) of this build directory.
SAN=()
if grep -q __asan_init < <(nm "$PLUGIN" 2>/dev/null); then
    SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer
         -fno-sanitize-recover=all)
fi
CFLAGS=(-std=c11 -Wall -Wextra -Werror -g -O1 "${SAN[@]}" -I"$OUT/gen"
        -I"$ROOT/include" $(pkg-config --cflags libprotobuf-c 2>/dev/null))
# libminirpc's own dependencies, as its .pc lists them.
LIBS=$(PKG_CONFIG_PATH=$BUILD pkg-config --static --libs-only-l minirpc \
       2>/dev/null | sed 's/-lminirpc//')
[[ -n $LIBS ]] || LIBS="-lnghttp2 -lprotobuf-c -lz -lpthread"

compile_ok=1
objs=()
while IFS= read -r c; do
    rel=${c#"$OUT/gen/"}
    o=$OUT/obj/${rel%.c}.o
    mkdir -p "$(dirname "$o")"
    if ! "$CC" "${CFLAGS[@]}" -c "$c" -o "$o" >"$OUT/compile.log" 2>&1; then
        fail "compile $rel" "warnings or errors"
        show "$OUT/compile.log"
        compile_ok=0
    fi
    objs+=("$o")
done < <(find "$OUT/gen" -name '*.c' | LC_ALL=C sort)
if [[ $compile_ok == 1 ]] &&
   ! "$CC" "${CFLAGS[@]}" -c "$HERE/check.c" -o "$OUT/obj/check.o" \
       >"$OUT/compile.log" 2>&1; then
    fail "compile check.c" "warnings or errors"
    show "$OUT/compile.log"
    compile_ok=0
fi
if [[ $compile_ok == 1 ]] &&
   ! "$CC" "${SAN[@]}" "$OUT/obj/check.o" "${objs[@]}" "$LIB" $LIBS \
       -o "$OUT/check" >"$OUT/link.log" 2>&1; then
    fail link "check.c and the generated objects do not link"
    show "$OUT/link.log"
    compile_ok=0
fi
[[ $compile_ok == 1 ]] && pass compile

# The headers in C++ (extern "C", no C-only constructs in the inlines).
if command -v "$CXX" >/dev/null 2>&1; then
    {
        for p in "${PROTOS[@]}" "${WKT_PROTOS[@]}"; do
            echo "#include \"${p%.proto}.mrpc.h\""
        done
        echo "int main() { return 0; }"
    } >"$OUT/headers.cc"
    if "$CXX" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$OUT/gen" \
           -I"$ROOT/include" "$OUT/headers.cc" >"$OUT/cxx.log" 2>&1; then
        pass "headers-c++"
    else
        fail "headers-c++" "the generated headers do not compile as C++"
        show "$OUT/cxx.log"
    fi
fi

# ---- run check.c -------------------------------------------------------
if [[ $compile_ok == 1 ]]; then
    timeout 120 "$OUT/check" >"$OUT/check.log" 2>&1
    rc=$?
    grep -E '^(PASS|FAIL) codegen ' "$OUT/check.log"
    n_fail=$(grep -c '^FAIL codegen ' "$OUT/check.log")
    failures=$((failures + n_fail))
    if [[ $rc -ne 0 && $n_fail -eq 0 ]]; then
        fail check "exit status $rc"
        show "$OUT/check.log"
    elif [[ $n_fail -ne 0 ]]; then
        show "$OUT/check.log"
    fi
fi

# ---- reject ------------------------------------------------------------
# name | protoc arguments after the file | the message protoc must print
REJECT=(
    "collide.proto||method bad.S.GetFoo and method bad.S.get_foo both make"
    "keyword.proto||its C name 'return' is a C keyword"
    "blocking.proto||both make the handler-table member 'get_blocking'"
    "reserved.proto||both make the C name 'bad__s__mrpc_register'"
    "services.proto||method bad.A.b__c and method bad.A__b.c both make"
    "nogen.proto||the file has option (pb_c_file).no_generate"
    "1digit.proto||would start with a digit"
    "fileclash-x.proto||both make the C name 'fileclash_x__mrpc_"
    "collide.proto|--minirpc_opt=color|unknown option 'color'"
)
for entry in "${REJECT[@]}"; do
    IFS='|' read -r file extra want <<<"$entry"
    name=${file%.proto}
    [[ -n $extra ]] && name="option"
    out=$OUT/reject/$name
    mkdir -p "$out"
    args=(-I"$HERE/bad" -I"$WKT" --minirpc_out="$out")
    [[ -n $extra ]] && args+=("$extra")
    if gen "$out" "$out.log" "${args[@]}" "$HERE/bad/$file"; then
        fail "reject $name" "protoc succeeded"
    elif grep -qE 'Sanitizer|runtime error' "$out.log"; then
        fail "reject $name" "the plugin failed under the sanitizers"
        show "$out.log"
    elif ! grep -qF -- "$want" "$out.log"; then
        fail "reject $name" "protoc did not print \"$want\""
        show "$out.log"
    elif [[ -n $(find "$out" -type f) ]]; then
        fail "reject $name" "files were written"
    else
        pass "reject $name"
    fi
done
if [[ $failures -ne 0 ]]; then
    echo "codegen: $failures failure(s); logs in $OUT" >&2
    exit 1
fi
exit 0
