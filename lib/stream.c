/* Blocking streams: worker threads wait on a condition variable while the
 * I/O thread drives the call through the event API. */
#include "stream.h"

#include "alloc.h"
#include "call.h"
#include "interceptor.h"
#include "status.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Receive window hold: past these the I/O thread stops reopening the
 * HTTP/2 window until the reader catches up (flow control, not memory). */
#define INBOX_HOLD_BYTES (256 * 1024)
#define INBOX_HOLD_COUNT 64

typedef struct inmsg {
  struct inmsg *next;
  /* NULL: a single request still in bytes, in call->rx_scratch, until
   * serve_job unpacks it (unpack_request) */
  ProtobufCMessage *msg;
  size_t size;
  int compressed;
  int in_scratch; /* msg was unpacked into the stream's scratch */
} inmsg;

struct mrpc_stream {
  const mrpc_allocator *alloc;
  /* Server streams without a user allocator come from the loop's block
   * cache (made on the loop thread, mostly freed there by on_done). */
  mrpc__loop *blk_loop;
  mrpc_call *call; /* a reference of the stream's own */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  inmsg *head, *tail;
  /* One node without allocation: a unary request, or the usual one at a
   * time of a stream read as fast as it comes. */
  inmsg spare;
  int spare_used;
  size_t inbox_bytes, inbox_count;
  int held;
  int done, writable, discard;
  /* Set without mu by on_half_close: it locks only when WAIT_CV has a
   * waiter (seq_cst on both sides: a waiter counts itself before it looks
   * at half_closed, the I/O thread sets it before it looks at waiting). */
  atomic_int half_closed;
  atomic_int waiting; /* handler-side threads in WAIT_CV */
  /* Handler side + call side (server); dropped after the side's last use
   * of mu, so the last one frees without a lock round. */
  atomic_int refs;
  mrpc_status final;
  /* server */
  int is_server;
  mrpc_blocking_handler handler;
  void *user;
  mrpc__job job;
  /* Unary and server streaming: the job waits here until the request (or
   * the end of the call) is in, so the worker never sleeps in recv. */
  mrpc__pool *start_pool;
  int status_set;
  int bad_code; /* mrpc_stream_set_status got a code outside 0..16 */
  int parse_failed; /* the request did not parse: the call is finished */
  int single; /* server, unary or server streaming: one request at most */
  /* What mrpc_stream_recv_borrowed lent, freed by the next recv (a single
   * stream's: when the handler returns); a single small request is
   * unpacked into scratch. */
  ProtobufCMessage *lent;
  _Alignas(16) uint8_t scratch[256];
  mrpc_status reply;
  int last_compressed; /* of the message recv returned last */
};

/* Under mu (or with the stream no longer shared). */
static void inmsg_free(mrpc_stream *s, inmsg *m) {
  if (m == &s->spare)
    s->spare_used = 0;
  else
    mrpc__free(s->alloc, m);
}

/* Frees a message of the stream: made with libc, or in part or whole in
 * its scratch (the scratch allocator frees the rest with libc). */
static void msg_free(mrpc_stream *s, ProtobufCMessage *msg) {
  mrpc__scratch sc = {s->scratch, sizeof s->scratch, 0};
  ProtobufCAllocator pa = mrpc__scratch_allocator(&sc);
  protobuf_c_message_free_unpacked(msg, &pa);
}

/* Frees what mrpc_stream_recv_borrowed lent, if anything (the reader's
 * thread, or the stream's last holder). */
static void lent_free(mrpc_stream *s) {
  if (s->lent) msg_free(s, s->lent);
  s->lent = NULL;
}

static void inbox_clear(mrpc_stream *s) {
  while (s->head) {
    inmsg *m = s->head;
    s->head = m->next;
    if (m->msg) msg_free(s, m->msg);
    inmsg_free(s, m);
  }
  s->tail = NULL;
  s->inbox_bytes = s->inbox_count = 0;
}

static void stream_free(mrpc_stream *s) {
  lent_free(s);
  inbox_clear(s);
  if (!s->is_server) /* each side uses one of the two */
    mrpc_status_free(&s->final);
  else if (s->status_set)
    mrpc_status_free(&s->reply);
  mrpc_call_unref(s->call);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  if (s->blk_loop)
    mrpc__blk_free(s->blk_loop, s);
  else
    mrpc__free(s->alloc, s);
}

/* Drops one side's hold on the stream; frees it on the last. */
static void stream_release(mrpc_stream *s) {
  if (atomic_fetch_sub(&s->refs, 1) == 1) stream_free(s);
}

/* ---- I/O thread side ---- */

/* Whether a reader or writer waits on cv (WAIT_CV).  The I/O thread reads
 * it before unlocking and then wakes (after mu is released, so that the
 * waiter does not wake into a held lock) only if one does. */
static int waiting(mrpc_stream *s) { return atomic_load(&s->waiting) != 0; }

/* Wakes the reader or writer.  The call's own hold on s lasts until
 * on_done, which alone signals under the lock (the other side may free s
 * after). */
static void wake(mrpc_stream *s) { pthread_cond_broadcast(&s->cv); }

/* Releases mu, then wakes a waiter if there was one. */
static void unlock_wake(mrpc_stream *s) {
  int w = waiting(s);
  pthread_mutex_unlock(&s->mu);
  if (w) wake(s);
}

/* Under mu, on the handler's side: waits until ready(s). */
#define WAIT_CV(s, ready)                                                    \
  do {                                                                       \
    atomic_fetch_add(&(s)->waiting, 1);                                      \
    while (!(ready)) pthread_cond_wait(&(s)->cv, &(s)->mu);                  \
    atomic_fetch_sub(&(s)->waiting, 1);                                      \
  } while (0)

/* The pool to start a waiting handler on, once (I/O thread only). */
static mrpc__pool *take_start(mrpc_stream *s) {
  mrpc__pool *p = s->start_pool;
  s->start_pool = NULL;
  return p;
}

static void serve_job(mrpc__job *job);

/* Queues a handler; on an I/O thread the worker is woken once for all the
 * handlers of the pass, before the loop polls again (the loop's prepare
 * hook kicks the pool). */
static int submit_handler(mrpc_stream *s, mrpc__pool *pool) {
  return mrpc__loop_prepared() ? mrpc__pool_submit_later(pool, &s->job)
                               : mrpc__pool_submit(pool, &s->job);
}

/* Queues the handler of a server stream that waited for its request. */
static void start_handler(mrpc_stream *s, mrpc__pool *pool) {
  if (submit_handler(s, pool) == 0) return;
  mrpc_call *call = s->call;
  mrpc_call_ref(call);
  stream_release(s); /* the handler's hold: it will not run */
  mrpc_call_finish(call, MRPC_STATUS_UNAVAILABLE, "server is shutting down",
                   NULL, 0);
  mrpc_call_unref(call);
}

static void on_message(mrpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  mrpc_stream *s = ctx;
  /* take_messages: ours; NULL with defer_unpack: bytes in rx_scratch */
  ProtobufCMessage *m = (ProtobufCMessage *)msg;
  /* Until its handler is queued, a server stream is this thread's alone. */
  int shared = !s->start_pool;
  if (shared) pthread_mutex_lock(&s->mu);
  inmsg *n = s->discard     ? NULL
             : !s->spare_used ? (s->spare_used = 1, &s->spare)
                              : mrpc__malloc(s->alloc, sizeof *n);
  if (!n) {
    if (shared) pthread_mutex_unlock(&s->mu);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    if (!s->discard) mrpc_call_cancel(call);
    return;
  }
  n->next = NULL;
  n->msg = m;
  n->size = call->rx_len;
  n->compressed = call->rx_compressed;
  n->in_scratch = 0;
  if (s->tail)
    s->tail->next = n;
  else
    s->head = n;
  s->tail = n;
  s->inbox_bytes += n->size;
  s->inbox_count++;
  if (s->inbox_bytes > INBOX_HOLD_BYTES || s->inbox_count > INBOX_HOLD_COUNT) {
    s->held = 1;
    call->rx_hold = 1;
  }
  if (!shared) {
    start_handler(s, take_start(s));
    return;
  }
  unlock_wake(s);
}

static void on_half_close(mrpc_call *call, void *ctx) {
  (void)call;
  mrpc_stream *s = ctx;
  atomic_store(&s->half_closed, 1);
  if (waiting(s)) {
    /* The waiter holds mu until it sleeps: past this lock, it sleeps (and
     * the broadcast reaches it) or it saw half_closed. */
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
    wake(s);
  }
  mrpc__pool *start = take_start(s);
  if (start) start_handler(s, start);
}

static void on_writable(mrpc_call *call, void *ctx) {
  (void)call;
  mrpc_stream *s = ctx;
  pthread_mutex_lock(&s->mu);
  s->writable = 1;
  unlock_wake(s);
}

static void on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  mrpc_stream *s = ctx;
  if (s->is_server && atomic_load(&s->refs) == 1) {
    /* The handler has returned (and let go of mu): nobody to tell. */
    stream_free(s);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->done = 1;
  if (!s->is_server) /* a server's handler never reads it */
    mrpc__status_set(&s->final, st->code, st->message, st->details,
                     st->details_len);
  if (waiting(s)) pthread_cond_broadcast(&s->cv);
  int server = s->is_server;
  /* Ended before its request: the handler still runs (recv says so). */
  mrpc__pool *start = take_start(s);
  pthread_mutex_unlock(&s->mu);
  /* A client's finishing thread frees s once it sees done: maybe now. */
  if (!server) return;
  if (start) start_handler(s, start); /* its reference keeps s */
  stream_release(s);
}

static const mrpc_call_ops stream_ops = {on_message, on_half_close,
                                         on_writable, on_done};

/* ---- worker side ---- */

/* Pops the inbox's first message into *m.  Returns 1 if the window held
 * for the reader may reopen. */
static int inbox_pop(mrpc_stream *s, inmsg *out) {
  inmsg *m = s->head;
  s->head = m->next;
  if (!s->head) s->tail = NULL;
  s->inbox_bytes -= m->size;
  s->inbox_count--;
  int release = s->held && s->inbox_bytes <= INBOX_HOLD_BYTES / 2 &&
                s->inbox_count <= INBOX_HOLD_COUNT / 2;
  if (release) s->held = 0;
  *out = *m;
  s->last_compressed = m->compressed;
  inmsg_free(s, m);
  return release;
}

static int recv_next(mrpc_stream *s, int borrow, ProtobufCMessage **out) {
  inmsg m;
  int release;
  if (!s->single) lent_free(s);
  if (s->single && s->head) {
    /* Nothing reaches the inbox of a single request stream once its
     * handler runs (the call refuses a second message): no lock. */
    release = inbox_pop(s, &m);
  } else {
    pthread_mutex_lock(&s->mu);
    WAIT_CV(s, s->head || s->done ||
                   (s->is_server && atomic_load(&s->half_closed)));
    if (!s->head) {
      int rv;
      if (s->is_server) /* the end of requests, unless the call was cut */
        rv = atomic_load(&s->half_closed) && !s->parse_failed &&
                     !mrpc_call_is_cancelled(s->call)
                 ? 0
                 : MRPC_ERR_CLOSED;
      else
        rv = s->final.code == MRPC_STATUS_OK ? 0 : MRPC_ERR_CLOSED;
      pthread_mutex_unlock(&s->mu);
      return rv;
    }
    release = inbox_pop(s, &m);
    pthread_mutex_unlock(&s->mu);
  }
  if (release) mrpc__call_rx_release(s->call);
  if (m.in_scratch && !borrow) {
    /* The caller frees it with libc: a copy made with libc. */
    ProtobufCMessage *own = protobuf_c_message_unpack(
        s->call->method->request, NULL, m.size, s->call->rx_scratch);
    msg_free(s, m.msg);
    if (!own) return MRPC_ERR_NOMEM;
    m.msg = own;
  }
  *out = m.msg;
  return 1;
}

int mrpc_stream_recv(mrpc_stream *s, ProtobufCMessage **out) {
  if (!s || !out) return MRPC_ERR_INVAL;
  *out = NULL;
  return recv_next(s, 0, out);
}

int mrpc_stream_recv_borrowed(mrpc_stream *s, const ProtobufCMessage **out) {
  if (!s || !out) return MRPC_ERR_INVAL;
  ProtobufCMessage *m = NULL;
  int rv = recv_next(s, 1, &m);
  if (m) s->lent = m;
  *out = m;
  return rv;
}

int mrpc_stream_send(mrpc_stream *s, const ProtobufCMessage *msg) {
  if (!s || !msg) return MRPC_ERR_INVAL;
  /* A server's single response rides with the finish: one trip to the
   * loop instead of two (the peer waits for the status anyway). */
  mrpc_method_kind k = s->is_server ? s->call->method->kind : MRPC_BIDI_STREAMING;
  int hold = k == MRPC_UNARY || k == MRPC_CLIENT_STREAMING;
  for (;;) {
    int rv = hold ? mrpc__call_send_held(s->call, msg)
                  : mrpc_call_send(s->call, msg);
    if (rv != MRPC_ERR_AGAIN) return rv;
    /* AGAIN asked for on_writable.  A writable left from before costs one
     * more try, then the wait; no lock on the way when there is room. */
    pthread_mutex_lock(&s->mu);
    WAIT_CV(s, s->writable || s->done);
    s->writable = 0;
    int done = s->done;
    pthread_mutex_unlock(&s->mu);
    if (done) return MRPC_ERR_CLOSED;
  }
}

mrpc_call *mrpc_stream_call(mrpc_stream *s) { return s ? s->call : NULL; }

int mrpc_stream_last_compressed(const mrpc_stream *s) {
  return s ? s->last_compressed : 0;
}

int mrpc_stream_set_status(mrpc_stream *s, mrpc_status_code code,
                           const char *message, const void *details,
                           size_t details_len) {
  if (!s) return MRPC_ERR_INVAL;
  if ((int)code < 0 || (int)code > 16) {
    if (s->is_server) s->bad_code = 1;
    return MRPC_ERR_INVAL;
  }
  if (!s->is_server) return MRPC_ERR_STATE;
  s->status_set = 1;
  if ((!message || !message[0]) && !details_len) {
    /* The usual OK: no copy (reply is the library's, never handed out). */
    mrpc__status_set_empty(&s->reply, code);
    return 0;
  }
  return mrpc__status_set(&s->reply, code, message, details, details_len);
}

int mrpc_stream_close_send(mrpc_stream *s) {
  if (!s) return MRPC_ERR_INVAL;
  return mrpc_call_close_send(s->call);
}

int mrpc_stream_finish(mrpc_stream *s, mrpc_status *st) {
  if (!s || s->is_server) return MRPC_ERR_INVAL;
  pthread_mutex_lock(&s->mu);
  /* Unread messages would hold the window shut and the call open. */
  s->discard = 1;
  int release = s->held;
  s->held = 0;
  inbox_clear(s);
  pthread_mutex_unlock(&s->mu);
  if (release) mrpc__call_rx_release(s->call);
  pthread_mutex_lock(&s->mu);
  WAIT_CV(s, s->done);
  pthread_mutex_unlock(&s->mu);
  if (st) {
    *st = s->final;
    memset(&s->final, 0, sizeof s->final);
  }
  stream_free(s);
  return 0;
}

/* ---- server ---- */

/* Unpacks a single request the I/O thread left as bytes (call.h,
 * defer_unpack) on the handler's worker, before the handler runs: into the
 * stream's scratch, which mrpc_stream_recv_borrowed lends as it is (recv
 * makes a libc copy).  One that does not parse ends the call as the I/O
 * thread would have; the handler still runs (recv says CLOSED). */
static void unpack_request(mrpc_stream *s) {
  inmsg *m = s->head; /* a single stream's: this thread's alone (recv) */
  if (!m || m->msg) return;
  mrpc_call *call = s->call;
  mrpc__scratch sc = {s->scratch, sizeof s->scratch, 0};
  ProtobufCAllocator pa = mrpc__scratch_allocator(&sc);
  m->msg = protobuf_c_message_unpack(call->method->request, &pa, m->size,
                                     call->rx_scratch);
  if (m->msg) {
    m->in_scratch = 1;
    return;
  }
  inbox_clear(s);
  s->parse_failed = 1;
  const char *why = mrpc__call_parse_error(call);
  if (mrpc_call_finish(call, MRPC_STATUS_INTERNAL, why, NULL, 0) ==
      MRPC_ERR_NOMEM) /* no copy of the message: no allocation */
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, NULL, NULL, 0);
}

static void serve_job(mrpc__job *job) {
  mrpc_stream *s = (mrpc_stream *)((char *)job - offsetof(mrpc_stream, job));
  if (s->single) unpack_request(s);
  s->handler(s, s->user);
  lent_free(s);
  if (s->parse_failed) {
    /* finished by unpack_request */
  } else if (s->status_set) {
    mrpc_call_finish(s->call, s->reply.code, s->reply.message,
                     s->reply.details, s->reply.details_len);
  } else {
    /* Library-made status: the faults let an interceptor tell it from an
     * UNKNOWN the handler chose (see mrpc_call_faults). */
    if (!mrpc_call_is_cancelled(s->call))
      atomic_fetch_or(&s->call->faults, s->bad_code ? MRPC_FAULT_BAD_STATUS
                                                    : MRPC_FAULT_NO_STATUS);
    mrpc_call_finish(s->call, MRPC_STATUS_UNKNOWN,
                     s->bad_code ? "handler set an invalid status code"
                                 : "handler returned without a status",
                     NULL, 0);
  }
  stream_release(s);
}

static mrpc_stream *stream_new(const mrpc_allocator *alloc,
                               mrpc__loop *blk_loop) {
  mrpc_stream *s = blk_loop ? mrpc__blk_calloc(blk_loop, 1, sizeof *s)
                            : mrpc__calloc(alloc, 1, sizeof *s);
  if (!s) return NULL;
  s->alloc = alloc;
  s->blk_loop = blk_loop;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  return s;
}

int mrpc__stream_serve(mrpc_call *call, mrpc_blocking_handler handler,
                       void *user, mrpc__pool *pool) {
  mrpc_stream *s = stream_new(call->alloc, call->alloc ? NULL : call->loop);
  if (!s) return MRPC_ERR_NOMEM;
  s->is_server = 1;
  s->handler = handler;
  s->user = user;
  s->call = mrpc_call_ref(call);
  s->refs = 2;
  s->job.fn = serve_job;
  call->take_messages = 1;
  mrpc_call_set_ops(call, &stream_ops, s);
  mrpc_method_kind k = call->method->kind;
  if (k == MRPC_UNARY || k == MRPC_SERVER_STREAMING) {
    s->start_pool = pool; /* on_message, on_half_close or on_done */
    s->single = 1;
    call->defer_unpack = 1;
    return 0;
  }
  int rv = submit_handler(s, pool);
  if (rv) atomic_store(&s->refs, 1); /* no handler: on_done frees s */
  return rv;
}

/* ---- client ---- */

int mrpc__stream_client_new(const mrpc_allocator *alloc, mrpc_stream **out,
                            const mrpc_call_ops **ops) {
  mrpc_stream *s = stream_new(alloc, NULL);
  if (!s) return MRPC_ERR_NOMEM;
  /* The finishing thread frees the stream (refs unused). */
  *out = s;
  *ops = &stream_ops;
  return 0;
}

void mrpc__stream_attach(mrpc_stream *s, mrpc_call *call) { s->call = call; }

void mrpc__stream_client_abort(mrpc_stream *s) { stream_free(s); }
