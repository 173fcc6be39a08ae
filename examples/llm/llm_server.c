/* llm_server: LLM-style token streaming (server streaming) with libminirpc.
 *
 *   llm_server [--listen HOST:PORT] [--token-delay-ms N] [--max-tokens-limit N]
 *              [--corpus FILE]
 *              [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 *              [--no-health] [--no-reflection]
 *   llm_server --generate PROMPT [--max-tokens N] [--corpus FILE]
 *
 * Serves llm.LLMService/Generate: a word-level trigram model (ngram.c),
 * built at start from Aesop's fables (corpus.txt, compiled in), continues the
 * prompt one token per GenerateResponse, then sends a last message with
 * is_finished = true and an empty token.  --generate prints what the server
 * would stream for PROMPT, without any RPC.
 *
 * The handler is blocking (it runs on a worker thread): it sleeps between
 * tokens, and the library has no timer for event handlers, so sleeping on a
 * worker is what keeps the I/O threads free.  mrpc_stream_send waits while
 * the call's send queue is full, so a client that reads slowly throttles the
 * generation through HTTP/2 flow control instead of making us buffer.  The
 * pause between tokens is cut into short slices that check
 * mrpc_call_is_cancelled, so a cancelled call stops at once.
 *
 * One line per call on stdout when it ends:
 *   generate: peer=ipv4:127.0.0.1:40000 tokens=12 status=OK ms=371
 *
 * As every example server (examples/common/example.h): TLS with --tls-cert
 * / --tls-key, mutual TLS with --tls-client-ca; the health service ("" and
 * llm.LLMService SERVING) and server reflection with llm.proto's
 * descriptor, unless --no-health / --no-reflection.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "llm.mrpc.h"
#include "llm.pb-c.h"
#include "ngram.h"

#define DEFAULT_LISTEN "0.0.0.0:50052"
#define DEFAULT_DELAY_MS 30
#define DEFAULT_LIMIT 1024    /* largest max_tokens accepted */
#define DEFAULT_MIN_TOKENS 40 /* max_tokens = 0: stop at the first sentence */
#define DEFAULT_MAX_TOKENS 200 /* end after this many, or at this many */
#define MAX_PROMPT 65536      /* bytes */
#define SLICE_MS 5            /* cancellation check period while waiting */

/* The corpus, compiled in (llm_corpus.c is generated from corpus.txt). */
extern const char llm_corpus[];
extern const size_t llm_corpus_len;

typedef struct app {
  ngram_model *model;
  int delay_ms;
  int limit;
} app;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a generation asked for max tokens is over after n tokens; the
 * last one ended a sentence when sentence_end.  max 0: the default length,
 * DEFAULT_MIN_TOKENS and then to the end of the sentence. */
static bool gen_over(int max, int n, bool sentence_end) {
  if (max > 0) return n >= max;
  return n >= DEFAULT_MAX_TOKENS || (n >= DEFAULT_MIN_TOKENS && sentence_end);
}

/* Sleeps ms milliseconds in short slices; returns false as soon as the call
 * is cancelled (client cancel, deadline, lost connection, shutdown). */
static bool wait_or_cancel(mrpc_call *call, int ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  for (;;) {
    if (mrpc_call_is_cancelled(call)) return false;
    struct timespec now, slice;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left_ns = (int64_t)(until.tv_sec - now.tv_sec) * 1000000000LL +
                      (until.tv_nsec - now.tv_nsec);
    if (left_ns <= 0) return true;
    if (left_ns > SLICE_MS * 1000000LL) left_ns = SLICE_MS * 1000000LL;
    slice.tv_sec = 0;
    slice.tv_nsec = (long)left_ns;
    nanosleep(&slice, NULL);
  }
}

/* NULL when the request is acceptable, else why not. */
static const char *check_request(const app *a, const Llm__GenerateRequest *r,
                                 char *buf, size_t cap) {
  const char *p = r->prompt ? r->prompt : "";
  size_t len = strlen(p);
  bool blank = true;
  for (size_t i = 0; i < len && blank; i++)
    blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r';
  if (blank) return "prompt is empty";
  if (len > MAX_PROMPT) {
    snprintf(buf, cap, "prompt is longer than %d bytes", MAX_PROMPT);
    return buf;
  }
  if (r->max_tokens < 0) return "max_tokens must not be negative";
  if (r->max_tokens > a->limit) {
    snprintf(buf, cap, "max_tokens %d is above the limit of %d",
             (int)r->max_tokens, a->limit);
    return buf;
  }
  return NULL;
}

static void log_call(mrpc_call *call, int tokens, mrpc_status_code code,
                     int64_t t0) {
  printf("generate: peer=%s tokens=%d status=%s ms=%lld\n",
         mrpc_call_peer(call), tokens, mrpc_status_code_name(code),
         (long long)(now_ms() - t0));
  fflush(stdout);
}

/* LLMService.Generate, blocking style: runs on a worker thread with the
 * request already in; req is freed after we return. */
static void generate_blocking(mrpc_stream *s, const Llm__GenerateRequest *req,
                              void *user) {
  const app *a = user;
  mrpc_call *call = mrpc_stream_call(s);
  int64_t t0 = now_ms();
  char why_buf[128];
  const char *why = check_request(a, req, why_buf, sizeof why_buf);
  if (why) {
    mrpc_stream_set_status(s, MRPC_STATUS_INVALID_ARGUMENT, why, NULL, 0);
    log_call(call, 0, MRPC_STATUS_INVALID_ARGUMENT, t0);
    return;
  }

  ngram_gen gen;
  ngram_gen_init(&gen, a->model, req->prompt);
  Llm__GenerateResponse resp = LLM__GENERATE_RESPONSE__INIT;
  char token[80];
  int n = 0, rc = 0;
  bool end = false;
  while (!gen_over(req->max_tokens, n, end)) {
    /* The "thinking" time of each token.  Stops when cancelled. */
    if (a->delay_ms > 0 ? !wait_or_cancel(call, a->delay_ms)
                        : mrpc_call_is_cancelled(call)) {
      rc = MRPC_ERR_CLOSED;
      break;
    }
    int sentence_end;
    ngram_gen_next(&gen, token, sizeof token, &sentence_end);
    end = sentence_end != 0;
    resp.token = token;
    /* Waits while the send queue is full: flow control. */
    rc = llm__llmservice__generate__stream_send_response(s, &resp);
    if (rc != 0) break;
    n++;
  }
  if (rc == 0) {
    resp.token = (char *)"";
    resp.is_finished = true;
    rc = llm__llmservice__generate__stream_send_response(s, &resp);
  }
  mrpc_status_code code = MRPC_STATUS_OK;
  if (rc == MRPC_ERR_CLOSED)
    code = MRPC_STATUS_CANCELLED; /* the client is gone: moot */
  else if (rc != 0)
    code = MRPC_STATUS_INTERNAL;
  mrpc_stream_set_status(s, code, rc ? mrpc_strerror(rc) : NULL, NULL, 0);
  log_call(call, n, code, t0);
}

/* ---- main ------------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr,
          "usage: llm_server [--listen HOST:PORT] [--token-delay-ms N]\n"
          "                  [--max-tokens-limit N] [--corpus FILE]\n"
          "                  [--tls-cert FILE --tls-key FILE"
          " [--tls-client-ca FILE]]\n"
          "                  [--no-health] [--no-reflection]\n"
          "       llm_server --generate PROMPT [--max-tokens N]"
          " [--corpus FILE]\n"
          "  (--listen default: %s)\n"
          "%s"
          "  --token-delay-ms N     pause before each token (default %d)\n"
          "  --max-tokens-limit N   largest max_tokens accepted (default %d)\n"
          "  --corpus FILE          train on FILE instead of the built-in"
          " fables\n"
          "  --generate PROMPT      print the text PROMPT gets and exit\n",
          DEFAULT_LISTEN, ex_server_usage, DEFAULT_DELAY_MS, DEFAULT_LIMIT);
  return 2;
}

static bool parse_int(const char *s, long lo, long hi, int *out) {
  long v;
  if (!ex_parse_long(s, lo, hi, &v)) return false;
  *out = (int)v;
  return true;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      char *p = realloc(buf, cap);
      if (!p) break;
      buf = p;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  bool bad = ferror(f) || !buf;
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  ex_server ex;
  ex_server_init(&ex, "llm_server", DEFAULT_LISTEN);
  const char *corpus = NULL, *prompt = NULL;
  app a = {NULL, DEFAULT_DELAY_MS, DEFAULT_LIMIT};
  int max_tokens = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_server_flag(&ex, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--token-delay-ms"))) {
      if (!parse_int(v, 0, 60000, &a.delay_ms)) return usage();
    } else if ((v = ex_flag_value(argc, argv, &i, "--max-tokens-limit"))) {
      if (!parse_int(v, 1, 100000000, &a.limit)) return usage();
    } else if ((v = ex_flag_value(argc, argv, &i, "--corpus"))) {
      corpus = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--generate"))) {
      prompt = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--max-tokens"))) {
      if (!parse_int(v, 0, 100000000, &max_tokens)) return usage();
    } else {
      return usage();
    }
  }

  char *text = NULL;
  size_t text_len = llm_corpus_len;
  if (corpus && !(text = read_file(corpus, &text_len))) {
    fprintf(stderr, "llm_server: cannot read %s: %s\n", corpus,
            strerror(errno));
    return 1;
  }
  a.model = ngram_build(text ? text : llm_corpus, text_len);
  free(text);
  if (!a.model) {
    fprintf(stderr, "llm_server: the corpus is too small (or no memory)\n");
    return 1;
  }

  if (prompt) { /* offline: what Generate would stream */
    ngram_gen gen;
    ngram_gen_init(&gen, a.model, prompt);
    char token[80];
    int n = 0;
    bool end = false;
    while (!gen_over(max_tokens, n, end)) {
      int se;
      ngram_gen_next(&gen, token, sizeof token, &se);
      end = se != 0;
      fputs(token, stdout);
      n++;
    }
    putchar('\n');
    ngram_free(a.model);
    return 0;
  }

  /* The handler table must outlive the server: static storage. */
  static Llm__LLMService_MrpcHandlers handlers;
  handlers.generate_blocking = generate_blocking;
  handlers.user = &a;

  /* TLS, health and reflection (example.h); SIGINT / SIGTERM blocked for
   * ex_wait_signal. */
  int rc = ex_server_new(&ex, NULL);
  if (rc != 0) {
    ngram_free(a.model);
    return rc;
  }
  if ((rc = llm__llmservice__mrpc_register(ex.srv, &handlers)) != 0) {
    fprintf(stderr, "llm_server: %s\n", mrpc_strerror(rc));
    rc = 1;
  } else {
    rc = ex_server_start(&ex, &llm__llmservice__mrpc_service, &llm__mrpc_file);
  }
  if (rc != 0) {
    ex_server_del(&ex);
    ngram_free(a.model);
    return rc;
  }
  printf("llm_server: listening on %s (model: %zu tokens, %zu words;"
         " %d ms per token)\n",
         ex.where, ngram_token_count(a.model), ngram_vocab_size(a.model),
         a.delay_ms);
  fflush(stdout);

  ex_wait_signal();
  printf("llm_server: shutting down\n");
  fflush(stdout);
  /* Calls in flight get a second to finish, then are cancelled: the
   * handlers see it between tokens and return.  Health turns NOT_SERVING
   * first. */
  mrpc_server_shutdown(ex.srv, 1000);
  ex_server_del(&ex);
  ngram_free(a.model);
  return 0;
}
