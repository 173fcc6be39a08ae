/* Word-level trigram model with backoff: see ngram.h.
 * SPDX-License-Identifier: Apache-2.0 */
#include "ngram.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN 64 /* longer words are cut (the corpus has none) */
#define BACKOFF_PERCENT 15

/* ---- string table: interned strings with open addressing ------------- */

typedef struct strtab {
  char **str;     /* id -> string */
  size_t n, cap;  /* ids */
  int32_t *slot;  /* hash slot -> id, -1 empty */
  size_t nslot;   /* power of two */
} strtab;

static uint64_t fnv1a(const void *p, size_t len) {
  const unsigned char *s = p;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static void strtab_free(strtab *t) {
  for (size_t i = 0; i < t->n; i++) free(t->str[i]);
  free(t->str);
  free(t->slot);
}

static int32_t strtab_find(const strtab *t, const char *s, size_t len,
                           size_t *slot_out) {
  size_t mask = t->nslot - 1, i = fnv1a(s, len) & mask;
  while (t->slot[i] >= 0) {
    const char *c = t->str[t->slot[i]];
    if (strncmp(c, s, len) == 0 && c[len] == '\0') return t->slot[i];
    i = (i + 1) & mask;
  }
  if (slot_out) *slot_out = i;
  return -1;
}

static int strtab_grow(strtab *t) {
  size_t nslot = t->nslot ? t->nslot * 2 : 1024;
  int32_t *slot = malloc(nslot * sizeof *slot);
  if (!slot) return -1;
  memset(slot, 0xff, nslot * sizeof *slot);
  for (size_t id = 0; id < t->n; id++) {
    size_t i = fnv1a(t->str[id], strlen(t->str[id])) & (nslot - 1);
    while (slot[i] >= 0) i = (i + 1) & (nslot - 1);
    slot[i] = (int32_t)id;
  }
  free(t->slot);
  t->slot = slot;
  t->nslot = nslot;
  return 0;
}

/* The id of s (len bytes), added if new; -1 when out of memory. */
static int32_t strtab_intern(strtab *t, const char *s, size_t len) {
  if ((t->n + 1) * 2 > t->nslot && strtab_grow(t) != 0) return -1;
  size_t slot;
  int32_t id = strtab_find(t, s, len, &slot);
  if (id >= 0) return id;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    char **p = realloc(t->str, cap * sizeof *p);
    if (!p) return -1;
    t->str = p;
    t->cap = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, s, len);
  copy[len] = '\0';
  t->str[t->n] = copy;
  t->slot[slot] = (int32_t)t->n;
  return (int32_t)t->n++;
}

/* ---- tokenizer ---------------------------------------------------------- */

enum { TOK_WORD, TOK_PUNCT, TOK_PARA };

static int is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c >= 0x80;
}

static int is_punct_byte(unsigned char c) {
  return c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?';
}

/* Next token of s[*pos..len): returns its type and start/length, or -1 at
 * the end.  A blank line (two newlines with only spaces between) is
 * TOK_PARA.  ' and - belong to a word only between word bytes. */
static int next_token(const char *s, size_t len, size_t *pos, size_t *start,
                      size_t *tlen) {
  size_t i = *pos;
  int newlines = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    if (is_word_byte(c) || is_punct_byte(c)) break;
    if (c == '\n') newlines++;
    i++;
  }
  if (newlines >= 2) {
    *pos = i;
    *start = i;
    *tlen = 0;
    return TOK_PARA;
  }
  if (i >= len) {
    *pos = i;
    return -1;
  }
  *start = i;
  if (is_punct_byte((unsigned char)s[i])) {
    *tlen = 1;
    *pos = i + 1;
    return TOK_PUNCT;
  }
  size_t j = i;
  while (j < len) {
    unsigned char c = (unsigned char)s[j];
    if (is_word_byte(c)) {
      j++;
    } else if ((c == '\'' || c == '-') && j + 1 < len &&
               is_word_byte((unsigned char)s[j + 1])) {
      j++;
    } else {
      break;
    }
  }
  *tlen = j - i;
  *pos = j;
  return TOK_WORD;
}

/* Lowercase copy of an ASCII-or-UTF-8 word (only ASCII letters change). */
static size_t lower_copy(char *dst, const char *src, size_t len) {
  if (len > MAX_TOKEN) len = MAX_TOKEN;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  dst[len] = '\0';
  return len;
}

/* ---- the model ----------------------------------------------------------- */

struct ngram_model {
  strtab surf;       /* surface forms ("The", "the", ",") */
  strtab keys;       /* lowercase forms: the context keys */
  int32_t *surf_key; /* surface id -> key id */
  int32_t *tokens;   /* the text, as surface ids */
  size_t n;
  /* Positions i (i + 1 < n) grouped by key(tokens[i]): for key k they are
   * by_key[key_off[k] .. key_off[k + 1]). */
  int32_t *by_key;
  int32_t *key_off;
  int32_t *starts; /* positions of sentence-initial words */
  size_t n_starts;
};

static int is_punct_tok(const ngram_model *m, int32_t surf) {
  return is_punct_byte((unsigned char)m->surf.str[surf][0]);
}

static int is_end_tok(const ngram_model *m, int32_t surf) {
  char c = m->surf.str[surf][0];
  return c == '.' || c == '!' || c == '?';
}

void ngram_free(ngram_model *m) {
  if (!m) return;
  strtab_free(&m->surf);
  strtab_free(&m->keys);
  free(m->surf_key);
  free(m->tokens);
  free(m->by_key);
  free(m->key_off);
  free(m->starts);
  free(m);
}

size_t ngram_token_count(const ngram_model *m) { return m->n; }
size_t ngram_vocab_size(const ngram_model *m) { return m->surf.n; }

static int push_token(ngram_model *m, size_t *cap, const char *s,
                      size_t len) {
  char low[MAX_TOKEN + 1];
  if (len > MAX_TOKEN) len = MAX_TOKEN;
  size_t known = m->surf.n;
  int32_t surf = strtab_intern(&m->surf, s, len);
  if (surf < 0) return -1;
  if ((size_t)surf == known) {
    /* A new surface form: find or make its key. */
    size_t ll = lower_copy(low, s, len);
    int32_t key = strtab_intern(&m->keys, low, ll);
    if (key < 0) return -1;
    int32_t *sk = realloc(m->surf_key, m->surf.cap * sizeof *sk);
    if (!sk) return -1;
    m->surf_key = sk;
    m->surf_key[surf] = key;
  }
  if (m->n == *cap) {
    *cap = *cap ? *cap * 2 : 4096;
    int32_t *t = realloc(m->tokens, *cap * sizeof *t);
    if (!t) return -1;
    m->tokens = t;
  }
  m->tokens[m->n++] = surf;
  return 0;
}

ngram_model *ngram_build(const char *text, size_t len) {
  ngram_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  size_t cap = 0, pos = 0, start, tlen;
  int type;
  while ((type = next_token(text, len, &pos, &start, &tlen)) >= 0) {
    if (type == TOK_PARA) {
      /* A paragraph (or a title) ends a sentence. */
      if (m->n > 0 && !is_end_tok(m, m->tokens[m->n - 1]) &&
          push_token(m, &cap, ".", 1) != 0)
        goto fail;
      continue;
    }
    if (push_token(m, &cap, text + start, tlen) != 0) goto fail;
  }
  if (m->n < 3) goto fail;

  size_t nkeys = m->keys.n;
  m->key_off = calloc(nkeys + 1, sizeof *m->key_off);
  m->by_key = malloc(m->n * sizeof *m->by_key);
  m->starts = malloc(m->n * sizeof *m->starts);
  if (!m->key_off || !m->by_key || !m->starts) goto fail;
  for (size_t i = 0; i + 1 < m->n; i++)
    m->key_off[m->surf_key[m->tokens[i]] + 1]++;
  for (size_t k = 0; k < nkeys; k++) m->key_off[k + 1] += m->key_off[k];
  int32_t *fill = malloc((nkeys + 1) * sizeof *fill);
  if (!fill) goto fail;
  memcpy(fill, m->key_off, (nkeys + 1) * sizeof *fill);
  for (size_t i = 0; i + 1 < m->n; i++)
    m->by_key[fill[m->surf_key[m->tokens[i]]]++] = (int32_t)i;
  free(fill);
  for (size_t i = 0; i + 1 < m->n; i++)
    if (!is_punct_tok(m, m->tokens[i]) &&
        (i == 0 || is_end_tok(m, m->tokens[i - 1])))
      m->starts[m->n_starts++] = (int32_t)i;
  if (m->n_starts == 0) goto fail;
  return m;
fail:
  ngram_free(m);
  return NULL;
}

/* ---- generation ------------------------------------------------------- */

/* splitmix64: small, good enough, and the same everywhere. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(rng_next(s) % n);
}

void ngram_gen_init(ngram_gen *g, const ngram_model *m, const char *prompt) {
  memset(g, 0, sizeof *g);
  g->m = m;
  g->rng = fnv1a(prompt, strlen(prompt));
  g->prev2 = g->prev1 = -1;
  g->next = -1;
  int32_t last_surf = -1;
  size_t len = strlen(prompt), pos = 0, start, tlen;
  int type;
  char low[MAX_TOKEN + 1];
  while ((type = next_token(prompt, len, &pos, &start, &tlen)) >= 0) {
    if (type == TOK_PARA) continue;
    size_t ll = lower_copy(low, prompt + start, tlen);
    g->prev2 = g->prev1;
    g->prev1 = strtab_find(&m->keys, low, ll, NULL);
    last_surf = strtab_find(&m->surf, low, ll, NULL);
  }
  /* Unknown last word (or no word at all): start a new sentence. */
  if (g->prev1 < 0) g->prev2 = -1;
  g->sentence_start =
      g->prev1 < 0 || (last_surf >= 0 && is_end_tok(m, last_surf));
}

/* Picks the token that follows the context (prev2, prev1). */
static int32_t pick(ngram_gen *g) {
  const ngram_model *m = g->m;
  if (g->prev1 >= 0) {
    const int32_t *pos = m->by_key + m->key_off[g->prev1];
    uint32_t n = (uint32_t)(m->key_off[g->prev1 + 1] - m->key_off[g->prev1]);
    if (n > 0) {
      /* Trigram: positions whose preceding key is prev2 as well. */
      uint32_t tri = 0;
      if (g->prev2 >= 0 && rng_below(&g->rng, 100) >= BACKOFF_PERCENT) {
        for (uint32_t i = 0; i < n; i++)
          if (pos[i] > 0 && m->surf_key[m->tokens[pos[i] - 1]] == g->prev2)
            tri++;
        if (tri > 0) {
          uint32_t want = rng_below(&g->rng, tri);
          for (uint32_t i = 0; i < n; i++)
            if (pos[i] > 0 &&
                m->surf_key[m->tokens[pos[i] - 1]] == g->prev2 &&
                want-- == 0)
              return m->tokens[pos[i] + 1];
        }
      }
      /* Bigram. */
      return m->tokens[pos[rng_below(&g->rng, n)] + 1];
    }
  }
  /* Nothing known: a sentence start. */
  return m->tokens[m->starts[rng_below(&g->rng, (uint32_t)m->n_starts)]];
}

static int32_t advance(ngram_gen *g) {
  int32_t t = pick(g);
  g->prev2 = g->prev1;
  g->prev1 = g->m->surf_key[t];
  return t;
}

size_t ngram_gen_next(ngram_gen *g, char *buf, size_t cap, int *sentence_end) {
  const ngram_model *m = g->m;
  if (g->next < 0) g->next = advance(g);
  int32_t cur = g->next;
  g->next = advance(g); /* look ahead: no space before punctuation */
  const char *s = m->surf.str[cur];
  size_t len = strlen(s), out = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < len && out + 1 < cap; i++) {
    char c = s[i];
    if (i == 0 && g->sentence_start && c >= 'a' && c <= 'z')
      c = (char)(c - 'a' + 'A');
    buf[out++] = c;
  }
  int punct = is_punct_tok(m, cur);
  if ((punct || !is_punct_tok(m, g->next)) && out + 1 < cap) buf[out++] = ' ';
  buf[out] = '\0';
  int end = is_end_tok(m, cur);
  if (!punct) g->sentence_start = 0;
  if (end) g->sentence_start = 1;
  if (sentence_end) *sentence_end = end;
  return out;
}
