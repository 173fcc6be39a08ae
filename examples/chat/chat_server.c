/* chat_server: a chat room (bidirectional streaming) with libminirpc.
 *
 *   chat_server [--listen HOST:PORT] [--queue-bytes N] [--max-message N]
 *
 * Serves chat.ChatService/Chat.  Every open Chat call is a member of one
 * room; every message a member sends goes to every member, the sender
 * included (its echo confirms that the room took it, and all members see
 * all messages in the same order).  The server fills in user (the message's
 * own, else "anon-<n>") and timestamp_ms (server clock, Unix ms).
 *
 * A member leaves when it half-closes (the call ends with OK once what was
 * queued for it is delivered), cancels, or loses its connection; the others
 * carry on.  A member that does not read fast enough is disconnected: when
 * its send queue (--queue-bytes, default 256 KiB) is full, it leaves the
 * room at once and its call ends with RESOURCE_EXHAUSTED after the messages
 * already queued.  So a stuck client costs at most its queue and never
 * slows the room.
 *
 * Event-driven handlers: a member is a few callbacks and a struct, with no
 * thread of its own, so a room of thousands costs no workers.  The server
 * runs several I/O threads and members live on different ones, so:
 *   - the member list is guarded by a mutex;
 *   - fan-out sends to calls of other threads (mrpc_call_send is
 *     thread-safe and never blocks: it packs the message on the calling
 *     thread and queues it), under the room lock, so that every member
 *     sees the same order;
 *   - the room holds a reference on each member's call (mrpc_call_ref),
 *     dropped in on_done after the member is removed under the lock.
 *
 * One line per join and leave on stdout:
 *   join: id=3 peer=ipv4:127.0.0.1:40000 members=2
 *   leave: id=3 user=alice status=OK messages=5 members=1
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "chat.mrpc.h"
#include "chat.pb-c.h"

#define DEFAULT_LISTEN "0.0.0.0:50054"
#define DEFAULT_MAX_MESSAGE (64 * 1024)
#define MAX_USER 64

typedef struct member {
  mrpc_call *call;  /* the room's reference, dropped in on_done */
  unsigned id;
  char user[MAX_USER + 1]; /* last name used; touched on the call's thread */
  unsigned long sent;      /* messages from this member */
  bool in_room;            /* guarded by room.mu */
  struct member *prev, *next;
} member;

static struct room {
  pthread_mutex_t mu;
  member *head;
  size_t count;
  unsigned next_id;
  bool closing;
} g_room = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t g_queue_bytes;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* With room.mu held. */
static void room_remove(member *m) {
  if (!m->in_room) return;
  if (m->prev) m->prev->next = m->next;
  else g_room.head = m->next;
  if (m->next) m->next->prev = m->prev;
  m->prev = m->next = NULL;
  m->in_room = false;
  g_room.count--;
}

/* Sends msg to every member, with room.mu held.  A member whose queue is
 * full is too slow: out of the room, its call ends with RESOURCE_EXHAUSTED
 * (queued; it runs on the member's I/O thread after what is queued). */
static void room_broadcast(const Chat__ChatMessage *msg) {
  member *next;
  for (member *m = g_room.head; m; m = next) {
    next = m->next;
    int rc = chat__chat_service__chat__send_response(m->call, msg);
    if (rc == MRPC_ERR_AGAIN) {
      char why[128];
      snprintf(why, sizeof why,
               "too slow: more than %zu bytes of messages waiting",
               g_queue_bytes);
      room_remove(m);
      mrpc_call_finish(m->call, MRPC_STATUS_RESOURCE_EXHAUSTED, why, NULL,
                       0);
      printf("kick: id=%u reason=slow members=%zu\n", m->id, g_room.count);
      fflush(stdout);
    }
    /* Other errors: the call is ending; on_done removes the member. */
  }
}

static void on_message(mrpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  (void)call;
  member *m = ctx;
  const Chat__ChatMessage *in = (const Chat__ChatMessage *)msg;
  if (in->user && in->user[0]) {
    /* Printable ASCII and UTF-8 only, at most MAX_USER bytes. */
    size_t n = 0;
    for (const char *p = in->user; *p && n < MAX_USER; p++)
      if ((unsigned char)*p >= 0x20 && *p != 0x7F) m->user[n++] = *p;
    if (n > 0) m->user[n] = '\0';
  }
  Chat__ChatMessage out = CHAT__CHAT_MESSAGE__INIT;
  out.content = in->content;
  out.user = m->user;
  out.timestamp_ms = wall_ms();
  pthread_mutex_lock(&g_room.mu);
  if (m->in_room) { /* a member that was dropped no longer speaks */
    m->sent++;
    room_broadcast(&out);
  }
  pthread_mutex_unlock(&g_room.mu);
}

/* The member is done sending: it leaves, and its call ends with OK once
 * what is queued for it has gone out. */
static void on_half_close(mrpc_call *call, void *ctx) {
  member *m = ctx;
  pthread_mutex_lock(&g_room.mu);
  bool was_in = m->in_room;
  room_remove(m);
  pthread_mutex_unlock(&g_room.mu);
  if (was_in) mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  member *m = ctx;
  pthread_mutex_lock(&g_room.mu);
  room_remove(m);
  size_t left = g_room.count;
  pthread_mutex_unlock(&g_room.mu);
  printf("leave: id=%u user=%s status=%s messages=%lu members=%zu\n", m->id,
         m->user, mrpc_status_code_name(st->code), m->sent, left);
  fflush(stdout);
  /* No other thread can reach m now: it is out of the list, and the list is
   * only walked under the lock. */
  mrpc_call_unref(m->call);
  free(m);
}

/* ChatService.Chat, event style: runs on the call's I/O thread when the
 * call starts; must not block. */
static void chat_start(mrpc_call *call, void *user) {
  (void)user;
  member *m = calloc(1, sizeof *m);
  if (!m) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  static const mrpc_call_ops ops = {
      .on_message = on_message,
      .on_half_close = on_half_close,
      .on_done = on_done,
  };
  m->call = mrpc_call_ref(call);
  pthread_mutex_lock(&g_room.mu);
  m->id = ++g_room.next_id;
  snprintf(m->user, sizeof m->user, "anon-%u", m->id);
  bool closing = g_room.closing;
  if (!closing) {
    m->in_room = true;
    m->next = g_room.head;
    if (g_room.head) g_room.head->prev = m;
    g_room.head = m;
    g_room.count++;
  }
  size_t count = g_room.count;
  pthread_mutex_unlock(&g_room.mu);
  /* From here on_done owns m. */
  mrpc_call_set_ops(call, &ops, m);
  if (closing) {
    mrpc_call_finish(call, MRPC_STATUS_UNAVAILABLE, "server shutting down",
                     NULL, 0);
    return;
  }
  printf("join: id=%u peer=%s members=%zu\n", m->id, mrpc_call_peer(call),
         count);
  fflush(stdout);
}

/* ---- main ------------------------------------------------------------- */

static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  char c = 1;
  if (write(g_sig_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

static int usage(void) {
  fprintf(stderr,
          "usage: chat_server [--listen HOST:PORT] [--queue-bytes N]"
          " [--max-message N]\n"
          "  --listen       address to serve on (default %s; port 0 picks"
          " one)\n"
          "  --queue-bytes  per-member send queue; a member over it is"
          " dropped (default 262144)\n"
          "  --max-message  largest message accepted, bytes (default %d)\n",
          DEFAULT_LISTEN, DEFAULT_MAX_MESSAGE);
  return 2;
}

static const char *flag_value(int argc, char **argv, int *i,
                              const char *name) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] == '\0' && *i + 1 < argc) return argv[++*i];
  return NULL;
}

static bool parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *s == '-' || *end || errno || v == 0 || v > (1ULL << 30))
    return false;
  *out = (size_t)v;
  return true;
}

int main(int argc, char **argv) {
  const char *listen = DEFAULT_LISTEN;
  size_t max_message = DEFAULT_MAX_MESSAGE;
  g_queue_bytes = 256 * 1024;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if ((v = flag_value(argc, argv, &i, "--listen"))) {
      listen = v;
    } else if ((v = flag_value(argc, argv, &i, "--queue-bytes"))) {
      if (!parse_size(v, &g_queue_bytes)) return usage();
    } else if ((v = flag_value(argc, argv, &i, "--max-message"))) {
      if (!parse_size(v, &max_message)) return usage();
    } else {
      return usage();
    }
  }

  if (pipe2(g_sig_pipe, O_CLOEXEC) != 0 ||
      fcntl(g_sig_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    perror("chat_server: pipe");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  static Chat__ChatService_MrpcHandlers handlers;
  handlers.chat = chat_start;

  mrpc_server_opts opts;
  mrpc_server_opts_init(&opts);
  opts.send_queue_limit = g_queue_bytes;
  opts.max_recv_message = max_message;
  mrpc_server *srv = NULL;
  int port = 0, rc;
  if ((rc = mrpc_server_new(&opts, &srv)) != 0 ||
      (rc = chat__chat_service__mrpc_register(srv, &handlers)) != 0 ||
      (rc = mrpc_server_listen(srv, listen, &port)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fprintf(stderr, "chat_server: %s: %s\n", listen, mrpc_strerror(rc));
    mrpc_server_del(srv);
    return 1;
  }
  const char *colon = strrchr(listen, ':');
  int host_len = colon ? (int)(colon - listen) : 0;
  printf("chat_server: listening on %.*s:%d\n", host_len, listen, port);
  fflush(stdout);

  char c;
  while (read(g_sig_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  printf("chat_server: shutting down\n");
  fflush(stdout);
  /* Close the room: every member's call ends with UNAVAILABLE after what
   * is queued for it; the shutdown's grace covers the delivery, then cuts
   * whoever still does not read. */
  pthread_mutex_lock(&g_room.mu);
  g_room.closing = true;
  while (g_room.head) {
    member *m = g_room.head;
    room_remove(m);
    mrpc_call_finish(m->call, MRPC_STATUS_UNAVAILABLE, "server shutting down",
                     NULL, 0);
  }
  pthread_mutex_unlock(&g_room.mu);
  mrpc_server_shutdown(srv, 2000);
  mrpc_server_del(srv);
  close(g_sig_pipe[0]);
  close(g_sig_pipe[1]);
  return 0;
}
