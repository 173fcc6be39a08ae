/* Idle connections probe: opens N HTTP/2 connections to a server, completes
 * the handshake on each (preface + SETTINGS, the server's SETTINGS
 * acknowledged) and keeps them idle, so the harness can read the server's
 * memory per idle connection.  Then it checks that every connection still
 * works: a PING on each must come back acknowledged.
 *
 *   idle_conns --target=IP:PORT --conns=N [--hold-ms=MS] [--timeout-ms=MS]
 *
 * Prints "READY ok=K" once K connections are set up (or the setup timed
 * out), holds them idle for --hold-ms (default 2000), then prints
 * "ALIVE ok=K" with the number that answered the PING, and exits (0 when
 * every connection did).  Connects at most 256 at a time.  IPv4 only.
 * SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

enum { S_CONNECTING, S_WAIT_SETTINGS, S_READY, S_WAIT_PING, S_ALIVE, S_DEAD };

typedef struct ic {
  int fd, state;
  uint8_t in[64];
  size_t in_len; /* bytes of the current frame header/payload collected */
  size_t skip;   /* payload bytes of the current frame still to skip */
} ic;

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static int write_all(int fd, const void *p, size_t n) {
  /* Handshake bytes are tiny: a fresh socket's buffer always takes them. */
  return write(fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* Parses incoming frames; returns -1 on EOF/error. */
static int on_readable(ic *c) {
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    for (ssize_t i = 0; i < n;) {
      if (c->skip > 0) {
        size_t k = (size_t)(n - i) < c->skip ? (size_t)(n - i) : c->skip;
        c->skip -= k;
        i += (ssize_t)k;
        continue;
      }
      c->in[c->in_len++] = buf[i++];
      if (c->in_len < 9) continue;
      uint32_t len = (uint32_t)c->in[0] << 16 | (uint32_t)c->in[1] << 8 |
                     c->in[2];
      uint8_t type = c->in[3], flags = c->in[4];
      c->in_len = 0;
      c->skip = len;
      if (type == 4 && !(flags & 1) && c->state == S_WAIT_SETTINGS) {
        static const uint8_t ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
        if (write_all(c->fd, ack, 9) != 0) return -1;
        c->state = S_READY;
      } else if (type == 6 && (flags & 1) && c->state == S_WAIT_PING) {
        c->state = S_ALIVE;
      } else if (type == 7) { /* GOAWAY */
        return -1;
      }
    }
  }
}

int main(int argc, char **argv) {
  const char *target = NULL;
  long n = 0, hold_ms = 2000, timeout_ms = 30000;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--target=", 9) == 0)
      target = argv[i] + 9;
    else if (strncmp(argv[i], "--conns=", 8) == 0)
      n = atol(argv[i] + 8);
    else if (strncmp(argv[i], "--hold-ms=", 10) == 0)
      hold_ms = atol(argv[i] + 10);
    else if (strncmp(argv[i], "--timeout-ms=", 13) == 0)
      timeout_ms = atol(argv[i] + 13);
    else
      target = NULL, n = -1;
  }
  char host[64];
  const char *colon = target ? strrchr(target, ':') : NULL;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (!colon || n < 1 || n > 1000000 || (size_t)(colon - target) >= sizeof host ||
      hold_ms < 0 || timeout_ms < 1) {
    fprintf(stderr, "usage: idle_conns --target=IP:PORT --conns=N "
                    "[--hold-ms=MS] [--timeout-ms=MS]\n");
    return 2;
  }
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = 0;
  sa.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "idle_conns: bad address %s\n", host);
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  ic *cs = calloc((size_t)n, sizeof *cs);
  int ep = epoll_create1(0);
  if (!cs || ep < 0) return 1;
  int64_t deadline = bench_now_ns() + timeout_ms * 1000000LL;
  long opened = 0, ready = 0, dead = 0, pending = 0;
  struct epoll_event evs[512];
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

  /* Phase 1: connect and handshake, at most 256 in progress. */
  while (ready + dead < n && bench_now_ns() < deadline) {
    while (opened < n && pending < 256) {
      ic *c = &cs[opened++];
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0 ||
          (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
           errno != EINPROGRESS)) {
        c->state = S_DEAD;
        dead++;
        continue;
      }
      c->state = S_CONNECTING;
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      pending++;
    }
    int k = epoll_wait(ep, evs, 512, 100);
    for (int i = 0; i < k; i++) {
      ic *c = evs[i].data.ptr;
      if (c->state == S_DEAD || c->state == S_READY) continue;
      int fail = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      if (!fail && c->state == S_CONNECTING && (evs[i].events & EPOLLOUT)) {
        if (write_all(c->fd, PREFACE, 24) != 0 ||
            write_all(c->fd, settings, 9) != 0)
          fail = 1;
        else {
          c->state = S_WAIT_SETTINGS;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if (!fail && (evs[i].events & EPOLLIN) && on_readable(c) != 0) fail = 1;
      if (fail) {
        c->state = S_DEAD;
        dead++;
        pending--;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      } else if (c->state == S_READY) {
        ready++;
        pending--;
      }
    }
  }
  printf("READY ok=%ld\n", ready);
  fflush(stdout);

  /* Phase 2: idle.  Anything the server sends now (a GOAWAY, a close) is
   * read in phase 3. */
  int64_t until = bench_now_ns() + hold_ms * 1000000LL;
  while (bench_now_ns() < until) usleep(10000);

  /* Phase 3: a PING on every ready connection. */
  static const uint8_t ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0,
                                   1, 2, 3, 4, 5, 6, 7, 8};
  long waiting = 0, alive = 0;
  for (long i = 0; i < n; i++) {
    ic *c = &cs[i];
    if (c->state != S_READY) continue;
    if (write_all(c->fd, ping, sizeof ping) != 0) continue;
    c->state = S_WAIT_PING;
    waiting++;
  }
  deadline = bench_now_ns() + timeout_ms * 1000000LL;
  while (alive < waiting && bench_now_ns() < deadline) {
    int k = epoll_wait(ep, evs, 512, 100);
    for (int i = 0; i < k; i++) {
      ic *c = evs[i].data.ptr;
      if (c->state != S_WAIT_PING) continue;
      if (on_readable(c) != 0) {
        c->state = S_DEAD;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        waiting--;
      } else if (c->state == S_ALIVE) {
        alive++;
      }
    }
  }
  printf("ALIVE ok=%ld\n", alive);
  fflush(stdout);
  for (long i = 0; i < opened; i++)
    if (cs[i].fd > 0) close(cs[i].fd);
  free(cs);
  return alive == n ? 0 : 1;
}
