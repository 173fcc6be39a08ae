/* libminirpc: TLS (through OpenSSL) for servers and channels, and the
 * peer's identity as seen by handlers and interceptors.  See
 * docs/security.md.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_TLS_H
#define MINIRPC_TLS_H

#include <minirpc/call.h>

#ifdef __cplusplus
extern "C" {
#endif

/* TLS credentials: a loaded, checked configuration (certificates, keys,
 * trust roots) for one side.  Made once, then handed to any number of
 * servers (mrpc_server_opts.tls) or channels (mrpc_channel_opts.tls), which
 * take their own reference.  Reference-counted; thread-safe.
 *
 * Whatever the options, only TLS 1.2 and 1.3 are spoken, with AEAD cipher
 * suites only (ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2, as
 * HTTP/2 requires), and ALPN must agree on "h2". */
typedef struct mrpc_tls_creds mrpc_tls_creds;

/* Client certificates on a server. */
typedef enum mrpc_tls_client_auth {
  /* None asked for (the default). */
  MRPC_TLS_CLIENT_AUTH_NONE = 0,
  /* Asked for; verified against the client CA when sent; a client without
   * one is let in (its identity then has no subject). */
  MRPC_TLS_CLIENT_AUTH_OPTIONAL = 1,
  /* Mutual TLS: a client without a certificate that verifies against the
   * client CA fails the handshake. */
  MRPC_TLS_CLIENT_AUTH_REQUIRE = 2
} mrpc_tls_client_auth;

/* Default of handshake_timeout_ms, both sides. */
#define MRPC_TLS_HANDSHAKE_TIMEOUT_MS 10000

typedef struct mrpc_tls_server_opts {
  size_t size; /* sizeof(mrpc_tls_server_opts) */
  /* The certificate chain (leaf first, then intermediates) and its private
   * key, each either a PEM file or PEM text in memory (NUL-terminated;
   * copied).  Give exactly one of cert_chain_file / cert_chain_pem and one
   * of private_key_file / private_key_pem.  Unencrypted keys only. */
  const char *cert_chain_file;
  const char *private_key_file;
  const char *cert_chain_pem;
  const char *private_key_pem;
  /* Client certificates (mutual TLS).  With OPTIONAL or REQUIRE, one of
   * client_ca_file / client_ca_pem (PEM, one or more CA certificates) is
   * required. */
  mrpc_tls_client_auth client_auth;
  const char *client_ca_file;
  const char *client_ca_pem;
  /* A connection whose handshake is not over this long after accept() is
   * closed; 0 = MRPC_TLS_HANDSHAKE_TIMEOUT_MS (10 s). */
  int handshake_timeout_ms;
} mrpc_tls_server_opts;

typedef struct mrpc_tls_client_opts {
  size_t size; /* sizeof(mrpc_tls_client_opts) */
  /* Trust roots: a PEM bundle file or PEM text.  Both NULL = the system's
   * default store (OpenSSL's default paths, /etc/ssl/certs on Debian). */
  const char *ca_file;
  const char *ca_pem;
  /* The name the server's certificate must carry (and the SNI sent), in
   * place of the channel's authority host or target host.  For tests whose
   * certificates name a host other than the one dialled (gRPC's
   * ssl_target_name_override).  NULL = none. */
  const char *server_host_override;
  /* Optional client certificate chain and key (mutual TLS), file or PEM
   * text, as in mrpc_tls_server_opts.  Both or neither. */
  const char *cert_chain_file;
  const char *private_key_file;
  const char *cert_chain_pem;
  const char *private_key_pem;
  /* A connection whose handshake is not over this long after the TCP
   * connection is up fails (UNAVAILABLE); 0 = 10 s. */
  int handshake_timeout_ms;
} mrpc_tls_client_opts;

/* Fill *o with the defaults (size set, everything else 0/NULL). */
MRPC_EXTERN void mrpc_tls_server_opts_init(mrpc_tls_server_opts *o);
MRPC_EXTERN void mrpc_tls_client_opts_init(mrpc_tls_client_opts *o);

/* Load and check credentials.  Files are read now; the key must match the
 * certificate.  On failure, err (may be NULL) receives a one-line reason
 * (err_len bytes, NUL-terminated).  Returns 0 and *out (one reference), or
 * MRPC_ERR_INVAL (bad or missing options, key does not match), MRPC_ERR_IO
 * (a file can not be read), MRPC_ERR_PARSE (bad PEM), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_tls_server_creds_new(const mrpc_tls_server_opts *o,
                                          mrpc_tls_creds **out, char *err,
                                          size_t err_len);
MRPC_EXTERN int mrpc_tls_client_creds_new(const mrpc_tls_client_opts *o,
                                          mrpc_tls_creds **out, char *err,
                                          size_t err_len);

/* Take / drop a reference.  unref(NULL) is a no-op. */
MRPC_EXTERN mrpc_tls_creds *mrpc_tls_creds_ref(mrpc_tls_creds *c);
MRPC_EXTERN void mrpc_tls_creds_unref(mrpc_tls_creds *c);

/* ---------------------------------------------------------------------
 * The peer's identity (auth context).  Set for every call on a TLS
 * connection once the handshake is over, on both sides: on a server the
 * client's, on a client the server's.  Immutable; every string and array
 * is valid while the caller holds the call (they are shared by every call
 * of the connection).  Arrays may be empty (n = 0).  Thread-safe.
 * ------------------------------------------------------------------- */
typedef struct mrpc_peer_identity {
  const char *security;    /* "tls" */
  const char *tls_version; /* "TLSv1.3", "TLSv1.2" */
  const char *cipher;      /* e.g. "TLS_AES_256_GCM_SHA384" */
  const char *alpn;        /* "h2" */
  /* Server side: the host name the client asked for (SNI), or NULL. */
  const char *server_name;
  /* 1 when the peer presented a certificate and it was verified against
   * the trust roots (always so on a client, and on a server with
   * client_auth REQUIRE). */
  int verified;
  /* The peer certificate, when it sent one (else all NULL / empty):
   * subject and issuer as RFC 2253 strings ("CN=client,O=Example"), the
   * subject's common name, the subjectAltName entries by kind, and the
   * certificate in PEM. */
  const char *subject;
  const char *issuer;
  const char *common_name;
  const char *const *dns_sans; /* "client.example.com" */
  size_t n_dns_sans;
  const char *const *ip_sans; /* "127.0.0.1", "::1" */
  size_t n_ip_sans;
  const char *const *uri_sans; /* "spiffe://example.org/client" */
  size_t n_uri_sans;
  const char *const *email_sans;
  size_t n_email_sans;
  const char *cert_pem;
} mrpc_peer_identity;

/* The identity of the call's peer, or NULL on a plaintext connection (and
 * on a client call not yet on a connection).  Borrowed: valid while the
 * caller holds the call.  Thread-safe. */
MRPC_EXTERN const mrpc_peer_identity *mrpc_call_peer_identity(
    const mrpc_call *call);

/* Shorthands: the peer certificate's subject (RFC 2253), or NULL (no TLS,
 * or no client certificate); the i-th subjectAltName of any kind as
 * "DNS:name", "IP:addr", "URI:uri" or "email:addr" (DNS first, then IP,
 * URI, email), or NULL when i is past the end.  Borrowed like the
 * identity. */
MRPC_EXTERN const char *mrpc_call_peer_subject(const mrpc_call *call);
MRPC_EXTERN const char *mrpc_call_peer_san(const mrpc_call *call, size_t i);

#ifdef __cplusplus
}
#endif
#endif
