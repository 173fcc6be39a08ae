/* Per-message compression through zlib (gzip and deflate, compression.md).
 * Pure functions. */
#ifndef MRPC_LIB_COMPRESS_H
#define MRPC_LIB_COMPRESS_H

#include <minirpc/call.h>

/* Parses a grpc-encoding name ("identity", "gzip", "deflate").  Returns the
 * algorithm, or -1 for anything else. */
int mrpc__compression_parse(const uint8_t *name, size_t len);
/* The name of alg ("identity" for NONE), a string literal. */
const char *mrpc__compression_name(mrpc_compression alg);
/* Bit set (1 << alg) of the algorithms named in a grpc-accept-encoding
 * value ("gzip, deflate"); identity is always in. */
unsigned mrpc__compression_accept_parse(const uint8_t *v, size_t len);
/* What we accept, for grpc-accept-encoding. */
#define MRPC__ACCEPT_ENCODING "identity,deflate,gzip"

/* Compresses in[0..len) with alg into *out (malloc'd through alloc, the
 * caller frees) leaving `head` bytes free at its start for the frame
 * prefix.  Returns 0 or MRPC_ERR_NOMEM / MRPC_ERR_INVAL. */
int mrpc__compress(const mrpc_allocator *alloc, mrpc_compression alg,
                   const uint8_t *in, size_t len, size_t head, uint8_t **out,
                   size_t *out_len);

/* Decompresses into *out (alloc'd), refusing to produce more than max bytes
 * (a zip bomb stops there).  Returns 0, MRPC_ERR_TOO_LARGE (over max),
 * MRPC_ERR_PARSE (corrupt input), MRPC_ERR_NOMEM. */
int mrpc__decompress(const mrpc_allocator *alloc, mrpc_compression alg,
                     const uint8_t *in, size_t len, size_t max, uint8_t **out,
                     size_t *out_len);

#endif
