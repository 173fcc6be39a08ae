/* The blocking layer: mrpc_stream over an event-driven mrpc_call. */
#ifndef MRPC_LIB_STREAM_H
#define MRPC_LIB_STREAM_H

#include "pool.h"

#include <minirpc/server.h>

/* Server: wraps call (loop thread, at dispatch) and queues handler on the
 * pool.  Returns 0 or MRPC_ERR_NOMEM / MRPC_ERR_SHUTDOWN (the caller then
 * fails the call). */
int mrpc__stream_serve(mrpc_call *call, mrpc_blocking_handler handler,
                       void *user, mrpc__pool *pool);

/* Client: a stream for a call about to start; *ops and *ctx are to be given
 * to mrpc_channel_start_call, then mrpc__stream_attach with the call. */
int mrpc__stream_client_new(const mrpc_allocator *alloc, mrpc_stream **out,
                            const mrpc_call_ops **ops);
void mrpc__stream_attach(mrpc_stream *s, mrpc_call *call);
/* Frees a client stream whose call never started. */
void mrpc__stream_client_abort(mrpc_stream *s);

#endif
