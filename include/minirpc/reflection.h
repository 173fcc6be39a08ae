/* libminirpc: gRPC server reflection, grpc.reflection.v1 and v1alpha
 * ServerReflection (grpc/grpc doc/server-reflection.md), so that generic
 * tools (grpcurl, grpc_cli, any reflection client) can list a server's
 * services and fetch the .proto descriptors to call them.
 * docs/services.md.
 *
 *   mrpc_reflection *r;
 *   mrpc_reflection_new(&r);
 *   mrpc_reflection_add_file(r, &user__mrpc_file);  // from user.mrpc.h
 *   mrpc_reflection_register(srv, r);               // before start
 *   ...
 *   mrpc_server_del(srv);
 *   mrpc_reflection_del(r);
 *
 * The descriptors are those protoc-gen-minirpc embeds in every NAME.mrpc.c
 * (mrpc_file_descriptor, minirpc/descriptor.h).  Answers, on one bidi
 * stream, in the order asked:
 *   list_services                  every service registered on the server
 *                                  (health and reflection included), known
 *                                  to reflection or not
 *   file_by_filename               the file, then those of its transitive
 *   file_containing_symbol         imports not yet sent on this stream (the
 *   file_containing_extension      file asked for is always sent)
 *   all_extension_numbers_of_type  the extension numbers of a message type
 * Symbols are fully-qualified names without the leading dot: packages'
 * messages, nested messages, fields, oneofs, enums, enum values (which
 * live beside their enum, as in protobuf), services, methods, extensions.
 * What is not known is answered with an error_response NOT_FOUND; the
 * stream goes on.  The files of grpc.reflection.v1, v1alpha and
 * grpc.health.v1 are always known.
 *
 * Every function except mrpc_reflection_del is thread-safe.  The object
 * allocates with libc; it may be registered with several servers and must
 * outlive them: delete it after mrpc_server_del.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_REFLECTION_H
#define MINIRPC_REFLECTION_H

#include <minirpc/descriptor.h>
#include <minirpc/server.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrpc_reflection mrpc_reflection;

/* Creates a reflection service that knows its own files and health's.
 * Returns 0 and *out, or MRPC_ERR_INVAL, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_reflection_new(mrpc_reflection **out);

/* Frees it.  Every server it was registered with must be deleted first.
 * NULL is a no-op. */
MRPC_EXTERN void mrpc_reflection_del(mrpc_reflection *r);

/* Makes file and, recursively, every file it imports known (kept by
 * pointer: generated descriptors are static).  Adding a file again, or
 * another one with the same name and the same bytes, does nothing.  May be
 * called at any time.  Returns 0 or MRPC_ERR_INVAL (NULL, no name),
 * MRPC_ERR_PARSE (the data is not a FileDescriptorProto), MRPC_ERR_EXISTS
 * (another file of that name with other contents), MRPC_ERR_NOMEM; files
 * added before the error stay. */
MRPC_EXTERN int mrpc_reflection_add_file(mrpc_reflection *r,
                                         const mrpc_file_descriptor *file);

/* Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection on srv (event-driven: no worker
 * thread per stream).  Before mrpc_server_start.  Returns 0 or
 * MRPC_ERR_INVAL, MRPC_ERR_EXISTS, MRPC_ERR_STATE (started),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_reflection_register(mrpc_server *srv,
                                         mrpc_reflection *r);

#ifdef __cplusplus
}
#endif
#endif
