#!/usr/bin/env bash
# nginx in front of libminirpc servers: Debian's nginx (package nginx-light,
# ngx_http_grpc_module's grpc_pass over h2c) balancing over several
# interop_server backends, our interop_client driving the standard cases
# through it.  The configuration is the one docs/deployment.md describes.
#
#   tests/nginx/run.sh BUILD_DIR        (e.g. build, build-asan)
#
# Started on free 127.0.0.1 ports, and nowhere else: BACKENDS
# BUILD_DIR/bin/interop_server, TLS_BACKENDS more with TLS, one
# BUILD_DIR/bin/user_server, and nginx in the foreground (-g 'daemon off;')
# with a configuration generated into this run's directory, which also
# holds its pid file, logs, temp paths and test certificates
# (tests/tls/make-certs.sh).  On nginx's h2c port, routing by gRPC path:
# /user.UserService/ to the user_server, everything else round-robin over
# the interop servers (upstream keepalive on).  On its TLS port (ALPN h2,
# the test certificate): everything over grpcs:// to the TLS servers.
#
# Cases ("PASS nginx <case>" / "FAIL nginx <case>: why"; exit status
# non-zero if any failed):
#   interop NAME      interop_client --test_case=NAME through nginx, each on
#                     its own connection: the 14 core cases (the four RPC
#                     patterns, metadata, status, cancellation, deadlines)
#                     and the four compression cases
#   interop all-on-one-channel  every case again, in one client run, on one
#                     connection to nginx
#   tls NAME, tls all-on-one-channel  the same over TLS to nginx, which
#                     passes the calls on over TLS (grpc_pass grpcs://,
#                     verifying the backends' certificate)
#   spread            nginx's access log ($upstream_addr): every interop
#                     backend, TLS ones too, served calls, so the calls were
#                     balanced (the counts follow on a "note:" line)
#   backend-gone      interop-1 stopped (SIGTERM, so "exit interop-1"
#                     comes here): every case still passes, nginx moving on
#                     to the next backend when the connection is refused
#   example user      user_client's six steps (unary, both streaming
#                     directions, bidirectional) through nginx
#   limit NAME        what a client sees at nginx's limits, with timeouts
#                     made short on a second listen port (docs/deployment.md):
#                     grpc_read_timeout cuts a server stream that pauses
#                     longer, client_body_timeout a client stream that does
#                     (both INTERNAL: nginx resets the stream); a call's
#                     messages over client_max_body_size are HTTP 413,
#                     UNKNOWN; no live backend is HTTP 502, UNAVAILABLE
#   error-log         nginx logged nothing at level error or worse (a
#                     protocol error of our server, as nginx sees it, would
#                     show there)
#   exit NAME         nginx and every server exit 0 on SIGTERM, servers with
#                     no sanitizer report
# Every interop case passes through nginx; one that could not would be
# listed here with the reason and not counted as passed.
#
# nginx missing is a failure, not a skip: scripts/deps.sh installs it.  As
# root, nginx's workers would switch to user nobody, who cannot write the
# run's directory: the generated configuration then says "user root;".
# Logs: BUILD_DIR/nginx-logs/run.XXXXXX, removed when every case passed,
# kept (and named) when not.  Every wait is bounded.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$1"
BUILD_DIR=$(cd "$1" && pwd)
BIN=$BUILD_DIR/bin
PY=/usr/bin/python3  # only for picking a free port, as tests/interop does

# Sanitizer reports must fail the run, as under tests/run.sh.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}
SAN_RE='ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer'

CASES=(empty_unary large_unary client_streaming server_streaming ping_pong
       empty_stream custom_metadata status_code_and_message
       special_status_message unimplemented_method unimplemented_service
       cancel_after_begin cancel_after_first_response
       timeout_on_sleeping_server
       client_compressed_unary server_compressed_unary
       client_compressed_streaming server_compressed_streaming)
BACKENDS=3
TLS_BACKENDS=2
AUTHORITY=foo.test.google.fr  # a name in the test server certificate
LIFETIME=600        # s; upper bound for every process, even if we are killed
KILL_AFTER=15       # s from SIGTERM to SIGKILL (timeout(1) sends it)
STARTUP_TIMEOUT=20  # s for a server or nginx to listen
CLIENT_TIMEOUT=120  # s for one client run

failures=0
pids=()  # timeout(1) wrappers still running

pass() { echo "PASS nginx $1"; }
fail() {  # fail CASE WHY...
    echo "FAIL nginx $1: ${*:2}"
    failures=$((failures + 1))
}
show() {  # show TITLE FILE: its last 30 lines, indented
    [[ -s $2 ]] || return 0
    echo "  --- $1 (last 30 lines of $2) ---"
    tail -n 30 "$2" | sed 's/^/  | /'
}

# ---- the run's directory, cleanup -------------------------------------------
mkdir -p "$BUILD_DIR/nginx-logs"
# Directories kept by failed runs go after an hour (no run lasts that long).
find "$BUILD_DIR/nginx-logs" -maxdepth 1 -name 'run.??????' -mmin +60 \
    -exec rm -rf {} + 2>/dev/null
RUN=$(mktemp -d "$BUILD_DIR/nginx-logs/run.XXXXXX")

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    # Bounded: each wrapper SIGKILLs its process group KILL_AFTER s later.
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [[ $failures -eq 0 ]]; then
        rm -rf "$RUN"
    else
        echo "nginx: logs kept in $RUN"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- processes ----------------------------------------------------------------
# spawn LOG CMD...: CMD in the background under timeout(1), stdout and stderr
# in LOG; sets spawned (the wrapper's pid).  The wrapper runs CMD in a
# process group of its own and signals the whole group: nginx's workers too.
spawn() {
    local log=$1
    shift
    timeout -k "$KILL_AFTER" "$LIFETIME" "$@" >"$log" 2>&1 &
    spawned=$!
    pids+=("$spawned")
}

forget() {  # forget PID: stopped, no longer signalled at exit
    local p keep=()
    for p in "${pids[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

# await PID CMD...: until CMD is true, for up to STARTUP_TIMEOUT s and only
# while PID runs.
await() {
    local pid=$1 i
    shift
    for ((i = 0; i < STARTUP_TIMEOUT * 20; i++)); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

port_in() {  # port_in LOG SED: prints the port SED finds in LOG, if any
    [[ -n $(sed -n -E "$2" "$1" 2>/dev/null | head -n1) ]]
}

port_open() {  # port_open PORT: a TCP connection to 127.0.0.1:PORT works
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_ports() {  # free_ports N: N distinct free ports, one a line
    timeout 10 "$PY" -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
for s in held:
    print(s.getsockname()[1])' "$1"
}

# start_server NAME LOG SED CMD...: a server that prints the port it got;
# sets server_pid and server_port, or fails case "exit NAME" and returns 1.
start_server() {
    local name=$1 log=$2 sed=$3
    shift 3
    spawn "$log" "$@"
    server_pid=$spawned
    if await "$server_pid" port_in "$log" "$sed"; then
        server_port=$(sed -n -E "$sed" "$log" | head -n1)
        return 0
    fi
    fail "exit $name" "did not start listening within ${STARTUP_TIMEOUT}s"
    show "$name output" "$log"
    return 1
}

# stop NAME PID LOG: SIGTERM; it must exit 0 (within KILL_AFTER s, else it
# is killed) with no sanitizer report in LOG.  Reported as case "exit NAME".
stop() {
    local name=$1 pid=$2 log=$3 rc=0 alive=1
    kill -0 "$pid" 2>/dev/null || alive=0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || rc=$?
    forget "$pid"
    if [[ $alive -eq 0 ]]; then
        fail "exit $name" "had died during the run (status $rc)"
    elif [[ $rc -eq 137 ]]; then
        fail "exit $name" "still running ${KILL_AFTER}s after SIGTERM (killed)"
    elif [[ $rc -ne 0 ]]; then
        fail "exit $name" "exit status $rc after SIGTERM"
    elif grep -qE "$SAN_RE" "$log"; then
        fail "exit $name" "sanitizer report (log: $log)"
    else
        pass "exit $name"
        return 0
    fi
    show "$name output" "$log"
}

# ---- setup --------------------------------------------------------------------
for prog in interop_server interop_client user_server user_client; do
    if [[ ! -x $BIN/$prog ]]; then
        echo "FAIL nginx build: $BIN/$prog is missing (build it with make)"
        exit 1
    fi
done
# NGINX=/path/to/nginx tries another build; /usr/sbin is not on every
# user's PATH.
if [[ -z ${NGINX:-} ]]; then
    NGINX=$(command -v nginx || true)
    [[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
fi
if [[ -z $NGINX || ! -x $NGINX ]]; then
    echo "FAIL nginx setup: nginx not found${NGINX:+ at $NGINX} (Debian:" \
         "nginx-light; scripts/deps.sh installs it)"
    exit 1
fi
if [[ ! -x $PY ]]; then
    echo "FAIL nginx setup: $PY not found (scripts/deps.sh)"
    exit 1
fi

# ---- backends -------------------------------------------------------------------
backend_ports=()
backend_pids=()
for ((b = 1; b <= BACKENDS; b++)); do
    if start_server "interop-$b" "$RUN/interop-$b.log" \
            's/^listening on ([0-9]+)$/\1/p' \
            "$BIN/interop_server" --host=127.0.0.1 --port=0; then
        backend_ports+=("$server_port")
        backend_pids+=("$server_pid")
    fi
done
certs=$RUN/certs
if ! timeout 60 "$ROOT/tests/tls/make-certs.sh" "$certs" \
        >"$RUN/certs.log" 2>&1; then
    fail setup "tests/tls/make-certs.sh failed"
    show make-certs "$RUN/certs.log"
    exit 1
fi
tls_ports=()
tls_pids=()
for ((b = 1; b <= TLS_BACKENDS; b++)); do
    if start_server "interop-tls-$b" "$RUN/interop-tls-$b.log" \
            's/^listening on ([0-9]+)$/\1/p' \
            "$BIN/interop_server" --host=127.0.0.1 --port=0 --use_tls=true \
            --tls_cert_file="$certs/server1.pem" \
            --tls_key_file="$certs/server1.key"; then
        tls_ports+=("$server_port")
        tls_pids+=("$server_pid")
    fi
done
user_port=
if start_server user "$RUN/user.log" \
        's/^user_server: listening on 127\.0\.0\.1:([0-9]+).*/\1/p' \
        "$BIN/user_server" --listen 127.0.0.1:0; then
    user_port=$server_port user_pid=$server_pid
fi
if [[ ${#backend_ports[@]} -ne $BACKENDS ||
      ${#tls_ports[@]} -ne $TLS_BACKENDS || -z $user_port ]]; then
    echo "nginx ($BUILD_DIR): the backends did not start"
    exit 1
fi

# ---- nginx ----------------------------------------------------------------------
# write_conf: the configuration, nginx listening on 127.0.0.1 at
# nginx_port (the tested setup), tls_port (the same over TLS), short_port
# (1 s timeouts) and down_port (an upstream with no live server).
write_conf() {
    local p
    {
        # As root the workers would run as nobody, who cannot write $RUN.
        [[ $(id -u) -eq 0 ]] && echo "user root;"
        cat <<EOF
# One worker: its round-robin order is the only one, so the spread over the
# backends is certain, not likely.
worker_processes 1;
pid $RUN/nginx.pid;
# info: cancelled streams are logged at info; the test wants none at error.
error_log $RUN/error.log info;
events { worker_connections 512; }

http {
    log_format grpc '\$request_uri status=\$status upstream=\$upstream_addr '
                    'upstream_status=\$upstream_status '
                    'grpc_status=\$upstream_http_grpc_status/\$upstream_trailer_grpc_status '
                    'time=\$request_time';
    access_log $RUN/access.log grpc;
    # Every temp path inside the run's directory: nothing under /var.
    client_body_temp_path $RUN/client_body;
    proxy_temp_path $RUN/proxy;
    fastcgi_temp_path $RUN/fastcgi;
    uwsgi_temp_path $RUN/uwsgi;
    scgi_temp_path $RUN/scgi;

    # A client stream is one request body to nginx: no size limit on it.
    client_max_body_size 0;

    upstream interop {
EOF
        for p in "${backend_ports[@]}"; do
            echo "        server 127.0.0.1:$p;"
        done
        cat <<EOF
        keepalive 16;  # reuse connections to the backends
    }
    upstream interop_tls {
EOF
        for p in "${tls_ports[@]}"; do
            echo "        server 127.0.0.1:$p;"
        done
        cat <<EOF
        keepalive 16;
    }
    upstream users {
        server 127.0.0.1:$user_port;
        keepalive 4;
    }
    upstream none {
        server 127.0.0.1:$user_port down;  # "down": never used
    }

    server {
        # h2c with prior knowledge: http2 on a plaintext listen socket.
        listen 127.0.0.1:$nginx_port http2;
        location /user.UserService/ {
            grpc_pass grpc://users;
        }
        location / {
            grpc_pass grpc://interop;
        }
    }

    # TLS on both legs: nginx terminates the client's TLS (ALPN h2) and
    # opens its own to the backends, checking their certificate.
    server {
        listen 127.0.0.1:$tls_port ssl http2;
        ssl_certificate $certs/server1.pem;
        ssl_certificate_key $certs/server1.key;
        location / {
            grpc_pass grpcs://interop_tls;
            grpc_ssl_trusted_certificate $certs/ca.pem;
            grpc_ssl_verify on;
            grpc_ssl_name $AUTHORITY;
            grpc_ssl_server_name on;  # SNI
        }
    }

    # The limit cases: nginx's timeouts (60 s by default) made short; the
    # resets they cause are logged as errors, so apart.
    server {
        listen 127.0.0.1:$short_port http2;
        error_log $RUN/error-short.log info;
        grpc_read_timeout 1s;    # between two reads from the backend
        client_body_timeout 1s;  # between two reads from the client
        location / {
            grpc_pass grpc://users;
        }
        location /grpc.testing.TestService/ {
            client_max_body_size 100k;  # what a limit does (default 1m)
            grpc_pass grpc://interop;
        }
    }
    # No live backend: its errors are expected, so logged apart.
    server {
        listen 127.0.0.1:$down_port http2;
        error_log $RUN/error-down.log info;
        location / {
            grpc_pass grpc://none;
        }
    }
}
EOF
    } >"$RUN/nginx.conf"
}

# start_nginx: sets nginx_pid and the ports, or fails and returns 1.  A port
# taken between picking and binding gets another try.
start_nginx() {
    local ports args=(-e "$RUN/error.log" -p "$RUN/" -c "$RUN/nginx.conf")
    for _ in 1 2 3; do
        ports=$(free_ports 4) || break
        read -r -d '' nginx_port tls_port short_port down_port <<<"$ports"
        write_conf
        if ! timeout 30 "$NGINX" -t "${args[@]}" >"$RUN/nginx-t.log" 2>&1
        then
            if grep -q 'unknown directive "grpc_pass"' "$RUN/nginx-t.log"; then
                fail setup "$NGINX has no ngx_http_grpc_module (grpc_pass)"
            else
                fail setup "nginx -t rejects the configuration"
            fi
            show "nginx -t" "$RUN/nginx-t.log"
            return 1
        fi
        spawn "$RUN/nginx.out" "$NGINX" "${args[@]}" -g 'daemon off;'
        nginx_pid=$spawned
        if await "$nginx_pid" port_open "$nginx_port"; then
            return 0
        fi
        kill -0 "$nginx_pid" 2>/dev/null && break
        wait "$nginx_pid" 2>/dev/null
        forget "$nginx_pid"
        grep -q 'Address already in use' "$RUN/error.log" "$RUN/nginx.out" ||
            break
    done
    fail setup "nginx did not start listening within ${STARTUP_TIMEOUT}s"
    show "nginx error log" "$RUN/error.log"
    show "nginx output" "$RUN/nginx.out"
    return 1
}

if ! start_nginx; then
    echo "nginx ($BUILD_DIR): $failures failure(s)"
    exit 1
fi

# ---- the cases --------------------------------------------------------------------
# interop_cases LABEL ARGS...: every case through nginx, each on its own
# connection, then all of them on one; ARGS go to interop_client.
interop_cases() {
    local label=$1 c log rc why n_pass
    shift
    for c in "${CASES[@]}" all; do
        log=$RUN/$label-$c.log
        rc=0
        timeout -k 5 "$CLIENT_TIMEOUT" "$BIN/interop_client" \
            --server_host=127.0.0.1 "$@" --test_case="$c" >"$log" 2>&1 ||
            rc=$?
        if [[ $c == all ]]; then
            n_pass=$(grep -c '^PASS ' "$log")
            if [[ $rc -eq 0 && $n_pass -eq ${#CASES[@]} ]] &&
                    ! grep -qE "$SAN_RE" "$log"; then
                pass "$label all-on-one-channel"
            else
                fail "$label all-on-one-channel" "$n_pass of ${#CASES[@]}" \
                     "passed, exit status $rc (log: $log)"
                show interop_client "$log"
            fi
        elif [[ $rc -eq 0 ]] && grep -qx "PASS $c" "$log" &&
                ! grep -qE "$SAN_RE" "$log"; then
            pass "$label $c"
        else
            why=$(grep -m1 "^FAIL $c" "$log" || echo "exit status $rc")
            fail "$label $c" "$why (log: $log)"
            show interop_client "$log"
        fi
    done
}

interop_cases interop --server_port="$nginx_port"
interop_cases tls --server_port="$tls_port" --use_tls=true \
    --use_test_ca=true --test_ca_file="$certs/ca.pem" \
    --server_host_override="$AUTHORITY"

# spread: calls per interop backend, from $upstream_addr (which lists every
# backend tried, should nginx have moved on to the next one).
declare -A served=()
while read -r n addr; do
    served[$addr]=$n
done < <(grep '^/grpc\.testing\.' "$RUN/access.log" |
         sed -E 's/.* upstream=(.*) upstream_status=.*/\1/' |
         grep -oE '127\.0\.0\.1:[0-9]+' | sort | uniq -c)
spread=() idle=()
for p in "${backend_ports[@]}" "${tls_ports[@]}"; do
    spread+=("${served[127.0.0.1:$p]:-0}")
    [[ ${served[127.0.0.1:$p]:-0} -gt 0 ]] || idle+=("127.0.0.1:$p")
done
if [[ ${#idle[@]} -eq 0 ]]; then
    pass spread
    echo "  note: calls per interop backend: $(IFS=/; echo "${spread[*]}")"
else
    fail spread "no call reached ${idle[*]} (calls per backend:" \
         "$(IFS=/; echo "${spread[*]}"))"
    show "access log" "$RUN/access.log"
fi

# backend-gone: a backend shut down (as in a rolling restart) is skipped:
# its connect fails, and grpc_next_upstream's default ("error timeout")
# tries the next one; no request had been sent, so POST is no obstacle.
# nginx logs that refused connect as an error: error-log allows it.
gone=127.0.0.1:${backend_ports[0]}
errors_before=$(wc -l <"$RUN/error.log")
stop interop-1 "${backend_pids[0]}" "$RUN/interop-1.log"
sleep 0.5  # nginx closes its idle connections to it as their FIN arrives
log=$RUN/backend-gone.log
rc=0
timeout -k 5 "$CLIENT_TIMEOUT" "$BIN/interop_client" --server_host=127.0.0.1 \
    --server_port="$nginx_port" --test_case=all >"$log" 2>&1 || rc=$?
n_pass=$(grep -c '^PASS ' "$log")
if [[ $rc -ne 0 || $n_pass -ne ${#CASES[@]} ]] || grep -qE "$SAN_RE" "$log"
then
    fail backend-gone "$n_pass of ${#CASES[@]} passed with interop-1" \
         "stopped, exit status $rc (log: $log)"
    show interop_client "$log"
elif ! grep -qF "upstream=$gone, " "$RUN/access.log"; then
    # Else the case proved nothing: nginx never tried the stopped one.
    fail backend-gone "no call tried $gone and then another backend"
else
    pass backend-gone
fi

# The example: user_client's steps, through nginx's second upstream.
log=$RUN/user-client.log
rc=0
timeout -k 5 "$CLIENT_TIMEOUT" "$BIN/user_client" \
    --target "127.0.0.1:$nginx_port" >"$log" 2>&1 || rc=$?
if [[ $rc -eq 0 ]] && grep -qF "user_client: all 6 steps succeeded" "$log" &&
        ! grep -qE "$SAN_RE" "$log"; then
    pass "example user"
else
    fail "example user" "user_client exit status $rc (log: $log)"
    show "user_client" "$log"
fi
if ! grep -q '^/user\.UserService/' "$RUN/access.log"; then
    fail "example user" "no /user.UserService/ call in nginx's access log"
fi

# ---- nginx's limits, as docs/deployment.md describes them ---------------------------
# limit NAME WANT ARGS...: user_client ARGS must fail, with the line WANT.
limit() {
    local name=$1 want=$2 log=$RUN/limit-$1.log rc=0
    shift 2
    timeout -k 5 "$CLIENT_TIMEOUT" "$BIN/user_client" "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -eq 1 ]] && grep -qF "$want" "$log" && ! grep -qE "$SAN_RE" "$log"
    then
        pass "limit $name"
    else
        fail "limit $name" "wanted exit status 1 and \"$want\"," \
             "got status $rc (log: $log)"
        show "user_client" "$log"
    fi
}
# StreamUsers waits --stream-delay s between users (the store has the ones
# "example user" made): longer than grpc_read_timeout, nginx resets the
# stream (RST_STREAM INTERNAL_ERROR), which the client reports as INTERNAL.
limit grpc_read_timeout "step 4 StreamUsers failed: INTERNAL" \
    --target "127.0.0.1:$short_port" --stream-delay 2
# The client stream pauses --pace-ms between messages: longer than
# client_body_timeout, nginx resets it (PROTOCOL_ERROR): INTERNAL too.
limit client_body_timeout "step 5 CreateBatchUsers failed: INTERNAL" \
    --target "127.0.0.1:$short_port" --stream-delay 0 --pace-ms 2000
# All of a call's messages count against client_max_body_size: over it,
# nginx answers HTTP 413, which gRPC maps to UNKNOWN.  (large_unary's
# request is 271828 bytes.)
log=$RUN/limit-client_max_body_size.log
rc=0
timeout -k 5 "$CLIENT_TIMEOUT" "$BIN/interop_client" --server_host=127.0.0.1 \
    --server_port="$short_port" --test_case=large_unary >"$log" 2>&1 || rc=$?
if [[ $rc -eq 1 ]] && grep -qF 'status UNKNOWN (2) "HTTP status 413"' "$log" &&
        ! grep -qE "$SAN_RE" "$log"; then
    pass "limit client_max_body_size"
else
    fail "limit client_max_body_size" "wanted large_unary to fail with" \
         "UNKNOWN \"HTTP status 413\", got status $rc (log: $log)"
    show interop_client "$log"
fi
# No live backend: nginx answers HTTP 502, which is UNAVAILABLE to gRPC.
limit no-backend "step 1 CreateUser failed: UNAVAILABLE" \
    --target "127.0.0.1:$down_port"

# ---- stop: nginx first, so no call is in flight when the servers go ------------------
stop nginx "$nginx_pid" "$RUN/nginx.out"
# Every error but backend-gone's refused connects to the stopped backend.
awk -v n="$errors_before" -v gone="upstream: \"grpc://$gone\"" '
    !/\[(error|crit|alert|emerg)\]/ { next }
    NR > n && /connect\(\) failed \(111: / && index($0, gone) { next }
    { print }' "$RUN/error.log" >"$RUN/errors"
if [[ -s $RUN/errors ]]; then
    fail error-log "nginx logged errors (log: $RUN/error.log):"
    head -n 10 "$RUN/errors" | sed 's/^/  | /'
else
    pass error-log
fi
for ((b = 1; b < BACKENDS; b++)); do  # interop-1 went in backend-gone
    stop "interop-$((b + 1))" "${backend_pids[b]}" "$RUN/interop-$((b + 1)).log"
done
for ((b = 0; b < TLS_BACKENDS; b++)); do
    stop "interop-tls-$((b + 1))" "${tls_pids[b]}" \
        "$RUN/interop-tls-$((b + 1)).log"
done
stop user "$user_pid" "$RUN/user.log"

if [[ $failures -ne 0 ]]; then
    echo "nginx ($BUILD_DIR): $failures failure(s)"
    exit 1
fi
echo "nginx ($BUILD_DIR): all passed"
