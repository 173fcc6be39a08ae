/* Metadata internals: validation, base64 for "-bin" keys, wire ingest. */
#ifndef MRPC_LIB_METADATA_H
#define MRPC_LIB_METADATA_H

#include <minirpc/metadata.h>

/* One entry: key and value share one block, "key\0value\0". */
typedef struct mrpc__md_entry {
  char *key;
  size_t klen;
  uint8_t *val;
  size_t vlen;
} mrpc__md_entry;

/* Most maps hold a few short entries (a request's custom headers): those
 * live inside the map, with no allocation.  Defined here so that a call can
 * embed its request map (mrpc__metadata_init). */
#define MRPC__MD_INLINE_ENTRIES 4
#define MRPC__MD_INLINE_BYTES 96

struct mrpc_metadata {
  const mrpc_allocator *alloc;
  mrpc__md_entry *v; /* inline_v until it outgrows it */
  size_t n, cap;
  int embedded;      /* inside another object: del does not free it */
  size_t arena_used; /* bytes of arena given to entries */
  mrpc__md_entry inline_v[MRPC__MD_INLINE_ENTRIES];
  char arena[MRPC__MD_INLINE_BYTES];
};

/* Sets up a map embedded in another object; mrpc__metadata_fini releases
 * its entries (mrpc_metadata_del on it does the same, never frees it). */
void mrpc__metadata_init(mrpc_metadata *md, const mrpc_allocator *alloc);
void mrpc__metadata_fini(mrpc_metadata *md);

/* 1 if key[0..len) is a legal metadata name: non-empty, [0-9a-z_.-] only. */
int mrpc__metadata_key_valid(const char *key, size_t len);

/* 1 if the name belongs to the library: starts with "grpc-" or ':', or is
 * one of te, content-type, user-agent, host, connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade. */
int mrpc__metadata_key_reserved(const char *key, size_t len);

/* 1 if key ends in "-bin". */
int mrpc__metadata_key_is_bin(const char *key, size_t len);

/* Length of the unpadded base64 of n bytes. */
size_t mrpc__base64_encoded_len(size_t n);

/* Standard alphabet, no padding.  out needs mrpc__base64_encoded_len(len)
 * bytes (no NUL written).  Returns the length written. */
size_t mrpc__base64_encode(const uint8_t *in, size_t len, char *out);

/* Decodes standard base64, padded or unpadded; also accepts several values
 * joined with "," (each decoded in turn, concatenated; a comma may be
 * followed by spaces).  out needs at least len bytes.  Returns 0 and
 * *outlen, or MRPC_ERR_PARSE (bad character, impossible length, misplaced
 * padding). */
int mrpc__base64_decode(const char *in, size_t len, uint8_t *out,
                        size_t *outlen);

/* Adds a header received from the wire.  Names are already lowercase
 * (HTTP/2).  Reserved names are not added: returns MRPC_ERR_RESERVED so the
 * caller can skip them.  "-bin" values are base64-decoded; other values
 * must be 0x20-0x7E (MRPC_ERR_INVAL otherwise).  Returns 0 or
 * MRPC_ERR_RESERVED, MRPC_ERR_INVAL (bad name or value), MRPC_ERR_PARSE (bad
 * base64), MRPC_ERR_NOMEM. */
int mrpc__metadata_add_wire(mrpc_metadata *md, const uint8_t *name,
                            size_t nlen, const uint8_t *value, size_t vlen);

/* Appends every entry of src to dst.  Returns 0 or MRPC_ERR_NOMEM (dst then
 * holds a prefix of the copy). */
int mrpc__metadata_append(mrpc_metadata *dst, const mrpc_metadata *src);

/* Key length of entry i (entries keep it so the wire layer need not strlen). */
size_t mrpc__metadata_key_len(const mrpc_metadata *md, size_t i);

#endif
