# What tests/examples/{user,llm,file,chat}.sh share for the TLS, health and
# reflection cases of the example servers (examples/common/example.h).
# Sourced by harness.sh (which sets ROOT and PY, /usr/bin/python3 for
# Debian's grpcio, and defines pass, fail and ex_protoc_py).
#
#   ex_health_stubs DIR  Python stubs of lib/proto's health and reflection
#                     (v1, v1alpha) into DIR, from copies in DIR/src under
#                     package directories of our own ("grpc" is grpcio's);
#                     tests/examples/services.sh's too
#   ex_setup DIR      test certificates (tests/tls/make-certs.sh) into
#                     DIR/certs and Python stubs of lib/proto's health and
#                     reflection into DIR/py; sets the arrays below.
#                     On failure: reports the case ex-setup with the
#                     script's fail, returns 1 (output in DIR/setup.log).
#   EX_SERVER_TLS     server flags: TLS with DIR/certs/server1.{pem,key}
#                     (names foo.test.google.fr, localhost, 127.0.0.1)
#   EX_SERVER_MTLS    the same, client certificates signed by the test CA
#                     required (--tls-client-ca)
#   EX_CLIENT_TLS     client flags: trust the test CA, --authority
#                     foo.test.google.fr
#   EX_CLIENT_CERT    client flags: the test client certificate
#   EX_CLIENT_OTHER_CERT  a client certificate of a CA the server does not
#                     trust
#   ex_grpcio_tls [--cert] CMD...   CMD with EX_TLS_* set: the tests' grpcio
#                     clients (tests/examples/common/ex_grpc.py) then use
#                     TLS (grpc.ssl_channel_credentials with the test CA,
#                     grpc.ssl_target_name_override foo.test.google.fr),
#                     with the client certificate when --cert
#   ex_health LOG TARGET [--unimplemented] SERVICE...
#                     health_probe.py: Check(SERVICE) is SERVING for each
#                     (plaintext, or TLS under ex_grpcio_tls)
#   ex_reflect LOG ARGS...   tests/services/reflect.py ARGS (plaintext)
#   ex_health_case CASE LOG [--tls | --tls-cert] TARGET SERVICE...
#   ex_reflect_case CASE LOG TARGET ARGS...
#                     the same, reported as CASE with the script's pass /
#                     fail (--tls: over TLS, --tls-cert: with the client
#                     certificate too)
#   ex_services_cases LOGDIR TARGET SERVICE
#                     the cases "health" (Check "" and SERVICE: SERVING)
#                     and "reflect-list" (SERVICE, health and reflection
#                     listed) against a plaintext server
# Every Python run is bounded (60 s) and writes to LOG.

EX_COMMON=$ROOT/tests/examples/common
EX_AUTHORITY=foo.test.google.fr
EX_SERVICES=(grpc.health.v1.Health grpc.reflection.v1.ServerReflection
             grpc.reflection.v1alpha.ServerReflection)

ex_health_stubs() {
    local py=$1 p d
    mkdir -p "$py/src"
    for p in health/v1/health reflection/v1/reflection \
             reflection/v1alpha/reflection; do
        d=$py/src/mrpc_$(dirname "$p" | tr / _)
        mkdir -p "$d"
        cp "$ROOT/lib/proto/grpc/$p.proto" "$d/"
    done  # (a missing one fails protoc below)
    (cd "$py/src" && ex_protoc_py "$py" -I. mrpc_health_v1/health.proto \
        mrpc_reflection_v1/reflection.proto \
        mrpc_reflection_v1alpha/reflection.proto)
}

ex_setup() {
    local dir=$1
    EX_CERTS=$dir/certs
    EX_PY=$dir/py
    EX_SERVER_TLS=(--tls-cert "$EX_CERTS/server1.pem"
                   --tls-key "$EX_CERTS/server1.key")
    EX_SERVER_MTLS=("${EX_SERVER_TLS[@]}" --tls-client-ca "$EX_CERTS/ca.pem")
    EX_CLIENT_TLS=(--tls-ca "$EX_CERTS/ca.pem" --authority "$EX_AUTHORITY")
    EX_CLIENT_CERT=(--tls-cert "$EX_CERTS/client.pem"
                    --tls-key "$EX_CERTS/client.key")
    EX_CLIENT_OTHER_CERT=(--tls-cert "$EX_CERTS/other-client.pem"
                          --tls-key "$EX_CERTS/other-client.key")
    rm -rf "$EX_CERTS" "$EX_PY"
    mkdir -p "$dir"
    {
        timeout 60 "$ROOT/tests/tls/make-certs.sh" "$EX_CERTS" &&
        ex_health_stubs "$EX_PY"
    } >"$dir/setup.log" 2>&1 && return 0
    fail ex-setup "certificates or health/reflection stubs (log: $dir/setup.log)"
    tail -n 20 "$dir/setup.log" | sed 's/^/  | /'
    return 1
}

ex_grpcio_tls() {
    local cert= key=
    if [[ $1 == --cert ]]; then
        cert=$EX_CERTS/client.pem key=$EX_CERTS/client.key
        shift
    fi
    # Assignments before a command (a function too) are exported to it.
    EX_TLS_CA=$EX_CERTS/ca.pem EX_TLS_AUTHORITY=$EX_AUTHORITY \
        EX_TLS_CERT=$cert EX_TLS_KEY=$key "$@"
}

ex_health() {
    local log=$1 target=$2
    shift 2
    timeout -k 5 60 env PYTHONPATH="$EX_PY" "$PY" \
        "$EX_COMMON/health_probe.py" --target "$target" "$@" >"$log" 2>&1
}

ex_reflect() {
    local log=$1
    shift
    timeout -k 5 60 env PYTHONPATH="$EX_PY" "$PY" \
        "$ROOT/tests/services/reflect.py" "$@" >"$log" 2>&1
}

ex_health_case() {
    local name=$1 log=$2 how=()
    shift 2
    case $1 in
    --tls) how=(ex_grpcio_tls); shift ;;
    --tls-cert) how=(ex_grpcio_tls --cert); shift ;;
    esac
    if "${how[@]}" ex_health "$log" "$@"; then
        pass "$name"
    else
        fail "$name" "health_probe.py: $(grep -m1 -E '^FAILED|Error' "$log") (log: $log)"
    fi
}

ex_reflect_case() {
    local name=$1 log=$2 target=$3
    shift 3
    if ex_reflect "$log" --target "$target" --case "$name" "$@"; then
        pass "$name"
    else
        fail "$name" "reflect.py: $(grep -m1 '^FAIL' "$log" || tail -n1 "$log") (log: $log)"
    fi
}

ex_services_cases() {
    ex_health_case health "$1/health.log" "$2" "" "$3"
    ex_reflect_case reflect-list "$1/reflect-list.log" "$2" list \
        --expect "$3" "${EX_SERVICES[@]}"
}
