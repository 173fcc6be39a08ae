/* Unit tests of examples/user/user_store.c, in memory and on SQLite.
 * Built by examples/user/user.mk as BUILD/tests/examples/user_store_test
 * and run by tests/examples/user.sh (case user-store).
 *   user_store_test [DIR]   (DIR for the SQLite files; default /tmp)
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "user_store.h"

static const char *g_dir = "/tmp";

/* A fresh database path per test. */
static void db_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/user_store_test.%ld.%s.db", g_dir, (long)getpid(),
           name);
  char extra[600];
  unlink(buf);
  snprintf(extra, sizeof extra, "%s-wal", buf);
  unlink(extra);
  snprintf(extra, sizeof extra, "%s-shm", buf);
  unlink(extra);
}

static void db_remove(const char *path) {
  char extra[600];
  unlink(path);
  snprintf(extra, sizeof extra, "%s-wal", path);
  unlink(extra);
  snprintf(extra, sizeof extra, "%s-shm", path);
  unlink(extra);
}

static user_store *open_store(const char *path) {
  user_store *st = NULL;
  char err[256];
  int rc = user_store_open(path, &st, err, sizeof err);
  if (rc) fail_msg("user_store_open(%s): %d %s", path ? path : "memory", rc,
                   err);
  return st;
}

static int32_t create(user_store *st, const char *name, int32_t age) {
  char email[128];
  snprintf(email, sizeof email, "%s@example.com", name);
  char *hobbies[] = {"reading", "films"};
  user_record r;
  assert_int_equal(user_store_create(st, name, email, age, 2, hobbies, &r), 0);
  assert_string_equal(r.name, name);
  assert_string_equal(r.email, email);
  assert_int_equal(r.age, age);
  assert_int_equal(r.n_hobbies, 2);
  assert_string_equal(r.hobbies[0], "reading");
  assert_string_equal(r.hobbies[1], "films");
  int32_t id = r.id;
  user_record_clear(&r);
  return id;
}

/* The behaviour common to both kinds of store. */
static void check_basics(user_store *st) {
  user_record r;
  assert_int_equal(user_store_get(st, 1, &r), USER_STORE_NOT_FOUND);

  int64_t total = -1;
  user_record *recs = NULL;
  size_t n = 7;
  assert_int_equal(user_store_list(st, 0, 10, &recs, &n, &total), 0);
  assert_int_equal(n, 0);
  assert_null(recs);
  assert_int_equal(total, 0);

  assert_int_equal(create(st, "hong", 30), 1);
  assert_int_equal(create(st, "kim", 25), 2);

  /* No hobbies, and unicode. */
  assert_int_equal(user_store_create(st, "홍길동", "hong@example.com", 0, 0,
                                     NULL, &r), 0);
  assert_int_equal(r.id, 3);
  assert_int_equal(r.status, USER_STATUS_ACTIVE);
  assert_int_equal(r.n_hobbies, 0);
  user_record_clear(&r);
  for (int i = 4; i <= 12; i++) {
    char name[16];
    snprintf(name, sizeof name, "u%d", i);
    assert_int_equal(create(st, name, i), i);
  }

  assert_int_equal(user_store_get(st, 3, &r), 0);
  assert_string_equal(r.name, "홍길동");
  assert_int_equal(r.status, USER_STATUS_ACTIVE);
  user_record_clear(&r);
  assert_int_equal(user_store_get(st, 2, &r), 0);
  assert_string_equal(r.name, "kim");
  assert_int_equal(r.n_hobbies, 2);
  assert_string_equal(r.hobbies[1], "films");
  user_record_clear(&r);
  assert_int_equal(user_store_get(st, 13, &r), USER_STORE_NOT_FOUND);
  assert_int_equal(user_store_get(st, 0, &r), USER_STORE_NOT_FOUND);
  assert_int_equal(user_store_get(st, -1, &r), USER_STORE_NOT_FOUND);

  /* Pages in id order. */
  assert_int_equal(user_store_list(st, 5, 5, &recs, &n, &total), 0);
  assert_int_equal(total, 12);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) assert_int_equal(recs[i].id, 6 + (int)i);
  assert_int_equal(recs[0].n_hobbies, 2);
  user_records_free(recs, n);
  assert_int_equal(user_store_list(st, 10, 5, &recs, &n, &total), 0);
  assert_int_equal(n, 2);
  assert_int_equal(recs[1].id, 12);
  user_records_free(recs, n);
  assert_int_equal(user_store_list(st, 12, 5, &recs, &n, &total), 0);
  assert_int_equal(n, 0);
  assert_int_equal(total, 12);
  assert_int_equal(user_store_list(st, INT64_C(1) << 40, 5, &recs, &n, NULL),
                   0);
  assert_int_equal(n, 0);
  assert_int_equal(user_store_list(st, 0, -1, &recs, &n, NULL), 0);
  assert_int_equal(n, 12);
  user_records_free(recs, n);
  assert_int_equal(user_store_list(st, -1, 5, &recs, &n, NULL),
                   USER_STORE_INVAL);

  /* Suspension: existing now, a future id when it is created. */
  assert_int_equal(user_store_suspend(st, 2), 0);
  assert_int_equal(user_store_get(st, 2, &r), 0);
  assert_int_equal(r.status, USER_STATUS_SUSPENDED);
  user_record_clear(&r);
  assert_int_equal(user_store_suspend(st, 14), USER_STORE_NOT_FOUND);
  assert_int_equal(user_store_suspend(st, 0), USER_STORE_INVAL);
  assert_int_equal(create(st, "u13", 13), 13);
  assert_int_equal(user_store_create(st, "u14", "u14@x", 14, 0, NULL, &r), 0);
  assert_int_equal(r.id, 14);
  assert_int_equal(r.status, USER_STATUS_SUSPENDED);
  user_record_clear(&r);
  assert_int_equal(user_store_get(st, 13, &r), 0);
  assert_int_equal(r.status, USER_STATUS_ACTIVE);
  user_record_clear(&r);
  assert_int_equal(user_store_get(st, 14, &r), 0);
  assert_int_equal(r.status, USER_STATUS_SUSPENDED);
  user_record_clear(&r);

  /* NULL out is allowed; bad arguments are refused. */
  assert_int_equal(user_store_create(st, "u15", "e", 1, 0, NULL, NULL), 0);
  assert_int_equal(user_store_create(st, NULL, "e", 1, 0, NULL, NULL),
                   USER_STORE_INVAL);
  assert_int_equal(user_store_create(st, "n", "e", 1, 1, NULL, NULL),
                   USER_STORE_INVAL);
}

static void test_memory(void **state) {
  (void)state;
  user_store *st = open_store(NULL);
  assert_false(user_store_is_persistent(st));
  check_basics(st);
  user_store_close(st);
  st = open_store("");
  assert_false(user_store_is_persistent(st));
  user_store_close(st);
}

static void test_sqlite(void **state) {
  (void)state;
  char path[512];
  db_path(path, sizeof path, "basics");
  user_store *st = open_store(path);
  assert_true(user_store_is_persistent(st));
  check_basics(st);
  user_store_close(st);

  /* Everything is still there after a reopen, and ids continue. */
  st = open_store(path);
  int64_t total = 0;
  user_record *recs = NULL;
  size_t n = 0;
  assert_int_equal(user_store_list(st, 0, -1, &recs, &n, &total), 0);
  assert_int_equal(total, 15);
  assert_int_equal(n, 15);
  for (size_t i = 0; i < n; i++) assert_int_equal(recs[i].id, (int)i + 1);
  assert_string_equal(recs[2].name, "홍길동");
  assert_int_equal(recs[1].status, USER_STATUS_SUSPENDED);
  assert_int_equal(recs[13].status, USER_STATUS_SUSPENDED);
  assert_int_equal(recs[0].status, USER_STATUS_ACTIVE);
  assert_int_equal(recs[0].n_hobbies, 2);
  assert_string_equal(recs[0].hobbies[0], "reading");
  user_records_free(recs, n);
  assert_int_equal(create(st, "after", 1), 16);
  user_store_close(st);

  /* Ids are never reused, even when the last rows were deleted. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "DELETE FROM users WHERE id >= 15", NULL,
                                NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  st = open_store(path);
  assert_int_equal(create(st, "again", 1), 17);
  user_record r;
  assert_int_equal(user_store_get(st, 16, &r), USER_STORE_NOT_FOUND);
  user_store_close(st);
  db_remove(path);
}

static void test_sqlite_bad_path(void **state) {
  (void)state;
  user_store *st = NULL;
  char err[256];
  assert_int_equal(
      user_store_open("/nonexistent-dir/x/users.db", &st, err, sizeof err),
      USER_STORE_DB);
  assert_null(st);
  assert_true(strlen(err) > 0);
}

/* ---- concurrency: distinct ids, nothing lost ---------------------------- */

#define THREADS 8
#define PER_THREAD 150

static void *creator(void *arg) {
  user_store *st = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    char *hobbies[] = {"a", "b", "c"};
    user_record r;
    if (user_store_create(st, "t", "t@x", i, 3, hobbies, &r) != 0)
      return (void *)1;
    user_record_clear(&r);
    if (i % 10 == 0) {
      user_record *recs = NULL;
      size_t n = 0;
      if (user_store_list(st, 0, 20, &recs, &n, NULL) != 0) return (void *)1;
      user_records_free(recs, n);
    }
  }
  return NULL;
}

static void check_concurrent(user_store *st) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, creator, st), 0);
  for (int i = 0; i < THREADS; i++) {
    void *ret;
    pthread_join(t[i], &ret);
    assert_null(ret);
  }
  user_record *recs = NULL;
  size_t n = 0;
  int64_t total = 0;
  assert_int_equal(user_store_list(st, 0, -1, &recs, &n, &total), 0);
  assert_int_equal(total, THREADS * PER_THREAD);
  assert_int_equal(n, THREADS * PER_THREAD);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(recs[i].id, (int)i + 1);
    assert_int_equal(recs[i].n_hobbies, 3);
  }
  user_records_free(recs, n);
}

static void test_memory_concurrent(void **state) {
  (void)state;
  user_store *st = open_store(NULL);
  check_concurrent(st);
  user_store_close(st);
}

static void test_sqlite_concurrent(void **state) {
  (void)state;
  char path[512];
  db_path(path, sizeof path, "concurrent");
  user_store *st = open_store(path);
  check_concurrent(st);
  user_store_close(st);
  db_remove(path);
}

int main(int argc, char **argv) {
  if (argc > 1) g_dir = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_memory),
      cmocka_unit_test(test_sqlite),
      cmocka_unit_test(test_sqlite_bad_path),
      cmocka_unit_test(test_memory_concurrent),
      cmocka_unit_test(test_sqlite_concurrent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
