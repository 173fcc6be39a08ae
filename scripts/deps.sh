#!/usr/bin/env bash
# Installs what building and testing libminirpc needs on Debian 12.
# Only missing packages are installed (and apt-get update only runs then), so
# this is quick when everything is already there.  Uses apt-get directly as
# root, sudo otherwise.
set -euo pipefail

PACKAGES=(
    build-essential make pkg-config
    libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
    protobuf-compiler protobuf-compiler-grpc
    libssl-dev libcmocka-dev zlib1g-dev libprotoc-dev libprotobuf-dev
    libsqlite3-dev sqlite3
    python3 python3-grpcio python3-protobuf python3-h2 python3-hyperframe
    nghttp2-client ca-certificates openssl procps
    # Interop peers in Go and C++ (tests/interop/go, tests/interop/cpp).
    golang-go golang-google-grpc-dev golang-goprotobuf-dev protoc-gen-go-1-3
    libgrpc++-dev libprotobuf-dev
    # nginx in front of our servers (grpc_pass; tests/nginx/run.sh).
    nginx-light
)

installed() {
    # "ii" = wanted and installed (any architecture instance will do).
    dpkg-query -W -f='${db:Status-Abbrev}\n' "$1" 2>/dev/null | grep -q '^ii'
}

missing=()
if command -v dpkg-query >/dev/null; then
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
else
    missing=("${PACKAGES[@]}")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

give_up() {
    echo "deps: $1" >&2
    echo "deps: please install these packages (Debian 12):" >&2
    echo "  ${missing[*]}" >&2
    exit 1
}

command -v apt-get >/dev/null || give_up "apt-get not found"

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    # sudo resets the environment, so pass the frontend setting through env.
    as_root=(sudo)
else
    give_up "not root and sudo is not available"
fi

echo "deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    give_up "apt-get update failed"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    give_up "apt-get install failed"
