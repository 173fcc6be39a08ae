/* A walk over the protobuf wire format, guided by protobuf-c descriptors. */
#include "pbcheck.h"

#define MAX_DEPTH 64

/* Reads a varint; 0 on truncation or more than 10 bytes. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return 1;
    }
  }
  return 0;
}

/* Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF) and
 * no NUL. */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += k + 1;
  }
  return 1;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                const uint8_t *end, int depth) {
  if (depth > MAX_DEPTH) return 1; /* protobuf-c has its own limits */
  while (p < end) {
    uint64_t key, v;
    if (!varint(&p, end, &key)) return 1;
    switch (key & 7) {
    case 0:
      if (!varint(&p, end, &v)) return 1;
      break;
    case 1:
      if (end - p < 8) return 1;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return 1;
      p += 4;
      break;
    case 2: {
      if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) return 1;
      const ProtobufCFieldDescriptor *f =
          key >> 3 <= UINT32_MAX
              ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
              : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_STRING && !utf8_ok(p, (size_t)v))
        return 0;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          !walk(f->descriptor, p, p + v, depth + 1))
        return 0;
      p += v;
      break;
    }
    default:
      return 1; /* groups and junk: protobuf-c decides */
    }
  }
  return 1;
}

int mrpc__pb_strings_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len) {
  /* Nothing to check in a message without string or message fields: skip
   * the walk over its bytes. */
  unsigned i;
  for (i = 0; i < d->n_fields; i++)
    if (d->fields[i].type == PROTOBUF_C_TYPE_STRING ||
        d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
      break;
  if (i == d->n_fields) return 1;
  return walk(d, p, p + len, 0);
}
