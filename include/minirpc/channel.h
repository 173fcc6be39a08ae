/* libminirpc: the client channel.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CHANNEL_H
#define MINIRPC_CHANNEL_H

#include <minirpc/call.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A channel to one target (one name that may stand for several servers).
 * It owns an I/O thread, resolves the target off that thread, connects
 * lazily on the first call, spreads calls over its connections as its load
 * balancing policy says, reconnects after a failure with exponential
 * backoff, retries calls as gRPC does (see mrpc_channel_opts), and
 * multiplexes many calls on each connection.  docs/deployment.md, "Client-
 * side load balancing", has the whole picture.  Every function here is
 * thread-safe except mrpc_channel_del. */
typedef struct mrpc_channel mrpc_channel;

/* Load balancing (gRPC load-balancing.md). */
typedef enum mrpc_lb_policy {
  /* The default.  Connects to the resolved addresses in order until one
   * works and sends every call there (with pool_size > 1, pool_size
   * connections, each to the first address that works).  When that
   * connection is lost the channel goes IDLE and starts over on the
   * next call. */
  MRPC_LB_PICK_FIRST = 0,
  /* A connection to every address (pool_size to each), each reconnecting
   * on its own with backoff; calls go to the READY ones in turn. */
  MRPC_LB_ROUND_ROBIN = 1,
} mrpc_lb_policy;

/* A retry policy (gRPC A6), for the calls its name matches: a call whose
 * attempt ends with a status in retryable_codes before any response
 * headers came is tried again after a random wait in
 * [0, min(initial_backoff_ms * backoff_multiplier^(n-1), max_backoff_ms)),
 * at most max_attempts attempts in all, never past the call's deadline
 * (the last attempt's status is the call's).  A server's
 * grpc-retry-pushback-ms trailer replaces the wait; a malformed or
 * negative one stops the retries.  Requests sent are kept for a replay
 * until the call commits (response headers arrive, or more than
 * retry_buffer_size bytes were sent: then no more retries). */
typedef struct mrpc_retry_policy {
  /* "/pkg.Service/Method", "/pkg.Service/" (every method of the service)
   * or NULL (every method).  The most specific entry wins. */
  const char *name;
  int max_attempts;           /* 2 or more; above 5 counts as 5 */
  int64_t initial_backoff_ms; /* > 0 */
  int64_t max_backoff_ms;     /* > 0 */
  double backoff_multiplier;  /* > 0 */
  uint32_t retryable_codes;   /* MRPC_RETRY_ON(code) | ...; not 0 */
} mrpc_retry_policy;

#define MRPC_RETRY_ON(code) (1u << (unsigned)(code))

typedef struct mrpc_channel_opts {
  size_t size; /* sizeof(mrpc_channel_opts) */
  /* Largest message accepted; 0 = 4 MiB. */
  size_t max_recv_message;
  /* Largest message sent; 0 = unlimited. */
  size_t max_send_message;
  /* Bytes queued per call before MRPC_ERR_AGAIN; 0 = 256 KiB. */
  size_t send_queue_limit;
  /* :authority; NULL = the target's host:port. */
  const char *authority;
  /* user-agent prefix; NULL = none (the library appends its own). */
  const char *user_agent;
  const mrpc_allocator *alloc; /* NULL = libc */
  /* Compression of requests by default (per call: mrpc_call_opts). */
  mrpc_compression compression;
  /* TLS (minirpc/tls.h: mrpc_tls_client_creds_new); NULL = plaintext
   * HTTP/2 (h2c).  The channel takes a reference.  The server certificate
   * must name the creds' server_host_override, else the host of
   * `authority` when set, else the target's host ("localhost" for unix
   * targets); that name is sent as SNI unless it is an IP address.  With an
   * override and no authority, :authority is the override. */
  struct mrpc_tls_creds *tls;
  /* Keepalive (docs/security.md, "Limits"): a PING when nothing has been
   * received for keepalive_time_ms; 0 = never (the default); less than
   * 10 s is raised to 10 s.  A GOAWAY "too_many_pings" from the server
   * doubles it for the channel's later connections. */
  int64_t keepalive_time_ms;
  /* A keepalive PING not acknowledged within this closes the connection
   * (its calls end with UNAVAILABLE); 0 = 20 s. */
  int64_t keepalive_timeout_ms;
  /* 1: keepalive pings also while the connection has no call; 0
   * (default): only while calls are open. */
  int keepalive_permit_without_calls;
  /* Connection backoff (gRPC connection-backoff.md; docs/design.md,
   * "Channel states").  After a connection attempt fails (every resolved
   * address tried) the channel is TRANSIENT_FAILURE until
   * attempt start + backoff * (1 +- jitter); the backoff then grows by the
   * multiplier up to the maximum, and is reset to the initial value when a
   * connection becomes ready (the server's SETTINGS arrived).  An attempt is
   * given max(its backoff deadline, now + min_connect_timeout) to complete.
   * 0 = the default for each: initial 1000 ms, multiplier 1.6, jitter 0.2,
   * max 120000 ms, min connect timeout 20000 ms.  A negative jitter means
   * none; jitter is capped at 1 and the multiplier is raised to 1 if less;
   * a max below the initial backoff is raised to it.  Other negative
   * values: MRPC_ERR_INVAL from mrpc_channel_new. */
  int64_t backoff_initial_ms;
  double backoff_multiplier;
  double backoff_jitter;
  int64_t backoff_max_ms;
  int64_t min_connect_timeout_ms;
  /* Load balancing over the resolved addresses; see mrpc_lb_policy. */
  mrpc_lb_policy lb_policy;
  /* Connections per address (round_robin) or in all (pick_first), for
   * clients that need more streams than one connection's
   * MAX_CONCURRENT_STREAMS or more than one connection's throughput;
   * calls go to the READY ones in turn.  0 = 1; at most 64. */
  int pool_size;
  /* DNS targets: the name is resolved again this often while the channel
   * is not IDLE, and after a connection fails or is lost, but not more
   * often than this (the first resolution is at once).  0 = 30000;
   * < 0: only when the channel leaves IDLE. */
  int64_t resolve_interval_ms;
  /* Retry policies (copied; see mrpc_retry_policy); NULL/0 = none.
   * Transparent retries need none: a call whose request never left the
   * client, or that the server refused unprocessed (REFUSED_STREAM, or a
   * stream above a GOAWAY's last stream id), is tried again at once (the
   * refused kind once).  Invalid entries: MRPC_ERR_INVAL from
   * mrpc_channel_new. */
  const mrpc_retry_policy *retry_policies;
  size_t n_retry_policies;
  /* Request bytes kept per call for a replay; 0 = 256 KiB. */
  size_t retry_buffer_size;
  /* Retry throttling (A6), for the whole channel: a token count starts at
   * retry_max_tokens; an attempt that fails with a status its retry policy
   * names, or with a pushback that says not to retry, takes one token; a
   * call that ends OK gives retry_token_ratio back (up to
   * retry_max_tokens).  While the count is at or below half of
   * retry_max_tokens no call is retried (transparent retries still are).
   * 0 = no throttling; at most 1000.  With it, retry_token_ratio must be
   * > 0 (three decimals count); else MRPC_ERR_INVAL from mrpc_channel_new. */
  int retry_max_tokens;
  double retry_token_ratio;
} mrpc_channel_opts;

MRPC_EXTERN void mrpc_channel_opts_init(mrpc_channel_opts *o);

/* Per-call options (all optional: pass NULL for none). */
typedef struct mrpc_call_opts {
  size_t size; /* sizeof(mrpc_call_opts) */
  /* Relative timeout in ms; 0 = none.  Sent as grpc-timeout and enforced
   * locally: the call ends with DEADLINE_EXCEEDED. */
  int64_t timeout_ms;
  /* Outgoing metadata; copied at call start.  NULL = none. */
  const mrpc_metadata *metadata;
  /* Compression of this call's requests: 0 = the channel's default, else
   * the algorithm + 1 (MRPC_CALL_COMPRESS(alg)); the server is told with
   * grpc-encoding. */
  int compression;
  /* 0 (default): fail fast, as gRPC's wait-for-ready.md says: a call
   * started while the channel is TRANSIENT_FAILURE ends at once with
   * UNAVAILABLE (the last connection error as its message), and a call
   * waiting for a connection ends so when that attempt fails.  1: the call
   * waits through failures and backoff until a connection is READY, its
   * deadline passes (DEADLINE_EXCEEDED), it is cancelled or the channel is
   * deleted (CANCELLED).  A call already on a connection is retried only
   * as mrpc_channel_opts says (transparent retries and retry policies);
   * otherwise losing that connection ends it with UNAVAILABLE. */
  int wait_for_ready;
} mrpc_call_opts;

#define MRPC_CALL_COMPRESS(alg) ((int)(alg) + 1)

MRPC_EXTERN void mrpc_call_opts_init(mrpc_call_opts *o);

/* Connectivity state of a channel (gRPC connectivity-semantics-and-api.md;
 * docs/design.md, "Channels"):
 *   IDLE              no connection and none being made: the state of a new
 *                     channel, after a ready connection closes or sends
 *                     GOAWAY, and after a backoff with no call waiting.
 *                     A call (or get_state with try_to_connect) connects.
 *   CONNECTING        a connection attempt is under way; calls wait.
 *   READY             a connection is up (the server's SETTINGS arrived).
 *   TRANSIENT_FAILURE the last attempt failed and the channel is in
 *                     backoff: fail-fast calls end at once with
 *                     UNAVAILABLE, wait-for-ready calls wait.
 *   SHUTDOWN          mrpc_channel_del has begun. */
typedef enum mrpc_channel_state {
  MRPC_CHANNEL_IDLE = 0,
  MRPC_CHANNEL_CONNECTING = 1,
  MRPC_CHANNEL_READY = 2,
  MRPC_CHANNEL_TRANSIENT_FAILURE = 3,
  MRPC_CHANNEL_SHUTDOWN = 4,
} mrpc_channel_state;

/* "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN"; "?" for
 * other values.  Static strings; thread-safe. */
MRPC_EXTERN const char *mrpc_channel_state_name(mrpc_channel_state s);

/* The channel's current state.  try_to_connect != 0 and the state IDLE:
 * a connection attempt starts (asynchronously, on the I/O thread; the
 * state returned is still IDLE), as if a call had been started; in other
 * states it does nothing.  Thread-safe; never blocks.  ch NULL:
 * MRPC_CHANNEL_SHUTDOWN. */
MRPC_EXTERN mrpc_channel_state mrpc_channel_get_state(mrpc_channel *ch,
                                                      int try_to_connect);

/* The number of READY connections the channel has (for pick_first 1 or
 * pool_size when connected).  Thread-safe; never blocks.  ch NULL: 0. */
MRPC_EXTERN size_t mrpc_channel_ready_count(mrpc_channel *ch);

/* Blocks until the channel's state is other than last_seen (returns 1 at
 * once if it already is) or timeout_ms passes (returns 0).  timeout_ms < 0
 * waits without limit.  Changes in between are not queued: a state left
 * and re-entered before the waiter looks may be missed, as in gRPC; read
 * the new state with mrpc_channel_get_state.  Thread-safe, except that
 * mrpc_channel_del must not run concurrently with a wait unless the
 * waiter is woken by it: mrpc_channel_del moves the channel to SHUTDOWN,
 * which wakes every waiter (returning 1), and waits for them to leave
 * before freeing the channel.  Returns MRPC_ERR_INVAL (< 0) for ch NULL. */
MRPC_EXTERN int mrpc_channel_wait_for_state_change(mrpc_channel *ch,
                                                   mrpc_channel_state last_seen,
                                                   int64_t timeout_ms);

/* Creates a channel to target (gRPC naming.md):
 *   "host:port", "dns:///host:port", "dns:host[:port]" (port 443 if none)
 *       every A/AAAA address getaddrinfo gives (IPv4 first), resolved on a
 *       thread of the channel's, again as resolve_interval_ms says;
 *   "[v6]:port", "1.2.3.4:port" the same, without a DNS lookup;
 *   "ipv4:1.2.3.4:80,5.6.7.8:80", "ipv6:[::1]:80,[::2]:80" these addresses;
 *   "unix:/path", "unix:///path" a Unix socket.
 * The default :authority is "host:port" (for ipv4:/ipv6: lists the first
 * address; "localhost" for unix:).  Nothing is connected or resolved yet.
 * Returns 0 and *out, or MRPC_ERR_ADDR (target can not be parsed),
 * MRPC_ERR_INVAL (bad options), MRPC_ERR_NOMEM, MRPC_ERR_IO (thread). */
MRPC_EXTERN int mrpc_channel_new(const char *target,
                                 const mrpc_channel_opts *opts,
                                 mrpc_channel **out);

/* Ends every call (those on a connection with UNAVAILABLE, those still
 * waiting for one with CANCELLED), closes connections, joins
 * the I/O thread and frees the channel.  Calls still referenced stay valid
 * to unref.  The state becomes SHUTDOWN first: threads blocked in
 * mrpc_channel_wait_for_state_change wake (returning 1), and this function
 * waits for them to return before freeing.  Not to be called from the
 * channel's own callbacks.  NULL is a no-op. */
MRPC_EXTERN void mrpc_channel_del(mrpc_channel *ch);

/* Event-driven call: starts m, callbacks in ops (copied) with ctx, on the
 * channel's I/O thread.  Send with mrpc_call_send, end with
 * mrpc_call_close_send; on_done comes exactly once.  *out is a reference
 * for the caller (mrpc_call_unref when done).  If this function fails no
 * callback runs.  Returns 0 or MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN,
 * MRPC_ERR_NOMEM.  Connection failures are not errors here: they arrive as
 * an UNAVAILABLE status in on_done (at once for a fail-fast call started
 * while the channel is TRANSIENT_FAILURE; see mrpc_call_opts.wait_for_ready).
 * MRPC_ERR_INVAL also for opts->wait_for_ready other than 0 or 1. */
MRPC_EXTERN int mrpc_channel_start_call(mrpc_channel *ch, const mrpc_method *m,
                                        const mrpc_call_opts *opts,
                                        const mrpc_call_ops *ops, void *ctx,
                                        mrpc_call **out);

/* Blocking unary call.  On return *st holds the status (the caller frees it
 * with mrpc_status_free) and, when OK, *resp the response (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)); otherwise *resp is NULL.
 * Response metadata can be had with mrpc_channel_open_stream instead.
 * Returns 0 (whatever the status) or MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN,
 * MRPC_ERR_NOMEM, MRPC_ERR_SERIALIZE (req not of m's type). */
MRPC_EXTERN int mrpc_channel_unary(mrpc_channel *ch, const mrpc_method *m,
                                   const ProtobufCMessage *req,
                                   const mrpc_call_opts *opts,
                                   ProtobufCMessage **resp, mrpc_status *st);

/* Blocking streaming call of any kind: send, close_send, recv, then
 * mrpc_stream_finish (which frees the stream).  Returns 0 and *out, or
 * MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_channel_open_stream(mrpc_channel *ch,
                                         const mrpc_method *m,
                                         const mrpc_call_opts *opts,
                                         mrpc_stream **out);

#ifdef __cplusplus
}
#endif
#endif
