/* protoc-gen-minirpc: C names, made exactly as protoc-c (1.4) makes them so
 * that the generated code refers to protoc-c's types and descriptors.
 *
 * protoc-c's rules (protoc-c/c_helpers.cc):
 *   CamelToLower("CreateUser") = "create_user", ("HTTPGet") = "httpget",
 *     ("Get2Things") = "get2_things": an '_' before an upper-case letter
 *     that follows a non-upper-case character, then lower-cased.
 *   CamelToUpper: the same, upper-cased.
 *   ToCamel("foo_bar") = "FooBar": '_' dropped, the next letter raised.
 *   FullNameTo{Lower,Upper,C}("pkg.sub.Msg"): each dot-separated piece
 *     through the rule above, joined with "__".
 *   A file option (pb_c_file).c_package replaces the package in those full
 *   names (OverrideFullName).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CODEGEN_NAMES_H
#define MINIRPC_CODEGEN_NAMES_H

#include <stdbool.h>

/* Each returns a new string (free it). */
char *cg_camel_to_lower(const char *s);
char *cg_camel_to_upper(const char *s);
char *cg_full_name_to_lower(const char *full);
char *cg_full_name_to_upper(const char *full);
char *cg_full_name_to_c(const char *full);

/* protoc-c's OverrideFullName: full ("pkg.Msg", no leading dot) with the
 * file's package replaced by c_package when the file sets one (c_package
 * NULL: unchanged).  package may be NULL (no package). */
char *cg_override_full_name(const char *full, const char *package,
                            const char *c_package);

/* An identifier protoc could have made: [A-Za-z_][A-Za-z0-9_]*. */
bool cg_is_ident(const char *s);

/* A name that can not be a struct member or a standalone identifier in C:
 * a keyword of some C standard or of GNU C, or a macro that common headers
 * or GNU modes define (errno, bool, linux, ...).  Returns why, or NULL. */
const char *cg_reserved_why(const char *name);

/* protoc-c's StripProto: drops ".protodevel" or ".proto". */
char *cg_strip_proto(const char *file_name);

/* The C name of a file (doc/codegen.md "F"): the path without ".proto",
 * lower-cased, "/" -> "__", anything else that can not be in a C name ->
 * "_".  NULL when that can not make a C name (empty, or it would start with
 * a digit). */
char *cg_file_ident(const char *file_name);

/* The include guard of NAME.mrpc.h: every character that can not be in a
 * C name is written as _XX (hex), so that distinct paths never share one. */
char *cg_file_guard(const char *file_name);

#endif
