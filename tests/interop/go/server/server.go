// grpc-go interop server (grpc.testing.TestService) for libminirpc's interop
// tests.
//
// Behaviour follows the "Server" section of grpc/grpc
// doc/interop-test-descriptions.md, like tests/interop/py_server.py, so that
// libminirpc's interop_client is checked against a second independent
// implementation.  UnimplementedCall and the UnimplementedService are
// deliberately left out: grpc-go then answers them with UNIMPLEMENTED, which
// is what the unimplemented_* cases expect.
//
// Listens on 127.0.0.1:PORT, prints "listening on PORT" once it accepts
// connections, and exits 0 on SIGTERM/SIGINT.
//
// Usage: server --port=N [--use_tls=false]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "minirpc.test/grpc_testing"
)

const (
	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

// echoMetadata echoes the two test keys: the initial one as response headers
// (sent now, so that it arrives as initial metadata even when the call then
// fails), the trailing one as trailers.  Must run before any response.
// Without the initial key nothing is sent early, as in grpc-go's own interop
// server, so that a call failing at once gets a Trailers-Only response (unlike
// py_server.py, which always sends headers: the C client sees both forms).
func echoMetadata(ctx context.Context, sendHeader func(metadata.MD) error, setTrailer func(metadata.MD)) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(echoTrailingKey); len(v) > 0 {
		setTrailer(metadata.MD{echoTrailingKey: v})
	}
	if v := md.Get(echoInitialKey); len(v) > 0 {
		return sendHeader(metadata.MD{echoInitialKey: v})
	}
	return nil
}

func echoUnary(ctx context.Context) error {
	return echoMetadata(ctx,
		func(md metadata.MD) error { return grpc.SendHeader(ctx, md) },
		func(md metadata.MD) { grpc.SetTrailer(ctx, md) })
}

func echoStream(stream grpc.ServerStream) error {
	return echoMetadata(stream.Context(), stream.SendHeader, stream.SetTrailer)
}

// echoStatus is the "Echo Status" feature: a non-OK response_status ends the
// call with that code and message.
func echoStatus(st *pb.EchoStatus) error {
	if st == nil || st.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(st.GetCode()), st.GetMessage())
}

func checkResponseType(t pb.PayloadType) error {
	// COMPRESSABLE is the only payload type we (and test.proto) know of.
	if t != pb.PayloadType_COMPRESSABLE {
		return status.Errorf(codes.InvalidArgument, "unsupported response_type %d", t)
	}
	return nil
}

func payload(size int32) (*pb.Payload, error) {
	if size < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "negative response size %d", size)
	}
	return &pb.Payload{Type: pb.PayloadType_COMPRESSABLE, Body: make([]byte, size)}, nil
}

type testServer struct {
	pb.UnimplementedTestServiceServer // UnimplementedCall -> UNIMPLEMENTED
}

func (testServer) EmptyCall(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	if err := echoUnary(ctx); err != nil {
		return nil, err
	}
	return &pb.Empty{}, nil
}

func (testServer) UnaryCall(ctx context.Context, req *pb.SimpleRequest) (*pb.SimpleResponse, error) {
	if err := echoUnary(ctx); err != nil {
		return nil, err
	}
	if err := checkResponseType(req.GetResponseType()); err != nil {
		return nil, err
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	p, err := payload(req.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &pb.SimpleResponse{Payload: p}, nil
}

// streamResponses sends one response per ResponseParameters, honouring
// interval_us.
func streamResponses(ctx context.Context, params []*pb.ResponseParameters,
	send func(*pb.StreamingOutputCallResponse) error) error {
	for _, p := range params {
		if us := p.GetIntervalUs(); us > 0 {
			select {
			case <-time.After(time.Duration(us) * time.Microsecond):
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		body, err := payload(p.GetSize())
		if err != nil {
			return err
		}
		if err := send(&pb.StreamingOutputCallResponse{Payload: body}); err != nil {
			return err
		}
	}
	return nil
}

func (testServer) StreamingOutputCall(req *pb.StreamingOutputCallRequest, stream pb.TestService_StreamingOutputCallServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	if err := checkResponseType(req.GetResponseType()); err != nil {
		return err
	}
	if err := streamResponses(stream.Context(), req.GetResponseParameters(), stream.Send); err != nil {
		return err
	}
	return echoStatus(req.GetResponseStatus())
}

func (testServer) StreamingInputCall(stream pb.TestService_StreamingInputCallServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	var total int32
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
}

// respond answers one FullDuplexCall/HalfDuplexCall request.  A non-OK
// response_status ends the call: later requests are ignored.
func respond(ctx context.Context, req *pb.StreamingOutputCallRequest,
	send func(*pb.StreamingOutputCallResponse) error) error {
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return err
	}
	if err := checkResponseType(req.GetResponseType()); err != nil {
		return err
	}
	return streamResponses(ctx, req.GetResponseParameters(), send)
}

func (testServer) FullDuplexCall(stream pb.TestService_FullDuplexCallServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := respond(stream.Context(), req, stream.Send); err != nil {
			return err
		}
	}
}

func (testServer) HalfDuplexCall(stream pb.TestService_HalfDuplexCallServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	// Nothing is sent until the client half-closes.
	var buffered []*pb.StreamingOutputCallRequest
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buffered = append(buffered, req)
	}
	for _, req := range buffered {
		if err := respond(stream.Context(), req, stream.Send); err != nil {
			return err
		}
	}
	return nil
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "server: %s\n", msg)
	fmt.Fprintln(os.Stderr, "usage: server --port=N [--use_tls=false]")
	os.Exit(2)
}

func main() {
	port := flag.Int("port", -1, "port on 127.0.0.1 (0: let the OS pick)")
	useTLS := flag.String("use_tls", "false", "only 'false' is supported")
	flag.Parse()
	if flag.NArg() != 0 {
		usage("unexpected argument " + flag.Arg(0))
	}
	if *port < 0 || *port > 65535 {
		usage("--port is required")
	}
	switch strings.ToLower(*useTLS) {
	case "false", "0", "no":
	default:
		usage("TLS is not supported by this test server")
	}

	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: could not bind 127.0.0.1:%d: %v\n", *port, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	pb.RegisterTestServiceServer(srv, &testServer{})

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Printf("listening on %d\n", lis.Addr().(*net.TCPAddr).Port)

	select {
	case <-signals:
		// Calls still open (a client that never half-closed) get a second
		// to finish, then are cut.
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			srv.Stop()
		}
	case err := <-served:
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	}
}
