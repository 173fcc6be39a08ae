/* Bearer-token authentication: the server check (auth) and the client side
 * that adds the header (bearer). */
#include "ic_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_KEY "authorization"

/* ---- server ---- */

struct mrpc_ic_auth {
  char **tokens; /* NULL-terminated copy, or NULL */
  size_t *token_lens;
  size_t n_tokens;
  mrpc_ic_auth_fn verify;
  void *user;
  char **exempt;
  mrpc_interceptor_filter exempt_filter; /* include = exempt */
  atomic_uint_fast64_t accepted, rejected;
};

static const char *const default_exempt[] = {"/grpc.health.v1.Health/", NULL};

void mrpc_ic_auth_opts_init(mrpc_ic_auth_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

/* Compares in time that depends on the lengths only. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen > blen ? alen : blen;
  unsigned char diff = (unsigned char)(alen != blen);
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < alen ? (unsigned char)a[i] : 0;
    unsigned char y = i < blen ? (unsigned char)b[i] : 0;
    diff |= (unsigned char)(x ^ y);
  }
  return diff == 0;
}

static mrpc_status_code auth_start(mrpc_call *call, void *ctx,
                                   void **call_data, const char **message) {
  (void)call_data;
  mrpc_ic_auth *a = ctx;
  if (!mrpc_call_is_server(call)) return MRPC_STATUS_OK;
  if (a->exempt && a->exempt[0] &&
      mrpc_interceptor_filter_match(&a->exempt_filter, mrpc_call_method(call),
                                    NULL)) {
    atomic_fetch_add(&a->accepted, 1);
    return MRPC_STATUS_OK;
  }
  size_t vlen;
  const char *v =
      (const char *)mrpc_metadata_get(mrpc_call_metadata(call), AUTH_KEY, &vlen);
  if (!v) {
    atomic_fetch_add(&a->rejected, 1);
    *message = "missing authorization metadata (want \"authorization: Bearer "
               "<token>\")";
    return MRPC_STATUS_UNAUTHENTICATED;
  }
  if (vlen < 7 || strncasecmp(v, "bearer ", 7) != 0) {
    atomic_fetch_add(&a->rejected, 1);
    *message = "authorization is not a Bearer token";
    return MRPC_STATUS_UNAUTHENTICATED;
  }
  const char *tok = v + 7;
  while (*tok == ' ') tok++;
  size_t tlen = vlen - (size_t)(tok - v);
  while (tlen && tok[tlen - 1] == ' ') tlen--;
  if (tlen) {
    int ok = 0;
    for (size_t i = 0; i < a->n_tokens; i++) /* all of them: no early exit */
      ok |= ct_equal(tok, tlen, a->tokens[i], a->token_lens[i]);
    if (ok) {
      atomic_fetch_add(&a->accepted, 1);
      return MRPC_STATUS_OK;
    }
    if (a->verify) {
      char buf[256];
      char *t = tlen < sizeof buf ? buf : malloc(tlen + 1);
      if (!t) {
        atomic_fetch_add(&a->rejected, 1);
        *message = "out of memory checking the token";
        return MRPC_STATUS_INTERNAL;
      }
      memcpy(t, tok, tlen);
      t[tlen] = '\0';
      const char *m = NULL;
      mrpc_status_code rc = a->verify(call, t, a->user, &m);
      if (t != buf) free(t);
      if (rc == MRPC_STATUS_OK) {
        atomic_fetch_add(&a->accepted, 1);
        return MRPC_STATUS_OK;
      }
      atomic_fetch_add(&a->rejected, 1);
      *message = m ? m : "invalid token";
      return rc;
    }
  }
  atomic_fetch_add(&a->rejected, 1);
  *message = "invalid token";
  return MRPC_STATUS_UNAUTHENTICATED;
}

static const mrpc_interceptor auth_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.auth",
    .on_start = auth_start,
};

int mrpc_ic_auth_new(const mrpc_ic_auth_opts *opts, mrpc_ic_auth **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  if (!opts) return MRPC_ERR_INVAL;
  mrpc_ic_auth_opts o;
  mrpc_ic_auth_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  size_t n = 0;
  if (o.tokens)
    for (; o.tokens[n]; n++)
      if (!mrpc__ic_token_ok(o.tokens[n])) return MRPC_ERR_INVAL;
  if (!n && !o.verify) return MRPC_ERR_INVAL;
  mrpc_ic_auth *a = calloc(1, sizeof *a);
  if (!a) return MRPC_ERR_NOMEM;
  int oom = 0;
  a->tokens = mrpc__ic_strv_dup(o.tokens, &oom);
  a->token_lens = calloc(n ? n : 1, sizeof *a->token_lens);
  a->exempt =
      mrpc__ic_strv_dup(o.exempt ? o.exempt : default_exempt, &oom);
  if (oom || !a->token_lens) {
    mrpc_ic_auth_del(a);
    return MRPC_ERR_NOMEM;
  }
  a->n_tokens = n;
  for (size_t i = 0; i < n; i++) a->token_lens[i] = strlen(a->tokens[i]);
  a->verify = o.verify;
  a->user = o.user;
  a->exempt_filter.include = (const char *const *)a->exempt;
  *out = a;
  return 0;
}

const mrpc_interceptor *mrpc_ic_auth_interceptor(const mrpc_ic_auth *a) {
  return a ? &auth_table : NULL;
}

void mrpc_ic_auth_stats(const mrpc_ic_auth *a, uint64_t *accepted,
                        uint64_t *rejected) {
  mrpc_ic_auth *m = (mrpc_ic_auth *)a;
  if (accepted) *accepted = m ? atomic_load(&m->accepted) : 0;
  if (rejected) *rejected = m ? atomic_load(&m->rejected) : 0;
}

void mrpc_ic_auth_del(mrpc_ic_auth *a) {
  if (!a) return;
  free(a->tokens);
  free(a->token_lens);
  free(a->exempt);
  free(a);
}

/* ---- client ---- */

struct mrpc_ic_bearer {
  pthread_mutex_t mu;
  char *value; /* "Bearer TOKEN" */
};

static char *bearer_value(const char *token) {
  if (!mrpc__ic_token_ok(token)) return NULL;
  size_t n = strlen(token);
  char *v = malloc(n + 8);
  if (v) {
    memcpy(v, "Bearer ", 7);
    memcpy(v + 7, token, n + 1);
  }
  return v;
}

static mrpc_status_code bearer_start(mrpc_call *call, void *ctx,
                                     void **call_data, const char **message) {
  (void)call_data;
  mrpc_ic_bearer *b = ctx;
  if (mrpc_call_is_server(call)) return MRPC_STATUS_OK;
  if (mrpc_metadata_get(mrpc_call_outgoing_metadata(call), AUTH_KEY, NULL))
    return MRPC_STATUS_OK; /* the application said which */
  pthread_mutex_lock(&b->mu);
  int rv = mrpc_call_add_header(call, AUTH_KEY, b->value, strlen(b->value));
  pthread_mutex_unlock(&b->mu);
  if (rv != 0) {
    *message = "could not add the authorization metadata";
    return MRPC_STATUS_INTERNAL;
  }
  return MRPC_STATUS_OK;
}

static const mrpc_interceptor bearer_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.bearer",
    .on_start = bearer_start,
};

int mrpc_ic_bearer_new(const char *token, mrpc_ic_bearer **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  if (!mrpc__ic_token_ok(token)) return MRPC_ERR_INVAL;
  mrpc_ic_bearer *b = calloc(1, sizeof *b);
  if (!b) return MRPC_ERR_NOMEM;
  if (!(b->value = bearer_value(token))) {
    free(b);
    return MRPC_ERR_NOMEM;
  }
  pthread_mutex_init(&b->mu, NULL);
  *out = b;
  return 0;
}

int mrpc_ic_bearer_set_token(mrpc_ic_bearer *b, const char *token) {
  if (!b || !mrpc__ic_token_ok(token)) return MRPC_ERR_INVAL;
  char *v = bearer_value(token);
  if (!v) return MRPC_ERR_NOMEM;
  pthread_mutex_lock(&b->mu);
  char *old = b->value;
  b->value = v;
  pthread_mutex_unlock(&b->mu);
  free(old);
  return 0;
}

const mrpc_interceptor *mrpc_ic_bearer_interceptor(const mrpc_ic_bearer *b) {
  return b ? &bearer_table : NULL;
}

void mrpc_ic_bearer_del(mrpc_ic_bearer *b) {
  if (!b) return;
  pthread_mutex_destroy(&b->mu);
  free(b->value);
  free(b);
}
