/* The logging interceptor: one line per call, from on_end.  No per-call
 * state: method, peer, bytes and duration all come with the end hook. */
#include "ic_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_ID_KEY "x-request-id"
#define MAX_MESSAGE 256 /* bytes of the status message put in the line */

struct mrpc_ic_logging {
  mrpc_ic_logging_opts o;
};

void mrpc_ic_logging_opts_init(mrpc_ic_logging_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

/* The call's request id: server, the request's or (generated) the
 * response's; client, the request's. */
static const char *request_id(mrpc_call *call) {
  const uint8_t *v = NULL;
  if (mrpc_call_is_server(call))
    v = mrpc_metadata_get(mrpc_call_metadata(call), REQUEST_ID_KEY, NULL);
  if (!v)
    v = mrpc_metadata_get(mrpc_call_outgoing_metadata(call), REQUEST_ID_KEY,
                          NULL);
  return (const char *)v;
}

static void on_end(mrpc_call *call, void *ctx, void *call_data,
                   mrpc_status *st, int64_t duration_us) {
  (void)call_data;
  mrpc_ic_logging *l = ctx;
  if (l->o.errors_only && st->code == MRPC_STATUS_OK) return;
  mrpc_ic_log_record r;
  memset(&r, 0, sizeof r);
  r.is_server = mrpc_call_is_server(call);
  r.method = mrpc_call_method(call)->path;
  r.peer = mrpc_call_peer(call);
  r.code = st->code;
  r.message = st->message ? st->message : "";
  r.duration_us = duration_us;
  mrpc_call_bytes(call, &r.bytes_in, &r.bytes_out);
  r.request_id = request_id(call);

  char stack[512];
  mrpc__ic_buf b = {0};
  mrpc__ic_buf_printf(&b, "minirpc %s %s peer=%s status=%s duration_ms=%.3f "
                      "in=%llu out=%llu",
                      r.is_server ? "server" : "client", r.method,
                      r.peer[0] ? r.peer : "-",
                      mrpc_status_code_name((int)r.code),
                      (double)duration_us / 1000.0,
                      (unsigned long long)r.bytes_in,
                      (unsigned long long)r.bytes_out);
  if (r.request_id) {
    mrpc__ic_buf_printf(&b, " request_id=\"");
    mrpc__ic_buf_escaped(&b, r.request_id, strlen(r.request_id));
    mrpc__ic_buf_printf(&b, "\"");
  }
  if (r.code != MRPC_STATUS_OK && r.message[0]) {
    size_t n = strlen(r.message);
    mrpc__ic_buf_printf(&b, " message=\"");
    mrpc__ic_buf_escaped(&b, r.message, n > MAX_MESSAGE ? MAX_MESSAGE : n);
    mrpc__ic_buf_printf(&b, n > MAX_MESSAGE ? "...\"" : "\"");
  }
  const char *line = b.p;
  if (b.oom || !line) { /* still say something */
    snprintf(stack, sizeof stack, "minirpc %s %s status=%s",
             r.is_server ? "server" : "client", r.method,
             mrpc_status_code_name((int)r.code));
    line = stack;
  }
  if (l->o.sink)
    l->o.sink(&r, line, l->o.user);
  else
    mrpc__ic_stderr_line(line);
  free(b.p);
}

static const mrpc_interceptor logging_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.logging",
    .on_end = on_end,
};

int mrpc_ic_logging_new(const mrpc_ic_logging_opts *opts,
                        mrpc_ic_logging **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  mrpc_ic_logging_opts o;
  mrpc_ic_logging_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  mrpc_ic_logging *l = calloc(1, sizeof *l);
  if (!l) return MRPC_ERR_NOMEM;
  l->o = o;
  *out = l;
  return 0;
}

const mrpc_interceptor *mrpc_ic_logging_interceptor(const mrpc_ic_logging *l) {
  return l ? &logging_table : NULL;
}

void mrpc_ic_logging_del(mrpc_ic_logging *l) { free(l); }
