/* gRPC status helpers, error strings and version.
 * SPDX-License-Identifier: Apache-2.0 */
#include "status.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* HTTP/2 error codes (RFC 9113 section 7); numeric so that the wire layer
 * does not depend on nghttp2. */
enum {
  H2_NO_ERROR = 0x0,
  H2_PROTOCOL_ERROR = 0x1,
  H2_INTERNAL_ERROR = 0x2,
  H2_FLOW_CONTROL_ERROR = 0x3,
  H2_SETTINGS_TIMEOUT = 0x4,
  H2_STREAM_CLOSED = 0x5,
  H2_FRAME_SIZE_ERROR = 0x6,
  H2_REFUSED_STREAM = 0x7,
  H2_CANCEL = 0x8,
  H2_COMPRESSION_ERROR = 0x9,
  H2_CONNECT_ERROR = 0xa,
  H2_ENHANCE_YOUR_CALM = 0xb,
  H2_INADEQUATE_SECURITY = 0xc,
  H2_HTTP_1_1_REQUIRED = 0xd
};

const char *mrpc_version(void) { return MRPC_VERSION_STRING; }

const char *mrpc_strerror(int err) {
  switch (err) {
  case MRPC_OK:
    return "success";
#define MRPC__ERR_CASE(name, value, msg) \
  case MRPC_ERR_##name:                  \
    return msg;
    MRPC_ERRORS(MRPC__ERR_CASE)
#undef MRPC__ERR_CASE
  default:
    return "unknown error";
  }
}

const char *mrpc_status_code_name(int code) {
  static const char *const names[MRPC_STATUS_CODE_COUNT] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  if (code < 0 || code >= MRPC_STATUS_CODE_COUNT) return NULL;
  return names[code];
}

/* The message of mrpc__status_set_empty: never freed. */
static char empty_message[1];

void mrpc__status_set_empty(mrpc_status *st, mrpc_status_code code) {
  if (st->message || st->details) mrpc_status_free(st); /* else clear */
  st->code = code;
  st->message = empty_message;
}

void mrpc_status_free(mrpc_status *st) {
  if (!st) return;
  if (st->message != empty_message) free(st->message);
  free(st->details);
  st->code = MRPC_STATUS_OK;
  st->message = NULL;
  st->details = NULL;
  st->details_len = 0;
}

static int needs_escape(uint8_t c) { return c < 0x20 || c > 0x7e || c == '%'; }

size_t mrpc__percent_encode(const uint8_t *in, size_t len, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = in[i];
    if (!needs_escape(c)) {
      if (out) out[n] = (char)c;
      n++;
      continue;
    }
    if (out) {
      out[n] = '%';
      out[n + 1] = hex[c >> 4];
      out[n + 2] = hex[c & 0xf];
    }
    n += 3;
  }
  return n;
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

size_t mrpc__percent_decode(const uint8_t *in, size_t len, char *out) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    int c = in[i];
    if (c == '%' && len - i > 2) {
      int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = hi << 4 | lo;
        i += 2;
      }
    }
    if (out) out[n] = (char)c;
    n++;
  }
  return n;
}

int mrpc__status_parse(const uint8_t *v, size_t len, int *code) {
  int x = 0;
  if (!v || len == 0) return MRPC_ERR_PARSE;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return MRPC_ERR_PARSE;
    if (x > (INT_MAX - (v[i] - '0')) / 10) return MRPC_ERR_PARSE;
    x = x * 10 + (v[i] - '0');
  }
  *code = x;
  return 0;
}

mrpc_status_code mrpc__status_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return MRPC_STATUS_INTERNAL;
  case 401:
    return MRPC_STATUS_UNAUTHENTICATED;
  case 403:
    return MRPC_STATUS_PERMISSION_DENIED;
  case 404:
    return MRPC_STATUS_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return MRPC_STATUS_UNAVAILABLE;
  default:
    return MRPC_STATUS_UNKNOWN;
  }
}

mrpc_status_code mrpc__status_from_rst(uint32_t h2_error) {
  switch (h2_error) {
  case H2_REFUSED_STREAM:
    return MRPC_STATUS_UNAVAILABLE;
  case H2_CANCEL:
    return MRPC_STATUS_CANCELLED;
  case H2_ENHANCE_YOUR_CALM:
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  case H2_INADEQUATE_SECURITY:
    return MRPC_STATUS_PERMISSION_DENIED;
  case H2_NO_ERROR:
  case H2_PROTOCOL_ERROR:
  case H2_INTERNAL_ERROR:
  case H2_FLOW_CONTROL_ERROR:
  case H2_SETTINGS_TIMEOUT:
  case H2_STREAM_CLOSED:
  case H2_FRAME_SIZE_ERROR:
  case H2_COMPRESSION_ERROR:
  case H2_CONNECT_ERROR:
  case H2_HTTP_1_1_REQUIRED:
  default:
    return MRPC_STATUS_INTERNAL;
  }
}

int mrpc__status_set(mrpc_status *st, mrpc_status_code code,
                     const char *message, const void *details,
                     size_t details_len) {
  size_t mlen = message ? strlen(message) : 0;
  /* Copy before freeing: message or details may point into *st. */
  char *m = malloc(mlen + 1);
  uint8_t *d = details && details_len ? malloc(details_len) : NULL;
  int ok = m && (d || !details || !details_len);
  if (ok) {
    memcpy(m, message ? message : "", mlen + 1);
    if (d) memcpy(d, details, details_len);
  } else {
    free(m);
    free(d);
    d = NULL;
    if ((m = malloc(1)) != NULL) m[0] = '\0';
  }
  mrpc_status_free(st);
  st->code = code;
  st->message = m;
  st->details = d;
  st->details_len = d ? details_len : 0;
  return ok ? 0 : MRPC_ERR_NOMEM;
}

int mrpc_status_set(mrpc_status *st, mrpc_status_code code,
                    const char *message) {
  if (!st || (int)code < 0 || (int)code > 16) return MRPC_ERR_INVAL;
  return mrpc__status_set(st, code, message, st->details, st->details_len);
}
