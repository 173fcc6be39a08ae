/* The call state machine, both sides.  See call.h. */
#include "call.h"

#include "alloc.h"
#include "compress.h"
#include "interceptor.h"
#include "metadata.h"
#include "pbcheck.h"
#include "server_int.h"
#include "status.h"
#include "timeout.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define H2_NO_ERROR 0
#define H2_CANCEL 8
#define H2_REFUSED_STREAM 7

#define CT_GRPC "application/grpc"

mrpc_call *mrpc__call_new(mrpc__loop *loop, int is_server,
                          const mrpc__call_cfg *cfg) {
  /* Without a user allocator from the loop's block cache: a call is larger
   * than libc's per-thread cache takes. */
  mrpc_call *call = cfg->alloc ? mrpc__calloc(cfg->alloc, 1, sizeof *call)
                               : mrpc__blk_calloc(loop, 1, sizeof *call);
  if (!call) return NULL;
  mrpc__metadata_init(&call->md_in, cfg->alloc);
  call->md = &call->md_in;
  atomic_init(&call->refs, 1);
  call->alloc = cfg->alloc;
  call->loop = loop;
  call->is_server = is_server;
  call->max_send = cfg->max_send;
  call->send_limit = cfg->send_limit;
  call->max_header_list = cfg->max_header_list;
  call->deadline_ms = INT64_MAX;
  call->pushback_ms = -1;
  call->status.code = MRPC_STATUS_UNKNOWN;
  call->peer_accept = 1u << MRPC_COMPRESS_NONE;
  atomic_init(&call->msg_compress, 1);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  call->t_start_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  mrpc__deframer_init(&call->df, cfg->max_recv, cfg->alloc);
  return call;
}

void mrpc__call_set_peer(mrpc_call *call, const char *peer) {
  size_t n = strnlen(peer, sizeof call->peer - 1);
  memcpy(call->peer, peer, n);
  call->peer[n] = '\0';
}

/* A client call's peer of a later attempt (call.h, peer_at). */
typedef struct mrpc__peer_copy {
  struct mrpc__peer_copy *next;
  char s[];
} mrpc__peer_copy;

/* 1 if s (stored, bounded as in mrpc__call_set_peer) is peer's. */
static int same_peer(const char *s, const char *peer, size_t n) {
  return strncmp(s, peer, n) == 0 && s[n] == '\0';
}

/* Client, loop thread: publishes the peer of the attempt just started.
 * An address seen before is published again from its earlier string, so
 * copies are bounded by distinct addresses, not attempts.  Out of memory
 * the last peer stays: stale, but whole. */
static void set_attempt_peer(mrpc_call *call, const char *peer) {
  size_t n = strnlen(peer, sizeof call->peer - 1);
  const char *cur = atomic_load_explicit(&call->peer_at, memory_order_relaxed);
  const char *p = NULL;
  if (!cur) {
    mrpc__call_set_peer(call, peer);
    p = call->peer;
  } else if (same_peer(cur, peer, n)) {
    return;
  } else if (same_peer(call->peer, peer, n)) {
    p = call->peer;
  } else {
    for (mrpc__peer_copy *c = call->peer_copies; c && !p; c = c->next)
      if (same_peer(c->s, peer, n)) p = c->s;
    if (!p) {
      mrpc__peer_copy *c = mrpc__malloc(call->alloc, sizeof *c + n + 1);
      if (!c) return;
      memcpy(c->s, peer, n);
      c->s[n] = '\0';
      c->next = call->peer_copies;
      call->peer_copies = c;
      p = c->s;
    }
  }
  atomic_store_explicit(&call->peer_at, p, memory_order_release);
}

mrpc_call *mrpc_call_ref(mrpc_call *call) {
  atomic_fetch_add(&call->refs, 1);
  return call;
}

/* Frees a chunk, unless it is the call's inline one. */
static void chunk_free(mrpc_call *call, mrpc__chunk *c) {
  if ((uint8_t *)c != call->tx_inline) mrpc__free(call->alloc, c);
}

static void free_chunks(mrpc_call *call, mrpc__chunk *c) {
  while (c) {
    mrpc__chunk *n = c->next;
    chunk_free(call, c);
    c = n;
  }
}

/* Client: no further attempt can come; the replay copy goes. */
static void commit(mrpc_call *call) {
  call->committed = 1;
  free_chunks(call, call->sent_head);
  call->sent_head = call->sent_tail = NULL;
  call->replay_bytes = 0;
}

void mrpc_call_unref(mrpc_call *call) {
  if (!call || atomic_fetch_sub(&call->refs, 1) != 1) return;
  const mrpc_allocator *a = call->alloc;
  free_chunks(call, call->sq_head);
  free_chunks(call, call->sent_head);
  mrpc__deframer_free(&call->df);
  mrpc__metadata_fini(call->md);
  mrpc_metadata_del(call->trailers);
  mrpc_metadata_del(call->out_headers);
  mrpc_metadata_del(call->out_trailers);
  if (call->path != call->path_in) mrpc__free(a, call->path);
  mrpc__free(a, call->grpc_message);
  mrpc__free(a, call->details);
  mrpc_status_free(&call->status);
  mrpc__free(a, call->ics);
  mrpc__chunk *held = atomic_load(&call->held);
  if (held) chunk_free(call, held);
  mrpc__tls_peer_unref(call->tls_peer);
  for (mrpc__peer_copy *c = call->peer_copies, *next; c; c = next) {
    next = c->next;
    mrpc__free(a, c);
  }
  if (call->ics) pthread_mutex_destroy(&call->ic_mu); /* mrpc__ic_start */
  if (a)
    mrpc__free(a, call);
  else
    mrpc__blk_free(call->loop, call);
}

/* ---- header lists ---- */

void mrpc__hdrbuf_init(mrpc__hdrbuf *hb, const mrpc_allocator *alloc) {
  hb->alloc = alloc;
  hb->h = hb->inline_h;
  hb->cap = sizeof hb->inline_h / sizeof hb->inline_h[0];
  hb->n = 0;
  hb->owned = hb->inline_owned;
  hb->cap_owned = sizeof hb->inline_owned / sizeof hb->inline_owned[0];
  hb->n_owned = 0;
  hb->oom = 0;
}

void mrpc__hdrbuf_free(mrpc__hdrbuf *hb) {
  for (size_t i = 0; i < hb->n_owned; i++) mrpc__free(hb->alloc, hb->owned[i]);
  if (hb->owned != hb->inline_owned) mrpc__free(hb->alloc, hb->owned);
  if (hb->h != hb->inline_h) mrpc__free(hb->alloc, hb->h);
  mrpc__hdrbuf_init(hb, hb->alloc);
}

/* Room for n more fields: 0, or -1 (and oom). */
static int hdrbuf_room(mrpc__hdrbuf *hb, size_t n) {
  if (hb->oom) return -1;
  if (hb->n + n <= hb->cap) return 0;
  size_t cap = hb->cap * 2;
  while (cap < hb->n + n) cap *= 2;
  mrpc__hdr *h = mrpc__malloc(hb->alloc, cap * sizeof *h);
  if (!h) {
    hb->oom = 1;
    return -1;
  }
  memcpy(h, hb->h, hb->n * sizeof *h);
  if (hb->h != hb->inline_h) mrpc__free(hb->alloc, hb->h);
  hb->h = h;
  hb->cap = cap;
  return 0;
}

static void hdrbuf_push(mrpc__hdrbuf *hb, const char *name, size_t nlen,
                        const char *value, size_t vlen, unsigned flags) {
  if (hdrbuf_room(hb, 1) == 0)
    hb->h[hb->n++] = (mrpc__hdr){name, nlen, value, vlen, flags};
}

static void hdrbuf_append(mrpc__hdrbuf *hb, const mrpc__hdr *h, size_t n) {
  if (hdrbuf_room(hb, n) != 0) return;
  memcpy(hb->h + hb->n, h, n * sizeof *h);
  hb->n += n;
}

/* Keeps s alive until the buffer is freed; NULL (and oom) on failure. */
static char *hdrbuf_own(mrpc__hdrbuf *hb, char *s) {
  if (!s) {
    hb->oom = 1;
    return NULL;
  }
  if (hb->n_owned == hb->cap_owned) {
    size_t cap = hb->cap_owned * 2;
    char **o = mrpc__malloc(hb->alloc, cap * sizeof *o);
    if (!o) {
      mrpc__free(hb->alloc, s);
      hb->oom = 1;
      return NULL;
    }
    memcpy(o, hb->owned, hb->n_owned * sizeof *o);
    if (hb->owned != hb->inline_owned) mrpc__free(hb->alloc, hb->owned);
    hb->owned = o;
    hb->cap_owned = cap;
  }
  hb->owned[hb->n_owned++] = s;
  return s;
}

/* Fields named by a lowercase string literal ("" name accepts nothing
 * else), which the transport need not copy; the value is copied, or not
 * either when it is static storage too. */
#define HB_ADD(hb, name, value, vlen)                                        \
  hdrbuf_push(hb, name, sizeof("" name) - 1, value, vlen,                    \
              MRPC__HDR_STATIC_NAME)
#define HB_ADD_STATIC(hb, name, value, vlen)                                 \
  hdrbuf_push(hb, name, sizeof("" name) - 1, value, vlen, MRPC__HDR_STATIC)

void mrpc__hdrbuf_add_md(mrpc__hdrbuf *hb, const mrpc_metadata *md) {
  size_t n = mrpc_metadata_count(md);
  for (size_t i = 0; i < n; i++) {
    const char *k;
    const uint8_t *v;
    size_t vlen, klen = mrpc__metadata_key_len(md, i);
    mrpc_metadata_at(md, i, &k, &v, &vlen);
    if (mrpc__metadata_key_is_bin(k, klen)) {
      char *b = hdrbuf_own(
          hb, mrpc__malloc(hb->alloc, mrpc__base64_encoded_len(vlen) + 1));
      if (!b) return;
      size_t blen = mrpc__base64_encode(v, vlen, b);
      hdrbuf_push(hb, k, klen, b, blen, 0);
    } else {
      hdrbuf_push(hb, k, klen, (const char *)v, vlen, 0);
    }
  }
}

/* Adds grpc-status, grpc-message and grpc-status-details-bin. */
static void hdrbuf_add_status(mrpc__hdrbuf *hb, const mrpc_status *st) {
  /* The codes as static strings (not copied); others in one or two digits
   * of scratch, no printf on the hot path. */
  static const char *const CODES[] = {"0",  "1",  "2",  "3",  "4",  "5",
                                      "6",  "7",  "8",  "9",  "10", "11",
                                      "12", "13", "14", "15", "16"};
  unsigned c = (unsigned)st->code > 99 ? 2 : (unsigned)st->code;
  if (c < sizeof CODES / sizeof CODES[0]) {
    HB_ADD_STATIC(hb, "grpc-status", CODES[c], c < 10 ? 1 : 2);
  } else {
    size_t n = 0;
    if (c >= 10) hb->scratch[n++] = (char)('0' + c / 10);
    hb->scratch[n++] = (char)('0' + c % 10);
    HB_ADD(hb, "grpc-status", hb->scratch, n);
  }
  if (st->message && st->message[0]) {
    size_t mlen = strlen(st->message);
    size_t elen = mrpc__percent_encode((const uint8_t *)st->message, mlen, NULL);
    char *e = hdrbuf_own(hb, mrpc__malloc(hb->alloc, elen + 1));
    if (!e) return;
    mrpc__percent_encode((const uint8_t *)st->message, mlen, e);
    HB_ADD(hb, "grpc-message", e, elen);
  }
  if (st->details && st->details_len) {
    char *b = hdrbuf_own(
        hb, mrpc__malloc(hb->alloc,
                         mrpc__base64_encoded_len(st->details_len) + 1));
    if (!b) return;
    size_t blen = mrpc__base64_encode(st->details, st->details_len, b);
    HB_ADD(hb, "grpc-status-details-bin", b, blen);
  }
}

/* ---- completion ---- */

static void notify_writable(mrpc_call *call);

static void set_status(mrpc_call *call, mrpc_status_code code,
                       const char *msg) {
  mrpc__status_set(&call->status, code, msg, NULL, 0);
}

/* Delivers on_done once, with call->status as it stands. */
static void deliver_done(mrpc_call *call) {
  if (atomic_load(&call->done)) return;
  mrpc__ic_end(call, &call->status); /* no-op if they ran at finish */
  if (atomic_exchange(&call->done, 1)) return;
  mrpc__timer_stop(call->loop, &call->deadline_timer);
  if (call->status.code != MRPC_STATUS_OK &&
      !(call->is_server && call->finishing && call->trailers_sent))
    atomic_store(&call->cancelled, 1);
  /* A client call may end while it waits in a channel list (deadline,
   * cancel): the list lets go, and a reference of ours keeps the call
   * alive through on_done. */
  int waited = !call->is_server && call->waitq;
  if (waited) {
    mrpc_call_ref(call);
    mrpc__channel_call_done(call);
  }
  if (!call->is_server) {
    commit(call);
    if (call->channel) mrpc__channel_call_end(call);
  }
  if (call->ops.on_done) call->ops.on_done(call, &call->status, call->ctx);
  if (call->is_server) mrpc__server_call_done(call);
  if (waited) mrpc_call_unref(call);
}

void mrpc__call_complete(mrpc_call *call, mrpc_status_code code,
                         const char *msg) {
  if (atomic_load(&call->done)) return;
  /* A server call ending as its handler said keeps message and details. */
  if (!(call->is_server && call->finishing && code == call->status.code))
    set_status(call, code, msg);
  deliver_done(call);
}

/* Client: the status of a call whose stream ended normally. */
static void client_finish_from_headers(mrpc_call *call) {
  if (atomic_load(&call->done)) return;
  if (call->rx_error != MRPC_STATUS_OK) {
    mrpc__call_complete(call, call->rx_error, "receive failed");
  } else if (call->have_grpc_status) {
    int code = call->grpc_status;
    if (code < 0 || code > 16) code = MRPC_STATUS_UNKNOWN;
    mrpc__status_set(&call->status, (mrpc_status_code)code,
                     call->grpc_message ? call->grpc_message : "",
                     call->details, call->details_len);
    deliver_done(call);
  } else if (call->http_status != 200) {
    char msg[64];
    snprintf(msg, sizeof msg, "HTTP status %d", call->http_status);
    mrpc__call_complete(call, mrpc__status_from_http(call->http_status), msg);
  } else {
    mrpc__call_complete(call, MRPC_STATUS_UNKNOWN,
                        "response ended without grpc-status");
  }
}

/* ---- receive ---- */

/* Records the first receive failure and ends the call with it. */
static void rx_fail(mrpc_call *call, mrpc_status_code code, const char *msg) {
  if (call->rx_error == MRPC_STATUS_OK) call->rx_error = code;
  if (call->is_server) {
    mrpc__call_fail(call, code, msg);
  } else {
    if (call->conn) mrpc__conn_reset(call->conn, call, H2_CANCEL);
    mrpc__call_complete(call, code, msg);
  }
}

void mrpc__call_on_header(mrpc_call *call, const uint8_t *name, size_t nlen,
                          const uint8_t *value, size_t vlen, int trailer) {
  /* The advertised MAX_HEADER_LIST_SIZE is enforced here: nghttp2 only
   * advertises it.  Counting goes on per block; HPACK state is kept. */
  call->hdr_bytes += (uint32_t)(nlen + vlen + 32);
  if (call->hdr_bytes > call->max_header_list) {
    call->hdr_overflow = 1;
    return;
  }
  /* gRPC defines no request trailers; the call is already dispatched and
   * its metadata in the handler's hands: count them, use nothing. */
  if (trailer && call->is_server) return;
  const mrpc_allocator *a = call->alloc;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
  if (name[0] == ':') {
    if (IS(":path") && !call->path) {
      if (vlen < sizeof call->path_in) {
        memcpy(call->path_in, value, vlen);
        call->path_in[vlen] = '\0';
        call->path = call->path_in;
      } else {
        call->path = mrpc__strndup(a, (const char *)value, vlen);
      }
    } else if (IS(":method")) {
      call->method_post = vlen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (IS(":status")) {
      int st = 0;
      for (size_t i = 0; i < vlen && i < 3; i++) st = st * 10 + (value[i] - '0');
      call->http_status = st;
    }
    return;
  }
  if (IS("content-type")) {
    call->content_type_ok =
        vlen >= sizeof CT_GRPC - 1 &&
        memcmp(value, CT_GRPC, sizeof CT_GRPC - 1) == 0 &&
        (vlen == sizeof CT_GRPC - 1 || value[sizeof CT_GRPC - 1] == '+' ||
         value[sizeof CT_GRPC - 1] == ';');
  } else if (IS("te")) {
    call->te_ok = vlen == 8 && memcmp(value, "trailers", 8) == 0;
  } else if (IS("grpc-timeout")) {
    int64_t ns;
    if (mrpc__timeout_parse(value, vlen, &ns) != 0) {
      call->bad_timeout = 1;
    } else {
      int64_t ms = ns / 1000000 + (ns % 1000000 ? 1 : 0);
      int64_t now = mrpc__now_ms();
      call->deadline_ms = ms > INT64_MAX - now ? INT64_MAX : now + ms;
    }
  } else if (IS("grpc-encoding")) {
    int alg = mrpc__compression_parse(value, vlen);
    call->bad_encoding = alg < 0;
    call->recv_alg = alg < 0 ? MRPC_COMPRESS_NONE : alg;
    call->df.compression_ok = alg > 0;
  } else if (IS("grpc-accept-encoding")) {
    call->peer_accept = mrpc__compression_accept_parse(value, vlen);
  } else if (IS("grpc-status")) {
    int code;
    if (mrpc__status_parse(value, vlen, &code) == 0) {
      call->have_grpc_status = 1;
      call->grpc_status = code;
    } else {
      call->have_grpc_status = 1;
      call->grpc_status = MRPC_STATUS_UNKNOWN;
    }
  } else if (IS("grpc-retry-pushback-ms")) {
    /* A6: a non-negative integer; anything else means "do not retry". */
    int64_t v = vlen && vlen <= 18 ? 0 : -2;
    for (size_t i = 0; i < vlen && v >= 0; i++)
      v = value[i] >= '0' && value[i] <= '9' ? v * 10 + (value[i] - '0') : -2;
    call->pushback_ms = v;
  } else if (IS("grpc-message")) {
    mrpc__free(a, call->grpc_message);
    call->grpc_message = mrpc__malloc(a, vlen + 1);
    if (call->grpc_message) {
      size_t n = mrpc__percent_decode(value, vlen, call->grpc_message);
      call->grpc_message[n] = '\0';
    }
  } else if (IS("grpc-status-details-bin")) {
    mrpc__free(a, call->details);
    call->details = mrpc__malloc(a, vlen ? vlen : 1);
    if (call->details &&
        mrpc__base64_decode((const char *)value, vlen, call->details,
                            &call->details_len) != 0) {
      mrpc__free(a, call->details);
      call->details = NULL;
      call->details_len = 0;
    }
  } else {
    mrpc_metadata *md = call->md;
    if (trailer && !call->is_server) {
      if (!call->trailers) call->trailers = mrpc_metadata_new(a);
      md = call->trailers;
    }
    if (!md) return;
    int rv = mrpc__metadata_add_wire(md, name, nlen, value, vlen);
    if (rv != 0 && rv != MRPC_ERR_RESERVED) call->bad_metadata = 1;
  }
#undef IS
}

void mrpc__call_on_headers_end(mrpc_call *call, int trailer, int end_stream) {
  int overflow = call->hdr_overflow;
  call->hdr_bytes = 0;
  call->hdr_overflow = 0;
  if (!call->got_headers) call->got_headers = 1;
  if (overflow) {
    rx_fail(call, MRPC_STATUS_RESOURCE_EXHAUSTED,
            "header list exceeds the size limit");
    return;
  }
  if (call->is_server) {
    if (!trailer) mrpc__server_dispatch(call);
    return;
  }
  if (trailer || end_stream) return; /* status handled at remote end */
  commit(call); /* response headers: no retry from here (A6) */
  if (call->http_status == 200 && !call->content_type_ok)
    rx_fail(call, MRPC_STATUS_UNKNOWN, "response content-type is not gRPC");
  else if (call->bad_encoding) /* compression.md: INTERNAL at the client */
    rx_fail(call, MRPC_STATUS_INTERNAL, "unsupported response grpc-encoding");
}

static int deliver_plain(mrpc_call *call, const uint8_t *msg, size_t len,
                         size_t wire_len);

static int deliver(void *ud, int compressed, const uint8_t *msg, size_t len) {
  mrpc_call *call = ud;
  if (atomic_load(&call->done)) return 0;
  call->rx_compressed = compressed;
  if (!compressed) return deliver_plain(call, msg, len, len);
  uint8_t *plain;
  size_t plen;
  int rv = mrpc__decompress(call->alloc, (mrpc_compression)call->recv_alg,
                            msg, len, call->df.max_len, &plain, &plen);
  if (rv) {
    rx_fail(call,
            rv == MRPC_ERR_TOO_LARGE ? MRPC_STATUS_RESOURCE_EXHAUSTED
                                     : MRPC_STATUS_INTERNAL,
            rv == MRPC_ERR_TOO_LARGE ? "decompressed message larger than "
                                       "the limit"
                                     : "could not decompress the message");
    return 1;
  }
  rv = deliver_plain(call, plain, plen, len);
  mrpc__free(call->alloc, plain);
  return rv;
}

const char *mrpc__call_parse_error(const mrpc_call *call) {
  return call->is_server ? "could not parse the request message"
                         : "could not parse the response message";
}

/* Counts a message about to be handed over. */
static void received(mrpc_call *call, size_t len, size_t wire_len) {
  call->n_recv++;
  call->rx_len = len;
  atomic_fetch_add(&call->bytes_in, wire_len + MRPC__FRAME_HDR_LEN);
}

/* Unpacks and hands over one message; wire_len is its size as received. */
static int deliver_plain(mrpc_call *call, const uint8_t *msg, size_t len,
                         size_t wire_len) {
  const mrpc_method *m = call->method;
  int single = call->is_server ? (m->kind == MRPC_UNARY ||
                                  m->kind == MRPC_SERVER_STREAMING)
                               : (m->kind == MRPC_UNARY ||
                                  m->kind == MRPC_CLIENT_STREAMING);
  if (single && call->n_recv >= 1) {
    rx_fail(call,
            call->is_server ? MRPC_STATUS_UNIMPLEMENTED : MRPC_STATUS_INTERNAL,
            call->is_server ? "more than one request for a unary method"
                            : "more than one response for a unary method");
    return 1;
  }
  const ProtobufCMessageDescriptor *d =
      call->is_server ? m->request : m->response;
  if (!mrpc__pb_strings_ok(d, msg, len)) {
    rx_fail(call, MRPC_STATUS_INTERNAL,
            "a string field is not valid UTF-8 or holds a NUL byte");
    return 1;
  }
  if (call->defer_unpack && !call->n_ics && len <= sizeof call->rx_scratch) {
    /* No later message reaches rx_scratch: the single check refuses it. */
    memcpy(call->rx_scratch, msg, len);
    received(call, len, wire_len);
    call->ops.on_message(call, NULL, call->ctx);
    return atomic_load(&call->done) ? 1 : 0;
  }
  /* A message the library frees after on_message, untouched by
   * interceptors (which may free or replace it), is unpacked into the
   * call's scratch area. */
  mrpc__scratch sc = {call->rx_scratch, sizeof call->rx_scratch, 0};
  ProtobufCAllocator scratch = mrpc__scratch_allocator(&sc);
  ProtobufCAllocator *pa =
      call->take_messages || call->n_ics ? NULL : &scratch;
  ProtobufCMessage *pm = protobuf_c_message_unpack(d, pa, len, msg);
  if (!pm) {
    rx_fail(call, MRPC_STATUS_INTERNAL, mrpc__call_parse_error(call));
    return 1;
  }
  received(call, len, wire_len);
  if (call->n_ics && !call->ic_ended) { /* call_data is gone after on_end */
    char *m;
    mrpc_status_code rc = mrpc__ic_recv(call, &pm, &m);
    if (rc != MRPC_STATUS_OK) {
      if (pm) protobuf_c_message_free_unpacked(pm, NULL);
      rx_fail(call, rc, m ? m : "message refused by an interceptor");
      free(m);
      return 1;
    }
  }
  if (call->ops.on_message)
    call->ops.on_message(call, pm, call->ctx);
  if (pa)
    protobuf_c_message_free_unpacked(pm, pa);
  else if (!call->take_messages || !call->ops.on_message)
    protobuf_c_message_free_unpacked(pm, NULL);
  return atomic_load(&call->done) ? 1 : 0;
}

void mrpc__call_on_data(mrpc_call *call, const uint8_t *data, size_t len) {
  if (atomic_load(&call->done) || call->rx_error != MRPC_STATUS_OK) return;
  if (call->is_server && !call->method) return; /* refused, not routed */
  if (!call->is_server && call->http_status != 200) return; /* not gRPC */
  int rv = mrpc__deframer_feed(&call->df, data, len, deliver, call);
  if (rv == MRPC_STATUS_RESOURCE_EXHAUSTED) {
    rx_fail(call, MRPC_STATUS_RESOURCE_EXHAUSTED,
            "received message larger than the limit");
  } else if (rv == MRPC_ERR_NOMEM) {
    rx_fail(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else if (rv > 1 && rv <= 16) {
    rx_fail(call, (mrpc_status_code)rv,
            "compressed message without a negotiated grpc-encoding");
  }
}

static void attempt_retry(mrpc_call *call);

void mrpc__call_on_remote_end(mrpc_call *call) {
  if (call->remote_closed) return;
  call->remote_closed = 1;
  if (atomic_load(&call->done)) return;
  if (call->is_server) {
    if (!call->method) return;
    if (mrpc__deframer_partial(&call->df)) {
      rx_fail(call, MRPC_STATUS_INTERNAL, "request ended inside a message");
      return;
    }
    int single = call->method->kind == MRPC_UNARY ||
                 call->method->kind == MRPC_SERVER_STREAMING;
    if (single && call->n_recv == 0) {
      rx_fail(call, MRPC_STATUS_UNIMPLEMENTED,
              "no request message for a unary method");
      return;
    }
    if (call->ops.on_half_close) call->ops.on_half_close(call, call->ctx);
    return;
  }
  /* Client: trailers (or trailers-only) arrived. */
  if (call->rx_error == MRPC_STATUS_OK && mrpc__deframer_partial(&call->df))
    rx_fail(call, MRPC_STATUS_INTERNAL, "response ended inside a message");
  if (!call->send_closed || call->sq_head) {
    /* Trailers before our END_STREAM: stop sending (PROTOCOL-HTTP2). */
    if (call->conn) mrpc__conn_reset(call->conn, call, H2_NO_ERROR);
  }
  if (atomic_load(&call->done)) return;
  /* Trailers-only with a status the retry policy names: the next attempt
   * starts once this stream is closed (it is unlinked then). */
  mrpc_status_code code = !call->have_grpc_status ? MRPC_STATUS_OK
                          : call->grpc_status >= 0 && call->grpc_status <= 16
                              ? (mrpc_status_code)call->grpc_status
                              : MRPC_STATUS_UNKNOWN;
  if (!call->have_grpc_status && call->http_status != 200) /* a proxy's */
    code = mrpc__status_from_http(call->http_status);
  if (!call->committed && call->rx_error == MRPC_STATUS_OK &&
      code != MRPC_STATUS_OK) {
    int64_t d = mrpc__channel_retry_delay(call, code, 0);
    if (d >= 0) {
      call->retry_pending = 1;
      call->retry_delay_ms = d;
      if (call->stream_closed) attempt_retry(call);
      return;
    }
  }
  if (call->ops.on_half_close) call->ops.on_half_close(call, call->ctx);
  client_finish_from_headers(call);
}

/* The trailers-only status named by the retry policy, its stream now
 * closed: the next attempt (a channel being deleted ends it CANCELLED). */
static void attempt_retry(mrpc_call *call) {
  call->retry_pending = 0;
  if (atomic_load(&call->done)) return;
  mrpc__channel_retry(call, call->retry_delay_ms);
}

void mrpc__call_on_stream_close(mrpc_call *call, uint32_t h2_error,
                                int conn_lost) {
  call->stream_closed = 1;
  if (atomic_load(&call->done)) return;
  if (call->is_server) {
    if (call->finishing && call->trailers_sent) {
      mrpc__call_complete(call, call->status.code, call->status.message);
    } else {
      mrpc__call_complete(call, MRPC_STATUS_CANCELLED,
                          conn_lost ? "connection lost"
                                    : "call cancelled by the client");
    }
    return;
  }
  if (call->retry_pending) {
    attempt_retry(call);
    return;
  }
  if (conn_lost) {
    /* Transparent retry when the request never left (A6). */
    if (!call->committed) {
      int64_t d = mrpc__channel_retry_delay(call, MRPC_STATUS_UNAVAILABLE,
                                            call->headers_sent ? 0 : 1);
      if (d >= 0) {
        mrpc__channel_retry(call, d);
        return;
      }
    }
    mrpc__call_complete(call, MRPC_STATUS_UNAVAILABLE,
                        call->got_headers ? "connection lost"
                                          : "connection lost before a "
                                            "response");
    return;
  }
  mrpc_status_code code = mrpc__status_from_rst(h2_error);
  if (!call->committed && !call->got_headers) {
    /* REFUSED_STREAM (also every stream above a GOAWAY's last id): the
     * server did not process it. */
    int64_t d = mrpc__channel_retry_delay(call, code,
                                          h2_error == H2_REFUSED_STREAM ? 2
                                                                        : 0);
    if (d >= 0) {
      mrpc__channel_retry(call, d);
      return;
    }
  }
  char msg[64];
  snprintf(msg, sizeof msg, "stream reset by peer (HTTP/2 error %u)",
           (unsigned)h2_error);
  if (code == MRPC_STATUS_CANCELLED && mrpc__now_ms() >= call->deadline_ms)
    mrpc__call_complete(call, MRPC_STATUS_DEADLINE_EXCEEDED,
                        "Deadline Exceeded");
  else
    mrpc__call_complete(call, code, msg);
}

/* ---- send ---- */

/* Keeps the connection's count of queued bytes in step with this call's. */
static void conn_account(mrpc_call *call, ssize_t delta) {
  call->in_conn += (size_t)delta;
  if (call->conn) mrpc__conn_queued_add(call->conn, delta);
}

/* A chunk the transport has taken: kept for a replay until the call
 * commits, unless that would pass the replay limit. */
static void keep_sent(mrpc_call *call, mrpc__chunk *c) {
  if (call->is_server || call->committed ||
      call->replay_bytes + c->len > call->replay_limit) {
    if (!call->is_server && !call->committed) commit(call);
    chunk_free(call, c);
    return;
  }
  c->next = NULL;
  if (call->sent_tail)
    call->sent_tail->next = c;
  else
    call->sent_head = c;
  call->sent_tail = c;
  call->replay_bytes += c->len;
}

size_t mrpc__call_pull(mrpc_call *call, uint8_t *buf, size_t len, int *eof) {
  size_t n = 0;
  while (n < len && call->sq_head) {
    mrpc__chunk *c = call->sq_head;
    size_t take = c->len - c->off;
    if (take > len - n) take = len - n;
    memcpy(buf + n, c->data + c->off, take);
    c->off += take;
    n += take;
    if (c->off == c->len) {
      call->sq_head = c->next;
      if (!call->sq_head) call->sq_tail = NULL;
      keep_sent(call, c);
    }
  }
  if (n) {
    atomic_fetch_sub(&call->queued, n);
    conn_account(call, -(ssize_t)n);
    notify_writable(call);
  }
  *eof = !call->sq_head &&
         (call->is_server ? call->finishing : call->send_closed);
  return n;
}

int mrpc__call_build_trailers(mrpc_call *call, mrpc__hdrbuf *hb) {
  hdrbuf_add_status(hb, &call->status);
  if (call->out_trailers) mrpc__hdrbuf_add_md(hb, call->out_trailers);
  return hb->oom ? MRPC_ERR_NOMEM : 0;
}

void mrpc__call_on_end_sent(mrpc_call *call) {
  if (call->is_server) {
    call->trailers_sent = 1;
    /* The client may still be sending: close the stream (gRPC does). */
    if (!call->remote_closed && call->conn)
      mrpc__conn_reset(call->conn, call, H2_NO_ERROR);
  }
}

size_t mrpc__call_ready(const mrpc_call *call, size_t len, int *eof) {
  size_t n = 0;
  const mrpc__chunk *c = call->sq_head;
  for (; c && n < len; c = c->next) n += c->len - c->off;
  *eof = n <= len && !c &&
         (call->is_server ? call->finishing : call->send_closed);
  return n < len ? n : len;
}

/* What every response begins with.  compression.md: always say what we
 * accept (answers an unsupported grpc-encoding too). */
#define HDR_STATIC(name, value)                                              \
  { name, sizeof("" name) - 1, value, sizeof("" value) - 1, MRPC__HDR_STATIC }
static const mrpc__hdr RESPONSE_HEAD[] = {
    HDR_STATIC(":status", "200"),
    HDR_STATIC("content-type", CT_GRPC),
    HDR_STATIC("grpc-accept-encoding", MRPC__ACCEPT_ENCODING),
};

static int submit_headers(mrpc_call *call, int trailers_only) {
  mrpc__hdrbuf hb;
  mrpc__hdrbuf_init(&hb, call->alloc);
  hdrbuf_append(&hb, RESPONSE_HEAD,
                sizeof RESPONSE_HEAD / sizeof RESPONSE_HEAD[0]);
  if (call->send_alg != MRPC_COMPRESS_NONE) {
    const char *e = mrpc__compression_name(call->send_alg);
    HB_ADD_STATIC(&hb, "grpc-encoding", e, strlen(e));
  }
  if (call->out_headers) mrpc__hdrbuf_add_md(&hb, call->out_headers);
  if (trailers_only) mrpc__call_build_trailers(call, &hb);
  int rv = hb.oom ? MRPC_ERR_NOMEM
                  : mrpc__conn_submit_response(call->conn, call, hb.h, hb.n,
                                               !trailers_only);
  mrpc__hdrbuf_free(&hb);
  call->headers_sent = 1;
  if (trailers_only) call->trailers_sent = rv == 0;
  return rv;
}

/* Server: puts the status on the wire (trailers-only if nothing was sent). */
static void server_send_status(mrpc_call *call) {
  /* End hooks see the status first and may change it or add trailers;
   * what they add must act now, not queue behind other threads' ops. */
  call->in_end_hooks = 1;
  mrpc__ic_end(call, &call->status);
  call->in_end_hooks = 0;
  call->finishing = 1;
  if (!call->conn) return;
  if (!call->headers_sent) {
    if (submit_headers(call, 1) != 0) mrpc__conn_reset(call->conn, call, 2);
  } else {
    mrpc__conn_resume(call->conn, call);
  }
}

/* Drops queued messages, except one nghttp2 has begun to send: cutting it
 * would leave the peer a truncated message instead of our status. */
static void drop_queue(mrpc_call *call) {
  mrpc__chunk *keep = call->sq_head && call->sq_head->off ? call->sq_head : NULL;
  mrpc__chunk *c = keep ? keep->next : call->sq_head;
  size_t n = 0;
  while (c) {
    mrpc__chunk *next = c->next;
    n += c->len - c->off;
    chunk_free(call, c);
    c = next;
  }
  if (keep) keep->next = NULL;
  call->sq_head = call->sq_tail = keep;
  atomic_fetch_sub(&call->queued, n);
  conn_account(call, -(ssize_t)n);
}

void mrpc__call_fail(mrpc_call *call, mrpc_status_code code, const char *msg) {
  if (!call->is_server) {
    mrpc__call_complete(call, code, msg);
    return;
  }
  if (call->finishing) return;
  drop_queue(call);
  set_status(call, code, msg);
  server_send_status(call);
  /* With the status as the end hooks left it. */
  if (call->method)
    mrpc__call_complete(call, call->status.code, call->status.message);
}

static void deadline_fired(mrpc__timer *t) {
  mrpc_call *call =
      (mrpc_call *)((char *)t - offsetof(mrpc_call, deadline_timer));
  if (atomic_load(&call->done)) return;
  if (call->is_server) {
    atomic_store(&call->cancelled, 1); /* the handler must see it so */
    mrpc__call_fail(call, MRPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded");
  } else {
    if (call->conn) mrpc__conn_reset(call->conn, call, H2_CANCEL);
    mrpc__call_complete(call, MRPC_STATUS_DEADLINE_EXCEEDED,
                        "Deadline Exceeded");
  }
}

void mrpc__call_arm_deadline(mrpc_call *call) {
  if (call->deadline_ms != INT64_MAX)
    mrpc__timer_start(call->loop, &call->deadline_timer, call->deadline_ms,
                      deadline_fired);
}

int mrpc__call_start_client(mrpc_call *call, mrpc__conn *conn,
                            const char *authority, const char *user_agent,
                            const mrpc_metadata *md) {
  mrpc__hdrbuf hb;
  char tbuf[16];
  mrpc__hdrbuf_init(&hb, call->alloc);
  HB_ADD_STATIC(&hb, ":method", "POST", 4);
  HB_ADD_STATIC(&hb, ":scheme", "http", 4);
  HB_ADD(&hb, ":path", call->method->path, strlen(call->method->path));
  HB_ADD(&hb, ":authority", authority, strlen(authority));
  if (call->deadline_ms != INT64_MAX) {
    int64_t left = call->deadline_ms - mrpc__now_ms();
    if (left < 1) left = 1;
    size_t n = mrpc__timeout_format(left * 1000000, tbuf);
    HB_ADD(&hb, "grpc-timeout", tbuf, n);
  }
  HB_ADD_STATIC(&hb, "te", "trailers", 8);
  HB_ADD_STATIC(&hb, "content-type", CT_GRPC, sizeof CT_GRPC - 1);
  if (call->send_alg != MRPC_COMPRESS_NONE) {
    const char *e = mrpc__compression_name(call->send_alg);
    HB_ADD_STATIC(&hb, "grpc-encoding", e, strlen(e));
  }
  HB_ADD_STATIC(&hb, "grpc-accept-encoding", MRPC__ACCEPT_ENCODING,
                sizeof MRPC__ACCEPT_ENCODING - 1);
  HB_ADD(&hb, "user-agent", user_agent, strlen(user_agent));
  char abuf[12];
  if (call->attempts > 1) /* A6 */
    HB_ADD(&hb, "grpc-previous-rpc-attempts", abuf,
           (size_t)snprintf(abuf, sizeof abuf, "%d", call->attempts - 1));
  if (md) mrpc__hdrbuf_add_md(&hb, md);
  int rv = hb.oom ? MRPC_ERR_NOMEM
                  : mrpc__conn_submit_request(conn, call, hb.h, hb.n);
  mrpc__hdrbuf_free(&hb);
  if (rv == 0) {
    set_attempt_peer(call, mrpc__conn_peer(conn));
    size_t n = 0;
    for (mrpc__chunk *c = call->sq_head; c; c = c->next) n += c->len - c->off;
    conn_account(call, (ssize_t)n);
  }
  return rv;
}

void mrpc__call_rewind(mrpc_call *call) {
  const mrpc_allocator *a = call->alloc;
  /* What was sent goes first again, from its start. */
  size_t back = call->replay_bytes;
  if (call->sq_head) {
    back += call->sq_head->off;
    call->sq_head->off = 0;
  }
  if (call->sent_head) {
    call->sent_tail->next = call->sq_head;
    if (!call->sq_head) call->sq_tail = call->sent_tail;
    call->sq_head = call->sent_head;
    for (mrpc__chunk *c = call->sent_head; c != call->sent_tail->next;
         c = c->next)
      c->off = 0;
  }
  call->sent_head = call->sent_tail = NULL;
  call->replay_bytes = 0;
  atomic_fetch_add(&call->queued, back);
  /* Nothing received counts: no response headers came. */
  mrpc__deframer_free(&call->df);
  mrpc__deframer_init(&call->df, call->df.max_len, a);
  mrpc_metadata_clear(call->md);
  mrpc_metadata_del(call->trailers);
  call->trailers = NULL;
  mrpc__free(a, call->grpc_message);
  call->grpc_message = NULL;
  mrpc__free(a, call->details);
  call->details = NULL;
  call->details_len = 0;
  call->stream_id = 0;
  call->hdr_bytes = 0;
  call->hdr_overflow = 0;
  call->rx_hold = 0;
  call->rx_unconsumed = 0;
  call->rx_error = MRPC_STATUS_OK;
  call->http_status = 0;
  call->have_grpc_status = 0;
  call->grpc_status = 0;
  call->content_type_ok = 0;
  call->bad_encoding = 0;
  call->recv_alg = MRPC_COMPRESS_NONE;
  call->peer_accept = 1u << MRPC_COMPRESS_NONE;
  call->got_headers = 0;
  call->pushback_ms = -1;
  call->remote_closed = 0;
  call->stream_closed = 0;
  atomic_store(&call->headers_sent, 0);
  /* tls_peer stays: other threads may hold it.  Retries go to the same
   * channel's servers, verified against the same name and CA. */
}

/* ---- operations from any thread ---- */

/* Drops a packed message that will not be sent. */
static void drop_chunk(mrpc_call *call, mrpc__chunk *c) {
  atomic_fetch_sub(&call->queued, c->len);
  chunk_free(call, c);
}

/* Loop thread: queues a packed message on the call's stream. */
static void run_send(mrpc_call *call, mrpc__chunk *c, int done) {
  if (done || call->finishing || call->send_closed) {
    drop_chunk(call, c);
    return;
  }
  if (call->sq_tail)
    call->sq_tail->next = c;
  else
    call->sq_head = c;
  call->sq_tail = c;
  if (!call->conn) return; /* client call not started yet: keeps queue */
  conn_account(call, (ssize_t)c->len);
  if (call->is_server && !call->headers_sent) {
    if (submit_headers(call, 0) != 0) {
      mrpc__call_fail(call, MRPC_STATUS_INTERNAL, "could not send headers");
      return;
    }
  }
  mrpc__conn_resume(call->conn, call);
}

static void op_run(call_op *op) {
  mrpc_call *call = op->call;
  int done = atomic_load(&call->done);
  switch (op->kind) {
  case OP_SEND:
    run_send(call, op->chunk, done);
    break;
  case OP_CLOSE_SEND:
    if (done || call->send_closed) break;
    call->send_closed = 1;
    if (call->conn) mrpc__conn_resume(call->conn, call);
    break;
  case OP_HEADERS:
  case OP_TRAILERS: {
    if (done || (op->kind == OP_HEADERS && call->headers_sent) ||
        call->finishing)
      break;
    mrpc_metadata **dst =
        op->kind == OP_HEADERS ? &call->out_headers : &call->out_trailers;
    if (!*dst) {
      *dst = op->md;
      op->md = NULL;
    } else {
      mrpc__metadata_append(*dst, op->md);
    }
    break;
  }
  case OP_FINISH:
    if (op->chunk) { /* the response held back for the finish */
      run_send(call, op->chunk, done);
      op->chunk = NULL;
      done = atomic_load(&call->done);
    }
    if (done || call->finishing) break;
    if (!op->msg && !op->details) /* the usual OK: no allocation */
      mrpc__status_set_empty(&call->status, op->code);
    else
      mrpc__status_set(&call->status, op->code, op->msg, op->details,
                       op->details_len);
    server_send_status(call);
    break;
  case OP_CANCEL:
    if (done) break;
    if (call->conn && !call->stream_closed)
      mrpc__conn_reset(call->conn, call, H2_CANCEL);
    drop_queue(call);
    mrpc__call_complete(call, MRPC_STATUS_CANCELLED, "Cancelled");
    break;
  case OP_RX_RELEASE:
    call->rx_hold = 0;
    if (call->conn && call->rx_unconsumed)
      mrpc__conn_consume(call->conn, call, call->rx_unconsumed);
    call->rx_unconsumed = 0;
    break;
  case OP_FAIL: /* an interceptor refused a send */
    if (done) break;
    if (!call->is_server && call->conn && !call->stream_closed)
      mrpc__conn_reset(call->conn, call, H2_CANCEL);
    mrpc__call_fail(call, op->code, op->msg);
    break;
  case OP_WRITABLE:
    if (!done && call->ops.on_writable) call->ops.on_writable(call, call->ctx);
    break;
  }
}

static void op_free(call_op *op) {
  mrpc_call *call = op->call;
  mrpc_metadata_del(op->md);
  free(op->msg);
  free(op->details);
  if (op != &call->fin_op) mrpc__free(call->alloc, op);
  mrpc_call_unref(call);
}

/* A send from another thread, in its chunk (op_submit). */
static void send_task(mrpc__task *t, int cancelled) {
  mrpc__chunk *c = (mrpc__chunk *)((char *)t - offsetof(mrpc__chunk, task));
  mrpc_call *call = c->call;
  atomic_fetch_sub(&call->pending_ops, 1);
  if (!cancelled) {
    call_op op = {.call = call, .kind = OP_SEND, .chunk = c};
    op_run(&op);
  } else {
    chunk_free(call, c);
  }
  mrpc_call_unref(call);
}

static void op_task(mrpc__task *t, int cancelled) {
  call_op *op = (call_op *)t;
  /* Running now: what it triggers on this thread need not wait for it. */
  if (op->kind != OP_WRITABLE) atomic_fetch_sub(&op->call->pending_ops, 1);
  if (!cancelled) {
    op_run(op);
  } else if (op->chunk) {
    chunk_free(op->call, op->chunk);
  }
  op_free(op);
}

/* Runs op now on the loop thread, or queues a heap copy to it.  On the loop
 * thread it still queues while operations from other threads wait: a send
 * made on a worker before a finish made on the I/O thread must go first. */
static int op_submit(call_op *op) {
  if (mrpc__loop_on_thread(op->call->loop) &&
      (atomic_load(&op->call->pending_ops) == 0 || op->call->in_end_hooks)) {
    op_run(op);
    mrpc_metadata_del(op->md);
    free(op->msg);
    free(op->details);
    return 0;
  }
  call_op *h = NULL;
  if (op->kind == OP_SEND) {
    mrpc__chunk *c = op->chunk;
    c->call = mrpc_call_ref(op->call);
    atomic_fetch_add(&op->call->pending_ops, 1);
    c->task.fn = send_task;
    mrpc__loop_post(op->call->loop, &c->task);
    return 0;
  }
  if (op->kind == OP_FINISH && !atomic_exchange(&op->call->fin_posted, 1))
    h = &op->call->fin_op;
  else
    h = mrpc__malloc(op->call->alloc, sizeof *h);
  if (!h) {
    if (op->chunk) chunk_free(op->call, op->chunk);
    mrpc_metadata_del(op->md);
    free(op->msg);
    free(op->details);
    return MRPC_ERR_NOMEM;
  }
  *h = *op;
  mrpc_call_ref(h->call);
  atomic_fetch_add(&h->call->pending_ops, 1);
  h->task.fn = op_task;
  mrpc__loop_post(h->call->loop, &h->task);
  return 0;
}

static void notify_writable(mrpc_call *call) {
  if (atomic_load(&call->queued) >= call->send_limit) return;
  if (!atomic_exchange(&call->want_writable, 0)) return;
  /* Never call the user from inside nghttp2: post to after this round. */
  call_op op = {.call = call, .kind = OP_WRITABLE};
  call_op *h = mrpc__malloc(call->alloc, sizeof *h);
  if (!h) return;
  *h = op;
  mrpc_call_ref(call);
  h->task.fn = op_task;
  mrpc__loop_post(call->loop, &h->task);
}

int mrpc_call_set_ops(mrpc_call *call, const mrpc_call_ops *ops, void *ctx) {
  if (!call || !ops) return MRPC_ERR_INVAL;
  call->ops = *ops;
  call->ctx = ctx;
  return 0;
}

/* Packs msg (n bytes) and compresses it straight into a chunk: the chunk
 * header and frame prefix are left free at the front of zlib's output. */
static int pack_compressed(mrpc_call *call, const ProtobufCMessage *msg,
                           size_t n, mrpc__chunk **out) {
  uint8_t *plain = mrpc__malloc(call->alloc, n ? n : 1);
  if (!plain) return MRPC_ERR_NOMEM;
  protobuf_c_message_pack(msg, plain);
  const size_t head = offsetof(mrpc__chunk, data) + MRPC__FRAME_HDR_LEN;
  uint8_t *buf;
  size_t blen;
  int rv = mrpc__compress(call->alloc, (mrpc_compression)call->send_alg,
                          plain, n, head, &buf, &blen);
  mrpc__free(call->alloc, plain);
  if (rv) return rv;
  mrpc__chunk *c = (mrpc__chunk *)buf;
  size_t z = blen - head;
  if (z > UINT32_MAX) {
    mrpc__free(call->alloc, buf);
    return MRPC_ERR_TOO_LARGE;
  }
  c->len = MRPC__FRAME_HDR_LEN + z;
  mrpc__frame_header(c->data, 1, (uint32_t)z);
  *out = c;
  return 0;
}

/* Checks msg against the call's state and packs it into a framed chunk
 * (counted as queued).  Returns 0 and *out, or an MRPC_ERR_*. */
static int send_pack(mrpc_call *call, const ProtobufCMessage *msg,
                     mrpc__chunk **out) {
  const mrpc_method *m = call->method;
  const ProtobufCMessageDescriptor *d = call->is_server ? m->response
                                                        : m->request;
  if (msg->descriptor != d) {
    if (call->is_server) atomic_fetch_or(&call->faults, MRPC_FAULT_SERIALIZE);
    return MRPC_ERR_SERIALIZE;
  }
  if (atomic_load(&call->done)) return MRPC_ERR_CLOSED;
  if (call->is_server) {
    if (call->finishing) return MRPC_ERR_STATE;
    if ((m->kind == MRPC_UNARY || m->kind == MRPC_CLIENT_STREAMING) &&
        call->n_sent >= 1)
      return MRPC_ERR_STATE;
  } else if (call->send_closed) {
    return MRPC_ERR_STATE;
  }
  if (atomic_load(&call->queued) >= call->send_limit) {
    /* Set the flag, then look again: the loop may have drained meanwhile. */
    atomic_store(&call->want_writable, 1);
    if (atomic_load(&call->queued) >= call->send_limit) return MRPC_ERR_AGAIN;
    atomic_store(&call->want_writable, 0);
  }
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > call->max_send || n > UINT32_MAX) return MRPC_ERR_TOO_LARGE;
  mrpc__chunk *c;
  if (call->send_alg != MRPC_COMPRESS_NONE && atomic_load(&call->msg_compress)) {
    int rv = pack_compressed(call, msg, n, &c);
    if (rv) return rv;
  } else {
    size_t size = sizeof *c + MRPC__FRAME_HDR_LEN + n;
    if (size <= sizeof call->tx_inline &&
        !atomic_load_explicit(&call->tx_inline_used, memory_order_relaxed) &&
        !atomic_exchange(&call->tx_inline_used, 1))
      c = (mrpc__chunk *)call->tx_inline;
    else if (!(c = mrpc__malloc(call->alloc, size)))
      return MRPC_ERR_NOMEM;
    c->len = MRPC__FRAME_HDR_LEN + n;
    mrpc__frame_header(c->data, 0, (uint32_t)n);
    protobuf_c_message_pack(msg, c->data + MRPC__FRAME_HDR_LEN);
  }
  c->next = NULL;
  c->off = 0;
  call->n_sent++;
  atomic_fetch_add(&call->queued, c->len);
  atomic_fetch_add(&call->bytes_out, c->len);
  *out = c;
  return 0;
}

/* mrpc_call_send; with hold, the packed message waits in call->held for
 * the finish (or the next send) instead of travelling alone. */
static int call_send(mrpc_call *call, const ProtobufCMessage *msg, int hold) {
  if (!call || !msg) return MRPC_ERR_INVAL;
  /* A call refused by a start or send hook is over for the application. */
  if (call->rejected || atomic_load(&call->send_refused)) return MRPC_ERR_CLOSED;
  mrpc__chunk *c = NULL;
  int rv;
  if (!call->n_ics) {
    rv = send_pack(call, msg, &c);
  } else {
    /* The send hooks run, and a replacement message is packed, under ic_mu:
     * the end hooks (which free call_data) never overlap them. */
    char *why = NULL;
    mrpc_status_code rc = MRPC_STATUS_OK;
    pthread_mutex_lock(&call->ic_mu);
    if (!call->ic_ended && !atomic_load(&call->done))
      rc = mrpc__ic_send(call, &msg, &why);
    if (rc != MRPC_STATUS_OK) {
      atomic_store(&call->send_refused, 1);
      rv = MRPC_ERR_CLOSED;
    } else {
      rv = msg ? send_pack(call, msg, &c) : MRPC_ERR_INVAL;
    }
    pthread_mutex_unlock(&call->ic_mu);
    if (rc != MRPC_STATUS_OK) {
      /* Always queued, even on the I/O thread: on_done must not run inside
       * mrpc_call_send.  send_refused keeps finish / close_send from
       * overtaking it. */
      call_op *h = mrpc__malloc(call->alloc, sizeof *h);
      char *m = why ? why : strdup("message refused by an interceptor");
      if (!h) {
        free(m);
        mrpc_call_cancel(call);
        return rv;
      }
      *h = (call_op){.call = mrpc_call_ref(call), .kind = OP_FAIL, .code = rc,
                     .msg = m};
      h->task.fn = op_task;
      mrpc__loop_post(call->loop, &h->task);
      return rv;
    }
  }
  if (rv) return rv;
  if (hold) {
    mrpc__chunk *prev = atomic_exchange(&call->held, c);
    if (!prev) return 0;
    c = prev;
  }
  call_op op = {.call = call, .kind = OP_SEND, .chunk = c};
  return op_submit(&op);
}

int mrpc_call_send(mrpc_call *call, const ProtobufCMessage *msg) {
  return call_send(call, msg, 0);
}

int mrpc__call_send_held(mrpc_call *call, const ProtobufCMessage *msg) {
  return call_send(call, msg, 1);
}

int mrpc_call_close_send(mrpc_call *call) {
  if (!call) return MRPC_ERR_INVAL;
  if (call->is_server) return MRPC_ERR_STATE;
  if (atomic_load(&call->done) || call->rejected ||
      atomic_load(&call->send_refused))
    return MRPC_ERR_CLOSED;
  if (call->send_closed) return MRPC_ERR_STATE;
  call_op op = {.call = call, .kind = OP_CLOSE_SEND};
  return op_submit(&op);
}

static int add_md(mrpc_call *call, enum op_kind kind, const char *key,
                  const void *value, size_t len) {
  if (!call || !key) return MRPC_ERR_INVAL;
  if (!call->is_server) {
    /* Request metadata, while the start hooks run on the starting thread
     * (the call is not shared with the I/O thread yet). */
    if (kind != OP_HEADERS || call->client_started) return MRPC_ERR_STATE;
    if (!call->out_headers && !(call->out_headers = mrpc_metadata_new(call->alloc)))
      return MRPC_ERR_NOMEM;
    return mrpc_metadata_add(call->out_headers, key, value, len);
  }
  if (atomic_load(&call->done)) return MRPC_ERR_CLOSED;
  if ((kind == OP_HEADERS && call->headers_sent) || call->finishing)
    return MRPC_ERR_STATE;
  mrpc_metadata *md = mrpc_metadata_new(call->alloc);
  if (!md) return MRPC_ERR_NOMEM;
  int rv = mrpc_metadata_add(md, key, value, len);
  if (rv) {
    mrpc_metadata_del(md);
    return rv;
  }
  call_op op = {.call = call, .kind = kind, .md = md};
  return op_submit(&op);
}

int mrpc_call_add_header(mrpc_call *call, const char *key, const void *value,
                         size_t len) {
  return add_md(call, OP_HEADERS, key, value, len);
}

int mrpc_call_add_trailer(mrpc_call *call, const char *key, const void *value,
                          size_t len) {
  return add_md(call, OP_TRAILERS, key, value, len);
}

static int call_finish(mrpc_call *call, mrpc_status_code code,
                       const char *message, const void *details,
                       size_t details_len);

int mrpc_call_finish(mrpc_call *call, mrpc_status_code code,
                     const char *message, const void *details,
                     size_t details_len) {
  if (!call) return MRPC_ERR_INVAL;
  int rv = call_finish(call, code, message, details, details_len);
  mrpc__chunk *held = atomic_exchange(&call->held, NULL);
  if (held) drop_chunk(call, held); /* not taken by a finish op */
  return rv;
}

/* mrpc_call_finish; a response held back by mrpc__call_send_held goes in
 * the same operation. */
static int call_finish(mrpc_call *call, mrpc_status_code code,
                       const char *message, const void *details,
                       size_t details_len) {
  if ((int)code < 0 || (int)code > 16) {
    /* A handler bug the call would otherwise never recover from: end it as
     * a peer would read such a code (UNKNOWN) and say so in the faults. */
    if (call->is_server && !atomic_load(&call->done) && !call->finishing &&
        !atomic_load(&call->send_refused)) {
      char m[64];
      snprintf(m, sizeof m, "handler finished with invalid status code %d",
               (int)code);
      atomic_fetch_or(&call->faults, MRPC_FAULT_BAD_STATUS);
      call_op op = {.call = call, .kind = OP_FINISH,
                    .chunk = atomic_exchange(&call->held, NULL),
                    .code = MRPC_STATUS_UNKNOWN, .msg = strdup(m)};
      op_submit(&op);
    }
    return MRPC_ERR_INVAL;
  }
  if (!call->is_server) return MRPC_ERR_STATE;
  if (atomic_load(&call->done) || atomic_load(&call->send_refused))
    return MRPC_ERR_CLOSED;
  if (call->finishing) return MRPC_ERR_STATE;
  call_op op = {.call = call, .kind = OP_FINISH, .code = code};
  /* "" and NULL make the same status: no copy of "". */
  if (message && message[0] && !(op.msg = strdup(message)))
    return MRPC_ERR_NOMEM;
  if (details && details_len) {
    op.details = malloc(details_len);
    if (!op.details) {
      free(op.msg);
      return MRPC_ERR_NOMEM;
    }
    memcpy(op.details, details, details_len);
    op.details_len = details_len;
  }
  op.chunk = atomic_exchange(&call->held, NULL);
  return op_submit(&op);
}

int mrpc_call_cancel(mrpc_call *call) {
  if (!call) return MRPC_ERR_INVAL;
  if (atomic_load(&call->done)) return MRPC_ERR_CLOSED;
  atomic_store(&call->cancelled, 1);
  call_op op = {.call = call, .kind = OP_CANCEL};
  return op_submit(&op);
}

int mrpc__call_send_idle(mrpc_call *call) {
  if (atomic_load(&call->queued) == 0) return 1;
  /* Flag first, then look again, as mrpc_call_send does: a drain between
   * the two is not lost. */
  atomic_store(&call->want_writable, 1);
  return atomic_load(&call->queued) == 0;
}

void mrpc__call_rx_release(mrpc_call *call) {
  call_op op = {.call = call, .kind = OP_RX_RELEASE};
  op_submit(&op);
}

const mrpc_method *mrpc_call_method(const mrpc_call *call) {
  return call->method;
}

const mrpc_metadata *mrpc_call_metadata(const mrpc_call *call) {
  return call->md;
}

const mrpc_metadata *mrpc_call_trailers(const mrpc_call *call) {
  return call->is_server ? NULL : call->trailers;
}

const char *mrpc_call_peer(const mrpc_call *call) {
  if (call->is_server) return call->peer; /* set before the call was shared */
  const char *p = atomic_load_explicit(&((mrpc_call *)call)->peer_at,
                                       memory_order_acquire);
  return p ? p : "";
}

int64_t mrpc_call_deadline_ms(const mrpc_call *call) {
  return call->deadline_ms;
}

int mrpc_call_is_cancelled(const mrpc_call *call) {
  return atomic_load(&((mrpc_call *)call)->cancelled);
}

void mrpc_call_bytes(const mrpc_call *call, uint64_t *in, uint64_t *out) {
  mrpc_call *c = (mrpc_call *)call;
  if (in) *in = atomic_load(&c->bytes_in);
  if (out) *out = atomic_load(&c->bytes_out);
}

int mrpc_call_set_compression(mrpc_call *call, mrpc_compression alg) {
  if (!call || (unsigned)alg > MRPC_COMPRESS_GZIP) return MRPC_ERR_INVAL;
  if (!call->is_server || call->headers_sent) return MRPC_ERR_STATE;
  /* Only what the client said it accepts. */
  call->send_alg = (call->peer_accept & (1u << alg)) ? alg : MRPC_COMPRESS_NONE;
  return 0;
}

int mrpc_call_set_message_compression(mrpc_call *call, int enabled) {
  if (!call) return MRPC_ERR_INVAL;
  atomic_store(&call->msg_compress, enabled != 0);
  return 0;
}

int mrpc_call_message_compressed(const mrpc_call *call) {
  return call ? call->rx_compressed : 0;
}

int mrpc_call_is_server(const mrpc_call *call) {
  return call && call->is_server;
}

const mrpc_metadata *mrpc_call_outgoing_metadata(const mrpc_call *call) {
  return call ? call->out_headers : NULL;
}

unsigned mrpc_call_faults(const mrpc_call *call) {
  return call ? atomic_load(&((mrpc_call *)call)->faults) : 0;
}
