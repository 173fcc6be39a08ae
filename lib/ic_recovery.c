/* The recovery interceptor: handler mistakes the library caught (the call's
 * MRPC_FAULT_* bits, see mrpc_call_faults) and responses that can not be
 * serialized become INTERNAL for that call, with a log line. */
#include "ic_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MESSAGE "internal error"

struct mrpc_ic_recovery {
  mrpc_ic_recovery_opts o;
  char *message;
  atomic_uint_fast64_t count;
};

void mrpc_ic_recovery_opts_init(mrpc_ic_recovery_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static void say(mrpc_ic_recovery *r, mrpc_call *call, const char *what,
                const mrpc_status *was) {
  mrpc__ic_buf b = {0};
  const char *peer = mrpc_call_peer(call);
  mrpc__ic_buf_printf(&b, "minirpc recovery %s peer=%s: %s",
                      mrpc_call_method(call)->path, peer[0] ? peer : "-", what);
  if (was) {
    const char *m = was->message ? was->message : "";
    mrpc__ic_buf_printf(&b, " (status was %s \"",
                        mrpc_status_code_name((int)was->code));
    mrpc__ic_buf_escaped(&b, m, strlen(m) > 256 ? 256 : strlen(m));
    mrpc__ic_buf_printf(&b, "\")");
  }
  mrpc__ic_buf_printf(&b, "; the call ends with INTERNAL");
  const char *line = b.oom || !b.p ? "minirpc recovery: a call ends with "
                                     "INTERNAL"
                                   : b.p;
  if (r->o.log)
    r->o.log(line, r->o.user);
  else
    mrpc__ic_stderr_line(line);
  free(b.p);
}

static mrpc_status_code rec_send(mrpc_call *call, void *ctx, void *call_data,
                                 const ProtobufCMessage **msg,
                                 const char **message) {
  (void)call_data;
  mrpc_ic_recovery *r = ctx;
  if (!mrpc_call_is_server(call)) return MRPC_STATUS_OK;
  const ProtobufCMessageDescriptor *want = mrpc_call_method(call)->response;
  const ProtobufCMessage *m = *msg;
  char what[320];
  if (!m || m->descriptor != want) {
    snprintf(what, sizeof what,
             "handler sent a message of the wrong type (%s, want %s)",
             m && m->descriptor && m->descriptor->name ? m->descriptor->name
                                                       : "?",
             want->name ? want->name : "?");
  } else if (!r->o.no_message_check && !protobuf_c_message_check(m)) {
    snprintf(what, sizeof what,
             "handler sent a %s that can not be serialized "
             "(protobuf_c_message_check failed)",
             want->name ? want->name : "message");
  } else {
    return MRPC_STATUS_OK;
  }
  atomic_fetch_add(&r->count, 1);
  say(r, call, what, NULL);
  *message = r->message;
  return MRPC_STATUS_INTERNAL;
}

static void rec_end(mrpc_call *call, void *ctx, void *call_data,
                    mrpc_status *st, int64_t duration_us) {
  (void)call_data;
  (void)duration_us;
  mrpc_ic_recovery *r = ctx;
  if (!mrpc_call_is_server(call)) return;
  unsigned f = mrpc_call_faults(call);
  /* A call cut short (cancelled, deadline, connection lost) sends nothing
   * more: its status stays what it is. */
  if (!f || mrpc_call_is_cancelled(call)) return;
  char what[160];
  snprintf(what, sizeof what, "handler fault:%s%s%s",
           f & MRPC_FAULT_NO_STATUS ? " returned without a status" : "",
           f & MRPC_FAULT_BAD_STATUS ? " invalid status code" : "",
           f & MRPC_FAULT_SERIALIZE ? " sent a message of the wrong type"
                                    : "");
  atomic_fetch_add(&r->count, 1);
  say(r, call, what, st);
  mrpc_status_set(st, MRPC_STATUS_INTERNAL, r->message);
  free(st->details); /* the handler's details describe another status */
  st->details = NULL;
  st->details_len = 0;
}

static const mrpc_interceptor recovery_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.recovery",
    .on_send = rec_send,
    .on_end = rec_end,
};

int mrpc_ic_recovery_new(const mrpc_ic_recovery_opts *opts,
                         mrpc_ic_recovery **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  mrpc_ic_recovery_opts o;
  mrpc_ic_recovery_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  mrpc_ic_recovery *r = calloc(1, sizeof *r);
  if (!r) return MRPC_ERR_NOMEM;
  r->o = o;
  r->message = strdup(o.message ? o.message : DEFAULT_MESSAGE);
  if (!r->message) {
    free(r);
    return MRPC_ERR_NOMEM;
  }
  r->o.message = NULL; /* not kept: copied */
  *out = r;
  return 0;
}

const mrpc_interceptor *
mrpc_ic_recovery_interceptor(const mrpc_ic_recovery *r) {
  return r ? &recovery_table : NULL;
}

uint64_t mrpc_ic_recovery_count(const mrpc_ic_recovery *r) {
  return r ? atomic_load(&((mrpc_ic_recovery *)r)->count) : 0;
}

void mrpc_ic_recovery_del(mrpc_ic_recovery *r) {
  if (!r) return;
  free(r->message);
  free(r);
}
