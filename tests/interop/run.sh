#!/usr/bin/env bash
# Interop tests: libminirpc's interop programs against grpcio's, both ways.
#
#   tests/interop/run.sh BUILD_DIR        (e.g. build, build-asan)
#
#   py-client/c-server: tests/interop/py_client.py vs BUILD_DIR/bin/interop_server
#   py-client/c-server-blocking: the same, server on blocking handlers only
#   py-client/c-server-keepalive: a quiet stream under the server's PINGs
#   c-client/py-server: BUILD_DIR/bin/interop_client vs tests/interop/py_server.py
#   go-client/c-server, c-client/go-server: the same with the grpc-go peers
#       of tests/interop/go/ (Debian's golang-google-grpc-dev)
#   cpp-client/c-server, c-client/cpp-server: the same with the grpc++ peers
#       of tests/interop/cpp/ (Debian's libgrpc++-dev)
#
# The Go and C++ peers are built on first use into PEERS_DIR (see below),
# without sanitizers, and rebuilt only when their sources, test.proto or the
# toolchain change.  Without a Go or C++ toolchain their directions print
# "SKIP interop <direction>: reason" (scripts/deps.sh installs both).
#
# With INTEROP_SELFTEST=1 only the peers are run against each other
# (py-client/py-server, go-client/go-server, cpp-client/cpp-server), which
# checks them on their own; no C programs needed.
#
# Each direction runs the cases CASES lists, plus the compression cases where
# both of its ends implement them (see below).
#
# Prints "PASS interop <direction> <case>" / "FAIL interop <direction> <case>"
# per case and exits non-zero if anything failed.  Logs of the last run are
# kept in BUILD_DIR/interop-logs/.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/interop
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
GEN=$BUILD_DIR/gen/py
LOGS=$BUILD_DIR/interop-logs
# The Go and C++ peers are not under test and carry no sanitizer, so build/
# and build-asan/ (any build directory beside the sources) share one copy in
# build/; INTEROP_PEERS_DIR overrides.
if [[ -n ${INTEROP_PEERS_DIR:-} ]]; then
    mkdir -p "$INTEROP_PEERS_DIR"
    PEERS_DIR=$(cd "$INTEROP_PEERS_DIR" && pwd)
elif [[ $(dirname "$BUILD_DIR") == "$ROOT" ]]; then
    PEERS_DIR=$ROOT/build/interop-peers
else
    PEERS_DIR=$BUILD_DIR/interop-peers
fi
# Debian's grpcio/protobuf modules are only visible to the system python.
PY=/usr/bin/python3

# The cases every direction runs.
CASES=(empty_unary large_unary client_streaming server_streaming ping_pong
       empty_stream custom_metadata status_code_and_message
       special_status_message unimplemented_method unimplemented_service
       cancel_after_begin cancel_after_first_response
       timeout_on_sleeping_server)
# The compression cases, only where both ends implement them:
# - CompressedRequest (client_compressed_*): the server must see each
#   request's compressed flag to refuse the uncompressed probe with
#   INVALID_ARGUMENT.  grpcio's servers can not (py_server.py), so these
#   run against interop_server only.
# - CompressedResponse (server_compressed_*): py_server.py implements it;
#   py_client.py can not see the responses' flags and checks the rest.
# - The Go and C++ peers run none of them: grpc-go 1.33 has no per-message
#   compression control and hides the flags, and grpc++ 1.51 shows them only
#   through internal test-only symbols.
CLIENT_COMPRESSION_CASES=(client_compressed_unary client_compressed_streaming)
SERVER_COMPRESSION_CASES=(server_compressed_unary server_compressed_streaming)
# Per kind of server, for clients that implement every case (C and Python).
C_SERVER_CASES=("${CASES[@]}" "${CLIENT_COMPRESSION_CASES[@]}"
                "${SERVER_COMPRESSION_CASES[@]}")
PY_SERVER_CASES=("${CASES[@]}" "${SERVER_COMPRESSION_CASES[@]}")

SERVER_LIFETIME=600   # s; upper bound even if this script is killed hard
CLIENT_ALL_TIMEOUT=300
CLIENT_ONE_TIMEOUT=60
STARTUP_TIMEOUT=20
PEER_BUILD_TIMEOUT=300  # s, per toolchain

failures=0
server_pids=()
TLS=0
SERVER_TLS_FLAGS=()
CLIENT_TLS_FLAGS=()
SERVER_EXTRA_FLAGS=()   # more interop_server flags for one direction

cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${server_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# reap PID: SIGTERM our server PID (timeout(1) passes it on, and SIGKILLs 5 s
# later if needed), wait for it, forget it so cleanup() never signals a
# recycled PID.  Sets reap_status.
reap() {
    local pid=$1 p keep=()
    kill -TERM "$pid" 2>/dev/null || true
    reap_status=0
    wait "$pid" 2>/dev/null || reap_status=$?
    for p in "${server_pids[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    server_pids=("${keep[@]}")
}

fail() {  # fail DIRECTION WHAT REASON
    echo "FAIL interop $1 $2: $3"
    failures=$((failures + 1))
}

show_log() {  # show_log TITLE FILE: indented tail, for diagnosis
    [[ -s $2 ]] || return 0
    echo "  --- $1 (last 40 lines of $2) ---"
    tail -n 40 "$2" | sed 's/^/  | /'
}

free_port() {
    timeout 10 "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_server KIND LOG: starts a server on a free port; sets server_pid and
# server_port.  Retries a few times in case another process grabbed the port
# between picking and binding.
start_server() {
    local kind=$1 log=$2
    for _ in 1 2 3; do
        server_port=$(free_port)
        case $kind in
        c|cb)
            # cb: the same server with every method on blocking handlers.
            local extra=()
            [[ $kind == cb ]] && extra=(--handlers=blocking)
            [[ $TLS == 1 ]] && extra+=("${SERVER_TLS_FLAGS[@]}")
            extra+=("${SERVER_EXTRA_FLAGS[@]}")
            timeout -k 5 "$SERVER_LIFETIME" \
                "$BUILD_DIR/bin/interop_server" --port="$server_port" \
                "${extra[@]}" >"$log" 2>&1 &
            server_pid=$!
            server_pids+=("$server_pid")
            # Ready once the port accepts a connection.
            # shellcheck disable=SC2016  # expanded by the inner bash
            if timeout "$STARTUP_TIMEOUT" bash -c '
                    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
                        kill -0 "$2" 2>/dev/null || exit 1
                        sleep 0.05
                    done' _ "$server_port" "$server_pid"; then
                return 0
            fi
            ;;
        py|go|cpp)
            local cmd
            case $kind in
            py)  cmd=(env PYTHONPATH="$GEN" "$PY" "$HERE/py_server.py") ;;
            go)  cmd=("$PEERS_DIR/bin/go-server") ;;
            cpp) cmd=("$PEERS_DIR/bin/cpp-server") ;;
            esac
            [[ $TLS == 1 ]] && cmd+=("${SERVER_TLS_FLAGS[@]}")
            timeout -k 5 "$SERVER_LIFETIME" \
                "${cmd[@]}" --port="$server_port" >"$log" 2>&1 &
            server_pid=$!
            server_pids+=("$server_pid")
            # Ready once it has announced itself.
            # shellcheck disable=SC2016  # expanded by the inner bash
            if timeout "$STARTUP_TIMEOUT" bash -c '
                    until grep -q "^listening on" "$1"; do
                        kill -0 "$2" 2>/dev/null || exit 1
                        sleep 0.05
                    done' _ "$log" "$server_pid"; then
                return 0
            fi
            ;;
        esac
        # Only a server that died (port taken?) is worth another try.
        if kill -0 "$server_pid" 2>/dev/null; then
            reap "$server_pid"
            return 1
        fi
        reap "$server_pid"
    done
    return 1
}

# stop_server DIRECTION LOG: SIGTERM the current server; a server that had
# already died, or that exits uncleanly (e.g. a sanitizer report at exit),
# counts as a failure.
stop_server() {
    local dir=$1 log=$2 rc alive=1
    kill -0 "$server_pid" 2>/dev/null || alive=0
    reap "$server_pid"
    rc=$reap_status
    if [[ $alive -eq 0 ]]; then
        fail "$dir" server "died during the run (status $rc)"
        show_log "server log" "$log"
    elif [[ $rc -ne 0 && $rc -ne 143 ]]; then
        fail "$dir" server "exited with status $rc on SIGTERM"
        show_log "server log" "$log"
    elif grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
        fail "$dir" server "sanitizer report in server log"
        show_log "server log" "$log"
    fi
}

# run_client KIND PORT CASES: runs the client for one case name, a
# comma-separated list of them (C and Python clients only) or "all".
run_client() {
    local kind=$1 port=$2 test_case=$3 limit=$CLIENT_ONE_TIMEOUT
    [[ $test_case == all || $test_case == *,* ]] && limit=$CLIENT_ALL_TIMEOUT
    local tls=()
    [[ $TLS == 1 ]] && tls=("${CLIENT_TLS_FLAGS[@]}")
    case $kind in
    c)
        timeout -k 5 "$limit" "$BUILD_DIR/bin/interop_client" \
            --server_host=127.0.0.1 --server_port="$port" \
            --test_case="$test_case" "${tls[@]}"
        ;;
    py)
        timeout -k 5 "$limit" env PYTHONPATH="$GEN" "$PY" \
            "$HERE/py_client.py" --server_host=127.0.0.1 \
            --server_port="$port" --test_case="$test_case" "${tls[@]}"
        ;;
    go|cpp)
        timeout -k 5 "$limit" "$PEERS_DIR/bin/$kind-client" \
            --server_host=127.0.0.1 --server_port="$port" \
            --test_case="$test_case"
        ;;
    esac
}

# run_direction DIRECTION CLIENT_KIND SERVER_KIND [CASE...]: the cases
# (default: CASES) in one client run, then any it did not report on one by
# one.
run_direction() {
    local dir=$1 client=$2 server=$3 tag=${1//\//-}
    local slog=$LOGS/$tag.server.log clog=$LOGS/$tag.client.log
    local rc=0 name line missing=() list
    local -A result=()
    local cases=("${@:4}")
    [[ ${#cases[@]} -gt 0 ]] || cases=("${CASES[@]}")
    # The Go and C++ clients take one name or "all" (which is CASES).
    case $client in
    go|cpp) list=all ;;
    *)      list=$(IFS=,; echo "${cases[*]}") ;;
    esac

    if ! start_server "$server" "$slog"; then
        fail "$dir" server "did not start listening within ${STARTUP_TIMEOUT}s"
        show_log "server log" "$slog"
        return 0
    fi

    run_client "$client" "$server_port" "$list" >"$clog" 2>&1 || rc=$?

    # Per-case verdicts from "PASS name" / "FAIL name: reason" lines.
    while IFS= read -r line; do
        if [[ $line =~ ^(PASS|FAIL)[[:space:]:]+([a-z_]+) ]]; then
            result[${BASH_REMATCH[2]}]=${BASH_REMATCH[1]}
        fi
    done <"$clog"

    # Cases the "all" run did not report on (crash, hang, other output
    # format): run them one by one and go by the exit status.
    for name in "${cases[@]}"; do
        [[ -n ${result[$name]:-} ]] || missing+=("$name")
    done
    for name in "${missing[@]}"; do
        kill -0 "$server_pid" 2>/dev/null || break
        if run_client "$client" "$server_port" "$name" \
                >>"$LOGS/$tag.$name.log" 2>&1; then
            result[$name]=PASS
        fi
    done

    local case_failures=0
    for name in "${cases[@]}"; do
        if [[ ${result[$name]:-} == PASS ]]; then
            echo "PASS interop $dir $name"
        else
            local reason="no result"
            line=$(grep -m1 -E "^FAIL[[:space:]:]+${name}\\b" "$clog" || true)
            if [[ $line =~ ^FAIL[[:space:]:]+${name}[[:space:]:]*(.*)$ ]]; then
                reason=${BASH_REMATCH[1]:-failed}
            fi
            if [[ -s $LOGS/$tag.$name.log ]]; then
                reason="$reason (see $LOGS/$tag.$name.log)"
            fi
            fail "$dir" "$name" "$reason"
            case_failures=$((case_failures + 1))
        fi
    done
    if [[ $rc -ne 0 && $case_failures -eq 0 ]]; then
        # Every case passed, yet the "all" run failed (crash part-way, or a
        # sanitizer report at exit).
        fail "$dir" client "--test_case=all exited with status $rc"
    fi
    # The raw output only adds something when the verdicts above don't
    # explain the failure.
    if [[ $rc -ne 0 && ($case_failures -eq 0 || ${#missing[@]} -ne 0) ]]; then
        show_log "client output" "$clog"
    fi
    stop_server "$dir" "$slog"
}

# --- the Go and C++ peers ---------------------------------------------------
# Each kind is built once into PEERS_DIR and reused while its stamp (a hash of
# its sources, test.proto, this recipe and the toolchain's versions) is
# unchanged.  build_peer KIND sets peer_skip (toolchain missing: the
# directions are skipped) or peer_error (the build failed: the directions
# fail), else leaves both empty.

pkg_versions() {  # pkg_versions PKG...: "name=version" lines, for the stamps
    command -v dpkg-query >/dev/null || return 0
    dpkg-query -W -f='${Package}=${Version}\n' "$@" 2>/dev/null || true
}

# peer_stamp FILE...: hashes the files and the toolchain description on stdin.
peer_stamp() {
    { cat; sha256sum "$@" | sed "s|  $ROOT/|  |"; } | sha256sum | cut -d' ' -f1
}

peer_cmd() {  # peer_cmd CMD...: one build step, bounded in time
    timeout -k 5 "$PEER_BUILD_TIMEOUT" "$@"
}

GO_IMPORT=minirpc.test/grpc_testing  # the generated package's import path

go_missing() {  # prints why the Go peers cannot be built, if so
    local gocode=/usr/share/gocode/src
    if ! command -v go >/dev/null; then
        echo "go not found (golang-go)"
    elif ! command -v protoc-gen-go >/dev/null; then
        echo "protoc-gen-go not found (golang-goprotobuf-dev)"
    elif [[ ! -d $gocode/google.golang.org/grpc ]]; then
        echo "$gocode/google.golang.org/grpc not found (golang-google-grpc-dev)"
    elif [[ ! -d $gocode/github.com/golang/protobuf/proto ]]; then
        echo "$gocode/github.com/golang/protobuf not found" \
             "(golang-goprotobuf-dev)"
    fi
}

go_stamp() {
    { echo "go recipe 1"; go version; protoc --version
      pkg_versions golang-go protoc-gen-go-1-3 golang-goprotobuf-dev \
          golang-google-grpc-dev golang-github-golang-protobuf-1-3-dev
    } | peer_stamp "$HERE/go/client/client.go" "$HERE/go/server/server.go" \
                   "$HERE/test.proto"
}

# Debian's grpc-go 1.33 is built in GOPATH mode: no modules, no network.
go_env() {
    peer_cmd env GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off CGO_ENABLED=0 \
        GOPATH="$PEERS_DIR/go/gopath:/usr/share/gocode" \
        GOCACHE="$PEERS_DIR/go/cache" "$@"
}

go_build() {
    local pkg=$PEERS_DIR/go/gopath/src/$GO_IMPORT
    rm -rf "$PEERS_DIR/go/gopath"
    mkdir -p "$pkg"
    # protoc-gen-go 1.3 generates the gRPC stubs too (plugins=grpc).
    peer_cmd protoc -I"$HERE" \
        --go_out="plugins=grpc,Mtest.proto=$GO_IMPORT:$pkg" \
        "$HERE/test.proto" &&
    (cd "$HERE/go/client" && go_env go build -o "$PEERS_DIR/bin/go-client" .) &&
    (cd "$HERE/go/server" && go_env go build -o "$PEERS_DIR/bin/go-server" .)
}

cpp_missing() {  # prints why the C++ peers cannot be built, if so
    if ! command -v g++ >/dev/null; then
        echo "g++ not found (g++)"
    elif ! command -v pkg-config >/dev/null; then
        echo "pkg-config not found (pkg-config)"
    elif ! pkg-config --exists grpc++ protobuf; then
        echo "pkg-config finds no grpc++/protobuf" \
             "(libgrpc++-dev libprotobuf-dev)"
    elif [[ ! -x /usr/bin/grpc_cpp_plugin ]]; then
        echo "/usr/bin/grpc_cpp_plugin not found (protobuf-compiler-grpc)"
    fi
}

cpp_stamp() {
    { echo "cpp recipe 1"; g++ -dumpfullversion -dumpversion; protoc --version
      pkg-config --modversion grpc++ protobuf
      pkg_versions libgrpc++-dev libgrpc-dev libprotobuf-dev \
          protobuf-compiler-grpc
    } | peer_stamp "$HERE/cpp/client.cc" "$HERE/cpp/server.cc" \
                   "$HERE/test.proto"
}

cpp_build() {
    local gen=$PEERS_DIR/cpp/gen obj=$PEERS_DIR/cpp/obj
    local cflags libs src side pid pids=() ok=1
    rm -rf "$gen" "$obj"
    mkdir -p "$gen" "$obj"
    cflags=$(pkg-config --cflags grpc++ protobuf) &&
    libs=$(pkg-config --libs grpc++ protobuf) &&
    peer_cmd protoc -I"$HERE" --cpp_out="$gen" --grpc_out="$gen" \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin \
        "$HERE/test.proto" || return 1
    # The four translation units at once: compiling is the slow part.
    for src in "$gen/test.pb.cc" "$gen/test.grpc.pb.cc" \
               "$HERE/cpp/client.cc" "$HERE/cpp/server.cc"; do
        # shellcheck disable=SC2086  # pkg-config output is a word list
        peer_cmd g++ -std=c++17 -O1 -Wall -I"$gen" $cflags -c "$src" \
            -o "$obj/$(basename "$src" .cc).o" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || ok=0
    done
    [[ $ok -eq 1 ]] || return 1
    for side in client server; do
        # shellcheck disable=SC2086
        peer_cmd g++ -o "$PEERS_DIR/bin/cpp-$side" "$obj/$side.o" \
            "$obj/test.pb.o" "$obj/test.grpc.pb.o" $libs || return 1
    done
    rm -rf "$obj"
}

# build_peer_locked KIND: (re)builds KIND's peers unless their stamp matches.
build_peer_locked() {
    local kind=$1 dir=$PEERS_DIR/$1 stamp
    stamp=$("${kind}_stamp")
    if [[ -x $PEERS_DIR/bin/$kind-client && -x $PEERS_DIR/bin/$kind-server &&
          $(cat "$dir/stamp" 2>/dev/null) == "$stamp" ]]; then
        return 0
    fi
    echo "interop: building the $kind peers into $PEERS_DIR"
    rm -f "$dir/stamp" "$PEERS_DIR/bin/$kind-client" \
          "$PEERS_DIR/bin/$kind-server"
    mkdir -p "$dir" "$PEERS_DIR/bin"
    "${kind}_build" >"$dir/build.log" 2>&1 || return 1
    echo "$stamp" >"$dir/stamp"
}

build_peer() {  # build_peer KIND (go or cpp)
    local kind=$1
    peer_error=
    peer_skip=$("${kind}_missing")
    [[ -z $peer_skip ]] || return 0
    mkdir -p "$PEERS_DIR"
    # The lock keeps two runs sharing PEERS_DIR from building at once.
    if ! (
        if command -v flock >/dev/null; then
            flock -w "$PEER_BUILD_TIMEOUT" 9 || exit 1
        fi
        build_peer_locked "$kind"
    ) 9>"$PEERS_DIR/.lock"; then
        peer_error="building the $kind peers failed"
        peer_error+=" (log: $PEERS_DIR/$kind/build.log)"
        show_log "$kind peers build log" "$PEERS_DIR/$kind/build.log"
    fi
}

skip() {  # skip DIRECTION REASON
    echo "SKIP interop $1: $2"
}

# peer_directions KIND: KIND's client against our server, and our client
# against KIND's server.
peer_directions() {
    local kind=$1
    local cdir=$kind-client/c-server sdir=c-client/$kind-server
    build_peer "$kind"
    if [[ -n $peer_skip ]]; then
        skip "$cdir" "$peer_skip"
        skip "$sdir" "$peer_skip"
        return 0
    fi
    if [[ -n $peer_error ]]; then
        fail "$cdir" all "$peer_error"
        fail "$sdir" all "$peer_error"
        return 0
    fi
    # CASES only: no compression cases with these peers (see CASES).
    if [[ -x $BUILD_DIR/bin/interop_server ]]; then
        run_direction "$cdir" "$kind" c
    else
        fail "$cdir" all \
             "$BUILD_DIR/bin/interop_server is missing (build it with make)"
    fi
    if [[ -x $BUILD_DIR/bin/interop_client ]]; then
        run_direction "$sdir" c "$kind"
    else
        fail "$sdir" all \
             "$BUILD_DIR/bin/interop_client is missing (build it with make)"
    fi
}

# peer_selftest KIND: KIND's client against KIND's server.
peer_selftest() {
    local kind=$1 dir=$1-client/$1-server
    build_peer "$kind"
    if [[ -n $peer_skip ]]; then
        skip "$dir" "$peer_skip"
    elif [[ -n $peer_error ]]; then
        fail "$dir" all "$peer_error"
    else
        run_direction "$dir" "$kind" "$kind"
    fi
}

# --- setup ------------------------------------------------------------------
if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
    echo "FAIL interop: $PY cannot import grpc/google.protobuf" \
         "(install python3-grpcio python3-protobuf: scripts/deps.sh)"
    exit 1
fi
for tool in protoc /usr/bin/grpc_python_plugin; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL interop: $tool not found (scripts/deps.sh installs it)"
        exit 1
    fi
done
rm -rf "$LOGS" "$GEN"
mkdir -p "$LOGS" "$GEN"
timeout 60 protoc -I"$HERE" --python_out="$GEN" --grpc_out="$GEN" \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$HERE/test.proto"

# --- the runs ---------------------------------------------------------------
if [[ ${INTEROP_SELFTEST:-0} == 1 ]]; then
    # py_server.py can not refuse the client_compressed_* probes.
    run_direction py-client/py-server py py "${PY_SERVER_CASES[@]}"
    peer_selftest go
    peer_selftest cpp
else
    if [[ -x $BUILD_DIR/bin/interop_server ]]; then
        run_direction py-client/c-server py c "${C_SERVER_CASES[@]}"
        run_direction py-client/c-server-blocking py cb "${C_SERVER_CASES[@]}"
        # Our server's keepalive PINGs (1 s, 0.5 s to answer) during a
        # quiet stream: grpcio must answer them, or the call is cut.
        SERVER_EXTRA_FLAGS=(--keepalive_time_ms=1000 --keepalive_timeout_ms=500)
        run_direction py-client/c-server-keepalive py c quiet_stream
        SERVER_EXTRA_FLAGS=()
    else
        fail py-client/c-server all \
             "$BUILD_DIR/bin/interop_server is missing (build it with make)"
    fi
    if [[ -x $BUILD_DIR/bin/interop_client ]]; then
        run_direction c-client/py-server c py "${PY_SERVER_CASES[@]}"
    else
        fail c-client/py-server all \
             "$BUILD_DIR/bin/interop_client is missing (build it with make)"
    fi
    peer_directions go
    peer_directions cpp
    # The same cases over TLS with ALPN h2, certificates made here with the
    # openssl command (the interop tests' usual server name).
    CERTS=$BUILD_DIR/interop-certs
    if timeout 60 "$ROOT/tests/tls/make-certs.sh" "$CERTS" >"$LOGS/certs.log" 2>&1
    then
        SERVER_TLS_FLAGS=(--use_tls=true --tls_cert_file="$CERTS/server1.pem"
                          --tls_key_file="$CERTS/server1.key")
        CLIENT_TLS_FLAGS=(--use_tls=true --use_test_ca=true
                          --test_ca_file="$CERTS/ca.pem"
                          --server_host_override=foo.test.google.fr)
        TLS=1
        [[ -x $BUILD_DIR/bin/interop_server ]] &&
            run_direction py-client/c-server-tls py c "${C_SERVER_CASES[@]}"
        [[ -x $BUILD_DIR/bin/interop_client ]] &&
            run_direction c-client/py-server-tls c py "${PY_SERVER_CASES[@]}"
        TLS=0
    else
        fail tls certificates "tests/tls/make-certs.sh failed"
        show_log "make-certs" "$LOGS/certs.log"
    fi
fi

if [[ $failures -ne 0 ]]; then
    echo "interop ($BUILD_DIR): $failures failure(s)"
    exit 1
fi
echo "interop ($BUILD_DIR): all passed"
