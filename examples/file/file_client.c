/* file_client: uploads one file to file.FileService/Upload.
 *
 *   file_client [--target HOST:PORT] PATH [--name NAME]
 *               [--tls | --tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *               [--authority NAME]
 *
 * Blocking style, as the blog's Python client: the file goes in 1 MiB
 * chunks (the first one carries the name: --name, else PATH's base name),
 * then the client half-closes and reads the one UploadResponse.  It hashes
 * what it sends and checks the server's SHA-256 and size against its own.
 *
 * TLS and --authority as every example client (examples/common/example.h).
 *
 * Exit status: 0 when stored and verified, 1 on an error status or a
 * mismatch, 2 on bad usage.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "file.mrpc.h"
#include "file.pb-c.h"

#define DEFAULT_TARGET "localhost:50053"
#define CHUNK (1024 * 1024) /* 1 MiB, as the blog */

static int usage(void) {
  fprintf(stderr,
          "usage: file_client [--target HOST:PORT] PATH [--name NAME]\n"
          "                   [--tls | --tls-ca FILE]"
          " [--tls-cert FILE --tls-key FILE]\n"
          "                   [--authority NAME]\n"
          "  --target HOST:PORT     server (default %s)\n"
          "  --name NAME            name to store the file under (default:"
          " PATH's base name)\n"
          "%s",
          DEFAULT_TARGET, ex_client_usage);
  return 2;
}

/* Reads up to n bytes (less only at the end of the file); -1 on error. */
static ssize_t read_full(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

int main(int argc, char **argv) {
  ex_client cl;
  ex_client_init(&cl, "file_client", DEFAULT_TARGET);
  const char *path = NULL, *name = NULL;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_client_flag(&cl, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--name"))) {
      name = v;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return usage();
    } else if (!path) {
      path = argv[i];
    } else {
      return usage();
    }
  }
  if (!path) return usage();
  if (!name) {
    const char *slash = strrchr(path, '/');
    name = slash ? slash + 1 : path;
  }
  signal(SIGPIPE, SIG_IGN);

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "file_client: %s: %s\n", path, strerror(errno));
    return 1;
  }
  uint8_t *buf = malloc(CHUNK);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    fprintf(stderr, "file_client: out of memory\n");
    return 1;
  }

  mrpc_channel *ch = NULL;
  mrpc_stream *s = NULL;
  int rc = ex_channel_new(&cl, NULL, &ch); /* TLS, --authority */
  if (rc != 0) {
    close(fd);
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
  }
  if ((rc = file__file_service__upload__open(ch, NULL, &s)) != 0) {
    fprintf(stderr, "file_client: %s: %s\n", cl.target, mrpc_strerror(rc));
    mrpc_channel_del(ch);
    close(fd);
    free(buf);
    EVP_MD_CTX_free(md);
    return 1;
  }

  long long sent = 0;
  int chunks = 0;
  bool read_error = false;
  for (;;) {
    ssize_t n = read_full(fd, buf, CHUNK);
    if (n < 0) {
      fprintf(stderr, "file_client: %s: %s\n", path, strerror(errno));
      read_error = true;
      break;
    }
    /* An empty file still sends one chunk, for its name. */
    if (n == 0 && chunks > 0) break;
    File__FileChunk chunk = FILE__FILE_CHUNK__INIT;
    chunk.data.data = buf;
    chunk.data.len = (size_t)n;
    if (chunks == 0) chunk.filename = (char *)name;
    /* Waits while the send queue is full.  Fails once the server has
     * answered early (refused name, too large): its status tells why. */
    if (file__file_service__upload__stream_send_request(s, &chunk) != 0)
      break;
    EVP_DigestUpdate(md, buf, (size_t)n);
    sent += n;
    chunks++;
    if ((size_t)n < CHUNK) break;
  }
  close(fd);
  free(buf);

  File__UploadResponse *resp = NULL;
  mrpc_status st = {0};
  if (read_error) {
    mrpc_call_cancel(mrpc_stream_call(s));
  } else {
    mrpc_stream_close_send(s);
    if (file__file_service__upload__stream_recv_response(s, &resp) != 1)
      resp = NULL;
  }
  mrpc_stream_finish(s, &st);
  mrpc_channel_del(ch);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned dlen = 0;
  char sha[2 * EVP_MAX_MD_SIZE + 1];
  EVP_DigestFinal_ex(md, digest, &dlen);
  EVP_MD_CTX_free(md);
  for (unsigned i = 0; i < dlen; i++)
    snprintf(sha + 2 * i, 3, "%02x", digest[i]);

  int status = 0;
  if (read_error) {
    status = 1;
  } else if (st.code != MRPC_STATUS_OK || !resp) {
    fprintf(stderr, "file_client: upload failed: %s: %s\n",
            mrpc_status_code_name(st.code), st.message ? st.message : "");
    status = 1;
  } else {
    printf("uploaded %s as %s: %lld bytes in %d chunks\n", path,
           resp->filename, (long long)resp->total_size, chunks);
    printf("server: success=%s sha256=%s (%s)\n",
           resp->success ? "true" : "false", resp->sha256, resp->message);
    if (!resp->success || resp->total_size != sent ||
        strcmp(resp->sha256, sha) != 0) {
      printf("MISMATCH: sent %lld bytes, sha256=%s\n", sent, sha);
      status = 1;
    } else {
      printf("verified: size and sha256 match\n");
    }
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  mrpc_status_free(&st);
  return status;
}
