/* Server reflection, grpc.reflection.v1 and v1alpha: the index of the
 * embedded descriptors and the event-driven ServerReflectionInfo handler.
 *
 * mrpc_reflection_add_file parses each FileDescriptorProto once with
 * protoc-c's C for descriptor.proto (the plugin's, $(BUILD)/gen/codegen) and
 * keeps a sorted table of symbols and one of extensions; the handlers only
 * look things up, under the object's mutex.
 *
 * The two packages have the same messages, so one handler serves both:
 * a v1alpha request is re-read as v1, the answer is built as v1, packed,
 * and read back with the call's own response type to be sent.  Answers wait
 * in a queue (as packed bytes) while the call's send queue is full; a
 * client that keeps asking without reading is cut off (RESOURCE_EXHAUSTED)
 * when MAX_WAITING answers wait.
 * docs/services.md. */
#include "server_int.h"

#include <minirpc/reflection.h>

#include "codegen/google/protobuf/descriptor.pb-c.h"
#include "grpc/health/v1/health.mrpc.h"
#include "grpc/reflection/v1/reflection.mrpc.h"
#include "grpc/reflection/v1alpha/reflection.mrpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define MAX_WAITING 64

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MessageProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;
typedef Grpc__Reflection__V1__ServerReflectionRequest Request;
typedef Grpc__Reflection__V1__ServerReflectionResponse Response;

enum sym_kind { SYM_MESSAGE, SYM_OTHER };

typedef struct sym {
  char *name; /* "pkg.Outer.Inner" */
  int kind;
  const mrpc_file_descriptor *file;
} sym;

typedef struct ext {
  char *extendee; /* "pkg.Type" */
  int32_t number;
  const mrpc_file_descriptor *file;
} ext;

typedef struct rreg {
  struct rreg *next;
  mrpc_reflection *r;
  mrpc_server *srv;
  Grpc__Reflection__V1__ServerReflection_MrpcHandlers v1;
  Grpc__Reflection__V1alpha__ServerReflection_MrpcHandlers v1alpha;
} rreg;

struct mrpc_reflection {
  pthread_mutex_t mu;
  const mrpc_file_descriptor **files;
  size_t n_files, cap_files;
  sym *syms;
  size_t n_syms, cap_syms;
  ext *exts;
  size_t n_exts, cap_exts;
  rreg *regs;
};

/* ---- the index (under r->mu) ---- */

static const mrpc_file_descriptor *find_file(const mrpc_reflection *r,
                                             const char *name) {
  for (size_t i = 0; i < r->n_files; i++)
    if (strcmp(r->files[i]->name, name) == 0) return r->files[i];
  return NULL;
}

static int sym_cmp(const void *a, const void *b) {
  return strcmp(((const sym *)a)->name, ((const sym *)b)->name);
}

static const sym *find_sym(const mrpc_reflection *r, const char *name) {
  sym key = {.name = (char *)name};
  return bsearch(&key, r->syms, r->n_syms, sizeof(sym), sym_cmp);
}

/* Index-building context: one file. */
typedef struct ictx {
  mrpc_reflection *r;
  const mrpc_file_descriptor *file;
  int oom;
} ictx;

static char *join(const char *scope, const char *name) {
  size_t a = scope ? strlen(scope) : 0, b = strlen(name);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  if (a) {
    memcpy(s, scope, a);
    s[a++] = '.';
  }
  memcpy(s + a, name, b + 1);
  return s;
}

/* Adds scope.name; returns the full name (owned by the table) or NULL. */
static const char *add_sym(ictx *c, const char *scope, const char *name,
                           int kind) {
  mrpc_reflection *r = c->r;
  if (c->oom || !name || !*name) return NULL;
  if (r->n_syms == r->cap_syms) {
    size_t cap = r->cap_syms ? 2 * r->cap_syms : 64;
    sym *a = realloc(r->syms, cap * sizeof *a);
    if (!a) {
      c->oom = 1;
      return NULL;
    }
    r->syms = a;
    r->cap_syms = cap;
  }
  char *full = join(scope, name);
  if (!full) {
    c->oom = 1;
    return NULL;
  }
  r->syms[r->n_syms++] = (sym){full, kind, c->file};
  return full;
}

static void add_ext(ictx *c, const char *scope, const FieldProto *f) {
  mrpc_reflection *r = c->r;
  add_sym(c, scope, f->name, SYM_OTHER);
  if (c->oom || !f->extendee || !f->has_number) return;
  if (r->n_exts == r->cap_exts) {
    size_t cap = r->cap_exts ? 2 * r->cap_exts : 16;
    ext *a = realloc(r->exts, cap * sizeof *a);
    if (!a) {
      c->oom = 1;
      return;
    }
    r->exts = a;
    r->cap_exts = cap;
  }
  /* protoc writes extendee fully qualified: ".pkg.Type". */
  const char *t = f->extendee[0] == '.' ? f->extendee + 1 : f->extendee;
  char *e = strdup(t);
  if (!e) {
    c->oom = 1;
    return;
  }
  r->exts[r->n_exts++] = (ext){e, f->number, c->file};
}

static void index_enum(ictx *c, const char *scope, const EnumProto *e) {
  add_sym(c, scope, e->name, SYM_OTHER);
  /* Enum values are siblings of their enum (protobuf scoping). */
  for (size_t i = 0; i < e->n_value; i++)
    add_sym(c, scope, e->value[i]->name, SYM_OTHER);
}

static void index_message(ictx *c, const char *scope, const MessageProto *m) {
  const char *full = add_sym(c, scope, m->name, SYM_MESSAGE);
  if (!full) return;
  for (size_t i = 0; i < m->n_field; i++)
    add_sym(c, full, m->field[i]->name, SYM_OTHER);
  for (size_t i = 0; i < m->n_oneof_decl; i++)
    add_sym(c, full, m->oneof_decl[i]->name, SYM_OTHER);
  for (size_t i = 0; i < m->n_nested_type; i++)
    index_message(c, full, m->nested_type[i]);
  for (size_t i = 0; i < m->n_enum_type; i++)
    index_enum(c, full, m->enum_type[i]);
  for (size_t i = 0; i < m->n_extension; i++) add_ext(c, full, m->extension[i]);
}

static void index_file(ictx *c, const FileProto *fp) {
  const char *pkg = fp->package && *fp->package ? fp->package : NULL;
  for (size_t i = 0; i < fp->n_message_type; i++)
    index_message(c, pkg, fp->message_type[i]);
  for (size_t i = 0; i < fp->n_enum_type; i++)
    index_enum(c, pkg, fp->enum_type[i]);
  for (size_t i = 0; i < fp->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fp->service[i];
    const char *full = add_sym(c, pkg, s->name, SYM_OTHER);
    for (size_t j = 0; full && j < s->n_method; j++)
      add_sym(c, full, s->method[j]->name, SYM_OTHER);
  }
  for (size_t i = 0; i < fp->n_extension; i++)
    add_ext(c, pkg, fp->extension[i]);
}

static int add_locked(mrpc_reflection *r, const mrpc_file_descriptor *f,
                      int depth) {
  if (!f || !f->name || !*f->name || (!f->data && f->len) ||
      (f->n_deps && !f->deps) || depth > 64)
    return MRPC_ERR_INVAL;
  const mrpc_file_descriptor *have = find_file(r, f->name);
  if (have) {
    if (have == f || (have->len == f->len &&
                      (!f->len || memcmp(have->data, f->data, f->len) == 0)))
      return 0;
    return MRPC_ERR_EXISTS;
  }
  FileProto *fp =
      google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->data);
  if (!fp) return MRPC_ERR_PARSE;
  if (r->n_files == r->cap_files) {
    size_t cap = r->cap_files ? 2 * r->cap_files : 16;
    const mrpc_file_descriptor **a = realloc(r->files, cap * sizeof *a);
    if (!a) {
      google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
      return MRPC_ERR_NOMEM;
    }
    r->files = a;
    r->cap_files = cap;
  }
  size_t n_syms = r->n_syms, n_exts = r->n_exts;
  ictx c = {r, f, 0};
  index_file(&c, fp);
  google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
  if (c.oom) { /* take back what this file added */
    while (r->n_syms > n_syms) free(r->syms[--r->n_syms].name);
    while (r->n_exts > n_exts) free(r->exts[--r->n_exts].extendee);
    qsort(r->syms, r->n_syms, sizeof(sym), sym_cmp);
    return MRPC_ERR_NOMEM;
  }
  qsort(r->syms, r->n_syms, sizeof(sym), sym_cmp);
  r->files[r->n_files++] = f;
  for (size_t i = 0; i < f->n_deps; i++) {
    int rc = add_locked(r, f->deps[i], depth + 1);
    if (rc) return rc;
  }
  return 0;
}

/* ---- one stream (I/O thread) ---- */

typedef struct waiting {
  struct waiting *next;
  size_t len;
  uint8_t data[];
} waiting;

typedef struct rcall {
  rreg *reg;
  const ProtobufCMessageDescriptor *resp_desc; /* the call's (v1 / v1alpha) */
  const mrpc_file_descriptor **sent; /* files sent on this stream */
  size_t n_sent, cap_sent;
  waiting *head, *tail;
  size_t n_waiting;
  int half_closed, finished;
} rcall;

static int was_sent(const rcall *rc, const mrpc_file_descriptor *f) {
  for (size_t i = 0; i < rc->n_sent; i++)
    if (rc->sent[i] == f) return 1;
  return 0;
}

static void error_response(Response *resp, Grpc__Reflection__V1__ErrorResponse *e,
                           mrpc_status_code code, const char *msg) {
  grpc__reflection__v1__error_response__init(e);
  e->error_code = (int32_t)code;
  e->error_message = (char *)msg;
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = e;
}

/* Fills out with f and the transitive imports not sent on the stream yet
 * (f always), marking them sent.  Returns the count or -1 (no memory). */
static ssize_t collect_files(rcall *rc, const mrpc_file_descriptor *f,
                             const mrpc_file_descriptor ***out) {
  size_t n = 0, cap = 8, next = 0;
  const mrpc_file_descriptor **list = malloc(cap * sizeof *list);
  if (!list) return -1;
  list[n++] = f;
  /* Breadth first; list doubles as the queue and the "in this answer" set. */
  while (next < n) {
    const mrpc_file_descriptor *cur = list[next++];
    for (size_t i = 0; i < cur->n_deps; i++) {
      const mrpc_file_descriptor *d = cur->deps[i];
      int seen = was_sent(rc, d);
      for (size_t j = 0; !seen && j < n; j++) seen = list[j] == d;
      if (seen) continue;
      if (n == cap) {
        const mrpc_file_descriptor **a = realloc(list, 2 * cap * sizeof *a);
        if (!a) {
          free(list);
          return -1;
        }
        list = a;
        cap *= 2;
      }
      list[n++] = d;
    }
  }
  if (rc->n_sent + n > rc->cap_sent) {
    size_t c2 = (rc->n_sent + n) * 2;
    const mrpc_file_descriptor **a = realloc(rc->sent, c2 * sizeof *a);
    if (!a) {
      free(list);
      return -1;
    }
    rc->sent = a;
    rc->cap_sent = c2;
  }
  for (size_t i = 0; i < n; i++)
    if (!was_sent(rc, list[i])) rc->sent[rc->n_sent++] = list[i];
  *out = list;
  return (ssize_t)n;
}

/* Builds the answer to req and appends it, packed, to the waiting queue.
 * Returns 0 or MRPC_ERR_NOMEM. */
static int answer(rcall *rc, const Request *req) {
  mrpc_reflection *r = rc->reg->r;
  Response resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1__ErrorResponse err;
  Grpc__Reflection__V1__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1__ExtensionNumberResponse enr =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1__ListServiceResponse lsr =
      GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1__ServiceResponse *svcs = NULL, **psvcs = NULL;
  ProtobufCBinaryData *blobs = NULL;
  const mrpc_file_descriptor **files = NULL;
  int32_t *numbers = NULL;
  char msg[200];
  int oom = 0;

  resp.valid_host = req->host;
  resp.original_request = (Request *)req;
  const mrpc_file_descriptor *file = NULL;
  int file_request = 1;

  pthread_mutex_lock(&r->mu);
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    file = find_file(r, req->file_by_filename);
    if (!file)
      snprintf(msg, sizeof msg, "file not found: %.150s",
               req->file_by_filename);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const sym *s = find_sym(r, req->file_containing_symbol);
    file = s ? s->file : NULL;
    if (!file)
      snprintf(msg, sizeof msg, "symbol not found: %.150s",
               req->file_containing_symbol);
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
    const Grpc__Reflection__V1__ExtensionRequest *e =
        req->file_containing_extension;
    for (size_t i = 0; e && !file && i < r->n_exts; i++)
      if (r->exts[i].number == e->extension_number &&
          strcmp(r->exts[i].extendee, e->containing_type) == 0)
        file = r->exts[i].file;
    if (!file)
      snprintf(msg, sizeof msg, "extension not found: %.150s %d",
               e ? e->containing_type : "",
               e ? (int)e->extension_number : 0);
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    file_request = 0;
    const char *t = req->all_extension_numbers_of_type;
    const sym *s = find_sym(r, t);
    if (!s || s->kind != SYM_MESSAGE) {
      snprintf(msg, sizeof msg, "message type not found: %.150s", t);
      error_response(&resp, &err, MRPC_STATUS_NOT_FOUND, msg);
      break;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->n_exts; i++) n += !strcmp(r->exts[i].extendee, t);
    if (n && !(numbers = malloc(n * sizeof *numbers))) {
      oom = 1;
      break;
    }
    n = 0;
    for (size_t i = 0; i < r->n_exts; i++)
      if (!strcmp(r->exts[i].extendee, t)) numbers[n++] = r->exts[i].number;
    enr.base_type_name = (char *)t;
    enr.n_extension_number = n;
    enr.extension_number = numbers;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    resp.all_extension_numbers_response = &enr;
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
    file_request = 0;
    /* Paths are sorted, so the methods of a service are together. */
    const mrpc_server *srv = rc->reg->srv;
    size_t nm = mrpc__server_n_methods(srv), n = 0;
    svcs = calloc(nm ? nm : 1, sizeof *svcs);
    psvcs = calloc(nm ? nm : 1, sizeof *psvcs);
    if (!svcs || !psvcs) {
      oom = 1;
      break;
    }
    size_t prev_len = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < nm; i++) {
      const char *p = mrpc__server_method(srv, i)->path + 1;
      const char *slash = strchr(p, '/');
      size_t len = slash ? (size_t)(slash - p) : strlen(p);
      if (!len || (prev && len == prev_len && !memcmp(p, prev, len))) continue;
      prev = p;
      prev_len = len;
      grpc__reflection__v1__service_response__init(&svcs[n]);
      if (!(svcs[n].name = strndup(p, len))) {
        oom = 1;
        break;
      }
      psvcs[n] = &svcs[n];
      n++;
    }
    lsr.n_service = n;
    lsr.service = psvcs;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp.list_services_response = &lsr;
    break;
  }
  default:
    file_request = 0;
    error_response(&resp, &err, MRPC_STATUS_UNIMPLEMENTED,
                   "request kind not supported");
    break;
  }
  if (file_request && !oom) {
    if (!file) {
      error_response(&resp, &err, MRPC_STATUS_NOT_FOUND, msg);
    } else {
      ssize_t n = collect_files(rc, file, &files);
      if (n < 0 || !(blobs = calloc((size_t)n, sizeof *blobs))) {
        oom = 1;
      } else {
        for (ssize_t i = 0; i < n; i++) {
          blobs[i].data = (uint8_t *)files[i]->data;
          blobs[i].len = files[i]->len;
        }
        fdr.n_file_descriptor_proto = (size_t)n;
        fdr.file_descriptor_proto = blobs;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &fdr;
      }
    }
  }
  pthread_mutex_unlock(&r->mu);

  int rv = MRPC_ERR_NOMEM;
  if (!oom) {
    size_t len = protobuf_c_message_get_packed_size(&resp.base);
    waiting *w = malloc(sizeof *w + len);
    if (w) {
      w->next = NULL;
      w->len = protobuf_c_message_pack(&resp.base, w->data);
      if (rc->tail) rc->tail->next = w;
      else rc->head = w;
      rc->tail = w;
      rc->n_waiting++;
      rv = 0;
    }
  }
  for (size_t i = 0; svcs && i < lsr.n_service; i++) free(svcs[i].name);
  free(svcs);
  free(psvcs);
  free(blobs);
  free(files);
  free(numbers);
  return rv;
}

/* Sends what waits, until the call's queue is full; finishes after the
 * client's half-close once everything went. */
static void pump(mrpc_call *call, rcall *rc) {
  while (rc->head && !rc->finished) {
    waiting *w = rc->head;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(rc->resp_desc, NULL, w->len, w->data);
    if (!m) {
      rc->finished = 1;
      mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                       NULL, 0);
      return;
    }
    int rv = mrpc_call_send(call, m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rv == MRPC_ERR_AGAIN) return; /* on_writable */
    if (rv != 0) {
      rc->finished = 1; /* over (CLOSED) or can not go */
      if (rv != MRPC_ERR_CLOSED)
        mrpc_call_finish(call, MRPC_STATUS_INTERNAL, mrpc_strerror(rv), NULL,
                         0);
      return;
    }
    rc->head = w->next;
    if (!rc->head) rc->tail = NULL;
    rc->n_waiting--;
    free(w);
  }
  if (rc->half_closed && !rc->head && !rc->finished) {
    rc->finished = 1;
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  }
}

static void on_message(mrpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  rcall *rc = ctx;
  if (rc->finished) return;
  if (rc->n_waiting >= MAX_WAITING) {
    rc->finished = 1;
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED,
                     "too many answers waiting: the client does not read",
                     NULL, 0);
    return;
  }
  const Request *req = (const Request *)msg;
  Request *copy = NULL;
  if (msg->descriptor !=
      &grpc__reflection__v1__server_reflection_request__descriptor) {
    /* v1alpha: the same message under another name; read it as v1. */
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
      protobuf_c_message_pack(msg, buf);
      copy = grpc__reflection__v1__server_reflection_request__unpack(NULL, len,
                                                                     buf);
      free(buf);
    }
    req = copy;
  }
  int rv = req ? answer(rc, req) : MRPC_ERR_NOMEM;
  if (copy)
    grpc__reflection__v1__server_reflection_request__free_unpacked(copy, NULL);
  if (rv) {
    rc->finished = 1;
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  pump(call, rc);
}

static void on_half_close(mrpc_call *call, void *ctx) {
  rcall *rc = ctx;
  rc->half_closed = 1;
  pump(call, rc);
}

static void on_writable(mrpc_call *call, void *ctx) { pump(call, ctx); }

static void on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  rcall *rc = ctx;
  for (waiting *w = rc->head, *next; w; w = next) {
    next = w->next;
    free(w);
  }
  free(rc->sent);
  free(rc);
}

static void on_info(mrpc_call *call, void *user) {
  rcall *rc = calloc(1, sizeof *rc);
  if (!rc) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  rc->reg = user;
  rc->resp_desc = mrpc_call_method(call)->response;
  mrpc_call_ops ops = {.on_message = on_message,
                       .on_half_close = on_half_close,
                       .on_writable = on_writable,
                       .on_done = on_done};
  mrpc_call_set_ops(call, &ops, rc);
}

/* ---- API ---- */

int mrpc_reflection_new(mrpc_reflection **out) {
  if (!out) return MRPC_ERR_INVAL;
  mrpc_reflection *r = calloc(1, sizeof *r);
  if (!r) return MRPC_ERR_NOMEM;
  pthread_mutex_init(&r->mu, NULL);
  int rv;
  if ((rv = mrpc_reflection_add_file(
           r, &grpc__reflection__v1__reflection__mrpc_file)) ||
      (rv = mrpc_reflection_add_file(
           r, &grpc__reflection__v1alpha__reflection__mrpc_file)) ||
      (rv = mrpc_reflection_add_file(r, &grpc__health__v1__health__mrpc_file))) {
    mrpc_reflection_del(r);
    return rv;
  }
  *out = r;
  return 0;
}

void mrpc_reflection_del(mrpc_reflection *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n_syms; i++) free(r->syms[i].name);
  for (size_t i = 0; i < r->n_exts; i++) free(r->exts[i].extendee);
  free(r->syms);
  free(r->exts);
  free(r->files);
  for (rreg *g = r->regs, *next; g; g = next) {
    next = g->next;
    free(g);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

int mrpc_reflection_add_file(mrpc_reflection *r,
                             const mrpc_file_descriptor *file) {
  if (!r || !file) return MRPC_ERR_INVAL;
  pthread_mutex_lock(&r->mu);
  int rv = add_locked(r, file, 0);
  pthread_mutex_unlock(&r->mu);
  return rv;
}

int mrpc_reflection_register(mrpc_server *srv, mrpc_reflection *r) {
  if (!srv || !r) return MRPC_ERR_INVAL;
  rreg *g = calloc(1, sizeof *g);
  if (!g) return MRPC_ERR_NOMEM;
  g->r = r;
  g->srv = srv;
  g->v1.server_reflection_info = on_info;
  g->v1.user = g;
  g->v1alpha.server_reflection_info = on_info;
  g->v1alpha.user = g;
  int rv = grpc__reflection__v1__server_reflection__mrpc_register(srv, &g->v1);
  if (rv) {
    free(g);
    return rv;
  }
  /* v1 is registered and keeps &g->v1: g lives with r from here. */
  pthread_mutex_lock(&r->mu);
  g->next = r->regs;
  r->regs = g;
  pthread_mutex_unlock(&r->mu);
  return grpc__reflection__v1alpha__server_reflection__mrpc_register(
      srv, &g->v1alpha);
}
