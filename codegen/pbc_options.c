/* protoc-gen-minirpc: protoc-c's own file options (pb_c_file).
 * SPDX-License-Identifier: Apache-2.0 */
#include "pbc_options.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define PB_C_FILE_FIELD 1019
#define NO_GENERATE_FIELD 1
#define C_PACKAGE_FIELD 6

/* Reads a varint at *p (< end).  Returns 0 or -1. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* Skips a field's value of wire type wt.  Returns 0 or -1. */
static int skip(const uint8_t **p, const uint8_t *end, unsigned wt) {
  uint64_t v;
  switch (wt) {
    case 0:
      return varint(p, end, &v);
    case 1:
      if (end - *p < 8) return -1;
      *p += 8;
      return 0;
    case 2:
      if (varint(p, end, &v) != 0 || v > (uint64_t)(end - *p)) return -1;
      *p += v;
      return 0;
    case 5:
      if (end - *p < 4) return -1;
      *p += 4;
      return 0;
    default: /* groups are not used by ProtobufCFileOptions */
      return -1;
  }
}

/* Merges one serialized ProtobufCFileOptions into *out (later fields win,
 * as protobuf merging does for singular fields). */
static int parse_file_options(const uint8_t *p, const uint8_t *end,
                              cg_pbc_file_options *out) {
  while (p < end) {
    uint64_t key, v;
    if (varint(&p, end, &key) != 0) return -1;
    unsigned wt = (unsigned)(key & 7);
    uint64_t field = key >> 3;
    if (field == NO_GENERATE_FIELD && wt == 0) {
      if (varint(&p, end, &v) != 0) return -1;
      out->no_generate = v != 0;
    } else if (field == C_PACKAGE_FIELD && wt == 2) {
      if (varint(&p, end, &v) != 0 || v > (uint64_t)(end - p)) return -1;
      if (memchr(p, '\0', (size_t)v)) return -1;
      free(out->c_package);
      out->c_package = cg_malloc((size_t)v + 1);
      memcpy(out->c_package, p, (size_t)v);
      out->c_package[v] = '\0';
      p += v;
    } else if (skip(&p, end, wt) != 0) {
      return -1;
    }
  }
  return 0;
}

int cg_pbc_file_options_read(const Google__Protobuf__FileOptions *o,
                             cg_pbc_file_options *out) {
  memset(out, 0, sizeof *out);
  if (!o) return 0;
  for (unsigned i = 0; i < o->base.n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &o->base.unknown_fields[i];
    if (u->tag != PB_C_FILE_FIELD) continue;
    /* protobuf-c keeps a length-delimited unknown field with its length
     * prefix (it writes data back verbatim after the key). */
    const uint8_t *p = u->data, *end = u->data + u->len;
    uint64_t n;
    if (u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED ||
        varint(&p, end, &n) != 0 || n != (uint64_t)(end - p) ||
        parse_file_options(p, end, out) != 0) {
      cg_pbc_file_options_clear(out);
      return -1;
    }
  }
  return 0;
}

void cg_pbc_file_options_clear(cg_pbc_file_options *o) {
  free(o->c_package);
  memset(o, 0, sizeof *o);
}
