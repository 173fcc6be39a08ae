/* protoc-gen-minirpc: growable strings and allocation that can not fail.
 * SPDX-License-Identifier: Apache-2.0 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void) {
  fputs("protoc-gen-minirpc: out of memory\n", stderr);
  exit(1);
}

void *cg_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *cg_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom();
  return p;
}

void *cg_realloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) oom();
  return p;
}

char *cg_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(cg_malloc(n), s, n);
}

static void reserve(cg_sb *b, size_t more) {
  if (more > (size_t)-1 / 2 - b->len) oom();
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1) cap *= 2;
  b->p = cg_realloc(b->p, cap);
  b->cap = cap;
}

void cg_sb_addn(cg_sb *b, const char *s, size_t n) {
  reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void cg_sb_add(cg_sb *b, const char *s) { cg_sb_addn(b, s, strlen(s)); }

void cg_sb_addc(cg_sb *b, char c) { cg_sb_addn(b, &c, 1); }

static void vprintf_sb(cg_sb *b, const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0) oom(); /* only on an encoding error: not with our formats */
  reserve(b, (size_t)n);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void cg_sb_printf(cg_sb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf_sb(b, fmt, ap);
  va_end(ap);
}

char *cg_vfmt(const char *fmt, va_list ap) {
  cg_sb b = {0};
  vprintf_sb(&b, fmt, ap);
  return cg_sb_take(&b);
}

char *cg_fmt(const char *fmt, ...) {
  cg_sb b = {0};
  va_list ap;
  va_start(ap, fmt);
  vprintf_sb(&b, fmt, ap);
  va_end(ap);
  return cg_sb_take(&b);
}

const char *cg_sb_str(const cg_sb *b) { return b->p ? b->p : ""; }

char *cg_sb_take(cg_sb *b) {
  char *p = b->p ? b->p : cg_strdup("");
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

void cg_sb_free(cg_sb *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
