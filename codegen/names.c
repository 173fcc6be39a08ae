/* protoc-gen-minirpc: C names, as protoc-c makes them.
 * SPDX-License-Identifier: Apache-2.0 */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* ASCII only: protoc names are ASCII identifiers, and the plugin must not
 * depend on the locale. */
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static char to_upper(char c) { return is_lower(c) ? (char)(c - 'a' + 'A') : c; }
static char to_lower(char c) { return is_upper(c) ? (char)(c - 'A' + 'a') : c; }

static void camel_to(cg_sb *b, const char *s, bool upper) {
  bool was_upper = true; /* no '_' before a leading capital */
  for (; *s; s++) {
    bool up = is_upper(*s);
    if (up && !was_upper) cg_sb_addc(b, '_');
    cg_sb_addc(b, upper ? to_upper(*s) : to_lower(*s));
    was_upper = up;
  }
}

char *cg_camel_to_lower(const char *s) {
  cg_sb b = {0};
  camel_to(&b, s, false);
  return cg_sb_take(&b);
}

char *cg_camel_to_upper(const char *s) {
  cg_sb b = {0};
  camel_to(&b, s, true);
  return cg_sb_take(&b);
}

static void to_camel(cg_sb *b, const char *s, size_t n) {
  bool next_upper = true;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '_') {
      next_upper = true;
    } else if (next_upper) {
      cg_sb_addc(b, to_upper(s[i]));
      next_upper = false;
    } else {
      cg_sb_addc(b, s[i]);
    }
  }
}

enum piece_style { LOWER, UPPER, CAMEL };

/* SplitStringUsing(full, ".") drops empty pieces; the rest are joined with
 * "__" after the per-piece rule. */
static char *full_name_to(const char *full, enum piece_style style) {
  cg_sb b = {0}, piece = {0};
  const char *p = full;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      if (b.len) cg_sb_add(&b, "__");
      if (style == CAMEL) {
        to_camel(&b, p, n);
      } else {
        cg_sb_addn(&piece, p, n);
        camel_to(&b, cg_sb_str(&piece), style == UPPER);
        piece.len = 0;
      }
    }
    p += n;
    if (*p == '.') p++;
  }
  cg_sb_free(&piece);
  return cg_sb_take(&b);
}

char *cg_full_name_to_lower(const char *full) {
  return full_name_to(full, LOWER);
}

char *cg_full_name_to_upper(const char *full) {
  return full_name_to(full, UPPER);
}

char *cg_full_name_to_c(const char *full) { return full_name_to(full, CAMEL); }

char *cg_override_full_name(const char *full, const char *package,
                            const char *c_package) {
  if (!c_package) return cg_strdup(full);
  size_t plen = package ? strlen(package) : 0;
  if (plen > strlen(full)) plen = strlen(full); /* not from protoc */
  return cg_fmt("%s%s%s", c_package, plen ? "" : ".", full + plen);
}

bool cg_is_ident(const char *s) {
  if (!s || !(is_upper(*s) || is_lower(*s) || *s == '_')) return false;
  for (s++; *s; s++)
    if (!(is_upper(*s) || is_lower(*s) || is_digit(*s) || *s == '_'))
      return false;
  return true;
}

static const struct {
  const char *name, *why;
} k_reserved[] = {
    /* C89 .. C11 */
    {"auto", "a C keyword"}, {"break", "a C keyword"},
    {"case", "a C keyword"}, {"char", "a C keyword"},
    {"const", "a C keyword"}, {"continue", "a C keyword"},
    {"default", "a C keyword"}, {"do", "a C keyword"},
    {"double", "a C keyword"}, {"else", "a C keyword"},
    {"enum", "a C keyword"}, {"extern", "a C keyword"},
    {"float", "a C keyword"}, {"for", "a C keyword"},
    {"goto", "a C keyword"}, {"if", "a C keyword"},
    {"inline", "a C keyword"}, {"int", "a C keyword"},
    {"long", "a C keyword"}, {"register", "a C keyword"},
    {"restrict", "a C keyword"}, {"return", "a C keyword"},
    {"short", "a C keyword"}, {"signed", "a C keyword"},
    {"sizeof", "a C keyword"}, {"static", "a C keyword"},
    {"struct", "a C keyword"}, {"switch", "a C keyword"},
    {"typedef", "a C keyword"}, {"union", "a C keyword"},
    {"unsigned", "a C keyword"}, {"void", "a C keyword"},
    {"volatile", "a C keyword"}, {"while", "a C keyword"},
    /* C23, and the macros that spell them before C23 */
    {"alignas", "a C23 keyword (a macro of <stdalign.h> before)"},
    {"alignof", "a C23 keyword (a macro of <stdalign.h> before)"},
    {"bool", "a C23 keyword (a macro of <stdbool.h> before)"},
    {"constexpr", "a C23 keyword"},
    {"false", "a C23 keyword (a macro of <stdbool.h> before)"},
    {"nullptr", "a C23 keyword"},
    {"static_assert", "a C23 keyword (a macro of <assert.h> before)"},
    {"thread_local", "a C23 keyword (a macro of <threads.h> before)"},
    {"true", "a C23 keyword (a macro of <stdbool.h> before)"},
    {"typeof", "a C23 and GNU C keyword"},
    {"typeof_unqual", "a C23 keyword"},
    /* GNU C */
    {"asm", "a GNU C keyword"},
    /* macros of common headers or of the compiler */
    {"errno", "a macro of <errno.h>"},
    {"complex", "a macro of <complex.h>"},
    {"imaginary", "a macro of <complex.h>"},
    {"noreturn", "a macro of <stdnoreturn.h>"},
    {"linux", "a macro GCC predefines in GNU modes"},
    {"unix", "a macro GCC predefines in GNU modes"},
};

const char *cg_reserved_why(const char *name) {
  for (size_t i = 0; i < sizeof k_reserved / sizeof k_reserved[0]; i++)
    if (strcmp(name, k_reserved[i].name) == 0) return k_reserved[i].why;
  return NULL;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *cg_strip_proto(const char *file_name) {
  size_t n = strlen(file_name);
  if (ends_with(file_name, ".protodevel"))
    n -= strlen(".protodevel");
  else if (ends_with(file_name, ".proto"))
    n -= strlen(".proto");
  char *s = cg_malloc(n + 1);
  memcpy(s, file_name, n);
  s[n] = '\0';
  return s;
}

char *cg_file_ident(const char *file_name) {
  char *base = cg_strip_proto(file_name);
  cg_sb b = {0};
  for (const char *p = base; *p; p++) {
    if (*p == '/')
      cg_sb_add(&b, "__");
    else if (is_upper(*p) || is_lower(*p) || is_digit(*p) || *p == '_')
      cg_sb_addc(&b, to_lower(*p));
    else
      cg_sb_addc(&b, '_');
  }
  free(base);
  char *id = cg_sb_take(&b);
  if (!*id || is_digit(*id)) {
    free(id);
    return NULL;
  }
  return id;
}

char *cg_file_guard(const char *file_name) {
  static const char hex[] = "0123456789abcdef";
  cg_sb b = {0};
  cg_sb_add(&b, "MINIRPC_GEN_");
  for (const char *p = file_name; *p; p++) {
    if (is_upper(*p) || is_lower(*p) || is_digit(*p)) {
      cg_sb_addc(&b, *p);
    } else {
      unsigned char c = (unsigned char)*p;
      cg_sb_addc(&b, '_');
      cg_sb_addc(&b, hex[c >> 4]);
      cg_sb_addc(&b, hex[c & 15]);
    }
  }
  cg_sb_add(&b, "__MRPC_H");
  return cg_sb_take(&b);
}
