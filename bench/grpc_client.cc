// grpc C++ bench client: drives bench.Bench through libgrpc++'s synchronous
// API, the comparison point for libminirpc's client (mrpc_client.c).
//
//   grpc_client --target=HOST:PORT --mode=unary|stream|pingpong [--count=N]
//               [--size=BYTES] [--timeout-ms=MS]
//
// Same modes and the same "RESULT ..." line as mrpc_client (unary: one call
// at a time).  A warm-up Unary call first brings the connection up.  Exits
// 1 on a failed call or when --timeout-ms (default 60000) passes.
// SPDX-License-Identifier: Apache-2.0

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"
#include "bench_util.h"

namespace {

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: grpc_client --target=HOST:PORT "
               "--mode=unary|stream|pingpong [--count=N] [--size=BYTES] "
               "[--timeout-ms=MS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, mode;
  long count = 1000, timeout_ms = 60000;
  int size = 16;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (std::strncmp(a, "--target=", 9) == 0)
      target = a + 9;
    else if (std::strncmp(a, "--mode=", 7) == 0)
      mode = a + 7;
    else if (std::strncmp(a, "--count=", 8) == 0)
      count = std::atol(a + 8);
    else if (std::strncmp(a, "--size=", 7) == 0)
      size = std::atoi(a + 7);
    else if (std::strncmp(a, "--timeout-ms=", 13) == 0)
      timeout_ms = std::atol(a + 13);
    else if (std::strncmp(a, "--conc=", 7) == 0)
      ;  // accepted for symmetry with mrpc_client; one call at a time
    else
      Usage();
  }
  if (target.empty() || mode.empty() || count < 1 || count > 100000000 ||
      size < 0 || size > (16 << 20) || timeout_ms < 1)
    Usage();

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args);
  auto stub = bench::Bench::NewStub(channel);
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::milliseconds(timeout_ms);

  {  // warm-up
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    bench::Msg req, resp;
    grpc::Status st = stub->Unary(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "warm-up call failed: %d %s\n", st.error_code(),
                   st.error_message().c_str());
      return 1;
    }
  }

  bench::Msg msg;
  msg.mutable_body()->assign(static_cast<size_t>(size), 'x');
  std::vector<int64_t> lat;
  long msgs = 0, errors = 0;
  double bytes = 0;
  int64_t cpu0 = bench_cpu_ns(), t0 = bench_now_ns();

  if (mode == "unary") {
    lat.reserve(static_cast<size_t>(count));
    for (long i = 0; i < count; i++) {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline);
      bench::Msg resp;
      int64_t s = bench_now_ns();
      grpc::Status st = stub->Unary(&ctx, msg, &resp);
      lat.push_back(bench_now_ns() - s);
      if (!st.ok()) {
        std::fprintf(stderr, "unary: %d %s\n", st.error_code(),
                     st.error_message().c_str());
        errors++;
        break;
      }
      bytes += static_cast<double>(resp.body().size());
      msgs++;
    }
  } else if (mode == "stream") {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    bench::StreamReq req;
    req.set_count(static_cast<int32_t>(count));
    req.set_size(size);
    auto reader = stub->Stream(&ctx, req);
    bench::Msg in;
    while (reader->Read(&in)) {
      bytes += static_cast<double>(in.body().size());
      msgs++;
    }
    grpc::Status st = reader->Finish();
    if (!st.ok() || msgs != count) {
      std::fprintf(stderr, "stream: %d %s (%ld messages)\n", st.error_code(),
                   st.error_message().c_str(), msgs);
      errors++;
    }
  } else if (mode == "pingpong") {
    lat.reserve(static_cast<size_t>(count));
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    auto rw = stub->PingPong(&ctx);
    bench::Msg in;
    for (long i = 0; i < count; i++) {
      int64_t s = bench_now_ns();
      if (!rw->Write(msg) || !rw->Read(&in)) {
        errors++;
        break;
      }
      lat.push_back(bench_now_ns() - s);
      bytes += static_cast<double>(in.body().size());
      msgs++;
    }
    rw->WritesDone();
    grpc::Status st = rw->Finish();
    if (!st.ok()) {
      std::fprintf(stderr, "pingpong: %d %s\n", st.error_code(),
                   st.error_message().c_str());
      errors++;
    }
  } else {
    Usage();
  }
  int64_t wall = bench_now_ns() - t0, cpu = bench_cpu_ns() - cpu0;
  double p50 = bench_pct_us(lat.data(), lat.size(), 50);
  double p99 = bench_pct_us(lat.data(), lat.size(), 99);
  bench_result(mode.c_str(), msgs, errors, bytes, wall, cpu, p50, p99);
  return errors ? 1 : 0;
}
