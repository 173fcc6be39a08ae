#!/usr/bin/python3
"""grpcio over TLS against libminirpc (tests/examples/tls.sh).

  py_tls.py client --port N --certs DIR [--client-cert]
                   [--expect-username SUBJECT]
      grpc.ssl_channel_credentials with DIR/ca.pem (and DIR/client.pem /
      client.key), ssl_target_name_override foo.test.google.fr, to
      127.0.0.1:N; a few TestService calls against `e2e_tls --serve`
      (UnaryCall echoes and reports the client's subject in username).
      Prints "ok CASE" / "fail CASE: why"; exit status 0 when all passed.

  py_tls.py server --certs DIR [--require-client-cert]
      grpc.ssl_server_credentials with DIR/server1.pem on 127.0.0.1:0;
      prints "listening on N"; serves until SIGTERM / SIGINT.
      UnaryCall echoes the payload, username = the client certificate's
      common name; StreamingOutputCall answers "<payload>#i" per
      response_parameters entry; FullDuplexCall echoes each request.

Needs the stubs of tests/interop/test.proto on PYTHONPATH and
/usr/bin/python3 (Debian's grpcio).
"""

import argparse
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

import test_pb2
import test_pb2_grpc

SERVER_NAME = "foo.test.google.fr"


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Service(test_pb2_grpc.TestServiceServicer):
    def UnaryCall(self, request, context):
        cn = context.auth_context().get("x509_common_name") or [b""]
        return test_pb2.SimpleResponse(payload=request.payload,
                                       username=cn[0].decode())

    def StreamingOutputCall(self, request, context):
        for i, p in enumerate(request.response_parameters):
            body = (b"\0" * p.size if p.size > 0
                    else request.payload.body + b"#%d" % i)
            yield test_pb2.StreamingOutputCallResponse(
                payload=test_pb2.Payload(body=body))

    def FullDuplexCall(self, request_iterator, context):
        for req in request_iterator:
            yield test_pb2.StreamingOutputCallResponse(payload=req.payload)


def serve(args):
    creds = grpc.ssl_server_credentials(
        [(read(os.path.join(args.certs, "server1.key")),
          read(os.path.join(args.certs, "server1.pem")))],
        root_certificates=(read(os.path.join(args.certs, "ca.pem"))
                           if args.require_client_cert else None),
        require_client_auth=args.require_client_cert)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    test_pb2_grpc.add_TestServiceServicer_to_server(Service(), server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print("listening on %d" % port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    while not done.wait(0.2):
        pass
    server.stop(1).wait()
    return 0


def client(args):
    key = cert = None
    if args.client_cert:
        key = read(os.path.join(args.certs, "client.key"))
        cert = read(os.path.join(args.certs, "client.pem"))
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(os.path.join(args.certs, "ca.pem")),
        private_key=key, certificate_chain=cert)
    failed = 0

    def fail(case, why):
        nonlocal failed
        failed += 1
        print("fail %s: %s" % (case, why), flush=True)

    with grpc.secure_channel(
            "127.0.0.1:%d" % args.port, creds,
            options=[("grpc.ssl_target_name_override", SERVER_NAME)]) as ch:
        stub = test_pb2_grpc.TestServiceStub(ch)
        try:
            for i in range(3):
                body = b"hello %d" % i
                r = stub.UnaryCall(test_pb2.SimpleRequest(
                    payload=test_pb2.Payload(body=body), fill_username=True),
                    timeout=10)
                if r.payload.body != body:
                    raise AssertionError("payload not echoed")
                if r.username != args.expect_username:
                    raise AssertionError("username %r, expected %r" %
                                         (r.username, args.expect_username))
                if not r.hostname.startswith("ipv4:127.0.0.1:"):
                    raise AssertionError("peer %r" % r.hostname)
            print("ok unary", flush=True)
        except (grpc.RpcError, AssertionError) as e:
            fail("unary", e)
        try:
            body = bytes(range(256)) * 2048  # 512 KiB
            r = stub.UnaryCall(test_pb2.SimpleRequest(
                payload=test_pb2.Payload(body=body)), timeout=20)
            if r.payload.body != body:
                raise AssertionError("payload not echoed")
            print("ok large-unary", flush=True)
        except (grpc.RpcError, AssertionError) as e:
            fail("large-unary", e)
        try:
            req = test_pb2.StreamingOutputCallRequest(
                payload=test_pb2.Payload(body=b"ss"),
                response_parameters=[test_pb2.ResponseParameters()
                                     for _ in range(5)])
            got = [r.payload.body for r in
                   stub.StreamingOutputCall(req, timeout=10)]
            want = [b"ss#%d" % i for i in range(5)]
            if got != want:
                raise AssertionError("got %r" % got)
            print("ok server-streaming", flush=True)
        except (grpc.RpcError, AssertionError) as e:
            fail("server-streaming", e)
        try:
            reqs = [test_pb2.StreamingOutputCallRequest(
                payload=test_pb2.Payload(body=b"b%d" % i)) for i in range(10)]
            got = [r.payload.body for r in
                   stub.FullDuplexCall(iter(reqs), timeout=10)]
            if got != [b"b%d" % i for i in range(10)]:
                raise AssertionError("got %r" % got)
            print("ok bidi", flush=True)
        except (grpc.RpcError, AssertionError) as e:
            fail("bidi", e)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--certs", required=True)
    c.add_argument("--client-cert", action="store_true")
    c.add_argument("--expect-username", default="")
    s = sub.add_parser("server")
    s.add_argument("--certs", required=True)
    s.add_argument("--require-client-cert", action="store_true")
    args = ap.parse_args()
    return serve(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
