/* libminirpc: the gRPC health checking service, grpc.health.v1.Health
 * (grpc/grpc doc/health-checking.md; List as in gRFC A90).  docs/services.md.
 *
 *   mrpc_health *h;
 *   mrpc_health_new(&h);                        // "" (the server) SERVING
 *   mrpc_health_register(srv, h);               // before mrpc_server_start
 *   mrpc_health_set(h, "pkg.Service", MRPC_HEALTH_SERVING);
 *   ...                                         // any thread, any time
 *   mrpc_server_del(srv);
 *   mrpc_health_del(h);
 *
 * Check answers the status of a service ("" = the whole server) or
 * NOT_FOUND; Watch sends the current status at once and then every change
 * (SERVICE_UNKNOWN for a service never set; the stream stays open); List
 * answers every service set (at most 100, else RESOURCE_EXHAUSTED).  The
 * handlers are event-driven: a Watch holds no worker thread.  A watcher
 * that does not read gets the statuses its flow-control window takes, then
 * only the latest: at most one status waits in the server per watcher.
 *
 * When a server the object is registered with begins mrpc_server_shutdown,
 * every service (and "") turns NOT_SERVING, later mrpc_health_set calls are
 * ignored, and that server's watchers get NOT_SERVING and then the end of
 * their call (UNAVAILABLE), so that a Watch does not hold the grace period.
 *
 * Every function except mrpc_health_del is thread-safe.  The object
 * allocates with libc.  It may be registered with several servers; it must
 * outlive them: delete it after mrpc_server_del.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_HEALTH_H
#define MINIRPC_HEALTH_H

#include <minirpc/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/* grpc.health.v1.HealthCheckResponse.ServingStatus, same values. */
typedef enum mrpc_health_status {
  MRPC_HEALTH_UNKNOWN = 0,
  MRPC_HEALTH_SERVING = 1,
  MRPC_HEALTH_NOT_SERVING = 2,
  /* Only what Watch says of a service that was never set (or was cleared);
   * never set by the application. */
  MRPC_HEALTH_SERVICE_UNKNOWN = 3
} mrpc_health_status;

typedef struct mrpc_health mrpc_health;

/* Creates the status table with "" (the whole server) SERVING.  Returns 0
 * and *out, or MRPC_ERR_INVAL, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_health_new(mrpc_health **out);

/* Frees the table.  Every server it was registered with must be deleted
 * (mrpc_server_del) first.  NULL is a no-op. */
MRPC_EXTERN void mrpc_health_del(mrpc_health *h);

/* Registers grpc.health.v1.Health (Check, List, Watch) on srv, served from
 * h, and hooks srv's shutdown (above).  Before mrpc_server_start.  Returns
 * 0 or MRPC_ERR_INVAL, MRPC_ERR_EXISTS (already registered on srv),
 * MRPC_ERR_STATE (srv started), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_health_register(mrpc_server *srv, mrpc_health *h);

/* Sets the status of service (a name such as "pkg.Service", or "" for the
 * whole server; any string is accepted) to MRPC_HEALTH_UNKNOWN, _SERVING or
 * _NOT_SERVING.  Its watchers get the new status when it changed.  Returns
 * 0 or MRPC_ERR_INVAL (NULL, or another status), MRPC_ERR_SHUTDOWN (the
 * table was shut down: nothing changes), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_health_set(mrpc_health *h, const char *service,
                                mrpc_health_status status);

/* Forgets service: Check answers NOT_FOUND again, its watchers get
 * SERVICE_UNKNOWN.  Returns 0 (also when it was not set) or MRPC_ERR_INVAL,
 * MRPC_ERR_SHUTDOWN. */
MRPC_EXTERN int mrpc_health_clear(mrpc_health *h, const char *service);

/* The status of service, or MRPC_HEALTH_SERVICE_UNKNOWN when it is not set
 * (or h / service is NULL). */
MRPC_EXTERN mrpc_health_status mrpc_health_get(mrpc_health *h,
                                               const char *service);

/* Every service set (and "") turns NOT_SERVING, watchers are told, and
 * later mrpc_health_set / mrpc_health_clear calls return MRPC_ERR_SHUTDOWN:
 * for draining before a shutdown.  Servers do it themselves when their
 * shutdown begins.  Idempotent; NULL is a no-op. */
MRPC_EXTERN void mrpc_health_shutdown(mrpc_health *h);

#ifdef __cplusplus
}
#endif
#endif
