/* Channel targets and name resolution (see resolver.h). */
#include "resolver.h"

#include "addr.h"

#include <minirpc/common.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

int (*mrpc__resolve_hook)(const char *host, const char *port,
                          mrpc__addr_list *out);

/* ---- parsing ---- */

static int port_ok(const char *p, size_t n) {
  if (n == 0 || n > 5) return 0;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  return v <= 65535;
}

/* "host:port" or "[v6]:port" (len n) into host and port; default_port
 * (NULL: the port is required) when there is none. */
static int split_host_port(const char *s, size_t n, const char *default_port,
                           char *host, size_t hostcap, char *port) {
  const char *end = s + n, *colon;
  size_t hlen;
  if (n && s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (!rb) return MRPC_ERR_ADDR;
    hlen = (size_t)(rb - s - 1);
    if (hlen == 0 || hlen >= hostcap) return MRPC_ERR_ADDR;
    memcpy(host, s + 1, hlen);
    host[hlen] = '\0';
    if (rb + 1 == end) {
      colon = NULL;
    } else if (rb[1] == ':') {
      colon = rb + 1;
    } else {
      return MRPC_ERR_ADDR;
    }
  } else {
    colon = memchr(s, ':', n);
    if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
      return MRPC_ERR_ADDR; /* a bare IPv6 address needs brackets */
    hlen = colon ? (size_t)(colon - s) : n;
    if (hlen == 0 || hlen >= hostcap) return MRPC_ERR_ADDR;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
  }
  if (!colon) {
    if (!default_port) return MRPC_ERR_ADDR;
    strcpy(port, default_port);
    return 0;
  }
  size_t plen = (size_t)(end - colon - 1);
  if (!port_ok(colon + 1, plen)) return MRPC_ERR_ADDR;
  memcpy(port, colon + 1, plen);
  port[plen] = '\0';
  return 0;
}

/* A numeric address of family af into l. */
static int add_numeric(mrpc__addr_list *l, int af, const char *host,
                       const char *port) {
  if (l->n == MRPC__MAX_ADDRS) return MRPC_ERR_ADDR;
  struct sockaddr_storage *ss = &l->a[l->n];
  memset(ss, 0, sizeof *ss);
  unsigned short p = (unsigned short)atoi(port);
  if (af == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1) return MRPC_ERR_ADDR;
    in->sin_family = AF_INET;
    in->sin_port = htons(p);
    l->len[l->n++] = sizeof *in;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) return MRPC_ERR_ADDR;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(p);
    l->len[l->n++] = sizeof *in6;
  }
  return 0;
}

/* ipv4:/ipv6: comma-separated lists. */
static int parse_list(const char *s, int af, mrpc__target *t) {
  while (*s) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    char host[INET6_ADDRSTRLEN], port[8];
    /* ipv4 addresses come bare, ipv6 ones in brackets. */
    if ((af == AF_INET) == (n && s[0] == '[')) return MRPC_ERR_ADDR;
    if (split_host_port(s, n, NULL, host, sizeof host, port) != 0 ||
        add_numeric(&t->fixed, af, host, port) != 0)
      return MRPC_ERR_ADDR;
    if (t->fixed.n == 1) {
      strcpy(t->host, host);
      strcpy(t->port, port);
      snprintf(t->authority, sizeof t->authority,
               af == AF_INET ? "%s:%s" : "[%s]:%s", host, port);
    }
    if (!comma) break;
    s = comma + 1;
    if (!*s) return MRPC_ERR_ADDR;
  }
  return t->fixed.n ? 0 : MRPC_ERR_ADDR;
}

int mrpc__target_parse(const char *s, mrpc__target *t) {
  memset(t, 0, sizeof *t);
  if (!s || !*s) return MRPC_ERR_ADDR;
  if (strncmp(s, "unix:", 5) == 0) {
    const char *p = s + 5;
    if (strncmp(p, "//", 2) == 0) {
      p += 2; /* unix:///abs: the authority must be empty */
      if (*p != '/') return MRPC_ERR_ADDR;
    }
    struct sockaddr_un *un = (struct sockaddr_un *)&t->fixed.a[0];
    if (!*p || strlen(p) >= sizeof un->sun_path) return MRPC_ERR_ADDR;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, p);
    t->fixed.len[0] = sizeof *un;
    t->fixed.n = 1;
    t->is_unix = 1;
    strcpy(t->authority, "localhost");
    strcpy(t->host, "localhost");
    return 0;
  }
  if (strncmp(s, "ipv4:", 5) == 0) return parse_list(s + 5, AF_INET, t);
  if (strncmp(s, "ipv6:", 5) == 0) return parse_list(s + 5, AF_INET6, t);
  const char *hp = s, *default_port = NULL;
  if (strncmp(s, "dns:", 4) == 0) {
    hp = s + 4;
    if (strncmp(hp, "//", 2) == 0) {
      if (hp[2] != '/') return MRPC_ERR_ADDR; /* no DNS server authority */
      hp += 3;
    }
    default_port = "443"; /* naming.md */
  }
  if (split_host_port(hp, strlen(hp), default_port, t->host, sizeof t->host,
                      t->port) != 0)
    return MRPC_ERR_ADDR;
  snprintf(t->authority, sizeof t->authority,
           strchr(t->host, ':') ? "[%s]:%s" : "%s:%s", t->host, t->port);
  /* A numeric address needs no lookup. */
  if (add_numeric(&t->fixed, AF_INET, t->host, t->port) != 0 &&
      add_numeric(&t->fixed, AF_INET6, t->host, t->port) != 0)
    t->dns = 1;
  return 0;
}

/* ---- getaddrinfo ---- */

int mrpc__resolve(const char *host, const char *port, mrpc__addr_list *out,
                  char *err, size_t errlen) {
  out->n = 0;
  if (mrpc__resolve_hook) {
    if (mrpc__resolve_hook(host, port, out) == 0 && out->n > 0) return 0;
    snprintf(err, errlen, "could not resolve %s: no address", host);
    return MRPC_ERR_ADDR;
  }
  int n = mrpc__addr_getaddrinfo(host, port, 0, out->a, out->len,
                                 MRPC__MAX_ADDRS, err, errlen);
  if (n < 0) return n;
  out->n = n;
  return 0;
}

/* ---- the resolver thread ---- */

/* Shared by the owner, the thread and the result tasks in flight; plain
 * malloc, since the thread may outlive the channel and its allocator. */
struct mrpc__resolver {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  int want, stop;
  mrpc__loop *loop; /* posted to only while !stop */
  mrpc__resolved_fn fn;
  void *ctx;
  char host[256], port[8];
};

typedef struct result_task {
  mrpc__task task;
  mrpc__resolver *r;
  int ok;
  char err[256];
  mrpc__addr_list list;
} result_task;

static void release(mrpc__resolver *r) {
  pthread_mutex_lock(&r->mu);
  int last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (!last) return;
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static void result_fn(mrpc__task *t, int cancelled) {
  result_task *rt = (result_task *)t;
  mrpc__resolver *r = rt->r;
  /* del runs on this thread too: no race with stop. */
  if (!cancelled && !r->stop)
    r->fn(r->ctx, rt->ok ? &rt->list : NULL, rt->ok ? NULL : rt->err);
  free(rt);
  release(r);
}

static void *resolver_main(void *arg) {
  mrpc__resolver *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->stop && !r->want) pthread_cond_wait(&r->cv, &r->mu);
    if (r->stop) break;
    r->want = 0;
    pthread_mutex_unlock(&r->mu);
    result_task *rt = malloc(sizeof *rt);
    if (rt) {
      rt->ok = mrpc__resolve(r->host, r->port, &rt->list, rt->err,
                             sizeof rt->err) == 0;
    }
    pthread_mutex_lock(&r->mu);
    if (!rt) {
      r->want = 1; /* out of memory: try again in a while */
      pthread_mutex_unlock(&r->mu);
      struct timespec ts = {0, 100 * 1000000};
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&r->mu);
    } else if (r->stop) {
      free(rt);
    } else {
      rt->r = r;
      rt->task.fn = result_fn;
      r->refs++;
      mrpc__loop_post(r->loop, &rt->task);
    }
  }
  pthread_mutex_unlock(&r->mu);
  release(r);
  return NULL;
}

int mrpc__resolver_new(mrpc__loop *loop, const char *host, const char *port,
                       mrpc__resolved_fn fn, void *ctx, mrpc__resolver **out) {
  mrpc__resolver *r = calloc(1, sizeof *r);
  if (!r) return MRPC_ERR_NOMEM;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->refs = 2; /* the owner's and the thread's */
  r->loop = loop;
  r->fn = fn;
  r->ctx = ctx;
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->port, sizeof r->port, "%s", port);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int rc = pthread_create(&th, &attr, resolver_main, r);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return MRPC_ERR_IO;
  }
  *out = r;
  return 0;
}

void mrpc__resolver_request(mrpc__resolver *r) {
  pthread_mutex_lock(&r->mu);
  r->want = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

void mrpc__resolver_del(mrpc__resolver *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  release(r);
}
