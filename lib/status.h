/* gRPC status helpers: names, grpc-message percent coding, HTTP and
 * RST_STREAM mappings.  Pure functions, no I/O. */
#ifndef MRPC_LIB_STATUS_H
#define MRPC_LIB_STATUS_H

#include <minirpc/status.h>

/* Percent-encodes a grpc-message value (PROTOCOL-HTTP2.md): bytes outside
 * 0x20-0x7E and '%' become %XX (uppercase hex).  Writes into out if non-NULL
 * (no NUL added) and returns the encoded length. */
size_t mrpc__percent_encode(const uint8_t *in, size_t len, char *out);

/* Decodes a grpc-message value tolerantly: a '%' not followed by two hex
 * digits is kept as is.  Writes into out (at most len bytes, no NUL) if
 * non-NULL; returns the decoded length (<= len). */
size_t mrpc__percent_decode(const uint8_t *in, size_t len, char *out);

/* Parses a grpc-status value: decimal digits only.  Returns 0 and *code, or
 * MRPC_ERR_PARSE (empty, non-digit, or too long).  Values above 16 are
 * returned as they are: the caller maps them to UNKNOWN. */
int mrpc__status_parse(const uint8_t *v, size_t len, int *code);

/* http-grpc-status-mapping.md: status to use when a response has no
 * grpc-status (400->INTERNAL, 401->UNAUTHENTICATED, 403->PERMISSION_DENIED,
 * 404->UNIMPLEMENTED, 429/502/503/504->UNAVAILABLE, else UNKNOWN). */
mrpc_status_code mrpc__status_from_http(int http_status);

/* RST_STREAM error code to status: REFUSED_STREAM->UNAVAILABLE,
 * CANCEL->CANCELLED, ENHANCE_YOUR_CALM->RESOURCE_EXHAUSTED,
 * INADEQUATE_SECURITY->PERMISSION_DENIED, others->INTERNAL. */
mrpc_status_code mrpc__status_from_rst(uint32_t h2_error);

/* Fills *st (libc allocations, freed by mrpc_status_free): copies message
 * (NULL -> "") and details.  Frees what *st held before.  Returns 0 or
 * MRPC_ERR_NOMEM (then *st holds code with message "" and no details). */
int mrpc__status_set(mrpc_status *st, mrpc_status_code code,
                     const char *message, const void *details,
                     size_t details_len);

/* Sets *st to code with message "" and no details, without allocating: the
 * message is a shared empty string that mrpc_status_free knows not to
 * free.  Only for statuses the library keeps (a server call's), never for
 * one handed to the application to own. */
void mrpc__status_set_empty(mrpc_status *st, mrpc_status_code code);

#endif
