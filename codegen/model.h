/* protoc-gen-minirpc: what is generated, worked out before any text is
 * written.
 *
 * The model covers every file of the CodeGeneratorRequest (the files to
 * generate and everything they import), so that the names of a file can be
 * checked against those of the files whose headers it includes.  Building
 * it checks everything that could make the generated C wrong; the emitter
 * (emit.h) then only prints.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CODEGEN_MODEL_H
#define MINIRPC_CODEGEN_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef struct cg_file cg_file;

/* A message type, as protoc-c names it. */
typedef struct cg_type {
  char *full;  /* ".pkg.Outer.Inner", as method input_type writes it */
  char *cname; /* "Pkg__Outer__Inner": protoc-c's struct type */
  char *lname; /* "pkg__outer__inner": prefix of its __descriptor */
  const cg_file *file;
} cg_type;

typedef struct cg_method {
  const char *name; /* "CreateUser" (the descriptor's) */
  char *full;       /* "pkg.Svc.CreateUser", for messages */
  char *path;       /* "/pkg.Svc/CreateUser" */
  char *lower;      /* "create_user": M */
  char *upper;      /* "CREATE_USER" */
  char *field;      /* handler-table field of the event handler */
  char *field_blocking;
  bool client_streaming, server_streaming;
  const cg_type *req, *resp;
} cg_method;

typedef struct cg_service {
  char *full;  /* "pkg.Svc" */
  char *lower; /* "pkg__svc": P */
  char *upper; /* "PKG__SVC" */
  char *cname; /* "Pkg__Svc": prefix of the handler-table type */
  size_t n_methods;
  cg_method *methods;
} cg_service;

struct cg_file {
  const Google__Protobuf__FileDescriptorProto *fdp;
  const char *name; /* "a/b/c.proto" */
  char *base;       /* "a/b/c": NAME of NAME.pb-c.h, NAME.mrpc.h */
  char *ident;      /* "a__b__c": F */
  char *guard;      /* include guard of NAME.mrpc.h */
  bool no_generate; /* (pb_c_file).no_generate: protoc-c writes nothing */
  char *c_package;  /* (pb_c_file).c_package, or NULL */
  size_t n_deps;
  const cg_file **deps; /* in the order of the import lines */
  size_t n_services;
  cg_service *services;
};

typedef struct cg_model {
  size_t n_files;
  cg_file *files; /* in the request's (topological) order */
  size_t n_types;
  cg_type *types;
} cg_model;

/* Builds the model of files[0..n).  Returns it, or NULL with *error set (a
 * new string, for CodeGeneratorResponse.error) when the input can not be
 * turned into correct C. */
cg_model *cg_model_new(
    const Google__Protobuf__FileDescriptorProto *const *files, size_t n,
    char **error);

void cg_model_free(cg_model *m);

/* The file called name, or NULL. */
const cg_file *cg_model_file(const cg_model *m, const char *name);

/* "MRPC_UNARY", "MRPC_CLIENT_STREAMING", ... */
const char *cg_method_kind(const cg_method *m);

#endif
