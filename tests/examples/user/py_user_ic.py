#!/usr/bin/python3
"""grpcio client for user_server's interceptors (examples/user/user.proto):
driven by tests/examples/user.sh against build/bin/user_server.

Needs the stubs generated from examples/user/user.proto on PYTHONPATH and
/usr/bin/python3 (Debian's grpcio).  Every call has a deadline.  Prints
"PASS example user-<case>" / "FAIL example user-<case>: why" per case and
exits 1 if any failed.

Modes (--target HOST:PORT for all):
  auth --token T        against user_server --auth-token T: the six RPCs
                        succeed with "authorization: Bearer T"; without the
                        metadata, with a wrong token, or with another scheme
                        every pattern gets UNAUTHENTICATED (and the handler
                        never runs: no user is created); refused calls still
                        carry x-request-id
  ratelimit --rate N    against a fresh user_server --rate-limit N (no auth):
                        a burst of calls gets RESOURCE_EXHAUSTED "rate limit
                        exceeded" once N are spent, streams too; after a
                        second calls succeed again
  auth-first --token T --rate N
                        against a fresh user_server --auth-token T
                        --rate-limit N: a burst of unauthenticated calls is
                        refused by auth without draining the bucket (auth
                        comes before the rate limit in the chain), so N
                        authenticated calls right after succeed
  headers [--token T]   x-request-id echoed when sent, generated (a UUID)
                        when not, and server-version: 1.0.0, on unary and
                        streaming responses (with the token if given)
"""

import argparse
import re
import sys
import time

import grpc

try:
    import user_pb2
    import user_pb2_grpc
except ImportError:
    sys.exit("py_user_ic: user_pb2/user_pb2_grpc not importable; "
             "generate them from examples/user/user.proto onto PYTHONPATH")

TIMEOUT = 10
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                   r"[0-9a-f]{12}$")
SERVER_VERSION = "1.0.0"

failures = 0


class CheckFailed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise CheckFailed(why)


def case(name, fn, *args):
    global failures
    try:
        fn(*args)
        print(f"PASS example user-{name}", flush=True)
    except CheckFailed as e:
        failures += 1
        print(f"FAIL example user-{name}: {e}", flush=True)
    except grpc.RpcError as e:
        failures += 1
        print(f"FAIL example user-{name}: unexpected {e.code().name}: "
              f"{e.details()}", flush=True)
    except Exception as e:  # a bug here must not hide the other cases
        failures += 1
        print(f"FAIL example user-{name}: {type(e).__name__}: {e}",
              flush=True)


def new_user(name, age=30):
    return user_pb2.CreateUserRequest(name=name, email=f"{name}@example.com",
                                      age=age, hobbies=["reading"])


def bearer(token):
    return [("authorization", f"Bearer {token}")]


# One call of each RPC, with metadata md.  Each returns the response(s) and
# raises grpc.RpcError on a status other than OK.
def rpc_create(stub, md, name="ic-user"):
    return stub.CreateUser(new_user(name), metadata=md, timeout=TIMEOUT)


def rpc_get(stub, md, uid=1):
    return stub.GetUser(user_pb2.GetUserRequest(id=uid), metadata=md,
                        timeout=TIMEOUT)


def rpc_list(stub, md):
    return stub.ListUsers(user_pb2.ListUsersRequest(page=0, limit=100),
                          metadata=md, timeout=TIMEOUT)


def rpc_stream(stub, md):
    return list(stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=0),
                                 metadata=md, timeout=TIMEOUT))


def rpc_batch(stub, md, names=("ic-b1", "ic-b2")):
    return stub.CreateBatchUsers(iter([new_user(n) for n in names]),
                                 metadata=md, timeout=TIMEOUT)


def rpc_chat(stub, md, names=("ic-c1",)):
    return list(stub.ChatWithUsers(iter([new_user(n) for n in names]),
                                   metadata=md, timeout=TIMEOUT))


PATTERNS = [("unary", rpc_create), ("server-streaming", rpc_stream),
            ("client-streaming", rpc_batch), ("bidi", rpc_chat)]


def expect_code(fn, code, what):
    """fn() must raise an RpcError with code; returns it."""
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code,
              f"{what}: expected {code.name}, got {e.code().name}: "
              f"{e.details()}")
        return e
    raise CheckFailed(f"{what}: expected {code.name}, the call succeeded")


def all_metadata(call_or_error):
    """Initial and trailing metadata as one dict (a refused call's headers
    come with its trailers: a trailers-only response)."""
    md = {}
    for part in (call_or_error.initial_metadata(),
                 call_or_error.trailing_metadata()):
        for k, v in part or ():
            md.setdefault(k, v)
    return md


def total(stub, md):
    return rpc_list(stub, md).total


# --- auth -------------------------------------------------------------------
def auth_accepted(stub, token):
    md = bearer(token)
    before = total(stub, md)
    r = rpc_create(stub, md, "ic-auth")
    check(r.user.id > 0 and r.user.name == "ic-auth", f"CreateUser gave {r}")
    u = rpc_get(stub, md, r.user.id)
    check(u.name == "ic-auth", f"GetUser({r.user.id}) gave {u}")
    lst = rpc_list(stub, md)
    check(lst.total == before + 1, f"ListUsers total {lst.total}, "
          f"expected {before + 1}")
    streamed = rpc_stream(stub, md)
    check(len(streamed) == before + 1, f"StreamUsers sent {len(streamed)} "
          f"users, expected {before + 1}")
    b = rpc_batch(stub, md)
    check(b.message == "2 users created", f"CreateBatchUsers: {b.message!r}")
    c = rpc_chat(stub, md)
    check([u.name for u in c] == ["ic-c1"], f"ChatWithUsers answered {c}")
    # The scheme is case-insensitive.
    rpc_get(stub, [("authorization", f"bearer {token}")], r.user.id)


def auth_refused(stub, token, md, want_detail, what):
    before = total(stub, bearer(token))
    for pattern, fn in PATTERNS:
        e = expect_code(lambda: fn(stub, md), grpc.StatusCode.UNAUTHENTICATED,
                        f"{pattern} {what}")
        check(want_detail in (e.details() or ""),
              f"{pattern} {what}: message {e.details()!r}, expected "
              f"{want_detail!r}")
    # GetUser and ListUsers too: every method of the service needs a token.
    expect_code(lambda: rpc_get(stub, md), grpc.StatusCode.UNAUTHENTICATED,
                f"GetUser {what}")
    expect_code(lambda: rpc_list(stub, md), grpc.StatusCode.UNAUTHENTICATED,
                f"ListUsers {what}")
    after = total(stub, bearer(token))
    check(after == before, f"{after - before} users created by refused calls")


def auth_refused_has_request_id(stub):
    e = expect_code(lambda: rpc_get(stub, [("x-request-id", "refused-42")]),
                    grpc.StatusCode.UNAUTHENTICATED, "GetUser without token")
    md = all_metadata(e)
    check(md.get("x-request-id") == "refused-42",
          f"refused call's metadata {md}: no x-request-id echo")
    check(md.get("server-version") == SERVER_VERSION,
          f"refused call's metadata {md}: no server-version")


def run_auth(stub, token):
    case("ic-auth-accepted", auth_accepted, stub, token)
    case("ic-auth-missing", auth_refused, stub, token, [],
         "missing authorization metadata", "without a token")
    case("ic-auth-wrong-token", auth_refused, stub, token,
         bearer(token + "-wrong"), "invalid token", "with a wrong token")
    case("ic-auth-not-bearer", auth_refused, stub, token,
         [("authorization", f"Basic {token}")], "not a Bearer token",
         "with a Basic scheme")
    case("ic-auth-refused-request-id", auth_refused_has_request_id, stub)


# --- rate limit ----------------------------------------------------------------
def burst(stub, n, md=()):
    """n GetUser-like calls (ListUsers) as fast as possible: returns the
    codes in order and the time they took."""
    codes, msgs = [], []
    t0 = time.monotonic()
    for _ in range(n):
        try:
            rpc_list(stub, list(md))
            codes.append(grpc.StatusCode.OK)
            msgs.append("")
        except grpc.RpcError as e:
            codes.append(e.code())
            msgs.append(e.details() or "")
    return codes, msgs, time.monotonic() - t0


def ratelimit(stub, rate):
    time.sleep(1.2)  # the bucket is full (it starts full anyway)
    n = int(rate) * 4 + 4
    codes, msgs, secs = burst(stub, n)
    ok = codes.count(grpc.StatusCode.OK)
    limited = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    check(ok + limited == n, f"unexpected codes in the burst: {codes}")
    check(limited > 0, f"{n} calls in {secs:.2f} s, none RESOURCE_EXHAUSTED")
    # The first `rate` calls (a full bucket) pass; the rest only as tokens
    # come back.
    check(codes[:int(rate)] == [grpc.StatusCode.OK] * int(rate),
          f"the first {int(rate)} calls of a full bucket: {codes}")
    allowed = int(rate) + rate * secs + 1
    check(ok <= allowed, f"{ok} of {n} calls passed in {secs:.2f} s at "
          f"{rate}/s (at most {allowed:.0f} expected)")
    m = msgs[codes.index(grpc.StatusCode.RESOURCE_EXHAUSTED)]
    check("rate limit exceeded" in m, f"message {m!r}")
    # A stream takes a token as well.  Right after the bucket ran dry at
    # most one token can come back during three quick calls: at least two
    # are refused.
    drain(stub)
    scodes = []
    for _ in range(3):
        try:
            rpc_stream(stub, [])
            scodes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            scodes.append(e.code())
    check(scodes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 2,
          f"StreamUsers on an empty bucket: {scodes}")
    # After a second the bucket has refilled: calls pass again.
    time.sleep(1.1)
    codes, _, _ = burst(stub, int(rate))
    check(codes == [grpc.StatusCode.OK] * int(rate),
          f"after 1.1 s, {int(rate)} calls gave {codes}")


def drain(stub):
    """Spends every token: calls until one is refused (bounded)."""
    for _ in range(1000):
        try:
            rpc_list(stub, [])
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return
            raise
    raise CheckFailed("1000 calls and the bucket is still not empty")


def auth_first(stub, token, rate):
    time.sleep(1.2)  # full bucket
    n = int(rate) * 4 + 4
    codes, _, secs = burst(stub, n)
    check(codes == [grpc.StatusCode.UNAUTHENTICATED] * n,
          f"{n} calls without a token gave {codes}")
    # Had they taken tokens, the bucket would be (nearly) empty now.
    codes, msgs, _ = burst(stub, int(rate), bearer(token))
    check(codes == [grpc.StatusCode.OK] * int(rate),
          f"{int(rate)} authenticated calls right after {n} unauthenticated "
          f"ones ({secs:.2f} s) gave {codes} {msgs}: refused calls drained "
          f"the bucket")


# --- request id / server-version ---------------------------------------------------
AUTH = []  # the token's metadata, for the headers mode


def headers_echo(stub):
    r, call = stub.ListUsers.with_call(
        user_pb2.ListUsersRequest(),
        metadata=AUTH + [("x-request-id", "req-123")], timeout=TIMEOUT)
    md = dict(call.initial_metadata())
    check(md.get("x-request-id") == "req-123",
          f"x-request-id not echoed: {md}")
    check(md.get("server-version") == SERVER_VERSION,
          f"server-version: {md}")


def headers_generated(stub):
    ids = []
    for _ in range(2):
        r, call = stub.ListUsers.with_call(user_pb2.ListUsersRequest(),
                                           metadata=AUTH, timeout=TIMEOUT)
        md = dict(call.initial_metadata())
        rid = md.get("x-request-id")
        check(rid and UUID4.match(rid), f"generated x-request-id {rid!r}")
        check(md.get("server-version") == SERVER_VERSION,
              f"server-version: {md}")
        ids.append(rid)
    check(ids[0] != ids[1], f"two calls got the same id {ids[0]}")


def headers_stream(stub):
    # At least one user, so that the stream sends a message and its headers
    # (an empty one is a trailers-only response).
    rpc_create(stub, AUTH, "hdr-user")
    call = stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=0),
                            metadata=AUTH + [("x-request-id", "stream-7")],
                            timeout=TIMEOUT)
    list(call)
    md = dict(call.initial_metadata())
    check(md.get("x-request-id") == "stream-7", f"stream headers {md}")
    check(md.get("server-version") == SERVER_VERSION, f"stream headers {md}")
    call = stub.ChatWithUsers(iter([new_user("hdr-chat")]), metadata=AUTH,
                              timeout=TIMEOUT)
    list(call)
    md = dict(call.initial_metadata())
    check(UUID4.match(md.get("x-request-id", "")), f"chat headers {md}")
    check(md.get("server-version") == SERVER_VERSION, f"chat headers {md}")


def headers_too_long(stub):
    # An id over 128 bytes is not echoed: a new one is generated.
    r, call = stub.ListUsers.with_call(
        user_pb2.ListUsersRequest(),
        metadata=AUTH + [("x-request-id", "x" * 200)], timeout=TIMEOUT)
    rid = dict(call.initial_metadata()).get("x-request-id", "")
    check(UUID4.match(rid), f"for a 200-byte id the server sent {rid!r}")


def run_headers(stub):
    case("ic-request-id-echo", headers_echo, stub)
    case("ic-request-id-generated", headers_generated, stub)
    case("ic-request-id-stream", headers_stream, stub)
    case("ic-request-id-too-long", headers_too_long, stub)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["auth", "ratelimit", "auth-first",
                                    "headers"])
    p.add_argument("--target", required=True)
    p.add_argument("--token", default="")
    p.add_argument("--rate", type=float, default=2)
    args = p.parse_args()
    with grpc.insecure_channel(args.target) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        stub = user_pb2_grpc.UserServiceStub(ch)
        if args.mode == "auth":
            run_auth(stub, args.token)
        elif args.mode == "ratelimit":
            case("ic-ratelimit", ratelimit, stub, args.rate)
        elif args.mode == "auth-first":
            case("ic-auth-before-ratelimit", auth_first, stub, args.token,
                 args.rate)
        else:
            if args.token:
                AUTH.extend(bearer(args.token))
            run_headers(stub)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
