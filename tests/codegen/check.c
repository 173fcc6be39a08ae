/* tests/codegen: links every file protoc-gen-minirpc made for
 * tests/codegen/proto (and the imported well-known and protobuf-c files)
 * and checks what it says:
 *   tables     every method's path, kind and descriptors, every service
 *   files      every embedded descriptor parses back (descriptor.proto's C)
 *              with its name, package, imports and services, and points to
 *              its imports' descriptors
 *   symbols    every register function, stub and typed helper exists
 *   calls      a server on 127.0.0.1 with generated handler tables (both
 *              styles, every kind) answers the generated client stubs (both
 *              styles, every kind)
 * Prints "PASS codegen <part>" / "FAIL codegen <part>: why"; exits 1 if
 * anything failed.
 * SPDX-License-Identifier: Apache-2.0 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "a/b/c.mrpc.h"
#include "cpkg/cpkg.mrpc.h"
#include "d/e.mrpc.h"
#include "google/protobuf/descriptor.mrpc.h"
#include "google/protobuf/empty.mrpc.h"
#include "google/protobuf/timestamp.mrpc.h"
#include "kw/kw.mrpc.h"
#include "nopkg.mrpc.h"
#include "protobuf-c/protobuf-c.mrpc.h"
#include "types_only.mrpc.h"

#define TIMEOUT_MS 10000

static char g_why[512];
static int g_failed;

static bool fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static bool fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_why, sizeof g_why, fmt, ap);
  va_end(ap);
  return false;
}

/* protobuf_c_message_free_unpacked for any protoc-c message, or NULL. */
static void free_msg(void *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

static void report(const char *part, bool ok) {
  if (ok) {
    printf("PASS codegen %s\n", part);
  } else {
    printf("FAIL codegen %s: %s\n", part, g_why);
    g_failed++;
  }
  fflush(stdout);
}

/* ---- tables ----------------------------------------------------------- */

typedef struct want_method {
  const mrpc_method *m;
  const char *path;
  mrpc_method_kind kind;
  const ProtobufCMessageDescriptor *req, *resp;
} want_method;

#define D(x) (&x##__descriptor)
static const want_method k_methods[] = {
    {FOO__BAR__BAZ__ECHO__UNARY__METHOD, "/foo.bar.baz.Echo/Unary",
     MRPC_UNARY, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__ECHO__SERVER_STREAM__METHOD,
     "/foo.bar.baz.Echo/ServerStream", MRPC_SERVER_STREAMING,
     D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__ECHO__CLIENT_STREAM__METHOD,
     "/foo.bar.baz.Echo/ClientStream", MRPC_CLIENT_STREAMING,
     D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__ECHO__BIDI__METHOD, "/foo.bar.baz.Echo/Bidi",
     MRPC_BIDI_STREAMING, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__ECHO__PING__METHOD, "/foo.bar.baz.Echo/Ping", MRPC_UNARY,
     D(google__protobuf__empty), D(google__protobuf__empty)},
    {FOO__BAR__BAZ__ECHO__NESTED__METHOD, "/foo.bar.baz.Echo/Nested",
     MRPC_UNARY, D(foo__bar__baz__outer__inner), D(other__pkg__thing__part)},
    {FOO__BAR__BAZ__ECHO__IMPORTED__METHOD, "/foo.bar.baz.Echo/Imported",
     MRPC_UNARY, D(other__pkg__thing), D(google__protobuf__timestamp)},
    {FOO__BAR__BAZ__INT__HTTPGET__METHOD, "/foo.bar.baz.Int/HTTPGet",
     MRPC_UNARY, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__GET2_THINGS__METHOD, "/foo.bar.baz.Int/Get2Things",
     MRPC_SERVER_STREAMING, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__USER__METHOD, "/foo.bar.baz.Int/User", MRPC_UNARY,
     D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__CALL__METHOD, "/foo.bar.baz.Int/Call",
     MRPC_CLIENT_STREAMING, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__OPEN__METHOD, "/foo.bar.baz.Int/Open",
     MRPC_BIDI_STREAMING, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__GET_LOWER__METHOD, "/foo.bar.baz.Int/get_lower",
     MRPC_UNARY, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {FOO__BAR__BAZ__INT__BLOCKING__METHOD, "/foo.bar.baz.Int/Blocking",
     MRPC_UNARY, D(foo__bar__baz__req), D(foo__bar__baz__resp)},
    {OTHER__PKG__REMOTE__FETCH__METHOD, "/other.pkg.Remote/Fetch", MRPC_UNARY,
     D(other__pkg__thing), D(other__pkg__thing__part)},
    {PLAIN__RUN__METHOD, "/Plain/Run", MRPC_UNARY, D(bare), D(types__value)},
    {PLAIN__RUN_STREAM__METHOD, "/Plain/RunStream", MRPC_BIDI_STREAMING,
     D(bare), D(types__value)},
    {STRUCT__SWITCH__RETURN__JUMP__METHOD, "/struct.switch.Return/Jump",
     MRPC_UNARY, D(struct__switch__case), D(struct__switch__case)},
    {CP__RENAMED__S__GO__METHOD, "/real.pkg.S/Go", MRPC_UNARY,
     D(cp__renamed__m), D(cp__renamed__m)},
};
#define N_METHODS (sizeof k_methods / sizeof k_methods[0])

typedef struct want_service {
  const mrpc_service *s;
  const char *name;
  size_t n;
  const mrpc_method *methods;
} want_service;

static const want_service k_services[] = {
    {&foo__bar__baz__echo__mrpc_service, "foo.bar.baz.Echo", 7,
     foo__bar__baz__echo__mrpc_methods},
    {&foo__bar__baz__int__mrpc_service, "foo.bar.baz.Int", 7,
     foo__bar__baz__int__mrpc_methods},
    {&foo__bar__baz__nothing__mrpc_service, "foo.bar.baz.Nothing", 0, NULL},
    {&other__pkg__remote__mrpc_service, "other.pkg.Remote", 1,
     other__pkg__remote__mrpc_methods},
    {&plain__mrpc_service, "Plain", 2, plain__mrpc_methods},
    {&struct__switch__return__mrpc_service, "struct.switch.Return", 1,
     struct__switch__return__mrpc_methods},
    {&cp__renamed__s__mrpc_service, "real.pkg.S", 1,
     cp__renamed__s__mrpc_methods},
};

static bool check_tables(void) {
  for (size_t i = 0; i < N_METHODS; i++) {
    const want_method *w = &k_methods[i];
    if (strcmp(w->m->path, w->path) != 0)
      return fail("path \"%s\", want \"%s\"", w->m->path, w->path);
    if (w->m->kind != w->kind)
      return fail("%s: kind %d, want %d", w->path, w->m->kind, w->kind);
    if (w->m->request != w->req || w->m->response != w->resp)
      return fail("%s: wrong message descriptors", w->path);
  }
  size_t counted = 0;
  for (size_t i = 0; i < sizeof k_services / sizeof k_services[0]; i++) {
    const want_service *w = &k_services[i];
    if (strcmp(w->s->name, w->name) != 0)
      return fail("service \"%s\", want \"%s\"", w->s->name, w->name);
    if (w->s->n_methods != w->n || w->s->methods != w->methods)
      return fail("%s: %zu methods, want %zu", w->name, w->s->n_methods,
                  w->n);
    for (size_t k = 0; k < w->n; k++) {
      /* path = "/" service "/" method */
      const char *p = w->methods[k].path;
      size_t n = strlen(w->name);
      if (p[0] != '/' || strncmp(p + 1, w->name, n) != 0 || p[n + 1] != '/')
        return fail("%s: method path \"%s\"", w->name, p);
    }
    counted += w->n;
  }
  if (counted != N_METHODS)
    return fail("%zu methods in the services, %zu checked", counted,
                (size_t)N_METHODS);
  return true;
}

/* ---- embedded descriptors --------------------------------------------- */

typedef struct want_file {
  const mrpc_file_descriptor *f;
  const char *name, *package;
  size_t n_services;
  const mrpc_file_descriptor *deps[4]; /* NULL-terminated */
} want_file;

static const want_file k_files[] = {
    {&a__b__c__mrpc_file, "a/b/c.proto", "foo.bar.baz", 3,
     {&d__e__mrpc_file, &google__protobuf__empty__mrpc_file,
      &google__protobuf__timestamp__mrpc_file}},
    {&d__e__mrpc_file, "d/e.proto", "other.pkg", 1, {NULL}},
    {&nopkg__mrpc_file, "nopkg.proto", NULL, 1, {&types_only__mrpc_file}},
    {&types_only__mrpc_file, "types_only.proto", "types", 0, {NULL}},
    {&kw__kw__mrpc_file, "kw/kw.proto", "struct.switch", 1, {NULL}},
    {&cpkg__cpkg__mrpc_file, "cpkg/cpkg.proto", "real.pkg", 1,
     {&protobuf_c__protobuf_c__mrpc_file}},
    {&protobuf_c__protobuf_c__mrpc_file, "protobuf-c/protobuf-c.proto", NULL,
     0, {&google__protobuf__descriptor__mrpc_file}},
    {&google__protobuf__empty__mrpc_file, "google/protobuf/empty.proto",
     "google.protobuf", 0, {NULL}},
    {&google__protobuf__timestamp__mrpc_file,
     "google/protobuf/timestamp.proto", "google.protobuf", 0, {NULL}},
    {&google__protobuf__descriptor__mrpc_file,
     "google/protobuf/descriptor.proto", "google.protobuf", 0, {NULL}},
};

static bool check_file(const want_file *w) {
  const mrpc_file_descriptor *f = w->f;
  if (strcmp(f->name, w->name) != 0)
    return fail("descriptor name \"%s\", want \"%s\"", f->name, w->name);
  Google__Protobuf__FileDescriptorProto *fdp =
      google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->data);
  if (!fdp) return fail("%s: the embedded descriptor does not parse", w->name);
  bool ok = false;
  size_t n_deps = 0;
  while (n_deps < 4 && w->deps[n_deps]) n_deps++;
  if (!fdp->name || strcmp(fdp->name, w->name) != 0) {
    fail("%s: parsed name \"%s\"", w->name, fdp->name ? fdp->name : "");
  } else if (w->package ? !fdp->package || strcmp(fdp->package, w->package)
                        : fdp->package && *fdp->package) {
    fail("%s: package \"%s\"", w->name, fdp->package ? fdp->package : "");
  } else if (fdp->n_service != w->n_services) {
    fail("%s: %zu services, want %zu", w->name, fdp->n_service,
         w->n_services);
  } else if (fdp->source_code_info) {
    fail("%s: source_code_info was kept", w->name);
  } else if (f->n_deps != n_deps || fdp->n_dependency != n_deps) {
    fail("%s: %zu deps (%zu imports), want %zu", w->name, f->n_deps,
         fdp->n_dependency, n_deps);
  } else {
    ok = true;
    for (size_t i = 0; ok && i < n_deps; i++) {
      if (f->deps[i] != w->deps[i])
        ok = fail("%s: dep %zu points to %s", w->name, i, f->deps[i]->name);
      else if (strcmp(fdp->dependency[i], f->deps[i]->name) != 0)
        ok = fail("%s: import %zu is %s, dep says %s", w->name, i,
                  fdp->dependency[i], f->deps[i]->name);
    }
  }
  google__protobuf__file_descriptor_proto__free_unpacked(fdp, NULL);
  return ok;
}

static bool check_files(void) {
  for (size_t i = 0; i < sizeof k_files / sizeof k_files[0]; i++)
    if (!check_file(&k_files[i])) return false;
  return true;
}

/* ---- every symbol ----------------------------------------------------- */

typedef void (*any_fn)(void);
#define F(x) ((any_fn)(x))
/* Every stub and helper of one method: P__M__... */
#define ONE_REQ(pm)                                                         \
  F(pm##__send_response), F(pm##__stream_send_response),                   \
      F(pm##__stream_recv_request), F(pm##__send_request),                  \
      F(pm##__stream_send_request), F(pm##__stream_recv_response),          \
      F(pm##__start), F(pm##__open)
#define UNARY(pm) ONE_REQ(pm), F(pm##__call)
#define STREAMING(pm) ONE_REQ(pm)

static bool check_symbols(void) {
  static const any_fn fns[] = {
      F(foo__bar__baz__echo__mrpc_register),
      F(foo__bar__baz__int__mrpc_register),
      F(foo__bar__baz__nothing__mrpc_register),
      F(other__pkg__remote__mrpc_register),
      F(plain__mrpc_register),
      F(struct__switch__return__mrpc_register),
      F(cp__renamed__s__mrpc_register),
      UNARY(foo__bar__baz__echo__unary),
      STREAMING(foo__bar__baz__echo__server_stream),
      STREAMING(foo__bar__baz__echo__client_stream),
      STREAMING(foo__bar__baz__echo__bidi),
      UNARY(foo__bar__baz__echo__ping),
      UNARY(foo__bar__baz__echo__nested),
      UNARY(foo__bar__baz__echo__imported),
      UNARY(foo__bar__baz__int__httpget),
      STREAMING(foo__bar__baz__int__get2_things),
      UNARY(foo__bar__baz__int__user),
      STREAMING(foo__bar__baz__int__call),
      STREAMING(foo__bar__baz__int__open),
      UNARY(foo__bar__baz__int__get_lower),
      UNARY(foo__bar__baz__int__blocking),
      UNARY(other__pkg__remote__fetch),
      UNARY(plain__run),
      STREAMING(plain__run_stream),
      UNARY(struct__switch__return__jump),
      UNARY(cp__renamed__s__go),
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (!fns[i]) return fail("symbol %zu is NULL", i);
  /* Handler-table members, with the names docs/codegen.md gives. */
  Foo__Bar__Baz__Int_MrpcHandlers h = {0};
  h.user_ = NULL;           /* method User: "user" is the table's own */
  h.user_blocking = NULL;
  h.blocking = NULL;        /* method Blocking */
  h.blocking_blocking = NULL;
  h.get2_things = NULL;
  h.httpget_blocking = NULL;
  h.user = &h;
  (void)h;
  Foo__Bar__Baz__Nothing_MrpcHandlers none = {0};
  mrpc_server *srv = NULL;
  int rc = mrpc_server_new(NULL, &srv);
  if (rc != 0) return fail("mrpc_server_new: %s", mrpc_strerror(rc));
  rc = foo__bar__baz__nothing__mrpc_register(srv, &none);
  mrpc_server_del(srv);
  if (rc != 0) return fail("registering a service without methods: %s",
                           mrpc_strerror(rc));
  return true;
}

/* ---- calls ------------------------------------------------------------ */

static int g_user_tag; /* the handler tables' user pointer */

static void set_resp(Foo__Bar__Baz__Resp *r, const char *text, int32_t n) {
  foo__bar__baz__resp__init(r);
  r->text = (char *)text;
  r->n = n;
}

/* Echo.Unary, event: answers at once, n + 1. */
static void ev_unary(mrpc_call *call, const Foo__Bar__Baz__Req *req,
                     void *user) {
  Foo__Bar__Baz__Resp r;
  set_resp(&r, user == &g_user_tag ? req->text : "bad user", req->n + 1);
  foo__bar__baz__echo__unary__send_response(call, &r);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Echo.ServerStream, blocking: n responses 0..n-1. */
static void blk_server_stream(mrpc_stream *s, const Foo__Bar__Baz__Req *req,
                              void *user) {
  (void)user;
  for (int32_t i = 0; i < req->n; i++) {
    Foo__Bar__Baz__Resp r;
    set_resp(&r, req->text, i);
    if (foo__bar__baz__echo__server_stream__stream_send_response(s, &r) != 0)
      return;
  }
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Echo.ClientStream, blocking: the sum of n. */
static void blk_client_stream(mrpc_stream *s, void *user) {
  (void)user;
  Foo__Bar__Baz__Req *req;
  int32_t sum = 0;
  int rc;
  while ((rc = foo__bar__baz__echo__client_stream__stream_recv_request(
              s, &req)) == 1) {
    sum += req->n;
    free_msg(req);
  }
  if (rc < 0) return;
  Foo__Bar__Baz__Resp r;
  set_resp(&r, "sum", sum);
  foo__bar__baz__echo__client_stream__stream_send_response(s, &r);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Echo.Bidi, event: each request echoed at once. */
static void bidi_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
  (void)ctx;
  const Foo__Bar__Baz__Req *req = (const Foo__Bar__Baz__Req *)msg;
  Foo__Bar__Baz__Resp r;
  set_resp(&r, req->text, req->n * 2);
  foo__bar__baz__echo__bidi__send_response(call, &r);
}

static void bidi_on_half_close(mrpc_call *call, void *ctx) {
  (void)ctx;
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void ev_bidi(mrpc_call *call, void *user) {
  static const mrpc_call_ops ops = {.on_message = bidi_on_message,
                                    .on_half_close = bidi_on_half_close};
  (void)user;
  mrpc_call_set_ops(call, &ops, NULL);
}

/* Int.User, blocking: its handler-table members are user_ / user_blocking. */
static void blk_user(mrpc_stream *s, const Foo__Bar__Baz__Req *req,
                     void *user) {
  Foo__Bar__Baz__Resp r;
  set_resp(&r, user == &g_user_tag ? "user" : "bad user", req->n);
  foo__bar__baz__int__user__stream_send_response(s, &r);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Int.Get2Things, event: two responses at once. */
static void ev_get2(mrpc_call *call, const Foo__Bar__Baz__Req *req,
                    void *user) {
  (void)user;
  for (int32_t i = 0; i < 2; i++) {
    Foo__Bar__Baz__Resp r;
    set_resp(&r, req->text, i);
    foo__bar__baz__int__get2_things__send_response(call, &r);
  }
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Int.Call, event (client streaming): counts requests, answers at the end. */
static void call_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
  (void)call;
  (void)msg;
  ++*(int32_t *)ctx;
}

static void call_on_half_close(mrpc_call *call, void *ctx) {
  Foo__Bar__Baz__Resp r;
  set_resp(&r, "count", *(int32_t *)ctx);
  foo__bar__baz__int__call__send_response(call, &r);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void call_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  free(ctx);
}

static void ev_call(mrpc_call *call, void *user) {
  static const mrpc_call_ops ops = {.on_message = call_on_message,
                                    .on_half_close = call_on_half_close,
                                    .on_done = call_on_done};
  (void)user;
  int32_t *count = calloc(1, sizeof *count);
  if (!count || mrpc_call_set_ops(call, &ops, count) != 0) {
    free(count);
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, "no memory", NULL, 0);
  }
}

/* Int.Open, blocking bidi: echoes until the client half-closes. */
static void blk_open(mrpc_stream *s, void *user) {
  (void)user;
  Foo__Bar__Baz__Req *req;
  int rc;
  while ((rc = foo__bar__baz__int__open__stream_recv_request(s, &req)) == 1) {
    Foo__Bar__Baz__Resp r;
    set_resp(&r, req->text, req->n);
    rc = foo__bar__baz__int__open__stream_send_response(s, &r);
    free_msg(req);
    if (rc != 0) return;
  }
  if (rc == 0) mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Echo.Ping has no handler: UNIMPLEMENTED. */
static const Foo__Bar__Baz__Echo_MrpcHandlers k_echo = {
    .unary = ev_unary,
    .server_stream_blocking = blk_server_stream,
    .client_stream_blocking = blk_client_stream,
    .bidi = ev_bidi,
    .user = &g_user_tag,
};

static const Foo__Bar__Baz__Int_MrpcHandlers k_int = {
    .user_blocking = blk_user,
    .get2_things = ev_get2,
    .call = ev_call,
    .open_blocking = blk_open,
    .user = &g_user_tag,
};

/* Event-driven client calls: what the callbacks saw. */
typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int n_msgs;
  int32_t sum; /* of the responses' n */
  mrpc_status_code code;
} waiter;

static void w_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                         void *ctx) {
  waiter *w = ctx;
  (void)call;
  pthread_mutex_lock(&w->mu);
  w->n_msgs++;
  w->sum += ((const Foo__Bar__Baz__Resp *)msg)->n;
  pthread_mutex_unlock(&w->mu);
}

static void w_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  waiter *w = ctx;
  (void)call;
  pthread_mutex_lock(&w->mu);
  w->done = true;
  w->code = st->code;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static const mrpc_call_ops k_wait_ops = {.on_message = w_on_message,
                                         .on_done = w_on_done};

static void w_init(waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

/* Waits for on_done, then drops the call.  false: it never came (the
 * waiter is still the call's: the caller must not free it). */
static bool w_finish(waiter *w, mrpc_call *call) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += TIMEOUT_MS / 1000 + 5;
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  bool done = w->done;
  pthread_mutex_unlock(&w->mu);
  if (!done) return fail("on_done never came");
  mrpc_call_unref(call);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  return true;
}

static mrpc_call_opts *opts(mrpc_call_opts *o) {
  mrpc_call_opts_init(o);
  o->timeout_ms = TIMEOUT_MS;
  return o;
}

static Foo__Bar__Baz__Req req_of(const char *text, int32_t n) {
  Foo__Bar__Baz__Req r = FOO__BAR__BAZ__REQ__INIT;
  r.text = (char *)text;
  r.n = n;
  return r;
}

static bool expect_ok(const char *what, int rc, mrpc_status *st) {
  bool ok = true;
  if (rc != 0)
    ok = fail("%s: %s", what, mrpc_strerror(rc));
  else if (st->code != MRPC_STATUS_OK)
    ok = fail("%s: status %d \"%s\"", what, st->code,
              st->message ? st->message : "");
  mrpc_status_free(st);
  return ok;
}

static bool call_unary(mrpc_channel *ch) {
  mrpc_call_opts o;
  mrpc_status st;
  Foo__Bar__Baz__Req req = req_of("hi", 41);
  Foo__Bar__Baz__Resp *resp = NULL;
  int rc = foo__bar__baz__echo__unary__call(ch, &req, opts(&o), &resp, &st);
  if (!expect_ok("Echo.Unary __call", rc, &st)) return false;
  bool ok = resp && resp->n == 42 && strcmp(resp->text, "hi") == 0;
  free_msg(resp);
  if (!ok) return fail("Echo.Unary __call: wrong response");

  waiter w;
  w_init(&w);
  mrpc_call *call = NULL;
  rc = foo__bar__baz__echo__unary__start(ch, &req, opts(&o), &k_wait_ops, &w,
                                         &call);
  if (rc != 0) return fail("Echo.Unary __start: %s", mrpc_strerror(rc));
  if (!w_finish(&w, call)) return false;
  if (w.code != MRPC_STATUS_OK || w.n_msgs != 1 || w.sum != 42)
    return fail("Echo.Unary __start: status %d, %d responses, n %d", w.code,
                w.n_msgs, (int)w.sum);

  /* The blocking handler of Int.User (member user_blocking). */
  rc = foo__bar__baz__int__user__call(ch, &req, opts(&o), &resp, &st);
  if (!expect_ok("Int.User __call", rc, &st)) return false;
  ok = resp && strcmp(resp->text, "user") == 0;
  free_msg(resp);
  if (!ok) return fail("Int.User: wrong response or user pointer");

  /* No handler: UNIMPLEMENTED. */
  Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
  Google__Protobuf__Empty *eresp = NULL;
  rc = foo__bar__baz__echo__ping__call(ch, &e, opts(&o), &eresp, &st);
  ok = rc == 0 && st.code == MRPC_STATUS_UNIMPLEMENTED && !eresp;
  mrpc_status_free(&st);
  if (!ok) return fail("Echo.Ping without handler: not UNIMPLEMENTED");
  /* A message of another type is refused before anything starts. */
  mrpc_call *bad = NULL;
  rc = foo__bar__baz__echo__unary__start(
      ch, (const Foo__Bar__Baz__Req *)(const void *)&e, NULL, &k_wait_ops,
      NULL, &bad);
  if (rc != MRPC_ERR_SERIALIZE || bad)
    return fail("__start with a wrong message: %d", rc);
  return true;
}

static bool call_server_streaming(mrpc_channel *ch) {
  mrpc_call_opts o;
  Foo__Bar__Baz__Req req = req_of("s", 5);
  mrpc_stream *s = NULL;
  int rc = foo__bar__baz__echo__server_stream__open(ch, &req, opts(&o), &s);
  if (rc != 0) return fail("Echo.ServerStream __open: %s", mrpc_strerror(rc));
  Foo__Bar__Baz__Resp *r;
  int n = 0;
  bool ok = true;
  while ((rc = foo__bar__baz__echo__server_stream__stream_recv_response(
              s, &r)) == 1) {
    if (r->n != n++) ok = false;
    free_msg(r);
  }
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  if (!expect_ok("Echo.ServerStream", 0, &st)) return false;
  if (!ok || n != 5) return fail("Echo.ServerStream: %d responses", n);

  waiter w;
  w_init(&w);
  mrpc_call *call = NULL;
  rc = foo__bar__baz__int__get2_things__start(ch, &req, opts(&o), &k_wait_ops,
                                              &w, &call);
  if (rc != 0) return fail("Int.Get2Things __start: %s", mrpc_strerror(rc));
  if (!w_finish(&w, call)) return false;
  if (w.code != MRPC_STATUS_OK || w.n_msgs != 2 || w.sum != 1)
    return fail("Int.Get2Things: status %d, %d responses", w.code, w.n_msgs);
  return true;
}

static bool call_client_streaming(mrpc_channel *ch) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  int rc = foo__bar__baz__echo__client_stream__open(ch, opts(&o), &s);
  if (rc != 0) return fail("Echo.ClientStream __open: %s", mrpc_strerror(rc));
  for (int32_t i = 1; i <= 3 && rc == 0; i++) {
    Foo__Bar__Baz__Req req = req_of("c", i * 10);
    rc = foo__bar__baz__echo__client_stream__stream_send_request(s, &req);
  }
  if (rc == 0) rc = mrpc_stream_close_send(s);
  Foo__Bar__Baz__Resp *r = NULL;
  int got = rc == 0
                ? foo__bar__baz__echo__client_stream__stream_recv_response(
                      s, &r)
                : rc;
  int32_t sum = r ? r->n : -1;
  free_msg(r);
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  if (!expect_ok("Echo.ClientStream", 0, &st)) return false;
  if (got != 1 || sum != 60)
    return fail("Echo.ClientStream: recv %d, sum %d", got, (int)sum);

  waiter w;
  w_init(&w);
  mrpc_call *call = NULL;
  rc = foo__bar__baz__int__call__start(ch, opts(&o), &k_wait_ops, &w, &call);
  if (rc != 0) return fail("Int.Call __start: %s", mrpc_strerror(rc));
  for (int i = 0; i < 4 && rc == 0; i++) {
    Foo__Bar__Baz__Req req = req_of("e", i);
    rc = foo__bar__baz__int__call__send_request(call, &req);
  }
  if (rc == 0) rc = mrpc_call_close_send(call);
  if (rc != 0) mrpc_call_cancel(call);
  if (!w_finish(&w, call)) return false;
  if (rc != 0) return fail("Int.Call send: %s", mrpc_strerror(rc));
  if (w.code != MRPC_STATUS_OK || w.n_msgs != 1 || w.sum != 4)
    return fail("Int.Call: status %d, count %d", w.code, (int)w.sum);
  return true;
}

/* Bidi through __open, one exchange at a time. */
static bool ping_pong(const char *what, mrpc_stream *s, int32_t factor) {
  int rc = 0;
  for (int32_t i = 1; i <= 3; i++) {
    Foo__Bar__Baz__Req req = req_of("b", i);
    Foo__Bar__Baz__Resp *r = NULL;
    rc = foo__bar__baz__echo__bidi__stream_send_request(s, &req);
    if (rc == 0) rc = foo__bar__baz__echo__bidi__stream_recv_response(s, &r);
    int32_t n = r ? r->n : -1;
    free_msg(r);
    if (rc != 1 || n != i * factor) {
      mrpc_call_cancel(mrpc_stream_call(s));
      mrpc_stream_finish(s, NULL);
      return fail("%s: exchange %d: rc %d, n %d", what, (int)i, rc, (int)n);
    }
  }
  rc = mrpc_stream_close_send(s);
  Foo__Bar__Baz__Resp *r = NULL;
  int end = rc == 0 ? foo__bar__baz__echo__bidi__stream_recv_response(s, &r)
                    : rc;
  free_msg(r);
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  if (!expect_ok(what, 0, &st)) return false;
  if (end != 0) return fail("%s: end of stream %d", what, end);
  return true;
}

static bool call_bidi(mrpc_channel *ch) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  int rc = foo__bar__baz__echo__bidi__open(ch, opts(&o), &s);
  if (rc != 0) return fail("Echo.Bidi __open: %s", mrpc_strerror(rc));
  if (!ping_pong("Echo.Bidi (event handler)", s, 2)) return false;
  rc = foo__bar__baz__int__open__open(ch, opts(&o), &s);
  if (rc != 0) return fail("Int.Open __open: %s", mrpc_strerror(rc));
  return ping_pong("Int.Open (blocking handler)", s, 1);
}

static bool check_both_styles_refused(void) {
  static const Foo__Bar__Baz__Echo_MrpcHandlers both = {
      .unary = ev_unary, .unary_blocking = blk_user};
  mrpc_server *srv = NULL;
  int rc = mrpc_server_new(NULL, &srv);
  if (rc != 0) return fail("mrpc_server_new: %s", mrpc_strerror(rc));
  rc = foo__bar__baz__echo__mrpc_register(srv, &both);
  mrpc_server_del(srv);
  if (rc != MRPC_ERR_INVAL)
    return fail("both styles for one method: %d, want MRPC_ERR_INVAL", rc);
  return true;
}

static void check_calls(void) {
  mrpc_server *srv = NULL;
  mrpc_channel *ch = NULL;
  int port = 0, rc;
  char target[64];
  if ((rc = mrpc_server_new(NULL, &srv)) != 0 ||
      (rc = foo__bar__baz__echo__mrpc_register(srv, &k_echo)) != 0 ||
      (rc = foo__bar__baz__int__mrpc_register(srv, &k_int)) != 0 ||
      (rc = mrpc_server_listen(srv, "127.0.0.1:0", &port)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fail("server: %s", mrpc_strerror(rc));
    report("calls-setup", false);
    mrpc_server_del(srv);
    return;
  }
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  if ((rc = mrpc_channel_new(target, NULL, &ch)) != 0) {
    fail("channel: %s", mrpc_strerror(rc));
    report("calls-setup", false);
  } else {
    report("calls-unary", call_unary(ch));
    report("calls-server-streaming", call_server_streaming(ch));
    report("calls-client-streaming", call_client_streaming(ch));
    report("calls-bidi", call_bidi(ch));
  }
  mrpc_channel_del(ch);
  mrpc_server_shutdown(srv, 1000);
  mrpc_server_del(srv);
  report("calls-both-styles-refused", check_both_styles_refused());
}

int main(void) {
  report("tables", check_tables());
  report("descriptors", check_files());
  report("symbols", check_symbols());
  check_calls();
  return g_failed ? 1 : 0;
}
