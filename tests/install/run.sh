#!/usr/bin/env bash
# Installs the library into a scratch prefix and builds a program against it
# the way a user would: the installed plugin generates the stubs, then the
# headers and minirpc.pc build it, linked shared and static.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install BUILD="${1:-build}" PREFIX="$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
# The installed plugin, beside protoc-c's output.
protoc --c_out="$tmp" --minirpc_out="$tmp" \
  --plugin=protoc-gen-minirpc="$tmp/prefix/bin/protoc-gen-minirpc" \
  -Itests/install tests/install/ping.proto
src=(tests/install/consumer.c "$tmp/ping.pb-c.c" "$tmp/ping.mrpc.c")
cc -Wall -Wextra -Werror -I"$tmp" "${src[@]}" -o "$tmp/shared" \
  $(pkg-config --cflags --libs minirpc) -Wl,-rpath,"$tmp/prefix/lib"
cc -Wall -Wextra -Werror -I"$tmp" "${src[@]}" -o "$tmp/static" \
  $(pkg-config --cflags minirpc) "$tmp/prefix/lib/libminirpc.a" \
  $(pkg-config --libs --static minirpc | sed 's/-lminirpc//')
ldd "$tmp/shared" | grep -q "$tmp/prefix/lib/libminirpc.so.0"
# The static archive defines the public API and nothing else global: no
# internals, no generated health / reflection messages to clash with a
# program's own copies.
others=$(nm -g --defined-only "$tmp/prefix/lib/libminirpc.a" |
  awk 'NF == 3 && $3 !~ /^mrpc_[a-z]/ {print $3}')
if [[ -n $others ]]; then
  echo "libminirpc.a exports more than mrpc_*:" $others >&2
  exit 1
fi
nm -g --defined-only "$tmp/prefix/lib/libminirpc.a" | grep -q ' T mrpc_server_new$'
timeout 30 "$tmp/shared"
timeout 30 "$tmp/static"
