/* The call state machine shared by server and client: headers -> messages
 * -> half-close -> trailers, send queue with back-pressure, deadline,
 * cancellation.  Transport events come in through mrpc__call_on_*; user
 * operations (call.h public API) may come from any thread and are run on
 * the call's loop. */
#ifndef MRPC_LIB_CALL_H
#define MRPC_LIB_CALL_H

#include "conn.h"
#include "frame.h"
#include "loop.h"
#include "metadata.h"

#include <minirpc/call.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct mrpc__server_loop mrpc__server_loop;
typedef struct mrpc_channel mrpc_channel;

/* A serialized, framed message waiting to be sent. */
typedef struct mrpc__chunk {
  struct mrpc__chunk *next;
  size_t len, off;
  /* A send made off the loop thread travels to it in the chunk (call.c):
   * no allocation for the trip. */
  mrpc__task task;
  struct mrpc_call *call;
  uint8_t data[];
} mrpc__chunk;

/* An operation on a call, run on its loop thread (call.c). */
enum op_kind {
  OP_SEND,
  OP_CLOSE_SEND,
  OP_HEADERS,
  OP_TRAILERS,
  OP_FINISH,
  OP_CANCEL,
  OP_RX_RELEASE,
  OP_WRITABLE,
  OP_FAIL
};

typedef struct call_op {
  mrpc__task task;
  struct mrpc_call *call;
  enum op_kind kind;
  mrpc__chunk *chunk;
  mrpc_metadata *md;
  mrpc_status_code code;
  char *msg;
  uint8_t *details;
  size_t details_len;
} call_op;

/* Growable header list with the strings it had to make. */
typedef struct mrpc__hdrbuf {
  const mrpc_allocator *alloc;
  mrpc__hdr *h; /* inline_h until it outgrows it */
  size_t n, cap;
  char **owned;
  size_t n_owned, cap_owned;
  int oom;
  /* Most header lists are short: no allocation for them. */
  mrpc__hdr inline_h[16];
  char *inline_owned[8];
  char scratch[16]; /* grpc-status */
} mrpc__hdrbuf;

struct mrpc_call {
  atomic_int refs;
  const mrpc_allocator *alloc;
  mrpc__loop *loop;
  mrpc__conn *conn; /* NULL once the transport let go */
  int32_t stream_id;
  int is_server;
  const mrpc_method *method;
  mrpc_call_ops ops;
  void *ctx;
  int take_messages; /* the blocking layer keeps what on_message gets */
  /* The blocking layer unpacks the single request on the handler's thread
   * (whose allocator frees it): a small one reaches on_message as NULL,
   * its bytes in rx_scratch, rx_len long (deliver_plain). */
  int defer_unpack;

  /* receive */
  mrpc__deframer df;
  size_t max_send;
  size_t send_limit;
  uint32_t max_header_list;
  uint32_t hdr_bytes;
  int hdr_overflow;
  int rx_hold;          /* the blocking reader is behind: hold WINDOW_UPDATE */
  size_t rx_unconsumed; /* bytes received while held */
  unsigned n_recv;      /* messages delivered */
  mrpc_metadata *md;    /* server: request metadata; client: response headers */
  mrpc_metadata *trailers; /* client */
  mrpc_status_code rx_error; /* first receive-side failure, or OK */
  const char *rx_error_msg;

  /* request/response header fields */
  char *path; /* path_in when it fits */
  char path_in[64];
  int method_post, content_type_ok, te_ok;
  int http_status;
  int have_grpc_status, grpc_status;
  char *grpc_message;
  uint8_t *details;
  size_t details_len;
  int64_t deadline_ms; /* INT64_MAX = none */
  int bad_timeout;
  int bad_encoding;
  /* compression (compress.c): algorithms of incoming and outgoing messages,
   * what the peer accepts, the per-message switch */
  int recv_alg, send_alg;
  unsigned peer_accept;
  atomic_int msg_compress;
  int rx_compressed; /* the message being delivered came compressed */
  size_t rx_len;     /* its serialized size (after decompression) */
  int bad_metadata;
  int got_headers;

  /* send */
  mrpc__chunk *sq_head, *sq_tail;
  atomic_size_t queued; /* bytes in sq, counted from any thread */
  size_t in_conn;       /* bytes of sq counted in the connection's total */
  atomic_int want_writable;
  /* Operations queued from other threads and not run yet: while any are,
   * the I/O thread queues its own behind them, so that they take effect in
   * the order they were made. */
  atomic_int pending_ops;
  /* The server's finish made off the loop thread travels in here (the
   * first one: fin_posted); no allocation for the trip. */
  call_op fin_op;
  atomic_int fin_posted;
  /* A blocking handler's single response, packed and held for the finish
   * (mrpc__call_send_held).  Taken only by exchange: another thread may
   * finish the call at the same time. */
  _Atomic(mrpc__chunk *) held;
  int in_end_hooks; /* server end hooks running (loop thread) */
  atomic_uint n_sent; /* flags read by other threads are atomic */
  mrpc_metadata *out_headers, *out_trailers; /* server */
  atomic_int headers_sent;
  atomic_int finishing; /* server: status set, trailers after the queue */
  atomic_int send_closed; /* client: END_STREAM after the queue */
  int trailers_sent;
  int remote_closed;
  int stream_closed;
  atomic_int done;      /* on_done delivered (or being delivered) */
  atomic_int cancelled; /* cancelled, deadline passed, or connection lost */
  mrpc_status status;   /* server: status to send; client: final status */
  mrpc__timer deadline_timer;
  /* Server: written before the call is shared.  Client: published per
   * attempt through peer_at (NULL before the first, read with acquire);
   * a published string is never rewritten, as readers on any thread may
   * hold it: the first address goes into peer, any other into a copy on
   * peer_copies (loop thread), kept until the call is freed. */
  char peer[128];
  _Atomic(const char *) peer_at;
  struct mrpc__peer_copy *peer_copies;
  /* TLS: the connection's peer identity (tls.c), a reference; set once on
   * the loop thread when the call joins a connection, read atomically. */
  struct mrpc__tls_peer *tls_peer;

  /* interceptors (interceptor.c) */
  struct mrpc__icall *ics; /* those that started, in chain order */
  size_t n_ics;
  /* ic_ended is set under ic_mu, which on_send hooks (any thread) run
   * under, so that no on_send overlaps or follows the end hooks.  Set up
   * by mrpc__ic_start: only a call with ics has it. */
  pthread_mutex_t ic_mu;
  int ic_ended;
  atomic_int send_refused; /* an on_send hook refused: the call is ending */
  atomic_uint faults;      /* MRPC_FAULT_* the library caught (server) */
  int client_started; /* client: past the start hooks, metadata frozen */
  int rejected;       /* client: a start hook refused the call */
  int64_t t_start_ns; /* CLOCK_MONOTONIC */
  atomic_uint_fast64_t bytes_in, bytes_out;

  /* client attempts (docs/design.md, "Retries"; channel.c decides).
   * Bytes the transport took are kept in sent_* until the call commits
   * (response headers came, the replay buffer overflowed, or the call
   * ended), so that another attempt can send them again. */
  mrpc__chunk *sent_head, *sent_tail;
  size_t replay_bytes, replay_limit;
  int committed;
  int attempts;          /* attempts counted against a retry policy */
  int transparent_tries; /* attempts that never left the client */
  int refused_retried;   /* the one retry of a stream the server refused */
  int retry_pending;     /* a retryable status came: retry at stream close */
  int throttle_counted;  /* this attempt's failure took its token */
  int64_t retry_delay_ms;
  int64_t pushback_ms; /* grpc-retry-pushback-ms: -1 none, -2 malformed */
  int wait_for_ready;
  mrpc__timer retry_timer;

  /* md points here: no allocation for a few small headers */
  mrpc_metadata md_in;
  /* A small received message is unpacked here (deliver_plain). */
  _Alignas(16) uint8_t rx_scratch[256];
  /* The call's first small outgoing message is packed here, not in a
   * chunk of its own (send_pack; chunk_free leaves it): a unary call's
   * request or response then costs no allocation, and none that one
   * thread makes and another frees. */
  _Alignas(16) uint8_t tx_inline[192];
  atomic_int tx_inline_used;

  /* owners */
  mrpc__server_loop *sloop; /* server */
  mrpc_channel *channel;    /* client */
  /* Calls on the same connection; on the client also the channel's list
   * the call waits on (for a connection or a retry), named by waitq. */
  mrpc_call *conn_prev, *conn_next;
  void *waitq;
};

typedef struct mrpc__call_cfg {
  size_t max_recv;
  size_t max_send;
  size_t send_limit;
  uint32_t max_header_list;
  const mrpc_allocator *alloc;
} mrpc__call_cfg;

/* Copies a connection's peer string into the call (bounded, no printf).
 * Server, before the call is shared; a client publishes per attempt. */
void mrpc__call_set_peer(mrpc_call *call, const char *peer);

/* mrpc_call_send, except that the packed message is held in the call and
 * goes to the loop with the next send or with mrpc_call_finish, in one
 * operation (a server's single response from a blocking handler, which
 * finishes the call when it returns).  A finish from any thread takes it. */
int mrpc__call_send_held(mrpc_call *call, const ProtobufCMessage *msg);

/* Creates a call with one reference (the creator's).  Returns NULL on OOM. */
mrpc_call *mrpc__call_new(mrpc__loop *loop, int is_server,
                          const mrpc__call_cfg *cfg);

/* ---- transport -> call (loop thread) ---- */
void mrpc__call_on_header(mrpc_call *call, const uint8_t *name, size_t nlen,
                          const uint8_t *value, size_t vlen, int trailer);
void mrpc__call_on_headers_end(mrpc_call *call, int trailer, int end_stream);
void mrpc__call_on_data(mrpc_call *call, const uint8_t *data, size_t len);
void mrpc__call_on_remote_end(mrpc_call *call);
/* The stream is gone (h2_error as in RST_STREAM, or conn_lost).  The
 * transport's reference is dropped by the caller after this returns. */
void mrpc__call_on_stream_close(mrpc_call *call, uint32_t h2_error,
                                int conn_lost);
/* Data source: copies up to len queued bytes into buf.  *eof = 1 when the
 * queue is empty and the call ended its sending side; returns 0 and *eof =
 * 0 when nothing is ready yet (the transport then waits for resume). */
size_t mrpc__call_pull(mrpc_call *call, uint8_t *buf, size_t len, int *eof);
/* Server: the trailers to send after the last message.  Returns 0 or
 * MRPC_ERR_NOMEM; the caller frees hb with mrpc__hdrbuf_free. */
int mrpc__call_build_trailers(mrpc_call *call, mrpc__hdrbuf *hb);
/* A frame carrying END_STREAM was written for this call. */
void mrpc__call_on_end_sent(mrpc_call *call);
/* What mrpc__call_pull(call, buf, len, eof) would give, without taking it:
 * the byte count, and *eof as it would set it. */
size_t mrpc__call_ready(const mrpc_call *call, size_t len, int *eof);

/* ---- server and channel -> call (loop thread) ---- */
/* Ends a server call from the library side (unknown method, bad request,
 * parse error...): status with trailers, handler-visible as done. */
void mrpc__call_fail(mrpc_call *call, mrpc_status_code code, const char *msg);
/* Arms the deadline timer when call->deadline_ms is set. */
void mrpc__call_arm_deadline(mrpc_call *call);
/* Client: builds request headers and submits on conn.  Returns 0 or
 * MRPC_ERR_*; on error the call is not attached. */
int mrpc__call_start_client(mrpc_call *call, mrpc__conn *conn,
                            const char *authority, const char *user_agent,
                            const mrpc_metadata *md);
/* Delivers on_done with st (once); the user-visible end of the call. */
void mrpc__call_complete(mrpc_call *call, mrpc_status_code code,
                         const char *msg);
/* 1 when nothing waits in the call's send queue; else arms on_writable,
 * which runs once the I/O thread takes bytes from the queue (a spurious one
 * may follow a 1).  Any thread.  For senders that keep at most one message
 * queued (health Watch). */
int mrpc__call_send_idle(mrpc_call *call);

/* Client, channel -> call (loop thread): gets a call whose attempt ended
 * (not on a connection any more) ready for the next one: what was sent
 * goes back to the send queue, what was received is forgotten. */
void mrpc__call_rewind(mrpc_call *call);

/* call -> channel (loop thread, channel.c). */
/* The wait before another attempt of call, whose attempt ended with code
 * (transparent: 1 the stream never left the client, 2 the server refused
 * it unprocessed, 0 neither), or -1 for none. */
int64_t mrpc__channel_retry_delay(mrpc_call *call, mrpc_status_code code,
                                  int transparent);
/* Takes a reference and starts call's next attempt after delay_ms. */
void mrpc__channel_retry(mrpc_call *call, int64_t delay_ms);
/* The call ended while on one of the channel's wait lists. */
void mrpc__channel_call_done(mrpc_call *call);
/* The call ended (any thread): its last attempt counts for the channel's
 * retry throttling. */
void mrpc__channel_call_end(mrpc_call *call);

/* Blocking reader caught up: reopen the window.  Any thread. */
void mrpc__call_rx_release(mrpc_call *call);
/* The status message of a received message protobuf-c could not parse. */
const char *mrpc__call_parse_error(const mrpc_call *call);

/* ---- header lists ---- */
void mrpc__hdrbuf_init(mrpc__hdrbuf *hb, const mrpc_allocator *alloc);
void mrpc__hdrbuf_free(mrpc__hdrbuf *hb);
/* Adds every entry of md, base64-encoding "-bin" values. */
void mrpc__hdrbuf_add_md(mrpc__hdrbuf *hb, const mrpc_metadata *md);

#endif
