/* examples/common: what the four example apps (user, llm, file, chat) share,
 * so that each of them holds only its own service.
 *
 *   flags      "--name VALUE" / "--name=VALUE", whole numbers
 *   servers    --listen, TLS (--tls-cert, --tls-key, --tls-client-ca for
 *              mutual TLS), the health service (on unless --no-health) and
 *              server reflection with the app's descriptor (on unless
 *              --no-reflection); SIGINT / SIGTERM waited for with sigwait
 *   clients    --target, TLS (--tls, --tls-ca, --tls-cert, --tls-key),
 *              --authority, --lb and --pool
 *
 * A server:
 *
 *   ex_server ex;
 *   ex_server_init(&ex, "user_server", "0.0.0.0:50051");
 *   for (i...) if (!ex_server_flag(&ex, argc, argv, &i)) ...app's flags...
 *   if ((rc = ex_server_new(&ex, &opts)) != 0) return rc;  // signals blocked
 *   user__user_service__mrpc_register(ex.srv, &handlers);  // and interceptors
 *   if ((rc = ex_server_start(&ex, &user__user_service__mrpc_service,
 *                             &user__mrpc_file)) != 0) ...
 *   printf("listening on %s\n", ex.where);
 *   int sig = ex_wait_signal();
 *   mrpc_server_shutdown(ex.srv, grace_ms);   // health: NOT_SERVING first
 *   ex_server_del(&ex);
 *
 * A client:
 *
 *   ex_client c;
 *   ex_client_init(&c, "user_client", "localhost:50051");
 *   for (i...) if (!ex_client_flag(&c, argc, argv, &i)) ...app's flags...
 *   if ((rc = ex_channel_new(&c, NULL, &ch)) != 0) return rc;
 *
 * Every function reports its errors itself, on stderr, prefixed with the
 * program's name; those that return a status return what main should exit
 * with (1: could not do it, 2: bad usage).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef EXAMPLES_COMMON_EXAMPLE_H
#define EXAMPLES_COMMON_EXAMPLE_H

#include <stdbool.h>
#include <stdio.h>

#include <minirpc/minirpc.h>

/* ---- flags -------------------------------------------------------------- */

/* argv[*i] is "--name VALUE" (then *i is advanced past VALUE) or
 * "--name=VALUE": returns VALUE.  NULL when argv[*i] is another argument.
 * "--name" as the last argument: says so and exits with status 2. */
const char *ex_flag_value(int argc, char **argv, int *i, const char *name);

/* s is a whole number in [min, max] (decimal, nothing after it). */
bool ex_parse_long(const char *s, long min, long max, long *out);

/* ---- servers ------------------------------------------------------------ */

typedef struct ex_server {
  /* Set by ex_server_init, changed by the flags. */
  const char *prog;
  const char *listen;        /* --listen HOST:PORT | [V6]:PORT | unix:PATH */
  const char *tls_cert;      /* --tls-cert FILE: certificate chain (PEM) */
  const char *tls_key;       /* --tls-key FILE: its private key */
  const char *tls_client_ca; /* --tls-client-ca FILE: mutual TLS */
  bool health;               /* --no-health clears it */
  bool reflection;           /* --no-reflection clears it */
  FILE *log;                 /* where ex_server_start says what it serves:
                                stdout unless the app sets it */
  /* Set by ex_server_new / ex_server_start. */
  mrpc_server *srv;
  mrpc_health *health_table;  /* NULL with --no-health */
  mrpc_reflection *reflector; /* NULL with --no-reflection */
  int port;        /* the port bound (port 0 in --listen: the one picked) */
  char where[300]; /* --listen with the real port: "127.0.0.1:50051" */
} ex_server;

/* The usage lines of the flags ex_server_flag takes (after the app's). */
extern const char ex_server_usage[];

void ex_server_init(ex_server *ex, const char *prog,
                    const char *default_listen);

/* Takes argv[*i] (and its value) when it is one of the flags above:
 * returns true.  False: not ours. */
bool ex_server_flag(ex_server *ex, int argc, char **argv, int *i);

/* Blocks SIGINT and SIGTERM in the calling thread (every thread the
 * server makes inherits that: only ex_wait_signal sees them) and ignores
 * SIGPIPE; loads the TLS credentials; creates ex->srv with opts (NULL: the
 * defaults; its tls is set here) and registers health and reflection on
 * it.  The app then registers its service and interceptors on ex->srv.
 * Returns 0, or 2 (bad TLS flags), 1 (anything else).  On failure nothing
 * is left to free. */
int ex_server_new(ex_server *ex, mrpc_server_opts *opts);

/* Makes file (the app's descriptor, from NAME.mrpc.h) known to reflection,
 * listens on ex->listen, starts the server, and sets svc's health status
 * to SERVING; fills ex->port and ex->where and writes one line to ex->log:
 * "PROG: serving SERVICE over TLS|plaintext ...; health ...; reflection
 * ...".  Returns 0 or 1 (reported). */
int ex_server_start(ex_server *ex, const mrpc_service *svc,
                    const mrpc_file_descriptor *file);

/* Waits for SIGINT or SIGTERM (blocked by ex_server_new); returns it. */
int ex_wait_signal(void);

/* "SIGINT" / "SIGTERM" / "signal N". */
const char *ex_signal_name(int sig);

/* Deletes the server (mrpc_server_del: a shutdown with no grace if none
 * was made), then health and reflection.  Safe after a failed
 * ex_server_new or ex_server_start. */
void ex_server_del(ex_server *ex);

/* ---- clients ------------------------------------------------------------ */

typedef struct ex_client {
  const char *prog;
  const char *target;    /* --target HOST:PORT */
  bool tls;              /* --tls, or implied by the next three */
  const char *tls_ca;    /* --tls-ca FILE: trust roots (else the system's) */
  const char *tls_cert;  /* --tls-cert FILE: client certificate (mutual) */
  const char *tls_key;   /* --tls-key FILE: its private key */
  const char *authority; /* --authority NAME: the name the server's
                            certificate must carry, sent as SNI and
                            :authority (plaintext: :authority only) */
  const char *lb;        /* --lb pick_first|round_robin */
  const char *pool;      /* --pool N: connections (mrpc_channel_opts) */
} ex_client;

/* The usage lines of the flags ex_client_flag takes. */
extern const char ex_client_usage[];

void ex_client_init(ex_client *c, const char *prog,
                    const char *default_target);

/* Takes argv[*i] (and its value) when it is one of the flags above. */
bool ex_client_flag(ex_client *c, int argc, char **argv, int *i);

/* A channel to c->target with c's TLS and authority, and opts' other
 * fields (NULL: the defaults).  Returns 0 and *out, or 2 (bad flags or
 * target), 1 (credentials that do not load, anything else). */
int ex_channel_new(const ex_client *c, mrpc_channel_opts *opts,
                   mrpc_channel **out);

#endif
