// grpc-go interop client for libminirpc's interop tests.
//
// Implements the same client cases as tests/interop/py_client.py (those of
// grpc/grpc doc/interop-test-descriptions.md that need no TLS, credentials or
// compression) with Debian's grpc-go, so that libminirpc's interop_server is
// checked against a second independent implementation.  Prints one line per
// case, "PASS name" or "FAIL name: reason", and exits 0 only if every
// requested case passed (1 if one failed, 2 on a usage error).
//
// Needs the Go code generated from tests/interop/test.proto with
//
//	protoc --go_out=plugins=grpc,Mtest.proto=minirpc.test/grpc_testing:DIR
//
// importable as minirpc.test/grpc_testing (tests/interop/run.sh does that and
// builds this in GOPATH mode against /usr/share/gocode).
//
// Usage: client --server_host=H --server_port=N --test_case=NAME|all
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "minirpc.test/grpc_testing"
)

// Upper bound for any single RPC, so that a misbehaving server fails the case
// instead of hanging the run.
const deadline = 10 * time.Second

const (
	echoInitialKey   = "x-grpc-test-echo-initial"
	echoInitialValue = "test_initial_metadata_value"
	echoTrailingKey  = "x-grpc-test-echo-trailing-bin"
	echoTrailingVal  = "\xab\xab\xab"
)

const specialStatusMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"

type caseFailed struct{ msg string }

func (e caseFailed) Error() string { return e.msg }

func failf(format string, args ...interface{}) error {
	return caseFailed{fmt.Sprintf(format, args...)}
}

func zeros(n int) *pb.Payload {
	return &pb.Payload{Type: pb.PayloadType_COMPRESSABLE, Body: make([]byte, n)}
}

func checkPayload(p *pb.Payload, size int, what string) error {
	body := p.GetBody()
	if len(body) != size {
		return failf("%s payload is %d bytes, expected %d", what, len(body), size)
	}
	if !bytes.Equal(body, make([]byte, size)) {
		return failf("%s payload body is not all zeros", what)
	}
	return nil
}

// expectCode checks that err carries the status code want.
func expectCode(err error, want codes.Code, what string) (*status.Status, error) {
	if err == nil {
		return nil, failf("%s: succeeded, expected %v", what, want)
	}
	st, _ := status.FromError(err)
	if st.Code() != want {
		return st, failf("%s: got status %v (%q), expected %v", what, st.Code(), st.Message(), want)
	}
	return st, nil
}

// expectOK reports a non-nil error from the final Recv (io.EOF is success).
func expectOK(err error, what string) error {
	if err == nil || err == io.EOF {
		return nil
	}
	st, _ := status.FromError(err)
	return failf("%s: status %v (%q)", what, st.Code(), st.Message())
}

func withDeadline() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), deadline)
}

// checkEchoedMetadata: each echoed key must come back exactly once, with our
// value.
func checkEchoedMetadata(header, trailer metadata.MD, what string) error {
	for _, c := range []struct {
		md         metadata.MD
		key, value string
		where      string
	}{
		{header, echoInitialKey, echoInitialValue, "initial"},
		{trailer, echoTrailingKey, echoTrailingVal, "trailing"},
	} {
		values := c.md.Get(c.key)
		if len(values) != 1 || values[0] != c.value {
			return failf("%s: %s metadata %s is %q, expected [%q]", what, c.where, c.key, values, c.value)
		}
	}
	return nil
}

type testCase func(tc pb.TestServiceClient, cc *grpc.ClientConn) error

func emptyUnary(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	reply, err := tc.EmptyCall(ctx, &pb.Empty{})
	if err != nil {
		return err
	}
	if reply == nil {
		return failf("no response")
	}
	return nil
}

func largeUnary(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	reply, err := tc.UnaryCall(ctx, &pb.SimpleRequest{
		ResponseType: pb.PayloadType_COMPRESSABLE,
		ResponseSize: 314159,
		Payload:      zeros(271828),
	})
	if err != nil {
		return err
	}
	return checkPayload(reply.GetPayload(), 314159, "response")
}

func clientStreaming(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	stream, err := tc.StreamingInputCall(ctx)
	if err != nil {
		return err
	}
	for _, n := range []int{27182, 8, 1828, 45904} {
		if err := stream.Send(&pb.StreamingInputCallRequest{Payload: zeros(n)}); err != nil {
			// The real error comes with CloseAndRecv.
			break
		}
	}
	reply, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if reply.GetAggregatedPayloadSize() != 74922 {
		return failf("aggregated_payload_size %d, expected 74922", reply.GetAggregatedPayloadSize())
	}
	return nil
}

func serverStreaming(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	sizes := []int{31415, 9, 2653, 58979}
	params := make([]*pb.ResponseParameters, len(sizes))
	for i, n := range sizes {
		params[i] = &pb.ResponseParameters{Size: int32(n)}
	}
	ctx, cancel := withDeadline()
	defer cancel()
	stream, err := tc.StreamingOutputCall(ctx, &pb.StreamingOutputCallRequest{
		ResponseType:       pb.PayloadType_COMPRESSABLE,
		ResponseParameters: params,
	})
	if err != nil {
		return err
	}
	var responses []*pb.StreamingOutputCallResponse
	for {
		reply, err := stream.Recv()
		if err != nil {
			if err := expectOK(err, "StreamingOutputCall"); err != nil {
				return err
			}
			break
		}
		responses = append(responses, reply)
	}
	if len(responses) != len(sizes) {
		return failf("%d responses, expected %d", len(responses), len(sizes))
	}
	for i, reply := range responses {
		if err := checkPayload(reply.GetPayload(), sizes[i], fmt.Sprintf("response %d", i)); err != nil {
			return err
		}
	}
	return nil
}

func pingPong(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	requestSizes := []int{27182, 8, 1828, 45904}
	responseSizes := []int{31415, 9, 2653, 58979}
	ctx, cancel := withDeadline()
	defer cancel()
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	// Strict lock-step: the next request goes only after the reply.
	for i := range requestSizes {
		req := &pb.StreamingOutputCallRequest{
			ResponseType:       pb.PayloadType_COMPRESSABLE,
			ResponseParameters: []*pb.ResponseParameters{{Size: int32(responseSizes[i])}},
			Payload:            zeros(requestSizes[i]),
		}
		if err := stream.Send(req); err != nil && err != io.EOF {
			return err
		}
		reply, err := stream.Recv()
		if err == io.EOF {
			return failf("stream ended before response %d", i)
		} else if err != nil {
			return err
		}
		if err := checkPayload(reply.GetPayload(), responseSizes[i], fmt.Sprintf("response %d", i)); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	extra := 0
	for {
		_, err := stream.Recv()
		if err != nil {
			if extra != 0 {
				return failf("%d responses after the fourth", extra)
			}
			return expectOK(err, "FullDuplexCall")
		}
		extra++
	}
}

func emptyStream(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	n := 0
	for {
		_, err := stream.Recv()
		if err != nil {
			if n != 0 {
				return failf("%d responses, expected none", n)
			}
			return expectOK(err, "FullDuplexCall")
		}
		n++
	}
}

func customMetadata(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	md := metadata.Pairs(echoInitialKey, echoInitialValue, echoTrailingKey, echoTrailingVal)

	ctx, cancel := withDeadline()
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, md)
	var header, trailer metadata.MD
	reply, err := tc.UnaryCall(ctx, &pb.SimpleRequest{
		ResponseType: pb.PayloadType_COMPRESSABLE,
		ResponseSize: 314159,
		Payload:      zeros(271828),
	}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return err
	}
	if err := checkPayload(reply.GetPayload(), 314159, "UnaryCall response"); err != nil {
		return err
	}
	if err := checkEchoedMetadata(header, trailer, "UnaryCall"); err != nil {
		return err
	}

	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	req := &pb.StreamingOutputCallRequest{
		ResponseType:       pb.PayloadType_COMPRESSABLE,
		ResponseParameters: []*pb.ResponseParameters{{Size: 314159}},
		Payload:            zeros(271828),
	}
	if err := stream.Send(req); err != nil && err != io.EOF {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	var responses []*pb.StreamingOutputCallResponse
	var final error
	for {
		reply, err := stream.Recv()
		if err != nil {
			final = err
			break
		}
		responses = append(responses, reply)
	}
	if len(responses) != 1 {
		return failf("FullDuplexCall: %d responses, expected 1", len(responses))
	}
	if err := checkPayload(responses[0].GetPayload(), 314159, "FullDuplexCall response"); err != nil {
		return err
	}
	if err := expectOK(final, "FullDuplexCall"); err != nil {
		return err
	}
	header, err = stream.Header()
	if err != nil {
		return err
	}
	return checkEchoedMetadata(header, stream.Trailer(), "FullDuplexCall")
}

func checkEchoedStatus(tc pb.TestServiceClient, message string, duplex bool) error {
	echo := &pb.EchoStatus{Code: 2, Message: message}

	ctx, cancel := withDeadline()
	defer cancel()
	_, err := tc.UnaryCall(ctx, &pb.SimpleRequest{ResponseStatus: echo})
	st, err := expectCode(err, codes.Unknown, "UnaryCall")
	if err != nil {
		return err
	}
	if st.Message() != message {
		return failf("UnaryCall: status message %q, expected %q", st.Message(), message)
	}
	if !duplex {
		return nil
	}

	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&pb.StreamingOutputCallRequest{ResponseStatus: echo}); err != nil && err != io.EOF {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for err == nil {
		_, err = stream.Recv()
	}
	if err == io.EOF {
		err = nil
	}
	st, err = expectCode(err, codes.Unknown, "FullDuplexCall")
	if err != nil {
		return err
	}
	if st.Message() != message {
		return failf("FullDuplexCall: status message %q, expected %q", st.Message(), message)
	}
	return nil
}

func statusCodeAndMessage(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	return checkEchoedStatus(tc, "test status message", true)
}

func specialStatus(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	// Upstream only exercises UnaryCall for this one.
	return checkEchoedStatus(tc, specialStatusMessage, false)
}

func unimplementedMethod(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	_, err := tc.UnimplementedCall(ctx, &pb.Empty{})
	_, err = expectCode(err, codes.Unimplemented, "TestService/UnimplementedCall")
	return err
}

func unimplementedService(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	_, err := pb.NewUnimplementedServiceClient(cc).UnimplementedCall(ctx, &pb.Empty{})
	_, err = expectCode(err, codes.Unimplemented, "UnimplementedService/UnimplementedCall")
	return err
}

func cancelAfterBegin(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	ctx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	stream, err := tc.StreamingInputCall(ctx)
	if err != nil {
		return err
	}
	cancelCall()
	_, err = stream.CloseAndRecv()
	_, err = expectCode(err, codes.Canceled, "StreamingInputCall")
	return err
}

func cancelAfterFirstResponse(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := withDeadline()
	defer cancel()
	ctx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	req := &pb.StreamingOutputCallRequest{
		ResponseType:       pb.PayloadType_COMPRESSABLE,
		ResponseParameters: []*pb.ResponseParameters{{Size: 31415}},
		Payload:            zeros(27182),
	}
	if err := stream.Send(req); err != nil && err != io.EOF {
		return err
	}
	reply, err := stream.Recv()
	if err == io.EOF {
		return failf("stream ended before the first response")
	} else if err != nil {
		return err
	}
	if err := checkPayload(reply.GetPayload(), 31415, "response"); err != nil {
		return err
	}
	cancelCall()
	_, err = stream.Recv()
	_, err = expectCode(err, codes.Canceled, "FullDuplexCall")
	return err
}

func timeoutOnSleepingServer(tc pb.TestServiceClient, cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		// The deadline may already have passed while the stream was set up.
		_, err = expectCode(err, codes.DeadlineExceeded, "FullDuplexCall with a 1 ms deadline")
		return err
	}
	// No half-close: the server waits for more.
	req := &pb.StreamingOutputCallRequest{
		ResponseType: pb.PayloadType_COMPRESSABLE,
		Payload:      zeros(27182),
	}
	if err := stream.Send(req); err != nil && err != io.EOF {
		_, err = expectCode(err, codes.DeadlineExceeded, "FullDuplexCall with a 1 ms deadline")
		return err
	}
	_, err = stream.Recv()
	if err == io.EOF {
		err = nil
	}
	_, err = expectCode(err, codes.DeadlineExceeded, "FullDuplexCall with a 1 ms deadline")
	return err
}

var cases = []struct {
	name string
	fn   testCase
}{
	{"empty_unary", emptyUnary},
	{"large_unary", largeUnary},
	{"client_streaming", clientStreaming},
	{"server_streaming", serverStreaming},
	{"ping_pong", pingPong},
	{"empty_stream", emptyStream},
	{"custom_metadata", customMetadata},
	{"status_code_and_message", statusCodeAndMessage},
	{"special_status_message", specialStatus},
	{"unimplemented_method", unimplementedMethod},
	{"unimplemented_service", unimplementedService},
	{"cancel_after_begin", cancelAfterBegin},
	{"cancel_after_first_response", cancelAfterFirstResponse},
	{"timeout_on_sleeping_server", timeoutOnSleepingServer},
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "client: %s\n", msg)
	fmt.Fprintln(os.Stderr, "usage: client --server_host=H --server_port=N --test_case=NAME|all")
	os.Exit(2)
}

// runCase runs one case, turning a panic into a failure so that the others
// still run.
func runCase(fn testCase, tc pb.TestServiceClient, cc *grpc.ClientConn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(tc, cc)
}

func main() {
	flag.CommandLine.SetOutput(os.Stderr)
	host := flag.String("server_host", "127.0.0.1", "server host")
	port := flag.Int("server_port", 0, "server port")
	testCase := flag.String("test_case", "all", "one case name, or all")
	useTLS := flag.String("use_tls", "false", "only 'false' is supported")
	flag.Parse()
	if flag.NArg() != 0 {
		usage("unexpected argument " + flag.Arg(0))
	}
	if *port <= 0 || *port > 65535 {
		usage("--server_port is required")
	}
	switch strings.ToLower(*useTLS) {
	case "false", "0", "no":
	default:
		usage("TLS is not supported by this test client")
	}
	selected := cases
	if *testCase != "all" {
		selected = nil
		for _, c := range cases {
			if c.name == *testCase {
				selected = append(selected, c)
			}
		}
		if selected == nil {
			usage(fmt.Sprintf("unknown test case %q", *testCase))
		}
	}

	target := fmt.Sprintf("%s:%d", *host, *port)
	// Blocking dial: fail-fast RPCs would otherwise race the first connection.
	dialCtx, dialCancel := context.WithTimeout(context.Background(), deadline)
	cc, dialErr := grpc.DialContext(dialCtx, target, grpc.WithInsecure(), grpc.WithBlock())
	dialCancel()
	if dialErr == nil {
		defer cc.Close()
	}
	tc := pb.TestServiceClient(nil)
	if cc != nil {
		tc = pb.NewTestServiceClient(cc)
	}

	failed := 0
	for _, c := range selected {
		var err error
		if dialErr != nil {
			err = failf("cannot connect to %s: %v", target, dialErr)
		} else {
			err = runCase(c.fn, tc, cc)
		}
		var cf caseFailed
		switch {
		case err == nil:
			fmt.Printf("PASS %s\n", c.name)
		case errors.As(err, &cf):
			fmt.Printf("FAIL %s: %s\n", c.name, cf.msg)
		default:
			if st, ok := status.FromError(err); ok {
				fmt.Printf("FAIL %s: unexpected status %v (%q)\n", c.name, st.Code(), st.Message())
			} else {
				fmt.Printf("FAIL %s: %v\n", c.name, err)
			}
		}
		if err != nil {
			failed++
		}
	}
	if failed != 0 {
		os.Exit(1)
	}
}
