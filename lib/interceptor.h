/* Interceptor chains: registration lists and the per-call hook runs. */
#ifndef MRPC_LIB_INTERCEPTOR_H
#define MRPC_LIB_INTERCEPTOR_H

#include <minirpc/interceptor.h>

typedef struct mrpc__ic_entry {
  const mrpc_interceptor *ic;
  void *ctx;
  const mrpc_interceptor_filter *filter;
} mrpc__ic_entry;

/* What a call keeps of each interceptor that started on it. */
typedef struct mrpc__icall {
  const mrpc__ic_entry *e;
  void *data;
} mrpc__icall;

/* Validates and makes an entry.  Returns 0 or MRPC_ERR_INVAL. */
int mrpc__ic_entry_make(const mrpc_interceptor *ic, void *ctx,
                        const mrpc_interceptor_filter *f, mrpc__ic_entry *out);

/* Runs the start hooks of the entries that select the call's method, in
 * order, until one rejects.  Returns MRPC_STATUS_OK or the rejecting code
 * (*msg then holds a libc copy of its message, or NULL).  On OOM the call
 * is rejected with RESOURCE_EXHAUSTED. */
mrpc_status_code mrpc__ic_start(mrpc_call *call, const mrpc__ic_entry *e,
                                size_t n, char **msg);
/* Receive / send hooks in chain order; the first non-OK return wins and
 * *msg gets a libc copy of its message (or NULL). */
mrpc_status_code mrpc__ic_recv(mrpc_call *call, ProtobufCMessage **m,
                               char **msg);
mrpc_status_code mrpc__ic_send(mrpc_call *call, const ProtobufCMessage **m,
                               char **msg);
/* End hooks, reverse order, once per call; frees the call's chain state. */
void mrpc__ic_end(mrpc_call *call, mrpc_status *st);

#endif
