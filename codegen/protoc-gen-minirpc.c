/* protoc-gen-minirpc: the protoc plugin of libminirpc.
 *
 * protoc runs it for --minirpc_out=DIR: a CodeGeneratorRequest comes on
 * stdin, a CodeGeneratorResponse goes to stdout.  For every file to
 * generate it writes NAME.mrpc.h and NAME.mrpc.c (docs/codegen.md), next to
 * protoc-c's NAME.pb-c.h / NAME.pb-c.c.  Input that can not become correct
 * C is refused through CodeGeneratorResponse.error (protoc prints it and
 * fails; nothing is written).  Only a request that can not be read, or
 * output that can not be written, makes the plugin itself fail.
 *
 * The request is parsed with protobuf-c, using protoc-c's C for
 * descriptor.proto and plugin.proto, generated at build time.
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "google/protobuf/compiler/plugin.pb-c.h"
#include "model.h"
#include "strbuf.h"

#define PLUGIN_VERSION "0.1.0"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;
typedef Google__Protobuf__FileDescriptorProto FileProto;

/* Reads all of stdin.  Returns 0, or -1 on a read error. */
static int read_all(FILE *in, uint8_t **data, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = cg_malloc(cap);
  for (;;) {
    if (n == cap) buf = cg_realloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n, in);
    n += got;
    if (got == 0) break;
  }
  if (ferror(in)) {
    free(buf);
    return -1;
  }
  *data = buf;
  *len = n;
  return 0;
}

/* The FileDescriptorProto to embed: protoc's, re-serialized without
 * source_code_info (comments and positions; reflection does not serve
 * them).  Returns a new buffer. */
static uint8_t *serialize_file(FileProto *fp, size_t *len) {
  Google__Protobuf__SourceCodeInfo *sci = fp->source_code_info;
  fp->source_code_info = NULL;
  *len = google__protobuf__file_descriptor_proto__get_packed_size(fp);
  uint8_t *data = cg_malloc(*len);
  google__protobuf__file_descriptor_proto__pack(fp, data);
  fp->source_code_info = sci;
  return data;
}

static OutFile *out_file(char *name, char *content) {
  OutFile *f = cg_malloc(sizeof *f);
  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = name;
  f->content = content;
  return f;
}

/* Fills resp from req.  Returns the error for the response, or NULL. */
static char *generate(Request *req, Response *resp) {
  if (req->parameter && *req->parameter)
    return cg_fmt("unknown option '%s': protoc-gen-minirpc takes none",
                  req->parameter);
  char *error = NULL;
  cg_model *m = cg_model_new((const FileProto *const *)req->proto_file,
                             req->n_proto_file, &error);
  if (!m) return error;
  resp->file = cg_calloc(2 * req->n_file_to_generate, sizeof *resp->file);
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const char *name = req->file_to_generate[i];
    const cg_file *f = cg_model_file(m, name);
    if (!f) {
      error = cg_fmt("%s: listed to generate but not in the request", name);
      break;
    }
    size_t len;
    uint8_t *data = serialize_file((FileProto *)f->fdp, &len);
    cg_sb h = {0}, c = {0};
    cg_emit_header(f, &h);
    cg_emit_source(f, data, len, &c);
    free(data);
    resp->file[resp->n_file++] =
        out_file(cg_fmt("%s.mrpc.h", f->base), cg_sb_take(&h));
    resp->file[resp->n_file++] =
        out_file(cg_fmt("%s.mrpc.c", f->base), cg_sb_take(&c));
  }
  cg_model_free(m);
  return error;
}

static void free_response(Response *resp) {
  for (size_t i = 0; i < resp->n_file; i++) {
    free(resp->file[i]->name);
    free(resp->file[i]->content);
    free(resp->file[i]);
  }
  free(resp->file);
  free(resp->error);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "--version") == 0) {
      printf("protoc-gen-minirpc %s\n", PLUGIN_VERSION);
      return 0;
    }
    fprintf(stderr,
            "protoc-gen-minirpc %s: a protoc plugin; run it through protoc:\n"
            "  protoc --c_out=OUT --plugin=protoc-gen-minirpc=PATH "
            "--minirpc_out=OUT -IDIR file.proto\n",
            PLUGIN_VERSION);
    return 2;
  }
  uint8_t *in;
  size_t in_len;
  if (read_all(stdin, &in, &in_len) != 0) {
    perror("protoc-gen-minirpc: reading the request");
    return 1;
  }
  Request *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, in_len,
                                                                 in);
  free(in);
  if (!req) {
    fputs("protoc-gen-minirpc: the CodeGeneratorRequest on stdin can not "
          "be parsed\n",
          stderr);
    return 1;
  }

  Response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  /* Fields are not looked at: proto3 optional needs nothing from us. */
  resp.has_supported_features = 1;
  resp.supported_features =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  resp.error = generate(req, &resp);
  if (resp.error) { /* all or nothing */
    for (size_t i = 0; i < resp.n_file; i++) {
      free(resp.file[i]->name);
      free(resp.file[i]->content);
      free(resp.file[i]);
    }
    resp.n_file = 0;
  }
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);

  size_t out_len =
      google__protobuf__compiler__code_generator_response__get_packed_size(
          &resp);
  uint8_t *out = cg_malloc(out_len);
  google__protobuf__compiler__code_generator_response__pack(&resp, out);
  free_response(&resp);
  int rc = 0;
  if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
    perror("protoc-gen-minirpc: writing the response");
    rc = 1;
  }
  free(out);
  return rc;
}
