/* The request-id interceptor: server, takes or makes the call's id and
 * echoes it (plus server-version) in the response headers; client, adds an
 * id to calls that have none. */
#include "ic_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HEADER "x-request-id"
#define MAX_ID 128

struct mrpc_ic_request_id {
  char *header;
  char *server_version;
  mrpc_ic_request_id_fn generate;
  void *user;
};

void mrpc_ic_request_id_opts_init(mrpc_ic_request_id_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static void make_id(const mrpc_ic_request_id *r, char *buf, size_t cap) {
  if (r->generate) {
    buf[0] = '\0';
    r->generate(buf, cap, r->user);
    buf[cap - 1] = '\0';
    if (buf[0]) return; /* an empty one is no id: fall back */
  }
  mrpc__ic_uuid(buf); /* cap >= 37 */
}

static mrpc_status_code rid_start(mrpc_call *call, void *ctx, void **call_data,
                                  const char **message) {
  (void)call_data;
  mrpc_ic_request_id *r = ctx;
  char id[MAX_ID + 1];
  if (!mrpc_call_is_server(call)) {
    if (mrpc_metadata_get(mrpc_call_outgoing_metadata(call), r->header, NULL))
      return MRPC_STATUS_OK;
    make_id(r, id, sizeof id);
    /* A generated id the metadata rules refuse is dropped, not fatal. */
    mrpc_call_add_header(call, r->header, id, strlen(id));
    return MRPC_STATUS_OK;
  }
  size_t len;
  const char *v =
      (const char *)mrpc_metadata_get(mrpc_call_metadata(call), r->header, &len);
  if (!v || !len || len > MAX_ID) {
    make_id(r, id, sizeof id);
    v = id;
    len = strlen(id);
  }
  int rv = mrpc_call_add_header(call, r->header, v, len);
  if (rv == 0 && r->server_version)
    rv = mrpc_call_add_header(call, "server-version", r->server_version,
                              strlen(r->server_version));
  if (rv == MRPC_ERR_NOMEM) {
    *message = "out of memory adding response headers";
    return MRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  return MRPC_STATUS_OK;
}

static const mrpc_interceptor rid_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "minirpc.request_id",
    .on_start = rid_start,
};

int mrpc_ic_request_id_new(const mrpc_ic_request_id_opts *opts,
                           mrpc_ic_request_id **out) {
  if (!out) return MRPC_ERR_INVAL;
  *out = NULL;
  mrpc_ic_request_id_opts o;
  mrpc_ic_request_id_opts_init(&o);
  if (mrpc__ic_opts_copy(&o, sizeof o, opts) != 0) return MRPC_ERR_INVAL;
  const char *h = o.header ? o.header : DEFAULT_HEADER;
  /* Check the key (and the version value) the way the metadata would. */
  mrpc_metadata *probe = mrpc_metadata_new(NULL);
  if (!probe) return MRPC_ERR_NOMEM;
  size_t hl = strlen(h);
  int rv = hl > 4 && strcmp(h + hl - 4, "-bin") == 0
               ? MRPC_ERR_INVAL
               : mrpc_metadata_add(probe, h, "x", 1);
  if (rv == 0 && o.server_version &&
      (!mrpc__ic_printable(o.server_version) ||
       mrpc_metadata_add(probe, "server-version", o.server_version,
                         strlen(o.server_version)) != 0))
    rv = MRPC_ERR_INVAL;
  mrpc_metadata_del(probe);
  if (rv == MRPC_ERR_NOMEM) return rv;
  if (rv) return MRPC_ERR_INVAL;
  mrpc_ic_request_id *r = calloc(1, sizeof *r);
  if (!r) return MRPC_ERR_NOMEM;
  int oom = 0;
  r->header = mrpc__ic_strdup(h, &oom);
  r->server_version = mrpc__ic_strdup(o.server_version, &oom);
  if (oom) {
    mrpc_ic_request_id_del(r);
    return MRPC_ERR_NOMEM;
  }
  r->generate = o.generate;
  r->user = o.user;
  *out = r;
  return 0;
}

const mrpc_interceptor *
mrpc_ic_request_id_interceptor(const mrpc_ic_request_id *r) {
  return r ? &rid_table : NULL;
}

void mrpc_ic_request_id_del(mrpc_ic_request_id *r) {
  if (!r) return;
  free(r->header);
  free(r->server_version);
  free(r);
}
