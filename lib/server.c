/* The server: method table, listeners, I/O threads, dispatch, shutdown. */
#include "server_int.h"

#include "addr.h"
#include "alloc.h"
#include "call.h"
#include "conn.h"
#include "interceptor.h"
#include "loop.h"
#include "pool.h"
#include "stream.h"
#include "tls.h"

#include <minirpc/server.h>

#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LISTENERS 8
#define ACCEPTS_PER_EVENT 64
#define EMFILE_BACKOFF_MS 100
#define DEFAULT_MAX_CONNECTIONS 32768

typedef struct entry {
  const mrpc_method *m;
  mrpc_method_handler h;
} entry;

typedef struct listener {
  mrpc__io io;
  mrpc__server_loop *sl;
} listener;

struct mrpc__server_loop {
  mrpc_server *srv;
  mrpc__loop *loop;
  pthread_t thread;
  listener lis[MAX_LISTENERS];
  int n_lis;
  mrpc__timer accept_backoff;
  mrpc__conn **conns;
  size_t n_conns, cap_conns;
  int shutting_down;
};

struct mrpc_server {
  mrpc_server_opts opts;
  const mrpc_allocator *alloc;
  entry *methods;
  size_t n_methods, cap_methods;
  mrpc__ic_entry *ics; /* fixed once started: calls point into it */
  size_t n_ics;
  /* fds[listener][loop]: one SO_REUSEPORT socket per I/O thread. */
  int *fds;
  int n_listeners;
  int n_loops;
  mrpc__server_loop *loops;
  mrpc__pool *pool;
  int started, stopped;
  /* Limits (docs/security.md): every connection points at these. */
  mrpc__conn_limits limits;
  mrpc__conn_keepalive ka;
  int max_conns;
  int n_open; /* connections open, all loops (atomic) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int loops_idle; /* loops with no connection left, during shutdown */
  /* Run once when shutdown begins (health: NOT_SERVING). */
  struct shutdown_hook {
    mrpc__server_hook fn;
    void *arg;
  } *hooks;
  size_t n_hooks;
};

void mrpc_server_opts_init(mrpc_server_opts *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

/* A time option: 0 = def, < 0 = off (0). */
static int64_t ms_opt(int64_t v, int64_t def) {
  return v == 0 ? def : v < 0 ? 0 : v;
}

/* A flood budget: 0 = 100, < 0 = no limit (0). */
static uint32_t budget_opt(int v) {
  return v == 0 ? 100 : v < 0 ? 0 : (uint32_t)v;
}

static void limits_init(mrpc_server *s, const mrpc_server_opts *o) {
  mrpc__conn_limits *l = &s->limits;
  l->ping_min_ms = ms_opt(o->keepalive_min_time_ms, 5 * 60 * 1000);
  l->ping_permit_idle = o->keepalive_permit_without_calls != 0;
  l->ping_strikes = o->max_ping_strikes == 0 ? 2
                    : o->max_ping_strikes < 0 ? -1
                                              : o->max_ping_strikes;
  l->idle_ms = ms_opt(o->max_connection_idle_ms, 0);
  l->age_ms = ms_opt(o->max_connection_age_ms, 0);
  l->age_grace_ms = ms_opt(o->max_connection_age_grace_ms, 0);
  l->preface_ms = ms_opt(o->preface_timeout_ms, 10000);
  l->header_ms = ms_opt(o->header_timeout_ms, 10000);
  l->max_resets = budget_opt(o->max_reset_streams);
  l->max_empty = budget_opt(o->max_empty_frames);
  l->max_unknown = budget_opt(o->max_unknown_frames);
  l->max_settings = budget_opt(o->max_settings_frames);
  l->max_priority = budget_opt(o->max_priority_frames);
  l->max_wu_per_data = o->max_window_updates_per_data_frame == 0 ? 10
                       : o->max_window_updates_per_data_frame < 0
                           ? 0
                           : (uint32_t)o->max_window_updates_per_data_frame;
  /* Server pings go whether or not the connection has calls: an idle
   * connection of a vanished client is found too. */
  s->ka.time_ms = ms_opt(o->keepalive_time_ms, 2 * 60 * 60 * 1000);
  if (s->ka.time_ms && s->ka.time_ms < mrpc__server_keepalive_min_time_ms)
    s->ka.time_ms = mrpc__server_keepalive_min_time_ms;
  s->ka.timeout_ms = o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms
                                                 : 20000;
  s->ka.permit_without_calls = 1;
  s->max_conns = o->max_connections == 0 ? DEFAULT_MAX_CONNECTIONS
                 : o->max_connections < 0 ? INT_MAX
                                          : o->max_connections;
}

int mrpc_server_new(const mrpc_server_opts *opts, mrpc_server **out) {
  if (!out) return MRPC_ERR_INVAL;
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return MRPC_ERR_INVAL;
    memcpy(&o, opts, opts->size);
    o.size = sizeof o;
  }
  if (o.io_threads < 0 || o.max_workers < 0) return MRPC_ERR_INVAL;
  if (o.tls && !mrpc__tls_creds_is_server(o.tls)) return MRPC_ERR_INVAL;
  if (o.io_threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o.io_threads = n > 0 ? (int)n : 1;
  }
  if (!o.max_workers) o.max_workers = 256;
  if (!o.max_concurrent_streams) o.max_concurrent_streams = 100;
  if (!o.max_recv_message) o.max_recv_message = MRPC__DEFAULT_MAX_RECV;
  if (!o.max_send_message) o.max_send_message = SIZE_MAX;
  if (!o.send_queue_limit) o.send_queue_limit = 256 * 1024;
  mrpc_server *s = mrpc__calloc(o.alloc, 1, sizeof *s);
  if (!s) return MRPC_ERR_NOMEM;
  s->opts = o;
  s->alloc = o.alloc;
  limits_init(s, &o);
  s->n_loops = o.io_threads;
  s->fds = mrpc__malloc(o.alloc, sizeof(int) * MAX_LISTENERS * s->n_loops);
  if (!s->fds) {
    mrpc__free(o.alloc, s);
    return MRPC_ERR_NOMEM;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  mrpc_tls_creds_ref(s->opts.tls);
  *out = s;
  return 0;
}

/* ---- methods ---- */

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const entry *)a)->m->path, ((const entry *)b)->m->path);
}

static const entry *find_method(const mrpc_server *s, const char *path) {
  mrpc_method key_m = {.path = path};
  entry key = {.m = &key_m};
  return bsearch(&key, s->methods, s->n_methods, sizeof(entry), entry_cmp);
}

static int check_method(const mrpc_server *s, const mrpc_method *m,
                        const mrpc_method_handler *h) {
  if (!m || !h || !m->path || m->path[0] != '/' || !m->request ||
      !m->response || (unsigned)m->kind > MRPC_BIDI_STREAMING ||
      (h->event && h->blocking))
    return MRPC_ERR_INVAL;
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp(s->methods[i].m->path, m->path) == 0) return MRPC_ERR_EXISTS;
  return 0;
}

static int add_methods(mrpc_server *s, const mrpc_method *ms,
                       const mrpc_method_handler *hs, size_t n) {
  if (s->started) return MRPC_ERR_STATE;
  for (size_t i = 0; i < n; i++) {
    int rv = check_method(s, &ms[i], &hs[i]);
    for (size_t j = 0; !rv && j < i; j++)
      if (strcmp(ms[i].path, ms[j].path) == 0) rv = MRPC_ERR_EXISTS;
    if (rv) return rv;
  }
  if (s->n_methods + n > s->cap_methods) {
    size_t cap = (s->n_methods + n) * 2;
    entry *e = mrpc__realloc(s->alloc, s->methods, cap * sizeof *e);
    if (!e) return MRPC_ERR_NOMEM;
    s->methods = e;
    s->cap_methods = cap;
  }
  for (size_t i = 0; i < n; i++)
    s->methods[s->n_methods++] = (entry){&ms[i], hs[i]};
  qsort(s->methods, s->n_methods, sizeof(entry), entry_cmp);
  return 0;
}

int mrpc_server_add_method(mrpc_server *s, const mrpc_method *m,
                           const mrpc_method_handler *h) {
  if (!s) return MRPC_ERR_INVAL;
  return add_methods(s, m, h, 1);
}

int mrpc_server_add_service(mrpc_server *s, const mrpc_service *svc,
                            const mrpc_method_handler *handlers) {
  if (!s || !svc || !handlers || !svc->methods) return MRPC_ERR_INVAL;
  return add_methods(s, svc->methods, handlers, svc->n_methods);
}

int mrpc__server_on_shutdown(mrpc_server *s, mrpc__server_hook fn,
                             void *arg) {
  if (!s || !fn) return MRPC_ERR_INVAL;
  if (s->started || s->stopped) return MRPC_ERR_STATE;
  struct shutdown_hook *a =
      mrpc__realloc(s->alloc, s->hooks, (s->n_hooks + 1) * sizeof *a);
  if (!a) return MRPC_ERR_NOMEM;
  a[s->n_hooks++] = (struct shutdown_hook){fn, arg};
  s->hooks = a;
  return 0;
}

size_t mrpc__server_n_methods(const mrpc_server *s) { return s->n_methods; }

const mrpc_method *mrpc__server_method(const mrpc_server *s, size_t i) {
  return i < s->n_methods ? s->methods[i].m : NULL;
}

int mrpc_server_add_interceptor(mrpc_server *s, const mrpc_interceptor *ic,
                                void *ctx, const mrpc_interceptor_filter *f) {
  if (!s) return MRPC_ERR_INVAL;
  if (s->started) return MRPC_ERR_STATE;
  mrpc__ic_entry e;
  int rv = mrpc__ic_entry_make(ic, ctx, f, &e);
  if (rv) return rv;
  mrpc__ic_entry *a =
      mrpc__realloc(s->alloc, s->ics, (s->n_ics + 1) * sizeof *a);
  if (!a) return MRPC_ERR_NOMEM;
  a[s->n_ics++] = e;
  s->ics = a;
  return 0;
}

/* ---- listening ---- */

static int open_listener(const struct sockaddr_storage *sa, socklen_t len,
                         int reuseport) {
  int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) return -1;
  int one = 1, zero = 0;
  if (sa->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (sa->ss_family != AF_UNIX) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  if (bind(fd, (const struct sockaddr *)sa, len) != 0 || listen(fd, 1024) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int ipv6_available(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

int mrpc_server_listen(mrpc_server *s, const char *addr, int *port) {
  if (!s || !addr) return MRPC_ERR_INVAL;
  if (s->started) return MRPC_ERR_STATE;
  if (s->n_listeners == MAX_LISTENERS) return MRPC_ERR_INVAL;
  mrpc__addr a;
  if (mrpc__addr_parse(addr, &a) != 0) return MRPC_ERR_ADDR;
  struct sockaddr_storage ss[1];
  socklen_t lens[1];
  if (!a.is_unix && !a.host[0] && ipv6_available()) {
    /* ":port": one dual-stack socket takes IPv4 and IPv6 clients. */
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss[0];
    memset(in6, 0, sizeof *in6);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    in6->sin6_port = htons((uint16_t)atoi(a.port));
    lens[0] = sizeof *in6;
  } else if (mrpc__addr_resolve(&a, 1, ss, lens, 1) < 1) {
    return MRPC_ERR_ADDR;
  }
  int *fds = s->fds + s->n_listeners * s->n_loops;
  /* A unix socket can not be shared with SO_REUSEPORT: loop 0 takes it. */
  int n = a.is_unix ? 1 : s->n_loops;
  if (a.is_unix) unlink(a.path);
  for (int i = 0; i < s->n_loops; i++) fds[i] = -1;
  for (int i = 0; i < n; i++) {
    fds[i] = open_listener(&ss[0], lens[0], !a.is_unix);
    if (fds[i] < 0) {
      int e = errno;
      for (int j = 0; j < i; j++) close(fds[j]);
      errno = e;
      return MRPC_ERR_IO;
    }
    if (i == 0 && !a.is_unix) {
      /* Port 0: the others must bind the port the first one got. */
      socklen_t l = lens[0];
      getsockname(fds[0], (struct sockaddr *)&ss[0], &l);
    }
  }
  if (port) {
    *port = 0;
    if (ss[0].ss_family == AF_INET)
      *port = ntohs(((struct sockaddr_in *)&ss[0])->sin_port);
    else if (ss[0].ss_family == AF_INET6)
      *port = ntohs(((struct sockaddr_in6 *)&ss[0])->sin6_port);
  }
  s->n_listeners++;
  return 0;
}

/* ---- connections ---- */

static mrpc_call *new_call(void *owner, mrpc__conn *c, int32_t sid) {
  mrpc__server_loop *sl = owner;
  const mrpc_server_opts *o = &sl->srv->opts;
  mrpc__call_cfg cfg = {o->max_recv_message, o->max_send_message,
                        o->send_queue_limit, 8192, o->alloc};
  (void)sid;
  mrpc_call *call = mrpc__call_new(sl->loop, 1, &cfg);
  if (!call) return NULL;
  call->sloop = sl;
  mrpc__call_set_peer(call, mrpc__conn_peer(c));
  return call;
}

static void check_idle(mrpc__server_loop *sl) {
  if (!sl->shutting_down || sl->n_conns) return;
  pthread_mutex_lock(&sl->srv->mu);
  sl->srv->loops_idle++;
  pthread_cond_broadcast(&sl->srv->cv);
  pthread_mutex_unlock(&sl->srv->mu);
}

static void conn_closed(void *owner, mrpc__conn *c) {
  mrpc__server_loop *sl = owner;
  __atomic_fetch_sub(&sl->srv->n_open, 1, __ATOMIC_RELAXED);
  for (size_t i = 0; i < sl->n_conns; i++)
    if (sl->conns[i] == c) {
      sl->conns[i] = sl->conns[--sl->n_conns];
      break;
    }
  check_idle(sl);
}

static const mrpc__conn_owner server_owner = {new_call, conn_closed, NULL,
                                              NULL};

static void accept_resume(mrpc__timer *t);

static void on_accept(mrpc__io *io, uint32_t events) {
  (void)events;
  listener *li = (listener *)io;
  mrpc__server_loop *sl = li->sl;
  mrpc_server *s = sl->srv;
  for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* Out of descriptors: stop polling for a while instead of
         * spinning on a listener that stays readable. */
        for (int k = 0; k < sl->n_lis; k++)
          mrpc__io_set(sl->loop, &sl->lis[k].io, 0);
        mrpc__timer_start(sl->loop, &sl->accept_backoff,
                          mrpc__now_ms() + EMFILE_BACKOFF_MS, accept_resume);
      }
      return;
    }
    if (__atomic_fetch_add(&s->n_open, 1, __ATOMIC_RELAXED) >= s->max_conns) {
      /* Over max_connections: accepted and closed at once, so the client
       * learns now instead of waiting in the backlog. */
      __atomic_fetch_sub(&s->n_open, 1, __ATOMIC_RELAXED);
      close(fd);
      continue;
    }
    int one = 1;
    if (ss.ss_family != AF_UNIX)
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char peer[128];
    mrpc__addr_format((struct sockaddr *)&ss, len, peer, sizeof peer);
    if (sl->n_conns == sl->cap_conns) {
      size_t cap = sl->cap_conns ? sl->cap_conns * 2 : 16;
      mrpc__conn **cs = mrpc__realloc(s->alloc, sl->conns, cap * sizeof *cs);
      if (!cs) {
        close(fd);
        __atomic_fetch_sub(&s->n_open, 1, __ATOMIC_RELAXED);
        continue;
      }
      sl->conns = cs;
      sl->cap_conns = cap;
    }
    mrpc__conn_cfg cfg = {1, s->opts.max_concurrent_streams, 8192,
                          16 * s->opts.send_queue_limit, s->alloc,
                          s->opts.tls, NULL, &s->limits, s->ka};
    mrpc__conn *c;
    if (mrpc__conn_new(sl->loop, fd, 0, &cfg, peer, &server_owner, sl, &c) ==
        0)
      sl->conns[sl->n_conns++] = c;
    else
      __atomic_fetch_sub(&s->n_open, 1, __ATOMIC_RELAXED);
  }
}

static void accept_resume(mrpc__timer *t) {
  mrpc__server_loop *sl =
      (mrpc__server_loop *)((char *)t -
                            offsetof(mrpc__server_loop, accept_backoff));
  if (sl->shutting_down) return;
  for (int k = 0; k < sl->n_lis; k++)
    mrpc__io_set(sl->loop, &sl->lis[k].io, EPOLLIN);
}

/* ---- dispatch ---- */

/* Answers a request that is not gRPC with a bare HTTP status (a string
 * literal: the transport does not copy it). */
static void http_error(mrpc_call *call, const char *status) {
  mrpc__hdr h[2] = {{":status", 7, status, 3, MRPC__HDR_STATIC},
                    {"content-type", 12, "text/plain", 10, MRPC__HDR_STATIC}};
  call->headers_sent = 1;
  call->finishing = 1;
  if (mrpc__conn_submit_response(call->conn, call, h, 2, 0) != 0)
    mrpc__conn_reset(call->conn, call, 2);
}

void mrpc__server_dispatch(mrpc_call *call) {
  mrpc__server_loop *sl = call->sloop;
  mrpc_server *s = sl->srv;
  if (!call->method_post) {
    http_error(call, "405");
    return;
  }
  if (!call->content_type_ok) {
    http_error(call, "415");
    return;
  }
  char msg[160];
  const entry *e = call->path ? find_method(s, call->path) : NULL;
  if (!e || (!e->h.event && !e->h.blocking)) {
    snprintf(msg, sizeof msg, "unknown method %.120s",
             call->path ? call->path : "(none)");
    mrpc__call_fail(call, MRPC_STATUS_UNIMPLEMENTED, msg);
    return;
  }
  if (call->bad_timeout) {
    mrpc__call_fail(call, MRPC_STATUS_INTERNAL, "invalid grpc-timeout");
    return;
  }
  if (call->bad_encoding) {
    mrpc__call_fail(call, MRPC_STATUS_UNIMPLEMENTED,
                    "unsupported grpc-encoding (identity, deflate and gzip are)");
    return;
  }
  if (call->bad_metadata) {
    mrpc__call_fail(call, MRPC_STATUS_INTERNAL, "invalid request metadata");
    return;
  }
  /* While shutting down, a stream that nghttp2 still lets in came before
   * our final GOAWAY, whose last-stream-id promises it is processed: it
   * is served (within the grace).  Later ones never get here. */
  call->method = e->m;
  if (s->opts.compression)
    mrpc_call_set_compression(call, s->opts.compression);
  mrpc_call_ref(call); /* the handler's, dropped after on_done */
  mrpc__call_arm_deadline(call);
  if (s->n_ics) {
    char *why;
    mrpc_status_code rc = mrpc__ic_start(call, s->ics, s->n_ics, &why);
    if (rc != MRPC_STATUS_OK) {
      mrpc__call_fail(call, rc, why ? why : "rejected by an interceptor");
      free(why);
      return;
    }
  }
  if (e->h.event) {
    e->h.event(call, e->h.user);
  } else if (mrpc__stream_serve(call, e->h.blocking, e->h.user, s->pool) !=
             0) {
    mrpc__call_fail(call, MRPC_STATUS_UNAVAILABLE, "server is shutting down");
  }
}

void mrpc__server_call_done(mrpc_call *call) {
  if (call->method) mrpc_call_unref(call);
}

/* ---- threads and shutdown ---- */

/* Blocking handlers queued during a loop pass get their worker woken once,
 * before the loop polls again (stream.c, submit_handler). */
static void kick_pool(void *pool) { mrpc__pool_kick(pool); }

static void *loop_main(void *arg) {
  mrpc__server_loop *sl = arg;
  mrpc__loop_run(sl->loop);
  return NULL;
}

int mrpc_server_start(mrpc_server *s) {
  if (!s) return MRPC_ERR_INVAL;
  if (s->started || !s->n_listeners) return MRPC_ERR_STATE;
  int rv = mrpc__pool_new(s->opts.max_workers, s->alloc, &s->pool);
  if (rv) return rv;
  s->loops = mrpc__calloc(s->alloc, (size_t)s->n_loops, sizeof *s->loops);
  if (!s->loops) return MRPC_ERR_NOMEM;
  int i;
  for (i = 0; i < s->n_loops; i++) {
    mrpc__server_loop *sl = &s->loops[i];
    sl->srv = s;
    if ((rv = mrpc__loop_new(s->alloc, &sl->loop)) != 0) break;
    mrpc__loop_set_prepare(sl->loop, kick_pool, s->pool);
    for (int l = 0; l < s->n_listeners; l++) {
      int fd = s->fds[l * s->n_loops + i];
      if (fd < 0) continue;
      listener *li = &sl->lis[sl->n_lis++];
      li->sl = sl;
      mrpc__io_start(sl->loop, &li->io, fd, EPOLLIN, on_accept);
    }
    if (pthread_create(&sl->thread, NULL, loop_main, sl) != 0) {
      rv = MRPC_ERR_IO;
      break;
    }
  }
  s->n_loops = i; /* only loops that run are stopped and joined later */
  s->started = 1;
  return rv;
}

typedef struct loop_cmd {
  mrpc__task task;
  mrpc__server_loop *sl;
  int hard;
} loop_cmd;

static void close_listeners(mrpc__server_loop *sl) {
  mrpc__timer_stop(sl->loop, &sl->accept_backoff);
  for (int k = 0; k < sl->n_lis; k++) {
    mrpc__io_stop(sl->loop, &sl->lis[k].io);
    close(sl->lis[k].io.fd);
  }
  sl->n_lis = 0;
}

static void shutdown_task(mrpc__task *t, int cancelled) {
  loop_cmd *cmd = (loop_cmd *)t;
  mrpc__server_loop *sl = cmd->sl;
  if (!cancelled) {
    if (!sl->shutting_down) {
      sl->shutting_down = 1;
      close_listeners(sl);
      for (size_t i = 0; i < sl->n_conns; i++)
        mrpc__conn_shutdown(sl->conns[i]);
      check_idle(sl);
    }
    if (cmd->hard)
      while (sl->n_conns) mrpc__conn_close(sl->conns[sl->n_conns - 1]);
  }
  free(cmd);
}

static void post_all(mrpc_server *s, int hard) {
  for (int i = 0; i < s->n_loops; i++) {
    loop_cmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd) continue; /* the hard stop below still closes everything */
    cmd->sl = &s->loops[i];
    cmd->hard = hard;
    cmd->task.fn = shutdown_task;
    mrpc__loop_post(s->loops[i].loop, &cmd->task);
  }
}

int mrpc_server_shutdown(mrpc_server *s, int grace_ms) {
  if (!s || s->stopped) return 0;
  s->stopped = 1;
  for (size_t i = 0; i < s->n_hooks; i++) s->hooks[i].fn(s->hooks[i].arg);
  if (!s->started) return 0;
  post_all(s, 0);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  int64_t ns = until.tv_nsec + (int64_t)(grace_ms > 0 ? grace_ms : 0) * 1000000;
  until.tv_sec += ns / 1000000000;
  until.tv_nsec = ns % 1000000000;
  pthread_mutex_lock(&s->mu);
  while (s->loops_idle < s->n_loops)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) break;
  pthread_mutex_unlock(&s->mu);
  post_all(s, 1);
  /* Cancelled blocking handlers return; their last operations still need
   * the loops, so wait for them before stopping the loops. */
  mrpc__pool_wait_idle(s->pool);
  for (int i = 0; i < s->n_loops; i++) {
    loop_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd) {
      cmd->sl = &s->loops[i];
      cmd->hard = 1;
      cmd->task.fn = shutdown_task;
      mrpc__loop_post(s->loops[i].loop, &cmd->task);
    }
    mrpc__loop_stop(s->loops[i].loop);
  }
  for (int i = 0; i < s->n_loops; i++) pthread_join(s->loops[i].thread, NULL);
  /* Handlers the loops' last pass queued (calls ended waiting for their
   * request) run now, before shutdown returns: their calls are over. */
  mrpc__pool_wait_idle(s->pool);
  return 0;
}

void mrpc_server_del(mrpc_server *s) {
  if (!s) return;
  mrpc_server_shutdown(s, 0);
  /* The loops are stopped: finish what is left on this thread, before the
   * pool goes (a blocking handler still waiting for its request starts
   * when its call ends). */
  for (int i = 0; s->loops && i < s->n_loops; i++)
    while (s->loops[i].n_conns)
      mrpc__conn_close(s->loops[i].conns[s->loops[i].n_conns - 1]);
  mrpc__pool_del(s->pool);
  if (s->loops) {
    for (int i = 0; i < s->n_loops; i++) {
      mrpc__server_loop *sl = &s->loops[i];
      close_listeners(sl);
      mrpc__loop_del(sl->loop);
      mrpc__free(s->alloc, sl->conns);
    }
    mrpc__free(s->alloc, s->loops);
  } else {
    for (int i = 0; i < s->n_listeners * s->n_loops; i++)
      if (s->fds[i] >= 0) close(s->fds[i]);
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  mrpc__free(s->alloc, s->fds);
  mrpc__free(s->alloc, s->methods);
  mrpc__free(s->alloc, s->ics);
  mrpc__free(s->alloc, s->hooks);
  mrpc_tls_creds_unref(s->opts.tls);
  mrpc__free(s->alloc, s);
}
