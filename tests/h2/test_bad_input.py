#!/usr/bin/python3
"""Bad-input tests for libminirpc's server, in raw HTTP/2 (h2c prior knowledge).

    /usr/bin/python3 tests/h2/test_bad_input.py --server BUILD/bin/interop_server
        [--only NAME[,NAME...]] [--list] [--verbose] [--scale N]

Starts BUILD/bin/interop_server on a free port, runs every case against it
with a small hand-written HTTP/2 client (hyperframe for frames, hpack for
header blocks: nothing stops it from sending malformed things), and stops the
server with SIGTERM at the end, with calls still in flight: it must exit 0,
promptly, with no sanitizer report ("server_exit").

Prints "PASS name" / "FAIL name: why" per case and exits non-zero if any case
failed.  Every socket has a timeout and every wait a deadline: a bug makes a
case fail, never hang.  After each case the server must still answer a normal
EmptyCall on a NEW connection and, where HTTP/2 allows it, on the SAME one.
If the server dies, the case fails, its log is shown, and a fresh server runs
the remaining cases.

interop_server serves EmptyCall, UnaryCall and FullDuplexCall with event
handlers (on the I/O thread) and StreamingInputCall, StreamingOutputCall and
HalfDuplexCall with blocking handlers (worker threads), so most cases send
their bad input to both kinds.  Expected answers follow the gRPC spec
(PROTOCOL-HTTP2.md, statuscodes.md, compression.md) and
/work/shared/PROTOCOL-NOTES.md; each case's docstring or comments say what it
sends and expects.  --verbose adds notes on what the server answered.
"""

import argparse
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import hpack
    from hyperframe import frame as hf
except ImportError as e:  # only /usr/bin/python3 has Debian's python3-h2
    print("FAIL harness: cannot import hpack/hyperframe (%s); run with "
          "/usr/bin/python3 (apt install python3-h2)" % e)
    sys.exit(1)

# ---------------------------------------------------------------------------
# Constants

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SVC = "/grpc.testing.TestService/"
EMPTY_CALL = SVC + "EmptyCall"
UNARY_CALL = SVC + "UnaryCall"
FULL_DUPLEX = SVC + "FullDuplexCall"
# Served by blocking handlers (worker threads) in interop_server's default
# mode, where the three above are event-driven: both paths get bad input.
INPUT_CALL = SVC + "StreamingInputCall"      # client streaming
OUTPUT_CALL = SVC + "StreamingOutputCall"    # server streaming
HALF_DUPLEX = SVC + "HalfDuplexCall"         # bidi, answers after half-close
EMPTY_MSG = b"\x00\x00\x00\x00\x00"   # a framed grpc.testing.Empty

# HTTP/2 error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0x0, 0x1, 0x2
REFUSED_STREAM, CANCEL = 0x7, 0x8
# gRPC status codes
OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED = 0, 1, 2, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL = 8, 12, 13
STATUS_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT",
                4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 6: "ALREADY_EXISTS",
                7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
                9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE",
                12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
                15: "DATA_LOSS", 16: "UNAUTHENTICATED"}

SOCK_TIMEOUT = 5.0     # every socket operation
WAIT = 5.0             # default deadline for one response
SCALE = 1.0            # multiplied into deadlines (ASan builds are slower)


class CaseFailure(Exception):
    """A check failed: the message says what was sent and what came back."""


def check(cond, msg):
    if not cond:
        raise CaseFailure(msg)


def grpc_frame(payload, flags=0, length=None):
    """A gRPC length-prefixed message; length may lie about the payload."""
    n = len(payload) if length is None else length
    return struct.pack(">BI", flags, n) + payload


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def output_request(sizes, interval_us=0):
    """A serialized StreamingOutputCallRequest asking for responses of the
    given payload sizes (response_parameters { size, interval_us }, field 2,
    repeated)."""
    out = b""
    for s in sizes:
        rp = b"\x08" + varint(s)            # ResponseParameters.size = 1
        if interval_us:
            rp += b"\x10" + varint(interval_us)   # interval_us = 2
        out += b"\x12" + varint(len(rp)) + rp
    return out


def simple_request_of_size(total):
    """A serialized SimpleRequest (payload.body of zeros) exactly total bytes
    long."""
    def build(b):
        payload = b"\x12" + varint(b) + bytes(b)         # Payload.body = 2
        return b"\x1a" + varint(len(payload)) + payload  # payload = 3
    b = total - 10
    while len(build(b)) > total:
        b -= 1
    msg = build(b)
    check(len(msg) == total, "cannot build a %d-byte SimpleRequest" % total)
    return msg


VERBOSE = False


def note(msg):
    """Extra detail for the report (printed with --verbose)."""
    if VERBOSE:
        print("    note: " + msg, flush=True)


def status_name(code):
    return "%s (%s)" % (code, STATUS_NAMES.get(code, "?"))


# ---------------------------------------------------------------------------
# A minimal HTTP/2 client that sends whatever it is told to.

class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.blocks = []        # decoded header blocks: [(name, value), ...]
        self.data = b""
        self.ended = False      # END_STREAM received
        self.rst = None         # RST_STREAM error code received
        self.data_frames = 0

    @property
    def closed(self):
        return self.ended or self.rst is not None

    def header(self, name, block=0):
        if len(self.blocks) <= block:
            return None
        for k, v in self.blocks[block]:
            if k == name:
                return v
        return None

    @property
    def http_status(self):
        v = self.header(":status")
        return int(v) if v is not None else None

    @property
    def trailers(self):
        """The trailers: the last header block if the stream ended with one
        (for a Trailers-Only response that is the only block)."""
        return self.blocks[-1] if self.blocks and self.ended else None

    @property
    def grpc_status(self):
        t = self.trailers
        if t is None:
            return None
        for k, v in t:
            if k == "grpc-status":
                try:
                    return int(v)
                except ValueError:
                    return v
        return None

    @property
    def grpc_message(self):
        t = self.trailers or []
        for k, v in t:
            if k == "grpc-message":
                return v
        return None

    def describe(self):
        parts = []
        for i, b in enumerate(self.blocks):
            shown = ", ".join("%s: %s" % (k, v if len(v) < 80 else
                                          v[:80] + "...") for k, v in b)
            parts.append("headers[%d]{%s}" % (i, shown))
        if self.data_frames:
            d = self.data if len(self.data) <= 32 else self.data[:32] + b"..."
            parts.append("data=%r" % d)
        if self.rst is not None:
            parts.append("RST_STREAM(%d)" % self.rst)
        parts.append("ended" if self.ended else "not ended")
        return "stream %d: %s" % (self.sid, "; ".join(parts))


class ConnClosed(Exception):
    pass


class H2Conn:
    """One h2c connection.  Frames are read only when asked (wait_*), so a
    test controls exactly what the server sees and when."""

    def __init__(self, port, handshake=True, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=SOCK_TIMEOUT)
        self.sock.settimeout(SOCK_TIMEOUT)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.rbuf = bytearray()
        self.next_sid = 1
        self.streams = {}
        self.goaway = None            # (last_stream_id, error_code, debug)
        self.eof = False
        self.server_settings = {}
        self.settings_acked = False   # the server ACKed our SETTINGS
        self.pings = []
        self.cont = None              # (sid, flags, bytearray): open block
        self.frames_seen = []
        self.send_window = 65535      # connection send window (flow control)
        self.stream_windows = {}      # sid -> stream send window
        if handshake:
            self.handshake(settings)

    # -- sending --
    def send_raw(self, b):
        self.sock.sendall(b)

    def send_frame(self, f):
        self.sock.sendall(f.serialize())

    def handshake(self, settings=None):
        sf = hf.SettingsFrame(0)
        for k, v in (settings or {}).items():
            sf.settings[k] = v
        self.send_raw(PREFACE + sf.serialize())
        # A big connection window so responses never stall on us.
        self.send_frame(hf.WindowUpdateFrame(0, window_increment=1 << 24))
        self.wait_for(lambda: self.server_settings and self.settings_acked,
                      WAIT, "the server's SETTINGS and SETTINGS ACK")

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        self.streams[sid] = Stream(sid)
        self.stream_windows[sid] = self.server_settings.get(
            hf.SettingsFrame.INITIAL_WINDOW_SIZE, 65535)
        return sid

    def send_headers(self, sid, headers, end_stream=False, max_frame=16384):
        """headers: list of (name, value) or hpack HeaderTuple objects."""
        block = self.enc.encode(headers)
        first, rest = block[:max_frame], block[max_frame:]
        f = hf.HeadersFrame(sid)
        f.data = first
        if end_stream:
            f.flags.add("END_STREAM")
        if not rest:
            f.flags.add("END_HEADERS")
        out = f.serialize()
        while rest:
            chunk, rest = rest[:max_frame], rest[max_frame:]
            c = hf.ContinuationFrame(sid)
            c.data = chunk
            if not rest:
                c.flags.add("END_HEADERS")
            out += c.serialize()
        self.send_raw(out)

    def send_data(self, sid, data, end_stream=False):
        f = hf.DataFrame(sid)
        f.data = data
        if end_stream:
            f.flags.add("END_STREAM")
        self.send_frame(f)

    def send_data_fc(self, sid, data, end_stream=False, timeout=WAIT):
        """Sends data within the server's flow-control windows."""
        max_frame = self.server_settings.get(hf.SettingsFrame.MAX_FRAME_SIZE,
                                             16384)
        data = memoryview(data)
        while True:
            room = min(self.send_window, self.stream_windows[sid], max_frame,
                       len(data))
            if room <= 0 and len(data):
                self.wait_for(lambda: self.send_window > 0 and
                              self.stream_windows[sid] > 0, timeout,
                              "a WINDOW_UPDATE for stream %d" % sid)
                continue
            chunk, data = data[:room], data[room:]
            self.send_window -= len(chunk)
            self.stream_windows[sid] -= len(chunk)
            self.send_data(sid, bytes(chunk),
                           end_stream=end_stream and not len(data))
            if not len(data):
                return

    def send_rst(self, sid, code):
        self.send_frame(hf.RstStreamFrame(sid, error_code=code))

    def send_ping(self, opaque):
        f = hf.PingFrame(0)
        f.opaque_data = opaque
        self.send_frame(f)

    # -- receiving --
    def _read_some(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(min(left, SOCK_TIMEOUT))
        try:
            b = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        except (ConnectionResetError, BrokenPipeError):
            b = b""
        if not b:
            self.eof = True
            raise ConnClosed
        self.rbuf += b

    def _handle(self, f, length):
        self.frames_seen.append(type(f).__name__)
        sid = f.stream_id
        if self.cont is not None and not isinstance(f, hf.ContinuationFrame):
            raise CaseFailure("server sent %s inside a header block"
                              % type(f).__name__)
        if isinstance(f, hf.SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acked = True
            else:
                self.server_settings.update(f.settings)
                ack = hf.SettingsFrame(0)
                ack.flags.add("ACK")
                self.send_frame(ack)
        elif isinstance(f, hf.PingFrame):
            if "ACK" in f.flags:
                self.pings.append(bytes(f.opaque_data))
            else:
                a = hf.PingFrame(0)
                a.flags.add("ACK")
                a.opaque_data = f.opaque_data
                self.send_frame(a)
        elif isinstance(f, hf.WindowUpdateFrame):
            if sid == 0:
                self.send_window += f.window_increment
            elif sid in self.stream_windows:
                self.stream_windows[sid] += f.window_increment
        elif isinstance(f, hf.GoAwayFrame):
            self.goaway = (f.last_stream_id, f.error_code,
                           bytes(f.additional_data))
        elif isinstance(f, hf.RstStreamFrame):
            self._stream(sid).rst = f.error_code
        elif isinstance(f, hf.DataFrame):
            st = self._stream(sid)
            st.data += bytes(f.data)
            st.data_frames += 1
            if length:   # keep the stream window open
                self.send_frame(hf.WindowUpdateFrame(sid,
                                                     window_increment=length))
            if "END_STREAM" in f.flags:
                st.ended = True
        elif isinstance(f, (hf.HeadersFrame, hf.PushPromiseFrame)):
            if isinstance(f, hf.PushPromiseFrame):
                raise CaseFailure("server sent PUSH_PROMISE")
            self.cont = (sid, set(f.flags), bytearray(f.data))
            if "END_HEADERS" in f.flags:
                self._end_block()
        elif isinstance(f, hf.ContinuationFrame):
            check(self.cont is not None and self.cont[0] == sid,
                  "unexpected CONTINUATION on stream %d" % sid)
            self.cont[2].extend(f.data)
            if "END_HEADERS" in f.flags:
                self._end_block()

    def _end_block(self):
        sid, flags, block = self.cont
        self.cont = None
        hdrs = self.dec.decode(bytes(block), raw=False)
        st = self._stream(sid)
        st.blocks.append([(k, v) for k, v in hdrs])
        if "END_STREAM" in flags:
            st.ended = True

    def _stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _parse(self):
        while len(self.rbuf) >= 9:
            f, length = hf.Frame.parse_frame_header(memoryview(self.rbuf[:9]))
            if len(self.rbuf) < 9 + length:
                return
            body = bytes(self.rbuf[9:9 + length])
            del self.rbuf[:9 + length]
            f.parse_body(memoryview(body))
            self._handle(f, length)

    def _parse_available(self):
        """Reads and handles whatever has arrived, without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    b = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except (ConnectionResetError, BrokenPipeError):
                    b = b""
                if not b:
                    self.eof = True
                    break
                self.rbuf += b
        finally:
            self.sock.settimeout(SOCK_TIMEOUT)
        self._parse()

    def update_settings(self, settings):
        sf = hf.SettingsFrame(0)
        for k, v in settings.items():
            sf.settings[k] = v
        self.settings_acked = False
        self.send_frame(sf)
        self.wait_for(lambda: self.settings_acked, WAIT, "SETTINGS ACK")

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout * SCALE
        while True:
            self._parse()
            if pred():
                return
            if self.eof:
                raise CaseFailure("connection closed while waiting for %s%s"
                                  % (what, self._goaway_text()))
            try:
                self._read_some(deadline)
            except TimeoutError:
                raise CaseFailure("timed out after %.1fs waiting for %s"
                                  % (timeout * SCALE, what))
            except ConnClosed:
                self._parse()
                if pred():
                    return
                raise CaseFailure("connection closed while waiting for %s%s"
                                  % (what, self._goaway_text()))

    def _goaway_text(self):
        if self.goaway is None:
            return " (no GOAWAY)"
        return " (GOAWAY last_stream_id=%d error=%d debug=%r)" % self.goaway

    def wait_stream(self, sid, timeout=WAIT):
        st = self.streams[sid]
        try:
            self.wait_for(lambda: st.closed, timeout,
                          "the end of stream %d" % sid)
        except CaseFailure as e:
            raise CaseFailure("%s; so far %s" % (e, st.describe()))
        return st

    def ping_roundtrip(self, timeout=WAIT):
        """Makes sure the server has processed everything sent before."""
        opaque = os.urandom(8)
        self.send_ping(opaque)
        self.wait_for(lambda: opaque in self.pings, timeout, "PING ACK")

    def wait_closed(self, timeout):
        """True once the server closed the connection (EOF or reset)."""
        deadline = time.monotonic() + timeout * SCALE
        while not self.eof:
            try:
                self._read_some(deadline)
            except TimeoutError:
                return False
            except ConnClosed:
                return True
            try:
                self._parse()
            except Exception:
                self.rbuf.clear()   # not HTTP/2 (e.g. an HTTP/1 answer)
        return True

    @property
    def usable(self):
        return not self.eof and self.goaway is None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with an RST (SO_LINGER 0): a client that vanished."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def req_headers(path, content_type="application/grpc", method="POST",
                extra=(), grpc_timeout=None, te=True):
    h = [(":method", method), (":scheme", "http"), (":path", path),
         (":authority", "127.0.0.1")]
    if grpc_timeout is not None:
        h.append(("grpc-timeout", grpc_timeout))
    if te:
        h.append(("te", "trailers"))
    if content_type is not None:
        h.append(("content-type", content_type))
    h.append(("user-agent", "minirpc-h2-bad-input-test"))
    h.extend(extra)
    return h


def start_call(conn, path, body=None, end=True, **kw):
    """Sends HEADERS (+ one DATA frame with body); returns the stream id."""
    sid = conn.new_sid()
    if body is None:
        conn.send_headers(sid, req_headers(path, **kw), end_stream=end)
    else:
        conn.send_headers(sid, req_headers(path, **kw))
        conn.send_data(sid, body, end_stream=end)
    return sid


def call(conn, path, body=None, end=True, timeout=WAIT, **kw):
    sid = start_call(conn, path, body, end, **kw)
    return conn.wait_stream(sid, timeout)


def expect_status(st, code, what):
    """A gRPC response (HTTP 200) that ended with grpc-status code."""
    check(st.ended, "%s: expected grpc-status %s, but the stream was not "
          "ended with trailers: %s" % (what, status_name(code),
                                       st.describe()))
    check(st.http_status == 200, "%s: expected :status 200, got %s: %s"
          % (what, st.http_status, st.describe()))
    check(st.grpc_status == code, "%s: expected grpc-status %s, got %s "
          "(grpc-message %r): %s" % (what, status_name(code),
                                     st.grpc_status, st.grpc_message,
                                     st.describe()))


def expect_error_status(st, what, want=None):
    """Any non-OK grpc-status (or, if want is given, that one)."""
    if want is not None:
        return expect_status(st, want, what)
    check(st.ended and st.http_status == 200 and
          isinstance(st.grpc_status, int) and st.grpc_status != OK,
          "%s: expected an error grpc-status: %s" % (what, st.describe()))


def expect_trailers_only(st, what):
    check(len(st.blocks) == 1 and st.data_frames == 0,
          "%s: expected a Trailers-Only response (one HEADERS, no DATA): %s"
          % (what, st.describe()))


def check_empty_call(conn, what):
    """A normal EmptyCall on conn works end to end."""
    st = call(conn, EMPTY_CALL, EMPTY_MSG)
    check(st.rst is None, "%s: EmptyCall was reset: %s" % (what,
                                                           st.describe()))
    check(st.http_status == 200, "%s: EmptyCall :status %s: %s"
          % (what, st.http_status, st.describe()))
    ct = st.header("content-type") or ""
    check(ct == "application/grpc" or ct.startswith("application/grpc+")
          or ct.startswith("application/grpc;"),
          "%s: EmptyCall content-type %r" % (what, ct))
    check(len(st.blocks) == 2, "%s: EmptyCall: expected headers and "
          "trailers: %s" % (what, st.describe()))
    check(st.data == EMPTY_MSG, "%s: EmptyCall response body %r, expected "
          "%r" % (what, st.data, EMPTY_MSG))
    check(st.grpc_status == OK, "%s: EmptyCall grpc-status %s (%r)"
          % (what, st.grpc_status, st.grpc_message))
    return st


# ---------------------------------------------------------------------------
# The server under test

class Server:
    def __init__(self, path):
        self.path = path
        self.proc = None
        self.port = None
        self.err = None
        self.log = None
        self.generation = 0
        self.reported = set()   # sanitizer reports already blamed on a case
        self.shown = False      # its log was printed already

    def start(self):
        last = ""
        for _ in range(5):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            self.cleanup()   # the log of a failed attempt
            self.log = tempfile.NamedTemporaryFile(
                prefix="h2-bad-input-server-", suffix=".log", delete=False)
            self.proc = subprocess.Popen(
                [self.path, "--port=%d" % port], stdin=subprocess.DEVNULL,
                stdout=self.log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", port),
                                             timeout=1).close()
                    self.port = port
                    self.generation += 1
                    return
                except OSError:
                    time.sleep(0.05)
            last = self.output()
            self.kill()
        self.cleanup()
        raise RuntimeError("server did not start: %s" % last[-2000:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        try:
            with open(self.log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM; returns (exit status, problems)."""
        problems = []
        if self.proc.poll() is not None:
            problems.append("server had already exited with status %s"
                            % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("server did not exit within 30 s of SIGTERM")
                self.proc.kill()
                self.proc.wait()
            if self.proc.returncode != 0 and not problems:
                problems.append("server exited with status %s on SIGTERM"
                                % self.proc.returncode)
        out = self.output()
        if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", out):
            problems.append("sanitizer report in server output")
        return self.proc.returncode, problems, out

    def cleanup(self):
        if self.log:
            try:
                os.unlink(self.log.name)
            except OSError:
                pass


SERVER = None   # the running Server


def new_conn(**kw):
    return H2Conn(SERVER.port, **kw)


def healthy(conn, what):
    """After a case: EmptyCall on the same connection (if given and still
    usable) and on a new one."""
    if conn is not None:
        check(conn.usable, "%s: the connection did not survive%s"
              % (what, conn._goaway_text() if conn.goaway else
                 " (closed by the server)"))
        check_empty_call(conn, what + ": same connection afterwards")
    c = new_conn()
    try:
        check_empty_call(c, what + ": new connection afterwards")
    finally:
        c.close()


# ---------------------------------------------------------------------------
# The cases.  Each returns normally on success or raises CaseFailure.

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def send_or_closed(conn, fn, *a, **kw):
    """Runs a send; False if the server had closed the connection."""
    try:
        fn(*a, **kw)
        return True
    except OSError:
        return False


@case
def valid_empty_call():
    c = new_conn()
    try:
        check(c.server_settings.get(hf.SettingsFrame.MAX_CONCURRENT_STREAMS)
              is not None, "server SETTINGS lack MAX_CONCURRENT_STREAMS: %r"
              % c.server_settings)
        note("server SETTINGS %r" % c.server_settings)
        st = check_empty_call(c, "EmptyCall")
        check(len(st.blocks) == 2 and st.data_frames >= 1,
              "expected HEADERS, DATA, trailers: %s" % st.describe())
        note(st.describe())
        # A second call on the same connection (HPACK dynamic table in use).
        check_empty_call(c, "second EmptyCall")
        # The body split byte by byte over several DATA frames.
        sid = start_call(c, EMPTY_CALL, end=False)
        for b in EMPTY_MSG:
            c.send_data(sid, bytes([b]))
        c.send_data(sid, b"", end_stream=True)
        st = c.wait_stream(sid)
        expect_status(st, OK, "EmptyCall split over 6 DATA frames")
        check(st.data == EMPTY_MSG, "split EmptyCall body %r" % st.data)
        healthy(c, "valid EmptyCall")
    finally:
        c.close()


@case
def unknown_method():
    c = new_conn()
    try:
        for path in (SVC + "NoSuchMethod", "/no.such.Service/Method",
                     SVC + "UnimplementedCall", "/grpc.testing.TestService",
                     "/grpc.testing.testservice/emptycall", "/"):
            st = call(c, path, EMPTY_MSG)
            expect_status(st, UNIMPLEMENTED, "path %s" % path)
            expect_trailers_only(st, "path %s" % path)
        note("unknown method: " + st.describe())
        # Unknown method, request body still coming: answered at once.
        sid = start_call(c, SVC + "Nope", EMPTY_MSG, end=False)
        st = c.wait_stream(sid)
        expect_status(st, UNIMPLEMENTED, "unknown method, no END_STREAM")
        healthy(c, "unknown method")
    finally:
        c.close()


@case
def content_type_text_plain():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, EMPTY_MSG, content_type="text/plain")
        check(st.http_status == 415, "content-type text/plain: expected "
              "HTTP 415: %s" % st.describe())
        note("text/plain: " + st.describe())
        st = call(c, EMPTY_CALL, EMPTY_MSG, content_type="application/grpcx")
        check(st.http_status == 415, "content-type application/grpcx: "
              "expected HTTP 415: %s" % st.describe())
        # No END_STREAM yet: answered at once all the same.
        sid = start_call(c, INPUT_CALL, EMPTY_MSG, end=False,
                         content_type="text/html")
        st = c.wait_stream(sid)
        check(st.http_status == 415, "content-type text/html on a streaming "
              "call: expected HTTP 415: %s" % st.describe())
        healthy(c, "content-type text/plain")
    finally:
        c.close()


@case
def content_type_missing():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, EMPTY_MSG, content_type=None)
        check(st.http_status == 415, "no content-type: expected HTTP 415: %s"
              % st.describe())
        healthy(c, "missing content-type")
    finally:
        c.close()


@case
def method_get():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, None, method="GET")
        check(st.http_status is not None and st.http_status != 200,
              "GET: expected a non-200 HTTP status (405): %s"
              % st.describe())
        check(st.http_status == 405, "GET: expected HTTP 405: %s"
              % st.describe())
        note("GET: " + st.describe())
        st = call(c, EMPTY_CALL, EMPTY_MSG, method="PUT")
        check(st.http_status == 405, "PUT with a body: expected HTTP 405: %s"
              % st.describe())
        healthy(c, "GET")
    finally:
        c.close()


@case
def length_over_limit():
    c = new_conn()
    try:
        for path, n in ((EMPTY_CALL, 0x7FFFFFFF), (EMPTY_CALL, 0xFFFFFFFF),
                        (EMPTY_CALL, 4 * 1024 * 1024 + 1),
                        (INPUT_CALL, 0x7FFFFFFF), (FULL_DUPLEX, 0x7FFFFFFF)):
            # Only the 5-byte prefix, no END_STREAM: the server must answer
            # without waiting for a body that will never come.
            sid = start_call(c, path, grpc_frame(b"", length=n), end=False)
            st = c.wait_stream(sid)
            expect_status(st, RESOURCE_EXHAUSTED,
                          "%s: prefix declaring %d bytes" % (path, n))
        note("0x7fffffff: " + st.describe())
        # Same, on UnaryCall with part of a body following.
        sid = start_call(c, UNARY_CALL,
                         grpc_frame(b"\x10\x01", length=0x7FFFFFFF),
                         end=False)
        st = c.wait_stream(sid)
        expect_status(st, RESOURCE_EXHAUSTED,
                      "UnaryCall prefix declaring 0x7fffffff bytes")
        # A message of exactly 4 MiB is within the limit.
        msg = simple_request_of_size(4 * 1024 * 1024)
        sid = start_call(c, UNARY_CALL, None, end=False)
        c.send_data_fc(sid, grpc_frame(msg), end_stream=True, timeout=20)
        st = c.wait_stream(sid, timeout=20)
        expect_status(st, OK, "UnaryCall with a message of exactly 4 MiB")
        healthy(c, "length over limit")
    finally:
        c.close()


@case
def length_over_limit_body_sent():
    """4 MiB + 1 with the body actually following: the client may still be
    sending when the status and the server's RST_STREAM(NO_ERROR) come;
    the server must drop the rest of the stream without tearing down the
    connection, and keep crediting the connection window (five such calls
    are more than nghttp2's 16 MiB connection window)."""
    c = new_conn()
    try:
        body = grpc_frame(bytes(4 * 1024 * 1024 + 1))
        for i in range(5):
            sid = start_call(c, UNARY_CALL, None, end=False)
            st = c.streams[sid]
            view = memoryview(body)
            while len(view) and not st.closed and c.usable:
                chunk, view = view[:16384], view[16384:]
                c.wait_for(lambda: min(c.send_window, c.stream_windows[sid])
                           >= len(chunk) or st.closed,
                           10, "flow-control window for call %d" % i)
                if st.closed:
                    break
                c.send_window -= len(chunk)
                c.stream_windows[sid] -= len(chunk)
                c.send_data(sid, bytes(chunk), end_stream=not len(view))
                c._parse_available()
            st = c.wait_stream(sid, timeout=10)
            expect_status(st, RESOURCE_EXHAUSTED, "call %d: 4 MiB + 1 message "
                          "with its body sent" % i)
            check(c.usable, "call %d: the connection did not survive%s"
                  % (i, c._goaway_text()))
        healthy(c, "length over limit with the body sent")
    finally:
        c.close()


@case
def compressed_flag_without_encoding():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, grpc_frame(b"", flags=1))
        expect_status(st, INTERNAL, "compressed flag without grpc-encoding")
        note(st.describe())
        st = call(c, UNARY_CALL, grpc_frame(b"\x10\x01", flags=1))
        expect_status(st, INTERNAL, "UnaryCall, compressed flag without "
                      "grpc-encoding")
        st = call(c, INPUT_CALL, grpc_frame(b"", flags=1))
        expect_status(st, INTERNAL, "StreamingInputCall, compressed flag "
                      "without grpc-encoding")
        st = call(c, EMPTY_CALL, grpc_frame(b"", flags=1),
                  extra=[("grpc-encoding", "identity")])
        expect_status(st, INTERNAL, "compressed flag with grpc-encoding "
                      "identity")
        healthy(c, "compressed flag")
    finally:
        c.close()


@case
def unsupported_grpc_encoding():
    """compression.md: a message compressed with an algorithm the server
    does not support fails with UNIMPLEMENTED, and the response carries a
    grpc-accept-encoding header listing what the server does accept (not
    the one used)."""
    c = new_conn()
    try:
        # gzip and deflate are supported now: only unknown codecs here.
        for enc in ("snappy", "x-no-such-codec"):
            st = call(c, EMPTY_CALL, grpc_frame(b"", flags=1),
                      extra=[("grpc-encoding", enc)])
            expect_status(st, UNIMPLEMENTED, "grpc-encoding %s" % enc)
            note("grpc-encoding %s: %s" % (enc, st.describe()))
            accept = [v for b in st.blocks for k, v in b
                      if k == "grpc-accept-encoding"]
            check(accept, "grpc-encoding %s: UNIMPLEMENTED without a "
                  "grpc-accept-encoding header (compression.md): %s"
                  % (enc, st.describe()))
            check(enc not in ",".join(accept).replace(" ", "").split(","),
                  "grpc-accept-encoding %r lists %s" % (accept, enc))
        healthy(c, "unsupported grpc-encoding")
    finally:
        c.close()


@case
def corrupt_compressed_message():
    """A message flagged compressed under a supported grpc-encoding that
    does not inflate -> INTERNAL; a valid gzip message is accepted; the
    connection goes on."""
    import gzip as gz
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, grpc_frame(b"not gzip at all", flags=1),
                  extra=[("grpc-encoding", "gzip")])
        expect_status(st, INTERNAL, "corrupt gzip message")
        st = call(c, EMPTY_CALL, grpc_frame(gz.compress(b""), flags=1),
                  extra=[("grpc-encoding", "gzip")])
        expect_status(st, 0, "valid gzip empty message")
        healthy(c, "corrupt compressed message")
    finally:
        c.close()


@case
def unknown_flag_bits():
    c = new_conn()
    try:
        for path, flags in ((EMPTY_CALL, 0x80), (EMPTY_CALL, 0x02),
                            (EMPTY_CALL, 0xFF), (INPUT_CALL, 0x80),
                            (FULL_DUPLEX, 0x80)):
            st = call(c, path, grpc_frame(b"", flags=flags))
            expect_status(st, INTERNAL, "%s: message flags byte 0x%02x"
                          % (path, flags))
        healthy(c, "unknown flag bits")
    finally:
        c.close()


@case
def truncated_message():
    c = new_conn()
    try:
        # Prefix says 10 bytes, 3 sent, then END_STREAM.
        for path in (UNARY_CALL, INPUT_CALL, FULL_DUPLEX, HALF_DUPLEX):
            st = call(c, path, grpc_frame(b"abc", length=10))
            expect_status(st, INTERNAL, "%s: message of 10 bytes cut after 3"
                          % path)
        # Prefix itself cut: 2 of its 5 bytes.
        st = call(c, EMPTY_CALL, b"\x00\x00")
        expect_status(st, INTERNAL, "message prefix cut after 2 bytes")
        # A whole message, then a partial one.
        st = call(c, INPUT_CALL, EMPTY_MSG + grpc_frame(b"ab", length=5))
        expect_status(st, INTERNAL, "StreamingInputCall: a message, then a "
                      "cut one")
        # END_STREAM on an empty DATA frame after the partial message.
        sid = start_call(c, EMPTY_CALL, grpc_frame(b"x", length=4),
                         end=False)
        c.send_data(sid, b"", end_stream=True)
        st = c.wait_stream(sid)
        expect_status(st, INTERNAL, "cut message, END_STREAM on an empty "
                      "DATA frame")
        healthy(c, "truncated message")
    finally:
        c.close()


@case
def invalid_protobuf():
    c = new_conn()
    try:
        st = call(c, UNARY_CALL, grpc_frame(b"\xff\xff\xff\xff\xff"))
        expect_status(st, INTERNAL, "UnaryCall body ff ff ff ff ff")
        # A small single request is parsed on the handler's worker thread:
        # the status still says why.
        check(st.grpc_message == "could not parse the request message",
              "UnaryCall body ff ff ff ff ff: grpc-message %r"
              % st.grpc_message)
        note(st.describe())
        # A length-delimited field that runs past the end.
        st = call(c, UNARY_CALL, grpc_frame(b"\x1a\x10ab"))
        expect_status(st, INTERNAL, "UnaryCall body with a truncated field")
        # Wire type 7 does not exist.
        st = call(c, EMPTY_CALL, grpc_frame(b"\x0f"))
        expect_status(st, INTERNAL, "EmptyCall body with wire type 7")
        # Blocking handlers: client streaming, server streaming, bidi.
        for path in (INPUT_CALL, OUTPUT_CALL, HALF_DUPLEX, FULL_DUPLEX):
            st = call(c, path, grpc_frame(b"\xff\xff\xff\xff\xff"))
            expect_status(st, INTERNAL, "%s body ff ff ff ff ff" % path)
        # A good message first, then a bad one, on a client stream.
        st = call(c, INPUT_CALL, EMPTY_MSG + grpc_frame(b"\xff\xff"))
        expect_status(st, INTERNAL, "StreamingInputCall: good message, "
                      "then ff ff")
        healthy(c, "invalid protobuf")
    finally:
        c.close()


@case
def two_messages_unary():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, EMPTY_MSG + EMPTY_MSG)
        check(st.rst is None or st.ended, "two requests: stream reset "
              "without a status: %s" % st.describe())
        expect_status(st, UNIMPLEMENTED, "EmptyCall with two request "
                      "messages (cardinality violation)")
        note(st.describe())
        # The second message in its own DATA frame.
        sid = start_call(c, UNARY_CALL, grpc_frame(b""), end=False)
        c.send_data(sid, grpc_frame(b""), end_stream=True)
        st = c.wait_stream(sid)
        expect_status(st, UNIMPLEMENTED, "UnaryCall with two request "
                      "messages in two DATA frames")
        # Server streaming takes exactly one request too (blocking handler).
        req = grpc_frame(output_request([1]))
        st = call(c, OUTPUT_CALL, req + req)
        expect_status(st, UNIMPLEMENTED, "StreamingOutputCall with two "
                      "request messages")
        healthy(c, "two messages on a unary method")
    finally:
        c.close()


@case
def zero_messages_unary():
    c = new_conn()
    try:
        st = call(c, EMPTY_CALL, None)   # END_STREAM on HEADERS
        expect_error_status(st, "EmptyCall without a request (END_STREAM "
                            "on HEADERS)")
        note("EmptyCall, no request: " + st.describe())
        st = call(c, UNARY_CALL, b"")    # END_STREAM on an empty DATA
        expect_error_status(st, "UnaryCall without a request (empty DATA "
                            "with END_STREAM)")
        st = call(c, OUTPUT_CALL, None)
        expect_error_status(st, "StreamingOutputCall without a request")
        note("StreamingOutputCall, no request: " + st.describe())
        healthy(c, "zero messages on a unary method")
    finally:
        c.close()


@case
def oversized_headers():
    c = new_conn()
    try:
        check_empty_call(c, "before")   # fills the HPACK dynamic table
        big = "v" * 9000
        # 1) indexed literal: evicts the whole dynamic table on both sides.
        st = call(c, EMPTY_CALL, EMPTY_MSG, extra=[("x-big", big)])
        expect_status(st, RESOURCE_EXHAUSTED, "header x-big of 9000 bytes")
        note(st.describe())
        check_empty_call(c, "same connection after an indexed 9000-byte "
                         "header")
        # 2) never-indexed literal: the table keeps its entries, and the
        # next request refers to them.
        st = call(c, EMPTY_CALL, EMPTY_MSG,
                  extra=[hpack.NeverIndexedHeaderTuple("x-big", big)])
        expect_status(st, RESOURCE_EXHAUSTED,
                      "never-indexed header x-big of 9000 bytes")
        check_empty_call(c, "same connection after a never-indexed "
                         "9000-byte header")
        # 3) many small headers adding up to more than 8192.
        extra = [("x-h%03d" % i, "w" * 100) for i in range(80)]
        st = call(c, EMPTY_CALL, EMPTY_MSG, extra=extra)
        expect_status(st, RESOURCE_EXHAUSTED,
                      "80 headers of ~140 bytes each (11,000 in all)")
        # 4) over the limit, spread over CONTINUATION frames, no body yet.
        sid = c.new_sid()
        c.send_headers(sid, req_headers(EMPTY_CALL,
                                        extra=[("x-big", "z" * 12000)]),
                       max_frame=4000)
        st = c.wait_stream(sid)
        expect_status(st, RESOURCE_EXHAUSTED, "12000-byte header in "
                      "HEADERS + CONTINUATION, body not sent")
        # 5) on a blocking method, with the body sent.
        st = call(c, INPUT_CALL, EMPTY_MSG, extra=[("x-big", big)])
        expect_status(st, RESOURCE_EXHAUSTED, "StreamingInputCall with a "
                      "9000-byte header")
        # 6) just under the limit is fine: 8192 - (32+len) per field.
        fixed = sum(len(k) + len(v) + 32 for k, v in req_headers(EMPTY_CALL))
        room = 8192 - fixed - 32 - len("x-fit")
        st = call(c, EMPTY_CALL, EMPTY_MSG, extra=[("x-fit", "f" * room)])
        expect_status(st, OK, "headers of exactly 8192 bytes (name + value "
                      "+ 32 per field)")
        # 7) one byte over.
        st = call(c, EMPTY_CALL, EMPTY_MSG,
                  extra=[("x-fit", "f" * (room + 1))])
        expect_status(st, RESOURCE_EXHAUSTED, "headers of 8193 bytes")
        healthy(c, "oversized headers")
    finally:
        c.close()


@case
def invalid_grpc_timeout():
    c = new_conn()
    try:
        for v in ("abc", "123456789S", "1x", "1", "S", "-1S", "1.5S", "",
                  "1 S"):
            st = call(c, EMPTY_CALL, EMPTY_MSG, grpc_timeout=v)
            expect_status(st, INTERNAL, "grpc-timeout %r" % v)
        note("grpc-timeout %r: %s" % (v, st.describe()))
        for path in (INPUT_CALL, FULL_DUPLEX):
            st = call(c, path, EMPTY_MSG, grpc_timeout="abc")
            expect_status(st, INTERNAL, "%s with grpc-timeout 'abc'" % path)
        # The longest valid values are accepted.
        for v in ("99999999H", "99999999n", "00000001S"):
            st = call(c, EMPTY_CALL, EMPTY_MSG, grpc_timeout=v)
            expect_status(st, OK, "grpc-timeout %r" % v)
        healthy(c, "invalid grpc-timeout")
    finally:
        c.close()


@case
def malformed_bin_header():
    c = new_conn()
    try:
        for v in ("!!!", "A", "=AAA", "AA=A", "QUJD,!"):
            st = call(c, EMPTY_CALL, EMPTY_MSG, extra=[("x-test-bin", v)])
            expect_error_status(st, "x-test-bin: %r" % v)
        note("x-test-bin '!!!': " + st.describe())
        st = call(c, INPUT_CALL, EMPTY_MSG, extra=[("x-test-bin", "!!!")])
        expect_error_status(st, "StreamingInputCall, x-test-bin: '!!!'")
        # Valid forms still work: padded, unpadded, comma-joined, empty.
        for v in ("QUJD", "QUI=", "QUI", "QUJD,QUI", ""):
            st = call(c, EMPTY_CALL, EMPTY_MSG, extra=[("x-test-bin", v)])
            expect_status(st, OK, "x-test-bin: %r" % v)
        healthy(c, "malformed -bin header")
    finally:
        c.close()


@case
def invalid_http2_headers():
    """Requests that break HTTP/2's own header rules: nghttp2 resets the
    stream (PROTOCOL_ERROR); the call object the library made for it at
    the start of the header block must go away without a leak, and the
    connection must go on."""
    c = new_conn()
    try:
        good = req_headers(EMPTY_CALL)
        bad = {
            "uppercase name": good + [("X-Upper", "a")],
            "connection header": good + [("connection", "close")],
            "te: gzip": [h for h in good if h[0] != "te"] + [("te", "gzip")],
            "no :path": [h for h in good if h[0] != ":path"],
            "two :path": good[:3] + [(":path", EMPTY_CALL)] + good[3:],
            "pseudo after regular": [h for h in good if h[0] != ":authority"]
            + [(":authority", "x")],
            "unknown pseudo": good[:1] + [(":foo", "bar")] + good[1:],
            "value with NUL": good + [("x-nul", "a\x00b")],
        }
        for what, hdrs in bad.items():
            sid = c.new_sid()
            c.send_headers(sid, hdrs)
            c.send_data(sid, EMPTY_MSG, end_stream=True)
            st = c.wait_stream(sid)
            check(st.rst is not None or (st.http_status or 0) >= 400 or
                  (st.grpc_status not in (None, OK)),
                  "%s: the request was served: %s" % (what, st.describe()))
            check(c.usable, "%s: the connection did not survive%s"
                  % (what, c._goaway_text()))
        # Non-ASCII in an ASCII metadata value (HTTP/2 allows 0x80-0xff).
        st = call(c, EMPTY_CALL, EMPTY_MSG, extra=[("x-latin", "caf\xe9")])
        check(st.ended and st.grpc_status is not None,
              "metadata value with 0xe9: %s" % st.describe())
        note("x-latin 'caf\\xe9': " + st.describe())
        healthy(c, "invalid HTTP/2 headers")
    finally:
        c.close()


@case
def request_trailers_ignored():
    """HTTP/2 lets a request end with a trailing HEADERS block; gRPC never
    sends one, and a server must not let it disturb the call: the request
    metadata the handler was given at dispatch must stay as it was.  Blocking
    handlers read that metadata on a worker thread while the I/O thread is
    still parsing the rest of the request, trailers included."""
    c = new_conn()
    try:
        st = c.streams[c.new_sid()]
        c.send_headers(st.sid, req_headers(EMPTY_CALL))
        c.send_data(st.sid, EMPTY_MSG)
        c.send_headers(st.sid, [("x-trailer", "t")], end_stream=True)
        st = c.wait_stream(st.sid)
        expect_status(st, OK, "EmptyCall ending with request trailers")
        # Echo keys only in the trailers: the handlers echo what they find
        # in the request metadata, so they must not come back.
        echo = [("x-grpc-test-echo-initial", "from-trailers"),
                ("x-grpc-test-echo-trailing-bin", "AAEC")]
        seen = []
        for i in range(20):
            for path in (INPUT_CALL, HALF_DUPLEX):
                sid = c.new_sid()
                c.send_headers(sid, req_headers(path))
                c.send_data(sid, EMPTY_MSG)
                c.send_headers(sid, echo, end_stream=True)
                st = c.wait_stream(sid)
                expect_status(st, OK, "%s with echo keys in request "
                              "trailers" % path)
                got = [(k, v) for b in st.blocks for k, v in b
                       if k.startswith("x-grpc-test-echo")]
                if got:
                    seen.append("%s: %r" % (path, got))
        check(not seen, "request trailers reached the request metadata "
              "the handler reads (the server echoed keys sent only in the "
              "trailers) in %d of 40 calls, e.g. %s" % (len(seen), seen[0]
                                                        if seen else ""))
        healthy(c, "request trailers")
    finally:
        c.close()


@case
def request_trailers_concurrent():
    """The same under load, for the sanitizer build: the I/O thread must
    not grow the request metadata (realloc) while a worker thread walks
    it."""
    c = new_conn()
    try:
        # Some request headers (the handler walks them), then trailers with
        # many fields (if added to the request metadata, they grow it, with
        # a realloc at 33, 65, 129 entries, while the handler walks it).
        md = [("x-m%03d" % i, "v") for i in range(30)]
        tr = [("x-t%03d" % i, "v") for i in range(200)]
        for i in range(100):
            sids = []
            for path in (INPUT_CALL, HALF_DUPLEX) * 5:
                sid = c.new_sid()
                c.send_headers(sid, req_headers(path, extra=md))
                c.send_data(sid, EMPTY_MSG)
                c.send_headers(sid, tr, end_stream=True)
                sids.append((sid, path))
            for sid, path in sids:
                st = c.wait_stream(sid)
                expect_status(st, OK, "round %d: %s with request trailers"
                              % (i, path))
                del c.streams[sid]
        healthy(c, "request trailers")
    finally:
        c.close()


@case
def deadline_full_duplex():
    c = new_conn()
    try:
        t0 = time.monotonic()
        sid = start_call(c, FULL_DUPLEX, None, end=False, grpc_timeout="1m")
        st = c.wait_stream(sid, timeout=5)
        took = time.monotonic() - t0
        note("1m: %s after %.3fs" % (st.describe(), took))
        if st.rst is not None and not st.ended:
            check(st.rst in (CANCEL, NO_ERROR), "1 ms deadline: stream "
                  "reset with error %d: %s" % (st.rst, st.describe()))
        else:
            expect_status(st, DEADLINE_EXCEEDED, "FullDuplexCall with "
                          "grpc-timeout 1m, never half-closed")
        check(took < 2.0 * SCALE, "the 1 ms deadline took %.2fs to fire"
              % took)
        # With a request in flight and a response already sent.
        sid = start_call(c, FULL_DUPLEX, grpc_frame(output_request([3])),
                         end=False, grpc_timeout="50m")
        st = c.wait_stream(sid, timeout=5)
        if not (st.rst is not None and not st.ended):
            expect_status(st, DEADLINE_EXCEEDED, "FullDuplexCall with "
                          "grpc-timeout 50m after one response")
        # Blocking handlers: waiting in recv, and sleeping between sends.
        for path, body, end in (
                (INPUT_CALL, None, False), (HALF_DUPLEX, EMPTY_MSG, False),
                (FULL_DUPLEX, None, False),
                (OUTPUT_CALL, grpc_frame(output_request([1] * 5, 100000)),
                 True)):
            t0 = time.monotonic()
            sid = start_call(c, path, body, end=end, grpc_timeout="20m")
            st = c.wait_stream(sid, timeout=5)
            took = time.monotonic() - t0
            if not (st.rst is not None and not st.ended):
                expect_status(st, DEADLINE_EXCEEDED, "%s with grpc-timeout "
                              "20m" % path)
            check(took < 2.0 * SCALE, "%s: the 20 ms deadline took %.2fs to "
                  "fire" % (path, took))
        healthy(c, "deadline")
    finally:
        c.close()


@case
def garbage_preface():
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"\x00" * 64,
                 PREFACE[:10] + b"garbage garbage garbage"):
        c = new_conn(handshake=False)
        try:
            c.send_raw(junk)
            closed = c.wait_closed(5)
            check(closed, "the server kept a connection open 5 s after "
                  "%r instead of the client preface" % junk[:24])
        finally:
            c.close()
    # A preface followed by a first frame that is not SETTINGS.
    c = new_conn(handshake=False)
    try:
        c.send_raw(PREFACE + hf.PingFrame(0).serialize())
        check(c.wait_closed(5), "the server kept a connection open whose "
              "first frame was PING, not SETTINGS")
    finally:
        c.close()
    healthy(None, "garbage preface")


@case
def client_vanishes():
    for i in range(10):
        c = new_conn()
        # A unary call still receiving its body, a bidi call with a
        # request answered, blocking calls in recv and between sends, and
        # half a frame.
        start_call(c, EMPTY_CALL, None, end=False)
        start_call(c, FULL_DUPLEX, grpc_frame(output_request([100])),
                   end=False)
        start_call(c, INPUT_CALL, EMPTY_MSG, end=False)
        start_call(c, HALF_DUPLEX, grpc_frame(output_request([10])),
                   end=False)
        start_call(c, OUTPUT_CALL,
                   grpc_frame(output_request([10] * 3, 20000)))
        sid = c.new_sid()
        c.send_headers(sid, req_headers(UNARY_CALL))
        c.send_raw(hf.DataFrame(sid).serialize()[:5])
        if i >= 5:
            time.sleep(0.01)   # let some handlers get going first
        if i % 2:
            c.abort()
        else:
            c.close()
    # Vanishing in the middle of the handshake and of a header block.
    c = new_conn(handshake=False)
    c.send_raw(PREFACE[:12])
    c.abort()
    c = new_conn()
    sid = c.new_sid()
    block = c.enc.encode(req_headers(EMPTY_CALL, extra=[("x-a", "b" * 3000)]))
    c.send_raw(hf.HeadersFrame(sid, data=block[:1000]).serialize())
    c.abort()
    # A client that asks for a lot and never reads it, then vanishes.
    c = new_conn()
    start_call(c, OUTPUT_CALL, grpc_frame(output_request([100000] * 30)))
    time.sleep(0.2)
    c.abort()
    time.sleep(0.3)
    check(SERVER.alive(), "server died after clients vanished")
    healthy(None, "client vanished")


@case
def rst_mid_full_duplex():
    c = new_conn()
    try:
        sid = start_call(c, FULL_DUPLEX, grpc_frame(output_request([10])),
                         end=False)
        st = c.streams[sid]
        c.wait_for(lambda: len(st.data) >= 15 or st.closed, WAIT,
                   "the first FullDuplexCall response")
        check(not st.closed, "FullDuplexCall ended early: %s"
              % st.describe())
        c.send_rst(sid, CANCEL)
        check_empty_call(c, "same connection right after RST_STREAM")
        # Cancelled right after HEADERS, before any message.
        sid = start_call(c, FULL_DUPLEX, None, end=False)
        c.send_rst(sid, CANCEL)
        # Cancelled while many responses are queued.
        sid = start_call(c, FULL_DUPLEX,
                         grpc_frame(output_request([50000] * 40)), end=False)
        c.send_rst(sid, CANCEL)
        # Cancelled unary call, half of its body sent.
        sid = start_call(c, EMPTY_CALL, EMPTY_MSG[:2], end=False)
        c.send_rst(sid, CANCEL)
        # Blocking handlers: between two sends, waiting in recv, and with
        # the responses of a half-duplex call going out.
        sid = start_call(c, OUTPUT_CALL,
                         grpc_frame(output_request([10] * 4, 50000)))
        st = c.streams[sid]
        c.wait_for(lambda: len(st.data) >= 15 or st.closed, WAIT,
                   "the first StreamingOutputCall response")
        c.send_rst(sid, CANCEL)
        sid = start_call(c, INPUT_CALL, EMPTY_MSG, end=False)
        c.ping_roundtrip()
        c.send_rst(sid, CANCEL)
        sid = start_call(c, HALF_DUPLEX,
                         grpc_frame(output_request([20000] * 50)))
        c.send_rst(sid, CANCEL)
        time.sleep(0.2)
        healthy(c, "RST_STREAM(CANCEL)")
    finally:
        c.close()


@case
def too_many_streams():
    c = new_conn()
    try:
        limit = c.server_settings.get(hf.SettingsFrame.MAX_CONCURRENT_STREAMS)
        check(limit == 100, "server MAX_CONCURRENT_STREAMS %r, expected 100"
              % limit)
        open_sids = [start_call(c, FULL_DUPLEX, None, end=False)
                     for _ in range(limit)]
        c.ping_roundtrip()
        for sid in open_sids:
            check(not c.streams[sid].closed, "stream %d (within the limit) "
                  "was closed: %s" % (sid, c.streams[sid].describe()))
        extra = []
        try:
            for _ in range(5):
                extra.append(start_call(c, FULL_DUPLEX, None, end=False))
            c.ping_roundtrip()
        except (CaseFailure, OSError) as e:
            note("opening streams over the limit: %s: %s"
                 % (type(e).__name__, e))   # connection closed: see below
        try:
            c.wait_closed(0.5)   # read what came before the close (GOAWAY)
        except (CaseFailure, OSError) as e:
            note("reading after the close: %s: %s" % (type(e).__name__, e))
        refused = [s for s in extra if c.streams[s].rst in
                   (REFUSED_STREAM, PROTOCOL_ERROR)]
        gone = c.goaway is not None and c.goaway[1] != NO_ERROR
        note("over the limit: GOAWAY %r; %s" % (c.goaway, "; ".join(
            c.streams[s].describe() for s in extra)))
        check(gone or len(refused) == len(extra),
              "the %d streams over MAX_CONCURRENT_STREAMS were not refused: "
              "%s; GOAWAY %r" % (len(extra), "; ".join(
                  c.streams[s].describe() for s in extra), c.goaway))
        for sid in open_sids:
            check(c.streams[sid].rst is None or gone,
                  "stream %d (within the limit) was reset: %s"
                  % (sid, c.streams[sid].describe()))
        if c.usable:
            # Free the slots; the connection then serves again.
            for sid in open_sids:
                c.send_rst(sid, CANCEL)
            c.ping_roundtrip()
            healthy(c, "too many streams")
        else:
            healthy(None, "too many streams (connection closed by GOAWAY)")
        # The same with streams the server has finished with (trailers
        # sent) but the client has not half-closed: still counted by
        # HTTP/2 until the server resets them, which it does.
        c2 = new_conn()
        try:
            sids = [start_call(c2, EMPTY_CALL, EMPTY_MSG + EMPTY_MSG,
                               end=False) for _ in range(limit)]
            for sid in sids:
                c2.wait_stream(sid)
            c2.ping_roundtrip()
            healthy(c2, "100 finished but not half-closed streams")
        finally:
            c2.close()
    finally:
        c.close()


@case
def stalled_reader():
    """A client that asks for big responses and never opens its flow-control
    window must not stall other connections or the server."""
    c = new_conn(settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    try:
        sids = [start_call(c, path, grpc_frame(output_request([200000] * 20)))
                for path in (OUTPUT_CALL, FULL_DUPLEX, HALF_DUPLEX)]
        for _ in range(3):
            c2 = new_conn()
            try:
                check_empty_call(c2, "another connection while one is stalled")
            finally:
                c2.close()
        for sid in sids:
            c.send_rst(sid, CANCEL)
        c.update_settings({hf.SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20})
        healthy(c, "stalled reader")
    finally:
        c.close()


@case
def flood_1000_requests():
    c = new_conn()
    try:
        limit = c.server_settings.get(hf.SettingsFrame.MAX_CONCURRENT_STREAMS,
                                      100)
        total, window = 1000, min(limit, 100)
        sent, pending, done = 0, [], 0
        t0 = time.monotonic()
        deadline = t0 + 60 * SCALE
        while done < total:
            check(time.monotonic() < deadline, "only %d of %d calls done in "
                  "%.0fs" % (done, total, 60 * SCALE))
            # Pipeline: HEADERS and DATA of many calls in one write.
            batch = b""
            while sent < total and len(pending) < window:
                sid = c.new_sid()
                block = c.enc.encode(req_headers(EMPTY_CALL))
                h = hf.HeadersFrame(sid, data=block)
                h.flags.add("END_HEADERS")
                d = hf.DataFrame(sid, data=EMPTY_MSG)
                d.flags.add("END_STREAM")
                batch += h.serialize() + d.serialize()
                pending.append(sid)
                sent += 1
            if batch:
                c.send_raw(batch)
            c.wait_stream(pending[0], timeout=10)
            still = []
            for sid in pending:
                s = c.streams[sid]
                if s.closed:
                    expect_status(s, OK, "flood call on stream %d" % sid)
                    check(s.data == EMPTY_MSG, "flood call %d body %r"
                          % (sid, s.data))
                    done += 1
                    del c.streams[sid]
                else:
                    still.append(sid)
            pending = still
        note("1000 calls in %.2fs" % (time.monotonic() - t0))
        healthy(c, "flood of 1000 requests")
    finally:
        c.close()


# ---------------------------------------------------------------------------

SAN_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


def sanitizer_summary(out):
    """The first line of a sanitizer report and its SUMMARY, or ''."""
    m = SAN_RE.search(out)
    if not m:
        return ""
    first = out[m.start():].splitlines()[0]
    summ = re.search(r"^SUMMARY: .*$", out, re.M)
    return first + (" / " + summ.group(0) if summ else "")


def server_excerpt(out, limit=60):
    """What to show of a server log: a sanitizer report from its start
    (the error and the first stacks), else the last lines."""
    m = SAN_RE.search(out)
    lines = (out[m.start():] if m else out).splitlines()
    if m:
        for i, l in enumerate(lines):
            if l.startswith("Shadow bytes around"):
                lines = lines[:i]
                break
        lines = lines[:limit]
    else:
        lines = lines[-limit:]
    return "\n".join("    | " + l for l in lines)


def run_case(fn, verbose):
    name = fn.__name__
    try:
        fn()
        ok, why = True, ""
    except CaseFailure as e:
        ok, why = False, str(e)
    except Exception as e:  # a harness error is a failure too
        ok, why = False, "%s: %s" % (type(e).__name__, e)
        if verbose:
            traceback.print_exc()
    if not ok:
        # A crashing server may still be writing its report: give it time.
        deadline = time.monotonic() + 3 * SCALE
        while SERVER.alive() and time.monotonic() < deadline and \
                not SAN_RE.search(SERVER.output()):
            time.sleep(0.1)
        if SAN_RE.search(SERVER.output()):
            try:
                SERVER.proc.wait(timeout=10 * SCALE)
            except subprocess.TimeoutExpired:
                pass
    if not SERVER.alive():
        ok = False
        why = (why + "; " if why else "") + \
            "the server died (status %s)" % SERVER.proc.returncode
    summ = sanitizer_summary(SERVER.output())
    if summ and summ not in SERVER.reported:
        SERVER.reported.add(summ)
        ok = False
        why = (why + "; " if why else "") + "server sanitizer report: " + summ
    why = why.replace("\n", " ")
    if len(why) > 1500:
        why = why[:1500] + "..."
    print("PASS %s" % name if ok else "FAIL %s: %s" % (name, why),
          flush=True)
    return ok


def calls_in_flight():
    """Leaves connections with calls in every state for the SIGTERM at the
    end: shutdown must still be prompt and clean.  Returns them (to close
    after the server is gone)."""
    conns = []
    try:
        c = new_conn()
        conns.append(c)
        start_call(c, FULL_DUPLEX, grpc_frame(output_request([10])),
                   end=False)
        start_call(c, INPUT_CALL, EMPTY_MSG, end=False)
        start_call(c, HALF_DUPLEX, EMPTY_MSG, end=False)
        start_call(c, EMPTY_CALL, EMPTY_MSG[:3], end=False)
        c.ping_roundtrip()
        # A reader that never opens its window: handlers blocked in send.
        c = new_conn(settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        conns.append(c)
        start_call(c, OUTPUT_CALL, grpc_frame(output_request([100000] * 10)))
        start_call(c, FULL_DUPLEX, grpc_frame(output_request([100000] * 10)),
                   end=False)
        c.ping_roundtrip()
        # Half a preface, and half a header block.
        c = new_conn(handshake=False)
        conns.append(c)
        c.send_raw(PREFACE[:10])
        c = new_conn()
        conns.append(c)
        block = c.enc.encode(req_headers(EMPTY_CALL, extra=[("x-a", "b" * 3000)]))
        c.send_raw(hf.HeadersFrame(c.new_sid(), data=block[:1000]).serialize())
        time.sleep(0.1)
    except (CaseFailure, OSError) as e:
        print("    note: setting up calls in flight for the SIGTERM: %s" % e)
    return conns


def main():
    global SERVER, SCALE, VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", help="path to interop_server")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--scale", type=float, default=None,
                    help="deadline multiplier (default 1, 3 for ASan builds)")
    args = ap.parse_args()
    if args.list:
        for fn in CASES:
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
        unknown = want - {fn.__name__ for fn in CASES}
        if unknown:
            print("FAIL harness: unknown case(s) %s" % ", ".join(unknown))
            return 1
        cases = [fn for fn in CASES if fn.__name__ in want]
    VERBOSE = args.verbose
    if args.scale is not None:
        SCALE = args.scale
    elif "asan" in os.path.realpath(args.server):
        SCALE = 3.0

    failed = 0
    SERVER = Server(args.server)
    servers = []
    leftover = []
    try:
        SERVER.start()
        servers.append(SERVER)
        for fn in cases:
            if not run_case(fn, args.verbose):
                failed += 1
            if not SERVER.alive():
                # Keep going with a fresh server so the other cases still
                # say something; the dead one fails server_exit below.
                print("    server log of the server that died:\n" +
                      server_excerpt(SERVER.output()), flush=True)
                SERVER.shown = True
                SERVER = Server(args.server)
                SERVER.start()
                servers.append(SERVER)
        if SERVER.alive():
            leftover = calls_in_flight()
    except Exception as e:
        print("FAIL harness: %s: %s" % (type(e).__name__, e))
        failed += 1
    finally:
        problems, outs = [], []
        for s in servers:
            t0 = time.monotonic()
            _, p, out = s.stop()
            took = time.monotonic() - t0
            if s is SERVER and took > 10 * SCALE:
                p.append("SIGTERM with calls in flight took %.1fs" % took)
            if p:
                problems.extend(p)
                if not s.shown:
                    outs.append(out)
        for c in leftover:
            c.close()
        if servers:
            if problems:
                failed += 1
                print("FAIL server_exit: %s" % "; ".join(problems))
                for out in outs:
                    print(server_excerpt(out))
            else:
                print("PASS server_exit")
        for s in servers:
            s.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
