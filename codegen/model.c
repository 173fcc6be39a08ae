/* protoc-gen-minirpc: the model of what is generated, and every check that
 * keeps the generated C correct.
 * SPDX-License-Identifier: Apache-2.0 */
#include "model.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "pbc_options.h"
#include "strbuf.h"

/* One C name the generated code (or protoc-c's code that it includes)
 * defines, and what made it: for the clash check. */
typedef struct name_use {
  char *name;
  const char *what; /* "method", "service", "file", "handler-table field" */
  const char *who;  /* full name of the method / service, or file name */
  const char *file; /* the .proto it comes from */
  size_t seq;       /* order of making: the report is deterministic */
} name_use;

typedef struct names {
  name_use *v;
  size_t n, cap;
} names;

typedef struct build {
  cg_model *m;
  char *error; /* the first failure */
  names global;
} build;

static void fail(build *b, const char *fmt, ...) CG_PRINTF(2, 3);
static void fail(build *b, const char *fmt, ...) {
  if (b->error) return;
  va_list ap;
  va_start(ap, fmt);
  b->error = cg_vfmt(fmt, ap);
  va_end(ap);
}

/* Takes name (a new string). */
static void use(names *ns, char *name, const char *what, const char *who,
                const char *file) {
  if (ns->n == ns->cap) {
    ns->cap = ns->cap ? 2 * ns->cap : 64;
    ns->v = cg_realloc(ns->v, ns->cap * sizeof *ns->v);
  }
  ns->v[ns->n] = (name_use){name, what, who, file, ns->n};
  ns->n++;
}

static void names_free(names *ns) {
  for (size_t i = 0; i < ns->n; i++) free(ns->v[i].name);
  free(ns->v);
  memset(ns, 0, sizeof *ns);
}

static int cmp_use(const void *a, const void *b) {
  const name_use *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Fails on the first name made twice. */
static void check_clashes(build *b, names *ns, const char *kind) {
  if (b->error || ns->n < 2) return;
  qsort(ns->v, ns->n, sizeof *ns->v, cmp_use);
  for (size_t i = 1; i < ns->n; i++) {
    const name_use *x = &ns->v[i - 1], *y = &ns->v[i];
    if (strcmp(x->name, y->name) != 0) continue;
    if (x->who == y->who && x->what == y->what) {
      fail(b, "%s: %s %s makes the %s '%s' twice; rename it", x->file,
           x->what, x->who, kind, x->name);
    } else {
      bool other = strcmp(x->file, y->file) != 0 && strcmp(y->what, "file");
      fail(b, "%s: %s %s and %s %s%s%s both make the %s '%s'; rename one",
           x->file, x->what, x->who, y->what, y->who, other ? " in " : "",
           other ? y->file : "", kind, x->name);
    }
    return;
  }
}

/* ---- files ---------------------------------------------------------- */

/* File names go into #include "..." lines, a string literal and comments:
 * keep to characters that are safe in all three. */
static bool safe_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
         c == '/' || c == '+';
}

static void check_package(build *b, const cg_file *f) {
  const char *pkg = f->fdp->package;
  if (!pkg || !*pkg) return;
  char *copy = cg_strdup(pkg), *save = NULL;
  for (char *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save))
    if (!cg_is_ident(t)) fail(b, "%s: package '%s' is not a C name", f->name, pkg);
  if (pkg[0] == '.' || pkg[strlen(pkg) - 1] == '.' || strstr(pkg, ".."))
    fail(b, "%s: package '%s' is not a C name", f->name, pkg);
  free(copy);
}

static void init_file(build *b, cg_file *f,
                      const Google__Protobuf__FileDescriptorProto *fdp) {
  f->fdp = fdp;
  f->name = fdp->name ? fdp->name : "";
  if (!*f->name) {
    fail(b, "a file in the request has no name");
    return;
  }
  for (const char *p = f->name; *p; p++)
    if (!safe_path_char(*p)) {
      fail(b,
           "%s: the file name has a character ('%c', 0x%02x) that the "
           "generated #include lines and comments can not carry; use "
           "letters, digits and _ - . / + only",
           f->name, *p >= 0x20 && *p < 0x7f ? *p : '?',
           (unsigned)(unsigned char)*p);
      return;
    }
  f->base = cg_strip_proto(f->name);
  f->ident = cg_file_ident(f->name);
  if (!f->ident) {
    fail(b,
         "%s: no C name can be made from this file name (it would start "
         "with a digit); rename the file or its first directory",
         f->name);
    return;
  }
  f->guard = cg_file_guard(f->name);
  cg_pbc_file_options o;
  if (cg_pbc_file_options_read(fdp->options, &o) != 0) {
    fail(b, "%s: malformed (pb_c_file) file option", f->name);
    return;
  }
  f->no_generate = o.no_generate;
  f->c_package = o.c_package; /* taken */
  if (f->c_package) {
    char *copy = cg_strdup(f->c_package), *save = NULL;
    for (char *t = strtok_r(copy, ".", &save); t;
         t = strtok_r(NULL, ".", &save))
      if (!cg_is_ident(t))
        fail(b, "%s: (pb_c_file).c_package '%s' is not a C name", f->name,
             f->c_package);
    free(copy);
  }
  check_package(b, f);
}

static void link_deps(build *b, cg_model *m, size_t i) {
  cg_file *f = &m->files[i];
  f->n_deps = f->fdp->n_dependency;
  f->deps = cg_calloc(f->n_deps, sizeof *f->deps);
  for (size_t d = 0; d < f->n_deps; d++) {
    const char *dn = f->fdp->dependency[d];
    for (size_t j = 0; j < i && dn; j++)
      if (strcmp(m->files[j].name, dn) == 0) f->deps[d] = &m->files[j];
    if (!f->deps[d])
      fail(b, "%s: import '%s' is not in the request", f->name,
           dn ? dn : "(null)");
  }
}

/* ---- message types -------------------------------------------------- */

static void add_type(cg_model *m, const cg_file *f, const char *full) {
  char *over = cg_override_full_name(full, f->fdp->package, f->c_package);
  cg_type *t = &m->types[m->n_types++];
  t->full = cg_fmt(".%s", full);
  t->cname = cg_full_name_to_c(over);
  t->lname = cg_full_name_to_lower(over);
  t->file = f;
  free(over);
}

static size_t count_types(Google__Protobuf__DescriptorProto *const *v,
                          size_t n) {
  size_t c = n;
  for (size_t i = 0; i < n; i++)
    c += count_types(v[i]->nested_type, v[i]->n_nested_type);
  return c;
}

static void add_types(build *b, cg_model *m, const cg_file *f,
                      const char *scope,
                      Google__Protobuf__DescriptorProto *const *v, size_t n) {
  for (size_t i = 0; i < n && !b->error; i++) {
    if (!cg_is_ident(v[i]->name)) {
      fail(b, "%s: message name '%s' is not a C name", f->name,
           v[i]->name ? v[i]->name : "(null)");
      return;
    }
    char *full = *scope ? cg_fmt("%s.%s", scope, v[i]->name)
                        : cg_strdup(v[i]->name);
    add_type(m, f, full);
    add_types(b, m, f, full, v[i]->nested_type, v[i]->n_nested_type);
    free(full);
  }
}

static const cg_type *find_type(const cg_model *m, const char *full) {
  for (size_t i = 0; full && i < m->n_types; i++)
    if (strcmp(m->types[i].full, full) == 0) return &m->types[i];
  return NULL;
}

/* ---- services ------------------------------------------------------- */

static const cg_type *method_type(build *b, const cg_file *f,
                                  const cg_method *me, const char *which,
                                  const char *full) {
  const cg_type *t = find_type(b->m, full);
  if (!t) {
    fail(b, "%s: method %s: %s type '%s' is not a message of the request",
         f->name, me->full, which, full ? full : "(none)");
    return NULL;
  }
  if (t->file->no_generate)
    fail(b,
         "%s: method %s: %s type %s is defined in %s, which has option "
         "(pb_c_file).no_generate: protoc-c makes no C type for it",
         f->name, me->full, which, t->full + 1, t->file->name);
  return t;
}

static void init_method(build *b, const cg_file *f, const cg_service *s,
                        cg_method *me,
                        const Google__Protobuf__MethodDescriptorProto *md) {
  me->name = md->name;
  if (!cg_is_ident(md->name)) {
    fail(b, "%s: service %s: method name '%s' is not a C name", f->name,
         s->full, md->name ? md->name : "(null)");
    return;
  }
  me->full = cg_fmt("%s.%s", s->full, md->name);
  me->path = cg_fmt("/%s/%s", s->full, md->name);
  me->lower = cg_camel_to_lower(md->name);
  me->upper = cg_camel_to_upper(md->name);
  const char *why = cg_reserved_why(me->lower);
  if (why) {
    fail(b,
         "%s: method %s: its C name '%s' is %s, and protoc-c declares "
         "every method as a struct member of that name (void (*%s)(...)), "
         "so its %s.pb-c.h would not compile; rename the method",
         f->name, me->full, me->lower, why, me->lower, f->base);
    return;
  }
  /* "user" is the handler table's own member. */
  me->field = strcmp(me->lower, "user") == 0 ? cg_fmt("%s_", me->lower)
                                              : cg_strdup(me->lower);
  me->field_blocking = cg_fmt("%s_blocking", me->lower);
  me->client_streaming = md->has_client_streaming && md->client_streaming;
  me->server_streaming = md->has_server_streaming && md->server_streaming;
  me->req = method_type(b, f, me, "request", md->input_type);
  me->resp = method_type(b, f, me, "response", md->output_type);
}

/* Every C name of a method: ours (see emit.c) and protoc-c's stub. */
static const char *const k_method_suffixes[] = {
    "send_response", "stream_send_response", "stream_recv_request",
    "send_request",  "stream_send_request",  "stream_recv_response",
    "call",          "start",                "open",
    "mrpc_event",    "mrpc_blocking",        "mrpc_on_request",
    "mrpc_ops",
};

static void use_service_names(build *b, const cg_file *f,
                              const cg_service *s) {
  names *g = &b->global;
  const char *P = s->lower, *U = s->upper, *C = s->cname;
  use(g, cg_fmt("%s__mrpc_methods", P), "service", s->full, f->name);
  use(g, cg_fmt("%s__mrpc_service", P), "service", s->full, f->name);
  use(g, cg_fmt("%s__mrpc_register", P), "service", s->full, f->name);
  use(g, cg_fmt("%s_MrpcHandlers", C), "service", s->full, f->name);
  /* protoc-c's, from the same service */
  use(g, cg_fmt("%s__descriptor", P), "service", s->full, f->name);
  use(g, cg_fmt("%s__init", P), "service", s->full, f->name);
  use(g, cg_fmt("%s__method_descriptors", P), "service", s->full, f->name);
  use(g, cg_fmt("%s__method_indices_by_name", P), "service", s->full,
      f->name);
  use(g, cg_fmt("%s_Service", C), "service", s->full, f->name);
  use(g, cg_fmt("%s_ServiceDestroy", C), "service", s->full, f->name);
  use(g, cg_fmt("%s__BASE_INIT", U), "service", s->full, f->name);
  use(g, cg_fmt("%s__INIT", U), "service", s->full, f->name);
  for (size_t i = 0; i < s->n_methods; i++) {
    const cg_method *me = &s->methods[i];
    use(g, cg_fmt("%s__%s__METHOD", U, me->upper), "method", me->full,
        f->name);
    use(g, cg_fmt("%s__%s", P, me->lower), "method", me->full, f->name);
    for (size_t k = 0; k < sizeof k_method_suffixes / sizeof *k_method_suffixes;
         k++)
      use(g, cg_fmt("%s__%s__%s", P, me->lower, k_method_suffixes[k]),
          "method", me->full, f->name);
  }
}

/* The members of P_MrpcHandlers must differ: Get and GetBlocking, or
 * GetFoo and get_foo, would both make get_blocking / get_foo. */
static void check_fields(build *b, const cg_file *f, const cg_service *s) {
  names ns = {0};
  use(&ns, cg_strdup("user"), "the handler table's", "user pointer", f->name);
  for (size_t i = 0; i < s->n_methods; i++) {
    use(&ns, cg_strdup(s->methods[i].field), "method", s->methods[i].full,
        f->name);
    use(&ns, cg_strdup(s->methods[i].field_blocking), "method",
        s->methods[i].full, f->name);
  }
  check_clashes(b, &ns, "handler-table member");
  names_free(&ns);
}

static void init_service(build *b, const cg_file *f, cg_service *s,
                         const Google__Protobuf__ServiceDescriptorProto *sd) {
  const char *pkg = f->fdp->package;
  if (!cg_is_ident(sd->name)) {
    fail(b, "%s: service name '%s' is not a C name", f->name,
         sd->name ? sd->name : "(null)");
    return;
  }
  s->full = pkg && *pkg ? cg_fmt("%s.%s", pkg, sd->name) : cg_strdup(sd->name);
  if (f->no_generate) {
    fail(b,
         "%s: service %s: the file has option (pb_c_file).no_generate, so "
         "protoc-c makes no C for it",
         f->name, s->full);
    return;
  }
  char *over = cg_override_full_name(s->full, pkg, f->c_package);
  s->lower = cg_full_name_to_lower(over);
  s->upper = cg_full_name_to_upper(over);
  s->cname = cg_full_name_to_c(over);
  free(over);
  s->n_methods = sd->n_method;
  s->methods = cg_calloc(s->n_methods, sizeof *s->methods);
  for (size_t i = 0; i < s->n_methods && !b->error; i++)
    init_method(b, f, s, &s->methods[i], sd->method[i]);
  if (b->error) return;
  check_fields(b, f, s);
  use_service_names(b, f, s);
}

/* ---- the model ------------------------------------------------------ */

cg_model *cg_model_new(
    const Google__Protobuf__FileDescriptorProto *const *files, size_t n,
    char **error) {
  build b = {0};
  cg_model *m = b.m = cg_calloc(1, sizeof *m);
  m->files = cg_calloc(n, sizeof *m->files);
  m->n_files = n;
  for (size_t i = 0; i < n && !b.error; i++) init_file(&b, &m->files[i], files[i]);
  for (size_t i = 0; i < n && !b.error; i++) link_deps(&b, m, i);

  size_t nt = 0;
  for (size_t i = 0; i < n; i++)
    nt += count_types(files[i]->message_type, files[i]->n_message_type);
  m->types = cg_calloc(nt, sizeof *m->types);
  for (size_t i = 0; i < n && !b.error; i++) {
    const char *pkg = files[i]->package;
    add_types(&b, m, &m->files[i], pkg ? pkg : "", files[i]->message_type,
              files[i]->n_message_type);
  }

  for (size_t i = 0; i < n && !b.error; i++) {
    cg_file *f = &m->files[i];
    use(&b.global, cg_fmt("%s__mrpc_file", f->ident), "file", f->name,
        f->name);
    use(&b.global, cg_fmt("%s__mrpc_data", f->ident), "file", f->name,
        f->name);
    use(&b.global, cg_fmt("%s__mrpc_deps", f->ident), "file", f->name,
        f->name);
    f->n_services = f->fdp->n_service;
    f->services = cg_calloc(f->n_services, sizeof *f->services);
    for (size_t s = 0; s < f->n_services && !b.error; s++)
      init_service(&b, f, &f->services[s], f->fdp->service[s]);
  }
  check_clashes(&b, &b.global, "C name");
  names_free(&b.global);
  if (b.error) {
    cg_model_free(m);
    *error = b.error;
    return NULL;
  }
  *error = NULL;
  return m;
}

void cg_model_free(cg_model *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_files; i++) {
    cg_file *f = &m->files[i];
    for (size_t s = 0; s < f->n_services; s++) {
      cg_service *sv = &f->services[s];
      for (size_t k = 0; k < sv->n_methods; k++) {
        cg_method *me = &sv->methods[k];
        free(me->full);
        free(me->path);
        free(me->lower);
        free(me->upper);
        free(me->field);
        free(me->field_blocking);
      }
      free(sv->methods);
      free(sv->full);
      free(sv->lower);
      free(sv->upper);
      free(sv->cname);
    }
    free(f->services);
    free(f->deps);
    free(f->base);
    free(f->ident);
    free(f->guard);
    free(f->c_package);
  }
  free(m->files);
  for (size_t i = 0; i < m->n_types; i++) {
    free(m->types[i].full);
    free(m->types[i].cname);
    free(m->types[i].lname);
  }
  free(m->types);
  free(m);
}

const cg_file *cg_model_file(const cg_model *m, const char *name) {
  for (size_t i = 0; name && i < m->n_files; i++)
    if (strcmp(m->files[i].name, name) == 0) return &m->files[i];
  return NULL;
}

const char *cg_method_kind(const cg_method *m) {
  if (m->client_streaming && m->server_streaming) return "MRPC_BIDI_STREAMING";
  if (m->client_streaming) return "MRPC_CLIENT_STREAMING";
  if (m->server_streaming) return "MRPC_SERVER_STREAMING";
  return "MRPC_UNARY";
}
