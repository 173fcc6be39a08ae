/* A program built only from the installed headers, library and minirpc.pc:
 * proves `make install` gives users what they need.  One unary call over
 * loopback, answered by an event-driven handler. */
#include <minirpc/minirpc.h>
#include <stdio.h>
#include <string.h>

#include "ping.pb-c.h"

static const mrpc_method echo = {"/ping.Pinger/Echo", MRPC_UNARY,
                                 &ping__ping__descriptor,
                                 &ping__ping__descriptor};

static void on_message(mrpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  (void)ctx;
  mrpc_call_send(call, msg);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void handle(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {.on_message = on_message};
  mrpc_call_set_ops(call, &ops, NULL);
}

int main(void) {
  mrpc_server *srv;
  int port;
  mrpc_method_handler h = {.event = handle};
  if (mrpc_server_new(NULL, &srv) || mrpc_server_add_method(srv, &echo, &h) ||
      mrpc_server_listen(srv, "127.0.0.1:0", &port) || mrpc_server_start(srv))
    return 1;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel *ch;
  if (mrpc_channel_new(target, NULL, &ch)) return 1;
  Ping__Ping req = PING__PING__INIT;
  req.text = "installed";
  ProtobufCMessage *resp;
  mrpc_status st;
  mrpc_call_opts o;
  mrpc_call_opts_init(&o);
  o.timeout_ms = 10000;
  mrpc_channel_unary(ch, &echo, &req.base, &o, &resp, &st);
  int ok = st.code == MRPC_STATUS_OK && resp &&
           strcmp(((Ping__Ping *)resp)->text, "installed") == 0;
  printf("%s: status %s, %s %s\n", ok ? "ok" : "FAILED",
         mrpc_status_code_name(st.code), mrpc_version(), st.message);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  mrpc_status_free(&st);
  mrpc_channel_del(ch);
  mrpc_server_del(srv);
  return ok ? 0 : 1;
}
