/* The client channel: one I/O thread, a target resolved off it, a set of
 * "slots" (one connection each, with its own backoff) that the load
 * balancing policy keeps connected, and calls spread over the READY ones.
 * Calls wait in channel lists while no connection is READY (pending:
 * fail-fast, wfr: wait-for-ready) and between retry attempts (retrying).
 * docs/design.md, "Channels", has the model. */
#include "addr.h"
#include "alloc.h"
#include "call.h"
#include "conn.h"
#include "interceptor.h"
#include "loop.h"
#include "metadata.h"
#include "resolver.h"
#include "status.h"
#include "stream.h"
#include "tls.h"

#include <minirpc/channel.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* connection-backoff.md */
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MULTIPLIER 1.6
#define BACKOFF_JITTER 0.2
#define BACKOFF_MAX_MS 120000
#define MIN_CONNECT_TIMEOUT_MS 20000
#define RESOLVE_INTERVAL_MS 30000
#define MAX_POOL 64
#define MAX_RETRY_ATTEMPTS 5     /* A6 caps maxAttempts */
#define MAX_TRANSPARENT 100      /* never-sent retries, so that they end */
#define RETRY_BUFFER (256 * 1024)

typedef struct waitq {
  mrpc_call *head, *tail;
} waitq;

/* One connection of the channel and its connectivity state machine. */
typedef struct slot {
  mrpc_channel *ch;
  /* round_robin: this address only; pick_first: ch->addrs in order (addr
   * then is the one tried or connected). */
  int fixed;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int next_addr;
  mrpc__conn *conn; /* the connection calls go to, or being made */
  int n_conns;      /* connections owned, draining ones included */
  int state;        /* MRPC_CHANNEL_IDLE .. TRANSIENT_FAILURE */
  int removed;      /* the address left the resolution: no new calls */
  double backoff_ms;
  int64_t attempt_deadline_ms;
  mrpc__timer connect_timer; /* a connection that never sends SETTINGS */
  mrpc__timer backoff_timer; /* ends TRANSIENT_FAILURE */
} slot;

typedef struct policy_entry {
  char *name; /* NULL: every method */
  size_t name_len;
  mrpc_retry_policy p;
} policy_entry;

struct mrpc_channel {
  mrpc_channel_opts opts;
  const mrpc_allocator *alloc;
  mrpc__target target;
  char *authority;
  char *user_agent;
  mrpc__loop *loop;
  pthread_t thread;
  atomic_int closing;
  policy_entry *policies;
  size_t n_policies;
  /* Retry throttling (A6), in thousandths of a token; max 0 = off. */
  atomic_llong tokens;
  long long tokens_max, token_ratio;
  /* Everything below up to state_mu: loop thread only. */
  /* Resolution: the latest addresses, whether a lookup runs, when the
   * last began, and the backoff of a target that never resolved. */
  mrpc__resolver *resolver;
  mrpc__addr_list addrs;
  int have_addrs, resolving, addrs_stale, res_failed;
  int64_t last_resolve_ms;
  double res_backoff_ms;
  mrpc__timer resolve_timer, res_backoff_timer;
  /* Slots; rr_next is where the next pick starts looking. */
  slot **slots;
  size_t n_slots, cap_slots, rr_next;
  int active; /* left IDLE: round_robin keeps every slot connecting */
  int reconciling;
  atomic_size_t n_ready;
  waitq pending, wfr, retrying;
  uint64_t rng;
  /* Connectivity state: written under state_mu (loop thread, and
   * mrpc_channel_del for SHUTDOWN); waiters counted so that del can wait
   * for them to leave. */
  pthread_mutex_t state_mu;
  pthread_cond_t state_cv; /* CLOCK_MONOTONIC */
  int state;
  int n_waiters;
  mrpc__conn **conns; /* every connection, for the end */
  size_t n_conns, cap_conns;
  /* Interceptor chain: copy-on-write so calls starting on other threads
   * keep a stable array; old arrays live until the channel goes. */
  pthread_mutex_t ic_mu;
  mrpc__ic_entry *ics;
  size_t n_ics;
  void **ic_old;
  size_t n_ic_old;
  /* TLS: the name the server certificate must carry (NULL: plaintext),
   * and why the last connection attempt failed (loop thread). */
  char *tls_host;
  char conn_err[384];
  /* Keepalive time for new connections (0: off); doubled on GOAWAY
   * "too_many_pings".  Written on the loop thread, read by tests. */
  int64_t ka_time_ms;
};

/* Tests: the keepalive time the channel's next connection gets. */
int64_t mrpc__channel_keepalive_time_ms(const mrpc_channel *ch) {
  return __atomic_load_n(&ch->ka_time_ms, __ATOMIC_RELAXED);
}

/* The host part of an authority "host", "host:port" or "[v6]:port". */
static char *authority_host(const mrpc_allocator *a, const char *auth) {
  const char *end;
  if (auth[0] == '[' && (end = strchr(auth, ']')))
    return mrpc__strndup(a, auth + 1, (size_t)(end - auth - 1));
  end = strchr(auth, ':');
  if (end && !strchr(end + 1, ':'))
    return mrpc__strndup(a, auth, (size_t)(end - auth));
  return mrpc__strndup(a, auth, strlen(auth));
}

void mrpc_channel_opts_init(mrpc_channel_opts *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

const char *mrpc_channel_state_name(mrpc_channel_state s) {
  switch (s) {
  case MRPC_CHANNEL_IDLE: return "IDLE";
  case MRPC_CHANNEL_CONNECTING: return "CONNECTING";
  case MRPC_CHANNEL_READY: return "READY";
  case MRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
  case MRPC_CHANNEL_SHUTDOWN: return "SHUTDOWN";
  }
  return "?";
}

void mrpc_call_opts_init(mrpc_call_opts *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static void *loop_main(void *arg) {
  mrpc_channel *ch = arg;
  mrpc__loop_run(ch->loop);
  return NULL;
}

static int policy_valid(const mrpc_retry_policy *p) {
  return p->max_attempts >= 2 && p->initial_backoff_ms > 0 &&
         p->max_backoff_ms > 0 && p->backoff_multiplier > 0 &&
         p->backoff_multiplier == p->backoff_multiplier &&
         (p->retryable_codes & ~MRPC_RETRY_ON(0)) != 0 &&
         (p->retryable_codes >> 17) == 0 &&
         (!p->name || p->name[0] == '/');
}

static void free_policies(const mrpc_allocator *a, policy_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++) mrpc__free(a, e[i].name);
  mrpc__free(a, e);
}

/* Copies the retry policies; MRPC_ERR_INVAL / MRPC_ERR_NOMEM. */
static int copy_policies(mrpc_channel *ch, const mrpc_retry_policy *p,
                         size_t n) {
  if (!n) return 0;
  if (!p) return MRPC_ERR_INVAL;
  for (size_t i = 0; i < n; i++)
    if (!policy_valid(&p[i])) return MRPC_ERR_INVAL;
  ch->policies = mrpc__calloc(ch->alloc, n, sizeof *ch->policies);
  if (!ch->policies) return MRPC_ERR_NOMEM;
  ch->n_policies = n;
  for (size_t i = 0; i < n; i++) {
    policy_entry *e = &ch->policies[i];
    e->p = p[i];
    e->p.name = NULL;
    if (p[i].name) {
      e->name_len = strlen(p[i].name);
      e->name = mrpc__strndup(ch->alloc, p[i].name, e->name_len);
      if (!e->name) return MRPC_ERR_NOMEM;
    }
  }
  return 0;
}

int mrpc_channel_new(const char *target, const mrpc_channel_opts *opts,
                     mrpc_channel **out) {
  if (!target || !out) return MRPC_ERR_INVAL;
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return MRPC_ERR_INVAL;
    memcpy(&o, opts, opts->size);
    o.size = sizeof o;
  }
  if (!o.max_recv_message) o.max_recv_message = 4u * 1024 * 1024;
  if (!o.max_send_message) o.max_send_message = SIZE_MAX;
  if (!o.send_queue_limit) o.send_queue_limit = 256 * 1024;
  if (o.tls && mrpc__tls_creds_is_server(o.tls)) return MRPC_ERR_INVAL;
  if (o.keepalive_time_ms < 0) o.keepalive_time_ms = 0;
  if (o.keepalive_time_ms && o.keepalive_time_ms < mrpc__keepalive_min_time_ms)
    o.keepalive_time_ms = mrpc__keepalive_min_time_ms; /* keepalive.md */
  if (o.keepalive_timeout_ms <= 0) o.keepalive_timeout_ms = 20000;
  if (o.backoff_initial_ms < 0 || o.backoff_max_ms < 0 ||
      o.min_connect_timeout_ms < 0 || o.backoff_multiplier < 0 ||
      o.backoff_multiplier != o.backoff_multiplier ||
      o.backoff_jitter != o.backoff_jitter)
    return MRPC_ERR_INVAL;
  if ((unsigned)o.lb_policy > MRPC_LB_ROUND_ROBIN || o.pool_size < 0 ||
      o.pool_size > MAX_POOL)
    return MRPC_ERR_INVAL;
  if (!o.pool_size) o.pool_size = 1;
  if (!o.resolve_interval_ms) o.resolve_interval_ms = RESOLVE_INTERVAL_MS;
  if (!o.retry_buffer_size) o.retry_buffer_size = RETRY_BUFFER;
  if (o.retry_max_tokens < 0 || o.retry_max_tokens > 1000 ||
      (o.retry_max_tokens &&
       !(o.retry_token_ratio > 0 && o.retry_token_ratio <= 1000)))
    return MRPC_ERR_INVAL;
  if (!o.backoff_initial_ms) o.backoff_initial_ms = BACKOFF_INITIAL_MS;
  if (o.backoff_multiplier == 0) o.backoff_multiplier = BACKOFF_MULTIPLIER;
  if (o.backoff_multiplier < 1) o.backoff_multiplier = 1;
  if (o.backoff_jitter == 0) o.backoff_jitter = BACKOFF_JITTER;
  if (o.backoff_jitter < 0) o.backoff_jitter = 0;
  if (o.backoff_jitter > 1) o.backoff_jitter = 1;
  if (!o.backoff_max_ms) o.backoff_max_ms = BACKOFF_MAX_MS;
  if (o.backoff_max_ms < o.backoff_initial_ms)
    o.backoff_max_ms = o.backoff_initial_ms;
  if (!o.min_connect_timeout_ms) o.min_connect_timeout_ms = MIN_CONNECT_TIMEOUT_MS;
  const char *tls_override =
      o.tls ? mrpc__tls_creds_host_override(o.tls) : NULL;
  mrpc_channel *ch = mrpc__calloc(o.alloc, 1, sizeof *ch);
  if (!ch) return MRPC_ERR_NOMEM;
  ch->opts = o;
  ch->alloc = o.alloc;
  ch->ka_time_ms = o.keepalive_time_ms;
  ch->res_backoff_ms = (double)o.backoff_initial_ms;
  ch->rng = (uint64_t)mrpc__now_ms() * 0x9E3779B97F4A7C15ull ^
            (uint64_t)(uintptr_t)ch;
  if (!ch->rng) ch->rng = 1;
  ch->state = MRPC_CHANNEL_IDLE;
  ch->tokens_max = 1000LL * o.retry_max_tokens;
  ch->token_ratio = (long long)(o.retry_token_ratio * 1000 + 0.5);
  if (o.retry_max_tokens && ch->token_ratio < 1) ch->token_ratio = 1;
  atomic_store(&ch->tokens, ch->tokens_max);
  if (mrpc__target_parse(target, &ch->target) != 0) {
    mrpc__free(o.alloc, ch);
    return MRPC_ERR_ADDR;
  }
  if (!ch->target.dns) { /* the list is known: no lookup */
    ch->addrs = ch->target.fixed;
    ch->have_addrs = 1;
  }
  const char *auth = o.authority      ? o.authority
                     : tls_override     ? tls_override
                                        : ch->target.authority;
  char ua[256];
  snprintf(ua, sizeof ua, "%s%sminirpc-c/" MRPC_VERSION_STRING,
           o.user_agent ? o.user_agent : "", o.user_agent ? " " : "");
  ch->authority = mrpc__strndup(o.alloc, auth, strlen(auth));
  ch->user_agent = mrpc__strndup(o.alloc, ua, strlen(ua));
  if (o.tls)
    ch->tls_host = tls_override ? mrpc__strndup(o.alloc, tls_override,
                                                strlen(tls_override))
                   : o.authority ? authority_host(o.alloc, o.authority)
                                 : mrpc__strndup(o.alloc, ch->target.host,
                                                 strlen(ch->target.host));
  int rv = ch->authority && ch->user_agent && (!o.tls || ch->tls_host)
               ? copy_policies(ch, o.retry_policies, o.n_retry_policies)
               : MRPC_ERR_NOMEM;
  if (rv == 0) rv = mrpc__loop_new(o.alloc, &ch->loop);
  if (rv == 0 && pthread_create(&ch->thread, NULL, loop_main, ch) != 0) {
    mrpc__loop_del(ch->loop);
    rv = MRPC_ERR_IO;
  }
  if (rv) {
    free_policies(o.alloc, ch->policies, ch->n_policies);
    mrpc__free(o.alloc, ch->authority);
    mrpc__free(o.alloc, ch->user_agent);
    mrpc__free(o.alloc, ch->tls_host);
    mrpc__free(o.alloc, ch);
    return rv;
  }
  mrpc_tls_creds_ref(ch->opts.tls);
  pthread_mutex_init(&ch->ic_mu, NULL);
  pthread_mutex_init(&ch->state_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ch->state_cv, &ca);
  pthread_condattr_destroy(&ca);
  ch->opts.authority = NULL; /* not kept: copied above */
  ch->opts.user_agent = NULL;
  ch->opts.retry_policies = NULL;
  *out = ch;
  return 0;
}

int mrpc_channel_add_interceptor(mrpc_channel *ch, const mrpc_interceptor *ic,
                                 void *ctx, const mrpc_interceptor_filter *f) {
  if (!ch) return MRPC_ERR_INVAL;
  mrpc__ic_entry e;
  int rv = mrpc__ic_entry_make(ic, ctx, f, &e);
  if (rv) return rv;
  pthread_mutex_lock(&ch->ic_mu);
  mrpc__ic_entry *a = mrpc__malloc(ch->alloc, (ch->n_ics + 1) * sizeof *a);
  void **old = mrpc__realloc(ch->alloc, ch->ic_old,
                             (ch->n_ic_old + 1) * sizeof *old);
  if (old) ch->ic_old = old;
  if (!a || !old) {
    mrpc__free(ch->alloc, a);
    pthread_mutex_unlock(&ch->ic_mu);
    return MRPC_ERR_NOMEM;
  }
  if (ch->n_ics) memcpy(a, ch->ics, ch->n_ics * sizeof *a);
  a[ch->n_ics] = e;
  if (ch->ics) ch->ic_old[ch->n_ic_old++] = ch->ics;
  ch->ics = a;
  ch->n_ics++;
  pthread_mutex_unlock(&ch->ic_mu);
  return 0;
}

/* ---- connectivity state ---- */

static void set_state(mrpc_channel *ch, mrpc_channel_state s) {
  pthread_mutex_lock(&ch->state_mu);
  if (ch->state != MRPC_CHANNEL_SHUTDOWN && ch->state != (int)s) {
    ch->state = (int)s;
    pthread_cond_broadcast(&ch->state_cv);
  }
  pthread_mutex_unlock(&ch->state_mu);
}

static mrpc_channel_state get_state(mrpc_channel *ch) {
  pthread_mutex_lock(&ch->state_mu);
  int s = ch->state;
  pthread_mutex_unlock(&ch->state_mu);
  return (mrpc_channel_state)s;
}

/* ---- wait lists (loop thread) ---- */

/* The list takes over the caller's reference. */
static void enqueue(waitq *q, mrpc_call *call) {
  call->waitq = q;
  call->conn_prev = q->tail;
  call->conn_next = NULL;
  if (q->tail)
    q->tail->conn_next = call;
  else
    q->head = call;
  q->tail = call;
}

/* Takes call off its list; the list's reference is the caller's now. */
static void dequeue(mrpc_call *call) {
  waitq *q = call->waitq;
  if (call->conn_prev)
    call->conn_prev->conn_next = call->conn_next;
  else
    q->head = call->conn_next;
  if (call->conn_next)
    call->conn_next->conn_prev = call->conn_prev;
  else
    q->tail = call->conn_prev;
  call->conn_prev = call->conn_next = NULL;
  call->waitq = NULL;
  mrpc__timer_stop(call->loop, &call->retry_timer);
}

void mrpc__channel_call_done(mrpc_call *call) {
  dequeue(call);
  mrpc_call_unref(call); /* deliver_done holds its own meanwhile */
}

static void fail_list(waitq *q, mrpc_status_code code, const char *msg) {
  while (q->head) {
    mrpc_call *call = q->head;
    dequeue(call);
    mrpc__call_complete(call, code, msg);
    mrpc_call_unref(call);
  }
}

static void fail_all(mrpc_channel *ch, mrpc_status_code code,
                     const char *msg) {
  fail_list(&ch->pending, code, msg);
  fail_list(&ch->wfr, code, msg);
  fail_list(&ch->retrying, code, msg);
}

static int calls_waiting(const mrpc_channel *ch) {
  return ch->pending.head != NULL || ch->wfr.head != NULL;
}

static const char *conn_error_msg(const mrpc_channel *ch) {
  return ch->conn_err[0] ? ch->conn_err : "failed to connect";
}

/* ---- picking (loop thread) ---- */

static int usable(const slot *s) {
  return s->state == MRPC_CHANNEL_READY && !s->removed && s->conn &&
         !mrpc__conn_draining(s->conn);
}

/* The next READY slot after the last pick, or NULL. */
static slot *pick(mrpc_channel *ch) {
  size_t n = ch->n_slots;
  for (size_t k = 0; k < n; k++) {
    size_t i = (ch->rr_next + k) % n;
    if (usable(ch->slots[i])) {
      ch->rr_next = (i + 1) % n;
      return ch->slots[i];
    }
  }
  return NULL;
}

static void start_on(mrpc_channel *ch, slot *s, mrpc_call *call) {
  if (atomic_load(&call->done)) return;
  if (call->attempts == 0) call->attempts = 1;
  int rv = mrpc__call_start_client(call, s->conn, ch->authority,
                                   ch->user_agent, call->out_headers);
  if (rv != 0) {
    mrpc__call_complete(call, MRPC_STATUS_UNAVAILABLE,
                        "could not start the call on the connection");
    return;
  }
  if (call->sq_head || call->send_closed) mrpc__conn_resume(s->conn, call);
}

/* Waiting calls go to READY connections, in turn. */
static void start_waiting(mrpc_channel *ch) {
  waitq *qs[2] = {&ch->pending, &ch->wfr};
  for (int i = 0; i < 2; i++)
    while (qs[i]->head) {
      slot *s = pick(ch);
      if (!s) return;
      mrpc_call *call = qs[i]->head;
      dequeue(call);
      start_on(ch, s, call);
      mrpc_call_unref(call);
    }
}

/* The channel's state from its slots' (load-balancing.md: READY >
 * CONNECTING > IDLE > TRANSIENT_FAILURE), and what it means for waiting
 * calls: READY starts them, TRANSIENT_FAILURE fails the fail-fast ones. */
static void update_state(mrpc_channel *ch) {
  if (atomic_load(&ch->closing)) return;
  int n = 0, by[4] = {0};
  for (size_t i = 0; i < ch->n_slots; i++) {
    slot *s = ch->slots[i];
    if (s->removed) continue;
    n++;
    by[s->state]++;
  }
  mrpc_channel_state st;
  if (by[MRPC_CHANNEL_READY])
    st = MRPC_CHANNEL_READY;
  else if (by[MRPC_CHANNEL_CONNECTING] || (!n && ch->resolving))
    st = MRPC_CHANNEL_CONNECTING;
  else if (by[MRPC_CHANNEL_IDLE] || (!n && !ch->res_failed))
    st = MRPC_CHANNEL_IDLE;
  else
    st = MRPC_CHANNEL_TRANSIENT_FAILURE;
  if (st == MRPC_CHANNEL_IDLE) ch->active = 0;
  /* The state first: a caller woken by its failed call sees it. */
  set_state(ch, st);
  if (st == MRPC_CHANNEL_READY)
    start_waiting(ch);
  else if (st == MRPC_CHANNEL_TRANSIENT_FAILURE)
    fail_list(&ch->pending, MRPC_STATUS_UNAVAILABLE, conn_error_msg(ch));
}

/* ---- resolution (loop thread) ---- */

static void slot_connect(slot *s);
static void reconcile(mrpc_channel *ch);

static void start_resolve(mrpc_channel *ch);

static void resolve_timer_fired(mrpc__timer *t) {
  mrpc_channel *ch =
      (mrpc_channel *)((char *)t - offsetof(mrpc_channel, resolve_timer));
  if (atomic_load(&ch->closing) || ch->resolving) return;
  /* An IDLE channel looks again when it is next used. */
  if (get_state(ch) == MRPC_CHANNEL_IDLE)
    ch->addrs_stale = 1;
  else
    start_resolve(ch);
}

/* The spacing of lookups: resolve_interval_ms, or 30 s when periodic
 * lookups are off. */
static int64_t resolve_spacing(const mrpc_channel *ch) {
  return ch->opts.resolve_interval_ms > 0 ? ch->opts.resolve_interval_ms
                                          : RESOLVE_INTERVAL_MS;
}

/* A lookup now, or when the spacing allows (DNS targets only). */
static void request_resolve(mrpc_channel *ch) {
  if (!ch->target.dns || ch->resolving || ch->res_backoff_timer.heap_idx ||
      atomic_load(&ch->closing))
    return;
  int64_t at = ch->last_resolve_ms + resolve_spacing(ch);
  if (ch->have_addrs && !ch->addrs_stale && mrpc__now_ms() < at) {
    if (!ch->resolve_timer.heap_idx || ch->resolve_timer.when_ms > at)
      mrpc__timer_start(ch->loop, &ch->resolve_timer, at, resolve_timer_fired);
    return;
  }
  start_resolve(ch);
}

static void on_resolved(void *ctx, const mrpc__addr_list *l, const char *err);

static void start_resolve(mrpc_channel *ch) {
  mrpc__timer_stop(ch->loop, &ch->resolve_timer);
  ch->resolving = 1;
  ch->addrs_stale = 0;
  ch->last_resolve_ms = mrpc__now_ms();
  if (!ch->resolver &&
      mrpc__resolver_new(ch->loop, ch->target.host, ch->target.port,
                         on_resolved, ch, &ch->resolver) != 0) {
    on_resolved(ch, NULL, "could not start a resolver thread");
    return;
  }
  mrpc__resolver_request(ch->resolver);
}

static void res_backoff_fired(mrpc__timer *t) {
  mrpc_channel *ch =
      (mrpc_channel *)((char *)t - offsetof(mrpc_channel, res_backoff_timer));
  if (atomic_load(&ch->closing)) return;
  if (ch->active && (calls_waiting(ch) ||
                     ch->opts.lb_policy == MRPC_LB_ROUND_ROBIN)) {
    start_resolve(ch);
  } else {
    ch->res_failed = 0; /* rest until the next call */
  }
  update_state(ch);
}

static void on_resolved(void *ctx, const mrpc__addr_list *l, const char *err) {
  mrpc_channel *ch = ctx;
  ch->resolving = 0;
  if (atomic_load(&ch->closing)) return;
  if (ch->opts.resolve_interval_ms > 0 && !ch->resolve_timer.heap_idx)
    mrpc__timer_start(ch->loop, &ch->resolve_timer,
                      ch->last_resolve_ms + ch->opts.resolve_interval_ms,
                      resolve_timer_fired);
  if (!l) {
    if (ch->have_addrs) return; /* keep what the last lookup gave */
    /* Never resolved: TRANSIENT_FAILURE with a backoff of its own. */
    snprintf(ch->conn_err, sizeof ch->conn_err, "%s", err);
    ch->res_failed = 1;
    mrpc__timer_start(ch->loop, &ch->res_backoff_timer,
                      mrpc__now_ms() + (int64_t)ch->res_backoff_ms,
                      res_backoff_fired);
    ch->res_backoff_ms *= ch->opts.backoff_multiplier;
    if (ch->res_backoff_ms > (double)ch->opts.backoff_max_ms)
      ch->res_backoff_ms = (double)ch->opts.backoff_max_ms;
    update_state(ch);
    return;
  }
  ch->res_failed = 0;
  ch->res_backoff_ms = (double)ch->opts.backoff_initial_ms;
  ch->addrs = *l;
  ch->have_addrs = 1;
  reconcile(ch);
  update_state(ch);
}

/* ---- slots (loop thread) ---- */

static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

static void slot_free(mrpc_channel *ch, slot *s) {
  mrpc__timer_stop(ch->loop, &s->connect_timer);
  mrpc__timer_stop(ch->loop, &s->backoff_timer);
  mrpc__free(ch->alloc, s);
}

/* Frees the removed slots no connection refers to any more. */
static void sweep(mrpc_channel *ch) {
  for (size_t i = 0; i < ch->n_slots;) {
    slot *s = ch->slots[i];
    if (s->removed && s->n_conns == 0) {
      slot_free(ch, s);
      ch->slots[i] = ch->slots[--ch->n_slots];
    } else {
      i++;
    }
  }
  if (ch->rr_next >= ch->n_slots) ch->rr_next = 0;
}

static slot *slot_add(mrpc_channel *ch, const struct sockaddr_storage *a,
                      socklen_t len) {
  if (ch->n_slots == ch->cap_slots) {
    size_t cap = ch->cap_slots ? ch->cap_slots * 2 : 4;
    slot **ss = mrpc__realloc(ch->alloc, ch->slots, cap * sizeof *ss);
    if (!ss) return NULL;
    ch->slots = ss;
    ch->cap_slots = cap;
  }
  slot *s = mrpc__calloc(ch->alloc, 1, sizeof *s);
  if (!s) return NULL;
  s->ch = ch;
  s->state = MRPC_CHANNEL_IDLE;
  s->backoff_ms = (double)ch->opts.backoff_initial_ms;
  if (a) {
    s->fixed = 1;
    memcpy(&s->addr, a, len);
    s->addr_len = len;
  }
  ch->slots[ch->n_slots++] = s;
  return s;
}

/* No new calls; the connection ends once its calls have (GOAWAY from our
 * side), and the slot with it. */
static void slot_remove(slot *s) {
  mrpc_channel *ch = s->ch;
  s->removed = 1;
  mrpc__timer_stop(ch->loop, &s->backoff_timer);
  mrpc__timer_stop(ch->loop, &s->connect_timer);
  mrpc__conn *c = s->conn;
  int ready = s->state == MRPC_CHANNEL_READY;
  s->conn = NULL;
  s->state = MRPC_CHANNEL_IDLE;
  if (!c) return;
  if (ready) {
    atomic_fetch_sub(&ch->n_ready, 1);
    mrpc__conn_shutdown(c);
  } else {
    mrpc__conn_close(c);
  }
}

/* Makes the slots match the addresses: pick_first has pool_size slots
 * that try every address; round_robin pool_size per address. */
static void reconcile(mrpc_channel *ch) {
  int pool = ch->opts.pool_size;
  ch->reconciling = 1; /* closing connections must not sweep under us */
  if (ch->opts.lb_policy == MRPC_LB_PICK_FIRST) {
    int have = 0;
    for (size_t i = 0; i < ch->n_slots; i++) have += !ch->slots[i]->removed;
    for (; have < pool; have++)
      if (!slot_add(ch, NULL, 0)) break;
  } else {
    for (size_t i = 0; i < ch->n_slots; i++) {
      slot *s = ch->slots[i];
      int found = 0;
      for (int k = 0; k < ch->addrs.n && !found; k++)
        found = same_addr(&s->addr, s->addr_len, &ch->addrs.a[k],
                          ch->addrs.len[k]);
      if (!found && !s->removed) slot_remove(s);
    }
    for (int k = 0; k < ch->addrs.n; k++) {
      int have = 0;
      for (size_t i = 0; i < ch->n_slots; i++)
        have += !ch->slots[i]->removed &&
                same_addr(&ch->slots[i]->addr, ch->slots[i]->addr_len,
                          &ch->addrs.a[k], ch->addrs.len[k]);
      for (; have < pool; have++)
        if (!slot_add(ch, &ch->addrs.a[k], ch->addrs.len[k])) break;
    }
  }
  ch->reconciling = 0;
  sweep(ch);
  /* New slots of a channel in use connect at once. */
  if (ch->active || calls_waiting(ch))
    for (size_t i = 0; i < ch->n_slots; i++)
      if (ch->slots[i]->state == MRPC_CHANNEL_IDLE) slot_connect(ch->slots[i]);
}

/* Leaves IDLE: a lookup if none is known, connections otherwise. */
static void exit_idle(mrpc_channel *ch) {
  if (atomic_load(&ch->closing)) return;
  ch->active = 1;
  /* Without periodic lookups, every exit from IDLE looks again. */
  if (ch->opts.resolve_interval_ms < 0 && ch->target.dns && ch->have_addrs)
    ch->addrs_stale = 1;
  if (ch->addrs_stale || !ch->have_addrs) request_resolve(ch);
  if (ch->have_addrs) reconcile(ch); /* which connects the IDLE slots */
  update_state(ch);
}

/* Whether a slot that is IDLE again (backoff over, connection lost)
 * reconnects at once: round_robin keeps connections up, pick_first only
 * when calls wait. */
static int reconnect_now(const slot *s) {
  const mrpc_channel *ch = s->ch;
  if (s->removed || atomic_load(&ch->closing)) return 0;
  return ch->opts.lb_policy == MRPC_LB_ROUND_ROBIN ? ch->active
                                                   : calls_waiting(ch);
}

static void slot_backoff_fired(mrpc__timer *t) {
  slot *s = (slot *)((char *)t - offsetof(slot, backoff_timer));
  mrpc_channel *ch = s->ch;
  if (atomic_load(&ch->closing)) return;
  s->state = MRPC_CHANNEL_IDLE;
  if (reconnect_now(s)) slot_connect(s);
  update_state(ch);
}

/* Every address of the attempt failed: TRANSIENT_FAILURE until the
 * attempt's backoff deadline; the backoff grows (connection-backoff.md). */
static void slot_failed(slot *s) {
  mrpc_channel *ch = s->ch;
  s->next_addr = 0;
  s->state = MRPC_CHANNEL_TRANSIENT_FAILURE;
  if (atomic_load(&ch->closing)) return;
  request_resolve(ch); /* the servers may have moved */
  int64_t now = mrpc__now_ms();
  int64_t when = s->attempt_deadline_ms > now ? s->attempt_deadline_ms : now;
  mrpc__timer_start(ch->loop, &s->backoff_timer, when, slot_backoff_fired);
  s->backoff_ms *= ch->opts.backoff_multiplier;
  if (s->backoff_ms > (double)ch->opts.backoff_max_ms)
    s->backoff_ms = (double)ch->opts.backoff_max_ms;
  update_state(ch);
}

static int slot_n_addrs(const slot *s) {
  return s->fixed ? 1 : s->ch->addrs.n;
}

static void slot_connect_next(slot *s);

/* The slot's connection is gone (closed, or GOAWAY: draining). */
static void slot_conn_lost(slot *s) {
  mrpc_channel *ch = s->ch;
  mrpc__timer_stop(ch->loop, &s->connect_timer);
  s->conn = NULL;
  if (s->state == MRPC_CHANNEL_READY) {
    atomic_fetch_sub(&ch->n_ready, 1);
    s->state = MRPC_CHANNEL_IDLE;
    if (atomic_load(&ch->closing)) return;
    request_resolve(ch);
    /* The backoff was reset by SETTINGS: at once when wanted. */
    if (reconnect_now(s)) slot_connect(s);
    update_state(ch);
    return;
  }
  if (atomic_load(&ch->closing) || s->removed) return;
  if (s->next_addr < slot_n_addrs(s))
    slot_connect_next(s);
  else
    slot_failed(s);
}

static void conn_ready(void *owner, mrpc__conn *c) {
  slot *s = owner;
  mrpc_channel *ch = s->ch;
  if (c != s->conn || s->state != MRPC_CHANNEL_CONNECTING) return;
  s->state = MRPC_CHANNEL_READY;
  s->next_addr = 0;
  s->backoff_ms = (double)ch->opts.backoff_initial_ms; /* SETTINGS came */
  mrpc__timer_stop(ch->loop, &s->connect_timer);
  atomic_fetch_add(&ch->n_ready, 1);
  update_state(ch);
}

static void conn_goaway(void *owner, mrpc__conn *c) {
  slot *s = owner;
  mrpc_channel *ch = s->ch;
  /* A8: the server found our pings too frequent: double the interval. */
  if (mrpc__conn_got_too_many_pings(c) && ch->ka_time_ms &&
      ch->ka_time_ms < INT64_MAX / 4)
    __atomic_store_n(&ch->ka_time_ms, ch->ka_time_ms * 2, __ATOMIC_RELAXED);
  if (c == s->conn) slot_conn_lost(s); /* new calls go elsewhere */
}

static void conn_closed(void *owner, mrpc__conn *c) {
  slot *s = owner;
  mrpc_channel *ch = s->ch;
  for (size_t i = 0; i < ch->n_conns; i++)
    if (ch->conns[i] == c) {
      ch->conns[i] = ch->conns[--ch->n_conns];
      break;
    }
  s->n_conns--;
  if (c == s->conn) {
    if (s->state != MRPC_CHANNEL_READY)
      snprintf(ch->conn_err, sizeof ch->conn_err, "failed to connect to %s%s%s",
               mrpc__conn_peer(c), mrpc__conn_error(c)[0] ? ": " : "",
               mrpc__conn_error(c)); /* TLS: say why */
    slot_conn_lost(s);
  }
  if (s->removed && !atomic_load(&ch->closing) && !ch->reconciling) {
    sweep(ch);
    update_state(ch);
  }
}

static const mrpc__conn_owner channel_owner = {NULL, conn_closed, conn_ready,
                                               conn_goaway};

static void connect_timeout(mrpc__timer *t) {
  slot *s = (slot *)((char *)t - offsetof(slot, connect_timer));
  if (s->conn && s->state != MRPC_CHANNEL_READY) {
    snprintf(s->ch->conn_err, sizeof s->ch->conn_err,
             "failed to connect to %s: timed out", mrpc__conn_peer(s->conn));
    mrpc__conn_close(s->conn);
  }
}

/* Uniform in [-1, 1) (xorshift64*; only for jitter). */
static double rand_unit(mrpc_channel *ch) {
  uint64_t x = ch->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ch->rng = x;
  return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / (double)(1ull << 52) -
         1.0;
}

/* A new attempt over the slot's addresses (IDLE -> CONNECTING). */
static void slot_connect(slot *s) {
  mrpc_channel *ch = s->ch;
  if (atomic_load(&ch->closing) || s->conn || s->removed ||
      s->state != MRPC_CHANNEL_IDLE)
    return;
  s->state = MRPC_CHANNEL_CONNECTING;
  s->next_addr = 0;
  double b = s->backoff_ms * (1.0 + ch->opts.backoff_jitter * rand_unit(ch));
  s->attempt_deadline_ms = mrpc__now_ms() + (int64_t)b;
  slot_connect_next(s);
}

/* Connects to the slot's next address; none left: the attempt failed. */
static void slot_connect_next(slot *s) {
  mrpc_channel *ch = s->ch;
  while (s->next_addr < slot_n_addrs(s)) {
    int i = s->next_addr++;
    if (!s->fixed) {
      memcpy(&s->addr, &ch->addrs.a[i], ch->addrs.len[i]);
      s->addr_len = ch->addrs.len[i];
    }
    const struct sockaddr *sa = (const struct sockaddr *)&s->addr;
    char peer[128];
    mrpc__addr_format(sa, s->addr_len, peer, sizeof peer);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
      snprintf(ch->conn_err, sizeof ch->conn_err,
               "failed to connect to %s: %s", peer, strerror(errno));
      continue;
    }
    if (sa->sa_family != AF_UNIX) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, sa, s->addr_len) != 0 && errno != EINPROGRESS) {
      snprintf(ch->conn_err, sizeof ch->conn_err,
               "failed to connect to %s: %s", peer, strerror(errno));
      close(fd);
      continue;
    }
    if (ch->n_conns == ch->cap_conns) {
      size_t cap = ch->cap_conns ? ch->cap_conns * 2 : 4;
      mrpc__conn **cs = mrpc__realloc(ch->alloc, ch->conns, cap * sizeof *cs);
      if (!cs) {
        close(fd);
        break;
      }
      ch->conns = cs;
      ch->cap_conns = cap;
    }
    mrpc__conn_cfg cfg = {0,
                          0,
                          8192,
                          16 * ch->opts.send_queue_limit,
                          ch->alloc,
                          ch->opts.tls,
                          ch->tls_host,
                          NULL,
                          {ch->ka_time_ms, ch->opts.keepalive_timeout_ms,
                           ch->opts.keepalive_permit_without_calls != 0}};
    mrpc__conn *c;
    if (mrpc__conn_new(ch->loop, fd, 1, &cfg, peer, &channel_owner, s, &c) !=
        0)
      continue;
    ch->conns[ch->n_conns++] = c;
    s->n_conns++;
    s->conn = c;
    /* TryConnect(max(backoff deadline, now + MIN_CONNECT_TIMEOUT)) */
    int64_t until = mrpc__now_ms() + ch->opts.min_connect_timeout_ms;
    if (until < s->attempt_deadline_ms) until = s->attempt_deadline_ms;
    mrpc__timer_start(ch->loop, &s->connect_timer, until, connect_timeout);
    return;
  }
  slot_failed(s);
}

/* ---- calls (loop thread) ---- */

/* Sends call (whose reference the caller hands over) to a READY
 * connection, or makes it wait, or fails it fast. */
static void dispatch(mrpc_channel *ch, mrpc_call *call) {
  if (atomic_load(&ch->closing)) {
    mrpc__call_complete(call, MRPC_STATUS_CANCELLED, "channel closed");
    mrpc_call_unref(call);
    return;
  }
  if (atomic_load(&call->done)) {
    mrpc_call_unref(call);
    return;
  }
  slot *s = pick(ch);
  if (s) {
    start_on(ch, s, call);
    mrpc_call_unref(call);
    return;
  }
  mrpc_channel_state state = get_state(ch);
  if (state == MRPC_CHANNEL_TRANSIENT_FAILURE && !call->wait_for_ready) {
    mrpc__call_complete(call, MRPC_STATUS_UNAVAILABLE, conn_error_msg(ch));
    mrpc_call_unref(call);
    return;
  }
  enqueue(call->wait_for_ready ? &ch->wfr : &ch->pending, call);
  if (state == MRPC_CHANNEL_IDLE) exit_idle(ch);
}

static const mrpc_retry_policy *find_policy(const mrpc_channel *ch,
                                            const char *path) {
  const policy_entry *best = NULL;
  int best_rank = -1;
  for (size_t i = 0; i < ch->n_policies; i++) {
    const policy_entry *e = &ch->policies[i];
    int rank;
    if (!e->name)
      rank = 0;
    else if (e->name[e->name_len - 1] == '/' &&
             strncmp(path, e->name, e->name_len) == 0 &&
             !strchr(path + e->name_len, '/'))
      rank = 1;
    else if (strcmp(path, e->name) == 0)
      rank = 2;
    else
      continue;
    if (rank > best_rank) {
      best = e;
      best_rank = rank;
    }
  }
  return best ? &best->p : NULL;
}

/* Retry throttling: adds delta thousandths of a token (within 0..max);
 * returns the new count. */
static long long tokens_add(mrpc_channel *ch, long long delta) {
  long long cur = atomic_load(&ch->tokens), next;
  do {
    next = cur + delta;
    if (next < 0) next = 0;
    if (next > ch->tokens_max) next = ch->tokens_max;
  } while (!atomic_compare_exchange_weak(&ch->tokens, &cur, next));
  return next;
}

/* Whether the attempt that ended with code counts as a failure (A6: a
 * status the call's policy retries, or a pushback saying not to retry). */
static int attempt_failed(const mrpc_retry_policy *p, const mrpc_call *call,
                          mrpc_status_code code) {
  return p && code > 0 && code <= 16 &&
         ((p->retryable_codes & MRPC_RETRY_ON(code)) ||
          call->pushback_ms == -2);
}

void mrpc__channel_call_end(mrpc_call *call) {
  mrpc_channel *ch = call->channel;
  if (!ch->tokens_max) return;
  mrpc_status_code code = call->status.code;
  if (code == MRPC_STATUS_OK)
    tokens_add(ch, ch->token_ratio);
  else if (!call->throttle_counted &&
           attempt_failed(find_policy(ch, call->method->path), call, code))
    tokens_add(ch, -1000);
}

int64_t mrpc__channel_retry_delay(mrpc_call *call, mrpc_status_code code,
                                  int transparent) {
  mrpc_channel *ch = call->channel;
  if (!ch || atomic_load(&ch->closing) || call->committed ||
      atomic_load(&call->done))
    return -1;
  /* A6: what the server never saw is tried again at once. */
  if (transparent == 1 && call->transparent_tries < MAX_TRANSPARENT) {
    call->transparent_tries++;
    return 0;
  }
  if (transparent == 2 && !call->refused_retried) {
    call->refused_retried = 1;
    return 0;
  }
  const mrpc_retry_policy *p = find_policy(ch, call->method->path);
  int throttled = 0;
  if (ch->tokens_max && attempt_failed(p, call, code)) {
    call->throttle_counted = 1;
    throttled = tokens_add(ch, -1000) <= ch->tokens_max / 2;
  }
  if (!p || code <= 0 || code > 16 ||
      !(p->retryable_codes & MRPC_RETRY_ON(code)) || throttled)
    return -1;
  int max = p->max_attempts < MAX_RETRY_ATTEMPTS ? p->max_attempts
                                                 : MAX_RETRY_ATTEMPTS;
  if (call->attempts >= max || call->pushback_ms == -2) return -1;
  int64_t d;
  if (call->pushback_ms >= 0) {
    d = call->pushback_ms;
  } else {
    double b = (double)p->initial_backoff_ms;
    for (int i = 1; i < call->attempts; i++) b *= p->backoff_multiplier;
    if (b > (double)p->max_backoff_ms) b = (double)p->max_backoff_ms;
    d = (int64_t)(b * (rand_unit(ch) + 1.0) / 2.0);
  }
  /* A retry that could not start before the deadline: this status is
   * more telling than DEADLINE_EXCEEDED. */
  if (call->deadline_ms != INT64_MAX &&
      mrpc__now_ms() + d >= call->deadline_ms)
    return -1;
  call->attempts++;
  return d;
}

static void retry_fired(mrpc__timer *t) {
  mrpc_call *call =
      (mrpc_call *)((char *)t - offsetof(mrpc_call, retry_timer));
  dequeue(call);
  dispatch(call->channel, call);
}

void mrpc__channel_retry(mrpc_call *call, int64_t delay_ms) {
  mrpc_channel *ch = call->channel;
  call->throttle_counted = 0; /* a new attempt */
  mrpc__call_rewind(call);
  enqueue(&ch->retrying, mrpc_call_ref(call));
  /* Never at once: this runs inside the old connection's callbacks. */
  mrpc__timer_start(ch->loop, &call->retry_timer, mrpc__now_ms() + delay_ms,
                    retry_fired);
}

/* get_state(try_to_connect) on an IDLE channel. */
static void connect_fn(mrpc__task *t, int cancelled) {
  mrpc_channel *ch = *(mrpc_channel **)(t + 1);
  mrpc__free(ch->alloc, t);
  if (cancelled) return;
  if (get_state(ch) == MRPC_CHANNEL_IDLE) exit_idle(ch);
}

mrpc_channel_state mrpc_channel_get_state(mrpc_channel *ch,
                                          int try_to_connect) {
  if (!ch) return MRPC_CHANNEL_SHUTDOWN;
  mrpc_channel_state s = get_state(ch);
  if (s == MRPC_CHANNEL_IDLE && try_to_connect && !atomic_load(&ch->closing)) {
    mrpc__task *t = mrpc__malloc(ch->alloc, sizeof *t + sizeof ch);
    if (t) {
      *(mrpc_channel **)(t + 1) = ch;
      t->fn = connect_fn;
      mrpc__loop_post(ch->loop, t);
    }
  }
  return s;
}

size_t mrpc_channel_ready_count(mrpc_channel *ch) {
  return ch ? atomic_load(&ch->n_ready) : 0;
}

int mrpc_channel_wait_for_state_change(mrpc_channel *ch,
                                       mrpc_channel_state last_seen,
                                       int64_t timeout_ms) {
  if (!ch) return MRPC_ERR_INVAL;
  struct timespec until;
  if (timeout_ms > 1000000000000LL) timeout_ms = 1000000000000LL; /* 31 y */
  if (timeout_ms >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (timeout_ms % 1000) * 1000000;
    until.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
  }
  pthread_mutex_lock(&ch->state_mu);
  ch->n_waiters++;
  while (ch->state == (int)last_seen) {
    if (timeout_ms < 0)
      pthread_cond_wait(&ch->state_cv, &ch->state_mu);
    else if (pthread_cond_timedwait(&ch->state_cv, &ch->state_mu, &until) ==
             ETIMEDOUT)
      break;
  }
  int changed = ch->state != (int)last_seen;
  if (--ch->n_waiters == 0 && ch->state == MRPC_CHANNEL_SHUTDOWN)
    pthread_cond_broadcast(&ch->state_cv); /* mrpc_channel_del waits */
  pthread_mutex_unlock(&ch->state_mu);
  return changed;
}

typedef struct start_task {
  mrpc__task task;
  mrpc_channel *ch;
  mrpc_call *call;
} start_task;

static void start_fn(mrpc__task *t, int cancelled) {
  start_task *st = (start_task *)t;
  mrpc_channel *ch = st->ch;
  mrpc_call *call = st->call;
  mrpc__free(ch->alloc, st);
  if (cancelled || atomic_load(&ch->closing)) {
    mrpc__call_complete(call, MRPC_STATUS_CANCELLED, "channel closed");
    mrpc_call_unref(call);
    return;
  }
  if (call->rejected) { /* by a start hook: nothing is sent */
    mrpc__call_complete(call, call->status.code, call->status.message);
    mrpc_call_unref(call);
    return;
  }
  if (!atomic_load(&call->done)) mrpc__call_arm_deadline(call);
  dispatch(ch, call);
}

static int start_call(mrpc_channel *ch, const mrpc_method *m,
                      const mrpc_call_opts *opts, const mrpc_call_ops *ops,
                      void *ctx, int take_messages, mrpc_call **out) {
  if (!ch || !m || !m->path || !m->request || !m->response || !out)
    return MRPC_ERR_INVAL;
  if (atomic_load(&ch->closing)) return MRPC_ERR_SHUTDOWN;
  mrpc_call_opts co;
  mrpc_call_opts_init(&co);
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof co)
      return MRPC_ERR_INVAL;
    memcpy(&co, opts, opts->size);
  }
  if (co.timeout_ms < 0 || co.wait_for_ready < 0 || co.wait_for_ready > 1)
    return MRPC_ERR_INVAL;
  mrpc__call_cfg cfg = {ch->opts.max_recv_message, ch->opts.max_send_message,
                        ch->opts.send_queue_limit, 8192, ch->alloc};
  mrpc_call *call = mrpc__call_new(ch->loop, 0, &cfg);
  if (!call) return MRPC_ERR_NOMEM;
  call->method = m;
  call->channel = ch;
  call->take_messages = take_messages;
  if (ops) call->ops = *ops;
  call->ctx = ctx;
  call->wait_for_ready = co.wait_for_ready;
  call->replay_limit = ch->opts.retry_buffer_size;
  if (co.timeout_ms > 0) call->deadline_ms = mrpc__now_ms() + co.timeout_ms;
  if (co.compression < 0 || co.compression > MRPC_CALL_COMPRESS(MRPC_COMPRESS_GZIP) ||
      (unsigned)ch->opts.compression > MRPC_COMPRESS_GZIP) {
    mrpc_call_unref(call);
    return MRPC_ERR_INVAL;
  }
  call->send_alg = co.compression ? co.compression - 1 : (int)ch->opts.compression;
  if (co.metadata && mrpc_metadata_count(co.metadata)) {
    call->out_headers = mrpc_metadata_new(ch->alloc);
    if (!call->out_headers ||
        mrpc__metadata_append(call->out_headers, co.metadata) != 0) {
      mrpc_call_unref(call);
      return MRPC_ERR_NOMEM;
    }
  }
  pthread_mutex_lock(&ch->ic_mu);
  const mrpc__ic_entry *ics = ch->ics;
  size_t n_ics = ch->n_ics;
  pthread_mutex_unlock(&ch->ic_mu);
  if (n_ics) {
    char *why;
    mrpc_status_code rc = mrpc__ic_start(call, ics, n_ics, &why);
    if (rc != MRPC_STATUS_OK) {
      /* Ends on the I/O thread like any call: on_done runs there. */
      call->rejected = 1;
      mrpc__status_set(&call->status, rc,
                       why ? why : "rejected by an interceptor", NULL, 0);
      free(why);
    }
  }
  call->client_started = 1;
  start_task *st = mrpc__malloc(ch->alloc, sizeof *st);
  if (!st) {
    mrpc__ic_end(call, &call->status);
    mrpc_call_unref(call);
    return MRPC_ERR_NOMEM;
  }
  st->ch = ch;
  st->call = mrpc_call_ref(call); /* the task's */
  st->task.fn = start_fn;
  *out = call;
  mrpc__loop_post(ch->loop, &st->task);
  return 0;
}

int mrpc_channel_start_call(mrpc_channel *ch, const mrpc_method *m,
                            const mrpc_call_opts *opts,
                            const mrpc_call_ops *ops, void *ctx,
                            mrpc_call **out) {
  return start_call(ch, m, opts, ops, ctx, 0, out);
}

int mrpc_channel_open_stream(mrpc_channel *ch, const mrpc_method *m,
                             const mrpc_call_opts *opts, mrpc_stream **out) {
  if (!ch || !out) return MRPC_ERR_INVAL;
  mrpc_stream *s;
  const mrpc_call_ops *ops;
  int rv = mrpc__stream_client_new(ch->alloc, &s, &ops);
  if (rv) return rv;
  mrpc_call *call;
  /* The stream must be attached before the loop can deliver anything:
   * the start task runs no earlier than after this function's post. */
  rv = start_call(ch, m, opts, ops, s, 1, &call);
  if (rv) {
    mrpc__stream_client_abort(s);
    return rv;
  }
  mrpc__stream_attach(s, call);
  *out = s;
  return 0;
}

int mrpc_channel_unary(mrpc_channel *ch, const mrpc_method *m,
                       const ProtobufCMessage *req, const mrpc_call_opts *opts,
                       ProtobufCMessage **resp, mrpc_status *st) {
  if (!ch || !m || !req || !resp || !st) return MRPC_ERR_INVAL;
  *resp = NULL;
  memset(st, 0, sizeof *st);
  if (req->descriptor != m->request) return MRPC_ERR_SERIALIZE;
  mrpc_stream *s;
  int rv = mrpc_channel_open_stream(ch, m, opts, &s);
  if (rv) return rv;
  rv = mrpc_stream_send(s, req);
  if (rv == 0) mrpc_stream_close_send(s);
  ProtobufCMessage *msg = NULL;
  if (rv == 0 || rv == MRPC_ERR_CLOSED) {
    if (mrpc_stream_recv(s, &msg) != 1) msg = NULL;
  } else {
    mrpc_call_cancel(mrpc_stream_call(s));
  }
  mrpc_stream_finish(s, st);
  if (st->code == MRPC_STATUS_OK && !msg) {
    mrpc_status_free(st);
    st->code = MRPC_STATUS_INTERNAL;
    st->message = strdup(rv ? mrpc_strerror(rv) : "no response message");
  }
  if (st->code != MRPC_STATUS_OK && msg) {
    protobuf_c_message_free_unpacked(msg, NULL);
    msg = NULL;
  }
  *resp = msg;
  return 0;
}

/* ---- teardown ---- */

/* Ends what waits, stops the timers and closes every connection (loop
 * thread, or after the loop stopped). */
static void shut(mrpc_channel *ch) {
  /* Connections first: a call whose retry was already decided may join
   * the retrying list as its stream closes, and must be ended too. */
  while (ch->n_conns) mrpc__conn_close(ch->conns[ch->n_conns - 1]);
  fail_all(ch, MRPC_STATUS_CANCELLED, "channel closed");
  mrpc__resolver_del(ch->resolver);
  ch->resolver = NULL;
  mrpc__timer_stop(ch->loop, &ch->resolve_timer);
  mrpc__timer_stop(ch->loop, &ch->res_backoff_timer);
  for (size_t i = 0; i < ch->n_slots; i++) {
    mrpc__timer_stop(ch->loop, &ch->slots[i]->connect_timer);
    mrpc__timer_stop(ch->loop, &ch->slots[i]->backoff_timer);
  }
}

static void close_fn(mrpc__task *t, int cancelled) {
  (void)cancelled;
  mrpc_channel *ch = *(mrpc_channel **)(t + 1);
  shut(ch);
  mrpc__loop_stop(ch->loop);
  mrpc__free(ch->alloc, t);
}

void mrpc_channel_del(mrpc_channel *ch) {
  if (!ch) return;
  atomic_store(&ch->closing, 1);
  pthread_mutex_lock(&ch->state_mu);
  ch->state = MRPC_CHANNEL_SHUTDOWN; /* wakes every waiter */
  pthread_cond_broadcast(&ch->state_cv);
  pthread_mutex_unlock(&ch->state_mu);
  mrpc__task *t = mrpc__malloc(ch->alloc, sizeof *t + sizeof ch);
  if (t) {
    *(mrpc_channel **)(t + 1) = ch;
    t->fn = close_fn;
    mrpc__loop_post(ch->loop, t);
  } else {
    mrpc__loop_stop(ch->loop);
  }
  pthread_join(ch->thread, NULL);
  /* Whatever the loop did not get to, finish here: it is stopped. */
  shut(ch);
  mrpc__loop_del(ch->loop);
  pthread_mutex_lock(&ch->state_mu);
  while (ch->n_waiters) pthread_cond_wait(&ch->state_cv, &ch->state_mu);
  pthread_mutex_unlock(&ch->state_mu);
  pthread_cond_destroy(&ch->state_cv);
  pthread_mutex_destroy(&ch->state_mu);
  for (size_t i = 0; i < ch->n_slots; i++) mrpc__free(ch->alloc, ch->slots[i]);
  mrpc__free(ch->alloc, ch->slots);
  mrpc__free(ch->alloc, ch->conns);
  free_policies(ch->alloc, ch->policies, ch->n_policies);
  for (size_t i = 0; i < ch->n_ic_old; i++) mrpc__free(ch->alloc, ch->ic_old[i]);
  mrpc__free(ch->alloc, ch->ic_old);
  mrpc__free(ch->alloc, ch->ics);
  pthread_mutex_destroy(&ch->ic_mu);
  mrpc__free(ch->alloc, ch->authority);
  mrpc__free(ch->alloc, ch->user_agent);
  mrpc__free(ch->alloc, ch->tls_host);
  mrpc_tls_creds_unref(ch->opts.tls);
  mrpc__free(ch->alloc, ch);
}
