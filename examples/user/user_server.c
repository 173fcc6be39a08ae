/* user_server: the tutorial's UserService (user.proto) on libminirpc.
 *
 *   user_server [--listen HOST:PORT] [--db FILE] [--suspend ID[,ID...]]
 *               [--auth-token TOKEN] [--rate-limit N] [--grace-ms N]
 *               [--io-threads N] [--quiet]
 *               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 *               [--no-health] [--no-reflection]
 *
 * Behaviour is the tutorial's Go server with its "advanced error handling"
 * (see README.md for the details and every error case):
 *   CreateUser, GetUser, ListUsers    event-driven handlers (I/O thread)
 *   StreamUsers, CreateBatchUsers,
 *   ChatWithUsers                     blocking handlers (worker threads)
 * all registered through the generated handler table
 * (User__UserService_MrpcHandlers, user__user_service__mrpc_register).
 *
 * The tutorial's interceptors are the library's (<minirpc/interceptors.h>),
 * chained in the tutorial's order, outermost first:
 *   logging      one line per call on stderr (off with --quiet)
 *   request_id   x-request-id echoed or generated, server-version: 1.0.0
 *   auth         with --auth-token: "authorization: Bearer TOKEN" or
 *                UNAUTHENTICATED (the health service is exempt)
 *   ratelimit    with --rate-limit N: N calls a second, server-wide, or
 *                RESOURCE_EXHAUSTED
 *   recovery     handler mistakes the library catches become INTERNAL
 * The stream handlers add a line of their own (users sent or created, and
 * how long the handler ran), also off with --quiet.
 *
 * What every example server has (examples/common/example.h): TLS with
 * --tls-cert / --tls-key, mutual TLS with --tls-client-ca; the health
 * service ("" and user.UserService SERVING; exempt from auth) and server
 * reflection with user.proto's descriptor, unless --no-health /
 * --no-reflection.
 *
 * SIGINT / SIGTERM shut the server down gracefully: calls in flight get
 * --grace-ms (default 2000) to finish, then are cancelled; the exit status
 * is then 0.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "user.mrpc.h"
#include "user.pb-c.h"
#include "user_store.h"

#define DEFAULT_LISTEN "0.0.0.0:50051"
#define DEFAULT_PAGE_LIMIT 10 /* ListUsers with limit 0 */
#define MAX_PAGE_LIMIT 1000   /* larger limits are INVALID_ARGUMENT */
#define CANCEL_POLL_MS 50     /* StreamUsers checks for cancellation this often */
#define SERVER_VERSION "1.0.0" /* the tutorial's server-version header */
#define MAX_TOKENS 16          /* --auth-token may be given this many times */

/* What every handler gets as its user pointer. */
typedef struct app {
  user_store *store;
  bool quiet;
} app;

/* ---- helpers ------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A line on stderr.  Through stdio with the stream locked, as the library's
 * interceptors write theirs, so lines from concurrent calls never mix. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  flockfile(stderr);
  fputs(line, stderr);
  fputc('\n', stderr);
  funlockfile(stderr);
}

/* The stream handlers' own line, as the handler ends: what it did (users
 * sent or created) and how long it ran.  The logging interceptor's line has
 * the rest (status, message, bytes, the call's duration, request id); it
 * can not know the handler's progress, nor when the handler actually
 * stopped: a cancelled call or a passed deadline ends the call at once, the
 * handler only at its next check.  Written just before the handler sets the
 * status, so it comes before the interceptor's line unless the call was cut
 * short.  The unary handlers need no line of their own: what they decide is
 * in the status. */
__attribute__((format(printf, 6, 7))) static void
log_handler(const app *a, mrpc_call *call, const char *method, double t0,
            mrpc_status_code code, const char *fmt, ...) {
  if (a->quiet) return;
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  say("user_server: %s handler %s -> %s (%s) (%.1f ms)", method,
      mrpc_call_peer(call), mrpc_status_code_name(code), detail,
      (now_s() - t0) * 1e3);
}

/* A store record as a User message.  The message borrows the record's
 * strings: keep r alive while u is used. */
static void user_to_pb(const user_record *r, User__User *u) {
  user__user__init(u);
  u->id = r->id;
  u->name = r->name;
  u->email = r->email;
  u->age = r->age;
  u->n_hobbies = r->n_hobbies;
  u->hobbies = r->hobbies;
  u->status = (User__UserStatus)r->status;
}

/* The status for a store failure; the reason goes to the log. */
static mrpc_status_code store_code(const app *a, int rc, char *msg,
                                   size_t len) {
  switch (rc) {
  case USER_STORE_FULL:
    snprintf(msg, len, "no more user ids");
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  case USER_STORE_NOMEM:
    snprintf(msg, len, "out of memory");
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  case USER_STORE_DB: {
    char why[256];
    user_store_last_error(a->store, why, sizeof why);
    say("user_server: database error: %s", why);
    snprintf(msg, len, "database error");
    return MRPC_STATUS_INTERNAL;
  }
  default:
    snprintf(msg, len, "%s", user_store_strerror(rc));
    return MRPC_STATUS_INTERNAL;
  }
}

/* The status of a send that failed: CLOSED means the call is already over
 * (cancelled, deadline), anything else is our fault. */
static mrpc_status_code send_code(int rc) {
  if (rc == MRPC_ERR_CLOSED) return MRPC_STATUS_CANCELLED;
  if (rc == MRPC_ERR_TOO_LARGE || rc == MRPC_ERR_NOMEM)
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  return MRPC_STATUS_INTERNAL;
}

/* CreateUser's checks (the tutorial's, plus a negative age).  Returns OK or
 * INVALID_ARGUMENT with the reason in why. */
static mrpc_status_code check_create(const User__CreateUserRequest *req,
                                     char *why, size_t len) {
  if (!req->name || !*req->name) {
    snprintf(why, len, "name is required");
    return MRPC_STATUS_INVALID_ARGUMENT;
  }
  if (!req->email || !*req->email) {
    snprintf(why, len, "email is required");
    return MRPC_STATUS_INVALID_ARGUMENT;
  }
  if (req->age < 0) {
    snprintf(why, len, "age must not be negative: %d", (int)req->age);
    return MRPC_STATUS_INVALID_ARGUMENT;
  }
  return MRPC_STATUS_OK;
}

/* Validates and stores one user: the step CreateUser, CreateBatchUsers and
 * ChatWithUsers share.  Returns OK and *out, or the status to end the call
 * with and the reason in why. */
static mrpc_status_code create_one(const app *a,
                                   const User__CreateUserRequest *req,
                                   user_record *out, char *why, size_t len) {
  mrpc_status_code code = check_create(req, why, len);
  if (code != MRPC_STATUS_OK) return code;
  int rc = user_store_create(a->store, req->name, req->email, req->age,
                             req->n_hobbies, req->hobbies, out);
  return rc ? store_code(a, rc, why, len) : MRPC_STATUS_OK;
}

/* ---- unary: event-driven handlers on the I/O thread ---------------------
 * Each answers at once: the typed send, then mrpc_call_finish.  The store is
 * quick (memory, or an SQLite commit without fsync in WAL mode), so the I/O
 * thread is never held for long. */

static void on_create_user(mrpc_call *call, const User__CreateUserRequest *req,
                           void *user) {
  const app *a = user;
  char why[256];
  user_record r;
  mrpc_status_code code = create_one(a, req, &r, why, sizeof why);
  if (code != MRPC_STATUS_OK) {
    mrpc_call_finish(call, code, why, NULL, 0);
    return;
  }
  /* Allocated, not a fixed buffer: cutting a long name could split a UTF-8
   * sequence, and proto3 strings must be valid UTF-8. */
  char *msg = NULL;
  if (asprintf(&msg, "user %s created", r.name) < 0) msg = NULL;
  User__User u;
  user_to_pb(&r, &u);
  User__CreateUserResponse resp = USER__CREATE_USER_RESPONSE__INIT;
  resp.user = &u;
  resp.message = msg ? msg : "user created";
  int rc = user__user_service__create_user__send_response(call, &resp);
  free(msg);
  code = rc ? send_code(rc) : MRPC_STATUS_OK;
  mrpc_call_finish(call, code, rc ? mrpc_strerror(rc) : NULL, NULL, 0);
  user_record_clear(&r);
}

static void on_get_user(mrpc_call *call, const User__GetUserRequest *req,
                        void *user) {
  const app *a = user;
  char why[256];
  mrpc_status_code code;
  user_record r;
  int rc = req->id <= 0 ? USER_STORE_INVAL : user_store_get(a->store, req->id,
                                                            &r);
  if (rc == USER_STORE_INVAL) {
    code = MRPC_STATUS_INVALID_ARGUMENT;
    snprintf(why, sizeof why, "invalid user id: %d", (int)req->id);
  } else if (rc == USER_STORE_NOT_FOUND) {
    code = MRPC_STATUS_NOT_FOUND;
    snprintf(why, sizeof why, "user not found: %d", (int)req->id);
  } else if (rc) {
    code = store_code(a, rc, why, sizeof why);
  } else if (r.status == USER_STATUS_SUSPENDED) {
    code = MRPC_STATUS_PERMISSION_DENIED;
    snprintf(why, sizeof why, "user is suspended: %d", (int)req->id);
    user_record_clear(&r);
  } else {
    User__User u;
    user_to_pb(&r, &u);
    rc = user__user_service__get_user__send_response(call, &u);
    code = rc ? send_code(rc) : MRPC_STATUS_OK;
    mrpc_call_finish(call, code, rc ? mrpc_strerror(rc) : NULL, NULL, 0);
    user_record_clear(&r);
    return;
  }
  mrpc_call_finish(call, code, why, NULL, 0);
}

static void on_list_users(mrpc_call *call, const User__ListUsersRequest *req,
                          void *user) {
  const app *a = user;
  char why[256];
  mrpc_status_code code = MRPC_STATUS_OK;
  int32_t limit = req->limit ? req->limit : DEFAULT_PAGE_LIMIT;
  if (req->page < 0) {
    code = MRPC_STATUS_INVALID_ARGUMENT;
    snprintf(why, sizeof why, "page must not be negative: %d", (int)req->page);
  } else if (limit < 0 || limit > MAX_PAGE_LIMIT) {
    code = MRPC_STATUS_INVALID_ARGUMENT;
    snprintf(why, sizeof why, "limit must be 0..%d: %d", MAX_PAGE_LIMIT,
             (int)req->limit);
  }
  if (code != MRPC_STATUS_OK) {
    mrpc_call_finish(call, code, why, NULL, 0);
    return;
  }
  user_record *recs = NULL;
  size_t n = 0;
  int64_t total = 0;
  int rc = user_store_list(a->store, (int64_t)req->page * limit, limit, &recs,
                           &n, &total);
  if (rc) {
    code = store_code(a, rc, why, sizeof why);
    mrpc_call_finish(call, code, why, NULL, 0);
    return;
  }
  User__User *users = n ? calloc(n, sizeof *users) : NULL;
  User__User **ptrs = n ? calloc(n, sizeof *ptrs) : NULL;
  if (n && (!users || !ptrs)) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
  } else {
    for (size_t i = 0; i < n; i++) {
      user_to_pb(&recs[i], &users[i]);
      ptrs[i] = &users[i];
    }
    User__ListUsersResponse resp = USER__LIST_USERS_RESPONSE__INIT;
    resp.n_users = n;
    resp.users = ptrs;
    resp.total = total > INT32_MAX ? INT32_MAX : (int32_t)total;
    resp.page = req->page;
    rc = user__user_service__list_users__send_response(call, &resp);
    mrpc_call_finish(call, rc ? send_code(rc) : MRPC_STATUS_OK,
                     rc ? mrpc_strerror(rc) : NULL, NULL, 0);
  }
  free(users);
  free(ptrs);
  user_records_free(recs, n);
}

/* ---- streams: blocking handlers on worker threads ----------------------- */

/* Sleeps ms milliseconds in CANCEL_POLL_MS slices; returns false as soon as
 * the call is cancelled (client cancel, deadline, connection lost, or the
 * server's shutdown grace running out). */
static bool wait_unless_cancelled(mrpc_call *call, int64_t ms) {
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += ms / 1000;
  end.tv_nsec += (ms % 1000) * 1000000L;
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  for (;;) {
    if (mrpc_call_is_cancelled(call)) return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = (int64_t)(end.tv_sec - now.tv_sec) * 1000 +
                   (end.tv_nsec - now.tv_nsec) / 1000000L;
    if (left <= 0) return !mrpc_call_is_cancelled(call);
    int64_t step = left < CANCEL_POLL_MS ? left : CANCEL_POLL_MS;
    struct timespec d = {(time_t)(step / 1000), (long)(step % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
  }
}

/* Whether the call's deadline has passed (the reason it was cancelled). */
static bool deadline_passed(const mrpc_call *call) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000L;
  return mrpc_call_deadline_ms(call) <= now_ms;
}

/* StreamUsers: every user that existed when the call began, in id order,
 * delay_seconds apart (no wait before the first or after the last).  Read
 * from the store a page at a time, so memory stays bounded. */
static void stream_users(mrpc_stream *s, const User__StreamUsersRequest *req,
                         void *user) {
  const app *a = user;
  mrpc_call *call = mrpc_stream_call(s);
  double t0 = now_s();
  char why[256];
  if (req->delay_seconds < 0) {
    snprintf(why, sizeof why, "delay_seconds must not be negative: %d",
             (int)req->delay_seconds);
    mrpc_stream_set_status(s, MRPC_STATUS_INVALID_ARGUMENT, why, NULL, 0);
    return;
  }
  enum { CHUNK = 64 };
  int64_t total = -1, sent = 0;
  mrpc_status_code code = MRPC_STATUS_OK;
  why[0] = '\0';
  while (code == MRPC_STATUS_OK && (total < 0 || sent < total)) {
    user_record *recs = NULL;
    size_t n = 0;
    int64_t now_total;
    int rc = user_store_list(a->store, sent, CHUNK, &recs, &n, &now_total);
    if (rc) {
      code = store_code(a, rc, why, sizeof why);
      break;
    }
    if (total < 0) total = now_total; /* the snapshot: users at the start */
    if (n == 0) break;
    for (size_t i = 0; i < n && sent < total; i++) {
      if (sent > 0 && req->delay_seconds > 0 &&
          !wait_unless_cancelled(call, (int64_t)req->delay_seconds * 1000)) {
        code = deadline_passed(call) ? MRPC_STATUS_DEADLINE_EXCEEDED
                                     : MRPC_STATUS_CANCELLED;
        break;
      }
      User__User u;
      user_to_pb(&recs[i], &u);
      rc = user__user_service__stream_users__stream_send_response(s, &u);
      if (rc) {
        code = send_code(rc);
        snprintf(why, sizeof why, "send: %s", mrpc_strerror(rc));
        break;
      }
      sent++;
    }
    user_records_free(recs, n);
  }
  if (code == MRPC_STATUS_CANCELLED) snprintf(why, sizeof why, "cancelled");
  if (code == MRPC_STATUS_DEADLINE_EXCEEDED)
    snprintf(why, sizeof why, "deadline passed");
  log_handler(a, call, "StreamUsers", t0, code, "sent %lld of %lld users",
              (long long)sent, (long long)(total < 0 ? 0 : total));
  mrpc_stream_set_status(s, code, code == MRPC_STATUS_OK ? NULL : why, NULL, 0);
}

/* CreateBatchUsers: creates each user as it arrives; at the end of the
 * client's stream answers "N users created".  A bad item ends the call with
 * INVALID_ARGUMENT (the users before it stay created, as in the tutorial). */
static void create_batch_users(mrpc_stream *s, void *user) {
  const app *a = user;
  mrpc_call *call = mrpc_stream_call(s);
  double t0 = now_s();
  char why[320];
  int count = 0;
  for (;;) {
    User__CreateUserRequest *req = NULL;
    int rc = user__user_service__create_batch_users__stream_recv_request(s,
                                                                         &req);
    if (rc == 0) break;
    if (rc < 0) {
      log_handler(a, call, "CreateBatchUsers", t0, MRPC_STATUS_CANCELLED,
                  "%d created", count);
      mrpc_stream_set_status(s, MRPC_STATUS_CANCELLED, "cancelled", NULL, 0);
      return;
    }
    user_record r;
    char item_why[200];
    mrpc_status_code code = create_one(a, req, &r, item_why, sizeof item_why);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (code != MRPC_STATUS_OK) {
      snprintf(why, sizeof why, "user %d of the batch: %s (%d created before it)",
               count + 1, item_why, count);
      log_handler(a, call, "CreateBatchUsers", t0, code, "%d created", count);
      mrpc_stream_set_status(s, code, why, NULL, 0);
      return;
    }
    user_record_clear(&r);
    count++;
  }
  char msg[64];
  snprintf(msg, sizeof msg, "%d user%s created", count, count == 1 ? "" : "s");
  User__CreateUserResponse resp = USER__CREATE_USER_RESPONSE__INIT;
  resp.message = msg;
  int rc = user__user_service__create_batch_users__stream_send_response(s,
                                                                        &resp);
  mrpc_status_code code = rc ? send_code(rc) : MRPC_STATUS_OK;
  log_handler(a, call, "CreateBatchUsers", t0, code, "%d created", count);
  mrpc_stream_set_status(s, code, rc ? mrpc_strerror(rc) : NULL, NULL, 0);
}

/* ChatWithUsers: each request is answered with the created user before the
 * next one is read.  A bad item ends the call with INVALID_ARGUMENT. */
static void chat_with_users(mrpc_stream *s, void *user) {
  const app *a = user;
  mrpc_call *call = mrpc_stream_call(s);
  double t0 = now_s();
  char why[256] = "";
  int count = 0;
  mrpc_status_code code = MRPC_STATUS_OK;
  for (;;) {
    User__CreateUserRequest *req = NULL;
    int rc = user__user_service__chat_with_users__stream_recv_request(s, &req);
    if (rc == 0) break;
    if (rc < 0) {
      code = MRPC_STATUS_CANCELLED;
      snprintf(why, sizeof why, "cancelled");
      break;
    }
    user_record r;
    char item_why[200];
    code = create_one(a, req, &r, item_why, sizeof item_why);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (code != MRPC_STATUS_OK) {
      snprintf(why, sizeof why, "message %d: %s", count + 1, item_why);
      break;
    }
    User__User u;
    user_to_pb(&r, &u);
    rc = user__user_service__chat_with_users__stream_send_response(s, &u);
    user_record_clear(&r);
    if (rc) {
      code = send_code(rc);
      snprintf(why, sizeof why, "send: %s", mrpc_strerror(rc));
      break;
    }
    count++;
  }
  log_handler(a, call, "ChatWithUsers", t0, code, "%d created", count);
  mrpc_stream_set_status(s, code, code == MRPC_STATUS_OK ? NULL : why, NULL, 0);
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: user_server [--listen HOST:PORT] [--db FILE]\n"
          "                   [--suspend ID[,ID...]] [--auth-token TOKEN]\n"
          "                   [--rate-limit N] [--grace-ms N]\n"
          "                   [--io-threads N] [--quiet]\n"
          "                   [--tls-cert FILE --tls-key FILE\n"
          "                    [--tls-client-ca FILE]]\n"
          "                   [--no-health] [--no-reflection]\n"
          "  (--listen default: %s)\n"
          "%s"
          "  --db FILE           keep users in this SQLite file (default: in\n"
          "                      memory, lost at exit)\n"
          "  --suspend IDS       mark these user ids SUSPENDED (existing users\n"
          "                      now, and users created later with those ids);\n"
          "                      GetUser then answers PERMISSION_DENIED\n"
          "  --auth-token TOKEN  every call must carry \"authorization: Bearer\n"
          "                      TOKEN\" (else UNAUTHENTICATED); may be given\n"
          "                      up to %d times (any of the tokens will do)\n"
          "  --rate-limit N      at most N calls a second, server-wide, with\n"
          "                      bursts of N (else RESOURCE_EXHAUSTED)\n"
          "  --grace-ms N        shutdown grace for calls in flight (2000)\n"
          "  --io-threads N      I/O threads (default: one per core)\n"
          "  --quiet             no per-call log lines\n",
          DEFAULT_LISTEN, ex_server_usage, MAX_TOKENS);
}

/* Applies "--suspend 2,5": returns false on a malformed list. */
static bool apply_suspend(user_store *store, const char *list) {
  char *copy = strdup(list);
  if (!copy) return false;
  bool ok = true;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    long id;
    if (!ex_parse_long(tok, 1, INT32_MAX, &id)) {
      fprintf(stderr, "user_server: --suspend: bad user id \"%s\"\n", tok);
      ok = false;
      break;
    }
    int rc = user_store_suspend(store, (int32_t)id);
    if (rc == USER_STORE_OK) {
      say("user_server: user %ld suspended", id);
    } else if (rc == USER_STORE_NOT_FOUND) {
      say("user_server: user %ld does not exist yet: it will be created "
          "suspended", id);
    } else {
      char why[256];
      user_store_last_error(store, why, sizeof why);
      fprintf(stderr, "user_server: --suspend %ld: %s %s\n", id,
              user_store_strerror(rc), why);
      ok = false;
      break;
    }
  }
  free(copy);
  return ok;
}

/* The interceptors, outermost first: the tutorial's chain (logging, auth,
 * rate limit, recovery) with its request-id / server-version interceptor
 * after logging, before the ones that refuse calls, so that refused calls
 * carry an id too.  Registration order is the chain order.  Each one is
 * optional (NULL when off). */
typedef struct chain {
  mrpc_ic_logging *logging;
  mrpc_ic_request_id *request_id;
  mrpc_ic_auth *auth;
  mrpc_ic_ratelimit *ratelimit;
  mrpc_ic_recovery *recovery;
} chain;

static void chain_free(chain *c) {
  mrpc_ic_logging_del(c->logging);
  mrpc_ic_request_id_del(c->request_id);
  mrpc_ic_auth_del(c->auth);
  mrpc_ic_ratelimit_del(c->ratelimit);
  mrpc_ic_recovery_del(c->recovery);
  memset(c, 0, sizeof *c);
}

/* Makes the objects for the options.  tokens: NULL-terminated, NULL or
 * empty for no auth; rate 0 for no rate limit.  Returns 0, or 2 (bad
 * option, reported) or 1 (out of memory, reported). */
static int chain_new(chain *c, bool quiet, const char *const *tokens,
                     double rate) {
  memset(c, 0, sizeof *c);
  int rc = 0;
  if (!quiet) rc = mrpc_ic_logging_new(NULL, &c->logging);

  mrpc_ic_request_id_opts rio;
  mrpc_ic_request_id_opts_init(&rio);
  rio.server_version = SERVER_VERSION;
  if (!rc) rc = mrpc_ic_request_id_new(&rio, &c->request_id);

  if (!rc && tokens && tokens[0]) {
    mrpc_ic_auth_opts ao;
    mrpc_ic_auth_opts_init(&ao);
    ao.tokens = tokens; /* exempt: NULL, the health service */
    rc = mrpc_ic_auth_new(&ao, &c->auth);
    if (rc == MRPC_ERR_INVAL) {
      fprintf(stderr, "user_server: bad --auth-token: a token is printable "
                      "ASCII without spaces\n");
      chain_free(c);
      return 2;
    }
  }
  if (!rc && rate > 0) {
    mrpc_ic_ratelimit_opts ro;
    mrpc_ic_ratelimit_opts_init(&ro);
    ro.scope = MRPC_IC_RATELIMIT_GLOBAL;
    ro.rate = rate; /* burst: 0 = max(1, rate) */
    rc = mrpc_ic_ratelimit_new(&ro, &c->ratelimit);
  }
  if (!rc) rc = mrpc_ic_recovery_new(NULL, &c->recovery);
  if (rc) {
    fprintf(stderr, "user_server: interceptors: %s\n", mrpc_strerror(rc));
    chain_free(c);
    return 1;
  }
  return 0;
}

/* Registers the chain on srv, in order.  Returns 0 or an MRPC_ERR_*. */
static int chain_register(const chain *c, mrpc_server *srv) {
  const struct {
    const mrpc_interceptor *table;
    void *obj;
  } order[] = {
      {mrpc_ic_logging_interceptor(c->logging), c->logging},
      {mrpc_ic_request_id_interceptor(c->request_id), c->request_id},
      {mrpc_ic_auth_interceptor(c->auth), c->auth},
      {mrpc_ic_ratelimit_interceptor(c->ratelimit), c->ratelimit},
      {mrpc_ic_recovery_interceptor(c->recovery), c->recovery},
  };
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    if (!order[i].obj) continue; /* off */
    int rc = mrpc_server_add_interceptor(srv, order[i].table, order[i].obj,
                                         NULL);
    if (rc) return rc;
  }
  return 0;
}

/* The chain as a line: "logging, request_id (server-version 1.0.0), ...". */
static void chain_describe(const chain *c, int n_tokens, double rate,
                           char *buf, size_t len) {
  size_t n = 0;
#define APPEND(...)                                                  \
  do {                                                               \
    if (n < len) {                                                   \
      int w = snprintf(buf + n, len - n, __VA_ARGS__);               \
      if (w > 0) n += (size_t)w;                                     \
    }                                                                \
  } while (0)
  buf[0] = '\0';
  if (c->logging) APPEND("logging, ");
  APPEND("request_id (server-version %s), ", SERVER_VERSION);
  if (c->auth) APPEND("auth (%d token%s), ", n_tokens, n_tokens == 1 ? "" : "s");
  if (c->ratelimit) APPEND("ratelimit (%g calls/s), ", rate);
  APPEND("recovery");
#undef APPEND
}

/* "--rate-limit N": a positive number of calls a second. */
static bool parse_rate(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || v > 1e9) return false;
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  ex_server ex;
  ex_server_init(&ex, "user_server", DEFAULT_LISTEN);
  ex.log = stderr; /* with the log lines */
  const char *db = NULL;
  const char *suspend[64];
  int n_suspend = 0;
  const char *tokens[MAX_TOKENS + 1] = {NULL};
  int n_tokens = 0;
  double rate = 0;
  long grace_ms = 2000, io_threads = 0;
  bool quiet = false;

  for (int i = 1; i < argc; i++) {
    const char *v;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--quiet")) {
      quiet = true;
    } else if (ex_server_flag(&ex, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--db"))) {
      db = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--suspend"))) {
      if (n_suspend == (int)(sizeof suspend / sizeof suspend[0])) {
        fprintf(stderr, "user_server: too many --suspend options\n");
        return 2;
      }
      suspend[n_suspend++] = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--auth-token"))) {
      if (n_tokens == MAX_TOKENS) {
        fprintf(stderr, "user_server: more than %d --auth-token options\n",
                MAX_TOKENS);
        return 2;
      }
      tokens[n_tokens++] = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--rate-limit"))) {
      if (!parse_rate(v, &rate)) {
        fprintf(stderr, "user_server: bad --rate-limit \"%s\" (calls per "
                        "second, > 0)\n", v);
        return 2;
      }
    } else if ((v = ex_flag_value(argc, argv, &i, "--grace-ms"))) {
      if (!ex_parse_long(v, 0, 3600 * 1000, &grace_ms)) {
        fprintf(stderr, "user_server: bad --grace-ms \"%s\"\n", v);
        return 2;
      }
    } else if ((v = ex_flag_value(argc, argv, &i, "--io-threads"))) {
      if (!ex_parse_long(v, 0, 1024, &io_threads)) {
        fprintf(stderr, "user_server: bad --io-threads \"%s\"\n", v);
        return 2;
      }
    } else {
      fprintf(stderr, "user_server: unknown argument \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  /* The interceptor objects first: a bad token is a usage error. */
  chain ics;
  int rc = chain_new(&ics, quiet, tokens, rate);
  if (rc) return rc;

  app a = {.quiet = quiet};
  char err[300];
  rc = user_store_open(db, &a.store, err, sizeof err);
  if (rc) {
    fprintf(stderr, "user_server: cannot open the store: %s%s%s\n",
            user_store_strerror(rc), *err ? ": " : "", err);
    chain_free(&ics);
    return 1;
  }
  for (int i = 0; i < n_suspend; i++) {
    if (!apply_suspend(a.store, suspend[i])) {
      user_store_close(a.store);
      chain_free(&ics);
      return 2;
    }
  }

  /* The generated handler table: event handlers for the unary methods,
   * blocking ones for the three streams.  Static: it must outlive the
   * server. */
  static User__UserService_MrpcHandlers handlers = {
      .create_user = on_create_user,
      .get_user = on_get_user,
      .list_users = on_list_users,
      .stream_users_blocking = stream_users,
      .create_batch_users_blocking = create_batch_users,
      .chat_with_users_blocking = chat_with_users,
  };
  handlers.user = &a;

  mrpc_server_opts opts;
  mrpc_server_opts_init(&opts);
  opts.io_threads = (int)io_threads;
  int status = 1;
  /* TLS, health and reflection (example.h); SIGINT / SIGTERM blocked for
   * ex_wait_signal. */
  if ((rc = ex_server_new(&ex, &opts)) != 0) {
    status = rc;
    goto out;
  }
  if ((rc = user__user_service__mrpc_register(ex.srv, &handlers)) != 0 ||
      (rc = chain_register(&ics, ex.srv)) != 0) {
    fprintf(stderr, "user_server: server setup: %s\n", mrpc_strerror(rc));
    goto out;
  }
  if (ex_server_start(&ex, &user__user_service__mrpc_service,
                      &user__mrpc_file) != 0)
    goto out;

  char chain_line[256];
  chain_describe(&ics, n_tokens, rate, chain_line, sizeof chain_line);
  say("user_server: interceptors, outermost first: %s", chain_line);

  /* "listening on HOST:PORT" with the real port (tests wait for it). */
  int64_t users = 0;
  user_record *none = NULL;
  size_t n0 = 0;
  user_store_list(a.store, 0, 0, &none, &n0, &users);
  say("user_server: listening on %s (%s%s, %lld users)", ex.where,
      db ? "SQLite " : "in memory", db ? db : "", (long long)users);

  int sig = ex_wait_signal();
  say("user_server: %s: shutting down (grace %ld ms)", ex_signal_name(sig),
      grace_ms);
  mrpc_server_shutdown(ex.srv, (int)grace_ms); /* health: NOT_SERVING */
  status = 0;
out:
  ex_server_del(&ex); /* before the interceptors it uses */
  chain_free(&ics);
  user_store_close(a.store);
  if (status == 0) say("user_server: stopped");
  return status;
}
