/* Helpers shared by the shipped interceptors.  See ic_common.h. */
#include "ic_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int64_t mrpc__ic_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void mrpc__ic_stderr_line(const char *line) {
  /* stderr is unbuffered: text and newline in one write, so that other
   * output (another stream on the same file) can not land inside a line. */
  char buf[1024];
  size_t n = strlen(line);
  flockfile(stderr);
  if (n < sizeof buf) {
    memcpy(buf, line, n);
    buf[n] = '\n';
    fwrite(buf, 1, n + 1, stderr);
  } else {
    fputs(line, stderr);
    fputc('\n', stderr);
  }
  funlockfile(stderr);
}

int mrpc__ic_opts_copy(void *dst, size_t dst_size, const void *src) {
  if (!src) return 0;
  size_t n;
  memcpy(&n, src, sizeof n);
  if (n < sizeof(size_t) || n > dst_size) return MRPC_ERR_INVAL;
  memcpy(dst, src, n);
  memcpy(dst, &dst_size, sizeof dst_size);
  return 0;
}

char *mrpc__ic_strdup(const char *s, int *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = 1;
  return d;
}

char **mrpc__ic_strv_dup(const char *const *v, int *oom) {
  if (!v) return NULL;
  size_t n = 0, bytes = 0;
  for (; v[n]; n++) bytes += strlen(v[n]) + 1;
  char **out = malloc((n + 1) * sizeof *out + bytes);
  if (!out) {
    *oom = 1;
    return NULL;
  }
  char *p = (char *)(out + n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(v[i]) + 1;
    memcpy(p, v[i], l);
    out[i] = p;
    p += l;
  }
  out[n] = NULL;
  return out;
}

static void buf_reserve(mrpc__ic_buf *b, size_t more) {
  if (b->oom || b->len + more < b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap <= b->len + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return;
  }
  b->p = p;
  b->cap = cap;
}

void mrpc__ic_buf_vprintf(mrpc__ic_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  buf_reserve(b, (size_t)n + 1);
  if (b->oom) return;
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  b->len += (size_t)n;
}

void mrpc__ic_buf_printf(mrpc__ic_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mrpc__ic_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void mrpc__ic_buf_escaped(mrpc__ic_buf *b, const char *s, size_t n) {
  buf_reserve(b, 4 * n + 1);
  if (b->oom) return;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      b->p[b->len++] = '\\';
      b->p[b->len++] = (char)c;
    } else if (c == '\n') {
      b->p[b->len++] = '\\';
      b->p[b->len++] = 'n';
    } else if (c < 0x20 || c == 0x7f) {
      b->len += (size_t)snprintf(b->p + b->len, 5, "\\x%02x", c);
    } else {
      b->p[b->len++] = (char)c;
    }
  }
  b->p[b->len] = '\0';
}

/* splitmix64: the fallback when getrandom has nothing (early boot). */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void mrpc__ic_uuid(char out[37]) {
  uint8_t r[16];
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    static atomic_uint_fast64_t counter;
    uint64_t c = atomic_fetch_add(&counter, 1);
    uint64_t a = mix64((uint64_t)mrpc__ic_now_ns() ^ ((uint64_t)getpid() << 32));
    uint64_t b = mix64(a ^ c);
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
  }
  r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
  r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* variant 10 */
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[r[i] >> 4];
    *p++ = hex[r[i] & 15];
  }
  *p = '\0';
}

int mrpc__ic_token_ok(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e) return 0;
  return 1;
}

int mrpc__ic_printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
  return 1;
}
