/* A tiny word-level trigram language model with backoff, for the LLM
 * streaming example.  Built once from a text; read-only afterwards, so one
 * model serves any number of threads, each with its own ngram_gen.
 *
 * Tokens are words (letters, digits, inner ' and -, any byte >= 0x80) and the
 * punctuation marks . , ; : ! ?  Everything else (spaces, quotes, brackets)
 * only separates tokens; a blank line ends a sentence.
 *
 * Generation continues from the last two tokens of a prompt: a trigram
 * (both known and seen together), else a bigram (last one known), else a
 * sentence start.  Each step picks among the continuations seen in the text,
 * weighted by how often they were seen; with a small probability it backs off
 * from the trigram to the bigram, which mixes fables.  The random generator
 * is seeded from the prompt, so one prompt always gives the same text and a
 * shorter run is a prefix of a longer one.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef EXAMPLES_LLM_NGRAM_H
#define EXAMPLES_LLM_NGRAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct ngram_model ngram_model;

/* Builds a model from text (len bytes, need not be NUL-terminated).  Returns
 * NULL when out of memory or when the text has fewer than 3 tokens. */
ngram_model *ngram_build(const char *text, size_t len);
void ngram_free(ngram_model *m);

/* Number of tokens in the text and of distinct words / marks. */
size_t ngram_token_count(const ngram_model *m);
size_t ngram_vocab_size(const ngram_model *m);

/* One generation.  Plain data, no allocation: lives on the stack. */
typedef struct ngram_gen {
  const ngram_model *m;
  uint64_t rng;
  int32_t prev2, prev1; /* context keys, -1 = none */
  int32_t next;         /* look-ahead token (surface id), -1 = none yet */
  int sentence_start;   /* the next word starts a sentence */
} ngram_gen;

/* Starts a generation that continues prompt (NUL-terminated UTF-8). */
void ngram_gen_init(ngram_gen *g, const ngram_model *m, const char *prompt);

/* Writes the next token into buf (NUL-terminated, at most cap - 1 bytes;
 * longer tokens are cut): a word followed by a space, or a word without one
 * when punctuation follows, or a punctuation mark followed by a space.
 * Returns the token's length.  *sentence_end is set to 1 when the token
 * ends a sentence (. ! ?), else 0; it may be NULL.  Never runs out. */
size_t ngram_gen_next(ngram_gen *g, char *buf, size_t cap, int *sentence_end);

#endif
