/* chat_server: a chat room (bidirectional streaming) with libminirpc.
 *
 *   chat_server [--listen HOST:PORT] [--queue-bytes N] [--max-message N]
 *               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 *               [--no-health] [--no-reflection]
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
 *
 * As every example server (examples/common/example.h): TLS with --tls-cert
 * / --tls-key, mutual TLS with --tls-client-ca; the health service ("" and
 * chat.ChatService SERVING) and server reflection with chat.proto's
 * descriptor, unless --no-health / --no-reflection.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "example.h"
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

static int usage(void) {
  fprintf(stderr,
          "usage: chat_server [--listen HOST:PORT] [--queue-bytes N]"
          " [--max-message N]\n"
          "                   [--tls-cert FILE --tls-key FILE"
          " [--tls-client-ca FILE]]\n"
          "                   [--no-health] [--no-reflection]\n"
          "  (--listen default: %s)\n"
          "%s"
          "  --queue-bytes N        per-member send queue; a member over it"
          " is dropped\n"
          "                         (default 262144)\n"
          "  --max-message N        largest message accepted, bytes"
          " (default %d)\n",
          DEFAULT_LISTEN, ex_server_usage, DEFAULT_MAX_MESSAGE);
  return 2;
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
  ex_server ex;
  ex_server_init(&ex, "chat_server", DEFAULT_LISTEN);
  size_t max_message = DEFAULT_MAX_MESSAGE;
  g_queue_bytes = 256 * 1024;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_server_flag(&ex, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--queue-bytes"))) {
      if (!parse_size(v, &g_queue_bytes)) return usage();
    } else if ((v = ex_flag_value(argc, argv, &i, "--max-message"))) {
      if (!parse_size(v, &max_message)) return usage();
    } else {
      return usage();
    }
  }

  static Chat__ChatService_MrpcHandlers handlers;
  handlers.chat = chat_start;

  mrpc_server_opts opts;
  mrpc_server_opts_init(&opts);
  opts.send_queue_limit = g_queue_bytes;
  opts.max_recv_message = max_message;
  /* TLS, health and reflection (example.h); SIGINT / SIGTERM blocked for
   * ex_wait_signal. */
  int rc = ex_server_new(&ex, &opts);
  if (rc != 0) return rc;
  if ((rc = chat__chat_service__mrpc_register(ex.srv, &handlers)) != 0) {
    fprintf(stderr, "chat_server: %s\n", mrpc_strerror(rc));
    rc = 1;
  } else {
    rc = ex_server_start(&ex, &chat__chat_service__mrpc_service,
                         &chat__mrpc_file);
  }
  if (rc != 0) {
    ex_server_del(&ex);
    return rc;
  }
  printf("chat_server: listening on %s\n", ex.where);
  fflush(stdout);

  ex_wait_signal();
  printf("chat_server: shutting down\n");
  fflush(stdout);
  /* Close the room: every member's call ends with UNAVAILABLE after what
   * is queued for it; the shutdown's grace covers the delivery, then cuts
   * whoever still does not read.  (Health turns NOT_SERVING when the
   * shutdown begins.) */
  pthread_mutex_lock(&g_room.mu);
  g_room.closing = true;
  while (g_room.head) {
    member *m = g_room.head;
    room_remove(m);
    mrpc_call_finish(m->call, MRPC_STATUS_UNAVAILABLE, "server shutting down",
                     NULL, 0);
  }
  pthread_mutex_unlock(&g_room.mu);
  mrpc_server_shutdown(ex.srv, 2000);
  ex_server_del(&ex);
  return 0;
}
