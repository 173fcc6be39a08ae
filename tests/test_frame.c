/* Unit tests for gRPC message framing (lib/frame.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

/* ---- helpers ---- */

/* Counts allocations; fails them all once fail is set. */
typedef struct counting {
  int allocs;
  int fail;
} counting;

static void *c_malloc(size_t n, void *ud) {
  counting *c = ud;
  c->allocs++;
  return c->fail ? NULL : test_malloc(n);
}
static void *c_calloc(size_t m, size_t n, void *ud) {
  counting *c = ud;
  c->allocs++;
  return c->fail ? NULL : test_calloc(m, n);
}
static void *c_realloc(void *p, size_t n, void *ud) {
  counting *c = ud;
  c->allocs++;
  return c->fail ? NULL : test_realloc(p, n);
}
static void c_free(void *p, void *ud) {
  (void)ud;
  if (p) test_free(p);
}

static mrpc_allocator counting_alloc(counting *c) {
  mrpc_allocator a = {c_malloc, c_calloc, c_realloc, c_free, c};
  return a;
}

/* Records every delivered message (copied). */
#define MAX_MSGS 256
typedef struct recorder {
  size_t n;
  uint8_t *msg[MAX_MSGS];
  size_t len[MAX_MSGS];
  int compressed[MAX_MSGS];
  const uint8_t *ptr[MAX_MSGS]; /* as handed to the callback */
  int stop_after;               /* return 77 after this many, if > 0 */
} recorder;

static int record(void *ud, int compressed, const uint8_t *msg, size_t len) {
  recorder *r = ud;
  assert_true(r->n < MAX_MSGS);
  assert_non_null(msg);
  r->msg[r->n] = malloc(len ? len : 1);
  assert_non_null(r->msg[r->n]);
  if (len) memcpy(r->msg[r->n], msg, len);
  r->len[r->n] = len;
  r->compressed[r->n] = compressed;
  r->ptr[r->n] = msg;
  r->n++;
  if (r->stop_after > 0 && (int)r->n >= r->stop_after) return 77;
  return 0;
}

static void recorder_reset(recorder *r) {
  for (size_t i = 0; i < r->n; i++) free(r->msg[i]);
  memset(r, 0, sizeof(*r));
}

/* Appends one framed message to buf at *off. */
static void put_msg(uint8_t *buf, size_t *off, int compressed,
                    const uint8_t *msg, uint32_t len) {
  mrpc__frame_header(buf + *off, compressed, len);
  if (len) memcpy(buf + *off + MRPC__FRAME_HDR_LEN, msg, len);
  *off += MRPC__FRAME_HDR_LEN + len;
}

static void put_hdr(uint8_t *buf, uint8_t flags, uint32_t len) {
  buf[0] = flags;
  buf[1] = (uint8_t)(len >> 24);
  buf[2] = (uint8_t)(len >> 16);
  buf[3] = (uint8_t)(len >> 8);
  buf[4] = (uint8_t)len;
}

/* ---- tests ---- */

static void test_frame_header_is_flag_then_big_endian_length(void **state) {
  (void)state;
  uint8_t h[MRPC__FRAME_HDR_LEN];
  mrpc__frame_header(h, 0, 0x01020304u);
  assert_memory_equal(h, "\x00\x01\x02\x03\x04", 5);
  mrpc__frame_header(h, 1, 0);
  assert_memory_equal(h, "\x01\x00\x00\x00\x00", 5);
  mrpc__frame_header(h, 7, 0xffffffffu); /* any nonzero means compressed */
  assert_memory_equal(h, "\x01\xff\xff\xff\xff", 5);
}

static void test_frame_decodes_single_message_without_copying(void **state) {
  (void)state;
  counting c = {0, 0};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"hello", 5);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, &a);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.len[0], 5);
  assert_memory_equal(r.msg[0], "hello", 5);
  assert_int_equal(r.compressed[0], 0);
  assert_ptr_equal(r.ptr[0], buf + MRPC__FRAME_HDR_LEN);
  assert_int_equal(c.allocs, 0);
  assert_false(mrpc__deframer_partial(&d));
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_decodes_several_messages_in_one_chunk(void **state) {
  (void)state;
  counting c = {0, 0};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t buf[128];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"one", 3);
  put_msg(buf, &off, 0, NULL, 0);
  put_msg(buf, &off, 0, (const uint8_t *)"three!", 6);
  put_msg(buf, &off, 0, (const uint8_t *)"4", 1);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, &a);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r), 0);
  assert_int_equal(r.n, 4);
  assert_int_equal(r.len[0], 3);
  assert_memory_equal(r.msg[0], "one", 3);
  assert_int_equal(r.len[1], 0);
  assert_int_equal(r.len[2], 6);
  assert_memory_equal(r.msg[2], "three!", 6);
  assert_ptr_equal(r.ptr[2], buf + 3 * MRPC__FRAME_HDR_LEN + 3);
  assert_int_equal(r.len[3], 1);
  assert_memory_equal(r.msg[3], "4", 1);
  assert_int_equal(c.allocs, 0); /* everything was delivered in place */
  assert_false(mrpc__deframer_partial(&d));
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_decodes_one_byte_at_a_time(void **state) {
  (void)state;
  uint8_t big[300];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7 + 1);
  uint8_t buf[512];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"abc", 3);
  put_msg(buf, &off, 0, NULL, 0);
  put_msg(buf, &off, 0, big, sizeof(big));
  put_msg(buf, &off, 0, (const uint8_t *)"z", 1);
  mrpc__deframer d;
  mrpc__deframer_init(&d, MRPC__DEFAULT_MAX_RECV, NULL);
  recorder r = {0};
  for (size_t i = 0; i < off; i++)
    assert_int_equal(mrpc__deframer_feed(&d, buf + i, 1, record, &r), 0);
  assert_int_equal(r.n, 4);
  assert_int_equal(r.len[0], 3);
  assert_memory_equal(r.msg[0], "abc", 3);
  assert_int_equal(r.len[1], 0);
  assert_int_equal(r.len[2], sizeof(big));
  assert_memory_equal(r.msg[2], big, sizeof(big));
  assert_int_equal(r.len[3], 1);
  assert_memory_equal(r.msg[3], "z", 1);
  assert_false(mrpc__deframer_partial(&d));
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_feeding_nothing_is_a_no_op(void **state) {
  (void)state;
  mrpc__deframer d;
  mrpc__deframer_init(&d, 10, NULL);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, NULL, 0, record, &r), 0);
  assert_int_equal(r.n, 0);
  assert_false(mrpc__deframer_partial(&d));
  mrpc__deframer_free(&d);
}

static void test_frame_zero_length_message(void **state) {
  (void)state;
  uint8_t h[MRPC__FRAME_HDR_LEN];
  mrpc__frame_header(h, 0, 0);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 0, NULL); /* max 0 still allows empty messages */
  recorder r = {0};
  /* Alone in a chunk: delivered although no payload byte follows. */
  assert_int_equal(mrpc__deframer_feed(&d, h, sizeof(h), record, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.len[0], 0);
  assert_false(mrpc__deframer_partial(&d));
  /* Header split in two chunks. */
  assert_int_equal(mrpc__deframer_feed(&d, h, 2, record, &r), 0);
  assert_int_equal(r.n, 1);
  assert_true(mrpc__deframer_partial(&d));
  assert_int_equal(mrpc__deframer_feed(&d, h + 2, 3, record, &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.len[1], 0);
  assert_false(mrpc__deframer_partial(&d));
  assert_null(d.buf); /* nothing buffered for empty messages */
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_accepts_length_equal_to_max(void **state) {
  (void)state;
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"0123456789", 10);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 10, NULL);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.len[0], 10);
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_rejects_oversized_length_before_buffering(void **state) {
  (void)state;
  counting c = {0, 0};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t h[MRPC__FRAME_HDR_LEN];
  mrpc__frame_header(h, 0, 1025);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 1024, &a);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, h, sizeof(h), record, &r),
                   MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(r.n, 0);
  assert_int_equal(c.allocs, 0);
  assert_null(d.buf);
  mrpc__deframer_free(&d);
}

static void test_frame_rejects_huge_length_byte_by_byte(void **state) {
  (void)state;
  counting c = {0, 0};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t h[MRPC__FRAME_HDR_LEN];
  mrpc__frame_header(h, 0, 0xffffffffu);
  mrpc__deframer d;
  mrpc__deframer_init(&d, MRPC__DEFAULT_MAX_RECV, &a);
  recorder r = {0};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(mrpc__deframer_feed(&d, h + i, 1, record, &r), 0);
  assert_int_equal(mrpc__deframer_feed(&d, h + 4, 1, record, &r),
                   MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(c.allocs, 0);
  mrpc__deframer_free(&d);
}

static void test_frame_rejects_compressed_without_encoding(void **state) {
  (void)state;
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 1, (const uint8_t *)"xyz", 3);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r),
                   MRPC_STATUS_INTERNAL);
  assert_int_equal(r.n, 0);
  mrpc__deframer_free(&d);
}

static void test_frame_delivers_compressed_when_encoding_negotiated(
    void **state) {
  (void)state;
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 1, (const uint8_t *)"xyz", 3);
  put_msg(buf, &off, 0, (const uint8_t *)"pl", 2);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  d.compression_ok = 1;
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.compressed[0], 1);
  assert_memory_equal(r.msg[0], "xyz", 3);
  assert_int_equal(r.compressed[1], 0);
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_rejects_unknown_flag_bits(void **state) {
  (void)state;
  static const uint8_t bad[] = {0x02, 0x80, 0x03, 0xff};
  for (size_t i = 0; i < sizeof(bad); i++) {
    uint8_t h[MRPC__FRAME_HDR_LEN];
    put_hdr(h, bad[i], 1);
    mrpc__deframer d;
    mrpc__deframer_init(&d, 100, NULL);
    d.compression_ok = 1; /* even with an encoding, unknown bits are fatal */
    recorder r = {0};
    assert_int_equal(mrpc__deframer_feed(&d, h, sizeof(h), record, &r),
                     MRPC_STATUS_INTERNAL);
    assert_int_equal(r.n, 0);
    mrpc__deframer_free(&d);
  }
}

static void test_frame_partial_reports_truncation(void **state) {
  (void)state;
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"abcdef", 6);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  recorder r = {0};
  assert_false(mrpc__deframer_partial(&d));
  assert_int_equal(mrpc__deframer_feed(&d, buf, 1, record, &r), 0);
  assert_true(mrpc__deframer_partial(&d)); /* inside the header */
  assert_int_equal(mrpc__deframer_feed(&d, buf + 1, 4, record, &r), 0);
  assert_true(mrpc__deframer_partial(&d)); /* header done, no payload yet */
  assert_int_equal(mrpc__deframer_feed(&d, buf + 5, 3, record, &r), 0);
  assert_true(mrpc__deframer_partial(&d)); /* half the payload */
  assert_int_equal(r.n, 0);
  assert_int_equal(mrpc__deframer_feed(&d, buf + 8, off - 8, record, &r), 0);
  assert_false(mrpc__deframer_partial(&d));
  assert_int_equal(r.n, 1);
  assert_memory_equal(r.msg[0], "abcdef", 6);
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static int check_not_partial(void *ud, int compressed, const uint8_t *msg,
                             size_t len) {
  (void)compressed, (void)msg, (void)len;
  assert_false(mrpc__deframer_partial(ud));
  return 0;
}

static void test_frame_is_not_partial_inside_callback(void **state) {
  (void)state;
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"ab", 2);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, check_not_partial, &d),
                   0);
  assert_int_equal(mrpc__deframer_feed(&d, buf, 6, check_not_partial, &d), 0);
  assert_int_equal(
      mrpc__deframer_feed(&d, buf + 6, off - 6, check_not_partial, &d), 0);
  mrpc__deframer_free(&d);
}

static void test_frame_callback_error_stops_feeding(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"a", 1);
  put_msg(buf, &off, 0, (const uint8_t *)"b", 1);
  put_msg(buf, &off, 0, (const uint8_t *)"c", 1);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  recorder r = {0};
  r.stop_after = 2;
  assert_int_equal(mrpc__deframer_feed(&d, buf, off, record, &r), 77);
  assert_int_equal(r.n, 2);
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_callback_error_from_buffered_message_is_returned(
    void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"abcd", 4);
  put_msg(buf, &off, 0, (const uint8_t *)"e", 1);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  recorder r = {0};
  r.stop_after = 1;
  assert_int_equal(mrpc__deframer_feed(&d, buf, 7, record, &r), 0);
  assert_int_equal(mrpc__deframer_feed(&d, buf + 7, off - 7, record, &r), 77);
  assert_int_equal(r.n, 1);
  assert_memory_equal(r.msg[0], "abcd", 4);
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_reports_nomem_when_buffer_cannot_grow(void **state) {
  (void)state;
  counting c = {0, 1};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t buf[32];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"abcdef", 6);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, &a);
  recorder r = {0};
  assert_int_equal(mrpc__deframer_feed(&d, buf, 8, record, &r),
                   MRPC_ERR_NOMEM);
  assert_int_equal(r.n, 0);
  mrpc__deframer_free(&d);
}

static void test_frame_buffer_grows_to_exact_length_and_is_reused(
    void **state) {
  (void)state;
  counting c = {0, 0};
  mrpc_allocator a = counting_alloc(&c);
  uint8_t buf[128];
  size_t off = 0;
  put_msg(buf, &off, 0, (const uint8_t *)"0123456789", 10);
  put_msg(buf, &off, 0, (const uint8_t *)"abcd", 4);
  put_msg(buf, &off, 0, (const uint8_t *)"0123456789ABCDEF", 16);
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, &a);
  recorder r = {0};
  for (size_t i = 0; i < off; i++)
    assert_int_equal(mrpc__deframer_feed(&d, buf + i, 1, record, &r), 0);
  assert_int_equal(r.n, 3);
  assert_memory_equal(r.msg[1], "abcd", 4);
  assert_memory_equal(r.msg[2], "0123456789ABCDEF", 16);
  assert_int_equal(d.cap, 16);
  assert_int_equal(c.allocs, 2); /* 10, then reused for 4, then 16 */
  mrpc__deframer_free(&d);
  recorder_reset(&r);
}

static void test_frame_random_splits_reproduce_the_messages(void **state) {
  (void)state;
  enum { NMSG = 40, MAXLEN = 700 };
  srand(12345);
  for (int round = 0; round < 50; round++) {
    static uint8_t stream[NMSG * (MAXLEN + MRPC__FRAME_HDR_LEN)];
    static uint8_t msgs[NMSG][MAXLEN];
    size_t lens[NMSG], off = 0;
    for (int i = 0; i < NMSG; i++) {
      lens[i] = (size_t)(rand() % 4 == 0 ? 0 : rand() % MAXLEN);
      for (size_t j = 0; j < lens[i]; j++) msgs[i][j] = (uint8_t)rand();
      put_msg(stream, &off, 0, msgs[i], (uint32_t)lens[i]);
    }
    mrpc__deframer d;
    mrpc__deframer_init(&d, MAXLEN, NULL);
    recorder r = {0};
    for (size_t pos = 0; pos < off;) {
      size_t n = (size_t)(rand() % 3 == 0 ? rand() % 8 : rand() % 1500);
      if (n > off - pos) n = off - pos;
      assert_int_equal(mrpc__deframer_feed(&d, stream + pos, n, record, &r),
                       0);
      pos += n;
    }
    assert_false(mrpc__deframer_partial(&d));
    assert_int_equal(r.n, NMSG);
    for (int i = 0; i < NMSG; i++) {
      assert_int_equal(r.len[i], lens[i]);
      if (lens[i]) assert_memory_equal(r.msg[i], msgs[i], lens[i]);
    }
    mrpc__deframer_free(&d);
    recorder_reset(&r);
  }
}

static void test_frame_free_is_idempotent(void **state) {
  (void)state;
  mrpc__deframer d;
  mrpc__deframer_init(&d, 100, NULL);
  mrpc__deframer_free(&d);
  mrpc__deframer_free(&d);
  assert_null(d.buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_header_is_flag_then_big_endian_length),
      cmocka_unit_test(test_frame_decodes_single_message_without_copying),
      cmocka_unit_test(test_frame_decodes_several_messages_in_one_chunk),
      cmocka_unit_test(test_frame_decodes_one_byte_at_a_time),
      cmocka_unit_test(test_frame_feeding_nothing_is_a_no_op),
      cmocka_unit_test(test_frame_zero_length_message),
      cmocka_unit_test(test_frame_accepts_length_equal_to_max),
      cmocka_unit_test(test_frame_rejects_oversized_length_before_buffering),
      cmocka_unit_test(test_frame_rejects_huge_length_byte_by_byte),
      cmocka_unit_test(test_frame_rejects_compressed_without_encoding),
      cmocka_unit_test(test_frame_delivers_compressed_when_encoding_negotiated),
      cmocka_unit_test(test_frame_rejects_unknown_flag_bits),
      cmocka_unit_test(test_frame_partial_reports_truncation),
      cmocka_unit_test(test_frame_is_not_partial_inside_callback),
      cmocka_unit_test(test_frame_callback_error_stops_feeding),
      cmocka_unit_test(
          test_frame_callback_error_from_buffered_message_is_returned),
      cmocka_unit_test(test_frame_reports_nomem_when_buffer_cannot_grow),
      cmocka_unit_test(test_frame_buffer_grows_to_exact_length_and_is_reused),
      cmocka_unit_test(test_frame_random_splits_reproduce_the_messages),
      cmocka_unit_test(test_frame_free_is_idempotent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
