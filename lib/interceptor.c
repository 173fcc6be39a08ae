/* Interceptor chains.  A call records the interceptors whose start hook
 * ran, so that exactly those get their end hook, in reverse. */
#include "interceptor.h"

#include "alloc.h"
#include "call.h"
#include "loop.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int list_match(const char *const *list, const char *path) {
  for (; *list; list++) {
    size_t n = strlen(*list);
    if (n && (*list)[n - 1] == '/' ? strncmp(path, *list, n) == 0
                                   : strcmp(path, *list) == 0)
      return 1;
  }
  return 0;
}

int mrpc_interceptor_filter_match(const mrpc_interceptor_filter *f,
                                  const mrpc_method *m, void *ctx) {
  if (!f) return 1;
  if (f->include && !list_match(f->include, m->path)) return 0;
  if (f->exclude && list_match(f->exclude, m->path)) return 0;
  return !f->predicate || f->predicate(m, ctx);
}

int mrpc__ic_entry_make(const mrpc_interceptor *ic, void *ctx,
                        const mrpc_interceptor_filter *f,
                        mrpc__ic_entry *out) {
  if (!ic || ic->version != MRPC_INTERCEPTOR_VERSION) return MRPC_ERR_INVAL;
  *out = (mrpc__ic_entry){ic, ctx, f};
  return 0;
}

static char *copy_msg(const char *m) { return m ? strdup(m) : NULL; }

mrpc_status_code mrpc__ic_start(mrpc_call *call, const mrpc__ic_entry *e,
                                size_t n, char **msg) {
  *msg = NULL;
  call->ics = mrpc__calloc(call->alloc, n, sizeof *call->ics);
  if (!call->ics) {
    *msg = copy_msg("out of memory starting interceptors");
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  /* Only calls with interceptors lock (every use is behind ics). */
  pthread_mutex_init(&call->ic_mu, NULL);
  for (size_t i = 0; i < n; i++) {
    if (!mrpc_interceptor_filter_match(e[i].filter, call->method, e[i].ctx))
      continue;
    mrpc__icall *ic = &call->ics[call->n_ics++];
    ic->e = &e[i];
    if (!e[i].ic->on_start) continue;
    const char *m = NULL;
    mrpc_status_code rc = e[i].ic->on_start(call, e[i].ctx, &ic->data, &m);
    if (rc != MRPC_STATUS_OK) {
      *msg = copy_msg(m);
      return rc;
    }
  }
  return MRPC_STATUS_OK;
}

mrpc_status_code mrpc__ic_recv(mrpc_call *call, ProtobufCMessage **pm,
                               char **msg) {
  *msg = NULL;
  for (size_t i = 0; i < call->n_ics; i++) {
    const mrpc__icall *ic = &call->ics[i];
    if (!ic->e->ic->on_recv) continue;
    const char *m = NULL;
    mrpc_status_code rc = ic->e->ic->on_recv(call, ic->e->ctx, ic->data, pm, &m);
    if (rc != MRPC_STATUS_OK) {
      *msg = copy_msg(m);
      return rc;
    }
  }
  return MRPC_STATUS_OK;
}

mrpc_status_code mrpc__ic_send(mrpc_call *call, const ProtobufCMessage **pm,
                               char **msg) {
  *msg = NULL;
  for (size_t i = 0; i < call->n_ics; i++) {
    const mrpc__icall *ic = &call->ics[i];
    if (!ic->e->ic->on_send) continue;
    const char *m = NULL;
    mrpc_status_code rc = ic->e->ic->on_send(call, ic->e->ctx, ic->data, pm, &m);
    if (rc != MRPC_STATUS_OK) {
      *msg = copy_msg(m);
      return rc;
    }
  }
  return MRPC_STATUS_OK;
}

void mrpc__ic_end(mrpc_call *call, mrpc_status *st) {
  /* No interceptor: nothing to order.  ics is set once, before the call
   * is shared (mrpc__ic_start), so it is read without the lock. */
  if (!call->ics) return;
  /* Under ic_mu: a send hook running on another thread finishes first, and
   * none starts after (mrpc_call_send checks ic_ended under the lock). */
  pthread_mutex_lock(&call->ic_mu);
  int run = call->ics && !call->ic_ended;
  if (run) call->ic_ended = 1;
  pthread_mutex_unlock(&call->ic_mu);
  if (!run) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  int64_t us = (now - call->t_start_ns) / 1000;
  for (size_t i = call->n_ics; i-- > 0;) {
    const mrpc__icall *ic = &call->ics[i];
    if (ic->e->ic->on_end)
      ic->e->ic->on_end(call, ic->e->ctx, ic->data, st, us);
  }
}
