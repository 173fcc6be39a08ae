/* TLS through OpenSSL on memory BIOs: one mrpc__tls per connection, driven
 * by conn_io.c from the event loop (it never touches the socket).  Implemented
 * in tls.c, the only file that includes OpenSSL; this header does not.
 * Loop-thread only, except the creds and peer functions (thread-safe). */
#ifndef MRPC_LIB_TLS_H
#define MRPC_LIB_TLS_H

#include <minirpc/tls.h>
#include <sys/types.h>

typedef struct mrpc__tls mrpc__tls;
/* A connection's peer identity, shared (reference-counted) by its calls. */
typedef struct mrpc__tls_peer mrpc__tls_peer;

/* ---- credentials ---- */
int mrpc__tls_creds_is_server(const mrpc_tls_creds *cr);
int mrpc__tls_creds_handshake_timeout_ms(const mrpc_tls_creds *cr);
/* Client: server_host_override, or NULL. */
const char *mrpc__tls_creds_host_override(const mrpc_tls_creds *cr);

/* ---- one connection ---- */
/* Client: host is the name to verify and send as SNI (an IP literal is
 * matched against IP SANs and not sent as SNI).  Server: host NULL.
 * Returns 0 and *out, or MRPC_ERR_NOMEM. */
int mrpc__tls_new(mrpc_tls_creds *cr, const char *host,
                  const mrpc_allocator *alloc, mrpc__tls **out);
void mrpc__tls_free(mrpc__tls *t);

/* Ciphertext from the socket.  Returns 0 or MRPC_ERR_NOMEM. */
int mrpc__tls_feed(mrpc__tls *t, const void *p, size_t n);
/* Drives the handshake with what was fed: 1 done (ALPN "h2" agreed, peer
 * identity ready), 0 needs more input, or MRPC_ERR_PROTO (failed: see
 * mrpc__tls_error; an alert may be waiting in the output). */
int mrpc__tls_handshake(mrpc__tls *t);
/* Plaintext after the handshake: > 0 bytes, 0 nothing complete yet,
 * MRPC_ERR_CLOSED (close_notify) or MRPC_ERR_PROTO. */
ssize_t mrpc__tls_read(mrpc__tls *t, void *buf, size_t cap);
/* Encrypts all n bytes into the output.  Returns 0 or MRPC_ERR_PROTO. */
int mrpc__tls_write(mrpc__tls *t, const void *p, size_t n);
/* Ciphertext waiting for the socket, and taking it (up to cap). */
size_t mrpc__tls_out_pending(const mrpc__tls *t);
size_t mrpc__tls_out_take(mrpc__tls *t, void *buf, size_t cap);
/* Queues close_notify (after a completed handshake; no-op otherwise). */
void mrpc__tls_close_notify(mrpc__tls *t);
/* Why the handshake or a read/write failed ("" if it did not). */
const char *mrpc__tls_error(const mrpc__tls *t);
/* The peer once the handshake is done (NULL before); borrowed from t. */
mrpc__tls_peer *mrpc__tls_peer_of(const mrpc__tls *t);

/* ---- peer identities ---- */
mrpc__tls_peer *mrpc__tls_peer_ref(mrpc__tls_peer *p);
void mrpc__tls_peer_unref(mrpc__tls_peer *p); /* NULL: no-op */

#endif
