/* Unit tests for the grpc-timeout header (lib/timeout.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "timeout.h"

#define NS_PER_S 1000000000LL

/* ---- helpers ---- */

static int parse(const char *s, int64_t *ns) {
  return mrpc__timeout_parse((const uint8_t *)s, strlen(s), ns);
}

static int64_t parse_ok(const char *s) {
  int64_t ns = -1;
  assert_int_equal(parse(s, &ns), 0);
  return ns;
}

static void check_format(int64_t ns, const char *want) {
  char out[16];
  memset(out, 'X', sizeof(out));
  size_t n = mrpc__timeout_format(ns, out);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
}

static int64_t unit_ns(char u) {
  switch (u) {
  case 'n': return 1;
  case 'u': return 1000;
  case 'm': return 1000000;
  case 'S': return NS_PER_S;
  case 'M': return 60 * NS_PER_S;
  case 'H': return 3600 * NS_PER_S;
  default: fail_msg("bad unit %c", u);
  }
  return 0;
}

/* parse(format(ns)) >= ns, at most 8 digits, less than one unit too long,
 * and no finer unit would have fit. */
static void check_format_round_trip(int64_t ns) {
  static const char order[] = "numSMH";
  char out[16];
  size_t n = mrpc__timeout_format(ns, out);
  assert_true(n >= 2 && n <= 9);
  assert_int_equal(strlen(out), n);
  char u = out[n - 1];
  for (size_t i = 0; i + 1 < n; i++) assert_true(out[i] >= '0' && out[i] <= '9');
  int64_t back = parse_ok(out);
  int64_t want = ns > 0 ? ns : 1;
  assert_true(back >= want);
  assert_true(back - want < unit_ns(u));
  const char *pos = strchr(order, u);
  assert_non_null(pos);
  if (pos != order) {
    int64_t finer = unit_ns(pos[-1]);
    assert_true((want - 1) / finer + 1 > 99999999);
  }
}

/* ---- parse ---- */

static void test_timeout_parse_every_unit(void **state) {
  (void)state;
  assert_int_equal(parse_ok("1n"), 1);
  assert_int_equal(parse_ok("1u"), 1000);
  assert_int_equal(parse_ok("1m"), 1000000);
  assert_int_equal(parse_ok("1S"), NS_PER_S);
  assert_int_equal(parse_ok("1M"), 60 * NS_PER_S);
  assert_int_equal(parse_ok("1H"), 3600 * NS_PER_S);
  assert_int_equal(parse_ok("250m"), 250000000);
  assert_int_equal(parse_ok("0S"), 0);
}

static void test_timeout_parse_accepts_eight_digits(void **state) {
  (void)state;
  assert_int_equal(parse_ok("99999999n"), 99999999);
  assert_int_equal(parse_ok("12345678u"), 12345678000LL);
  assert_int_equal(parse_ok("00000001S"), NS_PER_S);
  assert_int_equal(parse_ok("99999999M"), 99999999LL * 60 * NS_PER_S);
}

static void test_timeout_parse_rejects_nine_digits(void **state) {
  (void)state;
  int64_t ns = 42;
  assert_int_equal(parse("123456789n", &ns), MRPC_ERR_PARSE);
  assert_int_equal(parse("000000001S", &ns), MRPC_ERR_PARSE);
  assert_int_equal(ns, 42);
}

static void test_timeout_parse_rejects_malformed_values(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",    "1",   "S",   "-1S", "+1S", "1x",  "1 S", " 1S", "1S ",
      "1SS", "1s",  "1h",  "1N",  "1U",  "S1",  "1.5S", "0x1S", "nn",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t ns = 42;
    assert_int_equal(parse(bad[i], &ns), MRPC_ERR_PARSE);
    assert_int_equal(ns, 42);
  }
  int64_t ns;
  assert_int_equal(mrpc__timeout_parse((const uint8_t *)"1\0S", 3, &ns),
                   MRPC_ERR_PARSE);
  assert_int_equal(mrpc__timeout_parse((const uint8_t *)"1S\0", 3, &ns),
                   MRPC_ERR_PARSE);
  assert_int_equal(mrpc__timeout_parse(NULL, 0, &ns), MRPC_ERR_PARSE);
}

static void test_timeout_parse_saturates_huge_hours(void **state) {
  (void)state;
  assert_int_equal(parse_ok("99999999H"), INT64_MAX);
  assert_int_equal(parse_ok("2562047H"), 2562047LL * 3600 * NS_PER_S);
  assert_int_equal(parse_ok("2562048H"), INT64_MAX);
}

/* ---- format ---- */

static void test_timeout_format_picks_finest_unit_that_fits(void **state) {
  (void)state;
  check_format(1, "1n");
  check_format(99999999, "99999999n");
  check_format(100000000, "100000u");
  check_format(1000000, "1000000n"); /* 1ms still fits in nanoseconds */
  check_format(NS_PER_S, "1000000u");
  check_format(100 * NS_PER_S, "100000m");
  check_format(100000 * NS_PER_S, "100000S");
  check_format(3600 * NS_PER_S * 100000, "6000000M");
}

static void test_timeout_format_rounds_up(void **state) {
  (void)state;
  check_format(100000001, "100001u");
  check_format(99999999000LL, "99999999u");
  check_format(99999999001LL, "100000m");
}

static void test_timeout_format_non_positive_is_one_nanosecond(void **state) {
  (void)state;
  check_format(0, "1n");
  check_format(-1, "1n");
  check_format(INT64_MIN, "1n");
}

static void test_timeout_format_huge_uses_hours(void **state) {
  (void)state;
  check_format(INT64_MAX, "2562048H");
}

static void test_timeout_format_round_trips_many_values(void **state) {
  (void)state;
  static const int64_t fixed[] = {
      1, 2, 999, 1000, 1001, 1000000, NS_PER_S, NS_PER_S + 1,
      99999999, 100000000, 100000001, 99999999999LL, 100000000000LL,
      60 * NS_PER_S, 3600 * NS_PER_S, 86400 * NS_PER_S,
      99999999LL * NS_PER_S, 99999999LL * NS_PER_S + 1,
      99999999LL * 60 * NS_PER_S + 1, INT64_MAX - 1, INT64_MAX, 0, -5,
  };
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    check_format_round_trip(fixed[i]);
  /* Sweep every magnitude with values near powers of ten. */
  for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
    check_format_round_trip(p - 1);
    check_format_round_trip(p);
    check_format_round_trip(p + 1);
    check_format_round_trip(p * 7 + 3);
  }
  /* Pseudo-random values (fixed LCG seed). */
  uint64_t x = 0x2545F4914F6CDD1DULL;
  for (int i = 0; i < 10000; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    int shift = (int)(x >> 58); /* 0..63: spread over all magnitudes */
    check_format_round_trip((int64_t)((x >> 1) >> shift));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout_parse_every_unit),
      cmocka_unit_test(test_timeout_parse_accepts_eight_digits),
      cmocka_unit_test(test_timeout_parse_rejects_nine_digits),
      cmocka_unit_test(test_timeout_parse_rejects_malformed_values),
      cmocka_unit_test(test_timeout_parse_saturates_huge_hours),
      cmocka_unit_test(test_timeout_format_picks_finest_unit_that_fits),
      cmocka_unit_test(test_timeout_format_rounds_up),
      cmocka_unit_test(test_timeout_format_non_positive_is_one_nanosecond),
      cmocka_unit_test(test_timeout_format_huge_uses_hours),
      cmocka_unit_test(test_timeout_format_round_trips_many_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
