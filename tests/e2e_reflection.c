/* End to end: server reflection (lib/reflection.c), grpc.reflection.v1 and
 * v1alpha, through our client and our server.  Every call has a deadline.
 *
 *   e2e_reflection              the cmocka suite
 *   e2e_reflection --serve ...  a server for tests/examples/services.sh
 *                               (tests/services/serve.h)
 *
 * Besides the generated descriptors (test.proto, the library's own) the
 * server knows a few files built here with descriptor.proto's C: an import
 * graph (deps/a.proto -> b, c; b -> c; d -> b) and extensions (ext.proto,
 * ext2.proto).
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include "codegen/google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.mrpc.h"
#include "grpc/reflection/v1alpha/reflection.mrpc.h"
#include "services/serve.h"
#include "test.mrpc.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;
typedef Google__Protobuf__FileDescriptorProto FileProto;
#define RESP_CASE(x) \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x
#define REQ_CASE(x) \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x

/* ---- hand-made descriptors ---- */

typedef struct hfile {
  mrpc_file_descriptor fd;
  const mrpc_file_descriptor *deps[4];
  uint8_t *data;
} hfile;

enum { F_A, F_B, F_C, F_D, F_EXT, F_EXT2, F_COUNT };
static hfile g_files[F_COUNT];

/* A proto2 file: one message (msg, may be NULL) with an optional field of
 * type field_type (may be NULL), extension range 100..999 when ranged, one
 * service svc with method "Do" (may be NULL), and extensions of extendee
 * numbered ext_nums (top level) / nested_ext (inside the message). */
static void make_file(hfile *f, const char *name, const char *pkg,
                      const char *msg, const char *field_type, int ranged,
                      const char *svc, const char *extendee,
                      const int *ext_nums, size_t n_ext, int nested_ext,
                      hfile *const *deps, size_t n_deps) {
  FileProto fp = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__DescriptorProto m = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__DescriptorProto *pm = &m;
  Google__Protobuf__FieldDescriptorProto fld =
      GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__FieldDescriptorProto *pfld = &fld;
  Google__Protobuf__DescriptorProto__ExtensionRange rng =
      GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__EXTENSION_RANGE__INIT;
  Google__Protobuf__DescriptorProto__ExtensionRange *prng = &rng;
  Google__Protobuf__ServiceDescriptorProto s =
      GOOGLE__PROTOBUF__SERVICE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__ServiceDescriptorProto *ps = &s;
  Google__Protobuf__MethodDescriptorProto md =
      GOOGLE__PROTOBUF__METHOD_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__MethodDescriptorProto *pmd = &md;
  Google__Protobuf__FieldDescriptorProto ext[4], *pext[4], nested;
  Google__Protobuf__FieldDescriptorProto *pnested = &nested;
  char *depnames[4];
  char names[4][32], type_name[64], io[64];

  fp.name = (char *)name;
  fp.package = (char *)pkg;
  fp.syntax = "proto2";
  for (size_t i = 0; i < n_deps; i++) depnames[i] = (char *)deps[i]->fd.name;
  fp.n_dependency = n_deps;
  fp.dependency = depnames;
  if (msg) {
    m.name = (char *)msg;
    if (field_type) {
      fld.name = "f";
      fld.has_number = 1;
      fld.number = 1;
      fld.has_label = 1;
      fld.label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
      fld.has_type = 1;
      fld.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE;
      snprintf(type_name, sizeof type_name, ".%s", field_type);
      fld.type_name = type_name;
      m.n_field = 1;
      m.field = &pfld;
    }
    if (ranged) {
      rng.has_start = rng.has_end = 1;
      rng.start = 100;
      rng.end = 1000;
      m.n_extension_range = 1;
      m.extension_range = &prng;
    }
    if (nested_ext) {
      google__protobuf__field_descriptor_proto__init(&nested);
      nested.name = "nested_ext";
      nested.has_number = 1;
      nested.number = nested_ext;
      nested.has_label = 1;
      nested.label =
          GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
      nested.has_type = 1;
      nested.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32;
      nested.extendee = (char *)extendee;
      m.n_extension = 1;
      m.extension = &pnested;
    }
    fp.n_message_type = 1;
    fp.message_type = &pm;
  }
  if (svc) {
    s.name = (char *)svc;
    md.name = "Do";
    snprintf(io, sizeof io, ".%s.%s", pkg, msg);
    md.input_type = io;
    md.output_type = io;
    s.n_method = 1;
    s.method = &pmd;
    fp.n_service = 1;
    fp.service = &ps;
  }
  for (size_t i = 0; i < n_ext; i++) {
    google__protobuf__field_descriptor_proto__init(&ext[i]);
    snprintf(names[i], sizeof names[i], "ext_%d", ext_nums[i]);
    ext[i].name = names[i];
    ext[i].has_number = 1;
    ext[i].number = ext_nums[i];
    ext[i].has_label = 1;
    ext[i].label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
    ext[i].has_type = 1;
    ext[i].type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32;
    ext[i].extendee = (char *)extendee;
    pext[i] = &ext[i];
  }
  fp.n_extension = n_ext;
  fp.extension = pext;

  size_t len = google__protobuf__file_descriptor_proto__get_packed_size(&fp);
  f->data = e2e_xmalloc(len);
  google__protobuf__file_descriptor_proto__pack(&fp, f->data);
  f->fd.name = name;
  f->fd.data = f->data;
  f->fd.len = len;
  for (size_t i = 0; i < n_deps; i++) f->deps[i] = &deps[i]->fd;
  f->fd.n_deps = n_deps;
  f->fd.deps = f->deps;
}

static void make_files(void) {
  hfile *c_deps[] = {&g_files[F_C]};
  hfile *a_deps[] = {&g_files[F_B], &g_files[F_C]};
  hfile *d_deps[] = {&g_files[F_B]};
  hfile *e2_deps[] = {&g_files[F_EXT]};
  static const int ext_nums[] = {100, 101};
  static const int ext2_nums[] = {300};
  make_file(&g_files[F_C], "deps/c.proto", "deps", "C", NULL, 0, NULL, NULL,
            NULL, 0, 0, NULL, 0);
  make_file(&g_files[F_B], "deps/b.proto", "deps", "B", "deps.C", 0, NULL,
            NULL, NULL, 0, 0, c_deps, 1);
  make_file(&g_files[F_A], "deps/a.proto", "deps", "A", "deps.B", 0, "SvcA",
            NULL, NULL, 0, 0, a_deps, 2);
  make_file(&g_files[F_D], "deps/d.proto", "deps.d", "D", "deps.B", 0, NULL,
            NULL, NULL, 0, 0, d_deps, 1);
  make_file(&g_files[F_EXT], "ext.proto", "ext", "Base", NULL, 1, NULL,
            ".ext.Base", ext_nums, 2, 200, NULL, 0);
  make_file(&g_files[F_EXT2], "ext2.proto", "ext2", NULL, NULL, 0, NULL,
            ".ext.Base", ext2_nums, 1, 0, e2_deps, 1);
}

static void free_files(void) {
  for (int i = 0; i < F_COUNT; i++) free(g_files[i].data);
}

/* ---- fixture ---- */

static mrpc_server *g_server;
static mrpc_reflection *g_refl;
static mrpc_health *g_health;
static mrpc_channel *g_chan;
static Grpc__Testing__TestService_MrpcHandlers g_ts;

static int setup(void **state) {
  (void)state;
  make_files();
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  assert_int_equal(mrpc_server_new(&o, &g_server), 0);
  assert_int_equal(mrpc_reflection_new(&g_refl), 0);
  assert_int_equal(mrpc_health_new(&g_health), 0);
  g_ts.unary_call = serve_unary;
  assert_int_equal(grpc__testing__test_service__mrpc_register(g_server, &g_ts),
                   0);
  mrpc_method_handler ev = {e2e_event_echo, NULL, NULL};
  assert_int_equal(mrpc_server_add_method(
                       g_server, &e2e_methods[E2E_EVENT][MRPC_UNARY], &ev),
                   0);
  assert_int_equal(mrpc_health_register(g_server, g_health), 0);
  assert_int_equal(mrpc_reflection_register(g_server, g_refl), 0);
  assert_int_equal(mrpc_reflection_add_file(g_refl, &test__mrpc_file), 0);
  /* a pulls in b and c; d, ext and ext2 (-> ext) by themselves. */
  assert_int_equal(mrpc_reflection_add_file(g_refl, &g_files[F_A].fd), 0);
  assert_int_equal(mrpc_reflection_add_file(g_refl, &g_files[F_D].fd), 0);
  assert_int_equal(mrpc_reflection_add_file(g_refl, &g_files[F_EXT2].fd), 0);
  int port = 0;
  assert_int_equal(mrpc_server_listen(g_server, "127.0.0.1:0", &port), 0);
  assert_int_equal(mrpc_server_start(g_server), 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  g_chan = e2e_channel(target, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mrpc_channel_del(g_chan);
  mrpc_server_del(g_server);
  mrpc_reflection_del(g_refl);
  mrpc_health_del(g_health);
  free_files();
  return 0;
}

/* ---- client helpers (v1 and v1alpha, blocking) ---- */

typedef struct rstream {
  mrpc_stream *s;
  int alpha;
} rstream;

static rstream ropen(int alpha) {
  rstream r = {NULL, alpha};
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  if (alpha)
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__server_reflection_info__open(
            g_chan, &o, &r.s),
        0);
  else
    assert_int_equal(
        grpc__reflection__v1__server_reflection__server_reflection_info__open(
            g_chan, &o, &r.s),
        0);
  return r;
}

/* Sends req (a v1 message; as v1alpha on an alpha stream). */
static void rsend(rstream *r, const Req *req) {
  if (!r->alpha) {
    assert_int_equal(
        grpc__reflection__v1__server_reflection__server_reflection_info__stream_send_request(
            r->s, req),
        0);
    return;
  }
  uint8_t buf[1024];
  size_t len = grpc__reflection__v1__server_reflection_request__pack(req, buf);
  Grpc__Reflection__V1alpha__ServerReflectionRequest *a =
      grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len,
                                                                   buf);
  assert_non_null(a);
  assert_int_equal(
      grpc__reflection__v1alpha__server_reflection__server_reflection_info__stream_send_request(
          r->s, a),
      0);
  grpc__reflection__v1alpha__server_reflection_request__free_unpacked(a, NULL);
}

/* The next answer, as v1 (free with ..._response__free_unpacked). */
static Resp *rrecv(rstream *r) {
  ProtobufCMessage *m = NULL;
  assert_int_equal(mrpc_stream_recv(r->s, &m), 1);
  if (!r->alpha) return (Resp *)m;
  assert_ptr_equal(m->descriptor,
                   &grpc__reflection__v1alpha__server_reflection_response__descriptor);
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = e2e_xmalloc(len);
  protobuf_c_message_pack(m, buf);
  protobuf_c_message_free_unpacked(m, NULL);
  Resp *v1 = grpc__reflection__v1__server_reflection_response__unpack(NULL, len,
                                                                      buf);
  free(buf);
  assert_non_null(v1);
  return v1;
}

static void rclose(rstream *r) {
  assert_int_equal(mrpc_stream_close_send(r->s), 0);
  ProtobufCMessage *m = NULL;
  assert_int_equal(mrpc_stream_recv(r->s, &m), 0);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(r->s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  mrpc_status_free(&st);
}

static Resp *ask(rstream *r, int kind, const char *arg) {
  Req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.host = "localhost";
  req.message_request_case = kind;
  switch (kind) {
  case REQ_CASE(FILE_BY_FILENAME): req.file_by_filename = (char *)arg; break;
  case REQ_CASE(FILE_CONTAINING_SYMBOL):
    req.file_containing_symbol = (char *)arg;
    break;
  case REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE):
    req.all_extension_numbers_of_type = (char *)arg;
    break;
  case REQ_CASE(LIST_SERVICES): req.list_services = (char *)arg; break;
  default: break;
  }
  rsend(r, &req);
  Resp *resp = rrecv(r);
  /* The request comes back, and the host. */
  assert_non_null(resp->original_request);
  assert_int_equal(resp->original_request->message_request_case, kind);
  assert_string_equal(resp->valid_host, "localhost");
  return resp;
}

static Resp *ask_ext(rstream *r, const char *type, int num) {
  Req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  Grpc__Reflection__V1__ExtensionRequest e =
      GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
  e.containing_type = (char *)type;
  e.extension_number = num;
  req.message_request_case = REQ_CASE(FILE_CONTAINING_EXTENSION);
  req.file_containing_extension = &e;
  rsend(r, &req);
  return rrecv(r);
}

static void rfree(Resp *r) {
  grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
}

/* Asserts resp carries exactly the files named in want (order kept). */
static void assert_files(Resp *resp, const char *const *want, size_t n) {
  assert_int_equal(resp->message_response_case,
                   RESP_CASE(FILE_DESCRIPTOR_RESPONSE));
  const Grpc__Reflection__V1__FileDescriptorResponse *f =
      resp->file_descriptor_response;
  assert_int_equal(f->n_file_descriptor_proto, n);
  for (size_t i = 0; i < n; i++) {
    FileProto *fp = google__protobuf__file_descriptor_proto__unpack(
        NULL, f->file_descriptor_proto[i].len,
        f->file_descriptor_proto[i].data);
    assert_non_null(fp);
    assert_string_equal(fp->name, want[i]);
    google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
  }
}

/* One file asked by symbol, on a fresh stream: its name. */
static void assert_symbol_in(int alpha, const char *symbol, const char *file) {
  rstream r = ropen(alpha);
  Resp *resp = ask(&r, REQ_CASE(FILE_CONTAINING_SYMBOL), symbol);
  if (resp->message_response_case != RESP_CASE(FILE_DESCRIPTOR_RESPONSE))
    fail_msg("symbol %s: no file", symbol);
  /* The file first, then its imports. */
  const Grpc__Reflection__V1__FileDescriptorResponse *f =
      resp->file_descriptor_response;
  assert_true(f->n_file_descriptor_proto >= 1);
  FileProto *fp = google__protobuf__file_descriptor_proto__unpack(
      NULL, f->file_descriptor_proto[0].len, f->file_descriptor_proto[0].data);
  assert_non_null(fp);
  assert_string_equal(fp->name, file);
  google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
  rfree(resp);
  rclose(&r);
}

static void assert_error(Resp *resp, int code) {
  assert_int_equal(resp->message_response_case, RESP_CASE(ERROR_RESPONSE));
  assert_int_equal(resp->error_response->error_code, code);
  assert_true(strlen(resp->error_response->error_message) > 0);
}

/* ---- tests ---- */

static void check_list(int alpha) {
  static const char *const want[] = {
      "e2e.Event",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "grpc.testing.TestService",
  };
  rstream r = ropen(alpha);
  Resp *resp = ask(&r, REQ_CASE(LIST_SERVICES), "*");
  assert_int_equal(resp->message_response_case, RESP_CASE(LIST_SERVICES_RESPONSE));
  const Grpc__Reflection__V1__ListServiceResponse *l =
      resp->list_services_response;
  assert_int_equal(l->n_service, sizeof want / sizeof *want);
  for (size_t i = 0; i < l->n_service; i++)
    assert_string_equal(l->service[i]->name, want[i]);
  rfree(resp);
  rclose(&r);
}

static void test_list_services(void **state) {
  (void)state;
  check_list(0);
  check_list(1);
}

static void test_file_by_filename(void **state) {
  (void)state;
  for (int alpha = 0; alpha < 2; alpha++) {
    rstream r = ropen(alpha);
    Resp *resp = ask(&r, REQ_CASE(FILE_BY_FILENAME), "test.proto");
    assert_int_equal(resp->message_response_case,
                     RESP_CASE(FILE_DESCRIPTOR_RESPONSE));
    assert_int_equal(resp->file_descriptor_response->n_file_descriptor_proto,
                     1);
    ProtobufCBinaryData *b =
        &resp->file_descriptor_response->file_descriptor_proto[0];
    /* The embedded bytes, as they are. */
    assert_int_equal(b->len, test__mrpc_file.len);
    assert_memory_equal(b->data, test__mrpc_file.data, b->len);
    FileProto *fp =
        google__protobuf__file_descriptor_proto__unpack(NULL, b->len, b->data);
    assert_non_null(fp);
    assert_string_equal(fp->package, "grpc.testing");
    assert_int_equal(fp->n_service, 2);
    google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
    rfree(resp);
    /* The stream goes on after an unknown name. */
    resp = ask(&r, REQ_CASE(FILE_BY_FILENAME), "no/such.proto");
    assert_error(resp, MRPC_STATUS_NOT_FOUND);
    rfree(resp);
    const char *h = "grpc/health/v1/health.proto";
    resp = ask(&r, REQ_CASE(FILE_BY_FILENAME), h);
    assert_files(resp, &h, 1);
    rfree(resp);
    rclose(&r);
  }
}

static void test_file_containing_symbol(void **state) {
  (void)state;
  static const struct {
    const char *sym, *file;
  } cases[] = {
      {"grpc.testing.TestService", "test.proto"},
      {"grpc.testing.TestService.UnaryCall", "test.proto"},
      {"grpc.testing.UnimplementedService", "test.proto"},
      {"grpc.testing.SimpleRequest", "test.proto"},
      {"grpc.testing.SimpleRequest.response_size", "test.proto"},
      {"grpc.testing.PayloadType", "test.proto"},
      {"grpc.testing.COMPRESSABLE", "test.proto"},
      {"grpc.health.v1.Health", "grpc/health/v1/health.proto"},
      {"grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthCheckResponse.ServingStatus",
       "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN",
       "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthListResponse.StatusesEntry",
       "grpc/health/v1/health.proto"},
      {"grpc.reflection.v1.ServerReflection",
       "grpc/reflection/v1/reflection.proto"},
      {"grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo",
       "grpc/reflection/v1alpha/reflection.proto"},
      {"grpc.reflection.v1.ServerReflectionRequest.message_request",
       "grpc/reflection/v1/reflection.proto"},
      {"deps.SvcA.Do", "deps/a.proto"},
      {"deps.d.D", "deps/d.proto"},
      {"ext.ext_100", "ext.proto"},
      {"ext.Base.nested_ext", "ext.proto"},
      {"ext2.ext_300", "ext2.proto"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    assert_symbol_in(i & 1, cases[i].sym, cases[i].file);
  static const char *const unknown[] = {
      "no.Such", "grpc.testing", "grpc.testing.TestService.NoMethod",
      ".grpc.testing.TestService", "", "grpc.testing.SimpleRequest.",
  };
  rstream r = ropen(0);
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
    Resp *resp = ask(&r, REQ_CASE(FILE_CONTAINING_SYMBOL), unknown[i]);
    assert_error(resp, MRPC_STATUS_NOT_FOUND);
    rfree(resp);
  }
  rclose(&r);
}

/* Dependencies come along, transitively, each file once per stream. */
static void test_transitive_dependencies_once_per_stream(void **state) {
  (void)state;
  for (int alpha = 0; alpha < 2; alpha++) {
    rstream r = ropen(alpha);
    Resp *resp = ask(&r, REQ_CASE(FILE_BY_FILENAME), "deps/a.proto");
    static const char *const abc[] = {"deps/a.proto", "deps/b.proto",
                                      "deps/c.proto"};
    assert_files(resp, abc, 3);
    rfree(resp);
    /* d imports b (sent already, as is its import c). */
    resp = ask(&r, REQ_CASE(FILE_CONTAINING_SYMBOL), "deps.d.D");
    static const char *const d[] = {"deps/d.proto"};
    assert_files(resp, d, 1);
    rfree(resp);
    /* The file asked for always comes. */
    resp = ask(&r, REQ_CASE(FILE_BY_FILENAME), "deps/b.proto");
    static const char *const b[] = {"deps/b.proto"};
    assert_files(resp, b, 1);
    rfree(resp);
    rclose(&r);
    /* A new stream starts afresh. */
    r = ropen(alpha);
    resp = ask(&r, REQ_CASE(FILE_CONTAINING_SYMBOL), "deps.d.D");
    static const char *const dbc[] = {"deps/d.proto", "deps/b.proto",
                                      "deps/c.proto"};
    assert_files(resp, dbc, 3);
    rfree(resp);
    rclose(&r);
  }
}

static void test_extensions(void **state) {
  (void)state;
  rstream r = ropen(0);
  static const char *const ext[] = {"ext.proto"};
  static const char *const ext2[] = {"ext2.proto", "ext.proto"};
  Resp *resp = ask_ext(&r, "ext.Base", 300);
  assert_files(resp, ext2, 2);
  rfree(resp);
  resp = ask_ext(&r, "ext.Base", 100);
  assert_files(resp, ext, 1);
  rfree(resp);
  resp = ask_ext(&r, "ext.Base", 200); /* declared inside a message */
  assert_files(resp, ext, 1);
  rfree(resp);
  resp = ask_ext(&r, "ext.Base", 555);
  assert_error(resp, MRPC_STATUS_NOT_FOUND);
  rfree(resp);
  resp = ask_ext(&r, "no.Such", 100);
  assert_error(resp, MRPC_STATUS_NOT_FOUND);
  rfree(resp);

  resp = ask(&r, REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE), "ext.Base");
  assert_int_equal(resp->message_response_case,
                   RESP_CASE(ALL_EXTENSION_NUMBERS_RESPONSE));
  const Grpc__Reflection__V1__ExtensionNumberResponse *n =
      resp->all_extension_numbers_response;
  assert_string_equal(n->base_type_name, "ext.Base");
  int seen = 0;
  assert_int_equal(n->n_extension_number, 4);
  for (size_t i = 0; i < n->n_extension_number; i++)
    seen |= n->extension_number[i] == 100   ? 1
            : n->extension_number[i] == 101 ? 2
            : n->extension_number[i] == 200 ? 4
            : n->extension_number[i] == 300 ? 8
                                            : 16;
  assert_int_equal(seen, 15);
  rfree(resp);
  /* A message without extensions: an empty list. */
  resp = ask(&r, REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE),
             "grpc.testing.SimpleRequest");
  assert_int_equal(resp->message_response_case,
                   RESP_CASE(ALL_EXTENSION_NUMBERS_RESPONSE));
  assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
  rfree(resp);
  /* Not a message type. */
  resp = ask(&r, REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE),
             "grpc.testing.PayloadType");
  assert_error(resp, MRPC_STATUS_NOT_FOUND);
  rfree(resp);
  resp = ask(&r, REQ_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE), "no.Such");
  assert_error(resp, MRPC_STATUS_NOT_FOUND);
  rfree(resp);
  rclose(&r);
}

static void test_request_without_a_kind(void **state) {
  (void)state;
  for (int alpha = 0; alpha < 2; alpha++) {
    rstream r = ropen(alpha);
    Resp *resp = ask(&r, 0, NULL);
    assert_error(resp, MRPC_STATUS_UNIMPLEMENTED);
    rfree(resp);
    resp = ask(&r, REQ_CASE(LIST_SERVICES), "");
    assert_int_equal(resp->message_response_case,
                     RESP_CASE(LIST_SERVICES_RESPONSE));
    rfree(resp);
    rclose(&r);
  }
}

/* Many requests before any read: answered in order. */
static void test_pipelined_requests(void **state) {
  (void)state;
  enum { N = 40 };
  rstream r = ropen(0);
  Req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  char names[N][32];
  for (int i = 0; i < N; i++) {
    req.message_request_case = REQ_CASE(FILE_CONTAINING_SYMBOL);
    snprintf(names[i], sizeof names[i], "%s",
             i % 2 ? "grpc.testing.SimpleResponse" : "no.Such");
    req.file_containing_symbol = names[i];
    rsend(&r, &req);
  }
  assert_int_equal(mrpc_stream_close_send(r.s), 0);
  for (int i = 0; i < N; i++) {
    Resp *resp = rrecv(&r);
    assert_string_equal(resp->original_request->file_containing_symbol,
                        names[i]);
    assert_int_equal(resp->message_response_case,
                     i % 2 ? RESP_CASE(FILE_DESCRIPTOR_RESPONSE)
                           : RESP_CASE(ERROR_RESPONSE));
    rfree(resp);
  }
  ProtobufCMessage *m = NULL;
  assert_int_equal(mrpc_stream_recv(r.s, &m), 0);
  mrpc_status st;
  mrpc_stream_finish(r.s, &st);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  mrpc_status_free(&st);
}

/* A client that asks and asks without reading is cut off (the server's
 * memory stays bounded); what was answered before arrives first. */
static void test_client_that_does_not_read_is_cut_off(void **state) {
  (void)state;
  enum { N = 3000 };
  rstream r = ropen(0);
  Req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case = REQ_CASE(FILE_BY_FILENAME);
  req.file_by_filename = "test.proto";
  int sent = 0;
  for (; sent < N; sent++)
    if (grpc__reflection__v1__server_reflection__server_reflection_info__stream_send_request(
            r.s, &req) != 0)
      break;
  int got = 0;
  ProtobufCMessage *m = NULL;
  while (mrpc_stream_recv(r.s, &m) == 1) {
    protobuf_c_message_free_unpacked(m, NULL);
    got++;
  }
  mrpc_status st;
  mrpc_stream_finish(r.s, &st);
  assert_int_equal(st.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(got > 0 && got < N);
  mrpc_status_free(&st);
}

static void test_add_file_errors(void **state) {
  (void)state;
  mrpc_reflection *r;
  assert_int_equal(mrpc_reflection_new(NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_reflection_new(&r), 0);
  assert_int_equal(mrpc_reflection_add_file(r, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_reflection_add_file(NULL, &test__mrpc_file),
                   MRPC_ERR_INVAL);
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  mrpc_file_descriptor bad = {"junk.proto", junk, sizeof junk, 0, NULL};
  assert_int_equal(mrpc_reflection_add_file(r, &bad), MRPC_ERR_PARSE);
  mrpc_file_descriptor noname = {"", junk, 0, 0, NULL};
  assert_int_equal(mrpc_reflection_add_file(r, &noname), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_reflection_add_file(r, &test__mrpc_file), 0);
  assert_int_equal(mrpc_reflection_add_file(r, &test__mrpc_file), 0);
  /* The same bytes under another pointer: fine; other bytes: EXISTS. */
  mrpc_file_descriptor same = test__mrpc_file;
  assert_int_equal(mrpc_reflection_add_file(r, &same), 0);
  mrpc_file_descriptor other = g_files[F_C].fd;
  other.name = "test.proto";
  assert_int_equal(mrpc_reflection_add_file(r, &other), MRPC_ERR_EXISTS);
  /* Its own files are there from the start. */
  mrpc_file_descriptor self = grpc__reflection__v1__reflection__mrpc_file;
  assert_int_equal(mrpc_reflection_add_file(r, &self), 0);
  /* Registration. */
  mrpc_server *srv;
  assert_int_equal(mrpc_server_new(NULL, &srv), 0);
  assert_int_equal(mrpc_reflection_register(NULL, r), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_reflection_register(srv, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_reflection_register(srv, r), 0);
  assert_int_equal(mrpc_reflection_register(srv, r), MRPC_ERR_EXISTS);
  mrpc_server_del(srv);
  mrpc_reflection_del(r);
  mrpc_reflection_del(NULL);
}

/* The library's own descriptors say what the code serves. */
static void test_reflected_service_matches_the_methods(void **state) {
  (void)state;
  rstream r = ropen(0);
  Resp *resp = ask(&r, REQ_CASE(FILE_CONTAINING_SYMBOL),
                   "grpc.health.v1.Health");
  assert_int_equal(resp->message_response_case,
                   RESP_CASE(FILE_DESCRIPTOR_RESPONSE));
  ProtobufCBinaryData *b =
      &resp->file_descriptor_response->file_descriptor_proto[0];
  FileProto *fp =
      google__protobuf__file_descriptor_proto__unpack(NULL, b->len, b->data);
  assert_non_null(fp);
  assert_int_equal(fp->n_service, 1);
  const Google__Protobuf__ServiceDescriptorProto *s = fp->service[0];
  assert_string_equal(s->name, "Health");
  int seen = 0;
  for (size_t i = 0; i < s->n_method; i++) {
    const Google__Protobuf__MethodDescriptorProto *m = s->method[i];
    if (!strcmp(m->name, "Check")) seen |= 1;
    if (!strcmp(m->name, "List")) seen |= 2;
    if (!strcmp(m->name, "Watch")) {
      seen |= 4;
      assert_true(m->has_server_streaming && m->server_streaming);
    }
    if (strcmp(m->name, "Watch"))
      assert_false(m->has_server_streaming && m->server_streaming);
  }
  assert_int_equal(seen, 7);
  google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
  rfree(resp);
  rclose(&r);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--serve") == 0)
    return services_serve(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_services),
      cmocka_unit_test(test_file_by_filename),
      cmocka_unit_test(test_file_containing_symbol),
      cmocka_unit_test(test_transitive_dependencies_once_per_stream),
      cmocka_unit_test(test_extensions),
      cmocka_unit_test(test_request_without_a_kind),
      cmocka_unit_test(test_pipelined_requests),
      cmocka_unit_test(test_client_that_does_not_read_is_cut_off),
      cmocka_unit_test(test_add_file_errors),
      cmocka_unit_test(test_reflected_service_matches_the_methods),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
