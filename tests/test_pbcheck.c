/* Unit tests of lib/pbcheck.c: string fields of received messages must be
 * UTF-8 without NUL, at any depth; bytes fields are anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pbcheck.h"
#include "test.pb-c.h"

#define RESP (&grpc__testing__simple_response__descriptor)
#define REQ (&grpc__testing__simple_request__descriptor)

/* SimpleResponse.username (field 2, length-delimited) = s[0..n). */
static int username_ok(const char *s, size_t n) {
  uint8_t buf[64] = {0x12, (uint8_t)n};
  memcpy(buf + 2, s, n);
  return mrpc__pb_strings_ok(RESP, buf, n + 2);
}

static void test_pbcheck_accepts_valid_utf8(void **state) {
  (void)state;
  assert_true(username_ok("", 0));
  assert_true(username_ok("ascii", 5));
  assert_true(username_ok("\xe2\x98\xba", 3));       /* U+263A */
  assert_true(username_ok("\xf0\x9f\x98\x88", 4));   /* U+1F608 */
  assert_true(username_ok("\xf4\x8f\xbf\xbf", 4));   /* U+10FFFF */
}

static void test_pbcheck_refuses_nul_and_bad_utf8(void **state) {
  (void)state;
  assert_false(username_ok("evil\0/x", 7));
  assert_false(username_ok("\xff", 1));
  assert_false(username_ok("\xc0\xaf", 2));          /* overlong '/' */
  assert_false(username_ok("\xed\xa0\x80", 3));      /* surrogate */
  assert_false(username_ok("\xf4\x90\x80\x80", 4));  /* past U+10FFFF */
  assert_false(username_ok("\xe2\x98", 2));          /* truncated */
  assert_false(username_ok("a\x80", 2));             /* lone continuation */
}

static void test_pbcheck_looks_into_nested_messages(void **state) {
  (void)state;
  /* SimpleRequest.response_status (7) { message (2) = "\xff" } */
  const uint8_t bad[] = {0x3a, 0x03, 0x12, 0x01, 0xff};
  const uint8_t good[] = {0x3a, 0x03, 0x12, 0x01, 'k'};
  assert_false(mrpc__pb_strings_ok(REQ, bad, sizeof bad));
  assert_true(mrpc__pb_strings_ok(REQ, good, sizeof good));
}

static void test_pbcheck_leaves_bytes_and_unknown_fields_alone(void **state) {
  (void)state;
  /* SimpleRequest.payload (3) { body (2) = ff 00 }, then unknown field 99
   * (length-delimited) holding ff, then a varint and fixed fields. */
  const uint8_t msg[] = {0x1a, 0x04, 0x12, 0x02, 0xff, 0x00,
                         0x9a, 0x06, 0x01, 0xff,
                         0x10, 0x05,
                         0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8};
  assert_true(mrpc__pb_strings_ok(REQ, msg, sizeof msg));
}

static void test_pbcheck_leaves_malformed_input_to_protobuf_c(void **state) {
  (void)state;
  const uint8_t truncated_len[] = {0x12, 0x09, 'a'};
  const uint8_t bad_varint[] = {0x10, 0xff, 0xff};
  const uint8_t group[] = {0x0b};
  assert_true(mrpc__pb_strings_ok(RESP, truncated_len, sizeof truncated_len));
  assert_true(mrpc__pb_strings_ok(RESP, bad_varint, sizeof bad_varint));
  assert_true(mrpc__pb_strings_ok(RESP, group, sizeof group));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pbcheck_accepts_valid_utf8),
      cmocka_unit_test(test_pbcheck_refuses_nul_and_bad_utf8),
      cmocka_unit_test(test_pbcheck_looks_into_nested_messages),
      cmocka_unit_test(test_pbcheck_leaves_bytes_and_unknown_fields_alone),
      cmocka_unit_test(test_pbcheck_leaves_malformed_input_to_protobuf_c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
