/* user_client: the tutorial's Go client on libminirpc, with the generated
 * blocking stubs.  Six steps, in the tutorial's order:
 *   1 CreateUser  2 GetUser  3 ListUsers  4 StreamUsers (server streaming)
 *   5 CreateBatchUsers (client streaming)  6 ChatWithUsers (bidirectional)
 *
 *   user_client [--target HOST:PORT] [--token TOKEN] [--stream-delay SECONDS]
 *               [--pace-ms N] [--quiet]
 *               [--tls | --tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *               [--authority NAME]
 *
 * Every call has a deadline (5 s for unary calls, 30 s for the batch and
 * the chat, 10 s plus the users' delays for the stream).  The exit status
 * is 0 only if every step succeeded; a failed step is reported and the
 * next steps still run.
 *
 * The channel has two of the library's interceptors (<minirpc/interceptors.h>):
 * logging, one line per call on stderr (off with --quiet; the tutorial's
 * client logging interceptor), and, with --token, bearer, which adds
 * "authorization: Bearer TOKEN" to every call (for user_server
 * --auth-token).
 *
 * TLS and --authority as every example client (examples/common/example.h):
 * TLS is on with --tls (the system's CAs) or --tls-ca FILE, a client
 * certificate with --tls-cert / --tls-key (mutual TLS).
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "user.mrpc.h"
#include "user.pb-c.h"

#define DEFAULT_TARGET "localhost:50051"
#define UNARY_TIMEOUT_MS 5000
#define STREAM_TIMEOUT_MS 30000

static mrpc_channel *g_ch;
static int g_stream_delay = 1; /* StreamUsers' delay_seconds (tutorial: 1) */
static int g_pace_ms = 0;      /* pause between streamed sends (tutorial: 1 s) */
static int g_unauthenticated;  /* steps refused with UNAUTHENTICATED */

/* ---- printing ----------------------------------------------------------- */

/* A string in protobuf text format quotes. */
static void put_quoted(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", stdout);
    else if (*p < 0x20 || *p == 0x7f)
      printf("\\%03o", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static const char *status_name(User__UserStatus s) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&user__user_status__descriptor, s);
  return v ? v->name : "?";
}

/* A User the way Go's %v prints a message: fields that are set, in order. */
static void put_user(const User__User *u) {
  const char *sep = "";
  if (u->id) printf("id:%d", (int)u->id), sep = " ";
  if (u->name && *u->name) printf("%sname:", sep), put_quoted(u->name), sep = " ";
  if (u->email && *u->email)
    printf("%semail:", sep), put_quoted(u->email), sep = " ";
  if (u->age) printf("%sage:%d", sep, (int)u->age), sep = " ";
  for (size_t i = 0; i < u->n_hobbies; i++)
    printf("%shobbies:", sep), put_quoted(u->hobbies[i]), sep = " ";
  if (u->status) printf("%sstatus:%s", sep, status_name(u->status));
}

static void say_user(const char *what, const User__User *u) {
  printf("%s", what);
  put_user(u);
  putchar('\n');
  fflush(stdout);
}

/* Reports a failed step on stderr; returns false. */
static bool step_failed(const char *step, const mrpc_status *st, int rc) {
  fflush(stdout);
  if (!rc && st->code == MRPC_STATUS_UNAUTHENTICATED) g_unauthenticated++;
  if (rc)
    fprintf(stderr, "%s failed: %s\n", step, mrpc_strerror(rc));
  else
    fprintf(stderr, "%s failed: %s: %s\n", step,
            mrpc_status_code_name(st->code), st->message ? st->message : "");
  return false;
}

/* A step's heading, out before the step's calls log on stderr. */
__attribute__((format(printf, 1, 2))) static void heading(const char *fmt,
                                                         ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static mrpc_call_opts call_opts(int64_t timeout_ms) {
  mrpc_call_opts o;
  mrpc_call_opts_init(&o);
  o.timeout_ms = timeout_ms;
  return o;
}

static void pace(void) {
  if (g_pace_ms <= 0) return;
  struct timespec d = {g_pace_ms / 1000, (long)(g_pace_ms % 1000) * 1000000L};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
}

/* ---- the six steps ------------------------------------------------------ */

/* 1. 단일 사용자 생성 */
static bool create_user(int32_t *id) {
  char *hobbies[] = {"독서", "영화감상"};
  User__CreateUserRequest req = USER__CREATE_USER_REQUEST__INIT;
  req.name = "홍길동";
  req.email = "hong@example.com";
  req.age = 30;
  req.n_hobbies = 2;
  req.hobbies = hobbies;
  mrpc_call_opts o = call_opts(UNARY_TIMEOUT_MS);
  User__CreateUserResponse *resp = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__create_user__call(g_ch, &req, &o, &resp, &st);
  bool ok = rc == 0 && st.code == MRPC_STATUS_OK && resp && resp->user;
  if (ok) {
    say_user("user created: ", resp->user);
    printf("message: %s\n", resp->message);
    *id = resp->user->id;
  } else if (rc == 0 && st.code == MRPC_STATUS_OK) {
    fprintf(stderr, "step 1 CreateUser failed: the response has no user\n");
  } else {
    step_failed("step 1 CreateUser", &st, rc);
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  mrpc_status_free(&st);
  return ok;
}

/* 2. 사용자 조회 */
static bool get_user(int32_t id) {
  User__GetUserRequest req = USER__GET_USER_REQUEST__INIT;
  req.id = id;
  mrpc_call_opts o = call_opts(UNARY_TIMEOUT_MS);
  User__User *u = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__get_user__call(g_ch, &req, &o, &u, &st);
  bool ok = rc == 0 && st.code == MRPC_STATUS_OK && u;
  if (ok)
    say_user("user fetched: ", u);
  else
    step_failed("step 2 GetUser", &st, rc);
  if (u) protobuf_c_message_free_unpacked(&u->base, NULL);
  mrpc_status_free(&st);
  return ok;
}

/* 3. 사용자 목록 조회 (page 0, limit 10) */
static bool list_users(int32_t *total) {
  User__ListUsersRequest req = USER__LIST_USERS_REQUEST__INIT;
  req.page = 0;
  req.limit = 10;
  mrpc_call_opts o = call_opts(UNARY_TIMEOUT_MS);
  User__ListUsersResponse *resp = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__list_users__call(g_ch, &req, &o, &resp, &st);
  bool ok = rc == 0 && st.code == MRPC_STATUS_OK && resp;
  if (ok) {
    printf("users listed: %d in total (page %d: %zu)\n", (int)resp->total,
           (int)resp->page, resp->n_users);
    for (size_t i = 0; i < resp->n_users; i++) say_user("- ", resp->users[i]);
    *total = resp->total;
  } else {
    step_failed("step 3 ListUsers", &st, rc);
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  mrpc_status_free(&st);
  return ok;
}

/* 4. 서버 스트리밍: every user, delay_seconds apart. */
static bool stream_users(int32_t total) {
  User__StreamUsersRequest req = USER__STREAM_USERS_REQUEST__INIT;
  req.delay_seconds = g_stream_delay;
  /* Enough time for every user's delay, when the total is known. */
  int64_t timeout = total >= 0
                        ? 10000 + (int64_t)total * g_stream_delay * 1000
                        : STREAM_TIMEOUT_MS;
  mrpc_call_opts o = call_opts(timeout);
  mrpc_stream *s = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__stream_users__open(g_ch, &req, &o, &s);
  if (rc) return step_failed("step 4 StreamUsers", &st, rc);
  printf("streaming users (delay_seconds=%d)...\n", g_stream_delay);
  fflush(stdout);
  int n = 0;
  User__User *u = NULL;
  while ((rc = user__user_service__stream_users__stream_recv_response(s, &u)) ==
         1) {
    say_user("streamed user: ", u);
    protobuf_c_message_free_unpacked(&u->base, NULL);
    n++;
  }
  mrpc_stream_finish(s, &st);
  bool ok = st.code == MRPC_STATUS_OK;
  if (ok)
    printf("streaming done: %d user%s\n", n, n == 1 ? "" : "s");
  else
    step_failed("step 4 StreamUsers", &st, 0);
  mrpc_status_free(&st);
  return ok;
}

/* 5. 클라이언트 스트리밍: three users in one call. */
static bool create_batch_users(void) {
  char *h1[] = {"축구"}, *h2[] = {"요리", "여행"}, *h3[] = {"게임"};
  struct {
    const char *name, *email;
    int age;
    char **hobbies;
    size_t n;
  } users[] = {
      {"김철수", "kim@example.com", 25, h1, 1},
      {"이영희", "lee@example.com", 28, h2, 2},
      {"박민수", "park@example.com", 32, h3, 1},
  };
  mrpc_call_opts o = call_opts(STREAM_TIMEOUT_MS);
  mrpc_stream *s = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__create_batch_users__open(g_ch, &o, &s);
  if (rc) return step_failed("step 5 CreateBatchUsers", &st, rc);
  for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
    User__CreateUserRequest req = USER__CREATE_USER_REQUEST__INIT;
    req.name = (char *)users[i].name;
    req.email = (char *)users[i].email;
    req.age = users[i].age;
    req.n_hobbies = users[i].n;
    req.hobbies = users[i].hobbies;
    rc = user__user_service__create_batch_users__stream_send_request(s, &req);
    if (rc) break; /* the call ended early: the status says why */
    printf("batch: sent %s\n", users[i].name);
    fflush(stdout);
    pace();
  }
  if (rc == 0) mrpc_stream_close_send(s);
  User__CreateUserResponse *resp = NULL;
  int got = user__user_service__create_batch_users__stream_recv_response(s,
                                                                         &resp);
  mrpc_stream_finish(s, &st);
  bool ok = st.code == MRPC_STATUS_OK && got == 1;
  if (ok)
    printf("batch done: %s\n", resp->message);
  else if (st.code == MRPC_STATUS_OK)
    fprintf(stderr, "step 5 CreateBatchUsers failed: no response\n");
  else
    step_failed("step 5 CreateBatchUsers", &st, 0);
  if (got == 1) protobuf_c_message_free_unpacked(&resp->base, NULL);
  mrpc_status_free(&st);
  return ok;
}

/* 6. 양방향 스트리밍: each user sent is answered with the created user
 * before the next is sent. */
static bool chat_with_users(void) {
  const char *names[] = {"실시간1", "실시간2"};
  const char *emails[] = {"real1@example.com", "real2@example.com"};
  const int ages[] = {20, 22};
  mrpc_call_opts o = call_opts(STREAM_TIMEOUT_MS);
  mrpc_stream *s = NULL;
  mrpc_status st = {0};
  int rc = user__user_service__chat_with_users__open(g_ch, &o, &s);
  if (rc) return step_failed("step 6 ChatWithUsers", &st, rc);
  bool ended = false;   /* the call ended early: its status says why */
  bool mismatch = false; /* a wrong answer: reported here, call cancelled */
  for (size_t i = 0; i < 2 && !ended && !mismatch; i++) {
    User__CreateUserRequest req = USER__CREATE_USER_REQUEST__INIT;
    req.name = (char *)names[i];
    req.email = (char *)emails[i];
    req.age = ages[i];
    if (user__user_service__chat_with_users__stream_send_request(s, &req)) {
      ended = true;
      break;
    }
    printf("chat: sent %s\n", names[i]);
    fflush(stdout);
    User__User *u = NULL;
    if (user__user_service__chat_with_users__stream_recv_response(s, &u) != 1) {
      ended = true;
      break;
    }
    say_user("chat: received user: ", u);
    if (strcmp(u->name, names[i]) != 0) {
      fprintf(stderr, "step 6 ChatWithUsers failed: sent %s, got %s back\n",
              names[i], u->name);
      mismatch = true;
    }
    protobuf_c_message_free_unpacked(&u->base, NULL);
    pace();
  }
  if (!ended && !mismatch) {
    mrpc_stream_close_send(s);
    User__User *extra = NULL;
    if (user__user_service__chat_with_users__stream_recv_response(s, &extra) ==
        1) {
      fprintf(stderr, "step 6 ChatWithUsers failed: an unasked-for answer\n");
      protobuf_c_message_free_unpacked(&extra->base, NULL);
      mismatch = true;
    }
  }
  if (mismatch) mrpc_call_cancel(mrpc_stream_call(s));
  mrpc_stream_finish(s, &st);
  bool ok = false;
  if (mismatch) {
    /* already reported */
  } else if (st.code != MRPC_STATUS_OK) {
    step_failed("step 6 ChatWithUsers", &st, 0);
  } else if (ended) {
    fprintf(stderr, "step 6 ChatWithUsers failed: the stream ended early\n");
  } else {
    printf("chat done\n");
    ok = true;
  }
  mrpc_status_free(&st);
  return ok;
}

/* The tutorial's checkConnection: the channel's state, and its changes
 * until it is READY or 5 s have passed (stderr, as the call log). */
static void check_connection(mrpc_channel *ch) {
  mrpc_channel_state st = mrpc_channel_get_state(ch, 1); /* connect now */
  fprintf(stderr, "connection: %s", mrpc_channel_state_name(st));
  for (int i = 0; i < 8 && st != MRPC_CHANNEL_READY; i++) {
    if (mrpc_channel_wait_for_state_change(ch, st, 5000) != 1) {
      fprintf(stderr, " (no change within 5 s)");
      break;
    }
    st = mrpc_channel_get_state(ch, 0);
    fprintf(stderr, " -> %s", mrpc_channel_state_name(st));
  }
  fprintf(stderr, "\n");
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: user_client [--target HOST:PORT] [--token TOKEN]\n"
          "                   [--stream-delay SECONDS] [--pace-ms N] [--quiet]\n"
          "                   [--tls | --tls-ca FILE]\n"
          "                   [--tls-cert FILE --tls-key FILE]\n"
          "                   [--authority NAME]\n"
          "  --target HOST:PORT      the server (default %s)\n"
          "  --token TOKEN           send \"authorization: Bearer TOKEN\" with\n"
          "                          every call (user_server --auth-token)\n"
          "  --stream-delay SECONDS  StreamUsers' delay_seconds (default 1)\n"
          "  --pace-ms N             pause between the messages of steps 5\n"
          "                          and 6 (default 0; the tutorial's: 1000)\n"
          "  --quiet                 no per-call log lines on stderr\n"
          "%s",
          DEFAULT_TARGET, ex_client_usage);
}

int main(int argc, char **argv) {
  ex_client cl;
  ex_client_init(&cl, "user_client", DEFAULT_TARGET);
  const char *token = NULL;
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    const char *v;
    long n;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--quiet")) {
      quiet = true;
    } else if (ex_client_flag(&cl, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--token"))) {
      token = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--stream-delay"))) {
      if (!ex_parse_long(v, 0, 60, &n)) {
        fprintf(stderr, "user_client: bad --stream-delay \"%s\"\n", v);
        return 2;
      }
      g_stream_delay = (int)n;
    } else if ((v = ex_flag_value(argc, argv, &i, "--pace-ms"))) {
      if (!ex_parse_long(v, 0, 60000, &n)) {
        fprintf(stderr, "user_client: bad --pace-ms \"%s\"\n", v);
        return 2;
      }
      g_pace_ms = (int)n;
    } else {
      fprintf(stderr, "user_client: unknown argument \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  /* The interceptors, outermost first: logging, then bearer.  They must
   * outlive the channel. */
  mrpc_ic_logging *logging = NULL;
  mrpc_ic_bearer *bearer = NULL;
  int rc = 0;
  if (token && (rc = mrpc_ic_bearer_new(token, &bearer)) != 0) {
    if (rc == MRPC_ERR_INVAL)
      fprintf(stderr, "user_client: bad --token: a token is printable ASCII "
                      "without spaces\n");
    else
      fprintf(stderr, "user_client: %s\n", mrpc_strerror(rc));
    return 2;
  }
  if (!quiet && (rc = mrpc_ic_logging_new(NULL, &logging)) != 0) {
    fprintf(stderr, "user_client: %s\n", mrpc_strerror(rc));
    mrpc_ic_bearer_del(bearer);
    return 1;
  }
  rc = ex_channel_new(&cl, NULL, &g_ch); /* TLS, --authority */
  if (rc) {
    mrpc_ic_logging_del(logging);
    mrpc_ic_bearer_del(bearer);
    return rc;
  }
  if ((logging && (rc = mrpc_channel_add_interceptor(
                       g_ch, mrpc_ic_logging_interceptor(logging), logging,
                       NULL)) != 0) ||
      (bearer && (rc = mrpc_channel_add_interceptor(
                      g_ch, mrpc_ic_bearer_interceptor(bearer), bearer,
                      NULL)) != 0)) {
    fprintf(stderr, "user_client: interceptors: %s\n", mrpc_strerror(rc));
    mrpc_channel_del(g_ch);
    mrpc_ic_logging_del(logging);
    mrpc_ic_bearer_del(bearer);
    return 1;
  }

  if (!quiet) check_connection(g_ch);

  int failed = 0;
  int32_t id = 1, total = -1;
  heading("== 1. CreateUser\n");
  if (!create_user(&id)) failed++;
  heading("== 2. GetUser %d\n", (int)id);
  if (!get_user(id)) failed++;
  heading("== 3. ListUsers\n");
  if (!list_users(&total)) failed++;
  heading("== 4. StreamUsers\n");
  if (!stream_users(total)) failed++;
  heading("== 5. CreateBatchUsers\n");
  if (!create_batch_users()) failed++;
  heading("== 6. ChatWithUsers\n");
  if (!chat_with_users()) failed++;

  mrpc_channel_del(g_ch);
  mrpc_ic_logging_del(logging);
  mrpc_ic_bearer_del(bearer);
  fflush(stdout);
  if (failed) {
    fprintf(stderr, "user_client: %d of 6 steps failed\n", failed);
    if (g_unauthenticated && !token)
      fprintf(stderr, "user_client: the server requires a token "
                      "(UNAUTHENTICATED): run with --token TOKEN\n");
    else if (g_unauthenticated)
      fprintf(stderr, "user_client: the server refused the token given "
                      "with --token (UNAUTHENTICATED)\n");
    return 1;
  }
  printf("user_client: all 6 steps succeeded\n");
  return 0;
}
