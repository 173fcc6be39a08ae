#!/usr/bin/python3
"""grpcio reference server for the gRPC interop tests (grpc.testing.TestService).

Behaviour follows the "Server" section of grpc/grpc
doc/interop-test-descriptions.md, so that libminirpc's interop_client can be
checked against an independent implementation.  UnimplementedCall and the
UnimplementedService are deliberately left out: grpcio then answers them with
UNIMPLEMENTED, which is what the unimplemented_* cases expect.

Compression: CompressedResponse is implemented (response_compressed,
ResponseParameters.compressed: gzip via context.set_compression, opted out
per message with context.disable_next_message_compression).  CompressedRequest
is not: grpcio decompresses before the handler and does not tell whether a
request message came compressed, so expect_compressed can not be enforced
(it is ignored) and the client_compressed_* cases, whose probe must fail with
INVALID_ARGUMENT, can not pass against this server (run.sh leaves them out).

Needs the stubs generated from tests/interop/test.proto on PYTHONPATH
(tests/interop/run.sh does that) and /usr/bin/python3, the only interpreter
that sees Debian's grpcio.

Usage: py_server.py --port=N [--use_tls=false]
"""

import argparse
import sys
import time
from concurrent import futures

import grpc

try:
    import test_pb2
    import test_pb2_grpc
except ImportError:
    sys.exit("py_server: test_pb2/test_pb2_grpc not importable; generate them "
             "with protoc --python_out/--grpc_out from tests/interop/test.proto "
             "and put that directory on PYTHONPATH")

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

# EchoStatus carries the numeric code; grpcio wants the enum member.
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _echo_metadata(context):
    """Echo the two test keys; must run before the first response is sent."""
    initial, trailing = [], []
    for key, value in context.invocation_metadata():
        if key == ECHO_INITIAL_KEY:
            initial.append((key, value))
        elif key == ECHO_TRAILING_KEY:
            trailing.append((key, value))
    # Always send headers explicitly so the echoed value arrives as initial
    # metadata even when the call then fails (no trailers-only merge).
    context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


def _finish_with_status(echo, context):
    """Close the call with the client-chosen status (the "Echo Status" feature).

    Returns normally for OK (with the message as details); raises for any other
    code via context.abort, which keeps the trailing metadata already set.
    """
    code = _CODES.get(echo.code, grpc.StatusCode.UNKNOWN)
    if code is grpc.StatusCode.OK:
        context.set_details(echo.message)
        return
    context.abort(code, echo.message)


def _check_response_type(response_type, context):
    # COMPRESSABLE is the only payload type we (and test.proto) know of.
    if response_type != test_pb2.COMPRESSABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      "unsupported response_type %d" % response_type)


def _payload(size):
    return test_pb2.Payload(type=test_pb2.COMPRESSABLE, body=b"\0" * size)


def _stream_responses(request, context):
    """Yield one response per ResponseParameters, honouring interval_us and
    compressed (CompressedResponse: only effective once _use_gzip ran)."""
    for params in request.response_parameters:
        if params.interval_us > 0:
            time.sleep(params.interval_us / 1e6)
        if not context.is_active():  # client went away while we slept
            return
        if not params.compressed.value:
            # Applies to the message yielded next.
            context.disable_next_message_compression()
        yield test_pb2.StreamingOutputCallResponse(payload=_payload(params.size))


def _use_gzip(context):
    """CompressedResponse: gzip for the call's responses.  grpcio sends the
    algorithm with the response headers, so this must come before
    _echo_metadata (which sends them); messages then opt out one by one."""
    context.set_compression(grpc.Compression.Gzip)


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        _echo_metadata(context)
        return test_pb2.Empty()

    def UnaryCall(self, request, context):
        # expect_compressed (CompressedRequest) is not checked: grpcio does
        # not show whether the request came compressed (see the top).
        if request.response_compressed.value:
            _use_gzip(context)
        _echo_metadata(context)
        _check_response_type(request.response_type, context)
        if request.HasField("response_status"):
            # Non-OK statuses abort here, before any response message.
            _finish_with_status(request.response_status, context)
        return test_pb2.SimpleResponse(payload=_payload(request.response_size))

    def StreamingOutputCall(self, request, context):
        if any(p.compressed.value for p in request.response_parameters):
            _use_gzip(context)
        _echo_metadata(context)
        _check_response_type(request.response_type, context)
        yield from _stream_responses(request, context)
        if request.HasField("response_status"):
            _finish_with_status(request.response_status, context)

    def StreamingInputCall(self, request_iterator, context):
        # expect_compressed can not be checked here either (see the top).
        _echo_metadata(context)
        total = sum(len(req.payload.body) for req in request_iterator)
        return test_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        # The headers go out before any request is read, so the call is
        # gzip from the start; every response not asked to be compressed
        # opts out (_stream_responses).
        _use_gzip(context)
        _echo_metadata(context)
        yield from self._respond_to_each(request_iterator, context)

    def HalfDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        # Nothing is sent until the client half-closes.
        buffered = list(request_iterator)
        yield from self._respond_to_each(buffered, context)

    @staticmethod
    def _respond_to_each(requests, context):
        for request in requests:
            # A response_status ends the call: later requests are ignored.
            if request.HasField("response_status"):
                _finish_with_status(request.response_status, context)
                return
            _check_response_type(request.response_type, context)
            yield from _stream_responses(request, context)

    # UnimplementedCall is inherited unimplemented -> UNIMPLEMENTED.


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True,
                        help="port on 127.0.0.1 (0: let the OS pick)")
    parser.add_argument("--use_tls", default="false")
    parser.add_argument("--tls_cert_file", default=None)
    parser.add_argument("--tls_key_file", default=None)
    args = parser.parse_args(argv)
    args.use_tls = args.use_tls.lower() in ("true", "1", "yes")
    if args.use_tls and not (args.tls_cert_file and args.tls_key_file):
        parser.error("--use_tls=true needs --tls_cert_file and --tls_key_file")
    return args


def main(argv=None):
    args = _parse_args(argv)
    # Enough workers that blocked streaming handlers (e.g. a client that never
    # half-closes) cannot starve the other cases.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    if args.use_tls:
        creds = grpc.ssl_server_credentials([(
            open(args.tls_key_file, "rb").read(),
            open(args.tls_cert_file, "rb").read())])
        port = server.add_secure_port("127.0.0.1:%d" % args.port, creds)
    else:
        port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    if port == 0:
        sys.exit("py_server: could not bind 127.0.0.1:%d" % args.port)
    server.start()
    print("listening on %d" % port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
