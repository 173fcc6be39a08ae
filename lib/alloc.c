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

static void *scratch_alloc(void *ud, size_t n) {
  mrpc__scratch *sc = ud;
  size_t a = (n + 15) & ~(size_t)15;
  if (a >= n && a <= sc->cap - sc->used) {
    void *p = sc->buf + sc->used;
    sc->used += a;
    return p;
  }
  return malloc(n);
}

static void scratch_free(void *ud, void *p) {
  mrpc__scratch *sc = ud;
  uint8_t *b = p;
  if (b >= sc->buf && b < sc->buf + sc->cap) return;
  free(p);
}

ProtobufCAllocator mrpc__scratch_allocator(mrpc__scratch *sc) {
  return (ProtobufCAllocator){scratch_alloc, scratch_free, sc};
}

char *mrpc__strndup(const mrpc_allocator *a, const char *s, size_t len) {
  char *p = mrpc__malloc(a, len + 1);
  if (!p) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}
