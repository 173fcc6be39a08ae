/* gzip / deflate through zlib.  Each message is its own stream (a fresh
 * context per message, as compression.md requires). */
#include "compress.h"

#include "alloc.h"

#include <string.h>
#include <zlib.h>

static const char *const NAMES[] = {"identity", "deflate", "gzip"};

int mrpc__compression_parse(const uint8_t *name, size_t len) {
  for (int i = 0; i < 3; i++)
    if (strlen(NAMES[i]) == len && memcmp(NAMES[i], name, len) == 0) return i;
  return -1;
}

const char *mrpc__compression_name(mrpc_compression alg) {
  return (unsigned)alg < 3 ? NAMES[alg] : "identity";
}

unsigned mrpc__compression_accept_parse(const uint8_t *v, size_t len) {
  unsigned set = 1u << MRPC_COMPRESS_NONE;
  size_t i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == ',')) i++;
    size_t start = i;
    while (i < len && v[i] != ',' && v[i] != ' ') i++;
    int alg = mrpc__compression_parse(v + start, i - start);
    if (alg >= 0) set |= 1u << alg;
  }
  return set;
}

/* zlib's window bits: 15 + 16 selects the gzip wrapper, 15 zlib (which is
 * what gRPC calls "deflate"). */
static int window_bits(mrpc_compression alg) {
  return alg == MRPC_COMPRESS_GZIP ? 15 + 16 : 15;
}

static voidpf zalloc(voidpf opaque, uInt n, uInt size) {
  return mrpc__calloc(opaque, n, size);
}
static void zfree(voidpf opaque, voidpf p) { mrpc__free(opaque, p); }

int mrpc__compress(const mrpc_allocator *alloc, mrpc_compression alg,
                   const uint8_t *in, size_t len, size_t head, uint8_t **out,
                   size_t *out_len) {
  if (alg != MRPC_COMPRESS_GZIP && alg != MRPC_COMPRESS_DEFLATE)
    return MRPC_ERR_INVAL;
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = zalloc;
  z.zfree = zfree;
  z.opaque = (voidpf)alloc;
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(alg), 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return MRPC_ERR_NOMEM;
  size_t cap = head + deflateBound(&z, (uLong)len);
  uint8_t *buf = mrpc__malloc(alloc, cap);
  if (!buf) {
    deflateEnd(&z);
    return MRPC_ERR_NOMEM;
  }
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  z.next_out = buf + head;
  z.avail_out = (uInt)(cap - head);
  int rc = deflate(&z, Z_FINISH);
  size_t n = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    mrpc__free(alloc, buf);
    return MRPC_ERR_NOMEM;
  }
  *out = buf;
  *out_len = head + n;
  return 0;
}

int mrpc__decompress(const mrpc_allocator *alloc, mrpc_compression alg,
                     const uint8_t *in, size_t len, size_t max, uint8_t **out,
                     size_t *out_len) {
  if (alg != MRPC_COMPRESS_GZIP && alg != MRPC_COMPRESS_DEFLATE)
    return MRPC_ERR_PARSE;
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = zalloc;
  z.zfree = zfree;
  z.opaque = (voidpf)alloc;
  if (inflateInit2(&z, window_bits(alg)) != Z_OK) return MRPC_ERR_NOMEM;
  size_t cap = len * 4 + 64;
  if (cap > max + 1) cap = max + 1;
  uint8_t *buf = mrpc__malloc(alloc, cap ? cap : 1);
  int rv = buf ? 0 : MRPC_ERR_NOMEM;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  while (rv == 0) {
    z.next_out = buf + z.total_out;
    z.avail_out = (uInt)(cap - z.total_out);
    int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      /* Trailing bytes after the stream are corruption too. */
      if (z.avail_in) rv = MRPC_ERR_PARSE;
      break;
    }
    if (z.total_out > max) {
      rv = MRPC_ERR_TOO_LARGE;
    } else if (rc == Z_BUF_ERROR && z.avail_out == 0) {
      /* Output full: grow, but never beyond max + 1 (the +1 shows excess). */
      if (cap > max) {
        rv = MRPC_ERR_TOO_LARGE;
        break;
      }
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      uint8_t *nb = mrpc__realloc(alloc, buf, ncap);
      if (!nb) rv = MRPC_ERR_NOMEM;
      else {
        buf = nb;
        cap = ncap;
      }
    } else if (rc != Z_OK) {
      rv = rc == Z_MEM_ERROR ? MRPC_ERR_NOMEM : MRPC_ERR_PARSE;
    }
  }
  size_t n = z.total_out;
  inflateEnd(&z);
  if (rv == 0 && n > max) rv = MRPC_ERR_TOO_LARGE;
  if (rv) {
    mrpc__free(alloc, buf);
    return rv;
  }
  *out = buf;
  *out_len = n;
  return 0;
}
