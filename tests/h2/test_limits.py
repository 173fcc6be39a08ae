#!/usr/bin/python3
"""Keepalive and abuse-limit tests for libminirpc's server, in raw HTTP/2.

    /usr/bin/python3 tests/h2/test_limits.py --server BUILD/bin/interop_server
        [--only NAME[,NAME...]] [--list] [--verbose] [--scale N]

Each case starts its own interop_server with the limit under test set
small (--LIMIT=N flags, named after the mrpc_server_opts fields, see
docs/security.md "Limits"), provokes it with hand-made frames (the client
and helpers of test_bad_input.py), checks the answer (GOAWAY code and debug
data, when the connection closes), checks that a bystander connection of
the same server is not affected, and stops the server with SIGTERM: it must
exit 0 with no sanitizer report.  Prints "PASS name" / "FAIL name: why".
Every wait has a deadline (multiplied by --scale; 3 for ASan builds).
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_bad_input as tb  # noqa: E402  (the harness; exits if no h2 libs)
from test_bad_input import (CaseFailure, check, hf, EMPTY_CALL,  # noqa: E402
                            FULL_DUPLEX, EMPTY_MSG, PREFACE, OK, CANCEL,
                            grpc_frame, output_request, req_headers,
                            start_call, check_empty_call, note)

ENHANCE_YOUR_CALM = 0xb
NO_ERROR = 0
LAST_ID = (1 << 31) - 1


def scaled(t):
    return t * tb.SCALE


class Conn(tb.H2Conn):
    """H2Conn that keeps every GOAWAY, with the time it arrived."""

    def __init__(self, port, **kw):
        self.goaways = []      # (time, last_stream_id, code, debug)
        self.opened = time.monotonic()
        super().__init__(port, **kw)

    def _handle(self, f, length):
        super()._handle(f, length)
        if isinstance(f, hf.GoAwayFrame):
            self.goaways.append((time.monotonic(), f.last_stream_id,
                                 f.error_code, bytes(f.additional_data)))

    def poll(self, seconds):
        """Reads and handles frames for a while (or until EOF)."""
        deadline = time.monotonic() + seconds
        while not self.eof and time.monotonic() < deadline:
            try:
                self._read_some(deadline)
            except (TimeoutError, ConnClosedError):
                pass
            self._parse()

    def wait_goaway(self, timeout, what):
        self.wait_for(lambda: self.goaways, timeout, what)
        return self.goaways[-1]

    def drain_to_eof(self, timeout):
        """True once the server closed the connection; keeps the frames."""
        deadline = time.monotonic() + scaled(timeout)
        while not self.eof:
            try:
                self._read_some(deadline)
            except TimeoutError:
                return False
            except ConnClosedError:
                self._parse()
                return True
            self._parse()
        return True


ConnClosedError = tb.ConnClosed


def goaway_desc(conn):
    return ", ".join("GOAWAY(last=%d, code=%d, %r) at +%.2fs" %
                     (g[1], g[2], g[3], g[0] - conn.opened)
                     for g in conn.goaways) or "no GOAWAY"


def expect_fatal_goaway(conn, debug, timeout, what):
    """GOAWAY ENHANCE_YOUR_CALM with this debug data, then the close."""
    try:
        conn.wait_goaway(timeout, what)
    except CaseFailure as e:
        raise CaseFailure("%s: %s; %s" % (what, e, goaway_desc(conn)))
    _, _, code, dbg = conn.goaways[-1]
    check(code == ENHANCE_YOUR_CALM and dbg == debug,
          "%s: expected GOAWAY ENHANCE_YOUR_CALM %r, got %s"
          % (what, debug, goaway_desc(conn)))
    check(conn.drain_to_eof(3), "%s: the connection stayed open after %s"
          % (what, goaway_desc(conn)))


def send_frame_raw(conn, ftype, flags, sid, payload):
    conn.send_raw(struct.pack(">I", len(payload))[1:] +
                  struct.pack(">BBI", ftype, flags, sid) + payload)


def flood(conn, n, fn, *a):
    """Calls fn(*a) n times; stops quietly once the server has closed."""
    for _ in range(n):
        if not tb.send_or_closed(conn, fn, *a):
            return


def bystander(srv):
    """A connection with an open FullDuplexCall, made before a case
    provokes its limit; check_bystander() then uses it."""
    c = Conn(srv.port)
    sid = start_call(c, FULL_DUPLEX, grpc_frame(output_request([10])),
                     end=False)
    st = c.streams[sid]
    c.wait_for(lambda: len(st.data) >= 15, tb.WAIT,
               "the bystander's first FullDuplexCall response")
    return c, sid


def check_bystander(by, what):
    c, sid = by
    check(c.usable, "%s: the bystander connection was hit%s"
          % (what, c._goaway_text()))
    st = c.streams[sid]
    n = len(st.data)
    c.send_data(sid, grpc_frame(output_request([10])))
    c.wait_for(lambda: len(st.data) > n or st.closed, tb.WAIT,
               "a bystander FullDuplexCall response")
    check(not st.closed, "%s: the bystander's call ended: %s"
          % (what, st.describe()))
    c.send_data(sid, b"", end_stream=True)
    st = c.wait_stream(sid)
    tb.expect_status(st, OK, what + ": the bystander's call")
    check_empty_call(c, what + ": bystander connection afterwards")
    n = Conn(tb.SERVER.port)
    try:
        check_empty_call(n, what + ": new connection afterwards")
    finally:
        n.close()


def raw_wait_closed(sock, timeout):
    """Reads and drops bytes (answering nothing) until EOF: True, or the
    timeout: False."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


def poll_all(conns, pred, timeout, what):
    """Reads from every connection as data comes (so arrival times are
    right) until pred() or the timeout."""
    import select
    deadline = time.monotonic() + scaled(timeout)
    while not pred():
        left = deadline - time.monotonic()
        check(left > 0, "timed out after %.1fs waiting for %s"
              % (scaled(timeout), what))
        live = [c for c in conns if not c.eof]
        if not live:
            check(pred(), "connections closed while waiting for " + what)
            return
        r, _, _ = select.select([c.sock for c in live], [], [], left)
        for c in live:
            if c.sock in r:
                try:
                    c._read_some(time.monotonic() + 1)
                except (TimeoutError, ConnClosedError):
                    pass
                c._parse()


def server_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# The server: one per case, with that case's flags.

class Server(tb.Server):
    def __init__(self, path, flags):
        super().__init__(path)
        self.flags = flags

    def start(self):
        last = ""
        for _ in range(5):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            self.cleanup()
            self.log = tempfile.NamedTemporaryFile(
                prefix="h2-limits-server-", suffix=".log", delete=False)
            self.proc = subprocess.Popen(
                [self.path, "--port=%d" % port] + self.flags,
                stdin=subprocess.DEVNULL, stdout=self.log,
                stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if "listening on" in self.output():
                    self.port = port
                    return
                time.sleep(0.05)
            last = self.output()
            self.kill()
        self.cleanup()
        raise RuntimeError("server did not start: %s" % last[-2000:])


CASES = []


def case(*flags):
    def wrap(fn):
        CASES.append((fn, list(flags)))
        return fn
    return wrap


# ---------------------------------------------------------------------------
# Keepalive enforcement (A8)

@case("--keepalive_min_time_ms=60000")
def ping_strikes(srv):
    """Pings more often than the minimum interval with no data from the
    server in between: the first is free, the next two are strikes, the
    fourth (strike 3 > MAX_PING_STRIKES 2) gets GOAWAY ENHANCE_YOUR_CALM
    "too_many_pings" and the connection is closed."""
    by = bystander(srv)
    c = Conn(srv.port)
    try:
        start_call(c, FULL_DUPLEX, None, end=False)   # a call is open
        for i in range(3):
            c.ping_roundtrip()
        c.poll(0.2)
        check(not c.goaways and not c.eof, "GOAWAY after 3 pings (2 "
              "strikes): %s" % goaway_desc(c))
        c.send_ping(b"4" * 8)
        expect_fatal_goaway(c, b"too_many_pings", tb.WAIT, "the 4th ping")
        check_bystander(by, "too_many_pings")
    finally:
        c.close()
        by[0].close()


@case("--keepalive_min_time_ms=60000")
def ping_strikes_reset_by_data(srv):
    """The strike count resets when the server sends HEADERS or DATA: a
    ping before each call, 10 times, is fine; so are 10 pings while a
    server-streaming call keeps sending."""
    c = Conn(srv.port)
    try:
        for i in range(10):
            c.ping_roundtrip()
            check_empty_call(c, "call %d between pings" % i)
        sid = start_call(c, FULL_DUPLEX, None, end=False)
        st = c.streams[sid]
        for i in range(10):
            n = len(st.data)
            c.send_data(sid, grpc_frame(output_request([10])))
            c.wait_for(lambda: len(st.data) > n, tb.WAIT, "a response")
            c.ping_roundtrip()
        check(c.usable, "GOAWAY although the server sent data between the "
              "pings: %s" % goaway_desc(c))
        c.send_data(sid, b"", end_stream=True)
        tb.expect_status(c.wait_stream(sid), OK, "FullDuplexCall")
    finally:
        c.close()


@case("--keepalive_min_time_ms=-1")
def ping_without_calls(srv):
    """No minimum interval, but pings on a connection without calls are
    held to once per 2 hours (permit_without_calls false): 10 pings with a
    call open are fine, 4 without one get GOAWAY "too_many_pings"."""
    c = Conn(srv.port)
    try:
        sid = start_call(c, FULL_DUPLEX, None, end=False)
        for _ in range(10):
            c.ping_roundtrip()
        check(c.usable, "pings with a call open (no minimum interval): %s"
              % goaway_desc(c))
        c.send_rst(sid, CANCEL)
        c.ping_roundtrip()
    finally:
        c.close()
    c = Conn(srv.port)
    try:
        for _ in range(3):
            c.ping_roundtrip()
        c.send_ping(b"4" * 8)
        expect_fatal_goaway(c, b"too_many_pings", tb.WAIT,
                            "4 pings without calls")
    finally:
        c.close()


@case("--keepalive_min_time_ms=-1", "--keepalive_permit_without_calls=1")
def ping_permit_without_calls(srv):
    c = Conn(srv.port)
    try:
        for _ in range(10):
            c.ping_roundtrip()
        check(c.usable, "idle pings with permit_without_calls: %s"
              % goaway_desc(c))
        check_empty_call(c, "after 10 idle pings")
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Connection lifetime

@case("--max_connection_idle_ms=500")
def max_connection_idle(srv):
    """A connection without calls for 500 ms gets GOAWAY "max_idle" (after
    the notice GOAWAY) and is closed; one with a call open is left alone
    until the call ends."""
    t0 = time.monotonic()
    idle = Conn(srv.port)
    busy = Conn(srv.port)
    try:
        sid = start_call(busy, FULL_DUPLEX, None, end=False)
        check(idle.drain_to_eof(3), "the idle connection was not closed "
              "within %.1fs: %s" % (scaled(3), goaway_desc(idle)))
        took = time.monotonic() - t0
        check(took >= 0.45, "closed after %.2fs, before max idle" % took)
        check(idle.goaways and idle.goaways[0][1] == LAST_ID and
              idle.goaways[-1][3] == b"max_idle" and
              all(g[2] == NO_ERROR for g in idle.goaways),
              "expected a GOAWAY notice then GOAWAY NO_ERROR \"max_idle\": "
              "%s" % goaway_desc(idle))
        busy.poll(0.3)
        check(busy.usable, "a connection with a call open got %s"
              % goaway_desc(busy))
        n = len(busy.streams[sid].data)
        busy.send_data(sid, grpc_frame(output_request([10])))
        busy.wait_for(lambda: len(busy.streams[sid].data) > n, tb.WAIT,
                      "a response on the busy connection")
        busy.send_data(sid, b"", end_stream=True)
        tb.expect_status(busy.wait_stream(sid), OK, "the busy call")
        t1 = time.monotonic()
        check(busy.drain_to_eof(3), "not closed %.1fs after its call "
              "ended: %s" % (scaled(3), goaway_desc(busy)))
        check(time.monotonic() - t1 >= 0.4, "closed %.2fs after its call "
              "ended, before max idle" % (time.monotonic() - t1))
        check(busy.goaways and busy.goaways[-1][3] == b"max_idle",
              "busy connection: %s" % goaway_desc(busy))
    finally:
        idle.close()
        busy.close()
    c = Conn(srv.port)
    try:
        check_empty_call(c, "a new connection")
    finally:
        c.close()


@case("--max_connection_age_ms=800", "--max_connection_age_grace_ms=700")
def max_connection_age(srv):
    """Connections 800 ms old (+-10%) get GOAWAY "max_age" (notice first,
    graceful); a call still open 700 ms later is cut with the connection;
    a call that ends within the grace ends normally."""
    conns = [Conn(srv.port) for _ in range(6)]
    cut, fin = conns[0], conns[1]
    try:
        sid_cut = start_call(cut, FULL_DUPLEX, None, end=False)
        sid_fin = start_call(fin, FULL_DUPLEX, None, end=False)
        poll_all(conns, lambda: all(c.goaways and c.goaways[-1][3] ==
                                    b"max_age" for c in conns), 3,
                 "GOAWAY max_age on 6 connections")
        ages = sorted(c.goaways[0][0] - c.opened for c in conns)
        note("GOAWAY notices after %s s" % ", ".join("%.3f" % a
                                                     for a in ages))
        check(ages[0] >= 0.70, "a GOAWAY after %.3fs, before 800 ms - 10%%"
              % ages[0])
        check(ages[-1] <= 0.88 + 0.3 * tb.SCALE, "a GOAWAY only after "
              "%.3fs" % ages[-1])
        check(ages[-1] - ages[0] > 0.003, "no jitter: %s" % ages)
        for c in conns:
            check(c.goaways[0][1] == LAST_ID and
                  all(g[2] == NO_ERROR for g in c.goaways),
                  "expected a GOAWAY notice then GOAWAY NO_ERROR "
                  "\"max_age\": %s" % goaway_desc(c))
        # Within the grace: the open calls still work.
        for c, sid in ((cut, sid_cut), (fin, sid_fin)):
            st = c.streams[sid]
            c.send_data(sid, grpc_frame(output_request([10])))
            c.wait_for(lambda: len(st.data) >= 15, tb.WAIT,
                       "a response during the grace")
        fin.send_data(sid_fin, b"", end_stream=True)
        tb.expect_status(fin.wait_stream(sid_fin), OK,
                         "a call ended within the grace")
        check(fin.drain_to_eof(2), "not closed after its last call ended")
        check(cut.drain_to_eof(3), "the call open after the grace was not "
              "cut: %s" % cut.streams[sid_cut].describe())
        took = time.monotonic() - cut.goaways[0][0]
        check(took >= 0.6, "cut %.2fs after the GOAWAY, before the grace "
              "of 700 ms" % took)
        for c in conns[2:]:
            check(c.drain_to_eof(2), "an idle connection stayed open after "
                  "GOAWAY max_age")
    finally:
        for c in conns:
            c.close()
    c = Conn(srv.port)
    try:
        check_empty_call(c, "a new connection")
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Slow clients

@case("--preface_timeout_ms=500")
def preface_timeout(srv):
    """No preface, half of it, or the preface without SETTINGS: closed
    after 500 ms.  A connection that completed its handshake and then
    idles is not."""
    good = Conn(srv.port)
    tries = {"nothing": b"", "half a preface": PREFACE[:10],
             "no SETTINGS": PREFACE}
    conns = {}
    t0 = time.monotonic()
    try:
        for what, b in tries.items():
            c = Conn(srv.port, handshake=False)
            conns[what] = c
            if b:
                c.send_raw(b)
        for what, c in conns.items():
            check(raw_wait_closed(c.sock, 3), "%s: still open after %.1fs"
                  % (what, scaled(3)))
            took = time.monotonic() - t0
            check(took >= 0.45, "%s: closed after %.2fs, before the "
                  "timeout" % (what, took))
        check_empty_call(good, "the connection that sent its preface")
    finally:
        good.close()
        for c in conns.values():
            c.close()


@case("--header_timeout_ms=500")
def header_block_timeout(srv):
    """A header block that does not complete within 500 ms: HEADERS
    without END_HEADERS, the same after a CONTINUATION, and a HEADERS
    frame cut in the middle.  Each gets GOAWAY ENHANCE_YOUR_CALM
    "header_block_timeout" and is closed; a block completed after 200 ms is
    served."""
    by = bystander(srv)
    try:
        for what in ("HEADERS only", "HEADERS + CONTINUATION",
                     "half a HEADERS frame"):
            c = Conn(srv.port)
            try:
                sid = c.new_sid()
                block = c.enc.encode(req_headers(EMPTY_CALL))
                if what == "half a HEADERS frame":
                    f = hf.HeadersFrame(sid, data=block)
                    f.flags.add("END_HEADERS")
                    c.send_raw(f.serialize()[:9 + len(block) // 2])
                else:
                    c.send_raw(hf.HeadersFrame(sid, data=block[:5])
                               .serialize())
                    if what == "HEADERS + CONTINUATION":
                        c.send_raw(hf.ContinuationFrame(sid, data=block[5:8])
                                   .serialize())
                t0 = time.monotonic()
                expect_fatal_goaway(c, b"header_block_timeout", 3, what)
                took = c.goaways[-1][0] - t0
                check(took >= 0.45, "%s: GOAWAY after %.2fs" % (what, took))
            finally:
                c.close()
        # Slow but within the limit.
        c = Conn(srv.port)
        try:
            sid = c.new_sid()
            block = c.enc.encode(req_headers(EMPTY_CALL))
            c.send_raw(hf.HeadersFrame(sid, data=block[:5]).serialize())
            time.sleep(0.2)
            cf = hf.ContinuationFrame(sid, data=block[5:])
            cf.flags.add("END_HEADERS")
            c.send_raw(cf.serialize())
            c.send_data(sid, EMPTY_MSG, end_stream=True)
            tb.expect_status(c.wait_stream(sid), OK, "a block completed "
                             "after 200 ms")
            c.poll(0.6)
            check_empty_call(c, "the same connection 0.8 s later")
        finally:
            c.close()
        check_bystander(by, "header_block_timeout")
    finally:
        by[0].close()


# ---------------------------------------------------------------------------
# Floods nghttp2 1.52 does not bound

@case("--max_reset_streams=20")
def too_many_resets(srv):
    """Requests that make the server reset their stream (an uppercase
    header name: RST_STREAM PROTOCOL_ERROR): 10 are fine, 30 get GOAWAY
    ENHANCE_YOUR_CALM "too_many_resets"."""
    by = bystander(srv)
    bad = req_headers(EMPTY_CALL) + [("X-Upper", "a")]
    try:
        c = Conn(srv.port)
        try:
            for _ in range(10):
                sid = c.new_sid()
                c.send_headers(sid, bad, end_stream=True)
            c.wait_stream(sid)
            check(c.streams[sid].rst is not None, "a bad request was not "
                  "reset: %s" % c.streams[sid].describe())
            check_empty_call(c, "after 10 resets")
        finally:
            c.close()
        c = Conn(srv.port)
        try:
            batch = b""
            for _ in range(30):
                sid = c.new_sid()
                h = hf.HeadersFrame(sid, data=c.enc.encode(bad))
                h.flags.add("END_HEADERS")
                h.flags.add("END_STREAM")
                batch += h.serialize()
            c.send_raw(batch)
            expect_fatal_goaway(c, b"too_many_resets", tb.WAIT,
                                "30 streams reset")
        finally:
            c.close()
        check_bystander(by, "too_many_resets")
    finally:
        by[0].close()


@case("--max_empty_frames=20")
def too_many_empty_frames(srv):
    """Empty DATA frames (no END_STREAM), DATA frames of padding only, and
    empty CONTINUATION frames: 10 are fine, 30 get GOAWAY
    ENHANCE_YOUR_CALM "too_many_empty_frames"."""
    by = bystander(srv)

    def empty_data(c, sid):
        c.send_data(sid, b"")

    def padded_data(c, sid):
        send_frame_raw(c, 0, 0x8, sid, b"\x03" + b"\x00" * 3)

    try:
        for what, fn in (("empty DATA", empty_data),
                         ("padding-only DATA", padded_data)):
            c = Conn(srv.port)
            try:
                sid = start_call(c, EMPTY_CALL, None, end=False)
                for _ in range(10):
                    fn(c, sid)
                c.send_data(sid, EMPTY_MSG, end_stream=True)
                tb.expect_status(c.wait_stream(sid), OK,
                                 "10 x %s, then the body" % what)
                sid = start_call(c, EMPTY_CALL, None, end=False)
                flood(c, 30, fn, c, sid)
                expect_fatal_goaway(c, b"too_many_empty_frames", tb.WAIT,
                                    "30 x " + what)
            finally:
                c.close()
        # Empty CONTINUATIONs: 6 per request (nghttp2 allows 8 a block).
        c = Conn(srv.port)
        try:
            for _ in range(5):
                sid = c.new_sid()
                block = c.enc.encode(req_headers(EMPTY_CALL))
                out = hf.HeadersFrame(sid, data=block).serialize()
                out += hf.ContinuationFrame(sid, data=b"").serialize() * 6
                last = hf.ContinuationFrame(sid, data=b"")
                last.flags.add("END_HEADERS")
                if not (tb.send_or_closed(c, c.send_raw,
                                          out + last.serialize()) and
                        tb.send_or_closed(c, c.send_data, sid, EMPTY_MSG,
                                          end_stream=True)):
                    break
            expect_fatal_goaway(c, b"too_many_empty_frames", tb.WAIT,
                                "35 empty CONTINUATION frames")
        finally:
            c.close()
        check_bystander(by, "too_many_empty_frames")
    finally:
        by[0].close()


@case("--max_unknown_frames=20")
def too_many_unknown_frames(srv):
    """Frames of unknown types (nghttp2 ignores them without a word):
    10 are fine, 30 get GOAWAY ENHANCE_YOUR_CALM "too_many_unknown_frames"."""
    by = bystander(srv)
    try:
        c = Conn(srv.port)
        try:
            for i in range(10):
                send_frame_raw(c, 0x20 + i, 0, i % 2, b"x" * i)
            check_empty_call(c, "after 10 unknown frames")
            flood(c, 30, send_frame_raw, c, 0xf0, 0xff, 0, b"y" * 100)
            expect_fatal_goaway(c, b"too_many_unknown_frames", tb.WAIT,
                                "30 unknown frames")
        finally:
            c.close()
        check_bystander(by, "too_many_unknown_frames")
    finally:
        by[0].close()


def control_flood_case(srv, debug, fn, fine, what):
    """fine x fn(c) leave the connection usable; then a flood of them gets
    GOAWAY ENHANCE_YOUR_CALM debug; a bystander connection is untouched."""
    by = bystander(srv)
    try:
        c = Conn(srv.port)
        try:
            for _ in range(fine):
                fn(c)
            check_empty_call(c, "after %d %s" % (fine, what))
            flood(c, 300, fn, c)
            expect_fatal_goaway(c, debug, tb.WAIT, "300 " + what)
        finally:
            c.close()
        check_bystander(by, debug.decode())
    finally:
        by[0].close()


@case("--max_settings_frames=20")
def too_many_settings(srv):
    """SETTINGS frames (each costs an ACK): 10 are fine, a flood gets
    GOAWAY ENHANCE_YOUR_CALM "too_many_settings"."""
    control_flood_case(
        srv, b"too_many_settings",
        lambda c: c.send_raw(hf.SettingsFrame(0).serialize()), 10,
        "SETTINGS frames")


@case("--max_priority_frames=20")
def too_many_priority_frames(srv):
    """PRIORITY frames for streams never opened (which HTTP/2 allows): 10
    are fine, a flood gets GOAWAY ENHANCE_YOUR_CALM
    "too_many_priority_frames"."""
    sids = iter(range(1001, 1 << 30, 2))
    control_flood_case(
        srv, b"too_many_priority_frames",
        lambda c: c.send_raw(hf.PriorityFrame(
            next(sids), depends_on=0, stream_weight=15).serialize()), 10,
        "PRIORITY frames")


@case("--max_window_updates_per_data_frame=2")
def too_many_window_updates(srv):
    """WINDOW_UPDATE frames that follow no DATA of ours: 50 are fine (the
    first 100 are), a flood gets GOAWAY ENHANCE_YOUR_CALM
    "too_many_window_updates".  The bystander, whose client reopens its
    windows as DATA arrives, is not touched; nor is a client that sends a
    stream and a connection WINDOW_UPDATE after each of 200 DATA frames."""
    c = Conn(srv.port)
    try:
        sid = start_call(c, FULL_DUPLEX, None, end=False)
        st = c.streams[sid]
        for i in range(200):
            c.send_data(sid, grpc_frame(output_request([10])))
            c.wait_for(lambda: st.data_frames >= i + 1, tb.WAIT,
                       "response %d" % (i + 1))
            # Conn reopens the stream's window itself; the connection's:
            c.send_raw(hf.WindowUpdateFrame(
                0, window_increment=1).serialize())
        c.send_data(sid, b"", end_stream=True)
        tb.expect_status(c.wait_stream(sid), OK,
                         "200 responses, 2 WINDOW_UPDATEs after each")
        check_empty_call(c, "after 400 WINDOW_UPDATEs that followed DATA")
    finally:
        c.close()
    control_flood_case(
        srv, b"too_many_window_updates",
        lambda c: c.send_raw(hf.WindowUpdateFrame(
            0, window_increment=1).serialize()), 50,
        "WINDOW_UPDATE frames")


# ---------------------------------------------------------------------------
# Descriptors

@case("--max_connections=3")
def max_connections(srv):
    """With 3 connections open, a 4th is accepted and closed at once; once
    one of the 3 goes, new connections are served again."""
    conns = [Conn(srv.port) for _ in range(3)]
    try:
        extra = Conn(srv.port, handshake=False)
        try:
            tb.send_or_closed(extra, extra.send_raw,
                              PREFACE + hf.SettingsFrame(0).serialize())
            check(extra.wait_closed(3), "a 4th connection was not closed")
            check(not extra.server_settings, "the 4th connection got "
                  "SETTINGS: it was served")
        finally:
            extra.close()
        for c in conns:
            check_empty_call(c, "one of the 3 connections")
        conns.pop().close()
        deadline = time.monotonic() + scaled(3)
        while True:
            try:
                c = Conn(srv.port)
                conns.append(c)
                break
            except (CaseFailure, OSError) as e:
                check(time.monotonic() < deadline, "no new connection "
                      "served after one of the 3 closed: %s" % e)
                time.sleep(0.05)
        check_empty_call(c, "a new connection once there was room")
    finally:
        for c in conns:
            c.close()


@case("--rlimit_nofile_headroom=4")
def accept_emfile(srv):
    """The server may open 4 more descriptors: 4 connections, then accept()
    fails with EMFILE.  It must not spin on the readable listener (it stops
    polling it for 100 ms at a time), keep serving its connections, and
    accept the waiting ones once descriptors are free."""
    conns = [Conn(srv.port) for _ in range(4)]
    waiting = []
    try:
        for c in conns:
            check_empty_call(c, "one of the first 4 connections")
        for _ in range(3):
            w = Conn(srv.port, handshake=False)   # in the kernel's backlog
            w.send_raw(PREFACE + hf.SettingsFrame(0).serialize())
            waiting.append(w)
        time.sleep(0.3)
        cpu0 = server_cpu_seconds(srv.proc.pid)
        t0 = time.monotonic()
        time.sleep(1.5)
        cpu = server_cpu_seconds(srv.proc.pid) - cpu0
        note("server CPU over %.1fs at EMFILE: %.2fs"
             % (time.monotonic() - t0, cpu))
        check(cpu < 0.5, "the server used %.2fs of CPU in 1.5 s with "
              "accept() failing: it spins" % cpu)
        for w in waiting:
            w._parse_available()
            check(not w.server_settings, "a connection over the descriptor "
                  "limit was served")
        for c in conns:
            check_empty_call(c, "a connection while accept() fails")
        for _ in range(2):
            conns.pop().close()
        deadline = time.monotonic() + scaled(3)
        served = 0
        while served < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            for w in waiting:
                w._parse_available()
            served = sum(1 for w in waiting if w.server_settings)
        check(served >= 2, "only %d of the waiting connections were "
              "accepted after 2 descriptors were freed" % served)
        for c in conns:
            check_empty_call(c, "an old connection afterwards")
    finally:
        for c in conns + waiting:
            c.close()


# ---------------------------------------------------------------------------

def run_case(fn, flags, path, verbose):
    name = fn.__name__
    srv = Server(path, flags)
    why = ""
    try:
        srv.start()
        tb.SERVER = srv
        fn(srv)
    except CaseFailure as e:
        why = str(e)
    except Exception as e:  # a harness error is a failure too
        why = "%s: %s" % (type(e).__name__, e)
        if verbose:
            traceback.print_exc()
    problems, out = [], ""
    if srv.proc is not None:
        if not srv.alive() and not why:
            why = "the server died (status %s)" % srv.proc.returncode
        _, problems, out = srv.stop()
    if problems:
        why = (why + "; " if why else "") + "; ".join(problems)
        summ = tb.sanitizer_summary(out)
        if summ:
            why += ": " + summ
    why = why.replace("\n", " ")
    if len(why) > 1500:
        why = why[:1500] + "..."
    print("PASS %s" % name if not why else "FAIL %s: %s" % (name, why),
          flush=True)
    if why and out:
        print(tb.server_excerpt(out), flush=True)
    srv.cleanup()
    return not why


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", help="path to interop_server")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--scale", type=float, default=None,
                    help="deadline multiplier (default 1, 3 for ASan builds)")
    args = ap.parse_args()
    if args.list:
        for fn, _ in CASES:
            print(fn.__name__)
        return 0
    if not args.server:
        ap.error("--server is required")
    if not os.access(args.server, os.X_OK):
        print("FAIL harness: %s is not an executable" % args.server)
        return 1
    cases = CASES
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {fn.__name__ for fn, _ in CASES}
        if unknown:
            print("FAIL harness: unknown case(s) %s" % ", ".join(unknown))
            return 1
        cases = [c for c in CASES if c[0].__name__ in want]
    tb.VERBOSE = args.verbose
    if args.scale is not None:
        tb.SCALE = args.scale
    elif "asan" in os.path.realpath(args.server):
        tb.SCALE = 3.0
    failed = 0
    for fn, flags in cases:
        if not run_case(fn, flags, args.server, args.verbose):
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
