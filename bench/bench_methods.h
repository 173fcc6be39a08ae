/* The bench service for libminirpc's C programs: hand-written mrpc_method
 * table over the protoc-c descriptors of bench/bench.proto (generated into
 * build/bench/gen/).  Shared by mrpc_server.c and mrpc_client.c.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef BENCH_METHODS_H
#define BENCH_METHODS_H

#include <minirpc/minirpc.h>

#include "bench.pb-c.h"

enum { M_UNARY, M_STREAM, M_PINGPONG, M_COUNT };

static const mrpc_method bench_methods[M_COUNT] = {
    [M_UNARY] = {"/bench.Bench/Unary", MRPC_UNARY, &bench__msg__descriptor,
                 &bench__msg__descriptor},
    [M_STREAM] = {"/bench.Bench/Stream", MRPC_SERVER_STREAMING,
                  &bench__stream_req__descriptor, &bench__msg__descriptor},
    [M_PINGPONG] = {"/bench.Bench/PingPong", MRPC_BIDI_STREAMING,
                    &bench__msg__descriptor, &bench__msg__descriptor},
};

static const mrpc_service bench_service = {"bench.Bench", M_COUNT,
                                           bench_methods};

#endif
