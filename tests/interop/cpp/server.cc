// grpc++ interop server (grpc.testing.TestService) for libminirpc's interop
// tests, on the synchronous API.
//
// Behaviour follows the "Server" section of grpc/grpc
// doc/interop-test-descriptions.md, like tests/interop/py_server.py, so that
// libminirpc's interop_client is checked against the C-core implementation.
// UnimplementedCall and the UnimplementedService are deliberately left out:
// grpc++ then answers them with UNIMPLEMENTED, which is what the
// unimplemented_* cases expect.
//
// Listens on 127.0.0.1:PORT, prints "listening on PORT" once it accepts
// connections, and exits 0 on SIGTERM/SIGINT.
//
// Usage: server --port=N [--use_tls=false]

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "test.grpc.pb.h"

namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using grpc::testing::EchoStatus;
using grpc::testing::Empty;
using grpc::testing::Payload;
using grpc::testing::ResponseParameters;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using grpc::testing::StreamingInputCallRequest;
using grpc::testing::StreamingInputCallResponse;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;
using grpc::testing::TestService;

const char kEchoInitialKey[] = "x-grpc-test-echo-initial";
const char kEchoTrailingKey[] = "x-grpc-test-echo-trailing-bin";

// Echo the two test keys: the initial one as initial metadata, the trailing
// one as trailing metadata.  Must run before the first response is sent.
// Initial metadata goes out with the first message, or with the status (as
// its own HEADERS frame when non-empty, else as a Trailers-Only response).
void EchoMetadata(ServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto range = md.equal_range(kEchoInitialKey);
  for (auto it = range.first; it != range.second; ++it) {
    ctx->AddInitialMetadata(kEchoInitialKey,
                            std::string(it->second.data(), it->second.size()));
  }
  range = md.equal_range(kEchoTrailingKey);
  for (auto it = range.first; it != range.second; ++it) {
    ctx->AddTrailingMetadata(
        kEchoTrailingKey, std::string(it->second.data(), it->second.size()));
  }
}

// The "Echo Status" feature: a non-OK response_status ends the call with that
// code and message.
bool EchoedStatus(bool present, const EchoStatus& echo, Status* status) {
  if (!present || echo.code() == 0) return false;
  *status = Status(static_cast<StatusCode>(echo.code()), echo.message());
  return true;
}

bool BadResponseType(grpc::testing::PayloadType type, Status* status) {
  // COMPRESSABLE is the only payload type we (and test.proto) know of.
  if (type == grpc::testing::COMPRESSABLE) return false;
  *status = Status(StatusCode::INVALID_ARGUMENT,
                   "unsupported response_type " + std::to_string(type));
  return true;
}

bool FillPayload(int32_t size, Payload* payload, Status* status) {
  if (size < 0) {
    *status = Status(StatusCode::INVALID_ARGUMENT,
                     "negative response size " + std::to_string(size));
    return false;
  }
  payload->set_type(grpc::testing::COMPRESSABLE);
  payload->set_body(std::string(size, '\0'));
  return true;
}

// Sends one response per ResponseParameters, honouring interval_us.  Returns
// false with *status set if the call is to end now.
template <typename Writer>
bool StreamResponses(ServerContext* ctx,
                     const google::protobuf::RepeatedPtrField<ResponseParameters>& params,
                     Writer* writer, Status* status) {
  for (const auto& p : params) {
    if (p.interval_us() > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(p.interval_us()));
    }
    if (ctx->IsCancelled()) {
      *status = Status(StatusCode::CANCELLED, "call cancelled");
      return false;
    }
    StreamingOutputCallResponse response;
    if (!FillPayload(p.size(), response.mutable_payload(), status)) {
      return false;
    }
    if (!writer->Write(response)) {
      *status = Status(StatusCode::CANCELLED, "client went away");
      return false;
    }
  }
  return true;
}

// One FullDuplexCall/HalfDuplexCall request.  A non-OK response_status ends
// the call: later requests are ignored.
template <typename Writer>
bool Respond(ServerContext* ctx, const StreamingOutputCallRequest& request,
             Writer* writer, Status* status) {
  if (EchoedStatus(request.has_response_status(), request.response_status(),
                   status) ||
      BadResponseType(request.response_type(), status)) {
    return false;
  }
  return StreamResponses(ctx, request.response_parameters(), writer, status);
}

class TestServiceImpl final : public TestService::Service {
 public:
  Status EmptyCall(ServerContext* ctx, const Empty*, Empty*) override {
    EchoMetadata(ctx);
    return Status::OK;
  }

  Status UnaryCall(ServerContext* ctx, const SimpleRequest* request,
                   SimpleResponse* response) override {
    EchoMetadata(ctx);
    Status status;
    if (BadResponseType(request->response_type(), &status) ||
        EchoedStatus(request->has_response_status(),
                     request->response_status(), &status)) {
      return status;
    }
    FillPayload(request->response_size(), response->mutable_payload(),
                &status);
    return status;
  }

  Status StreamingOutputCall(
      ServerContext* ctx, const StreamingOutputCallRequest* request,
      grpc::ServerWriter<StreamingOutputCallResponse>* writer) override {
    EchoMetadata(ctx);
    Status status;
    if (BadResponseType(request->response_type(), &status) ||
        !StreamResponses(ctx, request->response_parameters(), writer,
                         &status)) {
      return status;
    }
    EchoedStatus(request->has_response_status(), request->response_status(),
                 &status);
    return status;
  }

  Status StreamingInputCall(
      ServerContext* ctx,
      grpc::ServerReader<StreamingInputCallRequest>* reader,
      StreamingInputCallResponse* response) override {
    EchoMetadata(ctx);
    StreamingInputCallRequest request;
    int32_t total = 0;
    while (reader->Read(&request)) {
      total += static_cast<int32_t>(request.payload().body().size());
    }
    if (ctx->IsCancelled()) {
      return Status(StatusCode::CANCELLED, "call cancelled");
    }
    response->set_aggregated_payload_size(total);
    return Status::OK;
  }

  Status FullDuplexCall(
      ServerContext* ctx,
      grpc::ServerReaderWriter<StreamingOutputCallResponse,
                               StreamingOutputCallRequest>* stream) override {
    EchoMetadata(ctx);
    StreamingOutputCallRequest request;
    Status status;
    while (stream->Read(&request)) {
      if (!Respond(ctx, request, stream, &status)) return status;
    }
    if (ctx->IsCancelled()) {
      return Status(StatusCode::CANCELLED, "call cancelled");
    }
    return Status::OK;
  }

  Status HalfDuplexCall(
      ServerContext* ctx,
      grpc::ServerReaderWriter<StreamingOutputCallResponse,
                               StreamingOutputCallRequest>* stream) override {
    EchoMetadata(ctx);
    // Nothing is sent until the client half-closes.
    std::vector<StreamingOutputCallRequest> buffered;
    StreamingOutputCallRequest request;
    while (stream->Read(&request)) buffered.push_back(request);
    if (ctx->IsCancelled()) {
      return Status(StatusCode::CANCELLED, "call cancelled");
    }
    Status status;
    for (const auto& r : buffered) {
      if (!Respond(ctx, r, stream, &status)) return status;
    }
    return Status::OK;
  }
};

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "server: %s\n", message.c_str());
  std::fprintf(stderr, "usage: server --port=N [--use_tls=false]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  long port = -1;
  std::string use_tls = "false";
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (eq == std::string::npos) Usage("bad argument " + arg);
    std::string name = arg.substr(0, eq), value = arg.substr(eq + 1);
    if (name == "--port") {
      char* end = nullptr;
      port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port < 0 || port > 65535) {
        Usage("bad --port " + value);
      }
    } else if (name == "--use_tls") {
      use_tls = value;
    } else {
      Usage("unknown option " + name);
    }
  }
  if (port < 0) Usage("--port is required");
  if (use_tls != "false" && use_tls != "0" && use_tls != "no") {
    Usage("TLS is not supported by this test server");
  }

  // SIGTERM/SIGINT are taken by sigwait() below; block them before grpc
  // starts its threads, which inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  TestServiceImpl service;
  int selected_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                           grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || selected_port == 0) {
    std::fprintf(stderr, "server: could not bind 127.0.0.1:%ld\n", port);
    return 1;
  }
  std::printf("listening on %d\n", selected_port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  // Calls still open (a client that never half-closed) get a second to
  // finish, then are cancelled.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
