/* The client channel: one I/O thread, lazy connection, calls multiplexed.
 * Calls wait in a pending list until a connection is up, so that a failed
 * address can be skipped for the next and, later, load balancing can pick
 * among several connections. */
#include "addr.h"
#include "alloc.h"
#include "call.h"
#include "conn.h"
#include "interceptor.h"
#include "loop.h"
#include "metadata.h"
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

#define MAX_ADDRS 16
/* connection-backoff.md */
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MULTIPLIER 1.6
#define BACKOFF_JITTER 0.2
#define BACKOFF_MAX_MS 120000
#define MIN_CONNECT_TIMEOUT_MS 20000

struct mrpc_channel {
  mrpc_channel_opts opts;
  const mrpc_allocator *alloc;
  mrpc__addr target;
  char *authority;
  char *user_agent;
  mrpc__loop *loop;
  pthread_t thread;
  atomic_int closing;
  /* loop thread only */
  mrpc__conn *conn;      /* the connection new calls go to */
  int conn_ready;
  mrpc__timer connect_timer; /* a connection that never sends SETTINGS */
  struct sockaddr_storage addrs[MAX_ADDRS];
  socklen_t addr_lens[MAX_ADDRS];
  int n_addrs, next_addr;
  /* Calls waiting for a connection, through conn_next: fail-fast ones
   * (ended when an attempt fails) and wait-for-ready ones. */
  mrpc_call *pending_head, *pending_tail;
  mrpc_call *wfr_head, *wfr_tail;
  /* Backoff (loop thread): the current backoff, when the attempt under
   * way may be followed by the next one, the timer that ends
   * TRANSIENT_FAILURE, and the jitter's random state. */
  double backoff_ms;
  int64_t attempt_deadline_ms;
  mrpc__timer backoff_timer;
  uint64_t rng;
  /* Connectivity state: written under state_mu (loop thread, and
   * mrpc_channel_del for SHUTDOWN); waiters counted so that del can wait
   * for them to leave. */
  pthread_mutex_t state_mu;
  pthread_cond_t state_cv; /* CLOCK_MONOTONIC */
  int state;
  int n_waiters;
  mrpc__conn **conns;
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
  ch->backoff_ms = (double)o.backoff_initial_ms;
  ch->rng = (uint64_t)mrpc__now_ms() * 0x9E3779B97F4A7C15ull ^
            (uint64_t)(uintptr_t)ch;
  if (!ch->rng) ch->rng = 1;
  ch->state = MRPC_CHANNEL_IDLE;
  if (mrpc__addr_parse(target, &ch->target) != 0) {
    mrpc__free(o.alloc, ch);
    return MRPC_ERR_ADDR;
  }
  const char *auth = o.authority      ? o.authority
                     : tls_override     ? tls_override
                     : ch->target.is_unix ? "localhost"
                                          : target;
  char ua[256];
  snprintf(ua, sizeof ua, "%s%sminirpc-c/" MRPC_VERSION_STRING,
           o.user_agent ? o.user_agent : "", o.user_agent ? " " : "");
  ch->authority = mrpc__strndup(o.alloc, auth, strlen(auth));
  ch->user_agent = mrpc__strndup(o.alloc, ua, strlen(ua));
  if (o.tls)
    ch->tls_host = tls_override ? mrpc__strndup(o.alloc, tls_override,
                                                strlen(tls_override))
                   : auth == target ? mrpc__strndup(o.alloc, ch->target.host,
                                                    strlen(ch->target.host))
                                    : authority_host(o.alloc, auth);
  int rv = ch->authority && ch->user_agent && (!o.tls || ch->tls_host)
               ? mrpc__loop_new(o.alloc, &ch->loop)
               : MRPC_ERR_NOMEM;
  if (rv == 0 && pthread_create(&ch->thread, NULL, loop_main, ch) != 0) {
    mrpc__loop_del(ch->loop);
    rv = MRPC_ERR_IO;
  }
  if (rv) {
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

/* ---- connections (loop thread) ---- */

static void connect_next(mrpc_channel *ch);

static void queue_call(mrpc_call **head, mrpc_call **tail, mrpc_call *call) {
  call->conn_next = NULL;
  if (*tail)
    (*tail)->conn_next = call;
  else
    *head = call;
  *tail = call;
}

static void fail_list(mrpc_call **head, mrpc_call **tail,
                      mrpc_status_code code, const char *msg) {
  while (*head) {
    mrpc_call *call = *head;
    *head = call->conn_next;
    call->conn_next = NULL;
    mrpc__call_complete(call, code, msg);
    mrpc_call_unref(call); /* the list's */
  }
  *tail = NULL;
}

static void fail_pending(mrpc_channel *ch, mrpc_status_code code,
                         const char *msg) {
  fail_list(&ch->pending_head, &ch->pending_tail, code, msg);
  fail_list(&ch->wfr_head, &ch->wfr_tail, code, msg);
}

/* Drops the wait-for-ready calls that ended meanwhile (deadline, cancel);
 * returns 1 if any call still waits. */
static int calls_waiting(mrpc_channel *ch) {
  mrpc_call **pp = &ch->wfr_head, *last = NULL;
  while (*pp) {
    mrpc_call *call = *pp;
    if (atomic_load(&call->done)) {
      *pp = call->conn_next;
      call->conn_next = NULL;
      mrpc_call_unref(call);
    } else {
      last = call;
      pp = &call->conn_next;
    }
  }
  ch->wfr_tail = last;
  return ch->wfr_head != NULL || ch->pending_head != NULL;
}

static const char *conn_error_msg(const mrpc_channel *ch) {
  return ch->conn_err[0] ? ch->conn_err : "failed to connect";
}

static void start_on(mrpc_channel *ch, mrpc_call *call) {
  if (atomic_load(&call->done)) return;
  int rv = mrpc__call_start_client(call, ch->conn, ch->authority,
                                   ch->user_agent, call->out_headers);
  if (rv != 0) {
    mrpc__call_complete(call, MRPC_STATUS_UNAVAILABLE,
                        "could not start the call on the connection");
    return;
  }
  if (call->sq_head || call->send_closed) mrpc__conn_resume(ch->conn, call);
}

static void start_list(mrpc_channel *ch, mrpc_call **head, mrpc_call **tail) {
  while (*head) {
    mrpc_call *call = *head;
    *head = call->conn_next;
    call->conn_next = NULL;
    start_on(ch, call);
    mrpc_call_unref(call);
  }
  *tail = NULL;
}

/* A new connection attempt over every resolved address (IDLE or the end
 * of a backoff -> CONNECTING). */
static void start_connecting(mrpc_channel *ch) {
  if (atomic_load(&ch->closing) || ch->conn) return;
  set_state(ch, MRPC_CHANNEL_CONNECTING);
  ch->next_addr = 0;
  connect_next(ch);
}

static void backoff_fired(mrpc__timer *t) {
  mrpc_channel *ch =
      (mrpc_channel *)((char *)t - offsetof(mrpc_channel, backoff_timer));
  if (atomic_load(&ch->closing)) return;
  /* Calls still waiting: try again; none: rest until the next call. */
  if (calls_waiting(ch))
    start_connecting(ch);
  else
    set_state(ch, MRPC_CHANNEL_IDLE);
}

/* Every address of the attempt failed: fail-fast calls end, the channel
 * is TRANSIENT_FAILURE until the attempt's backoff deadline, and the
 * backoff grows (connection-backoff.md). */
static void connect_failed(mrpc_channel *ch, const char *why) {
  ch->next_addr = 0;
  if (why) snprintf(ch->conn_err, sizeof ch->conn_err, "%s", why);
  /* The state first: a caller woken by its failed call sees it. */
  if (!atomic_load(&ch->closing))
    set_state(ch, MRPC_CHANNEL_TRANSIENT_FAILURE);
  fail_list(&ch->pending_head, &ch->pending_tail, MRPC_STATUS_UNAVAILABLE,
            conn_error_msg(ch));
  if (atomic_load(&ch->closing)) return;
  int64_t now = mrpc__now_ms();
  int64_t when = ch->attempt_deadline_ms > now ? ch->attempt_deadline_ms : now;
  mrpc__timer_start(ch->loop, &ch->backoff_timer, when, backoff_fired);
  ch->backoff_ms *= ch->opts.backoff_multiplier;
  if (ch->backoff_ms > (double)ch->opts.backoff_max_ms)
    ch->backoff_ms = (double)ch->opts.backoff_max_ms;
}

/* The connection of the attempt under way failed before it was ready:
 * the next address, else the attempt failed. */
static void attempt_lost(mrpc_channel *ch) {
  if (ch->next_addr < ch->n_addrs && !atomic_load(&ch->closing))
    connect_next(ch);
  else
    connect_failed(ch, NULL);
}

static void conn_ready(void *owner, mrpc__conn *c) {
  mrpc_channel *ch = owner;
  if (c != ch->conn) return;
  ch->conn_ready = 1;
  ch->next_addr = 0;
  ch->backoff_ms = (double)ch->opts.backoff_initial_ms; /* SETTINGS came */
  mrpc__timer_stop(ch->loop, &ch->connect_timer);
  set_state(ch, MRPC_CHANNEL_READY);
  start_list(ch, &ch->pending_head, &ch->pending_tail);
  start_list(ch, &ch->wfr_head, &ch->wfr_tail);
}

/* The ready connection is gone (closed, or GOAWAY): IDLE, or a new
 * attempt at once when calls wait (the backoff was reset by SETTINGS). */
static void ready_conn_lost(mrpc_channel *ch) {
  if (atomic_load(&ch->closing)) return;
  if (calls_waiting(ch))
    start_connecting(ch);
  else
    set_state(ch, MRPC_CHANNEL_IDLE);
}

static void conn_goaway(void *owner, mrpc__conn *c) {
  mrpc_channel *ch = owner;
  /* A8: the server found our pings too frequent: double the interval. */
  if (mrpc__conn_got_too_many_pings(c) && ch->ka_time_ms &&
      ch->ka_time_ms < INT64_MAX / 4)
    __atomic_store_n(&ch->ka_time_ms, ch->ka_time_ms * 2, __ATOMIC_RELAXED);
  if (c == ch->conn) {
    int was_ready = ch->conn_ready;
    ch->conn = NULL; /* new calls go to a new connection */
    ch->conn_ready = 0;
    mrpc__timer_stop(ch->loop, &ch->connect_timer);
    if (was_ready) {
      ch->next_addr = 0;
      ready_conn_lost(ch);
    } else {
      attempt_lost(ch);
    }
  }
}

static void conn_closed(void *owner, mrpc__conn *c) {
  mrpc_channel *ch = owner;
  for (size_t i = 0; i < ch->n_conns; i++)
    if (ch->conns[i] == c) {
      ch->conns[i] = ch->conns[--ch->n_conns];
      break;
    }
  if (c != ch->conn) return;
  mrpc__timer_stop(ch->loop, &ch->connect_timer);
  int was_ready = ch->conn_ready;
  ch->conn = NULL;
  ch->conn_ready = 0;
  if (was_ready) {
    ch->next_addr = 0;
    ready_conn_lost(ch);
    return;
  }
  if (mrpc__conn_error(c)[0]) /* TLS: say why */
    snprintf(ch->conn_err, sizeof ch->conn_err, "failed to connect to %s: %s",
             mrpc__conn_peer(c), mrpc__conn_error(c));
  attempt_lost(ch);
}

static const mrpc__conn_owner channel_owner = {NULL, conn_closed, conn_ready,
                                               conn_goaway};

static void connect_timeout(mrpc__timer *t) {
  mrpc_channel *ch =
      (mrpc_channel *)((char *)t - offsetof(mrpc_channel, connect_timer));
  if (ch->conn && !ch->conn_ready) mrpc__conn_close(ch->conn);
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

/* Starts a connection to the next address (next_addr 0: resolves and
 * begins an attempt); when no address is left the attempt failed. */
static void connect_next(mrpc_channel *ch) {
  if (ch->next_addr == 0) {
    ch->conn_err[0] = '\0';
    double b = ch->backoff_ms * (1.0 + ch->opts.backoff_jitter * rand_unit(ch));
    ch->attempt_deadline_ms = mrpc__now_ms() + (int64_t)b;
    /* getaddrinfo blocks this loop; issue #7 moves it off the loop. */
    ch->n_addrs = mrpc__addr_resolve(&ch->target, 0, ch->addrs, ch->addr_lens,
                                     MAX_ADDRS);
    if (ch->n_addrs < 0) {
      ch->n_addrs = 0;
      connect_failed(ch, "could not resolve target");
      return;
    }
  }
  while (ch->next_addr < ch->n_addrs) {
    int i = ch->next_addr++;
    const struct sockaddr *sa = (const struct sockaddr *)&ch->addrs[i];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) continue;
    if (sa->sa_family != AF_UNIX) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, sa, ch->addr_lens[i]) != 0 && errno != EINPROGRESS) {
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
    char peer[128];
    mrpc__addr_format(sa, ch->addr_lens[i], peer, sizeof peer);
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
    if (mrpc__conn_new(ch->loop, fd, 1, &cfg, peer, &channel_owner, ch, &c) !=
        0)
      continue;
    ch->conns[ch->n_conns++] = c;
    ch->conn = c;
    ch->conn_ready = 0;
    /* TryConnect(max(backoff deadline, now + MIN_CONNECT_TIMEOUT)) */
    int64_t until = mrpc__now_ms() + ch->opts.min_connect_timeout_ms;
    if (until < ch->attempt_deadline_ms) until = ch->attempt_deadline_ms;
    mrpc__timer_start(ch->loop, &ch->connect_timer, until, connect_timeout);
    return;
  }
  connect_failed(ch, NULL);
}

/* get_state(try_to_connect) on an IDLE channel. */
static void connect_fn(mrpc__task *t, int cancelled) {
  mrpc_channel *ch = *(mrpc_channel **)(t + 1);
  mrpc__free(ch->alloc, t);
  if (cancelled) return;
  if (get_state(ch) == MRPC_CHANNEL_IDLE) start_connecting(ch);
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
  int wait_for_ready;
} start_task;

static void start_fn(mrpc__task *t, int cancelled) {
  start_task *st = (start_task *)t;
  mrpc_channel *ch = st->ch;
  mrpc_call *call = st->call;
  int wfr = st->wait_for_ready;
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
  if (atomic_load(&call->done)) {
    mrpc_call_unref(call);
    return;
  }
  mrpc__call_arm_deadline(call);
  if (ch->conn && ch->conn_ready) {
    start_on(ch, call);
    mrpc_call_unref(call);
    return;
  }
  mrpc_channel_state state = get_state(ch);
  if (state == MRPC_CHANNEL_TRANSIENT_FAILURE && !wfr) { /* fail fast */
    mrpc__call_complete(call, MRPC_STATUS_UNAVAILABLE, conn_error_msg(ch));
    mrpc_call_unref(call);
    return;
  }
  /* Wait for the connection; the list keeps the task's reference. */
  if (wfr)
    queue_call(&ch->wfr_head, &ch->wfr_tail, call);
  else
    queue_call(&ch->pending_head, &ch->pending_tail, call);
  if (state == MRPC_CHANNEL_IDLE) start_connecting(ch);
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
  st->wait_for_ready = co.wait_for_ready;
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

static void close_fn(mrpc__task *t, int cancelled) {
  (void)cancelled;
  mrpc_channel *ch = *(mrpc_channel **)(t + 1);
  fail_pending(ch, MRPC_STATUS_CANCELLED, "channel closed");
  mrpc__timer_stop(ch->loop, &ch->connect_timer);
  mrpc__timer_stop(ch->loop, &ch->backoff_timer);
  while (ch->n_conns) mrpc__conn_close(ch->conns[ch->n_conns - 1]);
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
  fail_pending(ch, MRPC_STATUS_CANCELLED, "channel closed");
  mrpc__timer_stop(ch->loop, &ch->connect_timer);
  mrpc__timer_stop(ch->loop, &ch->backoff_timer);
  while (ch->n_conns) mrpc__conn_close(ch->conns[ch->n_conns - 1]);
  mrpc__loop_del(ch->loop);
  pthread_mutex_lock(&ch->state_mu);
  while (ch->n_waiters) pthread_cond_wait(&ch->state_cv, &ch->state_mu);
  pthread_mutex_unlock(&ch->state_mu);
  pthread_cond_destroy(&ch->state_cv);
  pthread_mutex_destroy(&ch->state_mu);
  mrpc__free(ch->alloc, ch->conns);
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
