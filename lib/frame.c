/* gRPC length-prefixed message framing.
 * SPDX-License-Identifier: Apache-2.0 */
#include "frame.h"

#include <string.h>

#include "alloc.h"

#define FLAG_COMPRESSED 0x01u

void mrpc__frame_header(uint8_t out[MRPC__FRAME_HDR_LEN], int compressed,
                        uint32_t len) {
  out[0] = compressed ? FLAG_COMPRESSED : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

void mrpc__deframer_init(mrpc__deframer *d, size_t max_len,
                         const mrpc_allocator *alloc) {
  memset(d, 0, sizeof(*d));
  d->alloc = alloc;
  d->max_len = max_len;
}

void mrpc__deframer_free(mrpc__deframer *d) {
  mrpc__free(d->alloc, d->buf);
  d->buf = NULL;
  d->cap = 0;
  d->have = 0;
  d->hdr_have = 0;
}

/* Validates a complete header; 0 or the status code to fail the call with. */
static int check_header(mrpc__deframer *d) {
  const uint8_t *h = d->hdr;
  d->flags = h[0];
  d->len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 |
           (uint32_t)h[4];
  if (d->flags & ~FLAG_COMPRESSED) return MRPC_STATUS_INTERNAL;
  if ((d->flags & FLAG_COMPRESSED) && !d->compression_ok)
    return MRPC_STATUS_INTERNAL;
  if ((size_t)d->len > d->max_len) return MRPC_STATUS_RESOURCE_EXHAUSTED;
  return 0;
}

int mrpc__deframer_feed(mrpc__deframer *d, const uint8_t *data, size_t len,
                        mrpc__deframe_cb cb, void *ud) {
  static const uint8_t empty[1];
  int rc;

  for (;;) {
    if (d->hdr_have < MRPC__FRAME_HDR_LEN) {
      size_t n = MRPC__FRAME_HDR_LEN - d->hdr_have;
      if (len == 0) return 0;
      if (n > len) n = len;
      memcpy(d->hdr + d->hdr_have, data, n);
      d->hdr_have += n;
      data += n;
      len -= n;
      if (d->hdr_have < MRPC__FRAME_HDR_LEN) return 0;
      if ((rc = check_header(d)) != 0) return rc;
      d->have = 0;
      if (d->len == 0 || d->len <= len) {
        /* Whole payload at hand: hand it out without copying. */
        const uint8_t *msg = d->len ? data : empty;
        size_t mlen = d->len;
        d->hdr_have = 0; /* reset first: the callback may check partial() */
        data += mlen;
        len -= mlen;
        if ((rc = cb(ud, d->flags & FLAG_COMPRESSED, msg, mlen)) != 0)
          return rc;
        continue;
      }
      if (d->cap < d->len) {
        uint8_t *nb = mrpc__realloc(d->alloc, d->buf, d->len);
        if (!nb) return MRPC_ERR_NOMEM;
        d->buf = nb;
        d->cap = d->len;
      }
    }
    /* Assembling a payload that straddles chunks. */
    if (len == 0) return 0;
    size_t n = d->len - d->have;
    if (n > len) n = len;
    memcpy(d->buf + d->have, data, n);
    d->have += n;
    data += n;
    len -= n;
    if (d->have == d->len) {
      d->hdr_have = 0;
      d->have = 0;
      if ((rc = cb(ud, d->flags & FLAG_COMPRESSED, d->buf, d->len)) != 0)
        return rc;
    }
  }
}

int mrpc__deframer_partial(const mrpc__deframer *d) {
  return d->hdr_have > 0;
}
