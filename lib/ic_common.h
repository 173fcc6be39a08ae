/* Helpers shared by the shipped interceptors (lib/ic_*.c): clock, default
 * sinks, string building, id generation, option checks.  Everything here
 * allocates with libc: the shipped interceptors are not tied to one
 * server's allocator. */
#ifndef MRPC_LIB_IC_COMMON_H
#define MRPC_LIB_IC_COMMON_H

#include <minirpc/interceptors.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t mrpc__ic_now_ns(void);

/* Writes line plus "\n" to stderr in one piece (lines of concurrent
 * callers do not mix). */
void mrpc__ic_stderr_line(const char *line);

/* Copies an options struct of the caller's size into *dst (already filled
 * with defaults, dst_size bytes).  Returns 0 or MRPC_ERR_INVAL when
 * src->size (the first size_t) is out of range.  src NULL keeps the
 * defaults. */
int mrpc__ic_opts_copy(void *dst, size_t dst_size, const void *src);

/* libc strdup that accepts NULL (returns NULL; *oom set if the copy of a
 * non-NULL string failed). */
char *mrpc__ic_strdup(const char *s, int *oom);

/* Deep copy of a NULL-terminated string list in one allocation (free()
 * it).  NULL -> NULL with *oom untouched. */
char **mrpc__ic_strv_dup(const char *const *v, int *oom);

/* A growable text buffer. */
typedef struct mrpc__ic_buf {
  char *p;
  size_t len, cap;
  int oom;
} mrpc__ic_buf;

void mrpc__ic_buf_printf(mrpc__ic_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mrpc__ic_buf_vprintf(mrpc__ic_buf *b, const char *fmt, va_list ap);
/* Appends s[0..n) with '"', '\\' and control bytes escaped (\" \\ \n \xNN),
 * as in Prometheus label values and our log lines. */
void mrpc__ic_buf_escaped(mrpc__ic_buf *b, const char *s, size_t n);

/* A random UUID v4, 36 characters plus the NUL. */
void mrpc__ic_uuid(char out[37]);

/* 1 if every byte of s is in 0x21..0x7E and s is not empty. */
int mrpc__ic_token_ok(const char *s);

/* 1 if s is printable ASCII (0x20..0x7E), possibly empty. */
int mrpc__ic_printable(const char *s);

#endif
