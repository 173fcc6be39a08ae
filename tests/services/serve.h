/* The --serve mode of tests/e2e_health and tests/e2e_reflection: a server
 * for tests/examples/services.sh (grpcio and a generic reflection client
 * against libminirpc).
 *
 *   e2e_health --serve [--port N] [--grace-ms MS]
 *
 * Serves, on 127.0.0.1:N (0: a free port; "listening on PORT" is printed):
 *   grpc.testing.TestService (tests/interop/test.proto): EmptyCall, and
 *     UnaryCall answering a SimpleResponse whose payload is response_size
 *     zero bytes when response_size > 0, else the request's payload, and
 *     whose username is "minirpc-services";
 *   grpc.health.v1.Health: "" and "grpc.testing.TestService" SERVING;
 *     SIGUSR1 toggles the latter between SERVING and NOT_SERVING (a line
 *     "health grpc.testing.TestService SERVING|NOT_SERVING" is printed);
 *   grpc.reflection.v1 / v1alpha with test.proto's descriptor.
 * SIGTERM / SIGINT: graceful shutdown (grace --grace-ms, default 5000),
 * exit 0.  Header-only: included by the two test programs.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef TESTS_SERVICES_SERVE_H
#define TESTS_SERVICES_SERVE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "test.mrpc.h"

#define SERVE_SVC "grpc.testing.TestService"

static int serve_pipe[2] = {-1, -1};

static void serve_on_signal(int sig) {
  int saved = errno;
  char c = sig == SIGUSR1 ? 'u' : 't';
  if (write(serve_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

static void serve_empty(mrpc_call *call, const Grpc__Testing__Empty *req,
                        void *user) {
  (void)req;
  (void)user;
  Grpc__Testing__Empty r = GRPC__TESTING__EMPTY__INIT;
  if (grpc__testing__test_service__empty_call__send_response(call, &r) == 0)
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void serve_unary(mrpc_call *call, const Grpc__Testing__SimpleRequest *req,
                        void *user) {
  (void)user;
  Grpc__Testing__SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
  uint8_t *zeros = NULL;
  if (req->response_size > 0 && req->response_size <= 1 << 20) {
    zeros = calloc(1, (size_t)req->response_size);
    p.body.data = zeros;
    p.body.len = zeros ? (size_t)req->response_size : 0;
  } else if (req->payload) {
    p.body = req->payload->body;
  }
  r.payload = &p;
  r.username = "minirpc-services";
  if (grpc__testing__test_service__unary_call__send_response(call, &r) == 0)
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  free(zeros);
}

static int serve_usage(const char *bad) {
  fprintf(stderr, "bad argument '%s'\nusage: --serve [--port N] "
                  "[--grace-ms MS]\n", bad);
  return 2;
}

static int services_serve(int argc, char **argv) {
  int port = 0, grace = 5000;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc)
      grace = atoi(argv[++i]);
    else
      return serve_usage(argv[i]);
  }
  if (pipe2(serve_pipe, O_CLOEXEC) != 0 ||
      fcntl(serve_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    perror("pipe");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = serve_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  static Grpc__Testing__TestService_MrpcHandlers h;
  h.empty_call = serve_empty;
  h.unary_call = serve_unary;
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  mrpc_server *srv = NULL;
  mrpc_health *health = NULL;
  mrpc_reflection *refl = NULL;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int rc;
  if ((rc = mrpc_server_new(&o, &srv)) != 0 ||
      (rc = mrpc_health_new(&health)) != 0 ||
      (rc = mrpc_reflection_new(&refl)) != 0 ||
      (rc = grpc__testing__test_service__mrpc_register(srv, &h)) != 0 ||
      (rc = mrpc_health_register(srv, health)) != 0 ||
      (rc = mrpc_reflection_add_file(refl, &test__mrpc_file)) != 0 ||
      (rc = mrpc_reflection_register(srv, refl)) != 0 ||
      (rc = mrpc_health_set(health, SERVE_SVC, MRPC_HEALTH_SERVING)) != 0 ||
      (rc = mrpc_server_listen(srv, addr, &port)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fprintf(stderr, "serve: %s\n", mrpc_strerror(rc));
    mrpc_server_del(srv);
    mrpc_health_del(health);
    mrpc_reflection_del(refl);
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  int serving = 1;
  for (;;) {
    char c;
    ssize_t n = read(serve_pipe[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1 || c == 't') break;
    serving = !serving;
    mrpc_health_set(health, SERVE_SVC,
                    serving ? MRPC_HEALTH_SERVING : MRPC_HEALTH_NOT_SERVING);
    printf("health %s %s\n", SERVE_SVC, serving ? "SERVING" : "NOT_SERVING");
    fflush(stdout);
  }
  mrpc_server_shutdown(srv, grace);
  printf("stopped\n");
  fflush(stdout);
  mrpc_server_del(srv);
  mrpc_health_del(health);
  mrpc_reflection_del(refl);
  close(serve_pipe[0]);
  close(serve_pipe[1]);
  return 0;
}

#endif
