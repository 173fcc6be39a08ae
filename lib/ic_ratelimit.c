/* The rate-limit interceptor: token buckets in a fixed, set-associative
 * table (WAYS buckets per set, least recently used one replaced), so that
 * per-peer or per-key limits take bounded memory whatever the clients do.
 * One mutex guards the table; it is held for a lookup and a refill. */
#include "ic_common.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 8
#define KEY_MAX 96 /* bytes kept of a key (the hash covers all of it) */
#define DEFAULT_KEYS 1024

typedef struct bucket {
  uint64_t hash; /* 0 = free */
  int64_t last_ns; /* last refill, and last use for eviction */
  double tokens;
  char key[KEY_MAX];
} bucket;

struct mrpc_ic_ratelimit {
  mrpc_ic_ratelimit_opts o;
  pthread_mutex_t mu;
  bucket global;
  bucket *table; /* n_sets * WAYS */
  size_t n_sets;
  size_t used;
  atomic_uint_fast64_t allowed, limited;
};

void mrpc_ic_ratelimit_opts_init(mrpc_ic_ratelimit_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h ? h : 1; /* 0 marks a free slot */
}

static int64_t now_ns(const mrpc_ic_ratelimit *rl) {
  return rl->o.clock_ns ? rl->o.clock_ns(rl->o.clock_user) : mrpc__ic_now_ns();
}

/* Refills b up to burst and takes a token if there is one (under mu). */
static int take(mrpc_ic_ratelimit *rl, bucket *b, int64_t now) {
  if (now > b->last_ns) {
    b->tokens += (double)(now - b->last_ns) * 1e-9 * rl->o.rate;
    if (b->tokens > rl->o.burst) b->tokens = rl->o.burst;
    b->last_ns = now;
  }
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 1;
  }
  return 0;
}

/* The bucket for key: found, or a free or least recently used slot of its
 * set made fresh (full). */
static bucket *lookup(mrpc_ic_ratelimit *rl, const char *key, int64_t now) {
  uint64_t h = fnv1a(key);
  bucket *set = &rl->table[(h >> 7) % rl->n_sets * WAYS];
  bucket *victim = NULL;
  for (int i = 0; i < WAYS; i++) {
    bucket *b = &set[i];
    if (b->hash == h && strncmp(b->key, key, KEY_MAX - 1) == 0) return b;
    if (!b->hash) {
      if (!victim || victim->hash) victim = b;
    } else if (!victim || (victim->hash && b->last_ns < victim->last_ns)) {
      victim = b;
    }
  }
  if (!victim->hash) rl->used++;
  victim->hash = h;
  victim->last_ns = now;
  victim->tokens = rl->o.burst;
  snprintf(victim->key, KEY_MAX, "%s", key);
  return victim;
}

int mrpc_ic_ratelimit_allow(mrpc_ic_ratelimit *rl, const char *key) {
  if (!rl) return MRPC_ERR_INVAL;
  int64_t now = now_ns(rl);
  pthread_mutex_lock(&rl->mu);
  bucket *b = rl->table ? lookup(rl, key ? key : "", now) : &rl->global;
  int ok = take(rl, b, now);
  pthread_mutex_unlock(&rl->mu);
  atomic_fetch_add(ok ? &rl->allowed : &rl->limited, 1);
  return ok;
}

/* "ipv4:10.0.0.1:5000" -> "ipv4:10.0.0.1"; "ipv6:[::1]:5000" -> "ipv6:[::1]";
 * unix sockets and anything without a port stay whole. */
static void peer_host(const char *peer, char *buf, size_t cap) {
  size_t n = strlen(peer);
  if (strncmp(peer, "unix:", 5) != 0) {
    const char *colon = strrchr(peer, ':');
    const char *bracket = strrchr(peer, ']');
    if (colon && colon > peer + 5 && (!bracket || colon > bracket))
      n = (size_t)(colon - peer);
  }
  if (n >= cap) n = cap - 1;
  memcpy(buf, peer, n);
  buf[n] = '\0';
}

static mrpc_status_code rl_start(mrpc_call *call, void *ctx, void **call_data,
                                 const char **message) {
  (void)call_data;
  mrpc_ic_ratelimit *rl = ctx;
  char key[256];
  key[0] = '\0';
  switch (rl->o.scope) {
  case MRPC_IC_RATELIMIT_GLOBAL:
    break;
  case MRPC_IC_RATELIMIT_PER_METHOD:
    snprintf(key, sizeof key, "%s", mrpc_call_method(call)->path);
    break;
  case MRPC_IC_RATELIMIT_PER_PEER:
    peer_host(mrpc_call_peer(call), key, sizeof key);
    break;
  case MRPC_IC_RATELIMIT_PER_KEY:
    if (!rl->o.key(call, key, sizeof key, rl->o.key_user))
      return MRPC_STATUS_OK; /* not limited */
    key[sizeof key - 1] = '\0';
    break;
  }
  if (mrpc_ic_ratelimit_allow(rl, key) == 1) return MRPC_STATUS_OK;
  *message = "rate limit exceeded";
  return MRPC_STATUS_RESOURCE_EXHAUSTED;
}

static const mrpc_interceptor rl_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.ratelimit",
    .on_start = rl_start,
};

int mrpc_ic_ratelimit_new(const mrpc_ic_ratelimit_opts *opts,
                          mrpc_ic_ratelimit **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  if (!opts) return MRPC_ERR_INVAL;
  mrpc_ic_ratelimit_opts o;
  mrpc_ic_ratelimit_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  if ((unsigned)o.scope > MRPC_IC_RATELIMIT_PER_KEY) return MRPC_ERR_INVAL;
  if (!isfinite(o.rate) || o.rate < 0 || !isfinite(o.burst) || o.burst < 0)
    return MRPC_ERR_INVAL;
  if (o.burst == 0) o.burst = o.rate > 1 ? o.rate : 1;
  if (o.burst < 1) return MRPC_ERR_INVAL;
  if (o.scope == MRPC_IC_RATELIMIT_PER_KEY && !o.key) return MRPC_ERR_INVAL;
  if (!o.max_keys) o.max_keys = DEFAULT_KEYS;
  mrpc_ic_ratelimit *rl = calloc(1, sizeof *rl);
  if (!rl) return MRPC_ERR_NOMEM;
  rl->o = o;
  if (o.scope != MRPC_IC_RATELIMIT_GLOBAL) {
    rl->n_sets = (o.max_keys + WAYS - 1) / WAYS;
    if (rl->n_sets > SIZE_MAX / WAYS / sizeof(bucket) ||
        !(rl->table = calloc(rl->n_sets * WAYS, sizeof(bucket)))) {
      free(rl);
      return MRPC_ERR_NOMEM;
    }
  }
  rl->global.hash = 1;
  rl->global.tokens = o.burst;
  rl->global.last_ns = now_ns(rl);
  pthread_mutex_init(&rl->mu, NULL);
  *out = rl;
  return 0;
}

const mrpc_interceptor *
mrpc_ic_ratelimit_interceptor(const mrpc_ic_ratelimit *rl) {
  return rl ? &rl_table : NULL;
}

void mrpc_ic_ratelimit_stats(const mrpc_ic_ratelimit *rl, uint64_t *allowed,
                             uint64_t *limited, size_t *keys) {
  mrpc_ic_ratelimit *r = (mrpc_ic_ratelimit *)rl;
  if (allowed) *allowed = r ? atomic_load(&r->allowed) : 0;
  if (limited) *limited = r ? atomic_load(&r->limited) : 0;
  if (keys) {
    *keys = 0;
    if (r) {
      pthread_mutex_lock(&r->mu);
      *keys = r->table ? r->used : 1;
      pthread_mutex_unlock(&r->mu);
    }
  }
}

void mrpc_ic_ratelimit_del(mrpc_ic_ratelimit *rl) {
  if (!rl) return;
  pthread_mutex_destroy(&rl->mu);
  free(rl->table);
  free(rl);
}
