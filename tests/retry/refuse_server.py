#!/usr/bin/python3
"""A fake gRPC server in raw HTTP/2 (Debian's python3-h2) that refuses,
turns away or fails requests, for the retry tests of tests/retry/run.sh.

    /usr/bin/python3 tests/retry/refuse_server.py --mode MODE --log FILE
        [--fail N] [--fail_code CODE] [--pushback VALUE] [--then_fail]
        [--lifetime SECONDS]

Listens on 127.0.0.1 (a free port) and prints "listening on PORT".  Every
request is answered as grpc.testing.TestService/EmptyCall would be (an
empty message, status 0) unless MODE says otherwise:
  refuse-first  the first request stream gets RST_STREAM(REFUSED_STREAM)
  refuse-all    every request stream gets RST_STREAM(REFUSED_STREAM)
  goaway-first  on the first connection, the first request gets
                GOAWAY(last_stream_id=0), and the connection is closed
  junk-first    the first connection gets SETTINGS and, in the same
                write, a DATA frame on stream 0 (a connection error): the
                client takes SETTINGS, queues its request and tears the
                connection down before writing it; no request on it
  fail          the first N requests (--fail) end trailers-only with
                grpc-status CODE (--fail_code, default 14, UNAVAILABLE),
                and with grpc-retry-pushback-ms: VALUE when --pushback is
                given; with --then_fail the later ones end UNAVAILABLE
                (no pushback) instead of succeeding
Each request adds a line to FILE:
  stream conn=C id=ID t=MS prev=P action=A
with C the connection's number (from 1), MS the monotonic time in ms when
its headers came, P its grpc-previous-rpc-attempts header ("-" if none)
and A one of refused, goaway, fail, unavail (--then_fail), ok.  Exits
after --lifetime seconds.
"""

import argparse
import socket
import sys
import threading
import time

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
except ImportError:
    print("refuse_server: cannot import h2 (apt install python3-h2)",
          file=sys.stderr)
    sys.exit(2)

EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"  # uncompressed, 0 bytes
UNAVAILABLE = "14"


class State:
    """What every connection shares: counters and the log."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.conns = 0
        self.streams = 0
        self.log = open(args.log, "a", buffering=1)

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns

    def next_stream(self):
        with self.lock:
            self.streams += 1
            return self.streams

    def note(self, conn, sid, prev, action):
        t = int(time.monotonic() * 1000)
        with self.lock:
            self.log.write("stream conn=%d id=%d t=%d prev=%s action=%s\n"
                           % (conn, sid, t, prev, action))


def decide(st, conn_no, nth):
    mode = st.args.mode
    if mode == "refuse-all" or (mode == "refuse-first" and nth == 1):
        return "refused"
    if mode == "goaway-first" and conn_no == 1:
        return "goaway"
    if mode == "fail" and nth <= st.args.fail:
        return "fail"
    if mode == "fail" and st.args.then_fail:
        return "unavail"
    return "ok"


def respond(h, sid, action, args):
    if action in ("fail", "unavail"):
        code = args.fail_code if action == "fail" else UNAVAILABLE
        hdrs = [(":status", "200"), ("content-type", "application/grpc"),
                ("grpc-status", code), ("grpc-message", "flaky")]
        if action == "fail" and args.pushback is not None:
            hdrs.append(("grpc-retry-pushback-ms", args.pushback))
        h.send_headers(sid, hdrs, end_stream=True)
        return
    h.send_headers(sid, [(":status", "200"),
                         ("content-type", "application/grpc")])
    h.send_data(sid, EMPTY_MESSAGE)
    h.send_headers(sid, [("grpc-status", "0")], end_stream=True)


def drain(sock, seconds):
    """Reads until the peer closes (or a while): closing with unread bytes
    would send a TCP RST, which could overtake the GOAWAY."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def serve(st, sock):
    conn_no = st.next_conn()
    cfg = h2.config.H2Configuration(client_side=False,
                                    header_encoding="utf-8")
    h = h2.connection.H2Connection(config=cfg)
    h.initiate_connection()
    pending = {}  # stream id -> action, answered at the request's end
    goaway = False
    try:
        if st.args.mode == "junk-first" and conn_no == 1:
            sock.sendall(h.data_to_send() + b"\x00\x00\x00\x00\x00" +
                         b"\x00\x00\x00\x00")
            goaway = True
        else:
            sock.sendall(h.data_to_send())
        while not goaway:
            data = sock.recv(65536)
            if not data:
                break
            try:
                events = h.receive_data(data)
            except h2.exceptions.ProtocolError:
                break
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    hdrs = dict(ev.headers)
                    action = decide(st, conn_no, st.next_stream())
                    st.note(conn_no, ev.stream_id,
                            hdrs.get("grpc-previous-rpc-attempts", "-"),
                            action)
                    if action == "refused":
                        h.reset_stream(ev.stream_id,
                                       h2.errors.ErrorCodes.REFUSED_STREAM)
                    elif action == "goaway":
                        h.close_connection(last_stream_id=0)
                        goaway = True
                        break
                    else:
                        pending[ev.stream_id] = action
                elif isinstance(ev, h2.events.StreamEnded):
                    action = pending.pop(ev.stream_id, None)
                    if action:
                        respond(h, ev.stream_id, action, st.args)
            sock.sendall(h.data_to_send())
        if goaway:
            sock.shutdown(socket.SHUT_WR)
            drain(sock, 3)
    except OSError:
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["refuse-first", "refuse-all", "goaway-first",
                             "junk-first", "fail"])
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--fail_code", default=UNAVAILABLE)
    ap.add_argument("--then_fail", action="store_true")
    ap.add_argument("--pushback")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    st = State(args)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("listening on %d" % ls.getsockname()[1], flush=True)
    ls.settimeout(0.2)
    end = time.monotonic() + args.lifetime
    while time.monotonic() < end:
        try:
            sock, _ = ls.accept()
        except socket.timeout:
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(st, sock), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
