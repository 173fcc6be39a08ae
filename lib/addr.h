/* Address strings: "host:port", "[v6]:port", ":port", "unix:/path". */
#ifndef MRPC_LIB_ADDR_H
#define MRPC_LIB_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

typedef struct mrpc__addr {
  int is_unix;
  char host[256]; /* without brackets; "" = any */
  char port[8];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} mrpc__addr;

/* Parses s.  Returns 0 or MRPC_ERR_ADDR. */
int mrpc__addr_parse(const char *s, mrpc__addr *out);

/* Resolves a (getaddrinfo; blocks) into at most max socket addresses,
 * IPv4 first.  passive: for bind (empty host = all interfaces).  Returns
 * the count (> 0) or MRPC_ERR_ADDR. */
int mrpc__addr_resolve(const mrpc__addr *a, int passive,
                       struct sockaddr_storage *out, socklen_t *lens,
                       int max);

/* getaddrinfo(host, port) into at most max TCP socket addresses, IPv4
 * first, duplicates dropped; blocks.  passive: for bind (host NULL = all
 * interfaces).  Returns the count (> 0), or MRPC_ERR_ADDR with why in
 * err. */
int mrpc__addr_getaddrinfo(const char *host, const char *port, int passive,
                           struct sockaddr_storage *out, socklen_t *lens,
                           int max, char *err, size_t errlen);

/* "ipv4:1.2.3.4:80", "ipv6:[::1]:80" or "unix:/path" into buf. */
void mrpc__addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                       size_t n);

#endif
