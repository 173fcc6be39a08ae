/* Call metadata: an ordered multimap, plus "-bin" base64 and wire ingest.
 * SPDX-License-Identifier: Apache-2.0 */
#include "metadata.h"

#include <string.h>

#include "alloc.h"

typedef mrpc__md_entry entry;

void mrpc__metadata_init(mrpc_metadata *md, const mrpc_allocator *alloc) {
  md->alloc = alloc;
  md->v = md->inline_v;
  md->n = 0;
  md->cap = MRPC__MD_INLINE_ENTRIES;
  md->embedded = 1;
  md->arena_used = 0;
}

mrpc_metadata *mrpc_metadata_new(const mrpc_allocator *alloc) {
  mrpc_metadata *md = mrpc__malloc(alloc, sizeof(*md));
  if (!md) return NULL;
  mrpc__metadata_init(md, alloc);
  md->embedded = 0;
  return md;
}

static int in_arena(const mrpc_metadata *md, const char *p) {
  return p >= md->arena && p < md->arena + sizeof md->arena;
}

/* Room for one entry's "key\0value\0": from the arena while it lasts. */
static char *block_alloc(mrpc_metadata *md, size_t n) {
  if (n <= sizeof md->arena - md->arena_used) {
    char *p = md->arena + md->arena_used;
    md->arena_used += n;
    return p;
  }
  return mrpc__malloc(md->alloc, n);
}

/* Gives back the block of the entry last prepared (not committed). */
static void block_free_last(mrpc_metadata *md, char *p) {
  if (in_arena(md, p))
    md->arena_used = (size_t)(p - md->arena);
  else
    mrpc__free(md->alloc, p);
}

void mrpc_metadata_clear(mrpc_metadata *md) {
  if (!md) return;
  for (size_t i = 0; i < md->n; i++)
    if (!in_arena(md, md->v[i].key)) mrpc__free(md->alloc, md->v[i].key);
  md->n = 0;
  md->arena_used = 0;
}

void mrpc__metadata_fini(mrpc_metadata *md) {
  mrpc_metadata_clear(md);
  if (md->v != md->inline_v) mrpc__free(md->alloc, md->v);
  md->v = md->inline_v;
  md->cap = MRPC__MD_INLINE_ENTRIES;
}

void mrpc_metadata_del(mrpc_metadata *md) {
  if (!md) return;
  mrpc__metadata_fini(md);
  if (!md->embedded) mrpc__free(md->alloc, md);
}

size_t mrpc_metadata_count(const mrpc_metadata *md) { return md ? md->n : 0; }

int mrpc_metadata_at(const mrpc_metadata *md, size_t i, const char **key,
                     const uint8_t **value, size_t *len) {
  if (!md || i >= md->n) return MRPC_ERR_INVAL;
  if (key) *key = md->v[i].key;
  if (value) *value = md->v[i].val;
  if (len) *len = md->v[i].vlen;
  return 0;
}

const uint8_t *mrpc_metadata_get(const mrpc_metadata *md, const char *key,
                                 size_t *len) {
  if (!md || !key) return NULL;
  size_t klen = strlen(key);
  for (size_t i = 0; i < md->n; i++) {
    const entry *e = &md->v[i];
    if (e->klen == klen && memcmp(e->key, key, klen) == 0) {
      if (len) *len = e->vlen;
      return e->val;
    }
  }
  return NULL;
}

size_t mrpc__metadata_key_len(const mrpc_metadata *md, size_t i) {
  return md && i < md->n ? md->v[i].klen : 0;
}

/* [0-9a-z_.-]: one table load per character. */
static const unsigned char key_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1};

int mrpc__metadata_key_valid(const char *key, size_t len) {
  if (!key || len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if (!key_char[(unsigned char)key[i]]) return 0;
  return 1;
}

int mrpc__metadata_key_reserved(const char *key, size_t len) {
  /* By length first: this runs for every request header the library does
   * not consume itself. */
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(key, lit, len) == 0)
  if (!key) return 0;
  if (len >= 1 && key[0] == ':') return 1;
  if (len >= 5 && memcmp(key, "grpc-", 5) == 0) return 1;
  switch (len) {
  case 2:
    return IS("te");
  case 4:
    return IS("host");
  case 7:
    return IS("upgrade");
  case 10:
    return IS("user-agent") || IS("connection") || IS("keep-alive");
  case 12:
    return IS("content-type");
  case 16:
    return IS("proxy-connection");
  case 17:
    return IS("transfer-encoding");
  default:
    return 0;
  }
#undef IS
}

int mrpc__metadata_key_is_bin(const char *key, size_t len) {
  return key && len >= 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

static int value_printable(const uint8_t *v, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (v[i] < 0x20 || v[i] > 0x7e) return 0;
  return 1;
}

/* Allocates entry n (not yet counted) with room for a vmax-byte value.  The
 * caller fills the value, sets vlen and commits with md->n++. */
static entry *entry_prepare(mrpc_metadata *md, const char *key, size_t klen,
                            size_t vmax) {
  if (md->n == md->cap) {
    size_t ncap = md->cap * 2;
    entry *nv = mrpc__malloc(md->alloc, ncap * sizeof(*nv));
    if (!nv) return NULL;
    memcpy(nv, md->v, md->n * sizeof(*nv));
    if (md->v != md->inline_v) mrpc__free(md->alloc, md->v);
    md->v = nv;
    md->cap = ncap;
  }
  char *block = block_alloc(md, klen + 1 + vmax + 1);
  if (!block) return NULL;
  entry *e = &md->v[md->n];
  memcpy(block, key, klen);
  block[klen] = '\0';
  e->key = block;
  e->klen = klen;
  e->val = (uint8_t *)block + klen + 1;
  e->vlen = 0;
  return e;
}

static int entry_push(mrpc_metadata *md, const char *key, size_t klen,
                      const uint8_t *val, size_t vlen) {
  entry *e = entry_prepare(md, key, klen, vlen);
  if (!e) return MRPC_ERR_NOMEM;
  if (vlen) memcpy(e->val, val, vlen);
  e->val[vlen] = '\0';
  e->vlen = vlen;
  md->n++;
  return 0;
}

int mrpc_metadata_add(mrpc_metadata *md, const char *key, const void *value,
                      size_t len) {
  if (!md || !key || (!value && len)) return MRPC_ERR_INVAL;
  size_t klen = strlen(key);
  if (mrpc__metadata_key_reserved(key, klen)) return MRPC_ERR_RESERVED;
  if (!mrpc__metadata_key_valid(key, klen)) return MRPC_ERR_INVAL;
  if (!mrpc__metadata_key_is_bin(key, klen) && !value_printable(value, len))
    return MRPC_ERR_INVAL;
  return entry_push(md, key, klen, value, len);
}

int mrpc_metadata_add_str(mrpc_metadata *md, const char *key,
                          const char *value) {
  if (!value) return MRPC_ERR_INVAL;
  return mrpc_metadata_add(md, key, value, strlen(value));
}

int mrpc__metadata_append(mrpc_metadata *dst, const mrpc_metadata *src) {
  if (!dst || !src) return 0;
  for (size_t i = 0; i < src->n; i++) {
    const entry *e = &src->v[i];
    int rc = entry_push(dst, e->key, e->klen, e->val, e->vlen);
    if (rc) return rc;
  }
  return 0;
}

int mrpc__metadata_add_wire(mrpc_metadata *md, const uint8_t *name,
                            size_t nlen, const uint8_t *value, size_t vlen) {
  const char *key = (const char *)name;
  if (!md || !name || (!value && vlen)) return MRPC_ERR_INVAL;
  if (mrpc__metadata_key_reserved(key, nlen)) return MRPC_ERR_RESERVED;
  if (!mrpc__metadata_key_valid(key, nlen)) return MRPC_ERR_INVAL;
  if (!mrpc__metadata_key_is_bin(key, nlen)) {
    if (!value_printable(value, vlen)) return MRPC_ERR_INVAL;
    return entry_push(md, key, nlen, value, vlen);
  }
  /* Decode straight into the entry: decoded size <= encoded size. */
  entry *e = entry_prepare(md, key, nlen, vlen);
  if (!e) return MRPC_ERR_NOMEM;
  size_t out = 0;
  int rc = mrpc__base64_decode((const char *)value, vlen, e->val, &out);
  if (rc) {
    block_free_last(md, e->key);
    return rc;
  }
  e->val[out] = '\0';
  e->vlen = out;
  md->n++;
  return 0;
}

/* ---- base64 (RFC 4648 standard alphabet) ---- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mrpc__base64_encoded_len(size_t n) {
  return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t mrpc__base64_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64[v >> 18];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = b64[(v >> 6) & 63];
    out[o++] = b64[v & 63];
  }
  if (len - i == 1) {
    out[o++] = b64[in[i] >> 2];
    out[o++] = b64[(in[i] & 3) << 4];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
    out[o++] = b64[v >> 10];
    out[o++] = b64[(v >> 4) & 63];
    out[o++] = b64[(v & 15) << 2];
  }
  return o;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes one comma-free segment; returns bytes written or -1. */
static long decode_one(const char *in, size_t len, uint8_t *out) {
  size_t pad = 0, o = 0;
  uint32_t acc = 0;
  while (pad < 2 && pad < len && in[len - 1 - pad] == '=') pad++;
  if (pad && len % 4) return -1;
  len -= pad;
  if (len % 4 == 1) return -1;
  for (size_t i = 0; i < len; i++) {
    int v = b64val(in[i]);
    if (v < 0) return -1; /* also catches '=' in the middle */
    acc = acc << 6 | (uint32_t)v;
    if (i % 4 == 3) {
      out[o++] = (uint8_t)(acc >> 16);
      out[o++] = (uint8_t)(acc >> 8);
      out[o++] = (uint8_t)acc;
      acc = 0;
    }
  }
  if (len % 4 == 2) {
    out[o++] = (uint8_t)(acc >> 4);
  } else if (len % 4 == 3) {
    out[o++] = (uint8_t)(acc >> 10);
    out[o++] = (uint8_t)(acc >> 2);
  }
  return (long)o;
}

int mrpc__base64_decode(const char *in, size_t len, uint8_t *out,
                        size_t *outlen) {
  size_t o = 0, i = 0;
  if (len == 0) {
    *outlen = 0;
    return 0;
  }
  if (!in) return MRPC_ERR_PARSE;
  for (;;) {
    size_t j = i;
    while (j < len && in[j] != ',') j++;
    long n = decode_one(in + i, j - i, out + o);
    if (n < 0) return MRPC_ERR_PARSE;
    o += (size_t)n;
    if (j == len) break;
    /* Values joined per RFC 9110: "," optionally followed by spaces. */
    i = j + 1;
    while (i < len && in[i] == ' ') i++;
  }
  *outlen = o;
  return 0;
}
