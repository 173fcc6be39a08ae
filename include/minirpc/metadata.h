/* libminirpc: call metadata, an ordered multimap of key -> value.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_METADATA_H
#define MINIRPC_METADATA_H

#include <minirpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ordered multimap.  Keys are lowercase [0-9a-z_.-]+; values of keys that end
 * in "-bin" are arbitrary bytes (the library base64-encodes them on the wire,
 * unpadded, and accepts padded and unpadded input), other values are printable
 * ASCII (0x20-0x7E).  Names starting with "grpc-" or ":" and the HTTP/2
 * connection headers (te, content-type, user-agent, host, connection, ...) are
 * the library's and can not be added.
 *
 * Thread-safety: an object may be read from several threads at once, but
 * writes need external locking.  Metadata handed out by a call (request
 * headers, response headers, trailers) is read-only and lives as long as the
 * call. */
typedef struct mrpc_metadata mrpc_metadata;

/* Creates an empty map.  alloc may be NULL (libc).  Returns NULL on OOM. */
MRPC_EXTERN mrpc_metadata *mrpc_metadata_new(const mrpc_allocator *alloc);

/* Frees the map and every entry.  NULL is a no-op. */
MRPC_EXTERN void mrpc_metadata_del(mrpc_metadata *md);

/* Appends key -> value (len bytes, copied).  Returns 0 or one of:
 * MRPC_ERR_INVAL (bad key, or a non-"-bin" value with a byte outside
 * 0x20-0x7E, or md/key NULL), MRPC_ERR_RESERVED (a name the library owns),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_metadata_add(mrpc_metadata *md, const char *key,
                                  const void *value, size_t len);

/* Same as mrpc_metadata_add with a NUL-terminated value. */
MRPC_EXTERN int mrpc_metadata_add_str(mrpc_metadata *md, const char *key,
                                      const char *value);

/* Number of entries (0 for NULL). */
MRPC_EXTERN size_t mrpc_metadata_count(const mrpc_metadata *md);

/* Entry i in insertion order.  key and value are borrowed from md (value is
 * also NUL-terminated for convenience).  Returns 0 or MRPC_ERR_INVAL when i
 * is out of range. */
MRPC_EXTERN int mrpc_metadata_at(const mrpc_metadata *md, size_t i,
                                 const char **key, const uint8_t **value,
                                 size_t *len);

/* First value for key, borrowed (NUL-terminated), or NULL when absent.
 * len may be NULL. */
MRPC_EXTERN const uint8_t *mrpc_metadata_get(const mrpc_metadata *md,
                                             const char *key, size_t *len);

/* Removes every entry.  */
MRPC_EXTERN void mrpc_metadata_clear(mrpc_metadata *md);

#ifdef __cplusplus
}
#endif
#endif
