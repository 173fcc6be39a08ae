/* libminirpc: the interceptors the library ships.  Each is optional and
 * independent of the others:
 *
 *   logging     one line per call (method, peer, status, duration, bytes)
 *   auth        server: "authorization: Bearer TOKEN" against a token set or
 *               a callback; bearer: the client side that adds the header
 *   ratelimit   token buckets, per server, per method, per peer or per key
 *   recovery    handler mistakes the library caught become INTERNAL
 *   metrics     per-method counts by status, latency histogram, Prometheus
 *   request_id  x-request-id taken or generated, echoed; server-version
 *
 * Each one is an opaque object made by mrpc_ic_X_new (which copies what it
 * is given and owns its state), the static table mrpc_ic_X_interceptor(obj)
 * to register it with, with the object as the context:
 *
 *   mrpc_ic_logging *log;
 *   mrpc_ic_logging_new(NULL, &log);
 *   mrpc_server_add_interceptor(srv, mrpc_ic_logging_interceptor(log), log,
 *                               NULL);
 *
 * and mrpc_ic_X_del.  mrpc_ic_X_interceptor(obj) returns a static table
 * (NULL when obj is NULL, which registration refuses with MRPC_ERR_INVAL);
 * mrpc_ic_X_del(NULL) is a no-op.  mrpc_ic_X_opts_init fills the options
 * with their defaults (every field 0 but size).  An object may be
 * registered on several servers and channels at once (their counters are
 * then shared); it must outlive them: delete it after mrpc_server_del /
 * mrpc_channel_del.  Every function here
 * except _del is thread-safe; the hooks run on I/O and worker threads at
 * once.  The objects allocate with libc (no allocator hook: they are not
 * tied to one server).  Registration order matters: see
 * docs/interceptors.md for the recommended chain.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_INTERCEPTORS_H
#define MINIRPC_INTERCEPTORS_H

#include <minirpc/interceptor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A sink for lines of text (no trailing newline).  Called from I/O
 * threads, several at once: it must be thread-safe and should be quick. */
typedef void (*mrpc_ic_line_fn)(const char *line, void *user);

/* ---------------------------------------------------------------------
 * logging: one line per call, written when the call ends (on_end), on a
 * server or a channel.  The line looks like
 *
 *   minirpc server /pkg.Svc/Method peer=ipv4:127.0.0.1:5000 status=OK
 *     duration_ms=0.412 in=12 out=15 request_id=... message="..."
 *
 * (one line; request_id when the call carries an x-request-id, message for
 * a status other than OK).  in / out are message bytes with their 5-byte
 * prefixes (mrpc_call_bytes).  A client call that never reached a
 * connection has peer=-.
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_logging mrpc_ic_logging;

/* What the line says, for sinks that want the fields.  Borrowed: valid
 * during the sink call only. */
typedef struct mrpc_ic_log_record {
  int is_server;
  const char *method;     /* "/pkg.Service/Method" */
  const char *peer;       /* "" when unknown */
  mrpc_status_code code;  /* final status, as the end hooks left it when
                             logging's turn came */
  const char *message;    /* status message, never NULL */
  int64_t duration_us;
  uint64_t bytes_in, bytes_out;
  const char *request_id; /* x-request-id of the call, or NULL */
} mrpc_ic_log_record;

typedef void (*mrpc_ic_log_fn)(const mrpc_ic_log_record *rec,
                               const char *line, void *user);

typedef struct mrpc_ic_logging_opts {
  size_t size;        /* sizeof(mrpc_ic_logging_opts) */
  mrpc_ic_log_fn sink; /* NULL = the line plus "\n" on stderr, whole */
  void *user;          /* for sink */
  int errors_only;     /* nonzero: only calls that end with a status
                          other than OK */
} mrpc_ic_logging_opts;

MRPC_EXTERN void mrpc_ic_logging_opts_init(mrpc_ic_logging_opts *o);

/* Creates a logging interceptor.  opts may be NULL (defaults); copied.
 * Returns 0 and *out, or MRPC_ERR_INVAL (out NULL, bad opts size),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_logging_new(const mrpc_ic_logging_opts *opts,
                                    mrpc_ic_logging **out);
/* The table to register (server or channel) with ctx = l; NULL if l is
 * NULL (registration then fails with MRPC_ERR_INVAL). */
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_logging_interceptor(const mrpc_ic_logging *l);
/* Frees l.  NULL is a no-op. */
MRPC_EXTERN void mrpc_ic_logging_del(mrpc_ic_logging *l);

/* ---------------------------------------------------------------------
 * auth (server): every call must carry "authorization: Bearer TOKEN"
 * (scheme case-insensitive) with a token from a static set or one a
 * callback accepts; otherwise the call ends with UNAUTHENTICATED before the
 * handler runs:
 *   "missing authorization metadata (want \"authorization: Bearer
 *    <token>\")", "authorization is not a Bearer token", "invalid token".
 * Exempt methods pass without a token (default: the health service,
 * "/grpc.health.v1.Health/").  Tokens are compared in constant time.  On a
 * channel it does nothing (see bearer for the client side).
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_auth mrpc_ic_auth;

/* Decides on a token the static set did not accept.  Runs on the I/O
 * thread, must not block.  Returns MRPC_STATUS_OK to let the call in, or
 * the code to end it with (typically UNAUTHENTICATED or PERMISSION_DENIED)
 * and optionally *message (static or valid until the next call on this
 * thread; NULL = "invalid token"). */
typedef mrpc_status_code (*mrpc_ic_auth_fn)(mrpc_call *call,
                                            const char *token, void *user,
                                            const char **message);

typedef struct mrpc_ic_auth_opts {
  size_t size;               /* sizeof(mrpc_ic_auth_opts) */
  const char *const *tokens; /* NULL-terminated accepted tokens (copied);
                                NULL = none */
  mrpc_ic_auth_fn verify;    /* NULL = the set alone decides */
  void *user;                /* for verify */
  /* NULL-terminated full method paths or service prefixes ending in '/'
   * (copied) that need no token.  NULL = {"/grpc.health.v1.Health/"}; an
   * empty list ({NULL}) exempts nothing. */
  const char *const *exempt;
} mrpc_ic_auth_opts;

MRPC_EXTERN void mrpc_ic_auth_opts_init(mrpc_ic_auth_opts *o);

/* Creates a server auth interceptor.  Returns 0 and *out, or
 * MRPC_ERR_INVAL (opts or out NULL, bad size, neither tokens nor verify, an
 * empty token or one with a byte outside 0x21-0x7E), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_auth_new(const mrpc_ic_auth_opts *opts,
                                 mrpc_ic_auth **out);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_auth_interceptor(const mrpc_ic_auth *a);
/* Counts of calls let in (exempt ones included) and refused.  Either
 * pointer may be NULL. */
MRPC_EXTERN void mrpc_ic_auth_stats(const mrpc_ic_auth *a, uint64_t *accepted,
                                    uint64_t *rejected);
MRPC_EXTERN void mrpc_ic_auth_del(mrpc_ic_auth *a);

/* bearer (client): adds "authorization: Bearer TOKEN" to every call that
 * does not carry an authorization entry already.  On a server it does
 * nothing. */
typedef struct mrpc_ic_bearer mrpc_ic_bearer;

/* Creates it with token (copied).  Returns 0 and *out, or MRPC_ERR_INVAL
 * (NULL argument, empty token, a byte outside 0x21-0x7E), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_bearer_new(const char *token, mrpc_ic_bearer **out);
/* Replaces the token for calls started from now on.  Errors as
 * mrpc_ic_bearer_new; on error the old token stays. */
MRPC_EXTERN int mrpc_ic_bearer_set_token(mrpc_ic_bearer *b,
                                         const char *token);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_bearer_interceptor(const mrpc_ic_bearer *b);
MRPC_EXTERN void mrpc_ic_bearer_del(mrpc_ic_bearer *b);

/* ---------------------------------------------------------------------
 * ratelimit: token buckets.  Each call that starts takes one token from
 * its bucket; an empty bucket ends the call with RESOURCE_EXHAUSTED "rate
 * limit exceeded" before the handler runs (on a channel: before anything
 * is sent).  Buckets refill at `rate` tokens per second up to `burst`.
 *
 * Keys: one bucket for everything (GLOBAL), per method path (PER_METHOD),
 * per peer host, without the port (PER_PEER: "ipv4:10.0.0.1"), or per
 * what a callback says (PER_KEY, e.g. an API key from the metadata).
 * Keyed buckets live in a fixed table of max_keys entries allocated up
 * front (8-way set-associative): memory never grows; when a set is full
 * the least recently used bucket is dropped (a bucket unused for
 * burst/rate seconds is full anyway, so dropping it loses nothing).
 * Thread-safe (one mutex, held for a few hundred nanoseconds).  On a
 * channel the peer is not known when a call starts: PER_PEER then has a
 * single bucket.
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_ratelimit mrpc_ic_ratelimit;

typedef enum mrpc_ic_ratelimit_scope {
  MRPC_IC_RATELIMIT_GLOBAL = 0,
  MRPC_IC_RATELIMIT_PER_METHOD = 1,
  MRPC_IC_RATELIMIT_PER_PEER = 2,
  MRPC_IC_RATELIMIT_PER_KEY = 3
} mrpc_ic_ratelimit_scope;

/* PER_KEY: writes the call's key (NUL-terminated, at most cap bytes with
 * the NUL; longer keys are cut) into buf and returns 1, or returns 0 to
 * let the call through unlimited.  Runs on the I/O thread (on the client:
 * the thread starting the call); must not block. */
typedef int (*mrpc_ic_ratelimit_key_fn)(mrpc_call *call, char *buf,
                                        size_t cap, void *user);

typedef struct mrpc_ic_ratelimit_opts {
  size_t size;                    /* sizeof(mrpc_ic_ratelimit_opts) */
  mrpc_ic_ratelimit_scope scope;
  double rate;                    /* tokens per second, >= 0 (0: none come
                                     back) */
  double burst;                   /* bucket size, >= 1; 0 = max(1, rate) */
  size_t max_keys;                /* keyed scopes: buckets kept; 0 = 1024 */
  mrpc_ic_ratelimit_key_fn key;   /* PER_KEY: required */
  void *key_user;
  /* Monotonic clock in nanoseconds; NULL = CLOCK_MONOTONIC.  For tests. */
  int64_t (*clock_ns)(void *user);
  void *clock_user;
} mrpc_ic_ratelimit_opts;

MRPC_EXTERN void mrpc_ic_ratelimit_opts_init(mrpc_ic_ratelimit_opts *o);

/* Returns 0 and *out, or MRPC_ERR_INVAL (NULL, bad size or scope, rate < 0
 * or not finite, burst < 1 after the default, PER_KEY without key),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_ratelimit_new(const mrpc_ic_ratelimit_opts *opts,
                                      mrpc_ic_ratelimit **out);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_ratelimit_interceptor(const mrpc_ic_ratelimit *rl);
/* Takes a token from key's bucket (key ignored for GLOBAL; NULL = "") as a
 * call would.  Returns 1 if there was one, 0 if the bucket is empty, or
 * MRPC_ERR_INVAL (rl NULL).  For interceptors of your own. */
MRPC_EXTERN int mrpc_ic_ratelimit_allow(mrpc_ic_ratelimit *rl,
                                        const char *key);
/* Calls let through and refused so far, and buckets in the table now.  Any
 * pointer may be NULL. */
MRPC_EXTERN void mrpc_ic_ratelimit_stats(const mrpc_ic_ratelimit *rl,
                                         uint64_t *allowed,
                                         uint64_t *limited, size_t *keys);
MRPC_EXTERN void mrpc_ic_ratelimit_del(mrpc_ic_ratelimit *rl);

/* ---------------------------------------------------------------------
 * recovery (server): whatever a handler does wrong that the library can
 * tell becomes INTERNAL for that call only, is logged, and the server
 * keeps serving:
 *   - a blocking handler returned without a status (MRPC_FAULT_NO_STATUS:
 *     otherwise UNKNOWN "handler returned without a status");
 *   - a status code outside 0..16 (MRPC_FAULT_BAD_STATUS: otherwise
 *     UNKNOWN);
 *   - a response that can not be serialized: of the wrong type
 *     (MRPC_FAULT_SERIALIZE, otherwise the send fails with
 *     MRPC_ERR_SERIALIZE and the handler goes on), or failing
 *     protobuf_c_message_check (a NULL where a value must be: packing it
 *     would crash the process).  recovery's on_send catches these and ends
 *     the call at once; the send returns MRPC_ERR_CLOSED.
 * C has no exceptions: a handler that crashes takes the process with it.
 * Register it last (innermost): its on_send then checks the message that
 * is really sent, and its on_end runs first, so logging and metrics see
 * INTERNAL.  On a channel it does nothing.
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_recovery mrpc_ic_recovery;

typedef struct mrpc_ic_recovery_opts {
  size_t size;         /* sizeof(mrpc_ic_recovery_opts) */
  mrpc_ic_line_fn log; /* NULL = stderr */
  void *user;          /* for log */
  const char *message; /* status message the client gets (copied); NULL =
                          "internal error" (details stay in the log) */
  int no_message_check; /* nonzero: skip protobuf_c_message_check on sent
                           messages (it walks every message) */
} mrpc_ic_recovery_opts;

MRPC_EXTERN void mrpc_ic_recovery_opts_init(mrpc_ic_recovery_opts *o);
/* Returns 0 and *out, or MRPC_ERR_INVAL (out NULL, bad size),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_recovery_new(const mrpc_ic_recovery_opts *opts,
                                     mrpc_ic_recovery **out);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_recovery_interceptor(const mrpc_ic_recovery *r);
/* Calls turned into INTERNAL so far. */
MRPC_EXTERN uint64_t mrpc_ic_recovery_count(const mrpc_ic_recovery *r);
MRPC_EXTERN void mrpc_ic_recovery_del(mrpc_ic_recovery *r);

/* ---------------------------------------------------------------------
 * metrics: per method and side, calls started, calls ended by status
 * code, messages received and sent, and a latency histogram (seconds from
 * the start of the call to on_end).  Read through mrpc_ic_metrics_get /
 * _at, or as Prometheus text (the names of go-grpc-prometheus:
 * grpc_server_started_total, grpc_server_handled_total,
 * grpc_server_msg_received_total, grpc_server_msg_sent_total,
 * grpc_server_handling_seconds; grpc_client_* likewise).  Methods are
 * counted from the first call; past max_methods distinct ones, the rest
 * are counted together under the method "(other)".
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_metrics mrpc_ic_metrics;

#define MRPC_IC_METRICS_MAX_BOUNDS 32

typedef struct mrpc_ic_metrics_opts {
  size_t size;          /* sizeof(mrpc_ic_metrics_opts) */
  const double *bounds; /* histogram upper bounds in seconds, ascending,
                           finite; NULL = 0.0005 0.001 0.0025 0.005 0.01
                           0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 */
  size_t n_bounds;      /* 1..MRPC_IC_METRICS_MAX_BOUNDS when bounds set */
  size_t max_methods;   /* 0 = 1024 */
} mrpc_ic_metrics_opts;

/* One method on one side, a snapshot. */
typedef struct mrpc_ic_metrics_method {
  const char *method;   /* valid until mrpc_ic_metrics_del */
  int is_server;
  mrpc_method_kind kind;
  uint64_t started;
  uint64_t handled;     /* calls ended, all codes */
  uint64_t codes[MRPC_STATUS_CODE_COUNT]; /* calls ended, by code */
  uint64_t msg_received, msg_sent;
  size_t n_bounds;
  double bounds[MRPC_IC_METRICS_MAX_BOUNDS];
  /* Cumulative, as Prometheus: buckets[i] = calls that took <= bounds[i];
   * buckets[n_bounds] = every ended call (+Inf). */
  uint64_t buckets[MRPC_IC_METRICS_MAX_BOUNDS + 1];
  double sum_seconds;
} mrpc_ic_metrics_method;

MRPC_EXTERN void mrpc_ic_metrics_opts_init(mrpc_ic_metrics_opts *o);
/* Returns 0 and *out, or MRPC_ERR_INVAL (out NULL, bad size, bounds not
 * ascending / not finite / too many), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_metrics_new(const mrpc_ic_metrics_opts *opts,
                                    mrpc_ic_metrics **out);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_metrics_interceptor(const mrpc_ic_metrics *m);
/* Number of (method, side) rows so far; rows keep their index. */
MRPC_EXTERN size_t mrpc_ic_metrics_count(const mrpc_ic_metrics *m);
/* Row i.  Returns 0, or MRPC_ERR_INVAL (NULL, i out of range). */
MRPC_EXTERN int mrpc_ic_metrics_at(const mrpc_ic_metrics *m, size_t i,
                                   mrpc_ic_metrics_method *out);
/* The row of method on a side.  Returns 0, or MRPC_ERR_INVAL (NULL
 * argument, or no call of it seen yet on that side). */
MRPC_EXTERN int mrpc_ic_metrics_get(const mrpc_ic_metrics *m,
                                    const char *method, int is_server,
                                    mrpc_ic_metrics_method *out);
/* Writes the Prometheus text exposition (format 0.0.4) of every row into
 * buf, like snprintf: at most cap bytes including a NUL (buf may be NULL
 * when cap is 0), and returns the length of the whole text.  A return >=
 * cap means it was cut: retry with more room (counters may have moved
 * meanwhile: leave some slack). */
MRPC_EXTERN size_t mrpc_ic_metrics_prometheus(const mrpc_ic_metrics *m,
                                              char *buf, size_t cap);
/* Same, in a new NUL-terminated buffer the caller frees with free(); NULL
 * on OOM.  *len (may be NULL) gets its length. */
MRPC_EXTERN char *mrpc_ic_metrics_prometheus_alloc(const mrpc_ic_metrics *m,
                                                   size_t *len);
MRPC_EXTERN void mrpc_ic_metrics_del(mrpc_ic_metrics *m);

/* ---------------------------------------------------------------------
 * request_id: server, takes the request id from the request's metadata
 * (x-request-id by default) or, when there is none or it is longer than
 * 128 bytes, generates one (a random UUID), and echoes it in the response
 * headers; with server_version set it also adds a "server-version"
 * response header.  Client: adds a generated id to every call whose
 * metadata has none.
 * ------------------------------------------------------------------- */
typedef struct mrpc_ic_request_id mrpc_ic_request_id;

/* Writes a new id (printable ASCII, NUL-terminated, at most cap bytes with
 * the NUL) into buf.  Any thread; must be thread-safe. */
typedef void (*mrpc_ic_request_id_fn)(char *buf, size_t cap, void *user);

typedef struct mrpc_ic_request_id_opts {
  size_t size;                /* sizeof(mrpc_ic_request_id_opts) */
  const char *header;         /* NULL = "x-request-id"; copied */
  const char *server_version; /* NULL = no server-version header; copied */
  mrpc_ic_request_id_fn generate; /* NULL = random UUID v4 */
  void *user;                 /* for generate */
} mrpc_ic_request_id_opts;

MRPC_EXTERN void mrpc_ic_request_id_opts_init(mrpc_ic_request_id_opts *o);
/* Returns 0 and *out, or MRPC_ERR_INVAL (out NULL, bad size, header not a
 * valid metadata key or a reserved one or ending in "-bin", server_version
 * not printable ASCII), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_ic_request_id_new(const mrpc_ic_request_id_opts *opts,
                                       mrpc_ic_request_id **out);
MRPC_EXTERN const mrpc_interceptor *
mrpc_ic_request_id_interceptor(const mrpc_ic_request_id *r);
MRPC_EXTERN void mrpc_ic_request_id_del(mrpc_ic_request_id *r);

#ifdef __cplusplus
}
#endif
#endif
