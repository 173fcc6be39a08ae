#!/usr/bin/env bash
# Installs the library into a scratch prefix and builds a program against it
# the way a user would: headers, minirpc.pc, then links shared and static.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install BUILD="${1:-build}" PREFIX="$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
protoc-c --c_out="$tmp" -Itests/install tests/install/ping.proto
src=(tests/install/consumer.c "$tmp/ping.pb-c.c")
cc -Wall -Wextra -Werror -I"$tmp" "${src[@]}" -o "$tmp/shared" \
  $(pkg-config --cflags --libs minirpc) -Wl,-rpath,"$tmp/prefix/lib"
cc -Wall -Wextra -Werror -I"$tmp" "${src[@]}" -o "$tmp/static" \
  $(pkg-config --cflags minirpc) "$tmp/prefix/lib/libminirpc.a" \
  $(pkg-config --libs --static minirpc | sed 's/-lminirpc//')
ldd "$tmp/shared" | grep -q "$tmp/prefix/lib/libminirpc.so.0"
timeout 30 "$tmp/shared"
timeout 30 "$tmp/static"
