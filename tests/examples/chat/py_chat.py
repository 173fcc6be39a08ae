"""A grpcio chat client for tests/examples/chat.sh, built like the blog's
(a queue feeding the request generator, a thread printing responses).

    py_chat.py TARGET NAME [--slow] < commands

Every stdin line is sent as a message from NAME, except:
    quit            half-close and wait for the server's end (as EOF does)
    /cancel         cancel the call
    /blast N SIZE [MS]
                    send N messages of SIZE bytes ("blast <i> xxx..."), one
                    every MS ms (default 2) and at most 8 not yet echoed back
                    by the room
    /read           (with --slow) start reading responses
Prints each message as "user: content" and, at the end, "status: CODE
details".  --slow: do not read responses until "/read", with a 64 KiB
HTTP/2 window (no BDP probing), so the server's queue for us fills up.
"""
import os
import sys
import threading
import time
import queue

import grpc
# ex_grpc (tests/examples/common): plaintext, or TLS when the test sets
# EX_TLS_CA (and EX_TLS_AUTHORITY, EX_TLS_CERT / EX_TLS_KEY).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
import ex_grpc  # noqa: E402
import chat_pb2
import chat_pb2_grpc


def main():
    target, name = sys.argv[1], sys.argv[2]
    slow = "--slow" in sys.argv[3:]
    options = []
    if slow:
        options = [("grpc.http2.bdp_probe", 0),
                   ("grpc.http2.lookahead_bytes", 65536)]
    stub = chat_pb2_grpc.ChatServiceStub(
        ex_grpc.channel(target, options=options))
    outgoing = queue.Queue()

    def generate_messages():
        while True:
            msg = outgoing.get()
            if msg is None:
                break
            yield chat_pb2.ChatMessage(content=msg, user=name)

    responses = stub.Chat(generate_messages())
    # /blast paces itself like a busy but sane client: a message every few
    # ms, and never more than 8 whose echo is not back yet.
    in_flight = threading.Semaphore(8)

    def receive():
        try:
            for r in responses:
                if r.user == name and r.content.startswith("blast "):
                    in_flight.release()
                print(f"{r.user}: {r.content}", flush=True)
            print("status: OK", flush=True)
        except grpc.RpcError as e:
            print(f"status: {e.code().name} {e.details()}", flush=True)

    recv_thread = threading.Thread(target=receive)
    if not slow:
        recv_thread.start()
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if line == "quit":
            break
        if line == "/cancel":
            responses.cancel()
            break
        if line == "/read":
            recv_thread.start()
            slow = False
            continue
        if line.startswith("/blast "):
            _, n, size, *gap = line.split()
            gap = float(gap[0]) / 1000 if gap else 0.002
            for i in range(int(n)):
                in_flight.acquire()
                outgoing.put(f"blast {i} " + "x" * int(size))
                time.sleep(gap)
            continue
        outgoing.put(line)
    outgoing.put(None)
    if slow:
        recv_thread.start()
    recv_thread.join()


if __name__ == "__main__":
    main()
