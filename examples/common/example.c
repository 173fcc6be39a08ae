/* examples/common: flags, TLS, health, reflection and signals for the
 * example apps.  See example.h.
 * SPDX-License-Identifier: Apache-2.0 */
#include "example.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* The program's name for messages that come before any ex_* object is
 * made (glibc's, from argv[0]). */
#define PROG program_invocation_short_name

/* ---- flags -------------------------------------------------------------- */

const char *ex_flag_value(int argc, char **argv, int *i, const char *name) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] != '\0') return NULL; /* a longer flag: --max-tokens-limit */
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", PROG, name);
    exit(2);
  }
  return argv[++*i];
}

bool ex_parse_long(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

/* ---- servers ------------------------------------------------------------ */

const char ex_server_usage[] =
    "  --listen HOST:PORT     address to serve on (port 0 picks a free one,\n"
    "                         printed at start)\n"
    "  --tls-cert FILE        serve TLS with this certificate chain (PEM)\n"
    "  --tls-key FILE         and its private key (PEM, unencrypted)\n"
    "  --tls-client-ca FILE   mutual TLS: require client certificates signed\n"
    "                         by these CAs (PEM)\n"
    "  --no-health            do not serve grpc.health.v1.Health\n"
    "  --no-reflection        do not serve server reflection\n";

void ex_server_init(ex_server *ex, const char *prog,
                    const char *default_listen) {
  memset(ex, 0, sizeof *ex);
  ex->prog = prog;
  ex->listen = default_listen;
  ex->health = true;
  ex->reflection = true;
  ex->log = stdout;
}

bool ex_server_flag(ex_server *ex, int argc, char **argv, int *i) {
  const char *v;
  if (!strcmp(argv[*i], "--no-health"))
    ex->health = false;
  else if (!strcmp(argv[*i], "--no-reflection"))
    ex->reflection = false;
  else if ((v = ex_flag_value(argc, argv, i, "--listen")))
    ex->listen = v;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-cert")))
    ex->tls_cert = v;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-key")))
    ex->tls_key = v;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-client-ca")))
    ex->tls_client_ca = v;
  else
    return false;
  return true;
}

static void signal_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
}

/* The server's TLS credentials, or *out NULL for plaintext. */
static int server_creds(const ex_server *ex, mrpc_tls_creds **out) {
  *out = NULL;
  if (!ex->tls_cert != !ex->tls_key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", ex->prog);
    return 2;
  }
  if (ex->tls_client_ca && !ex->tls_cert) {
    fprintf(stderr, "%s: --tls-client-ca needs --tls-cert and --tls-key\n",
            ex->prog);
    return 2;
  }
  if (!ex->tls_cert) return 0;
  mrpc_tls_server_opts to;
  mrpc_tls_server_opts_init(&to);
  to.cert_chain_file = ex->tls_cert;
  to.private_key_file = ex->tls_key;
  if (ex->tls_client_ca) {
    to.client_auth = MRPC_TLS_CLIENT_AUTH_REQUIRE;
    to.client_ca_file = ex->tls_client_ca;
  }
  char err[512];
  if (mrpc_tls_server_creds_new(&to, out, err, sizeof err) != 0) {
    fprintf(stderr, "%s: TLS: %s\n", ex->prog, err);
    return 1;
  }
  return 0;
}

int ex_server_new(ex_server *ex, mrpc_server_opts *opts) {
  mrpc_tls_creds *creds;
  int rc = server_creds(ex, &creds);
  if (rc) return rc;

  /* Before any thread exists: they all inherit the mask. */
  sigset_t set;
  signal_set(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill us */

  mrpc_server_opts defaults;
  if (!opts) {
    mrpc_server_opts_init(&defaults);
    opts = &defaults;
  }
  opts->tls = creds; /* the server takes its own reference */
  rc = mrpc_server_new(opts, &ex->srv);
  opts->tls = NULL;
  mrpc_tls_creds_unref(creds);
  const char *what = "server";
  if (!rc && ex->health) {
    what = "health";
    if ((rc = mrpc_health_new(&ex->health_table)) == 0)
      rc = mrpc_health_register(ex->srv, ex->health_table);
  }
  if (!rc && ex->reflection) {
    what = "reflection";
    if ((rc = mrpc_reflection_new(&ex->reflector)) == 0)
      rc = mrpc_reflection_register(ex->srv, ex->reflector);
  }
  if (rc) {
    fprintf(stderr, "%s: %s: %s\n", ex->prog, what, mrpc_strerror(rc));
    ex_server_del(ex);
    return 1;
  }
  return 0;
}

int ex_server_start(ex_server *ex, const mrpc_service *svc,
                    const mrpc_file_descriptor *file) {
  int rc;
  if (ex->reflector && file &&
      (rc = mrpc_reflection_add_file(ex->reflector, file)) != 0) {
    fprintf(stderr, "%s: reflection: %s: %s\n", ex->prog, file->name,
            mrpc_strerror(rc));
    return 1;
  }
  /* SERVING from the first call on. */
  if (ex->health_table && svc &&
      (rc = mrpc_health_set(ex->health_table, svc->name,
                            MRPC_HEALTH_SERVING)) != 0) {
    fprintf(stderr, "%s: health: %s\n", ex->prog, mrpc_strerror(rc));
    return 1;
  }
  if ((rc = mrpc_server_listen(ex->srv, ex->listen, &ex->port)) != 0) {
    fprintf(stderr, "%s: cannot listen on %s: %s%s%s\n", ex->prog,
            ex->listen, mrpc_strerror(rc), rc == MRPC_ERR_IO ? ": " : "",
            rc == MRPC_ERR_IO ? strerror(errno) : "");
    return 1;
  }
  if ((rc = mrpc_server_start(ex->srv)) != 0) {
    fprintf(stderr, "%s: start: %s\n", ex->prog, mrpc_strerror(rc));
    return 1;
  }
  /* --listen with the port actually bound (HOST:0). */
  const char *colon = strrchr(ex->listen, ':');
  if (strncmp(ex->listen, "unix:", 5) == 0 || !colon)
    snprintf(ex->where, sizeof ex->where, "%s", ex->listen);
  else
    snprintf(ex->where, sizeof ex->where, "%.*s:%d",
             (int)(colon - ex->listen), ex->listen, ex->port);

  char sec[600];
  if (!ex->tls_cert)
    snprintf(sec, sizeof sec, "plaintext (h2c)");
  else if (!ex->tls_client_ca)
    snprintf(sec, sizeof sec, "TLS (%s)", ex->tls_cert);
  else
    snprintf(sec, sizeof sec,
             "mutual TLS (%s; client certificates required, from %s)",
             ex->tls_cert, ex->tls_client_ca);
  flockfile(ex->log);
  fprintf(ex->log, "%s: serving %s over %s; health %s; reflection %s%s%s\n",
          ex->prog, svc ? svc->name : "?", sec, ex->health_table ? "on" : "off",
          ex->reflector ? "on" : "off", ex->reflector && file ? " with " : "",
          ex->reflector && file ? file->name : "");
  fflush(ex->log);
  funlockfile(ex->log);
  return 0;
}

int ex_wait_signal(void) {
  sigset_t set;
  signal_set(&set);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

const char *ex_signal_name(int sig) {
  static char buf[32];
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  snprintf(buf, sizeof buf, "signal %d", sig);
  return buf;
}

void ex_server_del(ex_server *ex) {
  mrpc_server_del(ex->srv); /* first: health and reflection outlive it */
  mrpc_health_del(ex->health_table);
  mrpc_reflection_del(ex->reflector);
  ex->srv = NULL;
  ex->health_table = NULL;
  ex->reflector = NULL;
}

/* ---- clients ------------------------------------------------------------ */

const char ex_client_usage[] =
    "  --tls                  use TLS, trusting the system's CAs\n"
    "  --tls-ca FILE          use TLS, trusting these CAs (PEM)\n"
    "  --tls-cert FILE        use TLS with this client certificate (PEM;\n"
    "                         for servers that require one: mutual TLS)\n"
    "  --tls-key FILE         and its private key (PEM, unencrypted)\n"
    "  --authority NAME       the server name: checked against the server's\n"
    "                         certificate and sent as SNI and :authority\n"
    "                         (e.g. foo.test.google.fr)\n"
    "  --lb POLICY            pick_first (default) or round_robin over the\n"
    "                         target's addresses (e.g. --target\n"
    "                         ipv4:127.0.0.1:50051,127.0.0.1:50052)\n"
    "  --pool N               N connections (per address for round_robin):\n"
    "                         the tutorial's ClientPool, in the channel\n";

void ex_client_init(ex_client *c, const char *prog,
                    const char *default_target) {
  memset(c, 0, sizeof *c);
  c->prog = prog;
  c->target = default_target;
}

bool ex_client_flag(ex_client *c, int argc, char **argv, int *i) {
  const char *v;
  if (!strcmp(argv[*i], "--tls"))
    c->tls = true;
  else if ((v = ex_flag_value(argc, argv, i, "--target")))
    c->target = v;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-ca")))
    c->tls_ca = v, c->tls = true;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-cert")))
    c->tls_cert = v, c->tls = true;
  else if ((v = ex_flag_value(argc, argv, i, "--tls-key")))
    c->tls_key = v, c->tls = true;
  else if ((v = ex_flag_value(argc, argv, i, "--authority")))
    c->authority = v;
  else if ((v = ex_flag_value(argc, argv, i, "--lb")))
    c->lb = v;
  else if ((v = ex_flag_value(argc, argv, i, "--pool")))
    c->pool = v;
  else
    return false;
  return true;
}

int ex_channel_new(const ex_client *c, mrpc_channel_opts *opts,
                   mrpc_channel **out) {
  *out = NULL;
  if (!c->tls_cert != !c->tls_key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", c->prog);
    return 2;
  }
  mrpc_channel_opts defaults;
  if (!opts) {
    mrpc_channel_opts_init(&defaults);
    opts = &defaults;
  }
  if (c->lb && strcmp(c->lb, "pick_first") && strcmp(c->lb, "round_robin")) {
    fprintf(stderr, "%s: --lb is pick_first or round_robin\n", c->prog);
    return 2;
  }
  if (c->lb && !strcmp(c->lb, "round_robin"))
    opts->lb_policy = MRPC_LB_ROUND_ROBIN;
  if (c->pool) {
    char *end;
    long n = strtol(c->pool, &end, 10);
    if (*end || n < 1 || n > 64) {
      fprintf(stderr, "%s: --pool is 1 to 64\n", c->prog);
      return 2;
    }
    opts->pool_size = (int)n;
  }
  mrpc_tls_creds *creds = NULL;
  if (c->tls) {
    mrpc_tls_client_opts to;
    mrpc_tls_client_opts_init(&to);
    to.ca_file = c->tls_ca; /* NULL: the system's store */
    to.cert_chain_file = c->tls_cert;
    to.private_key_file = c->tls_key;
    /* The name checked and sent as SNI; :authority too. */
    to.server_host_override = c->authority;
    char err[512];
    if (mrpc_tls_client_creds_new(&to, &creds, err, sizeof err) != 0) {
      fprintf(stderr, "%s: TLS: %s\n", c->prog, err);
      return 1;
    }
  } else if (c->authority) {
    opts->authority = c->authority;
  }
  opts->tls = creds; /* the channel takes its own reference */
  int rc = mrpc_channel_new(c->target, opts, out);
  opts->tls = NULL;
  mrpc_tls_creds_unref(creds);
  if (rc) {
    fprintf(stderr, "%s: %s%s: %s\n", c->prog,
            rc == MRPC_ERR_ADDR ? "bad target " : "", c->target,
            mrpc_strerror(rc));
    return rc == MRPC_ERR_ADDR ? 2 : 1;
  }
  return 0;
}
