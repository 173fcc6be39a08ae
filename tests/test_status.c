/* Unit tests for status names, error strings, grpc-message percent coding,
 * grpc-status parsing and the HTTP / RST_STREAM mappings (lib/status.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

/* ---- helpers ---- */

/* Encodes then decodes in[0..len) and checks the result matches; returns
 * the encoded text (malloc'ed, NUL-terminated) for further checks. */
static char *round_trip(const uint8_t *in, size_t len) {
  size_t elen = mrpc__percent_encode(in, len, NULL);
  char *enc = malloc(elen + 1);
  assert_non_null(enc);
  assert_int_equal(mrpc__percent_encode(in, len, enc), elen);
  enc[elen] = '\0';
  for (size_t i = 0; i < elen; i++) { /* the wire form is printable ASCII */
    assert_true((uint8_t)enc[i] >= 0x20 && (uint8_t)enc[i] <= 0x7e);
  }
  char *dec = malloc(elen + 1);
  assert_non_null(dec);
  size_t dlen = mrpc__percent_decode((const uint8_t *)enc, elen, NULL);
  assert_int_equal(mrpc__percent_decode((const uint8_t *)enc, elen, dec),
                   dlen);
  assert_int_equal(dlen, len);
  if (len) assert_memory_equal(dec, in, len);
  free(dec);
  return enc;
}

static void check_decode(const char *in, const char *want) {
  char out[64];
  size_t n = mrpc__percent_decode((const uint8_t *)in, strlen(in), out);
  assert_true(n <= strlen(in));
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static void check_encode(const char *in, size_t len, const char *want) {
  char out[64];
  size_t n = mrpc__percent_encode((const uint8_t *)in, len, out);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static int parse_status(const char *s, int *code) {
  return mrpc__status_parse((const uint8_t *)s, strlen(s), code);
}

/* ---- names, strerror, version ---- */

static void test_status_code_names_are_canonical(void **state) {
  (void)state;
  static const char *const want[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  assert_int_equal(sizeof(want) / sizeof(want[0]), MRPC_STATUS_CODE_COUNT);
  for (int i = 0; i < MRPC_STATUS_CODE_COUNT; i++)
    assert_string_equal(mrpc_status_code_name(i), want[i]);
  assert_string_equal(mrpc_status_code_name(MRPC_STATUS_DEADLINE_EXCEEDED),
                      "DEADLINE_EXCEEDED");
}

static void test_status_code_name_out_of_range_is_null(void **state) {
  (void)state;
  assert_null(mrpc_status_code_name(-1));
  assert_null(mrpc_status_code_name(17));
  assert_null(mrpc_status_code_name(1000));
  assert_null(mrpc_status_code_name(-2147483647 - 1));
}

static void test_strerror_matches_error_table(void **state) {
  (void)state;
#define CHECK_ERR(name, value, msg)                         \
  assert_int_equal(MRPC_ERR_##name, value);                 \
  assert_string_equal(mrpc_strerror(MRPC_ERR_##name), msg);
  MRPC_ERRORS(CHECK_ERR)
#undef CHECK_ERR
  assert_string_equal(mrpc_strerror(MRPC_ERR_RESERVED),
                      "metadata key is reserved for the library");
}

static void test_strerror_of_success_and_unknown_values(void **state) {
  (void)state;
  assert_non_null(mrpc_strerror(0));
  assert_string_not_equal(mrpc_strerror(0), "unknown error");
  assert_string_equal(mrpc_strerror(1), "unknown error");
  assert_string_equal(mrpc_strerror(-16), "unknown error");
  assert_string_equal(mrpc_strerror(-99), "unknown error");
  assert_string_equal(mrpc_strerror(-2147483647 - 1), "unknown error");
}

static void test_version_is_the_release_string(void **state) {
  (void)state;
  assert_string_equal(mrpc_version(), MRPC_VERSION_STRING);
  assert_string_equal(mrpc_version(), "0.1.0");
}

/* ---- percent coding ---- */

static void test_percent_encode_leaves_printable_ascii(void **state) {
  (void)state;
  check_encode("Hello, world! ~{}", 17, "Hello, world! ~{}");
  check_encode("", 0, "");
}

static void test_percent_encode_escapes_percent_controls_and_high_bytes(
    void **state) {
  (void)state;
  check_encode("100%", 4, "100%25");
  check_encode("a\nb", 3, "a%0Ab");
  check_encode("\x00\x1f\x7f\x80\xff", 5, "%00%1F%7F%80%FF");
  check_encode("\xe2\x98\xba", 3, "%E2%98%BA"); /* uppercase hex */
}

static void test_percent_encode_length_only_when_out_is_null(void **state) {
  (void)state;
  assert_int_equal(mrpc__percent_encode((const uint8_t *)"a%\n", 3, NULL), 7);
  assert_int_equal(mrpc__percent_encode(NULL, 0, NULL), 0);
}

static void test_percent_round_trips_interop_message(void **state) {
  (void)state;
  static const char msg[] =
      "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
      "\xf0\x9f\x98\x88\t\n";
  char *enc = round_trip((const uint8_t *)msg, strlen(msg));
  assert_string_equal(enc, "%09%0Atest with whitespace%0D%0Aand Unicode BMP "
                           "%E2%98%BA and non-BMP %F0%9F%98%88%09%0A");
  free(enc);
}

static void test_percent_round_trips_all_byte_values(void **state) {
  (void)state;
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  char *enc = round_trip(all, sizeof(all));
  free(enc);
  for (int i = 0; i < 256; i++) { /* and each byte on its own */
    uint8_t b = (uint8_t)i;
    enc = round_trip(&b, 1);
    assert_int_equal(strlen(enc), (b < 0x20 || b > 0x7e || b == '%') ? 3 : 1);
    free(enc);
  }
}

static void test_percent_decode_is_tolerant_of_malformed_escapes(
    void **state) {
  (void)state;
  check_decode("%", "%");
  check_decode("%4", "%4");
  check_decode("%zz", "%zz");
  check_decode("%%41", "%A");
  check_decode("%4g", "%4g");
  check_decode("%g4", "%g4");
  check_decode("abc%", "abc%");
  check_decode("abc%2", "abc%2");
  check_decode("100%", "100%");
}

static void test_percent_decode_accepts_both_hex_cases(void **state) {
  (void)state;
  check_decode("%e2%98%BA", "\xe2\x98\xba");
  check_decode("a%20b", "a b");
  check_decode("%25", "%");
  check_decode("%2541", "%41"); /* decoded once, not twice */
  char out[4];
  assert_int_equal(mrpc__percent_decode((const uint8_t *)"%00x", 4, out), 2);
  assert_memory_equal(out, "\0x", 2);
  check_decode("", "");
}

static void test_percent_decode_length_only_when_out_is_null(void **state) {
  (void)state;
  assert_int_equal(mrpc__percent_decode((const uint8_t *)"%41%", 4, NULL), 2);
  assert_int_equal(mrpc__percent_decode(NULL, 0, NULL), 0);
}

/* ---- grpc-status ---- */

static void test_status_parse_accepts_decimal_codes(void **state) {
  (void)state;
  int code = -1;
  assert_int_equal(parse_status("0", &code), 0);
  assert_int_equal(code, 0);
  assert_int_equal(parse_status("16", &code), 0);
  assert_int_equal(code, 16);
  assert_int_equal(parse_status("007", &code), 0);
  assert_int_equal(code, 7);
  /* Out-of-range codes are returned for the caller to map to UNKNOWN. */
  assert_int_equal(parse_status("17", &code), 0);
  assert_int_equal(code, 17);
  assert_int_equal(parse_status("2147483647", &code), 0);
  assert_int_equal(code, 2147483647);
}

static void test_status_parse_rejects_malformed_values(void **state) {
  (void)state;
  static const char *const bad[] = {
      "", "-1", "+1", " 1", "1 ", "1a", "a", "0x1", "1.0",
      "2147483648", "99999999999999999999",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int code = 1234;
    assert_int_equal(parse_status(bad[i], &code), MRPC_ERR_PARSE);
    assert_int_equal(code, 1234); /* untouched on failure */
  }
  int code;
  assert_int_equal(mrpc__status_parse(NULL, 0, &code), MRPC_ERR_PARSE);
  assert_int_equal(mrpc__status_parse((const uint8_t *)"1\0", 2, &code),
                   MRPC_ERR_PARSE);
}

/* ---- mappings ---- */

static void test_status_from_http_follows_the_mapping_table(void **state) {
  (void)state;
  assert_int_equal(mrpc__status_from_http(400), MRPC_STATUS_INTERNAL);
  assert_int_equal(mrpc__status_from_http(401), MRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(mrpc__status_from_http(403),
                   MRPC_STATUS_PERMISSION_DENIED);
  assert_int_equal(mrpc__status_from_http(404), MRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(mrpc__status_from_http(429), MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(mrpc__status_from_http(502), MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(mrpc__status_from_http(503), MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(mrpc__status_from_http(504), MRPC_STATUS_UNAVAILABLE);
}

static void test_status_from_http_other_codes_are_unknown(void **state) {
  (void)state;
  static const int other[] = {0, 100, 200, 204, 301, 402, 405, 500, 501,
                              505, 599, -1};
  for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
    assert_int_equal(mrpc__status_from_http(other[i]), MRPC_STATUS_UNKNOWN);
}

static void test_status_from_rst_maps_every_h2_error_code(void **state) {
  (void)state;
  static const struct {
    uint32_t h2;
    mrpc_status_code want;
  } cases[] = {
      {0x0, MRPC_STATUS_INTERNAL},            /* NO_ERROR */
      {0x1, MRPC_STATUS_INTERNAL},            /* PROTOCOL_ERROR */
      {0x2, MRPC_STATUS_INTERNAL},            /* INTERNAL_ERROR */
      {0x3, MRPC_STATUS_INTERNAL},            /* FLOW_CONTROL_ERROR */
      {0x4, MRPC_STATUS_INTERNAL},            /* SETTINGS_TIMEOUT */
      {0x5, MRPC_STATUS_INTERNAL},            /* STREAM_CLOSED */
      {0x6, MRPC_STATUS_INTERNAL},            /* FRAME_SIZE_ERROR */
      {0x7, MRPC_STATUS_UNAVAILABLE},         /* REFUSED_STREAM */
      {0x8, MRPC_STATUS_CANCELLED},           /* CANCEL */
      {0x9, MRPC_STATUS_INTERNAL},            /* COMPRESSION_ERROR */
      {0xa, MRPC_STATUS_INTERNAL},            /* CONNECT_ERROR */
      {0xb, MRPC_STATUS_RESOURCE_EXHAUSTED},  /* ENHANCE_YOUR_CALM */
      {0xc, MRPC_STATUS_PERMISSION_DENIED},   /* INADEQUATE_SECURITY */
      {0xd, MRPC_STATUS_INTERNAL},            /* HTTP_1_1_REQUIRED */
      {0xe, MRPC_STATUS_INTERNAL},            /* unknown */
      {0xffffffffu, MRPC_STATUS_INTERNAL},    /* unknown */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_int_equal(mrpc__status_from_rst(cases[i].h2), cases[i].want);
}

/* ---- mrpc_status ---- */

static void test_status_set_copies_message_and_details(void **state) {
  (void)state;
  mrpc_status st = {0};
  char msg[] = "boom";
  uint8_t det[] = {1, 0, 2};
  assert_int_equal(
      mrpc__status_set(&st, MRPC_STATUS_ABORTED, msg, det, sizeof(det)), 0);
  msg[0] = 'X';
  det[0] = 9;
  assert_int_equal(st.code, MRPC_STATUS_ABORTED);
  assert_string_equal(st.message, "boom");
  assert_int_equal(st.details_len, 3);
  assert_memory_equal(st.details, "\x01\x00\x02", 3);
  mrpc_status_free(&st);
}

static void test_status_set_null_message_gives_empty_string(void **state) {
  (void)state;
  mrpc_status st = {0};
  assert_int_equal(mrpc__status_set(&st, MRPC_STATUS_OK, NULL, NULL, 0), 0);
  assert_non_null(st.message);
  assert_string_equal(st.message, "");
  assert_null(st.details);
  assert_int_equal(st.details_len, 0);
  mrpc_status_free(&st);
}

static void test_status_set_replaces_previous_contents(void **state) {
  (void)state;
  mrpc_status st = {0};
  assert_int_equal(
      mrpc__status_set(&st, MRPC_STATUS_INTERNAL, "first", "dd", 2), 0);
  assert_int_equal(
      mrpc__status_set(&st, MRPC_STATUS_NOT_FOUND, "second", NULL, 0), 0);
  assert_int_equal(st.code, MRPC_STATUS_NOT_FOUND);
  assert_string_equal(st.message, "second");
  assert_null(st.details); /* old details freed (LSan checks) */
  assert_int_equal(st.details_len, 0);
  /* Setting from its own fields must not read freed memory. */
  assert_int_equal(mrpc__status_set(&st, MRPC_STATUS_UNKNOWN, st.message,
                                    st.message, strlen(st.message)),
                   0);
  assert_string_equal(st.message, "second");
  assert_memory_equal(st.details, "second", 6);
  mrpc_status_free(&st);
}

static void test_status_free_resets_and_accepts_null(void **state) {
  (void)state;
  mrpc_status st = {0};
  assert_int_equal(
      mrpc__status_set(&st, MRPC_STATUS_DATA_LOSS, "x", "y", 1), 0);
  mrpc_status_free(&st);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  assert_null(st.message);
  assert_null(st.details);
  assert_int_equal(st.details_len, 0);
  mrpc_status_free(&st); /* twice is fine */
  mrpc_status_free(NULL);
}

/* The allocation-free empty status: "" like any other, replaced and freed
 * through the usual calls (ASan flags a free of the shared string). */
static void test_status_set_empty_behaves_like_an_empty_message(void **state) {
  (void)state;
  mrpc_status st = {0};
  assert_int_equal(mrpc__status_set(&st, MRPC_STATUS_ABORTED, "x", "y", 1),
                   0);
  mrpc__status_set_empty(&st, MRPC_STATUS_OK); /* frees what it held */
  assert_int_equal(st.code, MRPC_STATUS_OK);
  assert_string_equal(st.message, "");
  assert_null(st.details);
  assert_int_equal(st.details_len, 0);
  /* An end hook's mrpc_status_set over it: copies, then frees the old. */
  assert_int_equal(mrpc_status_set(&st, MRPC_STATUS_INTERNAL, "changed"), 0);
  assert_string_equal(st.message, "changed");
  mrpc__status_set_empty(&st, MRPC_STATUS_UNKNOWN);
  assert_int_equal(
      mrpc__status_set(&st, MRPC_STATUS_UNKNOWN, st.message, NULL, 0), 0);
  assert_string_equal(st.message, "");
  mrpc_status_free(&st);
  mrpc__status_set_empty(&st, MRPC_STATUS_OK);
  mrpc_status_free(&st);
  assert_null(st.message);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_code_names_are_canonical),
      cmocka_unit_test(test_status_code_name_out_of_range_is_null),
      cmocka_unit_test(test_strerror_matches_error_table),
      cmocka_unit_test(test_strerror_of_success_and_unknown_values),
      cmocka_unit_test(test_version_is_the_release_string),
      cmocka_unit_test(test_percent_encode_leaves_printable_ascii),
      cmocka_unit_test(
          test_percent_encode_escapes_percent_controls_and_high_bytes),
      cmocka_unit_test(test_percent_encode_length_only_when_out_is_null),
      cmocka_unit_test(test_percent_round_trips_interop_message),
      cmocka_unit_test(test_percent_round_trips_all_byte_values),
      cmocka_unit_test(test_percent_decode_is_tolerant_of_malformed_escapes),
      cmocka_unit_test(test_percent_decode_accepts_both_hex_cases),
      cmocka_unit_test(test_percent_decode_length_only_when_out_is_null),
      cmocka_unit_test(test_status_parse_accepts_decimal_codes),
      cmocka_unit_test(test_status_parse_rejects_malformed_values),
      cmocka_unit_test(test_status_from_http_follows_the_mapping_table),
      cmocka_unit_test(test_status_from_http_other_codes_are_unknown),
      cmocka_unit_test(test_status_from_rst_maps_every_h2_error_code),
      cmocka_unit_test(test_status_set_copies_message_and_details),
      cmocka_unit_test(test_status_set_null_message_gives_empty_string),
      cmocka_unit_test(test_status_set_replaces_previous_contents),
      cmocka_unit_test(test_status_free_resets_and_accepts_null),
      cmocka_unit_test(test_status_set_empty_behaves_like_an_empty_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
