#!/usr/bin/python3
"""grpcio client for libminirpc's auth interceptor (and request_id).

Talks to `e2e_interceptors --serve PORT --token TOKEN` (see
tests/examples/interceptors.sh): grpc.testing.TestService behind the
request_id, logging, auth and recovery interceptors, plus an exempt
/grpc.health.v1.Health/Check.  Prints one line per case,
"PASS interceptors <case>" or "FAIL interceptors <case>: why", and exits 1 if
any case failed (2 on a usage error).

Needs test_pb2 / test_pb2_grpc (protoc --python_out --grpc_out from
tests/interop/test.proto) on PYTHONPATH and /usr/bin/python3, the
interpreter that sees Debian's grpcio.

Usage: auth_client.py --port N --token TOKEN
"""

import argparse
import re
import sys

import grpc

try:
    import test_pb2
    import test_pb2_grpc
except ImportError:
    sys.exit("auth_client: test_pb2/test_pb2_grpc not importable; generate "
             "them from tests/interop/test.proto and put them on PYTHONPATH")

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                   r"[0-9a-f]{12}$")
TIMEOUT = 10

failures = 0


def result(case, why=None):
    global failures
    if why is None:
        print("PASS interceptors %s" % case, flush=True)
    else:
        failures += 1
        print("FAIL interceptors %s: %s" % (case, why), flush=True)


def payload(body):
    return test_pb2.Payload(body=body)


def call_pattern(stub, pattern, md):
    """Runs one call of a pattern; returns (responses, initial metadata).
    Raises grpc.RpcError on a non-OK status."""
    if pattern == "unary":
        resp, call = stub.UnaryCall.with_call(
            test_pb2.SimpleRequest(payload=payload(b"hi")), metadata=md,
            timeout=TIMEOUT)
        return [resp.payload.body], call.initial_metadata()
    if pattern == "server-streaming":
        req = test_pb2.StreamingOutputCallRequest(
            payload=payload(b"s"),
            response_parameters=[test_pb2.ResponseParameters(size=0)] * 2)
        it = stub.StreamingOutputCall(req, metadata=md, timeout=TIMEOUT)
        out = [r.payload.body for r in it]
        return out, it.initial_metadata()
    if pattern == "client-streaming":
        reqs = iter([test_pb2.StreamingInputCallRequest(payload=payload(b))
                     for b in (b"a", b"b")])
        resp, call = stub.StreamingInputCall.with_call(reqs, metadata=md,
                                                       timeout=TIMEOUT)
        return [resp.aggregated_payload_size], call.initial_metadata()
    reqs = iter([test_pb2.StreamingOutputCallRequest(payload=payload(b))
                 for b in (b"x", b"y")])
    it = stub.FullDuplexCall(reqs, metadata=md, timeout=TIMEOUT)
    out = [r.payload.body for r in it]
    return out, it.initial_metadata()


EXPECTED = {
    "unary": lambda out: out == [b"hi"],
    "server-streaming": lambda out: out == [b"s#0", b"s#1"],
    "client-streaming": lambda out: len(out) == 1 and out[0] != 0,
    "bidi": lambda out: out == [b"x", b"y"],
}


def expect_ok(case, stub, pattern, md):
    try:
        out, _ = call_pattern(stub, pattern, md)
    except grpc.RpcError as e:
        result(case, "status %s %r, want OK" % (e.code(), e.details()))
        return
    if not EXPECTED[pattern](out):
        result(case, "unexpected responses %r" % (out,))
        return
    result(case)


def expect_unauthenticated(case, stub, pattern, md, detail):
    try:
        out, _ = call_pattern(stub, pattern, md)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAUTHENTICATED:
            result(case, "status %s %r, want UNAUTHENTICATED"
                   % (e.code(), e.details()))
        elif detail not in (e.details() or ""):
            result(case, "message %r lacks %r" % (e.details(), detail))
        else:
            result(case)
        return
    result(case, "call succeeded (%r), want UNAUTHENTICATED" % (out,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()

    channel = grpc.insecure_channel("127.0.0.1:%d" % args.port)
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    except grpc.FutureTimeoutError:
        result("connect", "server not ready")
        return 1
    stub = test_pb2_grpc.TestServiceStub(channel)
    good = (("authorization", "Bearer " + args.token),)

    for pattern in ("unary", "server-streaming", "client-streaming", "bidi"):
        expect_ok(pattern + "-token-ok", stub, pattern, good)
        expect_unauthenticated(pattern + "-no-token", stub, pattern, (),
                               "missing authorization")
        expect_unauthenticated(pattern + "-wrong-token", stub, pattern,
                               (("authorization", "Bearer not-" + args.token),),
                               "invalid token")
    expect_unauthenticated("unary-basic-scheme", stub, "unary",
                           (("authorization", "Basic dXNlcjpwdw=="),),
                           "not a Bearer token")
    expect_ok("unary-lowercase-bearer", stub, "unary",
              (("authorization", "bearer " + args.token),))

    # The health service is exempt.
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    try:
        check(b"", timeout=TIMEOUT)
        result("health-exempt")
    except grpc.RpcError as e:
        result("health-exempt", "status %s %r" % (e.code(), e.details()))

    # request_id: generated (a UUID) or echoed; server-version set.
    try:
        _, md = call_pattern(stub, "unary", good)
        md = dict(md)
        if not UUID4.match(md.get("x-request-id", "")):
            result("request-id-generated",
                   "x-request-id %r" % md.get("x-request-id"))
        elif md.get("server-version") != "minirpc-ic-test":
            result("request-id-generated",
                   "server-version %r" % md.get("server-version"))
        else:
            result("request-id-generated")
        _, md = call_pattern(stub, "unary",
                             good + (("x-request-id", "py-req-42"),))
        if dict(md).get("x-request-id") != "py-req-42":
            result("request-id-echoed", "got %r" % dict(md).get("x-request-id"))
        else:
            result("request-id-echoed")
    except grpc.RpcError as e:
        result("request-id", "status %s %r" % (e.code(), e.details()))

    # A refused call still has its request id: trailers-only, so grpcio
    # shows the server's metadata as trailing metadata.
    try:
        stub.UnaryCall(test_pb2.SimpleRequest(), timeout=TIMEOUT)
        result("request-id-on-refusal", "call succeeded")
    except grpc.RpcError as e:
        md = dict(e.initial_metadata() or ())
        md.update(dict(e.trailing_metadata() or ()))
        if not UUID4.match(md.get("x-request-id", "")):
            result("request-id-on-refusal", "metadata %r" % (md,))
        else:
            result("request-id-on-refusal")

    channel.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
