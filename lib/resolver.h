/* Channel targets (gRPC naming.md) and their resolution off the loop.
 *   dns:///host:port, dns:host:port, host:port, [v6]:port  resolved with
 *       getaddrinfo on the resolver's own thread, every A/AAAA address
 *   ipv4:a:p[,b:p...], ipv6:[a]:p[,[b]:p...]                listed directly
 *   unix:/path, unix:///path                                 one address */
#ifndef MRPC_LIB_RESOLVER_H
#define MRPC_LIB_RESOLVER_H

#include "loop.h"

#include <sys/socket.h>

#define MRPC__MAX_ADDRS 64

typedef struct mrpc__addr_list {
  int n;
  struct sockaddr_storage a[MRPC__MAX_ADDRS];
  socklen_t len[MRPC__MAX_ADDRS];
} mrpc__addr_list;

typedef struct mrpc__target {
  int dns;            /* resolve host:port; else `fixed` is the list */
  int is_unix;
  char host[256];     /* dns: the name; ipv4/ipv6: the first address */
  char port[8];
  mrpc__addr_list fixed;
  char authority[300]; /* the default :authority */
} mrpc__target;

/* Parses s.  Returns 0 or MRPC_ERR_ADDR (malformed, an unknown scheme, a
 * DNS authority in dns://auth/..., more than MRPC__MAX_ADDRS addresses). */
int mrpc__target_parse(const char *s, mrpc__target *t);

/* getaddrinfo(host, port) into out (IPv4 addresses first, duplicates
 * dropped).  Blocks.  Returns 0, or MRPC_ERR_ADDR with why in err. */
int mrpc__resolve(const char *host, const char *port, mrpc__addr_list *out,
                  char *err, size_t errlen);

/* Tests: replaces getaddrinfo for mrpc__resolve when set. */
extern int (*mrpc__resolve_hook)(const char *host, const char *port,
                                 mrpc__addr_list *out);

/* A resolver thread for one name.  Results come back as fn(ctx, list,
 * err) on the loop's thread: list on success (err NULL), else err. */
typedef struct mrpc__resolver mrpc__resolver;
typedef void (*mrpc__resolved_fn)(void *ctx, const mrpc__addr_list *list,
                                  const char *err);

/* Returns 0 and *out, or MRPC_ERR_NOMEM / MRPC_ERR_IO (thread). */
int mrpc__resolver_new(mrpc__loop *loop, const char *host, const char *port,
                       mrpc__resolved_fn fn, void *ctx, mrpc__resolver **out);

/* Asks for a resolution (loop thread).  One runs at a time; requests made
 * during one are answered by one more. */
void mrpc__resolver_request(mrpc__resolver *r);

/* Stops: fn is not called after this returns (loop thread, or after the
 * loop stopped).  The thread is detached, not joined, so that a slow DNS
 * server does not hold up the channel's end; it frees what it shares
 * when getaddrinfo returns.  NULL is a no-op. */
void mrpc__resolver_del(mrpc__resolver *r);

#endif
