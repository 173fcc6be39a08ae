/* Unit tests of examples/llm/ngram.c, the trigram model behind llm_server.
 * Built as $(BUILD)/tests/examples/llm_ngram_test (examples/llm/llm.mk) and
 * run by tests/examples/llm.sh.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ngram.h"

extern const char llm_corpus[];
extern const size_t llm_corpus_len;

/* Generates n tokens of prompt into out (concatenated). */
static void gen(const ngram_model *m, const char *prompt, int n, char *out,
                size_t cap) {
  ngram_gen g;
  ngram_gen_init(&g, m, prompt);
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    char tok[80];
    size_t len = ngram_gen_next(&g, tok, sizeof tok, NULL);
    assert_true(len > 0);
    assert_true(used + len < cap);
    memcpy(out + used, tok, len + 1);
    used += len;
  }
}

static void too_small(void **state) {
  (void)state;
  assert_null(ngram_build("", 0));
  assert_null(ngram_build("one two", 7));
  assert_null(ngram_build("\"\" -- ()", 8));
}

/* A text with one way to go: the model can only repeat it. */
static void single_path(void **state) {
  (void)state;
  const char *t = "one cat sat on the mat.";
  ngram_model *m = ngram_build(t, strlen(t));
  assert_non_null(m);
  assert_int_equal(ngram_token_count(m), 7); /* 6 words and "." */
  char out[256];
  gen(m, "one cat", 5, out, sizeof out);
  assert_string_equal(out, "sat on the mat. ");
  ngram_free(m);
}

/* Spacing: no space before punctuation, one after; a capital after the end
 * of a sentence; a paragraph break ends a sentence too. */
static void spacing_and_capitals(void **state) {
  (void)state;
  const char *t = "Title Line\n\nwe went home, and slept.";
  ngram_model *m = ngram_build(t, strlen(t));
  assert_non_null(m);
  char out[256];
  gen(m, "Title Line", 6, out, sizeof out);
  /* "." after the title, then the next sentence, capitalized. */
  assert_string_equal(out, ". We went home, and ");
  ngram_free(m);
}

/* A prompt the model does not know starts a sentence. */
static void unknown_prompt(void **state) {
  (void)state;
  const char *t = "alpha beta gamma. delta epsilon zeta.";
  ngram_model *m = ngram_build(t, strlen(t));
  assert_non_null(m);
  char out[256];
  gen(m, "완전히 모르는 말", 1, out, sizeof out);
  assert_true(strcmp(out, "Alpha ") == 0 || strcmp(out, "Delta ") == 0);
  gen(m, "", 1, out, sizeof out);
  assert_true(strcmp(out, "Alpha ") == 0 || strcmp(out, "Delta ") == 0);
  ngram_free(m);
}

/* The prompt's last two words pick the continuation (trigram), with some
 * backoff to the last word alone (bigram): after "red fox" the text has only
 * "runs", after "fox" both "runs" and "sleeps".  Over 200 prompts (seeds),
 * "runs" must win far more often than the bigram's one in two. */
static void continues_prompt(void **state) {
  (void)state;
  const char *t = "red fox runs. blue fox sleeps.";
  ngram_model *m = ngram_build(t, strlen(t));
  assert_non_null(m);
  int runs = 0, n = 200;
  for (int i = 0; i < n; i++) {
    char prompt[64], out[64];
    snprintf(prompt, sizeof prompt, "try %d: red fox", i);
    gen(m, prompt, 1, out, sizeof out);
    if (strcmp(out, "runs") == 0) runs++;
    else assert_string_equal(out, "sleeps");
  }
  assert_true(runs >= n * 8 / 10);
  assert_true(runs < n); /* and it does back off sometimes */
  ngram_free(m);
}

/* One prompt, one text; a shorter run is a prefix; other prompts differ. */
static void deterministic(void **state) {
  (void)state;
  ngram_model *m = ngram_build(llm_corpus, llm_corpus_len);
  assert_non_null(m);
  char a[8192], b[8192], c[8192], d[8192];
  gen(m, "Once upon a time", 200, a, sizeof a);
  gen(m, "Once upon a time", 200, b, sizeof b);
  gen(m, "Once upon a time", 20, c, sizeof c);
  gen(m, "Once upon a time, a Fox", 200, d, sizeof d);
  assert_string_equal(a, b);
  assert_memory_equal(a, c, strlen(c));
  assert_string_not_equal(a, d);
  ngram_free(m);
}

/* Long runs never fail and never produce an empty token, "  " or a space
 * before punctuation. */
static void long_run(void **state) {
  (void)state;
  ngram_model *m = ngram_build(llm_corpus, llm_corpus_len);
  assert_non_null(m);
  static char out[200000];
  gen(m, "The Fox", 10000, out, sizeof out);
  assert_null(strstr(out, "  "));
  assert_null(strstr(out, " ."));
  assert_null(strstr(out, " ,"));
  ngram_free(m);
}

/* Tokens longer than the buffer are cut, still NUL-terminated. */
static void small_buffer(void **state) {
  (void)state;
  const char *t = "abcdefghij klmnop qrstuv.";
  ngram_model *m = ngram_build(t, strlen(t));
  assert_non_null(m);
  ngram_gen g;
  ngram_gen_init(&g, m, "qrstuv.");
  char tok[4];
  assert_int_equal(ngram_gen_next(&g, tok, sizeof tok, NULL), 3);
  assert_string_equal(tok, "Abc");
  ngram_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(too_small),
      cmocka_unit_test(single_path),
      cmocka_unit_test(spacing_and_capitals),
      cmocka_unit_test(unknown_prompt),
      cmocka_unit_test(continues_prompt),
      cmocka_unit_test(deterministic),
      cmocka_unit_test(long_run),
      cmocka_unit_test(small_buffer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
