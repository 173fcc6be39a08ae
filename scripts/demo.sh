#!/usr/bin/env bash
# The demo: starts a libminirpc server and drives it with the libminirpc
# client through all four RPC patterns (unary, server streaming, client
# streaming, bidirectional), plus metadata, status codes, cancellation and
# deadlines.  Uses the gRPC interop service until the example apps land.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
port=${DEMO_PORT:-50051}
"$BUILD/bin/interop_server" --port="$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
echo "== libminirpc client -> libminirpc server on 127.0.0.1:$port"
timeout 120 "$BUILD/bin/interop_client" --server_host=127.0.0.1 \
  --server_port="$port" --test_case=all
echo "== demo done: every pattern worked"
