#!/usr/bin/env bash
# Tests of examples/chat (a chat room, bidirectional streaming).
#
#   tests/examples/chat.sh BUILD_DIR        (e.g. build, build-asan)
#
# Runs BUILD_DIR/bin/chat_server on free 127.0.0.1 ports (port 0, read back
# from its "listening on" line) with a room of BUILD_DIR/bin/chat_client
# processes, the blog's own Python chat client and a grpcio client built the
# same way (tests/examples/chat/*.py, stubs generated into
# BUILD_DIR/gen/py-chat), each fed through a FIFO.  Prints
# "PASS example chat-<case>" / "FAIL example chat-<case>: why" per case;
# exits non-zero if any failed.  TLS, mutual TLS, health and reflection
# (examples/common; helpers in tests/examples/common/lib.sh, certificates
# from tests/tls/make-certs.sh):
#   tls-room            chat_server --tls-cert/--tls-key: chat_client
#                       --tls-ca --authority foo.test.google.fr and a grpcio
#                       client over TLS (ssl_channel_credentials with the
#                       test CA, ssl_target_name_override) chat and leave
#   tls-health          health Check over TLS: "" and chat.ChatService SERVING
#   mtls-no-cert, mtls-c-client  chat_server --tls-client-ca: chat_client
#                       refused without a client certificate, in with one
#   reflect-list        plaintext: tests/services/reflect.py lists
#                       chat.ChatService, health and reflection
# Every server is stopped with SIGTERM and must exit 0 with no sanitizer
# report on stderr.  Each run logs into its own
# BUILD_DIR/example-logs/chat.XXXXXX/, removed when everything passed, kept
# (and named) when not, so that runs on one BUILD_DIR may overlap.
set -uo pipefail
# Reporting, logs, setup and servers: tests/examples/common/harness.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common/harness.sh"
ex_begin chat "example chat-" "$@"
HERE=$ROOT/tests/examples/chat
ex_logs_run

SERVER_LIFETIME=300
SERVER_KILL_AFTER=60
CLIENT_LIFETIME=120
STOP_TIMEOUT=30     # s from SIGTERM to exit

ex_at_exit() { rm -f "$LOGS"/*.in; }  # the FIFOs (a FIFO left behind blocks a grep -r)

# start_server NAME ARGS...: chat_server on 127.0.0.1:0 with ARGS; sets
# srv_pid, srv_port, srv_out, srv_err.
start_server() {
    ex_start_server "$1" "$BIN/chat_server" --listen 127.0.0.1:0 "${@:2}"
}

# Clients, each fed through a FIFO held open by this script.
declare -A cl_pid cl_fd
# start_client ID KIND TARGET [ARGS...]: KIND c (chat_client --name ID),
# py (py_chat.py TARGET ID ARGS), blog (blog_chat.py TARGET).  Output in
# $LOGS/ID.out (stdout) and $LOGS/ID.err.
start_client() {
    local id=$1 kind=$2 target=$3
    shift 3
    local fifo=$LOGS/$id.in fd
    rm -f "$fifo"
    mkfifo "$fifo"
    case $kind in
    c)    timeout -k 5 "$CLIENT_LIFETIME" "$BIN/chat_client" --target "$target" \
              --name "$id" "$@" <"$fifo" >"$LOGS/$id.out" 2>"$LOGS/$id.err" & ;;
    py)   timeout -k 5 "$CLIENT_LIFETIME" env PYTHONPATH="$GEN" "$PY" -u \
              "$HERE/py_chat.py" "$target" "$id" "$@" \
              <"$fifo" >"$LOGS/$id.out" 2>"$LOGS/$id.err" & ;;
    blog) timeout -k 5 "$CLIENT_LIFETIME" env PYTHONPATH="$GEN" "$PY" -u \
              "$HERE/blog_chat.py" "$target" \
              <"$fifo" >"$LOGS/$id.out" 2>"$LOGS/$id.err" & ;;
    esac
    cl_pid[$id]=$!
    client_pids+=("$!")
    exec {fd}>"$fifo"
    cl_fd[$id]=$fd
}
say() { echo "$2" >&"${cl_fd[$1]}"; }  # say ID LINE
hangup() {  # hangup ID: end of input
    [[ -n ${cl_fd[$1]:-} ]] || return 0
    exec {cl_fd[$1]}>&-
    unset "cl_fd[$1]"
}
# finish ID SECONDS: waits for the client to exit; sets cl_rc (124: timed out).
finish() {
    local id=$1 i
    for ((i = 0; i < $2 * 20; i++)); do
        kill -0 "${cl_pid[$id]}" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "${cl_pid[$id]}" 2>/dev/null; then
        kill -TERM "${cl_pid[$id]}"
        wait "${cl_pid[$id]}" 2>/dev/null
        cl_rc=124
    else
        wait "${cl_pid[$id]}" 2>/dev/null
        cl_rc=$?
    fi
}
# wait_all SECONDS PATTERN FILE...: true once every FILE has a line with
# PATTERN (fixed string).
wait_all() {
    local secs=$1 pat=$2 i f ok
    shift 2
    for ((i = 0; i < secs * 20; i++)); do
        ok=1
        for f in "$@"; do
            grep -qF -- "$pat" "$f" 2>/dev/null || { ok=0; break; }
        done
        [[ $ok -eq 1 ]] && return 0
        sleep 0.05
    done
    return 1
}
missing() {  # missing PATTERN FILE...: names the files without PATTERN
    local pat=$1 f out=()
    shift
    for f in "$@"; do grep -qF -- "$pat" "$f" || out+=("$(basename "$f")"); done
    echo "${out[*]}"
}
joined() { grep -c '^join:' "$1"; }
wait_joins() {  # wait_joins LOG N
    local i
    for ((i = 0; i < 400; i++)); do
        (($(joined "$1") >= $2)) && return 0
        sleep 0.05
    done
    return 1
}

# ---- setup -------------------------------------------------------------
ex_example_setup chat_server chat_client

# ---- the room ------------------------------------------------------------
if start_server room; then
    T=127.0.0.1:$srv_port
    room=("room" "$srv_pid" "$srv_err")
    LOG=$srv_out
    # alice, bob, eve: chat_client; carol, dave: grpcio; blog: the blog's
    # client.  Each says hello once the server has logged all six joins, so
    # that nobody misses a hello sent before it joined.
    ids=(alice bob carol dave eve blog)
    start_client alice c "$T"
    start_client bob c "$T"
    start_client carol py "$T"
    start_client dave py "$T"
    start_client eve c "$T"
    start_client blog blog "$T"
    outs=()
    for id in "${ids[@]}"; do outs+=("$LOGS/$id.out"); done
    ok=1
    if ! wait_joins "$LOG" 6; then
        fail room "only $(joined "$LOG") of 6 clients joined"
        ok=0
    fi
    if [[ $ok -eq 1 ]]; then
        for id in "${ids[@]}"; do say "$id" "hello from $id"; done
        for id in "${ids[@]}"; do
            if ! wait_all 20 "hello from $id" "${outs[@]}"; then
                fail room "'hello from $id' did not reach: $(missing "hello from $id" "${outs[@]}")"
                ok=0
                break
            fi
        done
    fi
    if [[ $ok -eq 1 ]]; then
        # Names as sent (ours: --name; grpcio: the user field), "anon-<n>"
        # for the blog's client, which sends none.
        if ! grep -q '^carol: hello from carol$' "$LOGS/alice.out" ||
           ! grep -q '^anon-[0-9]*: hello from blog$' "$LOGS/bob.out" ||
           ! grep -q '^Server: hello from alice$' "$LOGS/blog.out"; then
            fail room "unexpected lines: $(head -n 6 "$LOGS/alice.out" | tr '\n' '|')"
        else
            pass room
        fi
        grep -q '^Server: hello from blog$' "$LOGS/blog.out" &&
            grep -q 'hello from blog' "$LOGS/carol.out" &&
            pass blog-client || fail blog-client "$(head -n 3 "$LOGS/blog.out")"
    fi

    # Leaving in three ways does not disturb the others: alice half-closes
    # ("quit"), dave cancels, eve's process dies (connection lost).
    if [[ $ok -eq 1 ]]; then
        leaves=$(grep -c '^leave:' "$LOG")
        say alice quit
        say dave /cancel
        # chat_client is the only child of eve's timeout(1) wrapper.
        eve_pid=$(pgrep -P "${cl_pid[eve]}")
        [[ -n $eve_pid ]] && kill -KILL "$eve_pid"
        wait "${cl_pid[eve]}" 2>/dev/null  # (and no "Killed" job notice)
        finish alice 10
        alice_rc=$cl_rc
        finish dave 10
        for ((i = 0; i < 200; i++)); do
            (($(grep -c '^leave:' "$LOG") >= leaves + 3)) && break
            sleep 0.05
        done
        say bob "still here from bob"
        say carol "still here from carol"
        say blog "still here from blog"
        rest=("$LOGS/bob.out" "$LOGS/carol.out" "$LOGS/blog.out")
        if [[ $alice_rc -ne 0 ]]; then
            fail leave "alice (half-close) exited with $alice_rc"
            show "$LOGS/alice.err"
        elif ! grep -q '^status: CANCELLED' "$LOGS/dave.out"; then
            fail leave "dave (cancel): $(tail -n 1 "$LOGS/dave.out")"
        elif (($(grep -c '^leave:' "$LOG") < leaves + 3)); then
            fail leave "the server saw $(($(grep -c '^leave:' "$LOG") - leaves)) of 3 leave"
        elif ! grep -q 'user=alice status=OK' "$LOG" ||
             ! grep -q 'user=dave status=CANCELLED' "$LOG" ||
             ! grep -q 'user=eve status=CANCELLED' "$LOG"; then
            fail leave "leave lines: $(grep '^leave:' "$LOG" | tr '\n' '|')"
        elif ! wait_all 20 "still here from bob" "${rest[@]}" ||
             ! wait_all 20 "still here from carol" "${rest[@]}" ||
             ! wait_all 20 "Server: still here from blog" "$LOGS/blog.out"; then
            fail leave "the rest of the room stopped working"
        elif grep -q 'still here' "$LOGS/alice.out"; then
            fail leave "alice got messages after leaving"
        elif sanitizer_report "$LOGS/alice.err"; then
            fail leave "sanitizer report from chat_client"
            show "$LOGS/alice.err"
        else
            pass leave
        fi
    fi

    # End of input on chat_client: half-close, then exit 0 once the server
    # ended the call; the blog's client likewise on "quit".
    hangup carol
    say blog quit
    finish carol 10
    crc=$cl_rc
    finish blog 10
    brc=$cl_rc
    if [[ $crc -ne 0 || $brc -ne 0 ]]; then
        fail quit "carol exited with $crc, blog with $brc"
    elif ! grep -q '^status: OK' "$LOGS/carol.out"; then
        fail quit "carol: $(tail -n 1 "$LOGS/carol.out")"
    else
        pass quit
    fi

    # Shutdown with bob still in the room: the server exits 0, bob is told
    # (UNAVAILABLE) and exits 1 without waiting for more input.
    ex_stop_server "${room[@]}"
    finish bob 10
    if [[ $cl_rc -ne 1 ]] || ! grep -q 'UNAVAILABLE' "$LOGS/bob.err"; then
        fail shutdown "bob exited with $cl_rc: $(cat "$LOGS/bob.err")"
    elif sanitizer_report "$LOGS/bob.err"; then
        fail shutdown "sanitizer report from chat_client"
        show "$LOGS/bob.err"
    else
        pass shutdown
    fi
    for id in "${ids[@]}"; do hangup "$id"; done
fi

# ---- a slow member -------------------------------------------------------
# slow joins with a 64 KiB HTTP/2 window and reads nothing; fast (ours) and
# loud (grpcio) read everything; loud sends 1000 messages of 1 KiB, one every
# 4 ms.  The room must not wait for slow: fast and loud get all 1000, in
# order, while slow still reads nothing; slow is dropped once its queue
# (512 KiB here, on top of its window) is full, and, once it reads, ends with
# RESOURCE_EXHAUSTED.  (fast has that queue, two seconds of this traffic, as
# slack: the room drops any member that falls that far behind.)
if start_server slowroom --queue-bytes 524288; then
    T=127.0.0.1:$srv_port
    slowroom=("slowroom" "$srv_pid" "$srv_err")
    LOG=$srv_out
    start_client slow py "$T" --slow
    wait_joins "$LOG" 1
    start_client fast c "$T"
    start_client loud py "$T"
    if ! wait_joins "$LOG" 3; then
        fail slow-member "only $(joined "$LOG") of 3 clients joined"
    else
        say loud "/blast 1000 1024 4"
        if ! wait_all 60 "blast 999 " "$LOGS/fast.out" "$LOGS/loud.out"; then
            fail slow-member "the fast members did not get every message:" \
                 "fast $(grep -c 'blast' "$LOGS/fast.out"), loud $(grep -c 'blast' "$LOGS/loud.out")"
        elif [[ $(grep -o '^loud: blast [0-9]*' "$LOGS/fast.out" | cut -d' ' -f3 |
                  tr '\n' ' ') != "$(seq -s ' ' 0 999) " ]]; then
            fail slow-member "fast did not get loud's 1000 messages once each, in order"
        elif ! grep -q '^kick: id=1 reason=slow' "$LOG"; then
            fail slow-member "slow was not dropped: $(grep -E '^(kick|leave)' "$LOG" | tr '\n' '|')"
        else
            say slow /read
            if ! wait_all 20 "status: RESOURCE_EXHAUSTED" "$LOGS/slow.out"; then
                fail slow-member "slow: $(tail -n 1 "$LOGS/slow.out" | head -c 200)"
            else
                got=$(grep -c ': blast ' "$LOGS/slow.out")
                echo "  slow-member: slow got $got of 1000 before RESOURCE_EXHAUSTED"
                pass slow-member
            fi
        fi
    fi
    # The others go on: fast says goodbye and loud sees it.
    say fast "bye from fast"
    if wait_all 20 "fast: bye from fast" "$LOGS/loud.out"; then
        pass after-slow
    else
        fail after-slow "the room stopped after dropping slow"
    fi
    say slow quit
    hangup fast
    say loud quit
    for id in slow fast loud; do
        finish "$id" 10
        [[ $id == slow ]] && continue  # ends RESOURCE_EXHAUSTED
        [[ $cl_rc -eq 0 ]] || fail after-slow "$id exited with $cl_rc"
    done
    if sanitizer_report "$LOGS/fast.err"; then
        fail after-slow "sanitizer report from chat_client"
        show "$LOGS/fast.err"
    fi
    for id in slow fast loud; do hangup "$id"; done
    ex_stop_server "${slowroom[@]}"
fi

# ---- what the room relies on in libminirpc --------------------------------
# Sends to one call from two threads, ordered by a mutex, must reach the
# wire in that order; and mrpc_call_finish on the call's thread must not drop
# a send that another thread made (and that returned 0) before it.  See
# tests/examples/chat/send_order.c.
SO=$BUILD_DIR/tests/examples/chat_send_order
for mode in order finish; do
    name=lib-send-order
    [[ $mode == finish ]] && name=lib-send-then-finish
    if [[ ! -x $SO ]]; then
        fail "$name" "$SO is missing (build it with make)"
        continue
    fi
    timeout 60 "$SO" "$mode" >"$LOGS/$name.out" 2>&1
    rc=$?
    if [[ $rc -eq 0 ]] && ! sanitizer_report "$LOGS/$name.out"; then
        pass "$name"
    elif [[ $rc -eq 1 ]]; then
        why="libminirpc: $(head -n 1 "$LOGS/$name.out")"
        [[ $mode == order ]] &&
            why+=" (a send made on the call's I/O thread overtakes one made earlier on another thread, still queued as a task)"
        [[ $mode == finish ]] &&
            why+=" (mrpc_call_finish on the call's I/O thread drops a send another thread made before it, still queued as a task)"
        fail "$name" "$why"
    else
        fail "$name" "exit status $rc: $(tail -n 5 "$LOGS/$name.out")"
    fi
done

# ---- TLS, mutual TLS, health, reflection (examples/common) --------------
# leave_ok CASE ID...: each client leaves ("quit") and exits 0.
leave_ok() {
    local name=$1 id ok=1
    shift
    for id in "$@"; do
        say "$id" quit
        finish "$id" 10
        if [[ $cl_rc -ne 0 ]]; then
            fail "$name" "$id exited with $cl_rc: $(tail -n 2 "$LOGS/$id.err")"
            ok=0
        elif sanitizer_report "$LOGS/$id.err"; then
            fail "$name" "sanitizer report from $id"
            show "$LOGS/$id.err"
            ok=0
        fi
    done
    [[ $ok -eq 1 ]]
}

if ex_setup "$LOGS/ex"; then
    if start_server tls "${EX_SERVER_TLS[@]}"; then
        T=127.0.0.1:$srv_port
        tlsroom=("tls" "$srv_pid" "$srv_err")
        LOG=$srv_out
        start_client tls-alice c "$T" "${EX_CLIENT_TLS[@]}"
        ex_grpcio_tls start_client tls-carol py "$T"
        outs=("$LOGS/tls-alice.out" "$LOGS/tls-carol.out")
        if ! wait_joins "$LOG" 2; then
            fail tls-room "only $(joined "$LOG") of 2 clients joined over TLS"
        else
            say tls-alice "hello over TLS from alice"
            say tls-carol "hello over TLS from carol"
            if ! wait_all 20 "tls-alice: hello over TLS from alice" "${outs[@]}" ||
               ! wait_all 20 "tls-carol: hello over TLS from carol" "${outs[@]}"; then
                fail tls-room "the messages did not go round: $(cat "${outs[@]}" | tr '\n' '|')"
            elif leave_ok tls-room tls-alice tls-carol; then
                pass tls-room
            fi
        fi
        ex_health_case tls-health "$LOGS/tls-health.log" --tls "$T" "" \
            chat.ChatService
        for id in tls-alice tls-carol; do hangup "$id"; done
        ex_stop_server "${tlsroom[@]}"
    fi
    if start_server mtls "${EX_SERVER_MTLS[@]}"; then
        T=127.0.0.1:$srv_port
        mtlsroom=("mtls" "$srv_pid" "$srv_err")
        LOG=$srv_out
        start_client mtls-nocert c "$T" "${EX_CLIENT_TLS[@]}"
        finish mtls-nocert 20
        hangup mtls-nocert
        if [[ $cl_rc -ne 1 ]] ||
           ! grep -q 'certificate required' "$LOGS/mtls-nocert.err"; then
            fail mtls-no-cert "chat_client exited with $cl_rc: $(tail -n 2 "$LOGS/mtls-nocert.err")"
        elif sanitizer_report "$LOGS/mtls-nocert.err"; then
            fail mtls-no-cert "sanitizer report from chat_client"
            show "$LOGS/mtls-nocert.err"
        else
            pass mtls-no-cert
        fi
        start_client mtls-alice c "$T" "${EX_CLIENT_TLS[@]}" \
            "${EX_CLIENT_CERT[@]}"
        if ! wait_joins "$LOG" 1; then
            fail mtls-c-client "chat_client with a certificate did not join"
        else
            say mtls-alice "hello with a certificate"
            if ! wait_all 20 "mtls-alice: hello with a certificate" \
                    "$LOGS/mtls-alice.out"; then
                fail mtls-c-client "no echo: $(tail -n 2 "$LOGS/mtls-alice.err")"
            elif leave_ok mtls-c-client mtls-alice; then
                pass mtls-c-client
            fi
        fi
        hangup mtls-alice
        ex_stop_server "${mtlsroom[@]}"
    fi
    ex_services_server chat.ChatService
fi

ex_finish examples/chat
