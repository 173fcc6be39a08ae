/* End to end over TLS: our client against our server (unary, the three
 * streaming kinds, large messages, many calls at once), hostname and CA
 * verification failures, mutual TLS (required, optional, the peer's
 * identity in handlers, interceptors and on the client), plaintext and TLS
 * peers on the wrong kind of server, ALPN refusal (openssl s_client), the
 * handshake timeout on both sides, and credential loading errors.
 * Certificates are made per run by tests/tls/make-certs.sh (openssl).
 *
 * Without arguments: the cmocka suite.  Two more modes for
 * tests/examples/tls.sh (grpcio on the other side):
 *   e2e_tls --serve PORT --certs DIR [--client-auth none|optional|require]
 *       serves the e2e echo service and grpc.testing.TestService
 *       (UnaryCall echoes the payload and puts the peer's subject, SANs and
 *       address in username, server_id and hostname; the streaming methods
 *       follow e2e_common.h) on 127.0.0.1:PORT with DIR/server1.pem; prints
 *       "listening on N"; runs until SIGTERM / SIGINT.
 *   e2e_tls --call HOST:PORT --certs DIR [--override NAME] [--client-cert]
 *           [--expect-username NAME]
 *       a few TestService calls with DIR/ca.pem as the only root; prints
 *       "ok CASE" / "fail CASE: why"; exit status 0 when all passed.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#define SERVER_NAME "foo.test.google.fr"
#define SERVER_SUBJECT "CN=*.test.google.fr,O=minirpc tests"
#define CLIENT_SUBJECT "CN=testclient,O=minirpc tests"

/* ---- certificates ---- */

static char g_script[PATH_MAX]; /* tests/tls/make-certs.sh */
static char g_certs[PATH_MAX];  /* the run's directory */

/* DIR/name; up to 8 at once per expression. */
static const char *cert(const char *name) {
  static char bufs[8][PATH_MAX + 64];
  static int next;
  char *b = bufs[next++ & 7];
  snprintf(b, sizeof bufs[0], "%s/%s", g_certs, name);
  return b;
}

static void find_script(const char *argv0) {
  const char *env = getenv("MRPC_TLS_CERT_SCRIPT");
  if (env) {
    snprintf(g_script, sizeof g_script, "%s", env);
    return;
  }
  snprintf(g_script, sizeof g_script, "tests/tls/make-certs.sh");
  if (access(g_script, X_OK) == 0) return;
  /* BUILD/tests/e2e_tls -> the source tree two levels up. */
  char exe[PATH_MAX];
  if (realpath(argv0, exe)) {
    char *d = dirname(dirname(dirname(exe)));
    snprintf(g_script, sizeof g_script, "%s/tests/tls/make-certs.sh", d);
  }
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  return buf;
}

/* ---- credentials ---- */

static mrpc_tls_creds *server_creds(const char *name, int auth,
                                    const char *client_ca, int hs_ms) {
  char crt[PATH_MAX + 64], key[PATH_MAX + 64], err[256];
  snprintf(crt, sizeof crt, "%s/%s.pem", g_certs, name);
  snprintf(key, sizeof key, "%s/%s.key", g_certs, name);
  mrpc_tls_server_opts o;
  mrpc_tls_server_opts_init(&o);
  o.cert_chain_file = crt;
  o.private_key_file = key;
  o.client_auth = (mrpc_tls_client_auth)auth;
  o.client_ca_file = client_ca;
  o.handshake_timeout_ms = hs_ms;
  mrpc_tls_creds *cr = NULL;
  int rc = mrpc_tls_server_creds_new(&o, &cr, err, sizeof err);
  if (rc) fprintf(stderr, "server creds: %s\n", err);
  assert_int_equal(rc, 0);
  return cr;
}

/* ca: file name in the cert dir; client: "client", "other-client" or NULL. */
static mrpc_tls_creds *client_creds(const char *ca, const char *override,
                                    const char *client, int hs_ms) {
  char crt[PATH_MAX + 64], key[PATH_MAX + 64], err[256];
  mrpc_tls_client_opts o;
  mrpc_tls_client_opts_init(&o);
  o.ca_file = ca ? cert(ca) : NULL;
  o.server_host_override = override;
  if (client) {
    snprintf(crt, sizeof crt, "%s/%s.pem", g_certs, client);
    snprintf(key, sizeof key, "%s/%s.key", g_certs, client);
    o.cert_chain_file = crt;
    o.private_key_file = key;
  }
  o.handshake_timeout_ms = hs_ms;
  mrpc_tls_creds *cr = NULL;
  int rc = mrpc_tls_client_creds_new(&o, &cr, err, sizeof err);
  if (rc) fprintf(stderr, "client creds: %s\n", err);
  assert_int_equal(rc, 0);
  return cr;
}

/* ---- the service: e2e echo + grpc.testing.TestService ---- */

#define TS(name, kind, req, resp)                                           \
  {"/grpc.testing.TestService/" name, kind, E2E_D(req), E2E_D(resp)}
enum { TS_UNARY, TS_OUTPUT, TS_INPUT, TS_FULL, TS_COUNT };
static const mrpc_method k_ts[TS_COUNT] = {
    [TS_UNARY] = TS("UnaryCall", MRPC_UNARY, simple_request, simple_response),
    [TS_OUTPUT] = TS("StreamingOutputCall", MRPC_SERVER_STREAMING,
                     streaming_output_call_request,
                     streaming_output_call_response),
    [TS_INPUT] = TS("StreamingInputCall", MRPC_CLIENT_STREAMING,
                    streaming_input_call_request,
                    streaming_input_call_response),
    [TS_FULL] = TS("FullDuplexCall", MRPC_BIDI_STREAMING,
                   streaming_output_call_request,
                   streaming_output_call_response),
};

/* UnaryCall: echoes the payload; username = the peer's subject, server_id
 * = its SANs joined by ',', hostname = the peer address, oauth_scope =
 * "verified=V version=TLSvX" (or "plaintext").  Blocking, so the identity
 * is read on a worker thread. */
static void whoami(mrpc_stream *s, void *user) {
  (void)user;
  mrpc_call *call = mrpc_stream_call(s);
  ProtobufCMessage *req;
  while (mrpc_stream_recv(s, &req) == 1) {
    size_t len;
    const uint8_t *body = e2e_body(req, &len);
    char sans[1024] = "", scope[128];
    const char *san;
    for (size_t i = 0; (san = mrpc_call_peer_san(call, i)); i++)
      snprintf(sans + strlen(sans), sizeof sans - strlen(sans), "%s%s",
               i ? "," : "", san);
    const mrpc_peer_identity *id = mrpc_call_peer_identity(call);
    if (id)
      snprintf(scope, sizeof scope, "verified=%d version=%s alpn=%s sni=%s",
               id->verified, id->tls_version, id->alpn,
               id->server_name ? id->server_name : "(none)");
    else
      snprintf(scope, sizeof scope, "plaintext");
    const char *subj = mrpc_call_peer_subject(call);
    e2e_msg r;
    e2e_msg_init(&r, E2E_D(simple_response), body, len);
    r.u.sresp.username = (char *)(subj ? subj : "");
    r.u.sresp.server_id = sans;
    r.u.sresp.hostname = (char *)mrpc_call_peer(call);
    r.u.sresp.oauth_scope = scope;
    mrpc_stream_send(s, &r.u.base);
    protobuf_c_message_free_unpacked(req, NULL);
  }
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* /e2e.Tls/SlowSink (client streaming): an event handler that sleeps 2 ms
 * per message on the I/O thread (a server too slow to read), then answers
 * with the byte count. */
static const mrpc_method k_slow_sink = {
    "/e2e.Tls/SlowSink", MRPC_CLIENT_STREAMING,
    E2E_D(streaming_input_call_request), E2E_D(streaming_input_call_response)};

static void sink_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
  (void)call;
  size_t len;
  e2e_body(msg, &len);
  *(size_t *)ctx += len;
  e2e_sleep_ms(2);
}

static void sink_on_half_close(mrpc_call *call, void *ctx) {
  Grpc__Testing__StreamingInputCallResponse r =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  r.aggregated_payload_size = (int32_t) * (size_t *)ctx;
  mrpc_call_send(call, &r.base);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void sink_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  free(ctx);
}

static void slow_sink(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {sink_on_message, sink_on_half_close,
                                    NULL, sink_on_done};
  size_t *count = calloc(1, sizeof *count);
  if (!count) abort();
  mrpc_call_set_ops(call, &ops, count);
}

/* An interceptor that records the subject it sees at the start of
 * UnaryCall. */
static pthread_mutex_t g_ic_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_ic_subject[256];
static int g_ic_calls;

static mrpc_status_code ic_start(mrpc_call *call, void *ctx, void **data,
                                 const char **message) {
  (void)ctx;
  (void)data;
  (void)message;
  if (mrpc_call_method(call) != &k_ts[TS_UNARY]) return MRPC_STATUS_OK;
  const char *subj = mrpc_call_peer_subject(call);
  pthread_mutex_lock(&g_ic_mu);
  snprintf(g_ic_subject, sizeof g_ic_subject, "%s", subj ? subj : "(none)");
  g_ic_calls++;
  pthread_mutex_unlock(&g_ic_mu);
  return MRPC_STATUS_OK;
}

static const mrpc_interceptor k_ic = {.version = MRPC_INTERCEPTOR_VERSION,
                                      .name = "tls-peer",
                                      .on_start = ic_start};

typedef struct tsrv {
  mrpc_server *srv;
  int port;
  char target[64];
} tsrv;

/* Starts a server (2 I/O threads) on 127.0.0.1:port with both echo
 * styles, the TestService and the interceptor; cr may be NULL
 * (plaintext); the server keeps its own reference. */
static int tsrv_start(tsrv *s, mrpc_tls_creds *cr, int port) {
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  o.tls = cr;
  memset(s, 0, sizeof *s);
  int rc = mrpc_server_new(&o, &s->srv);
  if (rc) return rc;
  for (int k = 0; k < 4; k++) {
    mrpc_method_handler ev = {e2e_event_echo, NULL, NULL};
    mrpc_method_handler bl = {NULL, e2e_blocking_echo, NULL};
    if ((rc = mrpc_server_add_method(s->srv, &e2e_methods[E2E_EVENT][k],
                                     &ev)) ||
        (rc = mrpc_server_add_method(s->srv, &e2e_methods[E2E_BLOCKING][k],
                                     &bl)))
      return rc;
  }
  mrpc_method_handler h[TS_COUNT] = {
      [TS_UNARY] = {NULL, whoami, NULL},
      [TS_OUTPUT] = {e2e_event_echo, NULL, NULL},
      [TS_INPUT] = {e2e_event_echo, NULL, NULL},
      [TS_FULL] = {e2e_event_echo, NULL, NULL},
  };
  for (int i = 0; i < TS_COUNT; i++)
    if ((rc = mrpc_server_add_method(s->srv, &k_ts[i], &h[i]))) return rc;
  mrpc_method_handler sink = {slow_sink, NULL, NULL};
  if ((rc = mrpc_server_add_method(s->srv, &k_slow_sink, &sink))) return rc;
  if ((rc = mrpc_server_add_interceptor(s->srv, &k_ic, NULL, NULL))) return rc;
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  if ((rc = mrpc_server_listen(s->srv, addr, &s->port)) ||
      (rc = mrpc_server_start(s->srv)))
    return rc;
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  return 0;
}

static void tsrv_start_ok(tsrv *s, mrpc_tls_creds *cr) {
  assert_int_equal(tsrv_start(s, cr, 0), 0);
  mrpc_tls_creds_unref(cr);
}

static void tsrv_stop(tsrv *s) {
  mrpc_server_del(s->srv);
  s->srv = NULL;
}

/* A channel to target with cr (may be NULL); drops the caller's cr. */
static mrpc_channel *tchan(const char *target, mrpc_tls_creds *cr) {
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.tls = cr;
  mrpc_channel *ch = NULL;
  assert_int_equal(mrpc_channel_new(target, &o, &ch), 0);
  mrpc_tls_creds_unref(cr);
  return ch;
}

/* One unary echo; returns the code, the status message in msg. */
static int unary_status(mrpc_channel *ch, char *msg, size_t len) {
  e2e_msg m;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  const mrpc_method *meth = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  ProtobufCMessage *resp = NULL;
  mrpc_status st;
  assert_int_equal(mrpc_channel_unary(ch, meth,
                                      e2e_msg_str(&m, meth->request, "ping"),
                                      &o, &resp, &st),
                   0);
  if (resp) {
    e2e_assert_body(resp, "ping");
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  snprintf(msg, len, "%s", st.message ? st.message : "");
  int code = st.code;
  mrpc_status_free(&st);
  return code;
}

#define assert_contains(hay, needle)                                         \
  do {                                                                       \
    if (!strstr((hay), (needle)))                                            \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));          \
  } while (0)

/* UnaryCall (whoami): fills the four strings (each 1024 bytes). */
static int whoami_call(mrpc_channel *ch, char *user, char *sans, char *host,
                       char *scope) {
  e2e_msg m;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_msg_str(&m, E2E_D(simple_request), "who");
  m.u.sreq.fill_username = 1;
  ProtobufCMessage *resp = NULL;
  mrpc_status st;
  assert_int_equal(
      mrpc_channel_unary(ch, &k_ts[TS_UNARY], &m.u.base, &o, &resp, &st), 0);
  int code = st.code;
  if (code == MRPC_STATUS_OK) {
    const Grpc__Testing__SimpleResponse *r = (const void *)resp;
    e2e_assert_body(resp, "who");
    snprintf(user, 1024, "%s", r->username);
    snprintf(sans, 1024, "%s", r->server_id);
    snprintf(host, 1024, "%s", r->hostname);
    snprintf(scope, 1024, "%s", r->oauth_scope);
    protobuf_c_message_free_unpacked(resp, NULL);
  } else {
    fprintf(stderr, "whoami: %d %s\n", st.code, st.message);
  }
  mrpc_status_free(&st);
  return code;
}

/* ---- group fixture: the certificates ---- */

static int group_setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  snprintf(g_certs, sizeof g_certs, "%s/e2e_tls.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_certs)) {
    perror("mkdtemp");
    return -1;
  }
  char cmd[3 * PATH_MAX];
  snprintf(cmd, sizeof cmd, "'%s' '%s' >/dev/null", g_script, g_certs);
  if (system(cmd) != 0) {
    fprintf(stderr, "could not make certificates with %s\n", g_script);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  char cmd[PATH_MAX + 32];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_certs);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_unary_over_tls_both_handler_and_client_styles(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  for (int srv = 0; srv < 2; srv++) {
    assert_int_equal(e2e_unary_echo(ch, srv, "hello tls"), MRPC_STATUS_OK);
    e2e_cli c;
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_cli_unary(&c, ch, &e2e_methods[srv][MRPC_UNARY], &o, "event tls");
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    e2e_cli_assert_body(&c, 0, "event tls");
    /* The client sees the server's identity. */
    const mrpc_peer_identity *id = mrpc_call_peer_identity(c.call);
    assert_non_null(id);
    assert_string_equal(id->security, "tls");
    assert_string_equal(id->alpn, "h2");
    assert_string_equal(id->tls_version, "TLSv1.3");
    assert_int_equal(id->verified, 1);
    assert_string_equal(id->subject, SERVER_SUBJECT);
    assert_string_equal(id->common_name, "*.test.google.fr");
    assert_int_equal(id->n_dns_sans, 3);
    assert_string_equal(id->dns_sans[0], "foo.test.google.fr");
    assert_int_equal(id->n_ip_sans, 2);
    assert_string_equal(id->ip_sans[0], "127.0.0.1");
    assert_string_equal(id->ip_sans[1], "::1");
    assert_non_null(id->cert_pem);
    assert_contains(id->cert_pem, "-----BEGIN CERTIFICATE-----");
    assert_string_equal(mrpc_call_peer_san(c.call, 0),
                        "DNS:foo.test.google.fr");
    assert_string_equal(mrpc_call_peer_san(c.call, 3), "IP:127.0.0.1");
    assert_null(mrpc_call_peer_san(c.call, 5));
    e2e_cli_free(&c);
  }
  /* Server side: no client certificate, the address stays "ipv4:...". */
  char user[1024], sans[1024], host[1024], scope[1024];
  assert_int_equal(whoami_call(ch, user, sans, host, scope), MRPC_STATUS_OK);
  assert_string_equal(user, "");
  assert_string_equal(sans, "");
  assert_true(strncmp(host, "ipv4:127.0.0.1:", 15) == 0);
  assert_contains(scope, "verified=0");
  assert_contains(scope, "alpn=h2");
  assert_contains(scope, "sni=" SERVER_NAME);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

/* Names checked without an override: the IP SAN for 127.0.0.1, the DNS
 * SAN for localhost; and the authority's host when one is set. */
static void test_hostname_from_target_or_authority(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  char msg[512], target[64];
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", NULL, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  snprintf(target, sizeof target, "localhost:%d", s.port);
  ch = tchan(target, client_creds("ca.pem", NULL, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.tls = client_creds("ca.pem", NULL, NULL, 0);
  o.authority = "bar.test.google.fr:443";
  assert_int_equal(mrpc_channel_new(s.target, &o, &ch), 0);
  mrpc_tls_creds_unref(o.tls);
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  o.tls = client_creds("ca.pem", NULL, NULL, 0);
  o.authority = "example.com";
  assert_int_equal(mrpc_channel_new(s.target, &o, &ch), 0);
  mrpc_tls_creds_unref(o.tls);
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "hostname mismatch");
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_streaming_and_large_messages_over_tls(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS * 3, NULL);
  for (int srv = 0; srv < 2; srv++) {
    /* Server streaming: 24 x 64 KiB, through back-pressure. */
    const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
    e2e_msg req;
    e2e_msg_str(&req, m->request, "ss");
    e2e_msg_ask_responses(&req, 24, 65536);
    mrpc_stream *st;
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &st), 0);
    assert_int_equal(mrpc_stream_send(st, &req.u.base), 0);
    assert_int_equal(mrpc_stream_close_send(st), 0);
    ProtobufCMessage *r;
    int i = 0, rc;
    while ((rc = mrpc_stream_recv(st, &r)) == 1) {
      size_t len;
      const uint8_t *b = e2e_body(r, &len);
      assert_int_equal(len, 65536);
      assert_true(e2e_check_fill(b, len, (unsigned)i));
      i++;
      protobuf_c_message_free_unpacked(r, NULL);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(i, 24);
    mrpc_status fs;
    assert_int_equal(mrpc_stream_finish(st, &fs), 0);
    assert_int_equal(fs.code, MRPC_STATUS_OK);
    mrpc_status_free(&fs);

    /* Client streaming: the aggregate of 20 messages. */
    m = &e2e_methods[srv][MRPC_CLIENT_STREAMING];
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &st), 0);
    uint32_t fold = E2E_FOLD_INIT;
    for (int k = 0; k < 20; k++) {
      char body[32];
      snprintf(body, sizeof body, "part-%d", k);
      fold = e2e_fold(fold, (const uint8_t *)body, strlen(body));
      assert_int_equal(mrpc_stream_send(st, e2e_msg_str(&req, m->request,
                                                        body)),
                       0);
    }
    assert_int_equal(mrpc_stream_close_send(st), 0);
    assert_int_equal(mrpc_stream_recv(st, &r), 1);
    assert_int_equal(
        ((Grpc__Testing__StreamingInputCallResponse *)r)
            ->aggregated_payload_size,
        (int32_t)fold);
    protobuf_c_message_free_unpacked(r, NULL);
    assert_int_equal(mrpc_stream_finish(st, &fs), 0);
    assert_int_equal(fs.code, MRPC_STATUS_OK);
    mrpc_status_free(&fs);

    /* Large unary both ways: 1 MiB echoed. */
    size_t big = 1 << 20;
    char *body = e2e_xmalloc(big + 1);
    for (size_t k = 0; k < big; k++) body[k] = (char)('a' + k % 26);
    body[big] = '\0';
    assert_int_equal(e2e_unary_echo(ch, srv, body), MRPC_STATUS_OK);
    free(body);
  }
  /* 12 MiB in one server stream, to an event-driven client: the server's
   * socket fills, so TLS output waits for EPOLLOUT like plaintext. */
  {
    const mrpc_method *m = &e2e_methods[E2E_EVENT][MRPC_SERVER_STREAMING];
    e2e_msg req;
    e2e_msg_str(&req, m->request, "big");
    e2e_msg_ask_responses(&req, 48, 256 * 1024);
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
    assert_int_equal(mrpc_call_send(c.call, &req.u.base), 0);
    e2e_assert_sent(mrpc_call_close_send(c.call));
    e2e_cli_wait(&c, E2E_TIMEOUT_MS * 3);
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    assert_int_equal(c.n, 48);
    for (size_t i = 0; i < c.n; i++) {
      assert_int_equal(c.lens[i], 256 * 1024);
      assert_true(e2e_check_fill(c.bodies[i], c.lens[i], (unsigned)i));
    }
    e2e_cli_free(&c);
  }
  /* Bidi ping-pong, 16 calls at once, event-driven. */
  enum { N = 16 };
  e2e_cli c[N];
  for (int k = 0; k < N; k++) {
    e2e_cli_init(&c[k]);
    c[k].pp_method = &e2e_methods[k & 1][MRPC_BIDI_STREAMING];
    c[k].pp_total = 40;
    e2e_cli_start(&c[k], ch, c[k].pp_method, &o);
    e2e_cli_pp_next(&c[k], c[k].call);
  }
  for (int k = 0; k < N; k++) {
    e2e_cli_wait(&c[k], E2E_TIMEOUT_MS * 3);
    assert_int_equal(c[k].st.code, MRPC_STATUS_OK);
    assert_int_equal(c[k].n, 40);
    e2e_cli_assert_body(&c[k], 39, "ping-39");
    e2e_cli_free(&c[k]);
  }
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

/* Many client streams into a server that reads slowly: more than the
 * socket buffers hold is in flight, so the client's TLS output waits for
 * the socket (EAGAIN, EPOLLOUT) and the server pauses; every byte arrives. */
enum { SINK_CALLS = 12, SINK_MSGS = 12, SINK_SIZE = 128 * 1024 };

static void *sink_client(void *arg) {
  mrpc_channel *ch = arg;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS * 6, NULL);
  mrpc_stream *s;
  if (mrpc_channel_open_stream(ch, &k_slow_sink, &o, &s) != 0)
    return (void *)1;
  uint8_t *body = e2e_xmalloc(SINK_SIZE);
  e2e_fill(body, SINK_SIZE, 3);
  uintptr_t bad = 0;
  for (int i = 0; i < SINK_MSGS && !bad; i++) {
    e2e_msg m;
    if (mrpc_stream_send(s, e2e_msg_init(&m, k_slow_sink.request, body,
                                         SINK_SIZE)) != 0)
      bad = 2;
  }
  free(body);
  ProtobufCMessage *r = NULL;
  if (!bad && mrpc_stream_close_send(s) != 0) bad = 3;
  if (!bad && mrpc_stream_recv(s, &r) != 1) bad = 4;
  if (r) {
    if (((Grpc__Testing__StreamingInputCallResponse *)r)
            ->aggregated_payload_size != SINK_MSGS * SINK_SIZE)
      bad = 5;
    protobuf_c_message_free_unpacked(r, NULL);
  }
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  if (!bad && st.code != MRPC_STATUS_OK) {
    fprintf(stderr, "sink: %s\n", st.message);
    bad = 6;
  }
  mrpc_status_free(&st);
  return (void *)bad;
}

static void test_tls_output_waits_for_a_slow_reader(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  pthread_t th[SINK_CALLS];
  for (int i = 0; i < SINK_CALLS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, sink_client, ch), 0);
  for (int i = 0; i < SINK_CALLS; i++) {
    void *rv;
    pthread_join(th[i], &rv);
    assert_int_equal((uintptr_t)rv, 0);
  }
  char msg[256];
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_wrong_hostname_is_unavailable_with_reason(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  char msg[512];
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem",
                                                  "wrong.example.com", NULL,
                                                  0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "certificate verify failed");
  assert_contains(msg, "hostname mismatch");
  assert_contains(msg, "wrong.example.com");
  /* Again on the same channel: a fresh attempt fails the same way. */
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "hostname mismatch");
  mrpc_channel_del(ch);
  /* The server is unharmed. */
  ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_untrusted_ca_is_unavailable(void **state) {
  (void)state;
  char msg[512];
  /* The client trusts another CA. */
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  mrpc_channel *ch = tchan(s.target, client_creds("other-ca.pem",
                                                  SERVER_NAME, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "certificate verify failed");
  assert_contains(msg, "local issuer");
  mrpc_channel_del(ch);
  tsrv_stop(&s);
  /* The server's certificate comes from a CA the client does not know. */
  tsrv_start_ok(&s, server_creds("other-server", 0, NULL, 0));
  ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "certificate verify failed");
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_mtls_required_refuses_clients_without_a_good_cert(
    void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", MRPC_TLS_CLIENT_AUTH_REQUIRE,
                                 cert("ca.pem"), 0));
  char msg[512];
  /* No certificate. */
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "certificate required");
  mrpc_channel_del(ch);
  /* A certificate from a CA the server does not trust. */
  ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME, "other-client", 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "unknown ca");
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_mtls_handler_and_interceptor_see_the_client(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", MRPC_TLS_CLIENT_AUTH_REQUIRE,
                                 cert("ca.pem"), 0));
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  "client", 0));
  pthread_mutex_lock(&g_ic_mu);
  g_ic_subject[0] = '\0';
  int before = g_ic_calls;
  pthread_mutex_unlock(&g_ic_mu);
  char user[1024], sans[1024], host[1024], scope[1024];
  assert_int_equal(whoami_call(ch, user, sans, host, scope), MRPC_STATUS_OK);
  assert_string_equal(user, CLIENT_SUBJECT);
  assert_string_equal(sans, "DNS:client.test,URI:spiffe://minirpc.test/client,"
                            "email:client@minirpc.test");
  assert_true(strncmp(host, "ipv4:127.0.0.1:", 15) == 0);
  assert_contains(scope, "verified=1");
  pthread_mutex_lock(&g_ic_mu);
  assert_int_equal(g_ic_calls, before + 1);
  assert_string_equal(g_ic_subject, CLIENT_SUBJECT);
  pthread_mutex_unlock(&g_ic_mu);
  /* Streaming calls on the same connection work too. */
  assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "mtls"), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_mtls_optional_lets_both_in(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", MRPC_TLS_CLIENT_AUTH_OPTIONAL,
                                 cert("ca.pem"), 0));
  char user[1024], sans[1024], host[1024], scope[1024];
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  assert_int_equal(whoami_call(ch, user, sans, host, scope), MRPC_STATUS_OK);
  assert_string_equal(user, "");
  mrpc_channel_del(ch);
  ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME, "client", 0));
  assert_int_equal(whoami_call(ch, user, sans, host, scope), MRPC_STATUS_OK);
  assert_string_equal(user, CLIENT_SUBJECT);
  assert_contains(scope, "verified=1");
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_plaintext_and_tls_mismatch_fail_cleanly(void **state) {
  (void)state;
  char msg[512];
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  /* A plaintext client to the TLS server. */
  mrpc_channel *plain = tchan(s.target, NULL);
  assert_int_equal(unary_status(plain, msg, sizeof msg),
                   MRPC_STATUS_UNAVAILABLE);
  mrpc_channel_del(plain);
  /* The server keeps serving. */
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
  /* A TLS client to a plaintext server. */
  assert_int_equal(tsrv_start(&s, NULL, 0), 0);
  ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME, NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  assert_contains(msg, "TLS");
  mrpc_channel_del(ch);
  plain = tchan(s.target, NULL);
  assert_int_equal(unary_status(plain, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(plain);
  tsrv_stop(&s);
}

/* openssl s_client with the given ALPN option; returns its output. */
static char *s_client(int port, const char *alpn_opt, int *status) {
  char cmd[2 * PATH_MAX];
  snprintf(cmd, sizeof cmd,
           "timeout 20 openssl s_client -connect 127.0.0.1:%d %s "
           "-servername " SERVER_NAME " -CAfile '%s' </dev/null 2>&1",
           port, alpn_opt, cert("ca.pem"));
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, len = 0, n;
  char *out = e2e_xmalloc(cap);
  while (len + 1 < cap && (n = fread(out + len, 1, cap - 1 - len, p)) > 0)
    len += n;
  out[len] = '\0';
  *status = pclose(p);
  return out;
}

static void test_alpn_other_than_h2_is_refused(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  int st;
  char *out = s_client(s.port, "-alpn http/1.1", &st);
  if (!strstr(out, "no application protocol"))
    fail_msg("s_client -alpn http/1.1 was not refused with "
             "no_application_protocol:\n%s", out);
  assert_true(st != 0);
  free(out);
  /* No ALPN at all: refused the same way. */
  out = s_client(s.port, "", &st);
  if (!strstr(out, "no application protocol"))
    fail_msg("s_client without ALPN was not refused:\n%s", out);
  free(out);
  /* h2 is fine. */
  out = s_client(s.port, "-alpn h2", &st);
  if (!strstr(out, "ALPN protocol: h2") || !strstr(out, "Verify return code: 0"))
    fail_msg("s_client -alpn h2 failed:\n%s", out);
  free(out);
  char msg[256];
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

/* TLS 1.2 with an ECDHE AEAD suite is spoken; TLS 1.1 and TLS 1.2 without
 * forward secrecy or AEAD are refused (s_client is told to allow them). */
static void test_only_tls12_and_13_with_aead_suites(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 0));
  int st;
  char *out = s_client(s.port, "-tls1_2 -alpn h2", &st);
  if (!strstr(out, "New, TLSv1.2, Cipher is ECDHE-") ||
      !strstr(out, "GCM") || !strstr(out, "ALPN protocol: h2"))
    fail_msg("s_client -tls1_2:\n%s", out);
  free(out);
  out = s_client(s.port, "-tls1_1 -alpn h2 -cipher DEFAULT@SECLEVEL=0", &st);
  if (!strstr(out, "alert protocol version"))
    fail_msg("s_client -tls1_1 was not refused:\n%s", out);
  assert_true(st != 0);
  free(out);
  out = s_client(s.port, "-tls1_2 -alpn h2 -cipher AES128-SHA", &st);
  if (!strstr(out, "alert handshake failure"))
    fail_msg("s_client -cipher AES128-SHA was not refused:\n%s", out);
  assert_true(st != 0);
  free(out);
  tsrv_stop(&s);
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* Waits up to ms for the peer to close fd; returns the ms it took or -1. */
static int64_t wait_closed(int fd, int ms) {
  int64_t t0 = e2e_now_ms();
  for (;;) {
    int64_t left = t0 + ms - e2e_now_ms();
    if (left <= 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)left) <= 0) continue;
    char buf[4096];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return e2e_now_ms() - t0;
  }
}

static void test_half_open_handshakes_are_cut_by_the_timeout(void **state) {
  (void)state;
  tsrv s;
  tsrv_start_ok(&s, server_creds("server1", 0, NULL, 400));
  /* Connected, nothing sent; and one that stops inside its ClientHello. */
  int idle = tcp_connect(s.port);
  int partial = tcp_connect(s.port);
  static const uint8_t hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  assert_int_equal(send(partial, hello_start, sizeof hello_start, 0),
                   (ssize_t)sizeof hello_start);
  int64_t t0 = e2e_now_ms();
  /* Meanwhile others are served. */
  char msg[256];
  mrpc_channel *ch = tchan(s.target, client_creds("ca.pem", SERVER_NAME,
                                                  NULL, 0));
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  int64_t w1 = wait_closed(idle, 5000);
  int64_t w2 = wait_closed(partial, 5000);
  int64_t took = e2e_now_ms() - t0;
  assert_true(w1 >= 0);
  assert_true(w2 >= 0);
  assert_true(took >= 300 && took < 4000);
  /* The established TLS connection outlives the timeout. */
  e2e_sleep_ms(100);
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_OK);
  close(idle);
  close(partial);
  mrpc_channel_del(ch);
  tsrv_stop(&s);
}

static void test_client_handshake_timeout_against_a_silent_server(
    void **state) {
  (void)state;
  /* A socket that listens and never answers: the kernel completes the TCP
   * handshake, nobody speaks TLS. */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 8), 0);
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  char target[64], msg[512];
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(sa.sin_port));
  mrpc_channel *ch = tchan(target, client_creds("ca.pem", SERVER_NAME, NULL,
                                                300));
  int64_t t0 = e2e_now_ms();
  assert_int_equal(unary_status(ch, msg, sizeof msg), MRPC_STATUS_UNAVAILABLE);
  int64_t took = e2e_now_ms() - t0;
  assert_contains(msg, "handshake timed out");
  assert_true(took >= 250 && took < 5000);
  mrpc_channel_del(ch);
  close(lfd);
}

static void test_creds_from_pem_text_and_loading_errors(void **state) {
  (void)state;
  char err[256];
  char *crt = read_file(cert("server1.pem"));
  char *key = read_file(cert("server1.key"));
  char *ca = read_file(cert("ca.pem"));
  char *ccrt = read_file(cert("client.pem"));
  char *ckey = read_file(cert("client.key"));
  assert_true(crt && key && ca && ccrt && ckey);
  mrpc_tls_server_opts so;
  mrpc_tls_server_opts_init(&so);
  so.cert_chain_pem = crt;
  so.private_key_pem = key;
  so.client_auth = MRPC_TLS_CLIENT_AUTH_REQUIRE;
  so.client_ca_pem = ca;
  mrpc_tls_creds *scr = NULL;
  assert_int_equal(mrpc_tls_server_creds_new(&so, &scr, err, sizeof err), 0);
  mrpc_tls_client_opts co;
  mrpc_tls_client_opts_init(&co);
  co.ca_pem = ca;
  co.server_host_override = SERVER_NAME;
  co.cert_chain_pem = ccrt;
  co.private_key_pem = ckey;
  mrpc_tls_creds *ccr = NULL;
  assert_int_equal(mrpc_tls_client_creds_new(&co, &ccr, err, sizeof err), 0);
  tsrv s;
  tsrv_start_ok(&s, scr);
  mrpc_channel *ch = tchan(s.target, ccr);
  char user[1024], sans[1024], host[1024], scope[1024];
  assert_int_equal(whoami_call(ch, user, sans, host, scope), MRPC_STATUS_OK);
  assert_string_equal(user, CLIENT_SUBJECT);
  mrpc_channel_del(ch);
  tsrv_stop(&s);

  /* Errors. */
  mrpc_tls_creds *cr = NULL;
  mrpc_tls_server_opts_init(&so);
  so.cert_chain_file = "/nonexistent/server.pem";
  so.private_key_file = cert("server1.key");
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_IO);
  assert_contains(err, "/nonexistent/server.pem");
  assert_null(cr);
  so.cert_chain_file = cert("server1.key"); /* not a certificate */
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_PARSE);
  so.cert_chain_file = cert("server1.pem");
  so.private_key_file = cert("client.key"); /* another key */
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_INVAL);
  assert_contains(err, "does not match");
  so.private_key_file = NULL;
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_INVAL);
  so.private_key_file = cert("server1.key");
  so.client_auth = MRPC_TLS_CLIENT_AUTH_REQUIRE; /* without a client CA */
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_INVAL);
  so.client_auth = MRPC_TLS_CLIENT_AUTH_NONE;
  so.private_key_file = NULL;
  so.private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                       "-----END PRIVATE KEY-----\n";
  assert_int_equal(mrpc_tls_server_creds_new(&so, &cr, err, sizeof err),
                   MRPC_ERR_PARSE);
  mrpc_tls_client_opts_init(&co);
  co.ca_pem = "not a certificate";
  assert_int_equal(mrpc_tls_client_creds_new(&co, &cr, err, sizeof err),
                   MRPC_ERR_PARSE);
  co.ca_pem = NULL;
  co.cert_chain_file = cert("client.pem"); /* without its key */
  assert_int_equal(mrpc_tls_client_creds_new(&co, &cr, err, sizeof err),
                   MRPC_ERR_INVAL);
  assert_null(cr);
  /* The system store loads; client creds are no server's. */
  assert_int_equal(mrpc_tls_client_creds_new(NULL, &cr, err, sizeof err), 0);
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.tls = cr;
  mrpc_server *srv = NULL;
  assert_int_equal(mrpc_server_new(&o, &srv), MRPC_ERR_INVAL);
  mrpc_tls_creds_unref(cr);
  free(crt);
  free(key);
  free(ca);
  free(ccrt);
  free(ckey);
}

/* ---- --serve / --call modes (tests/examples/tls.sh) ---- */

static int serve_main(int port, const char *auth) {
  int ca = strcmp(auth, "none") != 0;
  mrpc_tls_server_opts so;
  mrpc_tls_server_opts_init(&so);
  char crt[PATH_MAX + 64], key[PATH_MAX + 64], cafile[PATH_MAX + 64], err[256];
  snprintf(crt, sizeof crt, "%s/server1.pem", g_certs);
  snprintf(key, sizeof key, "%s/server1.key", g_certs);
  snprintf(cafile, sizeof cafile, "%s/ca.pem", g_certs);
  so.cert_chain_file = crt;
  so.private_key_file = key;
  so.client_auth = strcmp(auth, "require") == 0    ? MRPC_TLS_CLIENT_AUTH_REQUIRE
                   : strcmp(auth, "optional") == 0 ? MRPC_TLS_CLIENT_AUTH_OPTIONAL
                                                   : MRPC_TLS_CLIENT_AUTH_NONE;
  so.client_ca_file = ca ? cafile : NULL;
  mrpc_tls_creds *cr = NULL;
  if (mrpc_tls_server_creds_new(&so, &cr, err, sizeof err) != 0) {
    fprintf(stderr, "e2e_tls: %s\n", err);
    return 1;
  }
  /* Signals are taken with sigwait on this thread only. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  tsrv s;
  int rc = tsrv_start(&s, cr, port);
  mrpc_tls_creds_unref(cr);
  if (rc) {
    fprintf(stderr, "e2e_tls: server: %s\n", mrpc_strerror(rc));
    mrpc_server_del(s.srv);
    return 1;
  }
  printf("listening on %d\n", s.port);
  fflush(stdout);
  int sig;
  sigwait(&set, &sig);
  mrpc_server_shutdown(s.srv, 1000);
  mrpc_server_del(s.srv);
  return 0;
}

static int call_fail(const char *name, const char *fmt, ...) {
  va_list ap;
  printf("fail %s: ", name);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  return 1;
}

static int call_main(const char *target, const char *override,
                     int client_cert, const char *expect_user) {
  mrpc_tls_client_opts co;
  mrpc_tls_client_opts_init(&co);
  char ca[PATH_MAX + 64], crt[PATH_MAX + 64], key[PATH_MAX + 64], err[256];
  snprintf(ca, sizeof ca, "%s/ca.pem", g_certs);
  snprintf(crt, sizeof crt, "%s/client.pem", g_certs);
  snprintf(key, sizeof key, "%s/client.key", g_certs);
  co.ca_file = ca;
  co.server_host_override = override;
  if (client_cert) {
    co.cert_chain_file = crt;
    co.private_key_file = key;
  }
  mrpc_tls_creds *cr = NULL;
  if (mrpc_tls_client_creds_new(&co, &cr, err, sizeof err) != 0) {
    fprintf(stderr, "e2e_tls: %s\n", err);
    return 1;
  }
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.tls = cr;
  mrpc_channel *ch = NULL;
  int rc = mrpc_channel_new(target, &o, &ch);
  mrpc_tls_creds_unref(cr);
  if (rc) {
    fprintf(stderr, "e2e_tls: channel: %s\n", mrpc_strerror(rc));
    return 1;
  }
  mrpc_call_opts copts;
  mrpc_call_opts_init(&copts);
  copts.timeout_ms = E2E_TIMEOUT_MS;
  int failed = 0;

  /* unary, several times, with the server's view of us */
  for (int i = 0; i < 3 && !failed; i++) {
    char body[32];
    snprintf(body, sizeof body, "hello %d", i);
    e2e_msg m;
    e2e_msg_str(&m, E2E_D(simple_request), body);
    m.u.sreq.fill_username = 1;
    ProtobufCMessage *resp = NULL;
    mrpc_status st;
    mrpc_channel_unary(ch, &k_ts[TS_UNARY], &m.u.base, &copts, &resp, &st);
    if (st.code != MRPC_STATUS_OK) {
      failed += call_fail("unary", "%s: %s", mrpc_status_code_name(st.code),
                          st.message);
    } else {
      size_t len;
      const uint8_t *b = e2e_body(resp, &len);
      const char *user = ((Grpc__Testing__SimpleResponse *)resp)->username;
      if (len != strlen(body) || memcmp(b, body, len) != 0)
        failed += call_fail("unary", "payload not echoed");
      else if (expect_user && strcmp(user, expect_user) != 0)
        failed += call_fail("unary", "username \"%s\", expected \"%s\"", user,
                            expect_user);
    }
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  }
  if (!failed) printf("ok unary\n");

  /* large unary: 512 KiB each way */
  {
    size_t big = 512 * 1024;
    uint8_t *body = e2e_xmalloc(big);
    e2e_fill(body, big, 7);
    e2e_msg m;
    e2e_msg_init(&m, E2E_D(simple_request), body, big);
    ProtobufCMessage *resp = NULL;
    mrpc_status st;
    mrpc_channel_unary(ch, &k_ts[TS_UNARY], &m.u.base, &copts, &resp, &st);
    size_t len = 0;
    const uint8_t *b = resp ? e2e_body(resp, &len) : NULL;
    if (st.code != MRPC_STATUS_OK)
      failed += call_fail("large-unary", "%s: %s",
                          mrpc_status_code_name(st.code), st.message);
    else if (len != big || !e2e_check_fill(b, len, 7))
      failed += call_fail("large-unary", "payload not echoed");
    else
      printf("ok large-unary\n");
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
    free(body);
  }

  /* server streaming: 5 responses "ss#i" */
  {
    e2e_msg req;
    e2e_msg_str(&req, E2E_D(streaming_output_call_request), "ss");
    for (int i = 0; i < 5; i++) {
      grpc__testing__response_parameters__init(&req.params[i]);
      req.pp[i] = &req.params[i];
    }
    req.u.oreq.n_response_parameters = 5;
    req.u.oreq.response_parameters = req.pp;
    mrpc_stream *s;
    int n = 0, bad = 0, r;
    if (mrpc_channel_open_stream(ch, &k_ts[TS_OUTPUT], &copts, &s) != 0)
      return call_fail("server-streaming", "open_stream");
    mrpc_stream_send(s, &req.u.base);
    mrpc_stream_close_send(s);
    ProtobufCMessage *msg;
    while ((r = mrpc_stream_recv(s, &msg)) == 1) {
      char want[16];
      snprintf(want, sizeof want, "ss#%d", n++);
      size_t len;
      const uint8_t *b = e2e_body(msg, &len);
      if (len != strlen(want) || memcmp(b, want, len) != 0) bad++;
      protobuf_c_message_free_unpacked(msg, NULL);
    }
    mrpc_status st;
    mrpc_stream_finish(s, &st);
    if (st.code != MRPC_STATUS_OK || n != 5 || bad)
      failed += call_fail("server-streaming", "%s: %s (%d messages, %d bad)",
                          mrpc_status_code_name(st.code), st.message, n, bad);
    else
      printf("ok server-streaming\n");
    mrpc_status_free(&st);
  }

  /* bidi: 10 messages echoed one by one */
  {
    mrpc_stream *s;
    int bad = 0;
    if (mrpc_channel_open_stream(ch, &k_ts[TS_FULL], &copts, &s) != 0)
      return call_fail("bidi", "open_stream");
    for (int i = 0; i < 10 && !bad; i++) {
      char body[16];
      snprintf(body, sizeof body, "b%d", i);
      e2e_msg m;
      if (mrpc_stream_send(s, e2e_msg_str(&m, E2E_D(
                                                  streaming_output_call_request),
                                          body)) != 0) {
        bad++;
        break;
      }
      ProtobufCMessage *msg;
      if (mrpc_stream_recv(s, &msg) != 1) {
        bad++;
        break;
      }
      size_t len;
      const uint8_t *b = e2e_body(msg, &len);
      if (len != strlen(body) || memcmp(b, body, len) != 0) bad++;
      protobuf_c_message_free_unpacked(msg, NULL);
    }
    mrpc_stream_close_send(s);
    ProtobufCMessage *msg;
    if (!bad && mrpc_stream_recv(s, &msg) != 0) bad++;
    mrpc_status st;
    mrpc_stream_finish(s, &st);
    if (st.code != MRPC_STATUS_OK || bad)
      failed += call_fail("bidi", "%s: %s", mrpc_status_code_name(st.code),
                          st.message);
    else
      printf("ok bidi\n");
    mrpc_status_free(&st);
  }
  mrpc_channel_del(ch);
  fflush(stdout);
  return failed ? 1 : 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: e2e_tls                      (the cmocka suite)\n"
          "       e2e_tls --serve PORT --certs DIR "
          "[--client-auth none|optional|require]\n"
          "       e2e_tls --call HOST:PORT --certs DIR [--override NAME] "
          "[--client-cert] [--expect-username NAME]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    const char *serve = NULL, *call = NULL, *certs = NULL, *auth = "none",
               *override = NULL, *expect = NULL;
    int client_cert = 0;
    for (int i = 1; i < argc; i++) {
      const char *a = argv[i];
      const char *v = i + 1 < argc ? argv[i + 1] : NULL;
      if (!strcmp(a, "--client-cert")) {
        client_cert = 1;
        continue;
      }
      if (!v) return usage();
      if (!strcmp(a, "--serve")) serve = v;
      else if (!strcmp(a, "--call")) call = v;
      else if (!strcmp(a, "--certs")) certs = v;
      else if (!strcmp(a, "--client-auth")) auth = v;
      else if (!strcmp(a, "--override")) override = v;
      else if (!strcmp(a, "--expect-username")) expect = v;
      else return usage();
      i++;
    }
    if (!certs || !serve == !call) return usage();
    snprintf(g_certs, sizeof g_certs, "%s", certs);
    signal(SIGPIPE, SIG_IGN);
    if (serve) return serve_main(atoi(serve), auth);
    return call_main(call, override, client_cert, expect);
  }
  find_script(argv[0]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unary_over_tls_both_handler_and_client_styles),
      cmocka_unit_test(test_hostname_from_target_or_authority),
      cmocka_unit_test(test_streaming_and_large_messages_over_tls),
      cmocka_unit_test(test_tls_output_waits_for_a_slow_reader),
      cmocka_unit_test(test_wrong_hostname_is_unavailable_with_reason),
      cmocka_unit_test(test_untrusted_ca_is_unavailable),
      cmocka_unit_test(
          test_mtls_required_refuses_clients_without_a_good_cert),
      cmocka_unit_test(test_mtls_handler_and_interceptor_see_the_client),
      cmocka_unit_test(test_mtls_optional_lets_both_in),
      cmocka_unit_test(test_plaintext_and_tls_mismatch_fail_cleanly),
      cmocka_unit_test(test_alpn_other_than_h2_is_refused),
      cmocka_unit_test(test_only_tls12_and_13_with_aead_suites),
      cmocka_unit_test(test_half_open_handshakes_are_cut_by_the_timeout),
      cmocka_unit_test(
          test_client_handshake_timeout_against_a_silent_server),
      cmocka_unit_test(test_creds_from_pem_text_and_loading_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
