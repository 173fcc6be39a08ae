/* protoc-gen-minirpc: protoc-c's own file options.
 *
 * protobuf-c/protobuf-c.proto extends google.protobuf.FileOptions with
 * field 1019 (pb_c_file, a ProtobufCFileOptions).  Two of its fields change
 * what protoc-c generates for a file, so the plugin must know them:
 *   1 no_generate: protoc-c writes nothing for the file (no C types);
 *   6 c_package:   replaces the package in every C name of the file.
 * The descriptor.proto C code does not know the extension, so protobuf-c
 * keeps it among the unknown fields of FileOptions; this reads it there.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CODEGEN_PBC_OPTIONS_H
#define MINIRPC_CODEGEN_PBC_OPTIONS_H

#include <stdbool.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef struct cg_pbc_file_options {
  bool no_generate;
  char *c_package; /* NULL when not set; owned */
} cg_pbc_file_options;

/* Fills *out from o (which may be NULL: no options).  Returns 0, or -1
 * when the extension is malformed (*out is then empty). */
int cg_pbc_file_options_read(const Google__Protobuf__FileOptions *o,
                             cg_pbc_file_options *out);

void cg_pbc_file_options_clear(cg_pbc_file_options *o);

#endif
