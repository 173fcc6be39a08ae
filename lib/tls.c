/* TLS through OpenSSL: credentials (SSL_CTX), one SSL per connection on a
 * pair of memory BIOs, and the peer identity handed to calls.  The only
 * file that includes OpenSSL.  Nothing here does I/O: conn_io.c feeds the
 * socket's bytes in and sends what comes out, on the event loop. */
#include "tls.h"

#include "alloc.h"
#include "call.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* TLS 1.2 suites: ECDHE + AEAD only (RFC 7540 9.2.2 forbids the rest for
 * HTTP/2).  TLS 1.3 suites are OpenSSL's defaults (all AEAD). */
#define TLS12_CIPHERS                                                        \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"              \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"              \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static const unsigned char ALPN_H2[] = {2, 'h', '2'};

#if OPENSSL_VERSION_NUMBER < 0x30000000L /* OpenSSL 1.1.1 */
#define SSL_get0_peer_certificate(s) peer_cert_111(s)
static X509 *peer_cert_111(const SSL *s) {
  X509 *x = SSL_get_peer_certificate(s);
  X509_free(x); /* the session keeps its own reference */
  return x;
}
#endif

struct mrpc_tls_creds {
  atomic_int refs;
  int is_server;
  int hs_timeout_ms;
  SSL_CTX *ctx;
  char *host_override;
};

struct mrpc__tls_peer {
  atomic_int refs;
  const mrpc_allocator *alloc;
  mrpc_peer_identity pub;
  const char **all_sans; /* "DNS:x", "IP:y", ... */
  size_t n_all_sans;
  void **owned; /* every allocation above, freed together */
  size_t n_owned, cap_owned;
  int oom;
};

struct mrpc__tls {
  const mrpc_allocator *alloc;
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  int is_server;
  int done, failed;
  mrpc__tls_peer *peer;
  char host[256];
  char err[256];
};

/* ---- errors ---- */

static void seterr(char *err, size_t len, const char *fmt, ...) {
  if (!err || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

/* The reason of the oldest queued OpenSSL error, or dflt; clears the
 * queue (it is per thread and must be empty before the next I/O call). */
static const char *ssl_reason(char *buf, size_t len, const char *dflt) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r)
    snprintf(buf, len, "%s", r);
  else if (e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "%s", dflt);
  ERR_clear_error();
  return buf;
}

/* ---- credentials ---- */

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1; /* never prompt on a terminal: encrypted keys just fail */
}

static int readable(const char *path, const char *what, char *err,
                    size_t len) {
  if (access(path, R_OK) == 0) return 0;
  seterr(err, len, "%s %s: %s", what, path, strerror(errno));
  return MRPC_ERR_IO;
}

/* Leaf then chain, from PEM text (as SSL_CTX_use_certificate_chain_file). */
static int use_chain_pem(SSL_CTX *ctx, const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b) return 0;
  int ok = 0;
  X509 *x = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL);
  if (x && SSL_CTX_use_certificate(ctx, x) == 1 &&
      SSL_CTX_clear_chain_certs(ctx) == 1) {
    ok = 1;
    X509 *ca;
    while (ok && (ca = PEM_read_bio_X509(b, NULL, no_password, NULL))) {
      if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
        X509_free(ca);
        ok = 0;
      }
    }
    if (ok) ERR_clear_error(); /* the expected "no start line" at the end */
  }
  X509_free(x);
  BIO_free(b);
  return ok;
}

static int use_key_pem(SSL_CTX *ctx, const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b) return 0;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
  int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok;
}

/* Adds every certificate of pem to the trust store (and, server, to the
 * CA names sent in CertificateRequest).  Returns the count, or -1. */
static int add_cas_pem(SSL_CTX *ctx, const char *pem, int client_ca_list) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b) return -1;
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  X509 *x;
  int n = 0;
  while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL))) {
    int ok = X509_STORE_add_cert(st, x) == 1 &&
             (!client_ca_list || SSL_CTX_add_client_CA(ctx, x) == 1);
    X509_free(x);
    if (!ok) {
      n = -1;
      break;
    }
    n++;
  }
  BIO_free(b);
  if (n == 0) n = -1;
  if (n > 0) ERR_clear_error();
  return n;
}

/* After a failed SSL_CTX_use_PrivateKey*: the key was read but belongs to
 * another certificate? */
static int key_mismatch(char *err, size_t len) {
  unsigned long e;
  int mismatch = 0;
  while ((e = ERR_get_error()))
    if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
        ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
      mismatch = 1;
  if (mismatch)
    seterr(err, len, "the private key does not match the certificate");
  return mismatch;
}

/* Certificate chain and key, from files or PEM text. */
static int load_identity(SSL_CTX *ctx, const char *chain_file,
                         const char *key_file, const char *chain_pem,
                         const char *key_pem, char *err, size_t len) {
  char why[160];
  int rv;
  if (chain_file) {
    if ((rv = readable(chain_file, "certificate chain", err, len))) return rv;
    if (SSL_CTX_use_certificate_chain_file(ctx, chain_file) != 1) {
      seterr(err, len, "certificate chain %s: %s", chain_file,
             ssl_reason(why, sizeof why, "bad PEM"));
      return MRPC_ERR_PARSE;
    }
  } else if (!use_chain_pem(ctx, chain_pem)) {
    seterr(err, len, "certificate chain (PEM text): %s",
           ssl_reason(why, sizeof why, "bad PEM"));
    return MRPC_ERR_PARSE;
  }
  if (key_file) {
    if ((rv = readable(key_file, "private key", err, len))) return rv;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH &&
          key_mismatch(err, len))
        return MRPC_ERR_INVAL;
      seterr(err, len, "private key %s: %s", key_file,
             ssl_reason(why, sizeof why, "bad PEM"));
      return MRPC_ERR_PARSE;
    }
  } else if (!use_key_pem(ctx, key_pem)) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH &&
        key_mismatch(err, len))
      return MRPC_ERR_INVAL;
    seterr(err, len, "private key (PEM text): %s",
           ssl_reason(why, sizeof why, "bad PEM"));
    return MRPC_ERR_PARSE;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    seterr(err, len, "the private key does not match the certificate: %s",
           ssl_reason(why, sizeof why, "mismatch"));
    return MRPC_ERR_INVAL;
  }
  return 0;
}

/* Trust roots from a file or PEM text; client_ca_list: also the names a
 * server sends in its CertificateRequest. */
static int load_cas(SSL_CTX *ctx, const char *file, const char *pem,
                    int client_ca_list, char *err, size_t len) {
  char why[160];
  int rv;
  if (file) {
    if ((rv = readable(file, "CA file", err, len))) return rv;
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
      seterr(err, len, "CA file %s: %s", file,
             ssl_reason(why, sizeof why, "no certificate in it"));
      return MRPC_ERR_PARSE;
    }
    if (client_ca_list) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(file);
      if (!names) {
        seterr(err, len, "CA file %s: %s", file,
               ssl_reason(why, sizeof why, "no certificate in it"));
        return MRPC_ERR_PARSE;
      }
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    return 0;
  }
  if (add_cas_pem(ctx, pem, client_ca_list) < 0) {
    seterr(err, len, "CA (PEM text): %s",
           ssl_reason(why, sizeof why, "no certificate in it"));
    return MRPC_ERR_PARSE;
  }
  return 0;
}

/* Server: ALPN must offer "h2"; anything else gets the alert
 * no_application_protocol. */
static int alpn_select(SSL *s, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)s;
  (void)arg;
  for (unsigned i = 0; i < inlen;) {
    unsigned n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Server: a ClientHello without ALPN at all is refused the same way (the
 * select callback only runs when the extension is there). */
static int client_hello(SSL *s, int *al, void *arg) {
  (void)arg;
  const unsigned char *p;
  size_t len;
  if (!SSL_client_hello_get0_ext(
          s, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len)) {
    *al = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *new_ctx(int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
                                    : TLS_client_method());
  if (!ctx) return NULL;
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_default_passwd_cb(ctx, no_password);
  return ctx;
}

static int creds_make(SSL_CTX *ctx, int server, int timeout_ms,
                      const char *override, mrpc_tls_creds **out, char *err,
                      size_t len) {
  mrpc_tls_creds *c = calloc(1, sizeof *c);
  if (c && override && !(c->host_override = strdup(override))) {
    free(c);
    c = NULL;
  }
  if (!c) {
    SSL_CTX_free(ctx);
    seterr(err, len, "out of memory");
    return MRPC_ERR_NOMEM;
  }
  atomic_init(&c->refs, 1);
  c->is_server = server;
  c->ctx = ctx;
  c->hs_timeout_ms = timeout_ms > 0 ? timeout_ms : MRPC_TLS_HANDSHAKE_TIMEOUT_MS;
  *out = c;
  return 0;
}

void mrpc_tls_server_opts_init(mrpc_tls_server_opts *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

void mrpc_tls_client_opts_init(mrpc_tls_client_opts *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

int mrpc_tls_server_creds_new(const mrpc_tls_server_opts *opts,
                              mrpc_tls_creds **out, char *err, size_t len) {
  if (err && len) err[0] = '\0';
  mrpc_tls_server_opts o;
  mrpc_tls_server_opts_init(&o);
  if (!opts || !out || opts->size < sizeof(size_t) || opts->size > sizeof o) {
    seterr(err, len, "invalid arguments");
    return MRPC_ERR_INVAL;
  }
  memcpy(&o, opts, opts->size);
  if (!o.cert_chain_file == !o.cert_chain_pem ||
      !o.private_key_file == !o.private_key_pem) {
    seterr(err, len, "give a certificate chain and a private key, each as "
                     "a file or as PEM text");
    return MRPC_ERR_INVAL;
  }
  if ((unsigned)o.client_auth > MRPC_TLS_CLIENT_AUTH_REQUIRE ||
      (o.client_auth != MRPC_TLS_CLIENT_AUTH_NONE &&
       !o.client_ca_file == !o.client_ca_pem) ||
      o.handshake_timeout_ms < 0) {
    seterr(err, len, "client authentication needs one client CA (file or "
                     "PEM text)");
    return MRPC_ERR_INVAL;
  }
  ERR_clear_error();
  SSL_CTX *ctx = new_ctx(1);
  if (!ctx) {
    seterr(err, len, "out of memory");
    return MRPC_ERR_NOMEM;
  }
  int rv = load_identity(ctx, o.cert_chain_file, o.private_key_file,
                         o.cert_chain_pem, o.private_key_pem, err, len);
  if (!rv && o.client_auth != MRPC_TLS_CLIENT_AUTH_NONE)
    rv = load_cas(ctx, o.client_ca_file, o.client_ca_pem, 1, err, len);
  if (rv) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rv;
  }
  int mode = SSL_VERIFY_NONE;
  if (o.client_auth == MRPC_TLS_CLIENT_AUTH_OPTIONAL) mode = SSL_VERIFY_PEER;
  if (o.client_auth == MRPC_TLS_CLIENT_AUTH_REQUIRE)
    mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, NULL);
  /* Sessions resumed with a client certificate need an id context. */
  static const unsigned char sid[] = "minirpc";
  SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
  return creds_make(ctx, 1, o.handshake_timeout_ms, NULL, out, err, len);
}

int mrpc_tls_client_creds_new(const mrpc_tls_client_opts *opts,
                              mrpc_tls_creds **out, char *err, size_t len) {
  if (err && len) err[0] = '\0';
  mrpc_tls_client_opts o;
  mrpc_tls_client_opts_init(&o);
  if (!out || (opts && (opts->size < sizeof(size_t) ||
                        opts->size > sizeof o))) {
    seterr(err, len, "invalid arguments");
    return MRPC_ERR_INVAL;
  }
  if (opts) memcpy(&o, opts, opts->size);
  int has_chain = o.cert_chain_file || o.cert_chain_pem;
  int has_key = o.private_key_file || o.private_key_pem;
  if ((o.ca_file && o.ca_pem) || (o.cert_chain_file && o.cert_chain_pem) ||
      (o.private_key_file && o.private_key_pem) || has_chain != has_key ||
      o.handshake_timeout_ms < 0 ||
      (o.server_host_override && !o.server_host_override[0])) {
    seterr(err, len, "invalid options (one CA source; a client certificate "
                     "needs its key)");
    return MRPC_ERR_INVAL;
  }
  ERR_clear_error();
  SSL_CTX *ctx = new_ctx(0);
  if (!ctx) {
    seterr(err, len, "out of memory");
    return MRPC_ERR_NOMEM;
  }
  int rv = 0;
  if (o.ca_file || o.ca_pem) {
    rv = load_cas(ctx, o.ca_file, o.ca_pem, 0, err, len);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    char why[160];
    seterr(err, len, "system CA store: %s",
           ssl_reason(why, sizeof why, "can not be loaded"));
    rv = MRPC_ERR_IO;
  }
  if (!rv && has_chain)
    rv = load_identity(ctx, o.cert_chain_file, o.private_key_file,
                       o.cert_chain_pem, o.private_key_pem, err, len);
  if (!rv && SSL_CTX_set_alpn_protos(ctx, ALPN_H2, sizeof ALPN_H2) != 0) {
    seterr(err, len, "out of memory");
    rv = MRPC_ERR_NOMEM;
  }
  if (rv) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rv;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  return creds_make(ctx, 0, o.handshake_timeout_ms, o.server_host_override,
                    out, err, len);
}

mrpc_tls_creds *mrpc_tls_creds_ref(mrpc_tls_creds *c) {
  if (c) atomic_fetch_add(&c->refs, 1);
  return c;
}

void mrpc_tls_creds_unref(mrpc_tls_creds *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  SSL_CTX_free(c->ctx);
  free(c->host_override);
  free(c);
}

int mrpc__tls_creds_is_server(const mrpc_tls_creds *c) { return c->is_server; }
int mrpc__tls_creds_handshake_timeout_ms(const mrpc_tls_creds *c) {
  return c->hs_timeout_ms;
}
const char *mrpc__tls_creds_host_override(const mrpc_tls_creds *c) {
  return c->host_override;
}

/* ---- peer identity ---- */

static void *peer_own(mrpc__tls_peer *p, void *mem) {
  if (!mem) {
    p->oom = 1;
    return NULL;
  }
  if (p->n_owned == p->cap_owned) {
    size_t cap = p->cap_owned ? 2 * p->cap_owned : 16;
    void **o = mrpc__realloc(p->alloc, p->owned, cap * sizeof *o);
    if (!o) {
      mrpc__free(p->alloc, mem);
      p->oom = 1;
      return NULL;
    }
    p->owned = o;
    p->cap_owned = cap;
  }
  p->owned[p->n_owned++] = mem;
  return mem;
}

static const char *peer_str(mrpc__tls_peer *p, const char *prefix,
                            const void *s, size_t n) {
  size_t pl = prefix ? strlen(prefix) : 0;
  char *d = mrpc__malloc(p->alloc, pl + n + 1);
  if (d) {
    if (pl) memcpy(d, prefix, pl);
    memcpy(d + pl, s, n);
    d[pl + n] = '\0';
  }
  return peer_own(p, d);
}

static const char *peer_bio_str(mrpc__tls_peer *p, BIO *b) {
  char *d;
  long n = b ? BIO_get_mem_data(b, &d) : -1;
  const char *s = n >= 0 ? peer_str(p, NULL, d, (size_t)n) : NULL;
  if (n < 0) p->oom = 1;
  BIO_free(b);
  return s;
}

static const char *peer_name(mrpc__tls_peer *p, const X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  if (b && X509_NAME_print_ex(b, (X509_NAME *)n, 0,
                              XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    BIO_free(b);
    b = NULL;
  }
  return peer_bio_str(p, b);
}

static const char *peer_cn(mrpc__tls_peer *p, const X509_NAME *n) {
  int i = X509_NAME_get_index_by_NID((X509_NAME *)n, NID_commonName, -1);
  if (i < 0) return NULL;
  unsigned char *u = NULL;
  int len = ASN1_STRING_to_UTF8(
      &u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry((X509_NAME *)n, i)));
  if (len < 0) return NULL;
  const char *s = memchr(u, 0, (size_t)len) ? NULL
                                            : peer_str(p, NULL, u, (size_t)len);
  OPENSSL_free(u);
  return s;
}

enum { SAN_DNS, SAN_IP, SAN_URI, SAN_EMAIL, SAN_KINDS };
static const char *const SAN_PREFIX[SAN_KINDS] = {"DNS:", "IP:", "URI:",
                                                  "email:"};

/* The SAN's kind and text (in buf for IPs), or -1 to skip it (other kinds,
 * or an embedded NUL that would truncate the name). */
static int san_text(const GENERAL_NAME *g, char *buf, size_t blen,
                    const char **s, size_t *n) {
  const ASN1_STRING *a;
  int kind;
  switch (g->type) {
  case GEN_DNS: a = g->d.dNSName; kind = SAN_DNS; break;
  case GEN_URI: a = g->d.uniformResourceIdentifier; kind = SAN_URI; break;
  case GEN_EMAIL: a = g->d.rfc822Name; kind = SAN_EMAIL; break;
  case GEN_IPADD: {
    a = g->d.iPAddress;
    int len = ASN1_STRING_length(a);
    int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
    if (!af || !inet_ntop(af, ASN1_STRING_get0_data(a), buf,
                          (socklen_t)blen))
      return -1;
    *s = buf;
    *n = strlen(buf);
    return SAN_IP;
  }
  default: return -1;
  }
  *s = (const char *)ASN1_STRING_get0_data(a);
  *n = (size_t)ASN1_STRING_length(a);
  if (memchr(*s, 0, *n)) return -1;
  return kind;
}

static void peer_sans(mrpc__tls_peer *p, X509 *x) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (!gens) return;
  int total = sk_GENERAL_NAME_num(gens);
  size_t count[SAN_KINDS] = {0}, all = 0;
  char ip[64];
  const char *s;
  size_t n;
  for (int i = 0; i < total; i++) {
    int k = san_text(sk_GENERAL_NAME_value(gens, i), ip, sizeof ip, &s, &n);
    if (k >= 0) {
      count[k]++;
      all++;
    }
  }
  const char **arr[SAN_KINDS];
  for (int k = 0; k < SAN_KINDS; k++)
    arr[k] = count[k] ? peer_own(p, mrpc__calloc(p->alloc, count[k],
                                                 sizeof(char *)))
                      : NULL;
  const char **allv =
      all ? peer_own(p, mrpc__calloc(p->alloc, all, sizeof(char *))) : NULL;
  if (p->oom) {
    GENERAL_NAMES_free(gens);
    return;
  }
  size_t fill[SAN_KINDS] = {0};
  for (int i = 0; i < total; i++) {
    int k = san_text(sk_GENERAL_NAME_value(gens, i), ip, sizeof ip, &s, &n);
    if (k < 0) continue;
    arr[k][fill[k]++] = peer_str(p, NULL, s, n);
  }
  /* The combined list, by kind then certificate order. */
  size_t a = 0;
  for (int k = 0; k < SAN_KINDS; k++)
    for (int i = 0; i < total; i++) {
      if (san_text(sk_GENERAL_NAME_value(gens, i), ip, sizeof ip, &s, &n) !=
          k)
        continue;
      allv[a++] = peer_str(p, SAN_PREFIX[k], s, n);
    }
  GENERAL_NAMES_free(gens);
  p->pub.dns_sans = arr[SAN_DNS];
  p->pub.n_dns_sans = count[SAN_DNS];
  p->pub.ip_sans = arr[SAN_IP];
  p->pub.n_ip_sans = count[SAN_IP];
  p->pub.uri_sans = arr[SAN_URI];
  p->pub.n_uri_sans = count[SAN_URI];
  p->pub.email_sans = arr[SAN_EMAIL];
  p->pub.n_email_sans = count[SAN_EMAIL];
  p->all_sans = allv;
  p->n_all_sans = all;
}

static mrpc__tls_peer *peer_build(mrpc__tls *t) {
  mrpc__tls_peer *p = mrpc__calloc(t->alloc, 1, sizeof *p);
  if (!p) return NULL;
  atomic_init(&p->refs, 1);
  p->alloc = t->alloc;
  p->pub.security = "tls";
  /* Static strings of OpenSSL's tables. */
  p->pub.tls_version = SSL_get_version(t->ssl);
  p->pub.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
  p->pub.alpn = "h2";
  if (t->is_server) {
    const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    if (sni) p->pub.server_name = peer_str(p, NULL, sni, strlen(sni));
  }
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (x) {
    p->pub.verified = SSL_get_verify_result(t->ssl) == X509_V_OK &&
                      (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER);
    p->pub.subject = peer_name(p, X509_get_subject_name(x));
    p->pub.issuer = peer_name(p, X509_get_issuer_name(x));
    p->pub.common_name = peer_cn(p, X509_get_subject_name(x));
    peer_sans(p, x);
    BIO *b = BIO_new(BIO_s_mem());
    if (b && PEM_write_bio_X509(b, x) != 1) {
      BIO_free(b);
      b = NULL;
    }
    p->pub.cert_pem = peer_bio_str(p, b);
  }
  ERR_clear_error();
  if (p->oom) {
    mrpc__tls_peer_unref(p);
    return NULL;
  }
  return p;
}

mrpc__tls_peer *mrpc__tls_peer_ref(mrpc__tls_peer *p) {
  if (p) atomic_fetch_add(&p->refs, 1);
  return p;
}

void mrpc__tls_peer_unref(mrpc__tls_peer *p) {
  if (!p || atomic_fetch_sub(&p->refs, 1) != 1) return;
  for (size_t i = 0; i < p->n_owned; i++) mrpc__free(p->alloc, p->owned[i]);
  mrpc__free(p->alloc, p->owned);
  mrpc__free(p->alloc, p);
}

static const mrpc__tls_peer *call_peer(const mrpc_call *call) {
  return call ? __atomic_load_n(&call->tls_peer, __ATOMIC_ACQUIRE) : NULL;
}

const mrpc_peer_identity *mrpc_call_peer_identity(const mrpc_call *call) {
  const mrpc__tls_peer *p = call_peer(call);
  return p ? &p->pub : NULL;
}

const char *mrpc_call_peer_subject(const mrpc_call *call) {
  const mrpc__tls_peer *p = call_peer(call);
  return p ? p->pub.subject : NULL;
}

const char *mrpc_call_peer_san(const mrpc_call *call, size_t i) {
  const mrpc__tls_peer *p = call_peer(call);
  return p && i < p->n_all_sans ? p->all_sans[i] : NULL;
}

/* ---- one connection ---- */

int mrpc__tls_new(mrpc_tls_creds *cr, const char *host,
                  const mrpc_allocator *alloc, mrpc__tls **out) {
  mrpc__tls *t = mrpc__calloc(alloc, 1, sizeof *t);
  if (!t) return MRPC_ERR_NOMEM;
  t->alloc = alloc;
  t->is_server = cr->is_server;
  t->ssl = SSL_new(cr->ctx);
  BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
  if (!t->ssl || !r || !w) goto fail;
  /* Empty means "try again later", not end of file. */
  BIO_set_mem_eof_return(r, -1);
  BIO_set_mem_eof_return(w, -1);
  SSL_set_bio(t->ssl, r, w); /* the SSL owns them from here */
  t->rbio = r;
  t->wbio = w;
  r = w = NULL;
  if (t->is_server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (host && host[0]) {
      snprintf(t->host, sizeof t->host, "%s", host);
      unsigned char ipbuf[16];
      int is_ip = inet_pton(AF_INET, host, ipbuf) == 1 ||
                  inet_pton(AF_INET6, host, ipbuf) == 1;
      if (is_ip) {
        /* No SNI for addresses (RFC 6066); match the IP SANs. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
          goto fail;
      } else {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
            SSL_set1_host(t->ssl, host) != 1)
          goto fail;
      }
    }
  }
  *out = t;
  return 0;
fail:
  ERR_clear_error();
  BIO_free(r);
  BIO_free(w);
  SSL_free(t->ssl);
  mrpc__free(alloc, t);
  return MRPC_ERR_NOMEM;
}

void mrpc__tls_free(mrpc__tls *t) {
  if (!t) return;
  SSL_free(t->ssl); /* and both BIOs */
  mrpc__tls_peer_unref(t->peer);
  mrpc__free(t->alloc, t);
}

int mrpc__tls_feed(mrpc__tls *t, const void *p, size_t n) {
  while (n) {
    int k = n > INT_MAX ? INT_MAX : (int)n;
    int w = BIO_write(t->rbio, p, k);
    if (w <= 0) {
      ERR_clear_error();
      snprintf(t->err, sizeof t->err, "out of memory");
      return MRPC_ERR_NOMEM;
    }
    p = (const char *)p + w;
    n -= (size_t)w;
  }
  return 0;
}

/* Records why the last SSL call failed (r: its return value). */
static void fail_ssl(mrpc__tls *t, int r) {
  int e = SSL_get_error(t->ssl, r);
  long vr = SSL_get_verify_result(t->ssl);
  char why[160];
  t->failed = 1;
  if (e == SSL_ERROR_SSL && vr != X509_V_OK && !t->is_server) {
    /* Our verification of the server's certificate. */
    ERR_clear_error();
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
      snprintf(t->err, sizeof t->err,
               "certificate verify failed: %s (the certificate does not "
               "name \"%.120s\")",
               X509_verify_cert_error_string(vr), t->host);
    else
      snprintf(t->err, sizeof t->err, "certificate verify failed: %s",
               X509_verify_cert_error_string(vr));
    return;
  }
  if (e == SSL_ERROR_SSL && vr != X509_V_OK && t->is_server) {
    ERR_clear_error();
    snprintf(t->err, sizeof t->err, "client certificate verify failed: %s",
             X509_verify_cert_error_string(vr));
    return;
  }
  snprintf(t->err, sizeof t->err, "%s",
           ssl_reason(why, sizeof why,
                      e == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                             : "protocol error"));
}

int mrpc__tls_handshake(mrpc__tls *t) {
  if (t->done) return 1;
  if (t->failed) return MRPC_ERR_PROTO;
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r != 1) {
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    fail_ssl(t, r);
    return MRPC_ERR_PROTO;
  }
  const unsigned char *a = NULL;
  unsigned alen = 0;
  SSL_get0_alpn_selected(t->ssl, &a, &alen);
  if (alen != 2 || memcmp(a, "h2", 2) != 0) {
    t->failed = 1;
    snprintf(t->err, sizeof t->err, "the %s did not negotiate ALPN \"h2\"",
             t->is_server ? "client" : "server");
    return MRPC_ERR_PROTO;
  }
  t->peer = peer_build(t);
  if (!t->peer) {
    t->failed = 1;
    snprintf(t->err, sizeof t->err, "out of memory");
    return MRPC_ERR_PROTO;
  }
  t->done = 1;
  return 1;
}

ssize_t mrpc__tls_read(mrpc__tls *t, void *buf, size_t cap) {
  if (t->failed) return MRPC_ERR_PROTO;
  ERR_clear_error();
  int r = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  if (r > 0) return r;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(t->err, sizeof t->err, "the peer closed the TLS session");
    return MRPC_ERR_CLOSED;
  }
  fail_ssl(t, r);
  return MRPC_ERR_PROTO;
}

int mrpc__tls_write(mrpc__tls *t, const void *p, size_t n) {
  if (t->failed) return MRPC_ERR_PROTO;
  ERR_clear_error();
  while (n) {
    int r = SSL_write(t->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r <= 0) {
      fail_ssl(t, r);
      return MRPC_ERR_PROTO;
    }
    p = (const char *)p + r;
    n -= (size_t)r;
  }
  return 0;
}

size_t mrpc__tls_out_pending(const mrpc__tls *t) {
  return BIO_ctrl_pending(t->wbio);
}

size_t mrpc__tls_out_take(mrpc__tls *t, void *buf, size_t cap) {
  int r = BIO_read(t->wbio, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  return r > 0 ? (size_t)r : 0;
}

void mrpc__tls_close_notify(mrpc__tls *t) {
  if (!t->done || t->failed) return;
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
}

const char *mrpc__tls_error(const mrpc__tls *t) { return t->err; }

mrpc__tls_peer *mrpc__tls_peer_of(const mrpc__tls *t) { return t->peer; }
