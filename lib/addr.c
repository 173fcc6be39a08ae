#include "addr.h"

#include <minirpc/common.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mrpc__addr_parse(const char *s, mrpc__addr *out) {
  memset(out, 0, sizeof *out);
  if (!s) return MRPC_ERR_ADDR;
  if (strncmp(s, "unix:", 5) == 0) {
    const char *p = s + 5;
    if (!*p || strlen(p) >= sizeof out->path) return MRPC_ERR_ADDR;
    out->is_unix = 1;
    strcpy(out->path, p);
    return 0;
  }
  const char *colon;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof out->host)
      return MRPC_ERR_ADDR;
    memcpy(out->host, s + 1, (size_t)(end - s - 1));
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof out->host) return MRPC_ERR_ADDR;
    if (memchr(s, ':', (size_t)(colon - s))) return MRPC_ERR_ADDR;
    memcpy(out->host, s, (size_t)(colon - s));
  }
  const char *port = colon + 1;
  size_t plen = strlen(port);
  if (plen == 0 || plen >= sizeof out->port) return MRPC_ERR_ADDR;
  for (size_t i = 0; i < plen; i++)
    if (port[i] < '0' || port[i] > '9') return MRPC_ERR_ADDR;
  if (atoi(port) > 65535) return MRPC_ERR_ADDR;
  memcpy(out->port, port, plen);
  return 0;
}

int mrpc__addr_resolve(const mrpc__addr *a, int passive,
                       struct sockaddr_storage *out, socklen_t *lens,
                       int max) {
  if (a->is_unix) {
    struct sockaddr_un *un = (struct sockaddr_un *)&out[0];
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, a->path);
    lens[0] = sizeof *un;
    return 1;
  }
  char err[8];
  return mrpc__addr_getaddrinfo(a->host[0] ? a->host : NULL, a->port, passive,
                                out, lens, max, err, sizeof err);
}

int mrpc__addr_getaddrinfo(const char *host, const char *port, int passive,
                           struct sockaddr_storage *out, socklen_t *lens,
                           int max, char *err, size_t errlen) {
  struct addrinfo hints = {0}, *res, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  const char *name = host ? host : "*";
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "could not resolve %s: %s", name, gai_strerror(rc));
    return MRPC_ERR_ADDR;
  }
  int n = 0;
  /* IPv4 first: "localhost" servers commonly listen on 127.0.0.1 only. */
  for (int pass = 0; pass < 2; pass++)
    for (ai = res; ai && n < max; ai = ai->ai_next) {
      if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
      if (ai->ai_addrlen > sizeof out[0]) continue;
      int dup = 0;
      for (int i = 0; i < n && !dup; i++)
        dup = lens[i] == ai->ai_addrlen &&
              memcmp(&out[i], ai->ai_addr, ai->ai_addrlen) == 0;
      if (dup) continue;
      memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
      lens[n++] = ai->ai_addrlen;
    }
  freeaddrinfo(res);
  if (n == 0) {
    snprintf(err, errlen, "could not resolve %s: no TCP address", name);
    return MRPC_ERR_ADDR;
  }
  return n;
}

void mrpc__addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                       size_t n) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(buf, n, "ipv4:%s:%u", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(buf, n, "ipv6:[%s]:%u", ip, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const void *)sa;
    size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                      ? strnlen(un->sun_path, len - offsetof(struct sockaddr_un,
                                                             sun_path))
                      : 0;
    snprintf(buf, n, "unix:%.*s", (int)plen, un->sun_path);
  } else {
    snprintf(buf, n, "unknown");
  }
}
