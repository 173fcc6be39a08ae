"""grpcio probes of llm_server for tests/examples/llm.sh.

    llm_py.py stream TARGET PROMPT MAX_TOKENS
        One call; checks its shape: every message but the last has a
        non-empty token and is_finished false, the last has is_finished true
        and an empty token, the status is OK.  Prints "tokens=N" and then
        the text on the next line.
    llm_py.py invalid TARGET PROMPT MAX_TOKENS
        Expects INVALID_ARGUMENT before any token; prints "code=... details=...".
    llm_py.py cancel TARGET PROMPT MAX_TOKENS AFTER SERVER_LOG
        Reads AFTER tokens, cancels, then watches SERVER_LOG for the server's
        next "status=CANCELLED" end-of-call line and prints it with how long
        after the cancel it came: "after_ms=N read=N line=...".
    llm_py.py slow TARGET PROMPT MAX_TOKENS SECONDS
        Reads one message per second for SECONDS, then cancels.  The channel
        has BDP probing off and a 64 KiB stream window, so the server can get
        ahead of the reader by no more than that window plus its own send
        queue.  Prints "read=N".
Exit status 0 when the call went as expected, 1 otherwise.
"""
import os
import sys
import time

import grpc
# ex_grpc (tests/examples/common): plaintext, or TLS when the test sets
# EX_TLS_CA (and EX_TLS_AUTHORITY, EX_TLS_CERT / EX_TLS_KEY).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
import ex_grpc  # noqa: E402
import llm_pb2
import llm_pb2_grpc


def stub_for(target, options=None):
    channel = ex_grpc.channel(target, options=options)
    return channel, llm_pb2_grpc.LLMServiceStub(channel)


def req(prompt, max_tokens):
    return llm_pb2.GenerateRequest(prompt=prompt, max_tokens=int(max_tokens))


def do_stream(target, prompt, max_tokens):
    _, stub = stub_for(target)
    msgs = list(stub.Generate(req(prompt, max_tokens), timeout=120))
    if not msgs:
        print("no messages")
        return 1
    *body, last = msgs
    for i, m in enumerate(body):
        if m.is_finished or not m.token:
            print(f"message {i}: is_finished={m.is_finished} token={m.token!r}")
            return 1
    if not last.is_finished or last.token:
        print(f"last message: is_finished={last.is_finished} token={last.token!r}")
        return 1
    print(f"tokens={len(body)}")
    print("".join(m.token for m in body))
    return 0


def do_invalid(target, prompt, max_tokens):
    _, stub = stub_for(target)
    try:
        for m in stub.Generate(req(prompt, max_tokens), timeout=30):
            print(f"got a message: {m!r}")
            return 1
    except grpc.RpcError as e:
        print(f"code={e.code().name} details={e.details()}")
        return 0 if e.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    print("the call succeeded")
    return 1


def cancelled_lines(log):
    with open(log, encoding="utf-8", errors="replace") as f:
        return [l.strip() for l in f
                if l.startswith("generate:") and "status=CANCELLED" in l]


def do_cancel(target, prompt, max_tokens, after, log):
    _, stub = stub_for(target)
    call = stub.Generate(req(prompt, max_tokens), timeout=60)
    n = 0
    for _m in call:
        n += 1
        if n >= int(after):
            break
    before = len(cancelled_lines(log))
    t_cancel = time.monotonic()
    call.cancel()
    while time.monotonic() < t_cancel + 10:
        lines = cancelled_lines(log)
        if len(lines) > before:
            after_ms = int((time.monotonic() - t_cancel) * 1000)
            print(f"after_ms={after_ms} read={n} line={lines[-1]}")
            return 0
        time.sleep(0.005)
    print("the server logged no cancelled call within 10 s")
    return 1


def do_slow(target, prompt, max_tokens, seconds):
    _, stub = stub_for(target, [("grpc.http2.bdp_probe", 0),
                                ("grpc.http2.lookahead_bytes", 65536)])
    call = stub.Generate(req(prompt, max_tokens), timeout=120)
    t0 = time.monotonic()
    n = 0
    for _m in call:
        n += 1
        if time.monotonic() - t0 >= float(seconds):
            break
        time.sleep(1)
    call.cancel()
    print(f"read={n}")
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    fn = {"stream": do_stream, "invalid": do_invalid, "cancel": do_cancel,
          "slow": do_slow}[cmd]
    return fn(*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
