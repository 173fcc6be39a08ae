#!/usr/bin/env bash
# Tests of examples/llm (LLM token streaming, server streaming).
#
#   tests/examples/llm.sh BUILD_DIR        (e.g. build, build-asan)
#
# Runs BUILD_DIR/bin/llm_server on free 127.0.0.1 ports (port 0, read back
# from its "listening on" line) against the blog's own Python client, grpcio
# probes (tests/examples/llm/*.py, stubs generated into BUILD_DIR/gen/py-llm)
# and BUILD_DIR/bin/llm_client.  Prints "PASS example llm-<case>" /
# "FAIL example llm-<case>: why" per case; exits non-zero if any failed.
# TLS, mutual TLS, health and reflection (examples/common; helpers in
# tests/examples/common/lib.sh, certificates from tests/tls/make-certs.sh):
#   tls-c-client        llm_server --tls-cert/--tls-key, llm_client --tls-ca
#                       --authority foo.test.google.fr: the same text as
#                       llm_server --generate
#   tls-wrong-name      --authority wrong.example.com: "hostname mismatch"
#   tls-py-client       grpcio over TLS (ssl_channel_credentials with the
#                       test CA, ssl_target_name_override): 20 tokens
#   tls-health          health Check over TLS: "" and llm.LLMService SERVING
#   mtls-*              llm_server --tls-client-ca: llm_client and grpcio
#                       refused without a client certificate, served with
#   health, reflect-list  plaintext: health SERVING; tests/services/reflect.py
#                       lists llm.LLMService, health and reflection
# Every server is stopped with SIGTERM and must exit 0 with no sanitizer
# report on stderr.  Each run logs into its own
# BUILD_DIR/example-logs/llm.XXXXXX/, removed when everything passed, kept
# (and named) when not, so that runs on one BUILD_DIR may overlap.
set -uo pipefail
# Reporting, logs, setup and servers: tests/examples/common/harness.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common/harness.sh"
ex_begin llm "example llm-" "$@"
HERE=$ROOT/tests/examples/llm
ex_logs_run

SERVER_LIFETIME=300  # s: upper bound even if this script is killed hard
SERVER_KILL_AFTER=60
STOP_TIMEOUT=30     # s from SIGTERM to exit

# start_server NAME ARGS...: llm_server on 127.0.0.1:0 with ARGS; sets
# srv_pid, srv_port, srv_out (its stdout: the call log), srv_err.
start_server() {
    ex_start_server "$1" "$BIN/llm_server" --listen 127.0.0.1:0 "${@:2}"
}

py() { timeout -k 5 "${PYTIMEOUT:-60}" env PYTHONPATH="$GEN" "$PY" "$@"; }

# ---- setup -------------------------------------------------------------
ex_example_setup llm_server llm_client

# ---- the model on its own (cmocka) ----------------------------------------
UNIT=$BUILD_DIR/tests/examples/llm_ngram_test
if [[ ! -x $UNIT ]]; then
    fail ngram-unit "$UNIT is missing (build it with make)"
elif timeout 120 "$UNIT" >"$LOGS/ngram-unit.out" 2>&1 &&
     ! sanitizer_report "$LOGS/ngram-unit.out"; then
    pass ngram-unit
else
    fail ngram-unit "see $LOGS/ngram-unit.out"
    show "$LOGS/ngram-unit.out"
fi

# ---- a quick server: 1 ms per token --------------------------------------
if start_server fast --token-delay-ms 1; then
    T=127.0.0.1:$srv_port
    fast=("fast" "$srv_pid" "$srv_err")
    fast_log=$srv_out

    # The blog's snippet, as printed (prompt "안녕", no max_tokens: the
    # server's default length), streams text: the same text the model gives
    # offline, one token per message, ended by is_finished.
    py "$HERE/blog_client.py" "$T" >"$LOGS/blog.out" 2>"$LOGS/blog.err"
    rc=$?
    offline=$(timeout 30 "$BIN/llm_server" --generate "안녕" 2>&1; echo x)
    got=$(cat "$LOGS/blog.out"; echo; echo x)
    if [[ $rc -ne 0 ]]; then
        fail blog-client "exit status $rc"
        show "$LOGS/blog.err"
    elif [[ ! -s $LOGS/blog.out ]]; then
        fail blog-client "printed nothing"
    elif [[ $got != "$offline" ]]; then
        fail blog-client "text differs from llm_server --generate"
        echo "  blog:    $(head -c 200 "$LOGS/blog.out")"
    else
        pass blog-client
    fi
    py "$HERE/llm_py.py" stream "$T" "안녕" 0 >"$LOGS/shape.out" 2>&1
    rc=$?
    n=$(sed -n 's/^tokens=//p' "$LOGS/shape.out")
    if [[ $rc -ne 0 ]]; then
        fail stream-shape "$(head -n 3 "$LOGS/shape.out")"
    elif [[ -z $n || $n -lt 40 || $n -gt 200 ]]; then
        fail stream-shape "default length $n not within 40..200"
    else
        pass stream-shape
    fi

    # llm_client prints what the blog's client prints for the same prompt,
    # and the same twice (deterministic per prompt); a shorter max_tokens
    # gives a prefix.
    prompt="Once upon a time"
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "$prompt" \
        >"$LOGS/c-default.out" 2>"$LOGS/c-default.err"
    rc=$?
    py "$HERE/blog_client.py" "$T" "$prompt" >"$LOGS/py-default.out" 2>&1
    c_text=$(cat "$LOGS/c-default.out"; echo x)
    py_text=$(cat "$LOGS/py-default.out"; echo; echo x)
    if [[ $rc -ne 0 ]]; then
        fail same-text "llm_client exit status $rc"
        show "$LOGS/c-default.err"
    elif [[ $c_text != "$py_text" ]]; then
        fail same-text "llm_client and the blog's client differ"
        echo "  C:  $(head -c 200 "$LOGS/c-default.out")"
        echo "  Py: $(head -c 200 "$LOGS/py-default.out")"
    elif sanitizer_report "$LOGS/c-default.err"; then
        fail same-text "sanitizer report from llm_client"
        show "$LOGS/c-default.err"
    else
        pass same-text
    fi
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "$prompt" \
        --max-tokens 30 >"$LOGS/c-30a.out" 2>&1
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "$prompt" \
        --max-tokens 30 >"$LOGS/c-30b.out" 2>&1
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "$prompt" \
        --max-tokens 10 >"$LOGS/c-10.out" 2>&1
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "The Lion said" \
        --max-tokens 30 >"$LOGS/c-other.out" 2>&1
    a=$(cat "$LOGS/c-30a.out")
    b=$(cat "$LOGS/c-30b.out")
    p10=$(sed 's/ *$//' "$LOGS/c-10.out")
    if [[ -z $a || $a != "$b" ]]; then
        fail deterministic "two runs with one prompt differ"
    elif [[ $a != "$p10"* ]]; then
        fail deterministic "10 tokens are not a prefix of 30"
    elif [[ $a == "$(cat "$LOGS/c-other.out")" ]]; then
        fail deterministic "two prompts gave the same text"
    else
        pass deterministic
    fi

    # max_tokens honoured exactly, up to the limit (1024).
    ok=1
    for want in 1 2 17 100 1024; do
        py "$HERE/llm_py.py" stream "$T" "The Fox" "$want" \
            >"$LOGS/max-$want.out" 2>&1
        got=$(sed -n 's/^tokens=//p' "$LOGS/max-$want.out")
        if [[ $got != "$want" ]]; then
            fail max-tokens "asked for $want, got '${got:-error}':" \
                 "$(head -n 2 "$LOGS/max-$want.out")"
            ok=0
            break
        fi
    done
    [[ $ok -eq 1 ]] && pass max-tokens

    # Every INVALID_ARGUMENT case, from grpcio and from llm_client.
    check_invalid() {  # check_invalid CASE PROMPT MAX
        local name=$1 prompt=$2 max=$3 out=$LOGS/invalid-$1
        py "$HERE/llm_py.py" invalid "$T" "$prompt" "$max" >"$out.py" 2>&1
        local rc=$?
        timeout 30 "$BIN/llm_client" --target "$T" --prompt "$prompt" \
            --max-tokens "$max" >"$out.c" 2>"$out.c.err"
        local crc=$?
        if [[ $rc -ne 0 ]]; then
            fail "invalid-$name" "grpcio: $(head -n 2 "$out.py")"
        elif [[ $crc -ne 1 ]] ||
             ! grep -q 'INVALID_ARGUMENT' "$out.c.err"; then
            fail "invalid-$name" "llm_client: status $crc, $(head -n 1 "$out.c.err")"
        elif sanitizer_report "$out.c.err"; then
            fail "invalid-$name" "sanitizer report from llm_client"
        else
            pass "invalid-$name"
        fi
    }
    check_invalid empty-prompt "" 5
    check_invalid blank-prompt "  	 " 5
    check_invalid negative-max-tokens "The Fox" -1
    check_invalid max-tokens-over-limit "The Fox" 1025
    check_invalid max-tokens-int32-max "The Fox" 2147483647

    # The server is still fine after all that.
    py "$HERE/llm_py.py" stream "$T" "The Fox" 3 >"$LOGS/after.out" 2>&1
    if [[ $(sed -n 's/^tokens=//p' "$LOGS/after.out") == 3 ]]; then
        pass still-serving
    else
        fail still-serving "$(head -n 2 "$LOGS/after.out")"
    fi
    ex_stop_server "${fast[@]}"
fi

# ---- cancellation: 2 s per token ----------------------------------------
# A cancelled call stops at once: the server's end-of-call line (tokens=1,
# CANCELLED) comes well before the next token would have been due.  A server
# that slept out its delay, or went on generating, would log it about 2 s
# later, or with more tokens.  (The bound is 1 s: loaded machines, ASan.)
if start_server slow --token-delay-ms 2000; then
    T=127.0.0.1:$srv_port
    slow=("slow" "$srv_pid" "$srv_err")
    slow_log=$srv_out
    py "$HERE/llm_py.py" cancel "$T" "The Fox" 100 1 "$slow_log" \
        >"$LOGS/cancel.out" 2>&1
    rc=$?
    line=$(cat "$LOGS/cancel.out")
    after=$(sed -n 's/^after_ms=\([0-9]*\).*/\1/p' "$LOGS/cancel.out")
    if [[ $rc -ne 0 || -z $after ]]; then
        fail cancel "$line"
    elif [[ $line != *"tokens=1 status=CANCELLED"* ]]; then
        fail cancel "the server went on: $line"
    elif [[ $after -ge 1000 ]]; then
        fail cancel "the server noticed only after ${after} ms: $line"
    else
        pass cancel
    fi

    # Ctrl-C on llm_client: it cancels the call, says so, exits 130; the
    # server sees the cancel at once.
    before=$(grep -c 'status=CANCELLED' "$slow_log")
    timeout -k 5 60 "$BIN/llm_client" --target "$T" --prompt "The Fox" \
        --max-tokens 100 >"$LOGS/sigint.out" 2>"$LOGS/sigint.err" &
    cpid=$!
    # Wait for the first token (2 s), then interrupt.
    for ((i = 0; i < 300; i++)); do
        [[ -s $LOGS/sigint.out ]] && break
        sleep 0.05
    done
    sleep 0.2
    t0=$(date +%s%N)
    kill -INT "$cpid"
    wait "$cpid"
    rc=$?
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    for ((i = 0; i < 100; i++)); do
        (($(grep -c 'status=CANCELLED' "$slow_log") > before)) && break
        sleep 0.02
    done
    if [[ $rc -ne 130 ]]; then
        fail sigint "llm_client exited with $rc, not 130"
        show "$LOGS/sigint.err"
    elif [[ $ms -gt 3000 ]]; then
        fail sigint "llm_client took ${ms} ms to exit"
    elif ! grep -q 'interrupted' "$LOGS/sigint.err"; then
        fail sigint "no message on stderr"
        show "$LOGS/sigint.err"
    elif sanitizer_report "$LOGS/sigint.err"; then
        fail sigint "sanitizer report from llm_client"
        show "$LOGS/sigint.err"
    elif (($(grep -c 'status=CANCELLED' "$slow_log") <= before)); then
        fail sigint "the server did not see the call cancelled"
    else
        pass sigint
    fi
    ex_stop_server "${slow[@]}"
fi

# ---- flow control: no delay, a huge max_tokens, a slow reader ------------
# The reader takes one message a second for 3 s with a 64 KiB HTTP/2 window.
# The server must block in mrpc_stream_send once that window and its send
# queue (256 KiB) are full, instead of generating all 5 million tokens into
# memory: at >= 9 bytes per message on the wire, at most ~1 MiB (116508
# tokens) can be in flight.  Its RSS is sampled meanwhile and must stay
# within 32 MiB of where it started.
if start_server flow --token-delay-ms 0 --max-tokens-limit 10000000; then
    T=127.0.0.1:$srv_port
    flow=("flow" "$srv_pid" "$srv_err")
    rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
    child=$(pgrep -P "$srv_pid" llm_server || echo "$srv_pid")
    rss0=$(rss "$child")
    py "$HERE/llm_py.py" slow "$T" "The Fox" 5000000 3 \
        >"$LOGS/slow.out" 2>&1 &
    ppid_=$!
    max_rss=$rss0
    while kill -0 "$ppid_" 2>/dev/null; do
        r=$(rss "$child")
        [[ -n $r && $r -gt $max_rss ]] && max_rss=$r
        sleep 0.2
    done
    wait "$ppid_"
    rc=$?
    for ((i = 0; i < 100; i++)); do
        grep -q 'status=CANCELLED' "$srv_out" && break
        sleep 0.02
    done
    sent=$(sed -n 's/^generate:.* tokens=\([0-9]*\) status=CANCELLED.*/\1/p' \
           "$srv_out" | tail -n 1)
    if [[ $rc -ne 0 ]]; then
        fail slow-reader "client: $(cat "$LOGS/slow.out")"
    elif [[ -z $sent ]]; then
        fail slow-reader "no end-of-call line from the server"
        show "$srv_out"
    elif [[ $sent -gt 116508 ]]; then
        fail slow-reader "the server sent $sent tokens to a reader that took" \
             "$(cat "$LOGS/slow.out"): not flow-controlled"
    elif [[ -n $rss0 && $((max_rss - rss0)) -gt 32768 ]]; then
        fail slow-reader "server RSS grew from ${rss0} to ${max_rss} KiB"
    else
        echo "  slow-reader: server sent $sent tokens; RSS ${rss0} -> max ${max_rss} KiB"
        pass slow-reader
    fi
    ex_stop_server "${flow[@]}"
fi

# ---- TLS, mutual TLS, health, reflection (examples/common) --------------
# c_tls OUT ARGS...: llm_client --prompt "The Fox" --max-tokens 20 ARGS;
# sets rc; stdout in OUT, stderr in OUT.err.
c_tls() {
    local out=$1
    shift
    timeout 60 "$BIN/llm_client" --target "$T" --prompt "The Fox" \
        --max-tokens 20 "$@" >"$out" 2>"$out.err"
    rc=$?
}
# c_refused CASE WANT ARGS...: llm_client ARGS must fail (1) saying WANT.
c_refused() {
    local name=$1 want=$2 out=$LOGS/$1.out
    shift 2
    c_tls "$out" "$@"
    if [[ $rc -ne 1 ]] || ! grep -qF -- "$want" "$out.err"; then
        fail "$name" "llm_client exited with $rc: $(head -n 2 "$out.err")"
    elif sanitizer_report "$out.err"; then
        fail "$name" "sanitizer report from llm_client"
        show "$out.err"
    else
        pass "$name"
    fi
}
# c_served CASE ARGS...: llm_client ARGS prints the offline text.
c_served() {
    local name=$1 out=$LOGS/$1.out
    shift
    c_tls "$out" "$@"
    if [[ $rc -ne 0 ]]; then
        fail "$name" "llm_client exited with $rc: $(head -n 2 "$out.err")"
    elif [[ -z $offline20 || $(cat "$out") != "$offline20" ]]; then
        fail "$name" "text differs from llm_server --generate"
        echo "  C:       $(head -c 200 "$out")"
        echo "  offline: ${offline20:0:200}"
    elif sanitizer_report "$out.err"; then
        fail "$name" "sanitizer report from llm_client"
        show "$out.err"
    else
        pass "$name"
    fi
}
# py_tls CASE WANT [--cert]: grpcio over TLS streams 20 tokens (WANT ok)
# or is refused (WANT refused); --cert: with the client certificate.
py_tls() {
    local name=$1 want=$2 out=$LOGS/$1.py
    shift 2
    ex_grpcio_tls "$@" py "$HERE/llm_py.py" stream "$T" "The Fox" 20 \
        >"$out" 2>&1
    local prc=$? got
    got=$(sed -n 's/^tokens=//p' "$out")
    if [[ $want == ok && ( $prc -ne 0 || $got != 20 ) ]]; then
        fail "$name" "grpcio over TLS: $(grep -v '^E[0-9]' "$out" | head -n 2)"
    elif [[ $want == refused && $prc -eq 0 ]]; then
        fail "$name" "grpcio without a client certificate got in"
    elif [[ $want == refused ]] && ! grep -q UNAVAILABLE "$out"; then
        fail "$name" "not refused with UNAVAILABLE: $(tail -n 2 "$out")"
    else
        pass "$name"
    fi
}

offline20=$(timeout 30 "$BIN/llm_server" --generate "The Fox" --max-tokens 20)
if ex_setup "$LOGS/ex"; then
    if start_server tls --token-delay-ms 1 "${EX_SERVER_TLS[@]}"; then
        T=127.0.0.1:$srv_port
        tls=("tls" "$srv_pid" "$srv_err")
        c_served tls-c-client "${EX_CLIENT_TLS[@]}"
        c_refused tls-wrong-name "hostname mismatch" --tls-ca \
            "$EX_CERTS/ca.pem" --authority wrong.example.com
        py_tls tls-py-client ok
        ex_health_case tls-health "$LOGS/tls-health.log" --tls "$T" "" \
            llm.LLMService
        ex_stop_server "${tls[@]}"
    fi
    if start_server mtls --token-delay-ms 1 "${EX_SERVER_MTLS[@]}"; then
        T=127.0.0.1:$srv_port
        mtls=("mtls" "$srv_pid" "$srv_err")
        c_refused mtls-no-cert "certificate required" "${EX_CLIENT_TLS[@]}"
        c_served mtls-c-client "${EX_CLIENT_TLS[@]}" "${EX_CLIENT_CERT[@]}"
        py_tls mtls-py-no-cert refused
        py_tls mtls-py-cert ok --cert
        ex_stop_server "${mtls[@]}"
    fi
    if start_server services --token-delay-ms 1; then
        T=127.0.0.1:$srv_port
        services=("services" "$srv_pid" "$srv_err")
        grep -qF "llm_server: serving llm.LLMService over plaintext (h2c); health on; reflection on with llm.proto" "$srv_out" ||
            fail services-line "no \"serving\" line: $(head -n 1 "$srv_out")"
        ex_services_cases "$LOGS" "$T" llm.LLMService
        ex_stop_server "${services[@]}"
    fi
fi

ex_finish examples/llm
