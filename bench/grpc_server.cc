// grpc C++ bench server: bench.Bench on Debian's libgrpc++ with the
// callback API (reactors), the comparison point of the bench.
//
//   grpc_server [--port=N]
//
// Listens on 127.0.0.1 only (port 0 = pick one), prints "listening on PORT"
// and exits 0 on SIGTERM or SIGINT.
// SPDX-License-Identifier: Apache-2.0

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"

namespace {

constexpr int kMaxStreamSize = 16 << 20;

class StreamWriter : public grpc::ServerWriteReactor<bench::Msg> {
 public:
  StreamWriter(int32_t count, int32_t size) : left_(count) {
    msg_.mutable_body()->assign(static_cast<size_t>(size), '\0');
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (left_ == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    left_--;
    StartWrite(&msg_);
  }
  int32_t left_;
  bench::Msg msg_;
};

class Echo : public grpc::ServerBidiReactor<bench::Msg, bench::Msg> {
 public:
  Echo() { StartRead(&msg_); }
  void OnReadDone(bool ok) override {
    if (ok)
      StartWrite(&msg_);
    else
      Finish(grpc::Status::OK);
  }
  void OnWriteDone(bool ok) override {
    if (ok)
      StartRead(&msg_);
    else
      Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
  }
  void OnDone() override { delete this; }

 private:
  bench::Msg msg_;
};

class Service final : public bench::Bench::CallbackService {
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  const bench::Msg* req,
                                  bench::Msg* resp) override {
    *resp = *req;
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  grpc::ServerWriteReactor<bench::Msg>* Stream(
      grpc::CallbackServerContext* ctx, const bench::StreamReq* req) override {
    (void)ctx;
    if (req->count() < 0 || req->size() < 0 || req->size() > kMaxStreamSize) {
      struct Bad : grpc::ServerWriteReactor<bench::Msg> {
        Bad() {
          Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "bad count or size"));
        }
        void OnDone() override { delete this; }
      };
      return new Bad();
    }
    return new StreamWriter(req->count(), req->size());
  }

  grpc::ServerBidiReactor<bench::Msg, bench::Msg>* PingPong(
      grpc::CallbackServerContext* ctx) override {
    (void)ctx;
    return new Echo();
  }
};

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "--port=", 7) == 0) {
      port = std::atoi(argv[i] + 7);
    } else {
      std::fprintf(stderr, "usage: grpc_server [--port=N]\n");
      return 2;
    }
  }
  // Block the signals in every thread grpc starts; main waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Service service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                           grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpc_server: could not listen\n");
    return 1;
  }
  std::printf("listening on %d\n", bound);
  std::fflush(stdout);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  return 0;
}
