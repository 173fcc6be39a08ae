/* Server internals the call layer calls into. */
#ifndef MRPC_LIB_SERVER_INT_H
#define MRPC_LIB_SERVER_INT_H

#include <minirpc/call.h>

/* Request headers are complete: route and start the handler (loop thread). */
void mrpc__server_dispatch(mrpc_call *call);
/* on_done was delivered: drop the handler's reference. */
void mrpc__server_call_done(mrpc_call *call);

/* Health and reflection (lib/health.c, lib/reflection.c). */
typedef struct mrpc_server mrpc_server;
typedef void (*mrpc__server_hook)(void *arg);
/* fn(arg) runs once, on the thread that calls mrpc_server_shutdown (or
 * mrpc_server_del), when shutdown begins: before GOAWAY and the grace
 * period.  Before start only.  Returns 0 or MRPC_ERR_INVAL, MRPC_ERR_STATE,
 * MRPC_ERR_NOMEM. */
int mrpc__server_on_shutdown(mrpc_server *s, mrpc__server_hook fn, void *arg);
/* The registered methods, sorted by path (fixed once started). */
size_t mrpc__server_n_methods(const mrpc_server *s);
const mrpc_method *mrpc__server_method(const mrpc_server *s, size_t i);

#endif
