/* user_store: users in memory or in SQLite.  See user_store.h.
 *
 * Memory: an array kept in id order (ids only grow, so appending keeps it
 * sorted and lookups are a binary search).
 *
 * SQLite: two tables,
 *   users(id INTEGER PRIMARY KEY AUTOINCREMENT, name, email, age, status)
 *   hobbies(user_id, pos, hobby)   -- one row per hobby, in order
 * AUTOINCREMENT makes ids continue after the highest one ever given, across
 * restarts.  A create is one transaction.  WAL journal with
 * synchronous=NORMAL: a commit is an append to the log, no fsync per user.
 *
 * Both: one mutex serializes every operation (the SQLite handle is opened
 * without SQLite's own locking, the mutex is the lock).
 * SPDX-License-Identifier: Apache-2.0 */
#include "user_store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

struct user_store {
  pthread_mutex_t mu;
  /* memory */
  user_record *users;
  size_t n, cap;
  int64_t next_id;
  /* SQLite (NULL in memory) */
  sqlite3 *db;
  sqlite3_stmt *ins_user, *ins_hobby, *get_user, *get_hobbies, *list_users,
      *count_users, *set_status, *begin, *commit, *rollback;
  char last_error[256];
  /* ids named by user_store_suspend that did not exist yet */
  int32_t *pending;
  size_t n_pending, cap_pending;
};

/* ---- records ------------------------------------------------------------ */

void user_record_clear(user_record *r) {
  if (!r) return;
  free(r->name);
  free(r->email);
  for (size_t i = 0; i < r->n_hobbies; i++) free(r->hobbies[i]);
  free(r->hobbies);
  memset(r, 0, sizeof *r);
}

void user_records_free(user_record *recs, size_t n) {
  for (size_t i = 0; i < n; i++) user_record_clear(&recs[i]);
  free(recs);
}

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

/* Fills *r with copies; on failure *r is cleared. */
static int record_fill(user_record *r, int32_t id, const char *name,
                       const char *email, int32_t age, size_t n_hobbies,
                       char *const *hobbies, int status) {
  memset(r, 0, sizeof *r);
  r->id = id;
  r->age = age;
  r->status = status;
  r->name = dup_str(name);
  r->email = dup_str(email);
  if (!r->name || !r->email) goto nomem;
  if (n_hobbies) {
    r->hobbies = calloc(n_hobbies, sizeof *r->hobbies);
    if (!r->hobbies) goto nomem;
    for (size_t i = 0; i < n_hobbies; i++) {
      r->hobbies[i] = dup_str(hobbies[i]);
      if (!r->hobbies[i]) goto nomem;
      r->n_hobbies = i + 1;
    }
  }
  return USER_STORE_OK;
nomem:
  user_record_clear(r);
  return USER_STORE_NOMEM;
}

static int record_copy(user_record *dst, const user_record *src) {
  return record_fill(dst, src->id, src->name, src->email, src->age,
                     src->n_hobbies, src->hobbies, src->status);
}

const char *user_store_strerror(int rc) {
  switch (rc) {
  case USER_STORE_OK: return "ok";
  case USER_STORE_NOT_FOUND: return "not found";
  case USER_STORE_FULL: return "no more user ids";
  case USER_STORE_NOMEM: return "out of memory";
  case USER_STORE_DB: return "database error";
  case USER_STORE_INVAL: return "invalid argument";
  default: return "unknown error";
  }
}

/* ---- pending suspensions ------------------------------------------------ */

static bool pending_has(const user_store *st, int32_t id) {
  for (size_t i = 0; i < st->n_pending; i++)
    if (st->pending[i] == id) return true;
  return false;
}

static int pending_add(user_store *st, int32_t id) {
  if (pending_has(st, id)) return USER_STORE_OK;
  if (st->n_pending == st->cap_pending) {
    size_t cap = st->cap_pending ? 2 * st->cap_pending : 8;
    int32_t *p = realloc(st->pending, cap * sizeof *p);
    if (!p) return USER_STORE_NOMEM;
    st->pending = p;
    st->cap_pending = cap;
  }
  st->pending[st->n_pending++] = id;
  return USER_STORE_OK;
}

/* ---- SQLite helpers ----------------------------------------------------- */

static int db_fail(user_store *st, const char *what) {
  snprintf(st->last_error, sizeof st->last_error, "%s: %s", what,
           st->db ? sqlite3_errmsg(st->db) : "no database");
  return USER_STORE_DB;
}

/* Steps a statement that returns no rows, then resets it. */
static int db_exec_stmt(user_store *st, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  int ret = rc == SQLITE_DONE ? USER_STORE_OK : db_fail(st, what);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return ret;
}

static const char k_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS users("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL,"
    "  age INTEGER NOT NULL DEFAULT 0,"
    "  status INTEGER NOT NULL DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS hobbies("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  hobby TEXT NOT NULL,"
    "  PRIMARY KEY(user_id, pos));";

static int db_prepare(user_store *st, const char *sql, sqlite3_stmt **out) {
  if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK)
    return db_fail(st, "prepare");
  return USER_STORE_OK;
}

static int db_open(user_store *st, const char *path) {
  int rc = sqlite3_open_v2(path, &st->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) return db_fail(st, path);
  sqlite3_busy_timeout(st->db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(st->db, k_schema, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(st->last_error, sizeof st->last_error, "%s: schema: %s", path,
             msg ? msg : "?");
    sqlite3_free(msg);
    return USER_STORE_DB;
  }
  struct {
    const char *sql;
    sqlite3_stmt **stmt;
  } stmts[] = {
      {"INSERT INTO users(name, email, age, status) VALUES(?, ?, ?, ?)",
       &st->ins_user},
      {"INSERT INTO hobbies(user_id, pos, hobby) VALUES(?, ?, ?)",
       &st->ins_hobby},
      {"SELECT id, name, email, age, status FROM users WHERE id = ?",
       &st->get_user},
      {"SELECT hobby FROM hobbies WHERE user_id = ? ORDER BY pos",
       &st->get_hobbies},
      {"SELECT id, name, email, age, status FROM users ORDER BY id"
       " LIMIT ? OFFSET ?",
       &st->list_users},
      {"SELECT COUNT(*) FROM users", &st->count_users},
      {"UPDATE users SET status = ? WHERE id = ?", &st->set_status},
      {"BEGIN IMMEDIATE", &st->begin},
      {"COMMIT", &st->commit},
      {"ROLLBACK", &st->rollback},
  };
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
    if ((rc = db_prepare(st, stmts[i].sql, stmts[i].stmt)) != 0) return rc;
  return USER_STORE_OK;
}

static const char *col_text(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? (const char *)t : "";
}

/* Reads the current row of get_user/list_users (id, name, email, age,
 * status) and the user's hobbies into *r. */
static int db_read_user(user_store *st, sqlite3_stmt *s, user_record *r) {
  int rc = record_fill(r, (int32_t)sqlite3_column_int64(s, 0), col_text(s, 1),
                       col_text(s, 2), (int32_t)sqlite3_column_int64(s, 3), 0,
                       NULL, sqlite3_column_int(s, 4));
  if (rc) return rc;
  sqlite3_stmt *h = st->get_hobbies;
  sqlite3_bind_int64(h, 1, r->id);
  size_t cap = 0;
  while ((rc = sqlite3_step(h)) == SQLITE_ROW) {
    if (r->n_hobbies == cap) {
      size_t ncap = cap ? 2 * cap : 4;
      char **p = realloc(r->hobbies, ncap * sizeof *p);
      if (!p) goto nomem;
      r->hobbies = p;
      cap = ncap;
    }
    if (!(r->hobbies[r->n_hobbies] = dup_str(col_text(h, 0)))) goto nomem;
    r->n_hobbies++;
  }
  sqlite3_reset(h);
  sqlite3_clear_bindings(h);
  if (rc != SQLITE_DONE) {
    user_record_clear(r);
    return db_fail(st, "read hobbies");
  }
  return USER_STORE_OK;
nomem:
  sqlite3_reset(h);
  sqlite3_clear_bindings(h);
  user_record_clear(r);
  return USER_STORE_NOMEM;
}

static int db_create(user_store *st, const char *name, const char *email,
                     int32_t age, size_t n_hobbies, char *const *hobbies,
                     user_record *out) {
  int rc = db_exec_stmt(st, st->begin, "begin");
  if (rc) return rc;
  sqlite3_stmt *s = st->ins_user;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, email, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, age);
  sqlite3_bind_int(s, 4, USER_STATUS_ACTIVE);
  if ((rc = db_exec_stmt(st, s, "insert user")) != 0) goto rollback;
  int64_t id = sqlite3_last_insert_rowid(st->db);
  if (id <= 0 || id > INT32_MAX) {
    rc = USER_STORE_FULL;
    goto rollback;
  }
  for (size_t i = 0; i < n_hobbies; i++) {
    s = st->ins_hobby;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
    sqlite3_bind_text(s, 3, hobbies[i] ? hobbies[i] : "", -1, SQLITE_STATIC);
    if ((rc = db_exec_stmt(st, s, "insert hobby")) != 0) goto rollback;
  }
  int status = USER_STATUS_ACTIVE;
  if (pending_has(st, (int32_t)id)) {
    status = USER_STATUS_SUSPENDED;
    s = st->set_status;
    sqlite3_bind_int(s, 1, status);
    sqlite3_bind_int64(s, 2, id);
    if ((rc = db_exec_stmt(st, s, "suspend")) != 0) goto rollback;
  }
  if ((rc = db_exec_stmt(st, st->commit, "commit")) != 0) goto rollback;
  if (out)
    return record_fill(out, (int32_t)id, name, email, age, n_hobbies, hobbies,
                       status);
  return USER_STORE_OK;
rollback:
  /* The error message of the failure is kept: ROLLBACK's own result only
   * matters if it fails too. */
  if (sqlite3_step(st->rollback) != SQLITE_DONE && rc != USER_STORE_DB)
    db_fail(st, "rollback");
  sqlite3_reset(st->rollback);
  return rc;
}

static int db_get(user_store *st, int32_t id, user_record *out) {
  sqlite3_stmt *s = st->get_user;
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s), ret;
  if (rc == SQLITE_ROW)
    ret = db_read_user(st, s, out);
  else if (rc == SQLITE_DONE)
    ret = USER_STORE_NOT_FOUND;
  else
    ret = db_fail(st, "get user");
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return ret;
}

static int db_count(user_store *st, int64_t *total) {
  int ret = USER_STORE_OK;
  if (sqlite3_step(st->count_users) == SQLITE_ROW)
    *total = sqlite3_column_int64(st->count_users, 0);
  else
    ret = db_fail(st, "count users");
  sqlite3_reset(st->count_users);
  return ret;
}

static int db_list(user_store *st, int64_t offset, int64_t limit,
                   user_record **out, size_t *n, int64_t *total) {
  int64_t count = 0;
  int ret = db_count(st, &count);
  if (ret) return ret;
  if (total) *total = count;
  int64_t avail = count > offset ? count - offset : 0;
  if (limit < 0 || limit > avail) limit = avail;
  if (limit == 0) return USER_STORE_OK;
  user_record *recs = calloc((size_t)limit, sizeof *recs);
  if (!recs) return USER_STORE_NOMEM;
  size_t got = 0;
  sqlite3_stmt *s = st->list_users;
  sqlite3_bind_int64(s, 1, limit);
  sqlite3_bind_int64(s, 2, offset);
  int rc = SQLITE_DONE;
  while (got < (size_t)limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    if ((ret = db_read_user(st, s, &recs[got])) != 0) break;
    got++;
  }
  if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
    ret = db_fail(st, "list users");
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (ret) {
    user_records_free(recs, got);
    return ret;
  }
  *out = recs;
  *n = got;
  return USER_STORE_OK;
}

static int db_suspend(user_store *st, int32_t id) {
  sqlite3_stmt *s = st->set_status;
  sqlite3_bind_int(s, 1, USER_STATUS_SUSPENDED);
  sqlite3_bind_int64(s, 2, id);
  int rc = db_exec_stmt(st, s, "suspend");
  if (rc) return rc;
  return sqlite3_changes(st->db) > 0 ? USER_STORE_OK : USER_STORE_NOT_FOUND;
}

/* ---- memory ------------------------------------------------------------- */

static user_record *mem_find(user_store *st, int32_t id) {
  size_t lo = 0, hi = st->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (st->users[mid].id == id) return &st->users[mid];
    if (st->users[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static int mem_create(user_store *st, const char *name, const char *email,
                      int32_t age, size_t n_hobbies, char *const *hobbies,
                      user_record *out) {
  if (st->next_id > INT32_MAX) return USER_STORE_FULL;
  if (st->n == st->cap) {
    size_t cap = st->cap ? 2 * st->cap : 16;
    user_record *p = realloc(st->users, cap * sizeof *p);
    if (!p) return USER_STORE_NOMEM;
    st->users = p;
    st->cap = cap;
  }
  int32_t id = (int32_t)st->next_id;
  int status = pending_has(st, id) ? USER_STATUS_SUSPENDED : USER_STATUS_ACTIVE;
  user_record *r = &st->users[st->n];
  int rc = record_fill(r, id, name, email, age, n_hobbies, hobbies, status);
  if (rc) return rc;
  if (out && (rc = record_copy(out, r)) != 0) {
    user_record_clear(r);
    return rc;
  }
  st->n++;
  st->next_id++;
  return USER_STORE_OK;
}

static int mem_list(user_store *st, int64_t offset, int64_t limit,
                    user_record **out, size_t *n, int64_t *total) {
  if (total) *total = (int64_t)st->n;
  int64_t avail = (int64_t)st->n > offset ? (int64_t)st->n - offset : 0;
  if (limit < 0 || limit > avail) limit = avail;
  if (limit == 0) return USER_STORE_OK;
  user_record *recs = calloc((size_t)limit, sizeof *recs);
  if (!recs) return USER_STORE_NOMEM;
  for (int64_t i = 0; i < limit; i++) {
    int rc = record_copy(&recs[i], &st->users[offset + i]);
    if (rc) {
      user_records_free(recs, (size_t)i);
      return rc;
    }
  }
  *out = recs;
  *n = (size_t)limit;
  return USER_STORE_OK;
}

/* ---- the API ------------------------------------------------------------ */

int user_store_open(const char *path, user_store **out, char *err,
                    size_t errlen) {
  if (err && errlen) err[0] = '\0';
  user_store *st = calloc(1, sizeof *st);
  if (!st) return USER_STORE_NOMEM;
  pthread_mutex_init(&st->mu, NULL);
  st->next_id = 1;
  if (path && *path) {
    int rc = db_open(st, path);
    if (rc) {
      if (err && errlen) snprintf(err, errlen, "%s", st->last_error);
      user_store_close(st);
      return rc;
    }
  }
  *out = st;
  return USER_STORE_OK;
}

void user_store_close(user_store *st) {
  if (!st) return;
  if (st->db) {
    sqlite3_stmt *stmts[] = {st->ins_user,    st->ins_hobby,   st->get_user,
                             st->get_hobbies, st->list_users,  st->count_users,
                             st->set_status,  st->begin,       st->commit,
                             st->rollback};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
      sqlite3_finalize(stmts[i]);
    sqlite3_close(st->db);
  }
  user_records_free(st->users, st->n);
  free(st->pending);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

int user_store_is_persistent(const user_store *st) { return st->db != NULL; }

int user_store_create(user_store *st, const char *name, const char *email,
                      int32_t age, size_t n_hobbies, char *const *hobbies,
                      user_record *out) {
  if (!st || !name || !email || (n_hobbies && !hobbies))
    return USER_STORE_INVAL;
  if (out) memset(out, 0, sizeof *out);
  pthread_mutex_lock(&st->mu);
  int rc = st->db ? db_create(st, name, email, age, n_hobbies, hobbies, out)
                  : mem_create(st, name, email, age, n_hobbies, hobbies, out);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int user_store_get(user_store *st, int32_t id, user_record *out) {
  if (!st || !out) return USER_STORE_INVAL;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&st->mu);
  int rc;
  if (st->db) {
    rc = db_get(st, id, out);
  } else {
    user_record *r = mem_find(st, id);
    rc = r ? record_copy(out, r) : USER_STORE_NOT_FOUND;
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int user_store_list(user_store *st, int64_t offset, int64_t limit,
                    user_record **out, size_t *n, int64_t *total) {
  if (!st || !out || !n || offset < 0) return USER_STORE_INVAL;
  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&st->mu);
  int rc = st->db ? db_list(st, offset, limit, out, n, total)
                  : mem_list(st, offset, limit, out, n, total);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int user_store_suspend(user_store *st, int32_t id) {
  if (!st || id <= 0) return USER_STORE_INVAL;
  pthread_mutex_lock(&st->mu);
  int rc;
  if (st->db) {
    rc = db_suspend(st, id);
  } else {
    user_record *r = mem_find(st, id);
    if (r) r->status = USER_STATUS_SUSPENDED;
    rc = r ? USER_STORE_OK : USER_STORE_NOT_FOUND;
  }
  if (rc == USER_STORE_NOT_FOUND) {
    int prc = pending_add(st, id);
    if (prc) rc = prc;
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

char *user_store_last_error(user_store *st, char *buf, size_t len) {
  if (!len) return buf;
  pthread_mutex_lock(&st->mu);
  snprintf(buf, len, "%s", st->last_error);
  pthread_mutex_unlock(&st->mu);
  return buf;
}
