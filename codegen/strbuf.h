/* protoc-gen-minirpc: growable strings and allocation that can not fail.
 *
 * The plugin is a short-lived filter: running out of memory ends it with a
 * message on stderr (protoc then reports the plugin failed), so callers
 * never check for NULL.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CODEGEN_STRBUF_H
#define MINIRPC_CODEGEN_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define CG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CG_PRINTF(f, a)
#endif

void *cg_malloc(size_t n);
void *cg_calloc(size_t n, size_t size);
void *cg_realloc(void *p, size_t n);
char *cg_strdup(const char *s);
/* A new string, formatted like printf. */
char *cg_fmt(const char *fmt, ...) CG_PRINTF(1, 2);
char *cg_vfmt(const char *fmt, va_list ap) CG_PRINTF(1, 0);

/* A string being built.  Zero-initialized is empty; p is NUL-terminated
 * once anything was added (use cg_sb_str to read it either way). */
typedef struct cg_sb {
  char *p;
  size_t len, cap;
} cg_sb;

void cg_sb_add(cg_sb *b, const char *s);
void cg_sb_addn(cg_sb *b, const char *s, size_t n);
void cg_sb_addc(cg_sb *b, char c);
void cg_sb_printf(cg_sb *b, const char *fmt, ...) CG_PRINTF(2, 3);
/* The text so far ("" when nothing was added); owned by b. */
const char *cg_sb_str(const cg_sb *b);
/* Hands the text to the caller (never NULL) and empties b. */
char *cg_sb_take(cg_sb *b);
void cg_sb_free(cg_sb *b);

#endif
