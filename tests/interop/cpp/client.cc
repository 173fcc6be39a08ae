// grpc++ interop client for libminirpc's interop tests.
//
// Implements the same client cases as tests/interop/py_client.py (those of
// grpc/grpc doc/interop-test-descriptions.md that need no TLS, credentials or
// compression) with Debian's grpc++ (synchronous API), so that libminirpc's
// interop_server is checked against the C-core implementation.  Prints one
// line per case, "PASS name" or "FAIL name: reason", and exits 0 only if every
// requested case passed (1 if one failed, 2 on a usage error).
//
// Built by tests/interop/run.sh from the code that protoc --cpp_out/--grpc_out
// generate from tests/interop/test.proto.
//
// Usage: client --server_host=H --server_port=N --test_case=NAME|all

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "test.grpc.pb.h"

namespace {

using grpc::testing::Empty;
using grpc::testing::EchoStatus;
using grpc::testing::Payload;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using grpc::testing::StreamingInputCallRequest;
using grpc::testing::StreamingInputCallResponse;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;
using grpc::testing::TestService;
using grpc::testing::UnimplementedService;

// Upper bound for any single RPC, so that a misbehaving server fails the case
// instead of hanging the run.
constexpr std::chrono::seconds kDeadline(10);

const char kEchoInitialKey[] = "x-grpc-test-echo-initial";
const char kEchoInitialValue[] = "test_initial_metadata_value";
const char kEchoTrailingKey[] = "x-grpc-test-echo-trailing-bin";
const std::string kEchoTrailingValue("\xab\xab\xab", 3);

const char kSpecialStatusMessage[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP "
    "\U0001f608\t\n";

struct CaseFailed {
  std::string reason;
};

// Quoted, with non-printable bytes escaped, for messages.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

const char* CodeName(grpc::StatusCode code) {
  static const char* const names[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? names[i] : "(unknown code)";
}

std::string Describe(const grpc::Status& status) {
  return std::string(CodeName(status.error_code())) + " (" +
         Quote(status.error_message()) + ")";
}

template <typename... Args>
void Check(bool condition, Args&&... parts) {
  if (condition) return;
  std::ostringstream out;
  (void)std::initializer_list<int>{((out << parts), 0)...};
  throw CaseFailed{out.str()};
}

void Zeros(Payload* payload, size_t n) {
  payload->set_type(grpc::testing::COMPRESSABLE);
  payload->set_body(std::string(n, '\0'));
}

void CheckPayload(const Payload& payload, size_t size,
                  const std::string& what = "response") {
  Check(payload.body().size() == size, what, " payload is ",
        payload.body().size(), " bytes, expected ", size);
  Check(payload.body() == std::string(size, '\0'), what,
        " payload body is not all zeros");
}

void ExpectOk(const grpc::Status& status, const std::string& what) {
  Check(status.ok(), what, ": status ", Describe(status));
}

void ExpectCode(const grpc::Status& status, grpc::StatusCode code,
                const std::string& what) {
  Check(!status.ok() || code == grpc::StatusCode::OK, what,
        ": succeeded, expected ", CodeName(code));
  Check(status.error_code() == code, what, ": got status ", Describe(status),
        ", expected ", CodeName(code));
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + kDeadline);
}

// Each echoed key must come back exactly once, with our value.
void CheckEchoedMetadata(const grpc::ClientContext& ctx,
                         const std::string& what) {
  struct {
    const std::multimap<grpc::string_ref, grpc::string_ref>& md;
    const char* key;
    std::string value;
    const char* where;
  } checks[] = {
      {ctx.GetServerInitialMetadata(), kEchoInitialKey, kEchoInitialValue,
       "initial"},
      {ctx.GetServerTrailingMetadata(), kEchoTrailingKey, kEchoTrailingValue,
       "trailing"},
  };
  for (const auto& c : checks) {
    std::vector<std::string> values;
    auto range = c.md.equal_range(c.key);
    for (auto it = range.first; it != range.second; ++it) {
      values.emplace_back(it->second.data(), it->second.size());
    }
    if (values.size() == 1 && values[0] == c.value) continue;
    std::string got = "[";
    for (size_t i = 0; i < values.size(); i++) {
      got += (i ? ", " : "") + Quote(values[i]);
    }
    got += "]";
    Check(false, what, ": ", c.where, " metadata ", c.key, " is ", got,
          ", expected [", Quote(c.value), "]");
  }
}

StreamingOutputCallRequest DuplexRequest(int request_size, int response_size) {
  StreamingOutputCallRequest req;
  req.set_response_type(grpc::testing::COMPRESSABLE);
  if (response_size >= 0) {
    req.add_response_parameters()->set_size(response_size);
  }
  Zeros(req.mutable_payload(), request_size);
  return req;
}

// --- the cases --------------------------------------------------------------

struct Stubs {
  std::unique_ptr<TestService::Stub> test;
  std::unique_ptr<UnimplementedService::Stub> unimplemented;
};

void EmptyUnary(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  Empty request, response;
  ExpectOk(s.test->EmptyCall(&ctx, request, &response), "EmptyCall");
}

void LargeUnary(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  SimpleRequest request;
  SimpleResponse response;
  request.set_response_type(grpc::testing::COMPRESSABLE);
  request.set_response_size(314159);
  Zeros(request.mutable_payload(), 271828);
  ExpectOk(s.test->UnaryCall(&ctx, request, &response), "UnaryCall");
  CheckPayload(response.payload(), 314159);
}

void ClientStreaming(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  StreamingInputCallResponse response;
  auto stream = s.test->StreamingInputCall(&ctx, &response);
  for (int n : {27182, 8, 1828, 45904}) {
    StreamingInputCallRequest request;
    Zeros(request.mutable_payload(), n);
    if (!stream->Write(request)) break;  // the status tells why
  }
  stream->WritesDone();
  ExpectOk(stream->Finish(), "StreamingInputCall");
  Check(response.aggregated_payload_size() == 74922,
        "aggregated_payload_size ", response.aggregated_payload_size(),
        ", expected 74922");
}

void ServerStreaming(Stubs& s) {
  const std::vector<int> sizes = {31415, 9, 2653, 58979};
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  StreamingOutputCallRequest request;
  request.set_response_type(grpc::testing::COMPRESSABLE);
  for (int n : sizes) request.add_response_parameters()->set_size(n);
  auto stream = s.test->StreamingOutputCall(&ctx, request);
  std::vector<StreamingOutputCallResponse> responses;
  StreamingOutputCallResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  grpc::Status status = stream->Finish();
  Check(responses.size() == sizes.size() || !status.ok(), responses.size(),
        " responses, expected ", sizes.size());
  ExpectOk(status, "StreamingOutputCall");
  for (size_t i = 0; i < sizes.size(); i++) {
    CheckPayload(responses[i].payload(), sizes[i],
                 "response " + std::to_string(i));
  }
}

void PingPong(Stubs& s) {
  const int request_sizes[] = {27182, 8, 1828, 45904};
  const int response_sizes[] = {31415, 9, 2653, 58979};
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = s.test->FullDuplexCall(&ctx);
  // Strict lock-step: the next request goes only after the reply.
  for (int i = 0; i < 4; i++) {
    stream->Write(DuplexRequest(request_sizes[i], response_sizes[i]));
    StreamingOutputCallResponse response;
    if (!stream->Read(&response)) {
      grpc::Status status = stream->Finish();
      Check(false, "stream ended before response ", i, ": status ",
            Describe(status));
    }
    CheckPayload(response.payload(), response_sizes[i],
                 "response " + std::to_string(i));
  }
  stream->WritesDone();
  int extra = 0;
  StreamingOutputCallResponse response;
  while (stream->Read(&response)) extra++;
  grpc::Status status = stream->Finish();
  Check(extra == 0, extra, " responses after the fourth");
  ExpectOk(status, "FullDuplexCall");
}

void EmptyStream(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = s.test->FullDuplexCall(&ctx);
  stream->WritesDone();
  int n = 0;
  StreamingOutputCallResponse response;
  while (stream->Read(&response)) n++;
  grpc::Status status = stream->Finish();
  Check(n == 0, n, " responses, expected none");
  ExpectOk(status, "FullDuplexCall");
}

void AddEchoMetadata(grpc::ClientContext* ctx) {
  ctx->AddMetadata(kEchoInitialKey, kEchoInitialValue);
  ctx->AddMetadata(kEchoTrailingKey, kEchoTrailingValue);
}

void CustomMetadata(Stubs& s) {
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    AddEchoMetadata(&ctx);
    SimpleRequest request;
    SimpleResponse response;
    request.set_response_type(grpc::testing::COMPRESSABLE);
    request.set_response_size(314159);
    Zeros(request.mutable_payload(), 271828);
    ExpectOk(s.test->UnaryCall(&ctx, request, &response), "UnaryCall");
    CheckPayload(response.payload(), 314159, "UnaryCall response");
    CheckEchoedMetadata(ctx, "UnaryCall");
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    AddEchoMetadata(&ctx);
    auto stream = s.test->FullDuplexCall(&ctx);
    stream->Write(DuplexRequest(271828, 314159));
    stream->WritesDone();
    std::vector<StreamingOutputCallResponse> responses;
    StreamingOutputCallResponse response;
    while (stream->Read(&response)) responses.push_back(response);
    grpc::Status status = stream->Finish();
    Check(responses.size() == 1 || !status.ok(), "FullDuplexCall: ",
          responses.size(), " responses, expected 1");
    ExpectOk(status, "FullDuplexCall");
    CheckPayload(responses[0].payload(), 314159, "FullDuplexCall response");
    CheckEchoedMetadata(ctx, "FullDuplexCall");
  }
}

void CheckEchoedStatus(Stubs& s, const std::string& message, bool duplex) {
  EchoStatus echo;
  echo.set_code(2);
  echo.set_message(message);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    SimpleRequest request;
    SimpleResponse response;
    *request.mutable_response_status() = echo;
    grpc::Status status = s.test->UnaryCall(&ctx, request, &response);
    ExpectCode(status, grpc::StatusCode::UNKNOWN, "UnaryCall");
    Check(status.error_message() == message, "UnaryCall: status message ",
          Quote(status.error_message()), ", expected ", Quote(message));
  }
  if (!duplex) return;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto stream = s.test->FullDuplexCall(&ctx);
    StreamingOutputCallRequest request;
    *request.mutable_response_status() = echo;
    stream->Write(request);
    stream->WritesDone();
    StreamingOutputCallResponse response;
    while (stream->Read(&response)) {
    }
    grpc::Status status = stream->Finish();
    ExpectCode(status, grpc::StatusCode::UNKNOWN, "FullDuplexCall");
    Check(status.error_message() == message, "FullDuplexCall: status message ",
          Quote(status.error_message()), ", expected ", Quote(message));
  }
}

void StatusCodeAndMessage(Stubs& s) {
  CheckEchoedStatus(s, "test status message", true);
}

void SpecialStatusMessage(Stubs& s) {
  // Upstream only exercises UnaryCall for this one.
  CheckEchoedStatus(s, kSpecialStatusMessage, false);
}

void UnimplementedMethod(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  Empty request, response;
  ExpectCode(s.test->UnimplementedCall(&ctx, request, &response),
             grpc::StatusCode::UNIMPLEMENTED, "TestService/UnimplementedCall");
}

void UnimplementedServiceCase(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  Empty request, response;
  ExpectCode(s.unimplemented->UnimplementedCall(&ctx, request, &response),
             grpc::StatusCode::UNIMPLEMENTED,
             "UnimplementedService/UnimplementedCall");
}

void CancelAfterBegin(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  StreamingInputCallResponse response;
  auto stream = s.test->StreamingInputCall(&ctx, &response);
  ctx.TryCancel();
  ExpectCode(stream->Finish(), grpc::StatusCode::CANCELLED,
             "StreamingInputCall");
}

void CancelAfterFirstResponse(Stubs& s) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = s.test->FullDuplexCall(&ctx);
  stream->Write(DuplexRequest(27182, 31415));
  StreamingOutputCallResponse response;
  if (!stream->Read(&response)) {
    grpc::Status status = stream->Finish();
    Check(false, "stream ended before the first response: status ",
          Describe(status));
  }
  CheckPayload(response.payload(), 31415);
  ctx.TryCancel();
  while (stream->Read(&response)) {
  }
  ExpectCode(stream->Finish(), grpc::StatusCode::CANCELLED, "FullDuplexCall");
}

void TimeoutOnSleepingServer(Stubs& s) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(1));
  auto stream = s.test->FullDuplexCall(&ctx);
  // No half-close: the server waits for more.
  stream->Write(DuplexRequest(27182, -1));
  StreamingOutputCallResponse response;
  while (stream->Read(&response)) {
  }
  ExpectCode(stream->Finish(), grpc::StatusCode::DEADLINE_EXCEEDED,
             "FullDuplexCall with a 1 ms deadline");
}

const std::vector<std::pair<std::string, void (*)(Stubs&)>> kCases = {
    {"empty_unary", EmptyUnary},
    {"large_unary", LargeUnary},
    {"client_streaming", ClientStreaming},
    {"server_streaming", ServerStreaming},
    {"ping_pong", PingPong},
    {"empty_stream", EmptyStream},
    {"custom_metadata", CustomMetadata},
    {"status_code_and_message", StatusCodeAndMessage},
    {"special_status_message", SpecialStatusMessage},
    {"unimplemented_method", UnimplementedMethod},
    {"unimplemented_service", UnimplementedServiceCase},
    {"cancel_after_begin", CancelAfterBegin},
    {"cancel_after_first_response", CancelAfterFirstResponse},
    {"timeout_on_sleeping_server", TimeoutOnSleepingServer},
};

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "client: %s\n", message.c_str());
  std::fprintf(stderr,
               "usage: client --server_host=H --server_port=N "
               "--test_case=NAME|all\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", test_case = "all", use_tls = "false";
  long port = 0;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (eq == std::string::npos) Usage("bad argument " + arg);
    std::string value = arg.substr(eq + 1);
    if (name == "--server_host") {
      host = value;
    } else if (name == "--server_port") {
      char* end = nullptr;
      port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port <= 0 || port > 65535) {
        Usage("bad --server_port " + value);
      }
    } else if (name == "--test_case") {
      test_case = value;
    } else if (name == "--use_tls") {
      use_tls = value;
    } else {
      Usage("unknown option " + name);
    }
  }
  if (port == 0) Usage("--server_port is required");
  if (use_tls != "false" && use_tls != "0" && use_tls != "no") {
    Usage("TLS is not supported by this test client");
  }
  std::vector<std::pair<std::string, void (*)(Stubs&)>> selected;
  for (const auto& c : kCases) {
    if (test_case == "all" || test_case == c.first) selected.push_back(c);
  }
  if (selected.empty()) Usage("unknown test case " + test_case);

  std::string target = host + ":" + std::to_string(port);
  auto channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  // Fail-fast RPCs would otherwise race the first connection.
  bool connected = channel->WaitForConnected(std::chrono::system_clock::now() +
                                             kDeadline);
  Stubs stubs{TestService::NewStub(channel),
              UnimplementedService::NewStub(channel)};

  int failed = 0;
  for (const auto& c : selected) {
    std::string reason;
    try {
      Check(connected, "cannot connect to ", target);
      c.second(stubs);
    } catch (const CaseFailed& e) {
      reason = e.reason;
    } catch (const std::exception& e) {
      reason = std::string("exception: ") + e.what();
    }
    if (reason.empty()) {
      std::printf("PASS %s\n", c.first.c_str());
    } else {
      std::printf("FAIL %s: %s\n", c.first.c_str(), reason.c_str());
      failed++;
    }
    std::fflush(stdout);
  }
  return failed ? 1 : 0;
}
