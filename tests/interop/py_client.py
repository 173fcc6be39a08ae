#!/usr/bin/python3
"""grpcio reference client for the gRPC interop tests.

Implements the client cases of grpc/grpc doc/interop-test-descriptions.md that
need no credentials, so that libminirpc's interop_server can be checked against
an independent implementation.  Prints one line per case, "PASS name" or
"FAIL name: reason", and exits 0 only if every requested case passed (1 if one
failed, 2 on a usage error).

The compression cases go as far as grpcio's API allows: compression is chosen
per call (compression=grpc.Compression.Gzip), never per message, and the
compressed flag of a received message is not visible.  So the "uncompressed"
requests go on calls without compression (client_compressed_streaming's second
message goes compressed with the first: expect_compressed=false does not
forbid that), and server_compressed_* check everything but the responses'
compressed flags (interop_client checks those).

Needs the stubs generated from tests/interop/test.proto on PYTHONPATH
(tests/interop/run.sh does that) and /usr/bin/python3, the only interpreter
that sees Debian's grpcio.

Usage: py_client.py --server_host=H --server_port=N
                    --test_case=NAME[,NAME...]|all
"""

import argparse
import queue
import sys

import grpc

try:
    import test_pb2
    import test_pb2_grpc
except ImportError:
    sys.exit("py_client: test_pb2/test_pb2_grpc not importable; generate them "
             "with protoc --python_out/--grpc_out from tests/interop/test.proto "
             "and put that directory on PYTHONPATH")

# Upper bound for any single RPC, so that a misbehaving server fails the case
# instead of hanging the run.
DEADLINE_S = 10.0

ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")

SPECIAL_STATUS_MESSAGE = \
    "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class CaseFailed(Exception):
    pass


def check(condition, reason):
    if not condition:
        raise CaseFailed(reason)


def zeros(n):
    return test_pb2.Payload(body=b"\0" * n)


def check_payload(payload, size, what="response"):
    check(len(payload.body) == size,
          "%s payload is %d bytes, expected %d" % (what, len(payload.body), size))
    check(payload.body == b"\0" * size,
          "%s payload body is not all zeros" % what)


class Pipe:
    """Request iterator fed one message at a time, for lock-step streaming.

    grpcio drains request iterators on its own thread; close() (also run on
    exit from the with-block) releases that thread whatever happened.
    """

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        return item

    def add(self, request):
        self._queue.put(request)

    def close(self):
        self._queue.put(self._END)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def expect_rpc_error(fn, code, what):
    """Run fn() and return the grpc.RpcError it must raise with `code`."""
    try:
        fn()
    except grpc.RpcError as err:
        check(err.code() == code,
              "%s: got status %s (%r), expected %s"
              % (what, err.code(), err.details(), code))
        return err
    raise CaseFailed("%s: succeeded, expected %s" % (what, code))


def expect_ok(call, what):
    check(call.code() == grpc.StatusCode.OK,
          "%s: status %s (%r)" % (what, call.code(), call.details()))


def check_echoed_metadata(call, what):
    """Each echoed key must come back exactly once, with our value."""
    initial = [tuple(m) for m in call.initial_metadata() or ()]
    trailing = [tuple(m) for m in call.trailing_metadata() or ()]
    for md, wanted, where in ((initial, ECHO_INITIAL, "initial"),
                              (trailing, ECHO_TRAILING, "trailing")):
        values = [v for k, v in md if k == wanted[0]]
        check(values == [wanted[1]],
              "%s: %s metadata %s is %r, expected [%r]"
              % (what, where, wanted[0], values, wanted[1]))


# --- the cases ------------------------------------------------------------
# Each takes the TestService stub and the channel, raises CaseFailed (or any
# exception) on failure.

def empty_unary(stub, channel):
    response = stub.EmptyCall(test_pb2.Empty(), timeout=DEADLINE_S)
    check(isinstance(response, test_pb2.Empty),
          "response is %r, not an Empty" % (response,))


def large_unary(stub, channel):
    request = test_pb2.SimpleRequest(response_type=test_pb2.COMPRESSABLE,
                                     response_size=314159,
                                     payload=zeros(271828))
    response = stub.UnaryCall(request, timeout=DEADLINE_S)
    check_payload(response.payload, 314159)


def _large_request(**fields):
    return test_pb2.SimpleRequest(response_type=test_pb2.COMPRESSABLE,
                                  response_size=314159, payload=zeros(271828),
                                  **fields)


def client_compressed_unary(stub, channel):
    # 1. The feature probe: expect_compressed, sent uncompressed; the server
    #    must refuse it.
    probe = _large_request(expect_compressed=test_pb2.BoolValue(value=True))
    expect_rpc_error(lambda: stub.UnaryCall(probe, timeout=DEADLINE_S),
                     grpc.StatusCode.INVALID_ARGUMENT,
                     "probe (uncompressed, expect_compressed=true)")
    # 2. The same request compressed (gzip for the call).
    response = stub.UnaryCall(probe, timeout=DEADLINE_S,
                              compression=grpc.Compression.Gzip)
    check_payload(response.payload, 314159, "compressed request: response")
    # 3. Uncompressed, not expecting compression.  grpcio can not opt one
    #    message out of a call's compression, so this call has none.
    request = _large_request(expect_compressed=test_pb2.BoolValue(value=False))
    response = stub.UnaryCall(request, timeout=DEADLINE_S)
    check_payload(response.payload, 314159, "uncompressed request: response")


def server_compressed_unary(stub, channel):
    # grpcio does not show a received message's compressed flag: only the
    # calls and the payloads can be checked here.
    for compressed in (True, False):
        request = _large_request(
            response_compressed=test_pb2.BoolValue(value=compressed))
        response = stub.UnaryCall(request, timeout=DEADLINE_S)
        check_payload(response.payload, 314159,
                      "response_compressed=%s: response" % compressed)


def client_streaming(stub, channel):
    sizes = (27182, 8, 1828, 45904)
    requests = (test_pb2.StreamingInputCallRequest(payload=zeros(n))
                for n in sizes)
    response = stub.StreamingInputCall(requests, timeout=DEADLINE_S)
    check(response.aggregated_payload_size == 74922,
          "aggregated_payload_size %d, expected 74922"
          % response.aggregated_payload_size)


def client_compressed_streaming(stub, channel):
    # 1. The feature probe: one uncompressed message saying
    #    expect_compressed; the call must fail with INVALID_ARGUMENT.
    probe = test_pb2.StreamingInputCallRequest(
        expect_compressed=test_pb2.BoolValue(value=True), payload=zeros(27182))
    expect_rpc_error(
        lambda: stub.StreamingInputCall(iter((probe,)), timeout=DEADLINE_S),
        grpc.StatusCode.INVALID_ARGUMENT,
        "probe (uncompressed, expect_compressed=true)")
    # 2. The compressed message, then the "uncompressed" one: grpcio can not
    #    opt a message out of the call's gzip, so both go compressed (which
    #    expect_compressed=false allows).
    requests = (
        probe,
        test_pb2.StreamingInputCallRequest(
            expect_compressed=test_pb2.BoolValue(value=False),
            payload=zeros(45904)),
    )
    response = stub.StreamingInputCall(iter(requests), timeout=DEADLINE_S,
                                       compression=grpc.Compression.Gzip)
    check(response.aggregated_payload_size == 73086,
          "aggregated_payload_size %d, expected 73086"
          % response.aggregated_payload_size)


def server_streaming(stub, channel):
    sizes = (31415, 9, 2653, 58979)
    request = test_pb2.StreamingOutputCallRequest(
        response_type=test_pb2.COMPRESSABLE,
        response_parameters=[test_pb2.ResponseParameters(size=n)
                             for n in sizes])
    call = stub.StreamingOutputCall(request, timeout=DEADLINE_S)
    responses = list(call)
    check(len(responses) == len(sizes),
          "%d responses, expected %d" % (len(responses), len(sizes)))
    for i, (response, size) in enumerate(zip(responses, sizes)):
        check_payload(response.payload, size, "response %d" % i)
    expect_ok(call, "StreamingOutputCall")


def server_compressed_streaming(stub, channel):
    # As server_compressed_unary: the compressed flags are not visible.
    sizes = (31415, 92653)
    request = test_pb2.StreamingOutputCallRequest(
        response_type=test_pb2.COMPRESSABLE,
        response_parameters=[
            test_pb2.ResponseParameters(
                compressed=test_pb2.BoolValue(value=True), size=sizes[0]),
            test_pb2.ResponseParameters(
                compressed=test_pb2.BoolValue(value=False), size=sizes[1]),
        ])
    call = stub.StreamingOutputCall(request, timeout=DEADLINE_S)
    responses = list(call)
    check(len(responses) == len(sizes),
          "%d responses, expected %d" % (len(responses), len(sizes)))
    for i, (response, size) in enumerate(zip(responses, sizes)):
        check_payload(response.payload, size, "response %d" % i)
    expect_ok(call, "StreamingOutputCall")


def quiet_stream(stub, channel):
    """Two responses 2.5 s apart: the connection is silent in between, and
    a server with a 1 s keepalive PINGs the client, which must answer
    within the server's timeout or the call is cut."""
    request = test_pb2.StreamingOutputCallRequest(
        response_parameters=[
            test_pb2.ResponseParameters(size=10),
            test_pb2.ResponseParameters(size=20, interval_us=2500000)])
    call = stub.StreamingOutputCall(request, timeout=DEADLINE_S)
    responses = list(call)
    check(len(responses) == 2, "%d responses, expected 2" % len(responses))
    check_payload(responses[1].payload, 20, "the late response")
    expect_ok(call, "StreamingOutputCall with a quiet gap")


def ping_pong(stub, channel):
    request_sizes = (27182, 8, 1828, 45904)
    response_sizes = (31415, 9, 2653, 58979)
    with Pipe() as pipe:
        call = stub.FullDuplexCall(pipe, timeout=DEADLINE_S)
        # Strict lock-step: the next request goes only after the reply.
        for i, (req_size, resp_size) in enumerate(zip(request_sizes,
                                                      response_sizes)):
            pipe.add(test_pb2.StreamingOutputCallRequest(
                response_type=test_pb2.COMPRESSABLE,
                response_parameters=[test_pb2.ResponseParameters(size=resp_size)],
                payload=zeros(req_size)))
            response = next(call, None)
            check(response is not None, "stream ended before response %d" % i)
            check_payload(response.payload, resp_size, "response %d" % i)
        pipe.close()
        extra = list(call)
        check(not extra, "%d responses after the fourth" % len(extra))
        expect_ok(call, "FullDuplexCall")


def empty_stream(stub, channel):
    call = stub.FullDuplexCall(iter(()), timeout=DEADLINE_S)
    responses = list(call)
    check(not responses, "%d responses, expected none" % len(responses))
    expect_ok(call, "FullDuplexCall")


def custom_metadata(stub, channel):
    metadata = (ECHO_INITIAL, ECHO_TRAILING)

    request = test_pb2.SimpleRequest(response_type=test_pb2.COMPRESSABLE,
                                     response_size=314159,
                                     payload=zeros(271828))
    response, call = stub.UnaryCall.with_call(request, metadata=metadata,
                                              timeout=DEADLINE_S)
    check_payload(response.payload, 314159, "UnaryCall response")
    check_echoed_metadata(call, "UnaryCall")

    request = test_pb2.StreamingOutputCallRequest(
        response_type=test_pb2.COMPRESSABLE,
        response_parameters=[test_pb2.ResponseParameters(size=314159)],
        payload=zeros(271828))
    call = stub.FullDuplexCall(iter((request,)), metadata=metadata,
                               timeout=DEADLINE_S)
    responses = list(call)
    check(len(responses) == 1,
          "FullDuplexCall: %d responses, expected 1" % len(responses))
    check_payload(responses[0].payload, 314159, "FullDuplexCall response")
    expect_ok(call, "FullDuplexCall")
    check_echoed_metadata(call, "FullDuplexCall")


def _check_echoed_status(stub, message, duplex):
    status = test_pb2.EchoStatus(code=2, message=message)

    def unary():
        stub.UnaryCall(test_pb2.SimpleRequest(response_status=status),
                       timeout=DEADLINE_S)

    err = expect_rpc_error(unary, grpc.StatusCode.UNKNOWN, "UnaryCall")
    check(err.details() == message,
          "UnaryCall: status message %r, expected %r" % (err.details(), message))

    if not duplex:
        return

    def full_duplex():
        request = test_pb2.StreamingOutputCallRequest(response_status=status)
        list(stub.FullDuplexCall(iter((request,)), timeout=DEADLINE_S))

    err = expect_rpc_error(full_duplex, grpc.StatusCode.UNKNOWN,
                           "FullDuplexCall")
    check(err.details() == message,
          "FullDuplexCall: status message %r, expected %r"
          % (err.details(), message))


def status_code_and_message(stub, channel):
    _check_echoed_status(stub, "test status message", duplex=True)


def special_status_message(stub, channel):
    # Upstream only exercises UnaryCall for this one.
    _check_echoed_status(stub, SPECIAL_STATUS_MESSAGE, duplex=False)


def unimplemented_method(stub, channel):
    expect_rpc_error(
        lambda: stub.UnimplementedCall(test_pb2.Empty(), timeout=DEADLINE_S),
        grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(stub, channel):
    other = test_pb2_grpc.UnimplementedServiceStub(channel)
    expect_rpc_error(
        lambda: other.UnimplementedCall(test_pb2.Empty(), timeout=DEADLINE_S),
        grpc.StatusCode.UNIMPLEMENTED, "UnimplementedService/UnimplementedCall")


def cancel_after_begin(stub, channel):
    with Pipe() as pipe:  # never yields a request before the cancel
        future = stub.StreamingInputCall.future(pipe, timeout=DEADLINE_S)
        future.cancel()
        check(future.code() == grpc.StatusCode.CANCELLED,
              "status %s, expected CANCELLED" % future.code())


def cancel_after_first_response(stub, channel):
    with Pipe() as pipe:
        call = stub.FullDuplexCall(pipe, timeout=DEADLINE_S)
        pipe.add(test_pb2.StreamingOutputCallRequest(
            response_type=test_pb2.COMPRESSABLE,
            response_parameters=[test_pb2.ResponseParameters(size=31415)],
            payload=zeros(27182)))
        response = next(call, None)
        check(response is not None, "stream ended before the first response")
        check_payload(response.payload, 31415)
        call.cancel()
        check(call.code() == grpc.StatusCode.CANCELLED,
              "status %s, expected CANCELLED" % call.code())


def timeout_on_sleeping_server(stub, channel):
    with Pipe() as pipe:  # no half-close: the server waits for more
        call = stub.FullDuplexCall(pipe, timeout=0.001)
        pipe.add(test_pb2.StreamingOutputCallRequest(
            response_type=test_pb2.COMPRESSABLE, payload=zeros(27182)))
        expect_rpc_error(lambda: next(call), grpc.StatusCode.DEADLINE_EXCEEDED,
                         "FullDuplexCall with a 1 ms deadline")


CASES = {fn.__name__: fn for fn in (
    empty_unary, large_unary, client_compressed_unary, server_compressed_unary,
    client_streaming, client_compressed_streaming, server_streaming,
    server_compressed_streaming, ping_pong, empty_stream, custom_metadata,
    status_code_and_message, special_status_message, unimplemented_method,
    unimplemented_service, cancel_after_begin, cancel_after_first_response,
    timeout_on_sleeping_server, quiet_stream)}


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", default="all",
                        help="all, or a comma-separated list of: "
                        + ", ".join(CASES))
    parser.add_argument("--use_tls", default="false")
    parser.add_argument("--use_test_ca", default="false")
    parser.add_argument("--test_ca_file", default=None,
                        help="PEM of the test CA (with --use_test_ca=true)")
    parser.add_argument("--server_host_override", default=None)
    args = parser.parse_args(argv)
    if args.test_case == "all":
        args.test_case = list(CASES)
    else:
        args.test_case = args.test_case.split(",")
        for name in args.test_case:
            if name not in CASES:
                parser.error("unknown test case %r" % name)
    args.use_tls = args.use_tls.lower() in ("true", "1", "yes")
    args.use_test_ca = args.use_test_ca.lower() in ("true", "1", "yes")
    if args.use_tls and args.use_test_ca and not args.test_ca_file:
        parser.error("--use_test_ca=true needs --test_ca_file")
    return args


def _channel(args, target):
    if not args.use_tls:
        return grpc.insecure_channel(target)
    ca = open(args.test_ca_file, "rb").read() if args.use_test_ca else None
    options = []
    if args.server_host_override:
        options.append(("grpc.ssl_target_name_override",
                        args.server_host_override))
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca),
                               options=options)


def main(argv=None):
    args = _parse_args(argv)
    names = args.test_case
    target = "%s:%d" % (args.server_host, args.server_port)

    failed = 0
    with _channel(args, target) as channel:
        try:
            # Fail-fast RPCs would otherwise race the first connection.
            grpc.channel_ready_future(channel).result(timeout=DEADLINE_S)
            unreachable = None
        except grpc.FutureTimeoutError:
            unreachable = "cannot connect to %s" % target
        stub = test_pb2_grpc.TestServiceStub(channel)
        for name in names:
            try:
                if unreachable:
                    raise CaseFailed(unreachable)
                CASES[name](stub, channel)
            except CaseFailed as err:
                print("FAIL %s: %s" % (name, err), flush=True)
                failed += 1
            except grpc.RpcError as err:
                print("FAIL %s: unexpected status %s (%r)"
                      % (name, err.code(), err.details()), flush=True)
                failed += 1
            except Exception as err:  # report, and carry on with the next case
                print("FAIL %s: %s: %s" % (name, type(err).__name__, err),
                      flush=True)
                failed += 1
            else:
                print("PASS %s" % name, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
