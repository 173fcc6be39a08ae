/* Does mrpc_call_send keep the order of sends made from two threads, and
 * does mrpc_call_finish wait for a send that came before it?
 *
 * The chat room sends to a member's call from whatever I/O thread the
 * message came in on, under the room's mutex, so the sends to one call are
 * ordered (happens-before) even when made by different threads; and it
 * finishes a member's call on that call's own thread (on_half_close).  Two
 * cases, each one call:
 *
 *   send_order order    on the call's own I/O thread (in on_message), the
 *                       handler has a helper thread send "first" and waits
 *                       until that mrpc_call_send returned 0; then it sends
 *                       "second" itself; then the helper finishes the call.
 *                       Expected on the wire: "first second".
 *   send_order finish   the same "first" from the helper, then the handler
 *                       calls mrpc_call_finish(OK) on the I/O thread, which
 *                       is documented to end the call "after every queued
 *                       message".  Expected: "first", then OK.
 *
 * Prints "<case>: got ..." and exits 0 when as expected, 1 when not, 2 on a
 * setup error.  Built by examples/chat/chat.mk as
 * $(BUILD)/tests/examples/chat_send_order and run by tests/examples/chat.sh
 * (cases lib-send-order, lib-send-then-finish).
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <minirpc/minirpc.h>

#include "chat.mrpc.h"
#include "chat.pb-c.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static mrpc_call *job;     /* helper: send "first" to this call */
static bool job_finish;    /* helper: finish it instead */
static bool job_done, quit;
static int job_rc;
static bool finish_mode;   /* the "finish" case */

static int send_text(mrpc_call *call, const char *text) {
  Chat__ChatMessage m = CHAT__CHAT_MESSAGE__INIT;
  m.content = (char *)text;
  m.user = (char *)"server";
  return chat__chat_service__chat__send_response(call, &m);
}

static void *helper(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!job && !quit) pthread_cond_wait(&cv, &mu);
    if (quit) break;
    mrpc_call *call = job;
    bool fin = job_finish;
    job = NULL;
    pthread_mutex_unlock(&mu);
    /* Not the call's thread: both are queued to it. */
    int rc = fin ? mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0)
                 : send_text(call, "first");
    pthread_mutex_lock(&mu);
    job_rc = rc;
    job_done = true;
    pthread_cond_broadcast(&cv);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* Has the helper do one thing to call, on its thread, and waits until the
 * library call returned. */
static int by_helper(mrpc_call *call, bool finish) {
  pthread_mutex_lock(&mu);
  job = call;
  job_finish = finish;
  job_done = false;
  pthread_cond_broadcast(&cv);
  while (!job_done) pthread_cond_wait(&cv, &mu);
  int rc = job_rc;
  pthread_mutex_unlock(&mu);
  return rc;
}

static void on_message(mrpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  (void)msg;
  (void)ctx;
  int rc = by_helper(call, false), rc2;
  /* "first" is accepted (mrpc_call_send returned 0).  Now, on the call's
   * own thread, where calls act at once: */
  if (finish_mode) {
    rc2 = mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  } else {
    rc2 = send_text(call, "second");
    if (rc2 == 0) rc2 = by_helper(call, true);
  }
  if (rc || rc2)
    fprintf(stderr, "send_order: calls returned %s, %s\n", mrpc_strerror(rc),
            mrpc_strerror(rc2));
}

static void on_start(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {.on_message = on_message};
  mrpc_call_set_ops(call, &ops, NULL);
}

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "order") && strcmp(argv[1], "finish"))) {
    fprintf(stderr, "usage: send_order order|finish\n");
    return 2;
  }
  finish_mode = strcmp(argv[1], "finish") == 0;
  static Chat__ChatService_MrpcHandlers h = {.chat = on_start};
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.io_threads = 1;
  mrpc_server *srv = NULL;
  int port = 0, rc;
  pthread_t th;
  if (pthread_create(&th, NULL, helper, NULL) != 0) return 2;
  if ((rc = mrpc_server_new(&so, &srv)) != 0 ||
      (rc = chat__chat_service__mrpc_register(srv, &h)) != 0 ||
      (rc = mrpc_server_listen(srv, "127.0.0.1:0", &port)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fprintf(stderr, "send_order: server: %s\n", mrpc_strerror(rc));
    return 2;
  }
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel *ch = NULL;
  mrpc_stream *s = NULL;
  if ((rc = mrpc_channel_new(target, NULL, &ch)) != 0 ||
      (rc = chat__chat_service__chat__open(ch, NULL, &s)) != 0) {
    fprintf(stderr, "send_order: client: %s\n", mrpc_strerror(rc));
    return 2;
  }
  Chat__ChatMessage hello = CHAT__CHAT_MESSAGE__INIT;
  hello.content = (char *)"go";
  chat__chat_service__chat__stream_send_request(s, &hello);
  mrpc_stream_close_send(s);
  char order[64] = "";
  Chat__ChatMessage *m;
  while (chat__chat_service__chat__stream_recv_response(s, &m) == 1) {
    if (order[0]) strncat(order, " ", sizeof order - strlen(order) - 1);
    strncat(order, m->content, sizeof order - strlen(order) - 1);
    protobuf_c_message_free_unpacked(&m->base, NULL);
  }
  mrpc_status st = {0};
  mrpc_stream_finish(s, &st);
  mrpc_channel_del(ch);
  mrpc_server_del(srv);
  pthread_mutex_lock(&mu);
  quit = true;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(th, NULL);
  const char *want = finish_mode ? "first" : "first second";
  printf("%s: got \"%s\", status %s; expected \"%s\", status OK\n", argv[1],
         order, mrpc_status_code_name(st.code), want);
  int ok = strcmp(order, want) == 0 && st.code == MRPC_STATUS_OK;
  mrpc_status_free(&st);
  return ok ? 0 : 1;
}
