/* llm_client: prints the tokens of llm.LLMService/Generate as they arrive.
 *
 *   llm_client [--target HOST:PORT] --prompt TEXT [--max-tokens N]
 *              [--tls | --tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *              [--authority NAME]
 *
 * Blocking style: the generated llm__llmservice__generate__open sends the
 * request and half-closes, then each GenerateResponse is read with
 * ..._stream_recv_response and printed at once (flushed).  A newline ends
 * the text.
 *
 * Ctrl-C (SIGINT, also SIGTERM) cancels the call cleanly: the signals are
 * blocked in every thread and one thread waits for them with sigwait; it
 * calls mrpc_call_cancel (thread-safe), the reading loop then sees the call
 * end, and the program says so and exits with status 130.
 *
 * TLS and --authority as every example client (examples/common/example.h).
 *
 * Exit status: 0 when the stream ended with OK and is_finished, 1 on an
 * error status, 2 on bad usage, 130 when interrupted.
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "llm.mrpc.h"
#include "llm.pb-c.h"

#define DEFAULT_TARGET "localhost:50052"

/* Signal watcher: cancels the call on SIGINT / SIGTERM; SIGUSR1 tells it the
 * call is over and it can go. */
typedef struct watcher {
  sigset_t set;
  mrpc_call *call; /* our own reference */
  atomic_int interrupted; /* the signal that cancelled the call, or 0 */
} watcher;

static void *watch_signals(void *arg) {
  watcher *w = arg;
  for (;;) {
    int sig;
    if (sigwait(&w->set, &sig) != 0) continue;
    if (sig == SIGUSR1) return NULL;
    atomic_store(&w->interrupted, sig);
    mrpc_call_cancel(w->call);
    return NULL;
  }
}

static int usage(void) {
  fprintf(stderr,
          "usage: llm_client [--target HOST:PORT] --prompt TEXT"
          " [--max-tokens N]\n"
          "                  [--tls | --tls-ca FILE]"
          " [--tls-cert FILE --tls-key FILE]\n"
          "                  [--authority NAME]\n"
          "  --target HOST:PORT     server (default %s)\n"
          "  --prompt TEXT          text to continue\n"
          "  --max-tokens N         number of tokens; 0 = the server's"
          " default\n"
          "%s",
          DEFAULT_TARGET, ex_client_usage);
  return 2;
}

int main(int argc, char **argv) {
  ex_client cl;
  ex_client_init(&cl, "llm_client", DEFAULT_TARGET);
  const char *prompt = NULL;
  long max_tokens = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_client_flag(&cl, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--prompt"))) {
      prompt = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--max-tokens"))) {
      /* Out-of-range values are the server's to refuse: pass them on. */
      if (!ex_parse_long(v, INT32_MIN, INT32_MAX, &max_tokens))
        return usage();
    } else {
      return usage();
    }
  }
  if (!prompt) return usage();

  /* Block the signals before any thread exists, so that every thread (the
   * channel's I/O thread too) inherits the mask and only sigwait sees them. */
  watcher w;
  memset(&w, 0, sizeof w);
  sigemptyset(&w.set);
  sigaddset(&w.set, SIGINT);
  sigaddset(&w.set, SIGTERM);
  sigaddset(&w.set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &w.set, NULL);

  mrpc_channel *ch = NULL;
  int rc = ex_channel_new(&cl, NULL, &ch); /* TLS, --authority */
  if (rc != 0) return rc;
  Llm__GenerateRequest req = LLM__GENERATE_REQUEST__INIT;
  req.prompt = (char *)prompt;
  req.max_tokens = (int32_t)max_tokens;
  mrpc_stream *s = NULL;
  if ((rc = llm__llmservice__generate__open(ch, &req, NULL, &s)) != 0) {
    fprintf(stderr, "llm_client: cannot start the call: %s\n",
            mrpc_strerror(rc));
    mrpc_channel_del(ch);
    return 1;
  }
  /* The watcher keeps its own reference: the stream is freed by
   * mrpc_stream_finish while the watcher may still be running. */
  w.call = mrpc_call_ref(mrpc_stream_call(s));
  pthread_t th;
  bool have_watcher = pthread_create(&th, NULL, watch_signals, &w) == 0;

  Llm__GenerateResponse *resp;
  bool finished = false, wrote = false;
  long tokens = 0;
  while ((rc = llm__llmservice__generate__stream_recv_response(s, &resp)) ==
         1) {
    if (resp->is_finished) {
      finished = true;
    } else if (resp->token && resp->token[0]) {
      fputs(resp->token, stdout);
      fflush(stdout);
      wrote = true;
      tokens++;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  mrpc_status st = {0};
  mrpc_stream_finish(s, &st);

  if (have_watcher) {
    pthread_kill(th, SIGUSR1); /* no-op if it already returned */
    pthread_join(th, NULL);
  }
  mrpc_call_unref(w.call);
  mrpc_channel_del(ch);

  int status = 0;
  if (wrote) putchar('\n');
  fflush(stdout);
  if (atomic_load(&w.interrupted)) {
    fprintf(stderr, "llm_client: interrupted, call cancelled after %ld"
                    " tokens\n", tokens);
    status = 130;
  } else if (st.code != MRPC_STATUS_OK) {
    fprintf(stderr, "llm_client: Generate failed: %s: %s\n",
            mrpc_status_code_name(st.code), st.message ? st.message : "");
    status = 1;
  } else if (!finished) {
    fprintf(stderr, "llm_client: the stream ended without is_finished\n");
    status = 1;
  }
  mrpc_status_free(&st);
  return status;
}
