/* The floor: a minimal gRPC-over-HTTP/2 server of bench.Bench on one epoll
 * loop and nghttp2, without protobuf or any gRPC runtime.  It is what any
 * nghttp2-based server must at least spend, so libminirpc is measured
 * against it.
 *
 *   Unary, PingPong: the request bytes (already gRPC-framed; an echo of a Msg
 *     is a Msg) are echoed back as they arrive, then grpc-status 0 once the
 *     client half-closes.
 *   Stream: the StreamReq is decoded by hand (two varints) and count framed
 *     Msg messages of size zero bytes are generated into nghttp2's buffer.
 *
 *   floor_server [--port=N]
 *
 * Listens on 127.0.0.1 only, prints "listening on PORT", exits 0 on SIGTERM
 * or SIGINT.  Same HTTP/2 settings as libminirpc's server (100 streams,
 * 1 MiB stream window, 16 MiB connection window); output is gathered up to
 * 64 KiB per write in one buffer shared by all connections.
 * SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define OUT_CAP (128 * 1024)
#define OUT_FLUSH (64 * 1024)
#define MAX_STREAM_SIZE (16 << 20)

enum { K_UNARY, K_STREAM, K_PINGPONG, K_OTHER };

typedef struct strm {
  int kind;
  bool in_closed;  /* END_STREAM received */
  bool responding; /* response submitted */
  bool deferred;   /* the data source said DEFERRED */
  /* Unary / PingPong: bytes to echo.  Stream: the request. */
  uint8_t *buf;
  size_t len, off, cap;
  /* Stream: messages still to generate and where we are in the current. */
  int32_t left, size;
  uint8_t hdr[16];
  size_t hdr_len, pos; /* pos within hdr_len + size */
} strm;

typedef struct conn {
  int fd;
  nghttp2_session *ng;
  uint8_t *pend; /* bytes the socket did not take yet (heap, only then) */
  size_t pend_len, pend_off;
  bool want_out; /* EPOLLOUT armed */
} conn;

static int g_ep;
/* Output is gathered here (one loop, one buffer), so an idle connection
 * holds no output buffer. */
static uint8_t g_out[OUT_CAP];

static int buf_append(strm *s, const uint8_t *p, size_t n) {
  if (s->off > 0 && s->off == s->len) s->off = s->len = 0;
  if (s->len + n > s->cap) {
    if (s->off > 0) {
      memmove(s->buf, s->buf + s->off, s->len - s->off);
      s->len -= s->off;
      s->off = 0;
    }
    if (s->len + n > s->cap) {
      size_t cap = s->cap ? s->cap : 256;
      while (cap < s->len + n) cap *= 2;
      uint8_t *b = realloc(s->buf, cap);
      if (!b) return -1;
      s->buf = b;
      s->cap = cap;
    }
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

static int submit_trailers(nghttp2_session *ng, int32_t id, const char *code) {
  nghttp2_nv nv[] = {{(uint8_t *)"grpc-status", (uint8_t *)code, 11,
                      strlen(code), NGHTTP2_NV_FLAG_NONE}};
  return nghttp2_submit_trailer(ng, id, nv, 1);
}

static size_t put_varint(uint8_t *p, uint32_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

/* Stream: the next message's frame header: 5-byte prefix, tag, length. */
static void next_msg(strm *s) {
  uint8_t tmp[8];
  size_t vl = 0;
  uint32_t mlen = 0;
  if (s->size > 0) {
    vl = put_varint(tmp, (uint32_t)s->size);
    mlen = 1 + (uint32_t)vl + (uint32_t)s->size;
  }
  s->hdr[0] = 0;
  s->hdr[1] = (uint8_t)(mlen >> 24);
  s->hdr[2] = (uint8_t)(mlen >> 16);
  s->hdr[3] = (uint8_t)(mlen >> 8);
  s->hdr[4] = (uint8_t)mlen;
  s->hdr_len = 5;
  if (s->size > 0) {
    s->hdr[5] = 0x0a; /* field 1, length-delimited */
    memcpy(s->hdr + 6, tmp, vl);
    s->hdr_len = 6 + vl;
  }
  s->pos = 0;
}

static ssize_t read_cb(nghttp2_session *ng, int32_t id, uint8_t *out,
                       size_t length, uint32_t *flags,
                       nghttp2_data_source *src, void *user) {
  (void)user;
  strm *s = src->ptr;
  size_t n = 0;
  if (s->kind == K_STREAM) {
    while (n < length && s->left > 0) {
      size_t total = s->hdr_len + (size_t)s->size;
      if (s->pos < s->hdr_len) {
        size_t k = s->hdr_len - s->pos;
        if (k > length - n) k = length - n;
        memcpy(out + n, s->hdr + s->pos, k);
        s->pos += k;
        n += k;
      } else {
        size_t k = total - s->pos;
        if (k > length - n) k = length - n;
        memset(out + n, 0, k);
        s->pos += k;
        n += k;
      }
      if (s->pos == total) {
        s->left--;
        next_msg(s);
      }
    }
    if (s->left == 0) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      if (submit_trailers(ng, id, "0") != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
  }
  n = s->len - s->off;
  if (n > length) n = length;
  memcpy(out, s->buf + s->off, n);
  s->off += n;
  if (s->off == s->len) {
    if (s->in_closed) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      if (submit_trailers(ng, id, "0") != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    } else if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

static int respond(nghttp2_session *ng, int32_t id, strm *s) {
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
       NGHTTP2_NV_FLAG_NONE}};
  nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_cb};
  s->responding = true;
  return nghttp2_submit_response(ng, id, nv, 2, &dp);
}

static int respond_status(nghttp2_session *ng, int32_t id, const char *code) {
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
       NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code),
       NGHTTP2_NV_FLAG_NONE}};
  return nghttp2_submit_response(ng, id, nv, 3, NULL);
}

/* Stream: decodes StreamReq {int32 count = 1; int32 size = 2;} from the
 * framed request.  Returns 0 or -1. */
static int parse_stream_req(strm *s) {
  const uint8_t *p = s->buf, *end = s->buf + s->len;
  if (s->len < 5) return -1;
  uint32_t mlen = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                  (uint32_t)p[3] << 8 | p[4];
  if (p[0] != 0 || mlen != s->len - 5) return -1;
  p += 5;
  int64_t count = 0, size = 0;
  while (p < end) {
    uint8_t tag = *p++;
    uint64_t v = 0;
    for (int sh = 0;; sh += 7) {
      if (p >= end || sh > 63) return -1;
      uint8_t b = *p++;
      v |= (uint64_t)(b & 0x7f) << sh;
      if (!(b & 0x80)) break;
    }
    if (tag == 0x08)
      count = (int64_t)v;
    else if (tag == 0x10)
      size = (int64_t)v;
    else
      return -1;
  }
  if (count < 0 || count > INT32_MAX || size < 0 || size > MAX_STREAM_SIZE)
    return -1;
  s->left = (int32_t)count;
  s->size = (int32_t)size;
  next_msg(s);
  return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f,
                            void *user) {
  (void)user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  strm *s = calloc(1, sizeof *s);
  if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
  s->kind = K_OTHER;
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user) {
  (void)flags;
  (void)user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  strm *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  if (!s || namelen != 5 || memcmp(name, ":path", 5) != 0) return 0;
  static const struct {
    const char *path;
    int kind;
  } routes[] = {{"/bench.Bench/Unary", K_UNARY},
                {"/bench.Bench/Stream", K_STREAM},
                {"/bench.Bench/PingPong", K_PINGPONG}};
  for (size_t i = 0; i < 3; i++)
    if (valuelen == strlen(routes[i].path) &&
        memcmp(value, routes[i].path, valuelen) == 0)
      s->kind = routes[i].kind;
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *user) {
  (void)flags;
  (void)user;
  strm *s = nghttp2_session_get_stream_user_data(ng, id);
  if (!s) return 0;
  if (buf_append(s, data, len) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (s->kind != K_STREAM && s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(ng, id);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f,
                         void *user) {
  (void)user;
  int32_t id = f->hd.stream_id;
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  strm *s = nghttp2_session_get_stream_user_data(ng, id);
  if (!s) return 0;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS && !s->responding) {
    if (s->kind == K_OTHER) return respond_status(ng, id, "12");
    if (s->kind != K_STREAM && respond(ng, id, s) != 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (!end) return 0;
  s->in_closed = true;
  if (s->kind == K_STREAM && !s->responding) {
    if (parse_stream_req(s) != 0) return respond_status(ng, id, "3");
    return respond(ng, id, s) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(ng, id);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err,
                           void *user) {
  (void)err;
  (void)user;
  strm *s = nghttp2_session_get_stream_user_data(ng, id);
  if (s) {
    free(s->buf);
    free(s);
    nghttp2_session_set_stream_user_data(ng, id, NULL);
  }
  return 0;
}

static nghttp2_session_callbacks *g_cbs;
static nghttp2_option *g_opt;

static void conn_close(conn *c) {
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  nghttp2_session_del(c->ng);
  free(c->pend);
  free(c);
}

static void set_out(conn *c, bool on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                           .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = on;
}

/* Writes what nghttp2 has, gathering up to 64 KiB per write.  Returns -1
 * when the connection is to be closed. */
static int conn_flush(conn *c) {
  for (;;) {
    while (c->pend_off < c->pend_len) {
      ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          set_out(c, true);
          return 0;
        }
        return -1;
      }
      c->pend_off += (size_t)w;
    }
    free(c->pend);
    c->pend = NULL;
    c->pend_len = c->pend_off = 0;
    size_t len = 0;
    while (len < OUT_FLUSH) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(c->ng, &p);
      if (n < 0) return -1;
      if (n == 0) break;
      if ((size_t)n > OUT_CAP - len) return -1; /* frames are smaller */
      memcpy(g_out + len, p, (size_t)n);
      len += (size_t)n;
    }
    if (len == 0) break;
    size_t off = 0;
    while (off < len) {
      ssize_t w = write(c->fd, g_out + off, len - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        c->pend = malloc(len - off);
        if (!c->pend) return -1;
        memcpy(c->pend, g_out + off, len - off);
        c->pend_len = len - off;
        set_out(c, true);
        return 0;
      }
      off += (size_t)w;
    }
  }
  set_out(c, false);
  if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
    return -1;
  return 0;
}

static void conn_read(conn *c) {
  static uint8_t buf[64 * 1024];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0 || nghttp2_session_mem_recv(c->ng, buf, (size_t)n) != n) {
      conn_close(c);
      return;
    }
    if ((size_t)n < sizeof buf) break;
  }
  if (conn_flush(c) != 0) conn_close(c);
}

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    if (!c || nghttp2_session_server_new2(&c->ng, g_cbs, c, g_opt) != 0) {
      free(c);
      close(fd);
      continue;
    }
    c->fd = fd;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                          16 << 20);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) != 0 || conn_flush(c) != 0)
      conn_close(c);
  }
}

int main(int argc, char **argv) {
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else {
      fprintf(stderr, "usage: floor_server [--port=N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (sfd < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
    perror("floor_server: listen");
    return 1;
  }

  nghttp2_session_callbacks_new(&g_cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(g_cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(g_cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_cbs, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(g_cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(g_cbs,
                                                         on_stream_close);
  nghttp2_option_new(&g_opt);

  g_ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &sfd;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, sfd, &ev);
  printf("listening on %d\n", ntohs(sa.sin_port));
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(g_ep, evs, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &sfd) goto out;
      if (p == &lfd) {
        accept_all(lfd);
        continue;
      }
      conn *c = p;
      if (evs[i].events & (EPOLLERR | EPOLLHUP) &&
          !(evs[i].events & EPOLLIN)) {
        conn_close(c);
      } else if (evs[i].events & EPOLLIN) {
        conn_read(c); /* reads, then flushes */
      } else if (conn_flush(c) != 0) {
        conn_close(c);
      }
    }
  }
out:
  /* Connections are left to the kernel: the process is exiting. */
  nghttp2_option_del(g_opt);
  nghttp2_session_callbacks_del(g_cbs);
  return 0;
}
