/* The event loop: epoll, timers, and tasks posted from other threads.
 * One loop per I/O thread; everything registered with it runs on that
 * thread.  Only mrpc__loop_post, mrpc__loop_stop and mrpc__loop_on_thread
 * are safe from other threads. */
#ifndef MRPC_LIB_LOOP_H
#define MRPC_LIB_LOOP_H

#include <minirpc/common.h>
#include <stdint.h>

typedef struct mrpc__loop mrpc__loop;

/* A watched file descriptor, embedded in its owner. */
typedef struct mrpc__io mrpc__io;
typedef void (*mrpc__io_cb)(mrpc__io *io, uint32_t events);
struct mrpc__io {
  int fd;
  uint32_t events; /* EPOLLIN / EPOLLOUT currently asked for */
  mrpc__io_cb cb;
};

/* A one-shot timer, embedded in its owner. */
typedef struct mrpc__timer mrpc__timer;
typedef void (*mrpc__timer_cb)(mrpc__timer *t);
struct mrpc__timer {
  int64_t when_ms;
  size_t heap_idx; /* 0 = not armed; else 1-based index in the heap */
  mrpc__timer_cb cb;
};

/* A unit of work for the loop thread.  The poster allocates it; fn owns it
 * from then on (usually frees it).  fn also runs, with cancelled = 1, when
 * the loop is deleted with tasks still queued. */
typedef struct mrpc__task mrpc__task;
typedef void (*mrpc__task_fn)(mrpc__task *t, int cancelled);
struct mrpc__task {
  mrpc__task *next;
  mrpc__task_fn fn;
};

/* Monotonic clock in milliseconds. */
int64_t mrpc__now_ms(void);

/* Returns 0 and *out, or MRPC_ERR_NOMEM / MRPC_ERR_IO. */
int mrpc__loop_new(const mrpc_allocator *alloc, mrpc__loop **out);
/* Runs queued tasks with cancelled = 1 and frees the loop.  The caller
 * has removed every io and timer.  NULL is a no-op. */
void mrpc__loop_del(mrpc__loop *loop);

/* Runs until mrpc__loop_stop.  Marks the calling thread as the loop's. */
void mrpc__loop_run(mrpc__loop *loop);
/* Thread-safe: makes mrpc__loop_run return after the current round. */
void mrpc__loop_stop(mrpc__loop *loop);
/* 1 when called on the thread running the loop. */
int mrpc__loop_on_thread(const mrpc__loop *loop);

/* Thread-safe.  Queues t; on the loop thread it runs after the current
 * callback returns (never re-entrantly), from others the loop is woken. */
void mrpc__loop_post(mrpc__loop *loop, mrpc__task *t);

/* fn(arg) runs on the loop thread before every poll and once more as
 * mrpc__loop_run returns (set before mrpc__loop_run).  mrpc__loop_prepared() says whether the calling thread
 * is running a loop that has one. */
void mrpc__loop_set_prepare(mrpc__loop *loop, void (*fn)(void *), void *arg);
int mrpc__loop_prepared(void);

/* Starts watching fd for events (EPOLLIN/EPOLLOUT; edge-free, level
 * triggered).  Returns 0 or MRPC_ERR_IO. */
int mrpc__io_start(mrpc__loop *loop, mrpc__io *io, int fd, uint32_t events,
                   mrpc__io_cb cb);
/* Changes the events asked for (no syscall when unchanged). */
int mrpc__io_set(mrpc__loop *loop, mrpc__io *io, uint32_t events);
/* Stops watching (does not close the fd). */
void mrpc__io_stop(mrpc__loop *loop, mrpc__io *io);

/* Arms t to fire at when_ms (re-arms if armed). */
int mrpc__timer_start(mrpc__loop *loop, mrpc__timer *t, int64_t when_ms,
                      mrpc__timer_cb cb);
/* Disarms t; no-op when not armed. */
void mrpc__timer_stop(mrpc__loop *loop, mrpc__timer *t);

const mrpc_allocator *mrpc__loop_alloc(const mrpc__loop *loop);

/* Small blocks for objects that come and go with requests (nghttp2's
 * streams, frames, header buffers): freed blocks are kept per loop and
 * handed out again, which libc's per-thread cache does for at most 7 blocks
 * of a size.  Safe from any thread, even once the loop is deleted: off the
 * loop thread blocks come from and go to libc.  Same contracts as
 * malloc/calloc/realloc/free; a block may be freed or resized through any
 * loop (it then joins that loop's cache). */
void *mrpc__blk_alloc(mrpc__loop *loop, size_t n);
void *mrpc__blk_calloc(mrpc__loop *loop, size_t nmemb, size_t n);
void *mrpc__blk_realloc(mrpc__loop *loop, void *p, size_t n);
void mrpc__blk_free(mrpc__loop *loop, void *p);

#endif
