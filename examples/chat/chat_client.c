/* chat_client: joins the chat.ChatService room.
 *
 *   chat_client [--target HOST:PORT] [--name NAME]
 *               [--tls | --tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *               [--authority NAME]
 *
 * Sends every line of stdin as a ChatMessage (user = NAME, default $USER,
 * else "anon") and prints every message of the room as "user: content".
 * At end of input or on a "quit" line it half-closes and waits for the
 * server to end the call (it still prints what arrives until then).  If the
 * server ends the call first, the client stops reading stdin and exits.
 *
 * Blocking style with two threads, which mrpc_stream allows (one may
 * receive while another sends): a receiver thread prints messages, the main
 * thread reads stdin and sends.  The main thread polls stdin together with a
 * pipe the receiver writes to when the call is over.
 *
 * TLS and --authority as every example client (examples/common/example.h).
 *
 * Exit status: 0 when the call ended with OK, 1 otherwise, 2 on bad usage.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "chat.mrpc.h"
#include "chat.pb-c.h"

#define DEFAULT_TARGET "localhost:50054"
#define MAX_LINE 4096

typedef struct receiver {
  mrpc_stream *s;
  int wake; /* write end of the pipe main polls */
  long received;
} receiver;

static void *receive(void *arg) {
  receiver *r = arg;
  Chat__ChatMessage *m;
  while (chat__chat_service__chat__stream_recv_response(r->s, &m) == 1) {
    printf("%s: %s\n", m->user, m->content);
    fflush(stdout);
    r->received++;
    protobuf_c_message_free_unpacked(&m->base, NULL);
  }
  char c = 1;
  if (write(r->wake, &c, 1) < 0) {
  }
  return NULL;
}

static int usage(void) {
  fprintf(stderr,
          "usage: chat_client [--target HOST:PORT] [--name NAME]\n"
          "                   [--tls | --tls-ca FILE]"
          " [--tls-cert FILE --tls-key FILE]\n"
          "                   [--authority NAME]\n"
          "  --target HOST:PORT     server (default %s)\n"
          "  --name NAME            your name in the room (default $USER)\n"
          "%s"
          "Type lines to send them; \"quit\" or end of input leaves.\n",
          DEFAULT_TARGET, ex_client_usage);
  return 2;
}

/* Sends one line; false when the call is over. */
static bool send_line(mrpc_stream *s, const char *name, char *line) {
  size_t n = strlen(line);
  if (n > 0 && line[n - 1] == '\r') line[n - 1] = '\0';
  Chat__ChatMessage m = CHAT__CHAT_MESSAGE__INIT;
  m.content = line;
  m.user = (char *)name;
  return chat__chat_service__chat__stream_send_request(s, &m) == 0;
}

int main(int argc, char **argv) {
  ex_client cl;
  ex_client_init(&cl, "chat_client", DEFAULT_TARGET);
  const char *name = getenv("USER");
  if (!name || !*name) name = "anon";
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_client_flag(&cl, argc, argv, &i))
      continue;
    else if ((v = ex_flag_value(argc, argv, &i, "--name")))
      name = v;
    else
      return usage();
  }
  signal(SIGPIPE, SIG_IGN);

  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    perror("chat_client: pipe");
    return 1;
  }
  mrpc_channel *ch = NULL;
  receiver r = {NULL, wake[1], 0};
  int rc = ex_channel_new(&cl, NULL, &ch); /* TLS, --authority */
  if (rc != 0) {
    close(wake[0]);
    close(wake[1]);
    return rc;
  }
  if ((rc = chat__chat_service__chat__open(ch, NULL, &r.s)) != 0) {
    fprintf(stderr, "chat_client: %s: %s\n", cl.target, mrpc_strerror(rc));
    mrpc_channel_del(ch);
    return 1;
  }
  pthread_t th;
  if (pthread_create(&th, NULL, receive, &r) != 0) {
    fprintf(stderr, "chat_client: cannot start a thread\n");
    mrpc_call_cancel(mrpc_stream_call(r.s));
    mrpc_stream_finish(r.s, NULL);
    mrpc_channel_del(ch);
    return 1;
  }

  /* stdin, line by line, until EOF, "quit", or the end of the call. */
  char buf[MAX_LINE + 1];
  size_t have = 0;
  bool over = false, skipping = false;
  while (!over) {
    struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break; /* the server ended the call */
    if (!p[0].revents) continue;
    ssize_t n = read(STDIN_FILENO, buf + have, MAX_LINE - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { /* end of input; a last unterminated line still goes */
      buf[have] = '\0';
      if (have > 0 && !skipping && strcmp(buf, "quit") != 0)
        send_line(r.s, name, buf);
      break;
    }
    have += (size_t)n;
    char *start = buf, *nl;
    while (!over && (nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
      *nl = '\0';
      if (skipping) {
        skipping = false; /* the tail of an over-long line */
      } else if (strcmp(start, "quit") == 0) {
        over = true;
        break;
      } else if (!send_line(r.s, name, start)) {
        over = true;
        break;
      }
      start = nl + 1;
    }
    have -= (size_t)(start - buf);
    memmove(buf, start, have);
    if (have == MAX_LINE) { /* a line too long: send what fits */
      buf[have] = '\0';
      if (!skipping && !send_line(r.s, name, buf)) over = true;
      skipping = true;
      have = 0;
    }
  }

  /* Leave: half-close and wait for the server's end of the call. */
  mrpc_stream_close_send(r.s);
  pthread_join(th, NULL);
  mrpc_status st = {0};
  mrpc_stream_finish(r.s, &st);
  mrpc_channel_del(ch);
  close(wake[0]);
  close(wake[1]);
  int status = 0;
  if (st.code != MRPC_STATUS_OK) {
    fprintf(stderr, "chat_client: the room closed the call: %s: %s\n",
            mrpc_status_code_name(st.code), st.message ? st.message : "");
    status = 1;
  }
  mrpc_status_free(&st);
  return status;
}
