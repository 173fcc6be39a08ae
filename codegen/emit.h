/* protoc-gen-minirpc: the text of NAME.mrpc.h and NAME.mrpc.c.
 *
 * Everything was checked when the model was built (model.h): these only
 * print.  What is printed is described in docs/codegen.md.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CODEGEN_EMIT_H
#define MINIRPC_CODEGEN_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "strbuf.h"

/* Appends NAME.mrpc.h of f to out. */
void cg_emit_header(const cg_file *f, cg_sb *out);

/* Appends NAME.mrpc.c of f to out; data[0..len) is the serialized
 * FileDescriptorProto to embed. */
void cg_emit_source(const cg_file *f, const uint8_t *data, size_t len,
                    cg_sb *out);

#endif
