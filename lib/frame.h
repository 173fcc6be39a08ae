/* gRPC message framing: 1-byte flags + 4-byte big-endian length + payload.
 * Pure functions, no I/O. */
#ifndef MRPC_LIB_FRAME_H
#define MRPC_LIB_FRAME_H

#include <minirpc/common.h>
#include <minirpc/status.h>

#define MRPC__FRAME_HDR_LEN 5
#define MRPC__DEFAULT_MAX_RECV (4u * 1024 * 1024)

/* Writes the 5-byte prefix for a payload of len bytes. */
void mrpc__frame_header(uint8_t out[MRPC__FRAME_HDR_LEN], int compressed,
                        uint32_t len);

/* Called for each complete message.  msg is borrowed until return (it may
 * point into the fed chunk or into the deframer's buffer).  Return 0 to go
 * on; any other value stops feeding and is returned by
 * mrpc__deframer_feed. */
typedef int (*mrpc__deframe_cb)(void *ud, int compressed, const uint8_t *msg,
                                size_t len);

/* Incremental decoder: accepts any split of the input, several messages per
 * chunk.  The length is checked against max_len before anything is
 * buffered. */
typedef struct mrpc__deframer {
  const mrpc_allocator *alloc;
  size_t max_len;
  int compression_ok; /* a grpc-encoding was negotiated */
  uint8_t hdr[MRPC__FRAME_HDR_LEN];
  size_t hdr_have;
  uint8_t flags;
  uint32_t len;
  uint8_t *buf; /* payload being assembled (cap >= len) */
  size_t cap;
  size_t have;
} mrpc__deframer;

void mrpc__deframer_init(mrpc__deframer *d, size_t max_len,
                         const mrpc_allocator *alloc);
void mrpc__deframer_free(mrpc__deframer *d);

/* Feeds len bytes.  Returns 0; or a positive mrpc_status_code for a framing
 * violation (RESOURCE_EXHAUSTED: length over max_len; INTERNAL: compressed
 * flag without a negotiated encoding, or a flags byte with unknown bits);
 * or MRPC_ERR_NOMEM; or the callback's non-zero return.  After a non-zero
 * return the deframer must not be fed again. */
int mrpc__deframer_feed(mrpc__deframer *d, const uint8_t *data, size_t len,
                        mrpc__deframe_cb cb, void *ud);

/* Nonzero when part of a message has been fed but not completed (END_STREAM
 * now would truncate a message: INTERNAL). */
int mrpc__deframer_partial(const mrpc__deframer *d);

#endif
