/* The metrics interceptor: one row of atomic counters per (method, side),
 * found at on_start through a fixed hash table under a mutex and then kept
 * as the call's data, so that the other hooks only touch atomics. */
#include "ic_common.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_METHODS 1024
#define OTHER "(other)"

static const double default_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,  0.1,    0.25,  0.5,
                                        1,      2.5,   5,      10};

typedef struct row {
  char *path;
  int is_server;
  mrpc_method_kind kind;
  atomic_uint_fast64_t started, msg_received, msg_sent;
  atomic_uint_fast64_t codes[MRPC_STATUS_CODE_COUNT];
  /* Not cumulative: [i] = calls in (bounds[i-1], bounds[i]]; [n_bounds] =
   * above the last bound. */
  atomic_uint_fast64_t buckets[MRPC_IC_METRICS_MAX_BOUNDS + 1];
  atomic_uint_fast64_t sum_us;
} row;

struct mrpc_ic_metrics {
  double bounds[MRPC_IC_METRICS_MAX_BOUNDS];
  size_t n_bounds;
  size_t max_methods;
  pthread_mutex_t mu;
  row **rows; /* in the order first seen */
  size_t n_rows, cap_rows, n_named;
  row **hash; /* open addressing, hash_cap a power of two */
  size_t hash_cap;
  row *other[2]; /* past max_methods, per side */
};

void mrpc_ic_metrics_opts_init(mrpc_ic_metrics_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static uint64_t hash_of(const char *s, int is_server) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)is_server;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static row *row_new(const char *path, int is_server, mrpc_method_kind kind) {
  row *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (!(r->path = strdup(path))) {
    free(r);
    return NULL;
  }
  r->is_server = is_server;
  r->kind = kind;
  return r;
}

/* Appends r to the list (under mu).  Returns 0 or -1 (OOM: r freed). */
static int rows_push(mrpc_ic_metrics *m, row *r) {
  if (m->n_rows == m->cap_rows) {
    size_t cap = m->cap_rows ? 2 * m->cap_rows : 16;
    row **a = realloc(m->rows, cap * sizeof *a);
    if (!a) {
      free(r->path);
      free(r);
      return -1;
    }
    m->rows = a;
    m->cap_rows = cap;
  }
  m->rows[m->n_rows++] = r;
  return 0;
}

/* The row for (path, side), made on first sight; NULL on OOM. */
static row *row_for(mrpc_ic_metrics *m, const mrpc_method *meth,
                    int is_server) {
  size_t mask = m->hash_cap - 1;
  size_t i = (size_t)hash_of(meth->path, is_server) & mask;
  pthread_mutex_lock(&m->mu);
  row *r = NULL;
  for (;; i = (i + 1) & mask) {
    row *h = m->hash[i];
    if (!h) break;
    if (h->is_server == is_server && strcmp(h->path, meth->path) == 0) {
      r = h;
      goto out;
    }
  }
  if (m->n_named < m->max_methods) {
    /* The table has room: hash_cap > 2 * max_methods. */
    if ((r = row_new(meth->path, is_server, meth->kind)) &&
        rows_push(m, r) == 0) {
      m->hash[i] = r;
      m->n_named++;
    } else {
      r = NULL;
    }
  } else {
    row **o = &m->other[is_server ? 1 : 0];
    if (!*o && (r = row_new(OTHER, is_server, meth->kind)) &&
        rows_push(m, r) == 0)
      *o = r;
    r = *o;
  }
out:
  pthread_mutex_unlock(&m->mu);
  return r;
}

static mrpc_status_code met_start(mrpc_call *call, void *ctx,
                                  void **call_data, const char **message) {
  (void)message;
  mrpc_ic_metrics *m = ctx;
  row *r = row_for(m, mrpc_call_method(call), mrpc_call_is_server(call));
  if (r) atomic_fetch_add(&r->started, 1); /* OOM: the call goes uncounted */
  *call_data = r;
  return MRPC_STATUS_OK;
}

static mrpc_status_code met_recv(mrpc_call *call, void *ctx, void *call_data,
                                 ProtobufCMessage **msg, const char **message) {
  (void)call, (void)ctx, (void)msg, (void)message;
  row *r = call_data;
  if (r) atomic_fetch_add(&r->msg_received, 1);
  return MRPC_STATUS_OK;
}

static mrpc_status_code met_send(mrpc_call *call, void *ctx, void *call_data,
                                 const ProtobufCMessage **msg,
                                 const char **message) {
  (void)call, (void)ctx, (void)msg, (void)message;
  row *r = call_data;
  if (r) atomic_fetch_add(&r->msg_sent, 1);
  return MRPC_STATUS_OK;
}

static void met_end(mrpc_call *call, void *ctx, void *call_data,
                    mrpc_status *st, int64_t duration_us) {
  (void)call;
  mrpc_ic_metrics *m = ctx;
  row *r = call_data;
  if (!r) return;
  if (duration_us < 0) duration_us = 0;
  double s = (double)duration_us / 1e6;
  size_t b = 0;
  while (b < m->n_bounds && s > m->bounds[b]) b++;
  atomic_fetch_add(&r->buckets[b], 1);
  atomic_fetch_add(&r->sum_us, (uint64_t)duration_us);
  unsigned code = (unsigned)st->code < MRPC_STATUS_CODE_COUNT
                      ? (unsigned)st->code
                      : MRPC_STATUS_UNKNOWN;
  atomic_fetch_add(&r->codes[code], 1); /* last: "handled" */
}

static const mrpc_interceptor metrics_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.metrics",
    .on_start = met_start,
    .on_recv = met_recv,
    .on_send = met_send,
    .on_end = met_end,
};

int mrpc_ic_metrics_new(const mrpc_ic_metrics_opts *opts,
                        mrpc_ic_metrics **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  mrpc_ic_metrics_opts o;
  mrpc_ic_metrics_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  const double *bounds = default_bounds;
  size_t n = sizeof default_bounds / sizeof default_bounds[0];
  if (o.bounds) {
    if (!o.n_bounds || o.n_bounds > MRPC_IC_METRICS_MAX_BOUNDS)
      return MRPC_ERR_INVAL;
    for (size_t i = 0; i < o.n_bounds; i++)
      if (!isfinite(o.bounds[i]) || (i && o.bounds[i] <= o.bounds[i - 1]))
        return MRPC_ERR_INVAL;
    bounds = o.bounds;
    n = o.n_bounds;
  }
  size_t max = o.max_methods ? o.max_methods : DEFAULT_MAX_METHODS;
  if (max > SIZE_MAX / 8) return MRPC_ERR_INVAL;
  mrpc_ic_metrics *m = calloc(1, sizeof *m);
  if (!m) return MRPC_ERR_NOMEM;
  memcpy(m->bounds, bounds, n * sizeof *bounds);
  m->n_bounds = n;
  m->max_methods = max;
  m->hash_cap = 16;
  while (m->hash_cap <= 2 * max) m->hash_cap *= 2;
  if (!(m->hash = calloc(m->hash_cap, sizeof *m->hash))) {
    free(m);
    return MRPC_ERR_NOMEM;
  }
  pthread_mutex_init(&m->mu, NULL);
  *out = m;
  return 0;
}

const mrpc_interceptor *mrpc_ic_metrics_interceptor(const mrpc_ic_metrics *m) {
  return m ? &metrics_table : NULL;
}

static void snapshot(const mrpc_ic_metrics *m, row *r,
                     mrpc_ic_metrics_method *out) {
  memset(out, 0, sizeof *out);
  out->method = r->path;
  out->is_server = r->is_server;
  out->kind = r->kind;
  out->started = atomic_load(&r->started);
  out->msg_received = atomic_load(&r->msg_received);
  out->msg_sent = atomic_load(&r->msg_sent);
  for (int c = 0; c < MRPC_STATUS_CODE_COUNT; c++) {
    out->codes[c] = atomic_load(&r->codes[c]);
    out->handled += out->codes[c];
  }
  out->n_bounds = m->n_bounds;
  memcpy(out->bounds, m->bounds, m->n_bounds * sizeof *m->bounds);
  uint64_t acc = 0;
  for (size_t i = 0; i <= m->n_bounds; i++) {
    acc += atomic_load(&r->buckets[i]);
    out->buckets[i] = acc;
  }
  out->sum_seconds = (double)atomic_load(&r->sum_us) / 1e6;
}

size_t mrpc_ic_metrics_count(const mrpc_ic_metrics *m) {
  if (!m) return 0;
  mrpc_ic_metrics *w = (mrpc_ic_metrics *)m;
  pthread_mutex_lock(&w->mu);
  size_t n = w->n_rows;
  pthread_mutex_unlock(&w->mu);
  return n;
}

int mrpc_ic_metrics_at(const mrpc_ic_metrics *m, size_t i,
                       mrpc_ic_metrics_method *out) {
  if (!m || !out) return MRPC_ERR_INVAL;
  mrpc_ic_metrics *w = (mrpc_ic_metrics *)m;
  pthread_mutex_lock(&w->mu);
  row *r = i < w->n_rows ? w->rows[i] : NULL;
  pthread_mutex_unlock(&w->mu);
  if (!r) return MRPC_ERR_INVAL;
  snapshot(m, r, out);
  return 0;
}

int mrpc_ic_metrics_get(const mrpc_ic_metrics *m, const char *method,
                        int is_server, mrpc_ic_metrics_method *out) {
  if (!m || !method || !out) return MRPC_ERR_INVAL;
  mrpc_ic_metrics *w = (mrpc_ic_metrics *)m;
  is_server = is_server != 0;
  row *r = NULL;
  pthread_mutex_lock(&w->mu);
  for (size_t i = 0; i < w->n_rows && !r; i++)
    if (w->rows[i]->is_server == is_server &&
        strcmp(w->rows[i]->path, method) == 0)
      r = w->rows[i];
  pthread_mutex_unlock(&w->mu);
  if (!r) return MRPC_ERR_INVAL;
  snapshot(m, r, out);
  return 0;
}

/* ---- Prometheus text ---- */

static const char *type_name(mrpc_method_kind k) {
  switch (k) {
  case MRPC_CLIENT_STREAMING: return "client_stream";
  case MRPC_SERVER_STREAMING: return "server_stream";
  case MRPC_BIDI_STREAMING: return "bidi_stream";
  default: return "unary";
  }
}

/* grpc_type="...",grpc_service="...",grpc_method="..." */
static void labels(mrpc__ic_buf *b, const mrpc_ic_metrics_method *r) {
  const char *p = r->method;
  const char *svc = p[0] == '/' ? p + 1 : p;
  const char *slash = strrchr(svc, '/');
  size_t svc_len = slash ? (size_t)(slash - svc) : 0;
  const char *meth = slash ? slash + 1 : svc;
  mrpc__ic_buf_printf(b, "grpc_type=\"%s\",grpc_service=\"",
                      type_name(r->kind));
  mrpc__ic_buf_escaped(b, svc, svc_len);
  mrpc__ic_buf_printf(b, "\",grpc_method=\"");
  mrpc__ic_buf_escaped(b, meth, strlen(meth));
  mrpc__ic_buf_printf(b, "\"");
}

enum { F_STARTED, F_HANDLED, F_RECEIVED, F_SENT, F_SECONDS, F_COUNT };

static void family(mrpc__ic_buf *b, const mrpc_ic_metrics_method *rows,
                   size_t n, int is_server, int f) {
  static const char *const names[F_COUNT] = {
      "started_total", "handled_total", "msg_received_total",
      "msg_sent_total", "handling_seconds"};
  const char *side = is_server ? "server" : "client";
  const char *help[F_COUNT] = {
      "Total number of RPCs started on the %s.",
      "Total number of RPCs completed on the %s, regardless of success or "
      "failure.",
      "Total number of RPC stream messages received on the %s.",
      "Total number of gRPC stream messages sent by the %s.",
      "Histogram of response latency (seconds) of gRPC that had been "
      "application-level handled by the %s."};
  int any = 0;
  for (size_t i = 0; i < n; i++) any |= rows[i].is_server == is_server;
  if (!any) return;
  mrpc__ic_buf_printf(b, "# HELP grpc_%s_%s ", side, names[f]);
  mrpc__ic_buf_printf(b, help[f], side);
  mrpc__ic_buf_printf(b, "\n# TYPE grpc_%s_%s %s\n", side, names[f],
                      f == F_SECONDS ? "histogram" : "counter");
  for (size_t i = 0; i < n; i++) {
    const mrpc_ic_metrics_method *r = &rows[i];
    if (r->is_server != is_server) continue;
    switch (f) {
    case F_STARTED:
    case F_RECEIVED:
    case F_SENT: {
      uint64_t v = f == F_STARTED    ? r->started
                   : f == F_RECEIVED ? r->msg_received
                                     : r->msg_sent;
      mrpc__ic_buf_printf(b, "grpc_%s_%s{", side, names[f]);
      labels(b, r);
      mrpc__ic_buf_printf(b, "} %llu\n", (unsigned long long)v);
      break;
    }
    case F_HANDLED:
      for (int c = 0; c < MRPC_STATUS_CODE_COUNT; c++) {
        if (!r->codes[c]) continue;
        mrpc__ic_buf_printf(b, "grpc_%s_handled_total{", side);
        labels(b, r);
        mrpc__ic_buf_printf(b, ",grpc_code=\"%s\"} %llu\n",
                            mrpc_status_code_name(c),
                            (unsigned long long)r->codes[c]);
      }
      break;
    case F_SECONDS:
      for (size_t k = 0; k <= r->n_bounds; k++) {
        mrpc__ic_buf_printf(b, "grpc_%s_handling_seconds_bucket{", side);
        labels(b, r);
        if (k < r->n_bounds)
          mrpc__ic_buf_printf(b, ",le=\"%g\"} %llu\n", r->bounds[k],
                              (unsigned long long)r->buckets[k]);
        else
          mrpc__ic_buf_printf(b, ",le=\"+Inf\"} %llu\n",
                              (unsigned long long)r->buckets[k]);
      }
      mrpc__ic_buf_printf(b, "grpc_%s_handling_seconds_sum{", side);
      labels(b, r);
      mrpc__ic_buf_printf(b, "} %.6f\n", r->sum_seconds);
      mrpc__ic_buf_printf(b, "grpc_%s_handling_seconds_count{", side);
      labels(b, r);
      mrpc__ic_buf_printf(b, "} %llu\n",
                          (unsigned long long)r->buckets[r->n_bounds]);
      break;
    }
  }
}

/* The whole text in a new buffer (b->oom on failure). */
static void render(const mrpc_ic_metrics *m, mrpc__ic_buf *b) {
  mrpc_ic_metrics *w = (mrpc_ic_metrics *)m;
  pthread_mutex_lock(&w->mu);
  size_t n = w->n_rows;
  mrpc_ic_metrics_method *rows = calloc(n ? n : 1, sizeof *rows);
  if (rows)
    for (size_t i = 0; i < n; i++) snapshot(m, w->rows[i], &rows[i]);
  pthread_mutex_unlock(&w->mu);
  if (!rows) {
    b->oom = 1;
    return;
  }
  mrpc__ic_buf_printf(b, "%s", ""); /* an empty text is still a string */
  for (int side = 1; side >= 0; side--)
    for (int f = 0; f < F_COUNT; f++) family(b, rows, n, side, f);
  free(rows);
}

size_t mrpc_ic_metrics_prometheus(const mrpc_ic_metrics *m, char *buf,
                                  size_t cap) {
  if (cap && buf) buf[0] = '\0';
  if (!m) return 0;
  mrpc__ic_buf b = {0};
  render(m, &b);
  size_t len = b.oom ? 0 : b.len;
  if (cap && buf && !b.oom) {
    size_t k = len < cap ? len : cap - 1;
    memcpy(buf, b.p, k);
    buf[k] = '\0';
  }
  free(b.p);
  return len;
}

char *mrpc_ic_metrics_prometheus_alloc(const mrpc_ic_metrics *m,
                                       size_t *len) {
  if (len) *len = 0;
  if (!m) return NULL;
  mrpc__ic_buf b = {0};
  render(m, &b);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}

void mrpc_ic_metrics_del(mrpc_ic_metrics *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_rows; i++) {
    free(m->rows[i]->path);
    free(m->rows[i]);
  }
  free(m->rows);
  free(m->hash);
  pthread_mutex_destroy(&m->mu);
  free(m);
}
