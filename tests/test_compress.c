/* Unit tests of lib/compress.c: gzip/deflate per message, names, accept
 * lists, and the decompression cap that stops zip bombs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compress.h"

static void round_trip(mrpc_compression alg, const uint8_t *in, size_t len) {
  uint8_t *z, *back;
  size_t zlen, blen;
  assert_int_equal(mrpc__compress(NULL, alg, in, len, 7, &z, &zlen), 0);
  assert_true(zlen >= 7);
  assert_int_equal(
      mrpc__decompress(NULL, alg, z + 7, zlen - 7, len, &back, &blen), 0);
  assert_int_equal(blen, len);
  if (len) assert_memory_equal(back, in, len);
  free(z);
  free(back);
}

static void test_compress_round_trips_gzip_and_deflate(void **state) {
  (void)state;
  static uint8_t buf[200000];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7 % 251);
  size_t sizes[] = {0, 1, 100, 65536, sizeof buf};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    round_trip(MRPC_COMPRESS_GZIP, buf, sizes[i]);
    round_trip(MRPC_COMPRESS_DEFLATE, buf, sizes[i]);
  }
}

static void test_decompress_stops_a_zip_bomb_at_the_cap(void **state) {
  (void)state;
  size_t big = 64u << 20; /* 64 MiB of zeros packs into ~64 KiB */
  uint8_t *zeros = calloc(1, big);
  assert_non_null(zeros);
  uint8_t *z, *out = NULL;
  size_t zlen, olen;
  assert_int_equal(mrpc__compress(NULL, MRPC_COMPRESS_GZIP, zeros, big, 0, &z,
                                  &zlen), 0);
  free(zeros);
  assert_true(zlen < big / 100);
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_GZIP, z, zlen,
                                    4u << 20, &out, &olen),
                   MRPC_ERR_TOO_LARGE);
  assert_null(out);
  free(z);
}

static void test_decompress_accepts_exactly_the_cap(void **state) {
  (void)state;
  uint8_t in[1000];
  memset(in, 'a', sizeof in);
  uint8_t *z, *out;
  size_t zlen, olen;
  assert_int_equal(mrpc__compress(NULL, MRPC_COMPRESS_DEFLATE, in, sizeof in,
                                  0, &z, &zlen), 0);
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_DEFLATE, z, zlen,
                                    sizeof in, &out, &olen), 0);
  assert_int_equal(olen, sizeof in);
  free(out);
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_DEFLATE, z, zlen,
                                    sizeof in - 1, &out, &olen),
                   MRPC_ERR_TOO_LARGE);
  free(z);
}

static void test_decompress_rejects_corrupt_and_truncated_input(void **state) {
  (void)state;
  uint8_t in[5000];
  for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)(i * 31);
  uint8_t *z, *out;
  size_t zlen, olen;
  assert_int_equal(mrpc__compress(NULL, MRPC_COMPRESS_GZIP, in, sizeof in, 0,
                                  &z, &zlen), 0);
  /* truncated */
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_GZIP, z, zlen / 2,
                                    1 << 20, &out, &olen),
                   MRPC_ERR_PARSE);
  /* garbage */
  const uint8_t junk[] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_GZIP, junk,
                                    sizeof junk, 1 << 20, &out, &olen),
                   MRPC_ERR_PARSE);
  /* trailing bytes after the stream */
  uint8_t *longer = malloc(zlen + 3);
  memcpy(longer, z, zlen);
  memset(longer + zlen, 0xaa, 3);
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_GZIP, longer,
                                    zlen + 3, 1 << 20, &out, &olen),
                   MRPC_ERR_PARSE);
  /* gzip data is not deflate (zlib) data */
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_DEFLATE, z, zlen,
                                    1 << 20, &out, &olen),
                   MRPC_ERR_PARSE);
  /* identity is not a decompression */
  assert_int_equal(mrpc__decompress(NULL, MRPC_COMPRESS_NONE, z, zlen, 1 << 20,
                                    &out, &olen),
                   MRPC_ERR_PARSE);
  free(longer);
  free(z);
}

static void test_compression_names_parse_and_print(void **state) {
  (void)state;
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"gzip", 4),
                   MRPC_COMPRESS_GZIP);
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"deflate", 7),
                   MRPC_COMPRESS_DEFLATE);
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"identity", 8),
                   MRPC_COMPRESS_NONE);
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"snappy", 6), -1);
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"gzi", 3), -1);
  assert_int_equal(mrpc__compression_parse((const uint8_t *)"", 0), -1);
  assert_string_equal(mrpc__compression_name(MRPC_COMPRESS_GZIP), "gzip");
  assert_string_equal(mrpc__compression_name(MRPC_COMPRESS_NONE), "identity");
}

static void test_accept_encoding_lists_parse(void **state) {
  (void)state;
  const char *v = "gzip, snappy,deflate";
  assert_int_equal(mrpc__compression_accept_parse((const uint8_t *)v,
                                                  strlen(v)),
                   (1u << MRPC_COMPRESS_NONE) | (1u << MRPC_COMPRESS_GZIP) |
                       (1u << MRPC_COMPRESS_DEFLATE));
  assert_int_equal(mrpc__compression_accept_parse((const uint8_t *)"", 0),
                   1u << MRPC_COMPRESS_NONE);
  assert_int_equal(
      mrpc__compression_accept_parse((const uint8_t *)",,gzip,,", 8),
      (1u << MRPC_COMPRESS_NONE) | (1u << MRPC_COMPRESS_GZIP));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compress_round_trips_gzip_and_deflate),
      cmocka_unit_test(test_decompress_stops_a_zip_bomb_at_the_cap),
      cmocka_unit_test(test_decompress_accepts_exactly_the_cap),
      cmocka_unit_test(test_decompress_rejects_corrupt_and_truncated_input),
      cmocka_unit_test(test_compression_names_parse_and_print),
      cmocka_unit_test(test_accept_encoding_lists_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
