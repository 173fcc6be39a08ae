/* Allocation through the optional mrpc_allocator hook. */
#ifndef MRPC_LIB_ALLOC_H
#define MRPC_LIB_ALLOC_H

#include <minirpc/common.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

/* a may be NULL (libc).  Same contracts as malloc/calloc/realloc/free. */
void *mrpc__malloc(const mrpc_allocator *a, size_t n);
void *mrpc__calloc(const mrpc_allocator *a, size_t nmemb, size_t n);
void *mrpc__realloc(const mrpc_allocator *a, void *p, size_t n);
void mrpc__free(const mrpc_allocator *a, void *p);
/* Copy of s[0..len) plus a NUL, or NULL on OOM. */
char *mrpc__strndup(const mrpc_allocator *a, const char *s, size_t len);

/* A protobuf-c allocator that carves blocks from buf[0..cap) and falls
 * back to libc: a message the library unpacks and later frees itself
 * costs no malloc when it fits.  sc must outlive the unpack only; any
 * scratch over the same buf frees the message (used does not matter). */
typedef struct mrpc__scratch {
  uint8_t *buf;
  size_t cap, used;
} mrpc__scratch;
ProtobufCAllocator mrpc__scratch_allocator(mrpc__scratch *sc);

#endif
