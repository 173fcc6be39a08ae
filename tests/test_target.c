/* Unit tests for channel targets and their resolution (lib/resolver.c):
 * mrpc__target_parse for every accepted form and the malformed ones, and
 * mrpc__resolve through the test hook and through getaddrinfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "resolver.h"

/* ---- helpers ---- */

static mrpc__target parse_ok(const char *s) {
  mrpc__target t;
  int rc = mrpc__target_parse(s, &t);
  if (rc != 0) fail_msg("\"%s\" rejected (%d)", s, rc);
  return t;
}

static void reject(const char *s) {
  mrpc__target t;
  int rc = mrpc__target_parse(s, &t);
  if (rc != MRPC_ERR_ADDR)
    fail_msg("\"%s\" gave %d, want MRPC_ERR_ADDR", s ? s : "(null)", rc);
}

/* l->a[i] is the IPv4 address ip:port. */
static void assert_v4(const mrpc__addr_list *l, int i, const char *ip,
                      int port) {
  assert_true(i < l->n);
  const struct sockaddr_in *in = (const struct sockaddr_in *)&l->a[i];
  assert_int_equal(in->sin_family, AF_INET);
  assert_int_equal(l->len[i], sizeof *in);
  assert_int_equal(ntohs(in->sin_port), port);
  char buf[INET_ADDRSTRLEN];
  assert_non_null(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf));
  assert_string_equal(buf, ip);
}

static void assert_v6(const mrpc__addr_list *l, int i, const char *ip,
                      int port) {
  assert_true(i < l->n);
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->a[i];
  assert_int_equal(in6->sin6_family, AF_INET6);
  assert_int_equal(l->len[i], sizeof *in6);
  assert_int_equal(ntohs(in6->sin6_port), port);
  char buf[INET6_ADDRSTRLEN];
  assert_non_null(inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf));
  assert_string_equal(buf, ip);
}

static void assert_unix(const mrpc__target *t, const char *path) {
  assert_true(t->is_unix);
  assert_false(t->dns);
  assert_int_equal(t->fixed.n, 1);
  const struct sockaddr_un *un = (const struct sockaddr_un *)&t->fixed.a[0];
  assert_int_equal(un->sun_family, AF_UNIX);
  assert_string_equal(un->sun_path, path);
  assert_int_equal(t->fixed.len[0], sizeof *un);
  assert_string_equal(t->host, "localhost");
  assert_string_equal(t->port, "");
  assert_string_equal(t->authority, "localhost");
}

/* A name to resolve: every field but the (empty) fixed list. */
static void assert_dns(const char *s, const char *host, const char *port,
                       const char *authority) {
  mrpc__target t = parse_ok(s);
  assert_true(t.dns);
  assert_false(t.is_unix);
  assert_int_equal(t.fixed.n, 0);
  assert_string_equal(t.host, host);
  assert_string_equal(t.port, port);
  assert_string_equal(t.authority, authority);
}

/* ---- accepted forms ---- */

static void test_dns_names_are_resolved(void **state) {
  (void)state;
  assert_dns("example.com:50051", "example.com", "50051", "example.com:50051");
  assert_dns("dns:///localhost:50051", "localhost", "50051",
             "localhost:50051");
  assert_dns("dns:///svc.test:1", "svc.test", "1", "svc.test:1");
  assert_dns("dns:svc.test:8080", "svc.test", "8080", "svc.test:8080");
  /* naming.md: the dns scheme defaults to port 443. */
  assert_dns("dns:svc.test", "svc.test", "443", "svc.test:443");
  assert_dns("dns:///svc.test", "svc.test", "443", "svc.test:443");
  assert_dns("a:65535", "a", "65535", "a:65535");
}

static void test_numeric_host_port_needs_no_lookup(void **state) {
  (void)state;
  mrpc__target t = parse_ok("127.0.0.1:5");
  assert_false(t.dns);
  assert_false(t.is_unix);
  assert_int_equal(t.fixed.n, 1);
  assert_v4(&t.fixed, 0, "127.0.0.1", 5);
  assert_string_equal(t.host, "127.0.0.1");
  assert_string_equal(t.port, "5");
  assert_string_equal(t.authority, "127.0.0.1:5");

  t = parse_ok("[::1]:5");
  assert_false(t.dns);
  assert_int_equal(t.fixed.n, 1);
  assert_v6(&t.fixed, 0, "::1", 5);
  assert_string_equal(t.host, "::1");
  assert_string_equal(t.port, "5");
  assert_string_equal(t.authority, "[::1]:5");

  /* The same under the dns scheme, and with its default port. */
  t = parse_ok("dns:///10.1.2.3:80");
  assert_false(t.dns);
  assert_int_equal(t.fixed.n, 1);
  assert_v4(&t.fixed, 0, "10.1.2.3", 80);
  t = parse_ok("dns:[fe80::2]");
  assert_false(t.dns);
  assert_int_equal(t.fixed.n, 1);
  assert_v6(&t.fixed, 0, "fe80::2", 443);
  assert_string_equal(t.authority, "[fe80::2]:443");
}

static void test_ipv4_list(void **state) {
  (void)state;
  mrpc__target t = parse_ok("ipv4:1.2.3.4:80,5.6.7.8:81,127.0.0.1:65535");
  assert_false(t.dns);
  assert_false(t.is_unix);
  assert_int_equal(t.fixed.n, 3);
  assert_v4(&t.fixed, 0, "1.2.3.4", 80);
  assert_v4(&t.fixed, 1, "5.6.7.8", 81);
  assert_v4(&t.fixed, 2, "127.0.0.1", 65535);
  /* The first address names the target. */
  assert_string_equal(t.host, "1.2.3.4");
  assert_string_equal(t.port, "80");
  assert_string_equal(t.authority, "1.2.3.4:80");

  t = parse_ok("ipv4:9.9.9.9:1");
  assert_int_equal(t.fixed.n, 1);
  assert_v4(&t.fixed, 0, "9.9.9.9", 1);
}

static void test_ipv6_list(void **state) {
  (void)state;
  mrpc__target t = parse_ok("ipv6:[::1]:80,[2001:db8::5]:443");
  assert_false(t.dns);
  assert_false(t.is_unix);
  assert_int_equal(t.fixed.n, 2);
  assert_v6(&t.fixed, 0, "::1", 80);
  assert_v6(&t.fixed, 1, "2001:db8::5", 443);
  assert_string_equal(t.host, "::1");
  assert_string_equal(t.port, "80");
  assert_string_equal(t.authority, "[::1]:80");
}

static void test_unix_paths(void **state) {
  (void)state;
  mrpc__target t = parse_ok("unix:/tmp/a.sock");
  assert_unix(&t, "/tmp/a.sock");
  t = parse_ok("unix:///tmp/b.sock");
  assert_unix(&t, "/tmp/b.sock");
  t = parse_ok("unix:rel.sock"); /* naming.md: relative paths are allowed */
  assert_unix(&t, "rel.sock");
}

/* MRPC__MAX_ADDRS addresses fit; one more does not. */
static void test_address_list_limit(void **state) {
  (void)state;
  char s[64 * 24 + 16];
  size_t n = (size_t)snprintf(s, sizeof s, "ipv4:");
  for (int i = 0; i < MRPC__MAX_ADDRS; i++)
    n += (size_t)snprintf(s + n, sizeof s - n, "%s10.0.0.%d:%d", i ? "," : "",
                          i + 1, 1000 + i);
  mrpc__target t = parse_ok(s);
  assert_int_equal(t.fixed.n, MRPC__MAX_ADDRS);
  assert_v4(&t.fixed, 0, "10.0.0.1", 1000);
  assert_v4(&t.fixed, MRPC__MAX_ADDRS - 1, "10.0.0.64", 1063);
  snprintf(s + n, sizeof s - n, ",10.0.1.1:1");
  reject(s);
}

/* ---- rejections ---- */

static void test_malformed_targets_are_rejected(void **state) {
  (void)state;
  reject(NULL);
  reject("");
  reject("host");          /* no port: only the dns scheme has a default */
  reject("dns:");
  reject("dns:///");
  reject("dns://8.8.8.8/host:1"); /* DNS server authorities: unsupported */
  reject("dns://host:1");
  reject("a:b:c");         /* a bare IPv6 address needs brackets */
  reject("::1:80");
  reject("[::1]5");
  reject("[]:5");
  reject(":80");
}

static void test_bad_ports_are_rejected(void **state) {
  (void)state;
  reject("h:0x1");
  reject("h:65536");
  reject("h:");
  reject("h:-1");
  reject("h:123456");
  reject("h: 80");
  reject("[::1]:");
  reject("dns:///h:99999");
  reject("ipv4:1.2.3.4:65536");
  reject("ipv6:[::1]:x");
}

static void test_bad_address_lists_are_rejected(void **state) {
  (void)state;
  reject("ipv4:");
  reject("ipv4:1.2.3.4");         /* no port */
  reject("ipv4:1.2.3.4:80,");     /* trailing comma */
  reject("ipv4:,1.2.3.4:80");
  reject("ipv4:1.2.3.4:80,,5.6.7.8:80");
  reject("ipv4:[::1]:80");        /* IPv6 under ipv4: */
  reject("ipv4:1.2.3:80");
  reject("ipv4:localhost:80");    /* names are not addresses */
  reject("ipv6:");
  reject("ipv6:::1:80");          /* unbracketed */
  reject("ipv6:[::1]");
  reject("ipv6:[::1]:80,1.2.3.4:80"); /* mixed families */
  reject("ipv6:[1.2.3.4]:80");
  reject("ipv6:[::1]:80,");
}

static void test_bad_unix_targets_are_rejected(void **state) {
  (void)state;
  reject("unix:");
  reject("unix://");
  reject("unix://host/path"); /* only an empty authority */
  char s[200];
  memset(s, 'x', sizeof s);
  memcpy(s, "unix:/", 6);
  s[sizeof s - 1] = '\0'; /* longer than sun_path */
  reject(s);
}

/* ---- mrpc__resolve ---- */

static char hook_host[256], hook_port[16];
static int hook_calls;
static int hook_rc;
static mrpc__addr_list hook_answer;

static int test_hook(const char *host, const char *port, mrpc__addr_list *out) {
  hook_calls++;
  snprintf(hook_host, sizeof hook_host, "%s", host);
  snprintf(hook_port, sizeof hook_port, "%s", port);
  *out = hook_answer;
  return hook_rc;
}

static void add_v4(mrpc__addr_list *l, const char *ip, int port) {
  struct sockaddr_in *in = (struct sockaddr_in *)&l->a[l->n];
  memset(in, 0, sizeof *in);
  in->sin_family = AF_INET;
  in->sin_port = htons((uint16_t)port);
  assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
  l->len[l->n++] = sizeof *in;
}

static int hook_setup(void **state) {
  (void)state;
  memset(&hook_answer, 0, sizeof hook_answer);
  hook_calls = 0;
  hook_rc = 0;
  mrpc__resolve_hook = test_hook;
  return 0;
}

static int hook_teardown(void **state) {
  (void)state;
  mrpc__resolve_hook = NULL;
  return 0;
}

static void test_resolve_returns_the_hooks_list(void **state) {
  (void)state;
  add_v4(&hook_answer, "10.0.0.1", 7001);
  add_v4(&hook_answer, "10.0.0.2", 7002);
  mrpc__addr_list out;
  char err[128] = "";
  assert_int_equal(mrpc__resolve("svc.test", "1234", &out, err, sizeof err),
                   0);
  assert_int_equal(hook_calls, 1);
  assert_string_equal(hook_host, "svc.test");
  assert_string_equal(hook_port, "1234");
  assert_int_equal(out.n, 2);
  assert_v4(&out, 0, "10.0.0.1", 7001);
  assert_v4(&out, 1, "10.0.0.2", 7002);
}

static void test_resolve_hook_with_no_address_fails(void **state) {
  (void)state;
  mrpc__addr_list out;
  char err[128] = "";
  assert_int_equal(mrpc__resolve("svc.test", "1", &out, err, sizeof err),
                   MRPC_ERR_ADDR);
  assert_int_equal(out.n, 0);
  assert_non_null(strstr(err, "svc.test"));
}

static void test_resolve_hook_error_fails(void **state) {
  (void)state;
  add_v4(&hook_answer, "10.0.0.1", 1); /* ignored: the hook failed */
  hook_rc = -1;
  mrpc__addr_list out;
  char err[128] = "";
  assert_int_equal(mrpc__resolve("bad.test", "1", &out, err, sizeof err),
                   MRPC_ERR_ADDR);
  assert_non_null(strstr(err, "bad.test"));
}

/* IPv4 entries all come before IPv6 ones, and none twice. */
static void assert_v4_first_no_dups(const mrpc__addr_list *l) {
  int seen_v6 = 0;
  for (int i = 0; i < l->n; i++) {
    int fam = ((const struct sockaddr *)&l->a[i])->sa_family;
    assert_true(fam == AF_INET || fam == AF_INET6);
    if (fam == AF_INET6) seen_v6 = 1;
    else assert_false(seen_v6);
    for (int j = 0; j < i; j++)
      assert_false(l->len[i] == l->len[j] &&
                   memcmp(&l->a[i], &l->a[j], l->len[i]) == 0);
  }
}

static void test_resolve_numeric_with_getaddrinfo(void **state) {
  (void)state;
  mrpc__resolve_hook = NULL;
  mrpc__addr_list out;
  char err[128] = "";
  assert_int_equal(mrpc__resolve("127.0.0.1", "8080", &out, err, sizeof err),
                   0);
  assert_int_equal(out.n, 1);
  assert_v4(&out, 0, "127.0.0.1", 8080);
}

static void test_resolve_localhost_with_getaddrinfo(void **state) {
  (void)state;
  mrpc__resolve_hook = NULL;
  mrpc__addr_list out;
  char err[128] = "";
  assert_int_equal(mrpc__resolve("localhost", "50051", &out, err, sizeof err),
                   0);
  assert_true(out.n >= 1);
  /* getaddrinfo gives one entry per socket type and more: only TCP, once. */
  assert_v4_first_no_dups(&out);
  assert_v4(&out, 0, "127.0.0.1", 50051);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dns_names_are_resolved),
      cmocka_unit_test(test_numeric_host_port_needs_no_lookup),
      cmocka_unit_test(test_ipv4_list),
      cmocka_unit_test(test_ipv6_list),
      cmocka_unit_test(test_unix_paths),
      cmocka_unit_test(test_address_list_limit),
      cmocka_unit_test(test_malformed_targets_are_rejected),
      cmocka_unit_test(test_bad_ports_are_rejected),
      cmocka_unit_test(test_bad_address_lists_are_rejected),
      cmocka_unit_test(test_bad_unix_targets_are_rejected),
      cmocka_unit_test_setup_teardown(test_resolve_returns_the_hooks_list,
                                      hook_setup, hook_teardown),
      cmocka_unit_test_setup_teardown(test_resolve_hook_with_no_address_fails,
                                      hook_setup, hook_teardown),
      cmocka_unit_test_setup_teardown(test_resolve_hook_error_fails,
                                      hook_setup, hook_teardown),
      cmocka_unit_test(test_resolve_numeric_with_getaddrinfo),
      cmocka_unit_test(test_resolve_localhost_with_getaddrinfo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
