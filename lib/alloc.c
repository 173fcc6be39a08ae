#include "alloc.h"

#include <stdlib.h>
#include <string.h>

void *mrpc__malloc(const mrpc_allocator *a, size_t n) {
  return a ? a->malloc(n, a->user_data) : malloc(n);
}

void *mrpc__calloc(const mrpc_allocator *a, size_t nmemb, size_t n) {
  return a ? a->calloc(nmemb, n, a->user_data) : calloc(nmemb, n);
}

void *mrpc__realloc(const mrpc_allocator *a, void *p, size_t n) {
  return a ? a->realloc(p, n, a->user_data) : realloc(p, n);
}

void mrpc__free(const mrpc_allocator *a, void *p) {
  if (a)
    a->free(p, a->user_data);
  else
    free(p);
}

char *mrpc__strndup(const mrpc_allocator *a, const char *s, size_t len) {
  char *p = mrpc__malloc(a, len + 1);
  if (!p) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}
