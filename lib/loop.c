/* epoll event loop with a timer heap and a cross-thread task queue. */
#include "loop.h"

#include "alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

/* Block cache: one free list per 16-byte size up to BLK_MAX_SIZE (header
 * included), so a block costs what libc would give; at most BLK_KEEP_BYTES
 * kept per loop, enough for the streams of a busy loop. */
#define BLK_GRAIN 16
#define BLK_MAX_SIZE 2048
#define BLK_CLASSES (BLK_MAX_SIZE / BLK_GRAIN + 1)
#define BLK_KEEP_BYTES (1024 * 1024)
#define BLK_BIG 0 /* class of a plain allocation (larger blocks) */

/* Under AddressSanitizer a kept block is poisoned: a use after free still
 * shows, as it would with libc's free. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define BLK_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define BLK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define BLK_POISON(p, n) ((void)(p), (void)(n))
#define BLK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* In front of every block: its class (size / BLK_GRAIN), or BLK_BIG.
 * 16 bytes keep the block as aligned as malloc's. */
typedef union blk_hdr {
  struct {
    union blk_hdr *next; /* while cached */
    size_t cls;
  } h;
  max_align_t align;
} blk_hdr;

struct mrpc__loop {
  const mrpc_allocator *alloc;
  int epfd;
  mrpc__io wake; /* eventfd: other threads post tasks */
  atomic_int stop;
  pthread_t thread;
  atomic_int running;
  /* Tasks posted and not taken: a lock-free stack, newest first (posts
   * from workers would otherwise take a lock each); run_tasks takes it
   * whole and runs it oldest first.  wake_pending avoids redundant
   * eventfd writes. */
  _Atomic(mrpc__task *) posted;
  atomic_int wake_pending;
  /* Timer min-heap by when_ms (1-based indices stored in timers). */
  mrpc__timer **heap;
  size_t heap_len, heap_cap;
  /* Block cache (loop thread only). */
  blk_hdr *blk_free[BLK_CLASSES];
  size_t blk_bytes; /* bytes of the blocks kept */
  void (*prepare)(void *);
  void *prepare_arg;
};

int64_t mrpc__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake_cb(mrpc__io *io, uint32_t events) {
  uint64_t v;
  (void)events;
  /* Draining the counter is enough: the tasks are taken after dispatch. */
  while (read(io->fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
}

/* Takes every posted task, oldest first. */
static mrpc__task *take_tasks(mrpc__loop *l) {
  mrpc__task *t = atomic_exchange(&l->posted, NULL), *fifo = NULL;
  while (t) {
    mrpc__task *next = t->next;
    t->next = fifo;
    fifo = t;
    t = next;
  }
  return fifo;
}

int mrpc__loop_new(const mrpc_allocator *alloc, mrpc__loop **out) {
  mrpc__loop *l = mrpc__calloc(alloc, 1, sizeof *l);
  if (!l) return MRPC_ERR_NOMEM;
  l->alloc = alloc;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->epfd < 0 || efd < 0) {
    if (l->epfd >= 0) close(l->epfd);
    if (efd >= 0) close(efd);
    mrpc__free(alloc, l);
    return MRPC_ERR_IO;
  }
  if (mrpc__io_start(l, &l->wake, efd, EPOLLIN, wake_cb) != 0) {
    close(efd);
    close(l->epfd);
    mrpc__free(alloc, l);
    return MRPC_ERR_IO;
  }
  *out = l;
  return 0;
}

void mrpc__loop_del(mrpc__loop *l) {
  if (!l) return;
  mrpc__task *t = take_tasks(l);
  while (t) {
    mrpc__task *next = t->next;
    t->fn(t, 1);
    t = next;
  }
  for (int i = 1; i < BLK_CLASSES; i++)
    while (l->blk_free[i]) {
      blk_hdr *b = l->blk_free[i];
      l->blk_free[i] = b->h.next;
      BLK_UNPOISON(b + 1, (size_t)i * BLK_GRAIN - sizeof *b);
      free(b);
    }
  mrpc__io_stop(l, &l->wake);
  close(l->wake.fd);
  close(l->epfd);
  mrpc__free(l->alloc, l->heap);
  mrpc__free(l->alloc, l);
}

const mrpc_allocator *mrpc__loop_alloc(const mrpc__loop *l) {
  return l->alloc;
}

int mrpc__loop_on_thread(const mrpc__loop *l) {
  return atomic_load(&((mrpc__loop *)l)->running) &&
         pthread_equal(l->thread, pthread_self());
}

/* ---- block cache ---- */

/* The loop this thread runs, if any: the cache is touched only through it,
 * so a block freed on another thread (or after the loop is gone) never
 * reads the loop. */
static _Thread_local mrpc__loop *tl_loop;

void *mrpc__blk_alloc(mrpc__loop *l, size_t n) {
  blk_hdr *b;
  if (n > BLK_MAX_SIZE - sizeof *b) {
    if (n > SIZE_MAX - sizeof *b) return NULL;
    b = malloc(sizeof *b + n);
    if (!b) return NULL;
    b->h.cls = BLK_BIG;
    return b + 1;
  }
  size_t c = (n + sizeof *b + BLK_GRAIN - 1) / BLK_GRAIN;
  if (tl_loop == l && (b = l->blk_free[c]) != NULL) {
    l->blk_free[c] = b->h.next;
    l->blk_bytes -= c * BLK_GRAIN;
    BLK_UNPOISON(b + 1, c * BLK_GRAIN - sizeof *b);
  } else if ((b = malloc(c * BLK_GRAIN)) == NULL) {
    return NULL;
  }
  b->h.cls = c;
  return b + 1;
}

void *mrpc__blk_calloc(mrpc__loop *l, size_t nmemb, size_t n) {
  if (n && nmemb > SIZE_MAX / n) return NULL;
  void *p = mrpc__blk_alloc(l, nmemb * n);
  if (p) memset(p, 0, nmemb * n);
  return p;
}

void mrpc__blk_free(mrpc__loop *l, void *p) {
  if (!p) return;
  blk_hdr *b = (blk_hdr *)p - 1;
  size_t c = b->h.cls;
  if (tl_loop == l && c != BLK_BIG &&
      l->blk_bytes + c * BLK_GRAIN <= BLK_KEEP_BYTES) {
    b->h.next = l->blk_free[c];
    l->blk_free[c] = b;
    l->blk_bytes += c * BLK_GRAIN;
    BLK_POISON(b + 1, c * BLK_GRAIN - sizeof *b);
    return;
  }
  free(b);
}

void *mrpc__blk_realloc(mrpc__loop *l, void *p, size_t n) {
  if (!p) return mrpc__blk_alloc(l, n);
  blk_hdr *b = (blk_hdr *)p - 1;
  size_t c = b->h.cls;
  int big = n > BLK_MAX_SIZE - sizeof *b;
  if (c == BLK_BIG && big) {
    if (n > SIZE_MAX - sizeof *b) return NULL;
    blk_hdr *nb = realloc(b, sizeof *b + n);
    return nb ? nb + 1 : NULL;
  }
  /* A plain block shrinking into the cached sizes keeps n bytes. */
  size_t have = c == BLK_BIG ? n : c * BLK_GRAIN - sizeof *b;
  if (n <= have && c != BLK_BIG) return p;
  void *q = mrpc__blk_alloc(l, n);
  if (!q) return NULL;
  memcpy(q, p, have < n ? have : n);
  mrpc__blk_free(l, p);
  return q;
}

void mrpc__loop_stop(mrpc__loop *l) {
  atomic_store(&l->stop, 1);
  uint64_t one = 1;
  ssize_t r = write(l->wake.fd, &one, sizeof one);
  (void)r;
}

void mrpc__loop_post(mrpc__loop *l, mrpc__task *t) {
  t->next = atomic_load_explicit(&l->posted, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      &l->posted, &t->next, t, memory_order_seq_cst, memory_order_relaxed)) {
  }
  /* seq_cst with run_tasks: it clears wake_pending before it takes the
   * stack, so a post it does not take sees the flag clear and wakes it. */
  if (tl_loop != l && !atomic_exchange(&l->wake_pending, 1)) {
    uint64_t one = 1;
    ssize_t r = write(l->wake.fd, &one, sizeof one);
    (void)r;
  }
}

void mrpc__loop_set_prepare(mrpc__loop *l, void (*fn)(void *), void *arg) {
  l->prepare = fn;
  l->prepare_arg = arg;
}

int mrpc__loop_prepared(void) { return tl_loop && tl_loop->prepare; }

/* Runs the tasks queued so far; tasks they post wait for the next round so
 * that a task re-posting itself can not starve I/O. */
static int run_tasks(mrpc__loop *l) {
  atomic_store(&l->wake_pending, 0);
  mrpc__task *t = take_tasks(l);
  int n = 0;
  while (t) {
    mrpc__task *next = t->next;
    t->fn(t, 0);
    t = next;
    n++;
  }
  return n;
}

/* ---- timers ---- */

static void heap_swap(mrpc__loop *l, size_t a, size_t b) {
  mrpc__timer *t = l->heap[a];
  l->heap[a] = l->heap[b];
  l->heap[b] = t;
  l->heap[a]->heap_idx = a + 1;
  l->heap[b]->heap_idx = b + 1;
}

static void heap_up(mrpc__loop *l, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (l->heap[p]->when_ms <= l->heap[i]->when_ms) break;
    heap_swap(l, p, i);
    i = p;
  }
}

static void heap_down(mrpc__loop *l, size_t i) {
  for (;;) {
    size_t c = 2 * i + 1, m = i;
    if (c < l->heap_len && l->heap[c]->when_ms < l->heap[m]->when_ms) m = c;
    if (c + 1 < l->heap_len && l->heap[c + 1]->when_ms < l->heap[m]->when_ms)
      m = c + 1;
    if (m == i) break;
    heap_swap(l, i, m);
    i = m;
  }
}

void mrpc__timer_stop(mrpc__loop *l, mrpc__timer *t) {
  if (!t->heap_idx) return;
  size_t i = t->heap_idx - 1;
  t->heap_idx = 0;
  l->heap_len--;
  if (i == l->heap_len) return;
  l->heap[i] = l->heap[l->heap_len];
  l->heap[i]->heap_idx = i + 1;
  heap_up(l, i);
  heap_down(l, l->heap[i]->heap_idx - 1);
}

int mrpc__timer_start(mrpc__loop *l, mrpc__timer *t, int64_t when_ms,
                      mrpc__timer_cb cb) {
  mrpc__timer_stop(l, t);
  if (l->heap_len == l->heap_cap) {
    size_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
    mrpc__timer **h = mrpc__realloc(l->alloc, l->heap, cap * sizeof *h);
    if (!h) return MRPC_ERR_NOMEM;
    l->heap = h;
    l->heap_cap = cap;
  }
  t->when_ms = when_ms;
  t->cb = cb;
  l->heap[l->heap_len] = t;
  t->heap_idx = ++l->heap_len;
  heap_up(l, l->heap_len - 1);
  return 0;
}

static void run_timers(mrpc__loop *l) {
  int64_t now = mrpc__now_ms();
  while (l->heap_len && l->heap[0]->when_ms <= now) {
    mrpc__timer *t = l->heap[0];
    mrpc__timer_stop(l, t);
    t->cb(t);
  }
}

/* ---- io ---- */

int mrpc__io_start(mrpc__loop *l, mrpc__io *io, int fd, uint32_t events,
                   mrpc__io_cb cb) {
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->fd = fd;
  io->events = events;
  io->cb = cb;
  return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : MRPC_ERR_IO;
}

int mrpc__io_set(mrpc__loop *l, mrpc__io *io, uint32_t events) {
  if (io->events == events) return 0;
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0 ? 0
                                                             : MRPC_ERR_IO;
}

void mrpc__io_stop(mrpc__loop *l, mrpc__io *io) {
  if (io->fd >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void mrpc__loop_run(mrpc__loop *l) {
  struct epoll_event evs[MAX_EVENTS];
  l->thread = pthread_self();
  atomic_store(&l->running, 1);
  mrpc__loop *outer = tl_loop;
  tl_loop = l;
  while (!atomic_load(&l->stop)) {
    if (l->prepare) l->prepare(l->prepare_arg);
    int timeout = -1;
    if (atomic_load(&l->posted)) {
      timeout = 0;
    } else if (l->heap_len) {
      int64_t d = l->heap[0]->when_ms - mrpc__now_ms();
      timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
    }
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
    for (int i = 0; i < n; i++) {
      mrpc__io *io = evs[i].data.ptr;
      io->cb(io, evs[i].events);
    }
    run_timers(l);
    /* Tasks posted by tasks (a flush after an operation from another
     * thread) get one more pass before the next epoll_wait: that saves a
     * poll round, and a task re-posting itself still can not starve I/O. */
    if (run_tasks(l)) run_tasks(l);
  }
  /* What the last pass left for the hook (a server's queued handlers). */
  if (l->prepare) l->prepare(l->prepare_arg);
  tl_loop = outer;
  atomic_store(&l->running, 0);
  atomic_store(&l->stop, 0);
}
