/* user_store: the UserService example's storage.  Users in memory (the
 * default) or in an SQLite file, so that they survive a restart.
 *
 * Ids start at 1 and only grow (a restarted SQLite store continues after the
 * highest id ever given, even if rows were deleted by hand).  Listing is in
 * id order.  Every function is thread-safe: one mutex per store, held for
 * the whole of each operation, so a create is atomic (user row and hobbies
 * together) and concurrent callers never see half a user.
 *
 * Nothing here knows protobuf: user_server.c converts.  Status values are
 * the proto's UserStatus numbers.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef USER_STORE_H
#define USER_STORE_H

#include <stddef.h>
#include <stdint.h>

/* user.UserStatus, same numbers as user.proto. */
enum {
  USER_STATUS_INACTIVE = 0,
  USER_STATUS_ACTIVE = 1,
  USER_STATUS_SUSPENDED = 2
};

/* Results (0 = OK). */
enum {
  USER_STORE_OK = 0,
  USER_STORE_NOT_FOUND = -1, /* no user with that id */
  USER_STORE_FULL = -2,      /* ids exhausted (INT32_MAX given out) */
  USER_STORE_NOMEM = -3,
  USER_STORE_DB = -4,        /* SQLite failed: see user_store_last_error */
  USER_STORE_INVAL = -5      /* bad argument (NULL name, negative offset) */
};

/* One user.  Filled by the store; every string is the record's own (free
 * with user_record_clear).  hobbies has n_hobbies entries. */
typedef struct user_record {
  int32_t id;
  char *name;
  char *email;
  int32_t age;
  size_t n_hobbies;
  char **hobbies;
  int status; /* USER_STATUS_* */
} user_record;

typedef struct user_store user_store;

/* Opens a store: path NULL (or "") keeps users in memory; otherwise the
 * SQLite database at path, created with its tables if needed.  Returns 0
 * and *out, or USER_STORE_NOMEM / USER_STORE_DB; on USER_STORE_DB a reason
 * is written to err (errlen bytes, may be 0). */
int user_store_open(const char *path, user_store **out, char *err,
                    size_t errlen);

/* Closes the store and frees it.  NULL is a no-op. */
void user_store_close(user_store *st);

/* Nonzero when the store is an SQLite file. */
int user_store_is_persistent(const user_store *st);

/* Creates a user with the next id and status ACTIVE (SUSPENDED if its id
 * was named in user_store_suspend before).  Strings are copied; hobbies may
 * be NULL when n_hobbies is 0.  Validation (empty name ...) is the caller's.
 * Returns 0 and, when out is not NULL, a copy of the new user in *out; or
 * USER_STORE_INVAL, USER_STORE_FULL, USER_STORE_NOMEM, USER_STORE_DB. */
int user_store_create(user_store *st, const char *name, const char *email,
                      int32_t age, size_t n_hobbies, char *const *hobbies,
                      user_record *out);

/* Finds a user by id.  Returns 0 and *out, USER_STORE_NOT_FOUND, or
 * USER_STORE_NOMEM / USER_STORE_DB. */
int user_store_get(user_store *st, int32_t id, user_record *out);

/* Up to limit users in id order, skipping the first offset, and the total
 * number of users (total may be NULL).  *out is an array of *n records
 * (NULL when 0); free it with user_records_free.  Both taken under one lock,
 * so total and the page agree.  limit < 0 means no limit.  Returns 0 or
 * USER_STORE_INVAL (offset < 0), USER_STORE_NOMEM, USER_STORE_DB. */
int user_store_list(user_store *st, int64_t offset, int64_t limit,
                    user_record **out, size_t *n, int64_t *total);

/* Marks a user SUSPENDED: the user with that id now (if any), and a user
 * created later with that id.  Persistent in an SQLite store for existing
 * users.  Returns 0 (found now), USER_STORE_NOT_FOUND (remembered for
 * later), or USER_STORE_INVAL (id <= 0), USER_STORE_NOMEM, USER_STORE_DB. */
int user_store_suspend(user_store *st, int32_t id);

/* Copies the message of the last USER_STORE_DB failure (or "") into buf,
 * len bytes, NUL-terminated.  Returns buf. */
char *user_store_last_error(user_store *st, char *buf, size_t len);

/* Text for a USER_STORE_* result. */
const char *user_store_strerror(int rc);

/* Frees a record's strings and zeroes it.  NULL is a no-op. */
void user_record_clear(user_record *r);

/* Frees an array from user_store_list. */
void user_records_free(user_record *recs, size_t n);

#endif
