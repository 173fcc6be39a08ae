/* Checks of encoded protobuf messages that protobuf-c does not make. */
#ifndef MRPC_LIB_PBCHECK_H
#define MRPC_LIB_PBCHECK_H

#include <protobuf-c/protobuf-c.h>

/* 1 if every string field in the encoded message p[0..len) (nested
 * messages included) is valid UTF-8 without a NUL byte, 0 otherwise.
 * protobuf-c keeps strings as C strings: a NUL would silently cut the value
 * short, and other gRPC implementations refuse invalid UTF-8 in strings.
 * Input that is not well-formed is left for protobuf-c to refuse (1). */
int mrpc__pb_strings_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len);

#endif
