/* grpc.health.v1.Health: a status table and its event-driven handlers.
 *
 * One mutex guards the table (services by name, each with its watchers)
 * and every watcher's bookkeeping.  Nothing calls into the call layer with
 * the mutex held: a send may deliver on_done synchronously (on the I/O
 * thread), and on_done takes the mutex.
 *
 * A watcher (one Watch call) has the status it should show (want) and the
 * last one queued on its call (sent).  pump() queues want when the call's
 * send queue is empty, else arms on_writable and waits: at most one status
 * waits in the server per watcher, later changes only update want (the
 * latest wins).  One thread pumps a watcher at a time (sending), so the
 * statuses go out in the order they were set.
 * docs/services.md. */
#include "call.h"
#include "server_int.h"

#include <minirpc/health.h>

#include "grpc/health/v1/health.mrpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 100 /* gRFC A90 */
#define PUMP_BATCH 64

typedef Grpc__Health__V1__HealthCheckRequest CheckRequest;
typedef Grpc__Health__V1__HealthCheckResponse CheckResponse;
typedef Grpc__Health__V1__HealthListRequest ListRequest;
typedef Grpc__Health__V1__HealthListResponse ListResponse;
typedef Grpc__Health__V1__HealthListResponse__StatusesEntry ListEntry;

typedef struct svc svc;
typedef struct watcher watcher;

/* One registration: the handler table the generated code keeps by pointer,
 * and the server whose shutdown ends its watchers. */
typedef struct hreg {
  struct hreg *next;
  mrpc_health *h;
  Grpc__Health__V1__Health_MrpcHandlers handlers;
  int stopping; /* the server's shutdown began (under h->mu) */
} hreg;

struct svc {
  char *name;
  int known; /* set by mrpc_health_set; else kept only for its watchers */
  mrpc_health_status status;
  watcher *watchers;
};

struct watcher {
  atomic_int refs; /* on_done's, and one per pump in progress */
  mrpc_health *h;
  hreg *reg;
  mrpc_call *call; /* a reference, dropped with the watcher */
  svc *s;          /* NULL once the call ended */
  watcher *prev, *next;
  /* under h->mu */
  int want, sent;  /* statuses; sent = -1 before the first */
  int sending;     /* a thread is in pump() */
  int waiting;     /* for on_writable */
  int closing;     /* finish after the last status (server shutdown) */
  int finished, dead;
  unsigned gen;    /* on_writable calls seen */
};

struct mrpc_health {
  pthread_mutex_t mu;
  svc **svcs;
  size_t n_svcs, cap_svcs;
  int shut;
  hreg *regs;
};

/* ---- the table (under h->mu) ---- */

static svc *find_svc(mrpc_health *h, const char *name) {
  for (size_t i = 0; i < h->n_svcs; i++)
    if (strcmp(h->svcs[i]->name, name) == 0) return h->svcs[i];
  return NULL;
}

static svc *get_svc(mrpc_health *h, const char *name) {
  svc *s = find_svc(h, name);
  if (s) return s;
  if (h->n_svcs == h->cap_svcs) {
    size_t cap = h->cap_svcs ? 2 * h->cap_svcs : 8;
    svc **a = realloc(h->svcs, cap * sizeof *a);
    if (!a) return NULL;
    h->svcs = a;
    h->cap_svcs = cap;
  }
  s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(name))) {
    free(s);
    return NULL;
  }
  s->status = MRPC_HEALTH_SERVICE_UNKNOWN;
  h->svcs[h->n_svcs++] = s;
  return s;
}

/* Drops s when nothing needs it any more. */
static void gc_svc(mrpc_health *h, svc *s) {
  if (s->known || s->watchers) return;
  for (size_t i = 0; i < h->n_svcs; i++)
    if (h->svcs[i] == s) {
      h->svcs[i] = h->svcs[--h->n_svcs];
      break;
    }
  free(s->name);
  free(s);
}

static int shown(const svc *s) {
  return s->known ? (int)s->status : MRPC_HEALTH_SERVICE_UNKNOWN;
}

/* ---- watchers ---- */

static watcher *watcher_ref(watcher *w) {
  atomic_fetch_add(&w->refs, 1);
  return w;
}

static void watcher_unref(watcher *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1) return;
  mrpc_call_unref(w->call);
  free(w);
}

static void pump(watcher *w) {
  mrpc_health *h = w->h;
  watcher_ref(w); /* a synchronous on_done must not free w under us */
  pthread_mutex_lock(&h->mu);
  if (w->sending) goto out; /* that thread sends what we would */
  w->sending = 1;
  while (!w->dead && !w->finished) {
    if (w->want == w->sent) {
      if (!w->closing) break;
      w->finished = 1;
      pthread_mutex_unlock(&h->mu);
      mrpc_call_finish(w->call, MRPC_STATUS_UNAVAILABLE,
                       "server is shutting down", NULL, 0);
      pthread_mutex_lock(&h->mu);
      break;
    }
    if (!w->closing && !mrpc__call_send_idle(w->call)) {
      w->waiting = 1;
      break;
    }
    unsigned gen = w->gen;
    int st = w->want;
    pthread_mutex_unlock(&h->mu);
    CheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
    int rc = grpc__health__v1__health__watch__send_response(w->call, &r);
    pthread_mutex_lock(&h->mu);
    if (rc == 0) {
      w->sent = st;
    } else if (rc == MRPC_ERR_AGAIN) {
      if (gen == w->gen) { /* else on_writable came meanwhile: again */
        w->waiting = 1;
        break;
      }
    } else {
      w->dead = 1; /* the call is over: on_done comes or came */
    }
  }
  w->sending = 0;
out:
  pthread_mutex_unlock(&h->mu);
  watcher_unref(w);
}

static int needs_pump(const watcher *w) {
  if (w->sending || w->dead || w->finished) return 0;
  return w->closing || (w->want != w->sent && !w->waiting);
}

/* Pumps every watcher that has something to send (of service only, or of
 * all), PUMP_BATCH at a time with the mutex released.  Called and returns
 * with h->mu held. */
static void pump_pending(mrpc_health *h, const char *only) {
  for (;;) {
    watcher *batch[PUMP_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < h->n_svcs && n < PUMP_BATCH; i++) {
      svc *s = h->svcs[i];
      if (only && strcmp(s->name, only) != 0) continue;
      for (watcher *w = s->watchers; w && n < PUMP_BATCH; w = w->next)
        if (needs_pump(w)) batch[n++] = watcher_ref(w);
    }
    if (!n) return;
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
      pump(batch[i]);
      watcher_unref(batch[i]);
    }
    pthread_mutex_lock(&h->mu);
  }
}

static void show(svc *s) {
  for (watcher *w = s->watchers; w; w = w->next) w->want = shown(s);
}

static void watch_writable(mrpc_call *call, void *ctx) {
  (void)call;
  watcher *w = ctx;
  pthread_mutex_lock(&w->h->mu);
  w->gen++;
  w->waiting = 0;
  pthread_mutex_unlock(&w->h->mu);
  pump(w);
}

static void watch_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  watcher *w = ctx;
  mrpc_health *h = w->h;
  pthread_mutex_lock(&h->mu);
  w->dead = 1;
  svc *s = w->s;
  if (s) {
    if (w->prev) w->prev->next = w->next;
    else s->watchers = w->next;
    if (w->next) w->next->prev = w->prev;
    w->s = NULL;
    gc_svc(h, s);
  }
  pthread_mutex_unlock(&h->mu);
  watcher_unref(w);
}

/* ---- handlers (I/O thread) ---- */

static void on_check(mrpc_call *call, const CheckRequest *req, void *user) {
  mrpc_health *h = ((hreg *)user)->h;
  pthread_mutex_lock(&h->mu);
  svc *s = find_svc(h, req->service);
  int st = s && s->known ? (int)s->status : -1;
  pthread_mutex_unlock(&h->mu);
  if (st < 0) {
    mrpc_call_finish(call, MRPC_STATUS_NOT_FOUND, "unknown service", NULL, 0);
    return;
  }
  CheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
  int rc = grpc__health__v1__health__check__send_response(call, &r);
  if (rc == 0)
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  else if (rc != MRPC_ERR_CLOSED)
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL, 0);
}

static void on_list(mrpc_call *call, const ListRequest *req, void *user) {
  (void)req;
  mrpc_health *h = ((hreg *)user)->h;
  size_t n = 0;
  ListEntry *es = NULL;
  ListEntry **ps = NULL;
  CheckResponse *vs = NULL;
  int over = 0, oom = 0;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->n_svcs; i++) n += h->svcs[i]->known != 0;
  if (n > LIST_MAX) {
    over = 1;
  } else if (n) {
    es = calloc(n, sizeof *es);
    ps = calloc(n, sizeof *ps);
    vs = calloc(n, sizeof *vs);
    oom = !es || !ps || !vs;
    size_t k = 0;
    for (size_t i = 0; !oom && i < h->n_svcs; i++) {
      const svc *s = h->svcs[i];
      if (!s->known) continue;
      grpc__health__v1__health_list_response__statuses_entry__init(&es[k]);
      grpc__health__v1__health_check_response__init(&vs[k]);
      vs[k].status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)
                         s->status;
      es[k].value = &vs[k];
      if (!(es[k].key = strdup(s->name))) oom = 1;
      ps[k] = &es[k];
      k++;
    }
    n = k;
  }
  pthread_mutex_unlock(&h->mu);
  if (over) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED,
                     "more than 100 services", NULL, 0);
  } else if (oom) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
  } else {
    ListResponse r = GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__INIT;
    r.n_statuses = n;
    r.statuses = ps;
    int rc = grpc__health__v1__health__list__send_response(call, &r);
    if (rc == 0)
      mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
    else if (rc != MRPC_ERR_CLOSED)
      mrpc_call_finish(call, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL,
                       0);
  }
  for (size_t i = 0; es && i < n; i++) free(es[i].key);
  free(es);
  free(ps);
  free(vs);
}

static void on_watch(mrpc_call *call, const CheckRequest *req, void *user) {
  hreg *reg = user;
  mrpc_health *h = reg->h;
  watcher *w = calloc(1, sizeof *w);
  if (!w) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  atomic_init(&w->refs, 1); /* on_done's */
  w->h = h;
  w->reg = reg;
  w->sent = -1;
  pthread_mutex_lock(&h->mu);
  svc *s = get_svc(h, req->service);
  if (!s) {
    pthread_mutex_unlock(&h->mu);
    free(w);
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  w->call = mrpc_call_ref(call);
  mrpc_call_ops ops = {.on_writable = watch_writable, .on_done = watch_done};
  mrpc_call_set_ops(call, &ops, w);
  w->s = s;
  w->next = s->watchers;
  if (w->next) w->next->prev = w;
  s->watchers = w;
  w->want = shown(s);
  w->closing = reg->stopping;
  pthread_mutex_unlock(&h->mu);
  pump(w);
}

/* ---- API ---- */

int mrpc_health_new(mrpc_health **out) {
  if (!out) return MRPC_ERR_INVAL;
  mrpc_health *h = calloc(1, sizeof *h);
  if (!h) return MRPC_ERR_NOMEM;
  pthread_mutex_init(&h->mu, NULL);
  svc *s = get_svc(h, "");
  if (!s) {
    mrpc_health_del(h);
    return MRPC_ERR_NOMEM;
  }
  s->known = 1;
  s->status = MRPC_HEALTH_SERVING;
  *out = h;
  return 0;
}

void mrpc_health_del(mrpc_health *h) {
  if (!h) return;
  for (size_t i = 0; i < h->n_svcs; i++) {
    free(h->svcs[i]->name);
    free(h->svcs[i]);
  }
  free(h->svcs);
  for (hreg *r = h->regs, *next; r; r = next) {
    next = r->next;
    free(r);
  }
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static void shutdown_locked(mrpc_health *h) {
  h->shut = 1;
  for (size_t i = 0; i < h->n_svcs; i++) {
    svc *s = h->svcs[i];
    if (s->known) s->status = MRPC_HEALTH_NOT_SERVING;
    show(s);
  }
}

void mrpc_health_shutdown(mrpc_health *h) {
  if (!h) return;
  pthread_mutex_lock(&h->mu);
  if (!h->shut) {
    shutdown_locked(h);
    pump_pending(h, NULL);
  }
  pthread_mutex_unlock(&h->mu);
}

/* The server's shutdown began: NOT_SERVING, and its watchers end. */
static void on_server_shutdown(void *arg) {
  hreg *reg = arg;
  mrpc_health *h = reg->h;
  pthread_mutex_lock(&h->mu);
  reg->stopping = 1;
  if (!h->shut) shutdown_locked(h);
  for (size_t i = 0; i < h->n_svcs; i++)
    for (watcher *w = h->svcs[i]->watchers; w; w = w->next)
      if (w->reg == reg) w->closing = 1;
  pump_pending(h, NULL);
  pthread_mutex_unlock(&h->mu);
}

int mrpc_health_register(mrpc_server *srv, mrpc_health *h) {
  if (!srv || !h) return MRPC_ERR_INVAL;
  hreg *reg = calloc(1, sizeof *reg);
  if (!reg) return MRPC_ERR_NOMEM;
  reg->h = h;
  reg->handlers.check = on_check;
  reg->handlers.list = on_list;
  reg->handlers.watch = on_watch;
  reg->handlers.user = reg;
  int rc = grpc__health__v1__health__mrpc_register(srv, &reg->handlers);
  if (rc) {
    free(reg);
    return rc;
  }
  /* Registered: the server keeps &reg->handlers, so reg lives with h. */
  pthread_mutex_lock(&h->mu);
  reg->next = h->regs;
  h->regs = reg;
  pthread_mutex_unlock(&h->mu);
  return mrpc__server_on_shutdown(srv, on_server_shutdown, reg);
}

static int update(mrpc_health *h, const char *service, int known,
                  mrpc_health_status status) {
  pthread_mutex_lock(&h->mu);
  if (h->shut) {
    pthread_mutex_unlock(&h->mu);
    return MRPC_ERR_SHUTDOWN;
  }
  svc *s = known ? get_svc(h, service) : find_svc(h, service);
  if (!s) {
    pthread_mutex_unlock(&h->mu);
    return known ? MRPC_ERR_NOMEM : 0;
  }
  int before = shown(s);
  s->known = known;
  s->status = known ? status : MRPC_HEALTH_SERVICE_UNKNOWN;
  if (shown(s) != before) {
    show(s);
    pump_pending(h, service); /* unlocks: look s up again */
    s = find_svc(h, service);
  }
  if (s) gc_svc(h, s);
  pthread_mutex_unlock(&h->mu);
  return 0;
}

int mrpc_health_set(mrpc_health *h, const char *service,
                    mrpc_health_status status) {
  if (!h || !service ||
      (status != MRPC_HEALTH_UNKNOWN && status != MRPC_HEALTH_SERVING &&
       status != MRPC_HEALTH_NOT_SERVING))
    return MRPC_ERR_INVAL;
  return update(h, service, 1, status);
}

int mrpc_health_clear(mrpc_health *h, const char *service) {
  if (!h || !service) return MRPC_ERR_INVAL;
  return update(h, service, 0, MRPC_HEALTH_SERVICE_UNKNOWN);
}

mrpc_health_status mrpc_health_get(mrpc_health *h, const char *service) {
  if (!h || !service) return MRPC_HEALTH_SERVICE_UNKNOWN;
  pthread_mutex_lock(&h->mu);
  svc *s = find_svc(h, service);
  mrpc_health_status st = s ? (mrpc_health_status)shown(s)
                            : MRPC_HEALTH_SERVICE_UNKNOWN;
  pthread_mutex_unlock(&h->mu);
  return st;
}
