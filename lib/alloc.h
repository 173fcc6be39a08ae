/* Allocation through the optional mrpc_allocator hook. */
#ifndef MRPC_LIB_ALLOC_H
#define MRPC_LIB_ALLOC_H

#include <minirpc/common.h>

/* a may be NULL (libc).  Same contracts as malloc/calloc/realloc/free. */
void *mrpc__malloc(const mrpc_allocator *a, size_t n);
void *mrpc__calloc(const mrpc_allocator *a, size_t nmemb, size_t n);
void *mrpc__realloc(const mrpc_allocator *a, void *p, size_t n);
void mrpc__free(const mrpc_allocator *a, void *p);
/* Copy of s[0..len) plus a NUL, or NULL on OOM. */
char *mrpc__strndup(const mrpc_allocator *a, const char *s, size_t len);

#endif
