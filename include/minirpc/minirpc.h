/* libminirpc: umbrella header.  A gRPC runtime in C over nghttp2 and
 * protobuf-c.  See docs/design.md for layers, threads and ownership.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_MINIRPC_H
#define MINIRPC_MINIRPC_H

#include <minirpc/common.h>
#include <minirpc/status.h>
#include <minirpc/metadata.h>
#include <minirpc/call.h>
#include <minirpc/server.h>
#include <minirpc/channel.h>
#include <minirpc/descriptor.h>
#include <minirpc/interceptor.h>
#include <minirpc/interceptors.h>
#include <minirpc/tls.h>
#include <minirpc/health.h>
#include <minirpc/reflection.h>

#endif
