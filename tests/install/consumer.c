/* A program built only from what `make install` puts in place: headers,
 * library, minirpc.pc and protoc-gen-minirpc.  One unary call over loopback
 * through the generated stubs, answered by an event-driven handler. */
#include <minirpc/minirpc.h>
#include <stdio.h>
#include <string.h>

#include "ping.mrpc.h"
#include "ping.pb-c.h"

static void echo(mrpc_call *call, const Ping__Ping *req, void *user) {
  (void)user;
  ping__pinger__echo__send_response(call, req);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static const Ping__Pinger_MrpcHandlers handlers = {.echo = echo};

int main(void) {
  mrpc_server *srv;
  int port;
  if (mrpc_server_new(NULL, &srv) || ping__pinger__mrpc_register(srv, &handlers) ||
      mrpc_server_listen(srv, "127.0.0.1:0", &port) || mrpc_server_start(srv))
    return 1;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel *ch;
  if (mrpc_channel_new(target, NULL, &ch)) return 1;
  Ping__Ping req = PING__PING__INIT;
  req.text = "installed";
  Ping__Ping *resp = NULL;
  mrpc_status st;
  mrpc_call_opts o;
  mrpc_call_opts_init(&o);
  o.timeout_ms = 10000;
  ping__pinger__echo__call(ch, &req, &o, &resp, &st);
  int ok = st.code == MRPC_STATUS_OK && resp && strcmp(resp->text, "installed") == 0;
  printf("%s: status %s, %s\n", ok ? "ok" : "FAILED",
         mrpc_status_code_name(st.code), mrpc_version());
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  mrpc_status_free(&st);
  mrpc_channel_del(ch);
  mrpc_server_del(srv);
  return ok ? 0 : 1;
}
