#!/usr/bin/env bash
# Tests of examples/file (file upload, client streaming).
#
#   tests/examples/file.sh BUILD_DIR        (e.g. build, build-asan)
#
# Runs BUILD_DIR/bin/file_server on free 127.0.0.1 ports (port 0, read back
# from its "listening on" line), storing into a scratch directory, against
# the blog's own Python upload snippet, grpcio probes
# (tests/examples/file/*.py, stubs generated into BUILD_DIR/gen/py-file) and
# BUILD_DIR/bin/file_client.  Prints "PASS example file-<case>" /
# "FAIL example file-<case>: why" per case; exits non-zero if any failed.
# TLS, mutual TLS, health and reflection (examples/common; helpers in
# tests/examples/common/lib.sh, certificates from tests/tls/make-certs.sh):
#   tls-c-client        file_server --tls-cert/--tls-key, file_client
#                       --tls-ca --authority foo.test.google.fr: a 2 MiB
#                       upload stored and verified
#   tls-py-client       the same from grpcio over TLS (ssl_channel_credentials
#                       with the test CA, ssl_target_name_override)
#   tls-health          health Check over TLS: "" and file.FileService SERVING
#   mtls-no-cert, mtls-c-client  file_server --tls-client-ca: file_client
#                       refused without a client certificate, served with
#   reflect-list        plaintext: tests/services/reflect.py lists
#                       file.FileService, health and reflection
# Every server is stopped with SIGTERM and must exit 0 with no sanitizer
# report on stderr.  Each run logs into its own
# BUILD_DIR/example-logs/file.XXXXXX/, removed when everything passed, kept
# (and named) when not, so that runs on one BUILD_DIR may overlap.
set -uo pipefail
# Reporting, logs, setup and servers: tests/examples/common/harness.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common/harness.sh"
ex_begin file "example file-" "$@"
HERE=$ROOT/tests/examples/file
ex_logs_run

SERVER_LIFETIME=300
SERVER_KILL_AFTER=60
STOP_TIMEOUT=30     # s from SIGTERM to exit

WORK=$LOGS/work   # scratch files; uploads go to $WORK/<server>/store
ex_at_exit() { rm -rf "$WORK"; }

# start_server NAME ARGS...: file_server on 127.0.0.1:0 storing into
# $WORK/NAME/store; sets srv_pid, srv_port, srv_out (the call log), srv_err,
# srv_dir.
start_server() {
    srv_dir=$WORK/$1/store
    mkdir -p "$srv_dir"
    ex_start_server "$1" "$BIN/file_server" --listen 127.0.0.1:0 \
        --dir "$srv_dir" "${@:2}"
}

py() { timeout -k 5 60 env PYTHONPATH="$GEN" "$PY" "$@"; }

# wait_log FILE PATTERN COUNT: waits (10 s at most) until FILE has COUNT
# lines matching PATTERN.
wait_log() {
    local i
    for ((i = 0; i < 500; i++)); do
        (($(grep -cE "$2" "$1") >= $3)) && return 0
        sleep 0.02
    done
    return 1
}

listing() { (cd "$1" && ls -A); }  # every entry, dot files too

# ---- setup -------------------------------------------------------------
mkdir -p "$WORK"
ex_example_setup file_server file_client
head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$WORK/blog.bin"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$WORK/random5.bin"
head -c $((2 * 1024 * 1024 + 7)) /dev/urandom >"$WORK/random2.bin"
: >"$WORK/empty.bin"

# ---- main server (default limit, 100 MiB) --------------------------------
if start_server main; then
    T=127.0.0.1:$srv_port
    main_pid=$srv_pid main_err=$srv_err
    D=$srv_dir
    LOG=$srv_out

    # The blog's snippet as printed: chunks without a name, so the server
    # makes one up; it prints the size the server reports.
    py "$HERE/blog_upload.py" "$T" "$WORK/blog.bin" >"$LOGS/blog.out" 2>&1
    rc=$?
    stored=$(ls "$D")
    want=$(stat -c %s "$WORK/blog.bin")
    if [[ $rc -ne 0 ]]; then
        fail blog-upload "exit status $rc: $(tail -n 3 "$LOGS/blog.out")"
    elif [[ $(cat "$LOGS/blog.out") != "Uploaded: $want bytes" ]]; then
        fail blog-upload "printed '$(cat "$LOGS/blog.out")'"
    elif [[ $(echo "$stored" | wc -l) -ne 1 || $stored != upload-*-* ]]; then
        fail blog-upload "stored files: '$stored'"
    elif ! cmp -s "$D/$stored" "$WORK/blog.bin"; then
        fail blog-upload "$stored differs from what was sent"
    else
        pass blog-upload
    fi
    rm -f "$D"/*

    # Our client, a random 5 MiB file: its hash matches (checked by the
    # client against its own, and here against the stored file).
    timeout 60 "$BIN/file_client" --target "$T" "$WORK/random5.bin" \
        --name random.bin >"$LOGS/c5.out" 2>"$LOGS/c5.err"
    rc=$?
    sha=$(sha256sum <"$WORK/random5.bin" | cut -d' ' -f1)
    if [[ $rc -ne 0 ]]; then
        fail c-client-5mib "exit status $rc: $(cat "$LOGS/c5.err")"
    elif ! grep -q "sha256=$sha" "$LOGS/c5.out" ||
         ! grep -q '^verified' "$LOGS/c5.out"; then
        fail c-client-5mib "$(cat "$LOGS/c5.out")"
    elif [[ $(sha256sum <"$D/random.bin" | cut -d' ' -f1) != "$sha" ]]; then
        fail c-client-5mib "the stored file's hash differs"
    elif sanitizer_report "$LOGS/c5.err"; then
        fail c-client-5mib "sanitizer report from file_client"
        show "$LOGS/c5.err"
    elif [[ $(listing "$D") != random.bin ]]; then
        fail c-client-5mib "left in the directory: $(listing "$D" | tr '\n' ' ')"
    else
        pass c-client-5mib
    fi
    rm -f "$D"/*

    # grpcio with a name: the new fields (sha256, filename) agree with
    # hashlib; an existing name is replaced.
    py "$HERE/file_py.py" upload "$T" "$WORK/random2.bin" "two.bin" \
        >"$LOGS/py-named.out" 2>&1
    rc=$?
    py "$HERE/file_py.py" upload "$T" "$WORK/random5.bin" "two.bin" \
        >>"$LOGS/py-named.out" 2>&1
    rc2=$?
    if [[ $rc -ne 0 || $rc2 -ne 0 ]]; then
        fail py-named "$(cat "$LOGS/py-named.out")"
    elif ! cmp -s "$D/two.bin" "$WORK/random5.bin"; then
        fail py-named "the second upload did not replace the first"
    else
        pass py-named
    fi
    rm -f "$D"/*

    timeout 60 "$BIN/file_client" --target "$T" "$WORK/empty.bin" \
        >"$LOGS/empty.out" 2>&1
    if [[ $? -ne 0 || ! -f $D/empty.bin || -s $D/empty.bin ]]; then
        fail empty-file "$(cat "$LOGS/empty.out")"
    else
        pass empty-file
    fi
    rm -f "$D"/*

    # Traversal and odd names: INVALID_ARGUMENT, nothing written anywhere.
    ok=1
    for name in "../evil" "../../evil" "/tmp/evil" "a/b" "sub/../evil" \
                ".." "." ".hidden" ".upload-XXXXXX" "   " 'a\\b' \
                'bad\x01name' 'new\nline' 'del\x7f' \
                "$(printf 'x%.0s' {1..256})"; do
        py "$HERE/file_py.py" refuse "$T" "$name" INVALID_ARGUMENT \
            >"$LOGS/refuse.out" 2>&1
        if [[ $? -ne 0 ]]; then
            fail bad-names "name '$name': $(cat "$LOGS/refuse.out")"
            ok=0
            break
        fi
    done
    if [[ $ok -eq 1 ]]; then
        # Not UTF-8 (grpcio can not send that: our client can).  The
        # library refuses such a string field before the handler runs
        # (INTERNAL, like any message that does not parse).
        timeout 30 "$BIN/file_client" --target "$T" "$WORK/random2.bin" \
            --name $'bad\xff\xfe' >"$LOGS/refuse-c.out" 2>&1
        rc=$?
        if [[ $rc -ne 1 ]] || ! grep -q "INTERNAL.*not valid UTF-8" "$LOGS/refuse-c.out"; then
            fail bad-names "a name that is not UTF-8: $(cat "$LOGS/refuse-c.out")"
            ok=0
        fi
    fi
    if [[ $ok -eq 1 ]]; then
        wait_log "$LOG" 'status=INVALID_ARGUMENT' 15
        left=$(listing "$D"; listing "$WORK/main"; ls /tmp/evil 2>/dev/null)
        if [[ $left != store ]]; then
            fail bad-names "left behind: $(echo "$left" | tr '\n' ' ')"
        else
            pass bad-names
        fi
    fi
    rm -f "$D"/*

    # A NUL in the name: protobuf-c keeps strings NUL-terminated, so the
    # library refuses a string field holding NUL (INTERNAL) instead of
    # letting the handler see a name cut short.  Nothing may be stored.
    py "$HERE/file_py.py" refuse "$T" 'evil\x00/../../escaped' INTERNAL \
        >"$LOGS/nul.out" 2>&1
    rc=$?
    left=$(listing "$D")
    if [[ $rc -eq 0 && -z $left && ! -e $WORK/escaped &&
          ! -e $WORK/main/escaped ]]; then
        pass nul-name-contained
    else
        fail nul-name-contained "$(cat "$LOGS/nul.out"); stored: $left"
    fi
    rm -f "$D"/*

    # A cancelled upload leaves nothing: not the file, not its temporary.
    n=$(grep -c 'status=CANCELLED' "$LOG")
    py "$HERE/file_py.py" cancel "$T" "$D" >"$LOGS/cancel.out" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        fail cancel "$(cat "$LOGS/cancel.out")"
    elif ! wait_log "$LOG" 'status=CANCELLED' $((n + 1)); then
        fail cancel "the server did not see the cancel"
    elif [[ -n $(listing "$D") ]]; then
        fail cancel "left behind: $(listing "$D" | tr '\n' ' ')"
    else
        pass cancel
    fi
    rm -f "$D"/* "$D"/.upload-*

    # A client killed mid-upload (connection lost): the same.
    n=$(grep -c 'status=CANCELLED' "$LOG")
    # (No timeout(1) wrapper: $! must be the python itself, to kill it.
    # It gives up on its own after 120 s.)
    env PYTHONPATH="$GEN" "$PY" "$HERE/file_py.py" hang "$T" \
        >"$LOGS/hang.out" 2>&1 &
    hpid=$!
    for ((i = 0; i < 500; i++)); do
        [[ -n $(find "$D" -name '.upload-*' -size +0) ]] && break
        sleep 0.02
    done
    kill -KILL "$hpid" 2>/dev/null
    wait "$hpid" 2>/dev/null
    if ! wait_log "$LOG" 'status=CANCELLED' $((n + 1)); then
        fail disconnect "the server did not see the client go"
    elif [[ -n $(listing "$D") ]]; then
        fail disconnect "left behind: $(listing "$D" | tr '\n' ' ')"
    else
        pass disconnect
    fi
    rm -f "$D"/* "$D"/.upload-*

    # Four uploads at once, each verified.
    pids=()
    for i in 1 2 3 4; do
        timeout 60 "$BIN/file_client" --target "$T" "$WORK/random2.bin" \
            --name "par$i.bin" >"$LOGS/par$i.out" 2>&1 &
        pids+=($!)
    done
    ok=1
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || ok=0
    done
    if [[ $ok -ne 1 ]]; then
        fail concurrent "$(cat "$LOGS"/par*.out)"
    elif [[ $(listing "$D" | wc -l) -ne 4 ]]; then
        fail concurrent "stored: $(listing "$D" | tr '\n' ' ')"
    else
        pass concurrent
    fi
    rm -f "$D"/*
    ex_stop_server main "$main_pid" "$main_err"
fi

# ---- a server that takes at most 1 MiB -----------------------------------
if start_server small --max-bytes 1m; then
    T=127.0.0.1:$srv_port
    D=$srv_dir
    LOG=$srv_out
    small=("small" "$srv_pid" "$srv_err")
    head -c $((1024 * 1024)) /dev/urandom >"$WORK/exact.bin"
    timeout 60 "$BIN/file_client" --target "$T" "$WORK/random2.bin" \
        >"$LOGS/big.out" 2>&1
    rc=$?
    sleep 0.1
    if [[ $rc -ne 1 ]] || ! grep -q 'RESOURCE_EXHAUSTED' "$LOGS/big.out"; then
        fail too-large "status $rc: $(cat "$LOGS/big.out")"
    elif [[ -n $(listing "$D") ]]; then
        fail too-large "left behind: $(listing "$D" | tr '\n' ' ')"
    else
        pass too-large
    fi
    # The blog's client gets the error as an exception.
    py "$HERE/blog_upload.py" "$T" "$WORK/random5.bin" >"$LOGS/big-blog.out" 2>&1
    if ! grep -q 'RESOURCE_EXHAUSTED' "$LOGS/big-blog.out" ||
       [[ -n $(listing "$D") ]]; then
        fail too-large-blog "$(tail -n 3 "$LOGS/big-blog.out")"
    else
        pass too-large-blog
    fi
    timeout 60 "$BIN/file_client" --target "$T" "$WORK/exact.bin" \
        >"$LOGS/exact.out" 2>&1
    if [[ $? -ne 0 ]] || ! cmp -s "$D/exact.bin" "$WORK/exact.bin"; then
        fail limit-exact "$(cat "$LOGS/exact.out")"
    else
        pass limit-exact
    fi
    ex_stop_server "${small[@]}"
fi

# ---- TLS, mutual TLS, health, reflection (examples/common) --------------
# c_upload CASE WANT ARGS...: file_client uploads random2.bin as CASE.bin
# with ARGS; WANT ok: stored and verified; else file_client must fail (1)
# saying WANT, and nothing be stored.
c_upload() {
    local name=$1 want=$2 out=$LOGS/$1.out rc=0
    shift 2
    timeout 60 "$BIN/file_client" --target "$T" "$WORK/random2.bin" \
        --name "$name.bin" "$@" >"$out" 2>&1 || rc=$?
    if sanitizer_report "$out"; then
        fail "$name" "sanitizer report from file_client"
        show "$out"
    elif [[ $want == ok ]]; then
        if [[ $rc -ne 0 ]] || ! grep -q '^verified' "$out" ||
           ! cmp -s "$D/$name.bin" "$WORK/random2.bin"; then
            fail "$name" "status $rc: $(tail -n 2 "$out")"
        else
            pass "$name"
        fi
    elif [[ $rc -ne 1 ]] || ! grep -qF -- "$want" "$out"; then
        fail "$name" "status $rc, expected 1 and \"$want\": $(tail -n 2 "$out")"
    elif [[ -n $(listing "$D") ]]; then
        fail "$name" "stored: $(listing "$D" | tr '\n' ' ')"
    else
        pass "$name"
    fi
}

if ex_setup "$LOGS/ex"; then
    if start_server tls "${EX_SERVER_TLS[@]}"; then
        T=127.0.0.1:$srv_port
        D=$srv_dir
        tls=("tls" "$srv_pid" "$srv_err")
        c_upload tls-c-client ok "${EX_CLIENT_TLS[@]}"
        ex_grpcio_tls py "$HERE/file_py.py" upload "$T" "$WORK/random2.bin" \
            "py.bin" >"$LOGS/tls-py.out" 2>&1
        if [[ $? -ne 0 ]] || ! cmp -s "$D/py.bin" "$WORK/random2.bin"; then
            fail tls-py-client "$(grep -v '^E[0-9]' "$LOGS/tls-py.out" | tail -n 2)"
        else
            pass tls-py-client
        fi
        ex_health_case tls-health "$LOGS/tls-health.log" --tls "$T" "" \
            file.FileService
        ex_stop_server "${tls[@]}"
    fi
    if start_server mtls "${EX_SERVER_MTLS[@]}"; then
        T=127.0.0.1:$srv_port
        D=$srv_dir
        mtls=("mtls" "$srv_pid" "$srv_err")
        c_upload mtls-no-cert "certificate required" "${EX_CLIENT_TLS[@]}"
        c_upload mtls-c-client ok "${EX_CLIENT_TLS[@]}" "${EX_CLIENT_CERT[@]}"
        ex_stop_server "${mtls[@]}"
    fi
    ex_services_server file.FileService
fi

ex_finish examples/file
