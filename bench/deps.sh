#!/usr/bin/env bash
# The bench's own dependencies (Debian 12), on top of scripts/deps.sh:
# grpc C++ for the comparison server and client, h2load for unary load,
# valgrind (callgrind) for instruction counts, strace for syscall counts,
# perf when the distribution has it (optional).  Installs only what is
# missing; quick when everything is there.
set -euo pipefail

REQUIRED=(build-essential pkg-config protobuf-c-compiler libprotobuf-c-dev
          libnghttp2-dev protobuf-compiler protobuf-compiler-grpc
          libgrpc++-dev libprotobuf-dev nghttp2-client valgrind strace
          python3 util-linux)
OPTIONAL=(linux-perf)

installed() {
    dpkg-query -W -f='${db:Status-Abbrev}\n' "$1" 2>/dev/null | grep -q '^ii'
}

if ! command -v dpkg-query >/dev/null; then
    echo "bench deps: not a Debian system; please install: ${REQUIRED[*]}" >&2
    exit 0
fi

missing=() optional=()
for p in "${REQUIRED[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || optional+=("$p"); done
if [[ ${#missing[@]} -eq 0 && ${#optional[@]} -eq 0 ]]; then
    echo "bench deps: all installed"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "bench deps: not root and no sudo; please install: ${missing[*]}" >&2
        exit 1
    fi
    exit 0
fi

apt() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
apt update -q || true
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "bench deps: installing ${missing[*]}"
    apt install -y -q --no-install-recommends "${missing[@]}" || {
        echo "bench deps: could not install: ${missing[*]}" >&2
        exit 1
    }
fi
# Optional ones one by one: a package the mirror lacks is not an error.
for p in "${optional[@]}"; do
    apt install -y -q --no-install-recommends "$p" >/dev/null 2>&1 ||
        echo "bench deps: optional $p not available (skipped)"
done
