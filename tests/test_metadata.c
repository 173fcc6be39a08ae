/* Unit tests for call metadata, key rules, base64 and wire ingest
 * (lib/metadata.c).  Allocations go through cmocka so leaks are caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metadata.h"

/* ---- helpers ---- */

/* cmocka-backed allocator; the fail_at-th call (1-based) fails when set. */
typedef struct tracker {
  int calls;
  int fail_at;
  int failed;
} tracker;

static int fail_now(tracker *t) {
  t->calls++;
  if (t->fail_at && t->calls == t->fail_at) t->failed = 1;
  return t->fail_at && t->calls == t->fail_at;
}
static void *t_malloc(size_t n, void *ud) {
  return fail_now(ud) ? NULL : test_malloc(n);
}
static void *t_calloc(size_t m, size_t n, void *ud) {
  return fail_now(ud) ? NULL : test_calloc(m, n);
}
static void *t_realloc(void *p, size_t n, void *ud) {
  return fail_now(ud) ? NULL : test_realloc(p, n);
}
static void t_free(void *p, void *ud) {
  (void)ud;
  if (p) test_free(p);
}

static tracker g_tracker;
static const mrpc_allocator g_alloc = {t_malloc, t_calloc, t_realloc, t_free,
                                       &g_tracker};

static mrpc_metadata *new_md(void) {
  memset(&g_tracker, 0, sizeof(g_tracker));
  mrpc_metadata *md = mrpc_metadata_new(&g_alloc);
  assert_non_null(md);
  return md;
}

static int add_wire(mrpc_metadata *md, const char *name, const char *value) {
  return mrpc__metadata_add_wire(md, (const uint8_t *)name, strlen(name),
                                 (const uint8_t *)value, strlen(value));
}

static void check_at(const mrpc_metadata *md, size_t i, const char *key,
                     const void *val, size_t len) {
  const char *k = NULL;
  const uint8_t *v = NULL;
  size_t l = 12345;
  assert_int_equal(mrpc_metadata_at(md, i, &k, &v, &l), 0);
  assert_string_equal(k, key);
  assert_int_equal(l, len);
  if (len) assert_memory_equal(v, val, len);
  assert_int_equal(v[len], '\0');
  assert_int_equal(mrpc__metadata_key_len(md, i), strlen(key));
}

static void check_encode(const char *in, const char *want) {
  char out[64];
  size_t len = strlen(in);
  assert_int_equal(mrpc__base64_encoded_len(len), strlen(want));
  assert_int_equal(mrpc__base64_encode((const uint8_t *)in, len, out),
                   strlen(want));
  assert_memory_equal(out, want, strlen(want));
}

static void check_decode(const char *in, const char *want) {
  uint8_t out[64];
  size_t n = 999;
  assert_true(strlen(in) <= sizeof(out));
  assert_int_equal(mrpc__base64_decode(in, strlen(in), out, &n), 0);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static void check_decode_fails(const char *in) {
  uint8_t out[64];
  size_t n = 999;
  assert_int_equal(mrpc__base64_decode(in, strlen(in), out, &n),
                   MRPC_ERR_PARSE);
}

/* ---- map basics ---- */

static void test_metadata_new_is_empty(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc_metadata_count(md), 0);
  assert_null(mrpc_metadata_get(md, "a", NULL));
  assert_int_equal(mrpc_metadata_at(md, 0, NULL, NULL, NULL), MRPC_ERR_INVAL);
  mrpc_metadata_del(md);
}

static void test_metadata_new_with_libc_allocator(void **state) {
  (void)state;
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  assert_non_null(md);
  assert_int_equal(mrpc_metadata_add_str(md, "k", "v"), 0);
  assert_string_equal((const char *)mrpc_metadata_get(md, "k", NULL), "v");
  mrpc_metadata_del(md);
}

static void test_metadata_del_null_is_a_no_op(void **state) {
  (void)state;
  mrpc_metadata_del(NULL);
  mrpc_metadata_clear(NULL);
  assert_int_equal(mrpc_metadata_count(NULL), 0);
  assert_null(mrpc_metadata_get(NULL, "a", NULL));
  assert_int_equal(mrpc_metadata_at(NULL, 0, NULL, NULL, NULL),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc__metadata_key_len(NULL, 0), 0);
}

static void test_metadata_add_get_at_keep_insertion_order(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc_metadata_add_str(md, "zeta", "1"), 0);
  assert_int_equal(mrpc_metadata_add(md, "alpha", "two", 3), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "m.i_d-dle9", ""), 0);
  assert_int_equal(mrpc_metadata_count(md), 3);
  check_at(md, 0, "zeta", "1", 1);
  check_at(md, 1, "alpha", "two", 3);
  check_at(md, 2, "m.i_d-dle9", "", 0);
  size_t len = 99;
  const uint8_t *v = mrpc_metadata_get(md, "alpha", &len);
  assert_non_null(v);
  assert_int_equal(len, 3);
  assert_string_equal((const char *)v, "two");
  assert_null(mrpc_metadata_get(md, "alph", NULL));
  assert_null(mrpc_metadata_get(md, "alphaa", NULL));
  assert_null(mrpc_metadata_get(md, NULL, NULL));
  assert_int_equal(mrpc_metadata_at(md, 3, NULL, NULL, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc__metadata_key_len(md, 3), 0);
  mrpc_metadata_del(md);
}

static void test_metadata_value_is_copied(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  char buf[] = "abc";
  assert_int_equal(mrpc_metadata_add_str(md, "k", buf), 0);
  buf[0] = 'X';
  assert_string_equal((const char *)mrpc_metadata_get(md, "k", NULL), "abc");
  mrpc_metadata_del(md);
}

static void test_metadata_duplicates_kept_in_order(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc_metadata_add_str(md, "dup", "first"), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "other", "x"), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "dup", "second"), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "dup", "first"), 0);
  assert_int_equal(mrpc_metadata_count(md), 4);
  check_at(md, 0, "dup", "first", 5);
  check_at(md, 2, "dup", "second", 6);
  check_at(md, 3, "dup", "first", 5);
  assert_string_equal((const char *)mrpc_metadata_get(md, "dup", NULL),
                      "first");
  mrpc_metadata_del(md);
}

static void test_metadata_grows_past_many_entries(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  char key[16], val[16];
  for (int i = 0; i < 300; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    snprintf(val, sizeof(val), "v%d", i);
    assert_int_equal(mrpc_metadata_add_str(md, key, val), 0);
  }
  assert_int_equal(mrpc_metadata_count(md), 300);
  for (int i = 0; i < 300; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    snprintf(val, sizeof(val), "v%d", i);
    check_at(md, (size_t)i, key, val, strlen(val));
  }
  mrpc_metadata_del(md);
}

static void test_metadata_clear_removes_everything(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc_metadata_add_str(md, "a", "1"), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "b", "2"), 0);
  mrpc_metadata_clear(md);
  assert_int_equal(mrpc_metadata_count(md), 0);
  assert_null(mrpc_metadata_get(md, "a", NULL));
  assert_int_equal(mrpc_metadata_add_str(md, "c", "3"), 0); /* still usable */
  check_at(md, 0, "c", "3", 1);
  mrpc_metadata_del(md);
}

static void test_metadata_at_accepts_null_outputs(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc_metadata_add_str(md, "a", "1"), 0);
  assert_int_equal(mrpc_metadata_at(md, 0, NULL, NULL, NULL), 0);
  mrpc_metadata_del(md);
}

/* ---- validation ---- */

static void test_metadata_rejects_invalid_keys(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  static const char *const bad[] = {
      "Foo", "fOO", "a b", "", "caf\xc3\xa9", "a/b", "a:b", "a\tb", "key=",
      "\x7f", "k\xff",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(mrpc_metadata_add_str(md, bad[i], "v"), MRPC_ERR_INVAL);
    assert_false(mrpc__metadata_key_valid(bad[i], strlen(bad[i])));
  }
  assert_int_equal(mrpc_metadata_add_str(md, NULL, "v"), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_add_str(NULL, "k", "v"), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_add_str(md, "k", NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_add(md, "k", NULL, 1), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_count(md), 0);
  assert_false(mrpc__metadata_key_valid(NULL, 0));
  assert_false(mrpc__metadata_key_valid("ab", 0));
  assert_false(mrpc__metadata_key_valid("a\0b", 3));
  mrpc_metadata_del(md);
}

static void test_metadata_key_valid_accepts_allowed_characters(void **state) {
  (void)state;
  static const char *const good[] = {
      "a", "0", "abc-def", "x_y.z", "0123456789", "abcdefghijklmnopqrstuvwxyz",
      "-", ".", "_", "x-bin",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(mrpc__metadata_key_valid(good[i], strlen(good[i])));
  assert_true(mrpc__metadata_key_valid("abcXYZ", 3)); /* only len counts */
}

static void test_metadata_rejects_reserved_keys(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  static const char *const reserved[] = {
      "grpc-foo", "grpc-", "grpc-timeout", "grpc-status", ":path",
      ":authority", ":", "te", "content-type", "user-agent", "host",
      "connection", "keep-alive", "proxy-connection", "transfer-encoding",
      "upgrade", "grpc-trace-bin",
  };
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    assert_int_equal(mrpc_metadata_add_str(md, reserved[i], "v"),
                     MRPC_ERR_RESERVED);
    assert_true(mrpc__metadata_key_reserved(reserved[i], strlen(reserved[i])));
  }
  assert_int_equal(mrpc_metadata_count(md), 0);
  mrpc_metadata_del(md);
}

static void test_metadata_near_reserved_keys_are_allowed(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  static const char *const ok[] = {
      "grpc", "grpcfoo", "grpc_foo", "x-grpc-foo", "tea", "t", "ete",
      "content-types", "content", "hosts", "my-host", "upgrades",
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    assert_false(mrpc__metadata_key_reserved(ok[i], strlen(ok[i])));
    assert_int_equal(mrpc_metadata_add_str(md, ok[i], "v"), 0);
  }
  assert_false(mrpc__metadata_key_reserved("te", 1)); /* "t" */
  assert_false(mrpc__metadata_key_reserved("", 0));
  assert_false(mrpc__metadata_key_reserved(NULL, 0));
  mrpc_metadata_del(md);
}

static void test_metadata_key_is_bin_checks_suffix(void **state) {
  (void)state;
  assert_true(mrpc__metadata_key_is_bin("x-bin", 5));
  assert_true(mrpc__metadata_key_is_bin("-bin", 4));
  assert_true(mrpc__metadata_key_is_bin("x-binary", 5));
  assert_false(mrpc__metadata_key_is_bin("bin", 3));
  assert_false(mrpc__metadata_key_is_bin("xbin", 4));
  assert_false(mrpc__metadata_key_is_bin("x-bin2", 6));
  assert_false(mrpc__metadata_key_is_bin("x-BIN", 5));
  assert_false(mrpc__metadata_key_is_bin("", 0));
  assert_false(mrpc__metadata_key_is_bin(NULL, 0));
}

static void test_metadata_rejects_non_printable_text_value(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  static const char *const bad[] = {"a\nb", "\t", "\x7f", "\x80", "caf\xc3\xa9",
                                    "\x1f"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mrpc_metadata_add_str(md, "k", bad[i]), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_add(md, "k", "a\0b", 3), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_count(md), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "k", " !~ printable "), 0);
  mrpc_metadata_del(md);
}

static void test_metadata_accepts_any_bytes_for_bin_keys(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  assert_int_equal(mrpc_metadata_add(md, "blob-bin", all, sizeof(all)), 0);
  assert_int_equal(mrpc_metadata_add(md, "empty-bin", NULL, 0), 0);
  size_t len = 0;
  const uint8_t *v = mrpc_metadata_get(md, "blob-bin", &len);
  assert_int_equal(len, 256);
  assert_memory_equal(v, all, 256);
  assert_int_equal(v[256], 0); /* extra NUL after the bytes */
  check_at(md, 1, "empty-bin", "", 0);
  mrpc_metadata_del(md);
}

/* ---- base64 ---- */

static void test_base64_encoded_len_is_unpadded(void **state) {
  (void)state;
  static const size_t want[] = {0, 2, 3, 4, 6, 7, 8, 10};
  for (size_t n = 0; n < sizeof(want) / sizeof(want[0]); n++)
    assert_int_equal(mrpc__base64_encoded_len(n), want[n]);
}

static void test_base64_encode_rfc4648_vectors_unpadded(void **state) {
  (void)state;
  check_encode("", "");
  check_encode("f", "Zg");
  check_encode("fo", "Zm8");
  check_encode("foo", "Zm9v");
  check_encode("foob", "Zm9vYg");
  check_encode("fooba", "Zm9vYmE");
  check_encode("foobar", "Zm9vYmFy");
  check_encode("\xfb\xff\xbf", "+/+/");
}

static void test_base64_decode_padded_and_unpadded(void **state) {
  (void)state;
  static const char *const vec[][3] = {
      {"", "", ""},
      {"f", "Zg==", "Zg"},
      {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"},
      {"foob", "Zm9vYg==", "Zm9vYg"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
  };
  for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
    check_decode(vec[i][1], vec[i][0]);
    check_decode(vec[i][2], vec[i][0]);
  }
  check_decode("+/+/", "\xfb\xff\xbf");
}

static void test_base64_decode_comma_joined_values(void **state) {
  (void)state;
  check_decode("Zm9v,YmFy", "foobar");
  check_decode("Zg==,Zm8=", "ffo");
  check_decode("Zg, Zm8", "ffo");
  check_decode("Zg,   Zm8=,Zm9v", "ffofoo");
  check_decode("Zg==,", "f");
}

static void test_base64_round_trips_all_lengths_and_bytes(void **state) {
  (void)state;
  uint8_t in[300], out[300];
  char enc[420];
  for (size_t i = 0; i < sizeof(in); i++) in[i] = (uint8_t)(i * 131 + 7);
  for (size_t len = 0; len <= sizeof(in); len++) {
    size_t elen = mrpc__base64_encode(in, len, enc);
    assert_int_equal(elen, mrpc__base64_encoded_len(len));
    size_t n = 0;
    assert_int_equal(mrpc__base64_decode(enc, elen, out, &n), 0);
    assert_int_equal(n, len);
    if (len) assert_memory_equal(out, in, len);
  }
}

static void test_base64_decode_rejects_bad_input(void **state) {
  (void)state;
  static const char *const bad[] = {
      "Z",       /* 1 mod 4 */
      "Zm9vY",   /* 1 mod 4 */
      "Zg=",     /* padding to a non-multiple of 4 */
      "Zm9=v",   /* padding in the middle */
      "Zg==Zg==",
      "Z===",
      "====",
      "=",
      "Zm9v=",
      "Zm9v====",
      "Zm-v",    /* URL-safe alphabet */
      "Zm_v",
      "Zm9v\n",
      "Zm 9v",
      " Zm9v",
      "Zm9v ",
      "Zm9v,Z",  /* bad second value */
      "Zm\x80v",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    check_decode_fails(bad[i]);
  uint8_t out[8];
  size_t n;
  assert_int_equal(mrpc__base64_decode("Zm\0v", 4, out, &n), MRPC_ERR_PARSE);
}

/* ---- wire ingest and append ---- */

static void test_metadata_add_wire_decodes_bin_values(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(add_wire(md, "a-bin", "Zm9vYmFy"), 0);
  assert_int_equal(add_wire(md, "b-bin", "Zm9vYg=="), 0);
  assert_int_equal(add_wire(md, "c-bin", "Zg==, Zm8"), 0);
  assert_int_equal(add_wire(md, "d-bin", ""), 0);
  assert_int_equal(add_wire(md, "e-bin", "AP8A"), 0);
  assert_int_equal(add_wire(md, "plain", "Zm9v"), 0); /* not decoded */
  check_at(md, 0, "a-bin", "foobar", 6);
  check_at(md, 1, "b-bin", "foob", 4);
  check_at(md, 2, "c-bin", "ffo", 3);
  check_at(md, 3, "d-bin", "", 0);
  check_at(md, 4, "e-bin", "\x00\xff\x00", 3);
  check_at(md, 5, "plain", "Zm9v", 4);
  mrpc_metadata_del(md);
}

static void test_metadata_add_wire_reports_reserved_names(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(add_wire(md, "grpc-timeout", "1S"), MRPC_ERR_RESERVED);
  assert_int_equal(add_wire(md, ":authority", "x"), MRPC_ERR_RESERVED);
  assert_int_equal(add_wire(md, "content-type", "application/grpc"),
                   MRPC_ERR_RESERVED);
  assert_int_equal(add_wire(md, "te", "trailers"), MRPC_ERR_RESERVED);
  assert_int_equal(add_wire(md, "grpc-status-details-bin", "AA"),
                   MRPC_ERR_RESERVED);
  assert_int_equal(mrpc_metadata_count(md), 0);
  mrpc_metadata_del(md);
}

static void test_metadata_add_wire_rejects_bad_names_and_values(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(add_wire(md, "Foo", "x"), MRPC_ERR_INVAL);
  assert_int_equal(add_wire(md, "", "x"), MRPC_ERR_INVAL);
  assert_int_equal(add_wire(md, "k", "a\x01"), MRPC_ERR_INVAL);
  assert_int_equal(add_wire(md, "k", "\xc3\xa9"), MRPC_ERR_INVAL);
  assert_int_equal(add_wire(md, "k-bin", "Z"), MRPC_ERR_PARSE);
  assert_int_equal(add_wire(md, "k-bin", "Zm9v!"), MRPC_ERR_PARSE);
  assert_int_equal(add_wire(md, "k-bin", "Zg=x"), MRPC_ERR_PARSE);
  assert_int_equal(
      mrpc__metadata_add_wire(md, (const uint8_t *)"a\0b", 3,
                              (const uint8_t *)"v", 1),
      MRPC_ERR_INVAL);
  assert_int_equal(mrpc__metadata_add_wire(NULL, (const uint8_t *)"k", 1,
                                           (const uint8_t *)"v", 1),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_metadata_count(md), 0);
  mrpc_metadata_del(md);
}

static void test_metadata_add_wire_uses_name_length_not_nul(void **state) {
  (void)state;
  mrpc_metadata *md = new_md();
  assert_int_equal(mrpc__metadata_add_wire(md, (const uint8_t *)"keyXXX", 3,
                                           (const uint8_t *)"valYYY", 3),
                   0);
  check_at(md, 0, "key", "val", 3);
  mrpc_metadata_del(md);
}

static void test_metadata_append_copies_entries_in_order(void **state) {
  (void)state;
  mrpc_metadata *dst = new_md();
  mrpc_metadata *src = mrpc_metadata_new(&g_alloc);
  assert_non_null(src);
  assert_int_equal(mrpc_metadata_add_str(dst, "mine", "0"), 0);
  assert_int_equal(mrpc_metadata_add_str(src, "a", "1"), 0);
  assert_int_equal(mrpc_metadata_add(src, "b-bin", "\x00\x01", 2), 0);
  assert_int_equal(mrpc_metadata_add_str(src, "a", "3"), 0);
  assert_int_equal(mrpc__metadata_append(dst, src), 0);
  mrpc_metadata_del(src); /* copies must not borrow from src */
  assert_int_equal(mrpc_metadata_count(dst), 4);
  check_at(dst, 0, "mine", "0", 1);
  check_at(dst, 1, "a", "1", 1);
  check_at(dst, 2, "b-bin", "\x00\x01", 2);
  check_at(dst, 3, "a", "3", 1);
  mrpc_metadata_del(dst);
}

static void test_metadata_append_empty_source(void **state) {
  (void)state;
  mrpc_metadata *dst = new_md();
  mrpc_metadata *src = mrpc_metadata_new(&g_alloc);
  assert_non_null(src);
  assert_int_equal(mrpc__metadata_append(dst, src), 0);
  assert_int_equal(mrpc_metadata_count(dst), 0);
  mrpc_metadata_del(src);
  mrpc_metadata_del(dst);
}

/* An embedded map (a call's request headers): small entries live in the
 * map, larger ones and those past the inline room on the heap; clear and
 * fini leave nothing behind (cmocka checks the heap blocks). */
static void test_metadata_embedded_mixes_inline_and_heap_entries(
    void **state) {
  (void)state;
  memset(&g_tracker, 0, sizeof(g_tracker));
  mrpc_metadata md;
  mrpc__metadata_init(&md, &g_alloc);
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  char key[16], val[16];
  for (int round = 0; round < 2; round++) {
    assert_int_equal(mrpc_metadata_add_str(&md, "a", "1"), 0);
    assert_int_equal(mrpc_metadata_add_str(&md, "big", big), 0);
    for (int i = 0; i < 20; i++) {
      snprintf(key, sizeof key, "k%d", i);
      snprintf(val, sizeof val, "v%d", i);
      assert_int_equal(add_wire(&md, key, val), 0);
    }
    /* A bad "-bin" value is refused and leaves no trace. */
    assert_int_equal(add_wire(&md, "b-bin", "!!!!"), MRPC_ERR_PARSE);
    assert_int_equal(add_wire(&md, "c-bin", "Zm9vYmFy"), 0);
    assert_int_equal(mrpc_metadata_count(&md), 23);
    check_at(&md, 0, "a", "1", 1);
    check_at(&md, 1, "big", big, strlen(big));
    for (int i = 0; i < 20; i++) {
      snprintf(key, sizeof key, "k%d", i);
      snprintf(val, sizeof val, "v%d", i);
      check_at(&md, (size_t)i + 2, key, val, strlen(val));
    }
    check_at(&md, 22, "c-bin", "foobar", 6);
    mrpc_metadata_clear(&md); /* the second round reuses the room */
    assert_int_equal(mrpc_metadata_count(&md), 0);
  }
  assert_int_equal(mrpc_metadata_add_str(&md, "z", "26"), 0);
  mrpc__metadata_fini(&md);
}

/* ---- out of memory ---- */

/* A run of every allocating operation; returns the first error. */
static int allocating_workload(void) {
  int rc = 0;
  mrpc_metadata *md = mrpc_metadata_new(&g_alloc), *copy = NULL;
  if (!md) return MRPC_ERR_NOMEM;
  for (int i = 0; i < 20 && rc == 0; i++) {
    size_t before = mrpc_metadata_count(md);
    rc = mrpc_metadata_add_str(md, "key", "value");
    /* A failed add leaves the map as it was. */
    assert_int_equal(mrpc_metadata_count(md), before + (rc == 0));
  }
  if (rc == 0) rc = mrpc_metadata_add(md, "x-bin", "\x00\x01\x02", 3);
  if (rc == 0) {
    size_t before = mrpc_metadata_count(md);
    rc = add_wire(md, "y-bin", "Zm9vYmFy");
    assert_int_equal(mrpc_metadata_count(md), before + (rc == 0));
  }
  if (rc == 0) rc = add_wire(md, "z", "text");
  if (rc == 0) {
    copy = mrpc_metadata_new(&g_alloc);
    if (!copy) rc = MRPC_ERR_NOMEM;
  }
  if (rc == 0) {
    rc = mrpc__metadata_append(copy, md);
    if (rc == 0) {
      assert_int_equal(mrpc_metadata_count(copy), mrpc_metadata_count(md));
      check_at(copy, 21, "y-bin", "foobar", 6);
    }
  }
  mrpc_metadata_del(copy);
  mrpc_metadata_del(md);
  return rc;
}

static void test_metadata_reports_nomem_for_each_failed_allocation(
    void **state) {
  (void)state;
  int k;
  for (k = 1; k < 1000; k++) {
    memset(&g_tracker, 0, sizeof(g_tracker));
    g_tracker.fail_at = k;
    int rc = allocating_workload();
    if (!g_tracker.failed) { /* k is past the last allocation */
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, MRPC_ERR_NOMEM);
  }
  assert_true(k > 5 && k < 1000); /* every allocation was exercised */
  memset(&g_tracker, 0, sizeof(g_tracker));
  /* cmocka reports any block left over from the failed runs. */
}

#define T(f) cmocka_unit_test(f)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_metadata_new_is_empty),
      T(test_metadata_new_with_libc_allocator),
      T(test_metadata_del_null_is_a_no_op),
      T(test_metadata_add_get_at_keep_insertion_order),
      T(test_metadata_value_is_copied),
      T(test_metadata_duplicates_kept_in_order),
      T(test_metadata_grows_past_many_entries),
      T(test_metadata_clear_removes_everything),
      T(test_metadata_at_accepts_null_outputs),
      T(test_metadata_rejects_invalid_keys),
      T(test_metadata_key_valid_accepts_allowed_characters),
      T(test_metadata_rejects_reserved_keys),
      T(test_metadata_near_reserved_keys_are_allowed),
      T(test_metadata_key_is_bin_checks_suffix),
      T(test_metadata_rejects_non_printable_text_value),
      T(test_metadata_accepts_any_bytes_for_bin_keys),
      T(test_base64_encoded_len_is_unpadded),
      T(test_base64_encode_rfc4648_vectors_unpadded),
      T(test_base64_decode_padded_and_unpadded),
      T(test_base64_decode_comma_joined_values),
      T(test_base64_round_trips_all_lengths_and_bytes),
      T(test_base64_decode_rejects_bad_input),
      T(test_metadata_add_wire_decodes_bin_values),
      T(test_metadata_add_wire_reports_reserved_names),
      T(test_metadata_add_wire_rejects_bad_names_and_values),
      T(test_metadata_add_wire_uses_name_length_not_nul),
      T(test_metadata_append_copies_entries_in_order),
      T(test_metadata_append_empty_source),
      T(test_metadata_embedded_mixes_inline_and_heap_entries),
      T(test_metadata_reports_nomem_for_each_failed_allocation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
