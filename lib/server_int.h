/* Server internals the call layer calls into. */
#ifndef MRPC_LIB_SERVER_INT_H
#define MRPC_LIB_SERVER_INT_H

#include <minirpc/call.h>

/* Request headers are complete: route and start the handler (loop thread). */
void mrpc__server_dispatch(mrpc_call *call);
/* on_done was delivered: drop the handler's reference. */
void mrpc__server_call_done(mrpc_call *call);

#endif
