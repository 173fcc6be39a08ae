/* file_server: file upload (client streaming) with libminirpc.
 *
 *   file_server [--listen HOST:PORT] --dir DIR [--max-bytes N]
 *               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 *               [--no-health] [--no-reflection]
 *
 * Serves file.FileService/Upload: the chunks of one upload are written to a
 * temporary file in DIR (".upload-XXXXXX") while their SHA-256 is computed
 * (OpenSSL EVP); when the client half-closes, the file is flushed to disk and
 * renamed to its final name, and the answer carries the size and the hash.
 * The name comes from the first chunk that has one, else it is made up
 * ("upload-<unix ms>-<n>").  An existing file of that name is replaced.
 *
 * Refused, and nothing is left in DIR (the temporary file is unlinked):
 *   - names with '/', '\\', control characters or bytes that are not UTF-8,
 *     ".", "..", names that start with '.', empty names (after trimming
 *     spaces) and names longer than 255 bytes: INVALID_ARGUMENT;
 *   - uploads larger than --max-bytes (default 100 MiB): RESOURCE_EXHAUSTED,
 *     as soon as the chunk that goes over arrives;
 *   - a call cancelled by the client, or cut by a lost connection or the
 *     server's shutdown: the handler sees the stream closed.
 *
 * The handler is blocking (a worker thread per upload): reading, writing and
 * hashing are plain sequential code, and a slow disk never holds an I/O
 * thread.  A blocking reader that falls behind holds the HTTP/2 window, so a
 * fast client is throttled instead of buffered.
 *
 * One line per call on stdout when it ends:
 *   upload: name=report.pdf bytes=5242880 status=OK ms=48
 *
 * As every example server (examples/common/example.h): TLS with --tls-cert
 * / --tls-key, mutual TLS with --tls-client-ca; the health service ("" and
 * file.FileService SERVING) and server reflection with file.proto's
 * descriptor, unless --no-health / --no-reflection.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <minirpc/minirpc.h>

#include "example.h"
#include "file.mrpc.h"
#include "file.pb-c.h"

#define DEFAULT_LISTEN "0.0.0.0:50053"
#define DEFAULT_MAX_BYTES (100LL * 1024 * 1024)
#define MAX_NAME 255

typedef struct app {
  const char *dir;
  long long max_bytes;
  mode_t mode;         /* of stored files: 0666 less the umask */
  atomic_uint next_id; /* for made-up names */
} app;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the UTF-8 sequence at s (n bytes left), or 0 if malformed
 * (overlong forms, surrogates and values above U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return len;
}

/* Checks a client-given file name; on success copies it, trimmed of spaces
 * at both ends, into out (MAX_NAME + 1 bytes) and returns NULL; else returns
 * why it is refused.  The name must be a plain file name in DIR: never a
 * path.  (A NUL inside the name can not be seen here: protobuf-c hands
 * string fields over NUL-terminated, so "a\0b" arrives as "a".) */
static const char *check_name(const char *in, char *out) {
  size_t len = strlen(in);
  while (len > 0 && (*in == ' ' || *in == '\t')) in++, len--;
  while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\t')) len--;
  if (len == 0) return "file name is empty";
  if (len > MAX_NAME) return "file name is longer than 255 bytes";
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)in[i];
    if (c == '/' || c == '\\') return "file name must not contain '/' or '\\'";
    if (c < 0x20 || c == 0x7F)
      return "file name must not contain control characters";
    size_t n = utf8_len((const unsigned char *)in + i, len - i);
    if (n == 0) return "file name is not valid UTF-8";
    i += n;
  }
  if (in[0] == '.')
    return "file name must not start with '.' (\".\", \"..\", hidden files)";
  memcpy(out, in, len);
  out[len] = '\0';
  return NULL;
}

static bool write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static void hex(const unsigned char *d, unsigned n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

/* FileService.Upload, blocking style: the whole call on one worker. */
static void upload_blocking(mrpc_stream *s, void *user) {
  app *a = user;
  int64_t t0 = mono_ms();
  char tmp[PATH_MAX], final[PATH_MAX], name[MAX_NAME + 1] = "";
  char why_buf[PATH_MAX + 64];
  const char *why = NULL;
  mrpc_status_code code = MRPC_STATUS_OK;
  long long total = 0;
  bool named = false, have_tmp = false;
  int fd = -1;
  EVP_MD_CTX *md = EVP_MD_CTX_new();

  snprintf(tmp, sizeof tmp, "%s/.upload-XXXXXX", a->dir);
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    code = MRPC_STATUS_INTERNAL;
    why = "cannot start SHA-256";
    goto out;
  }
  if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
    snprintf(why_buf, sizeof why_buf, "cannot create a file: %s",
             strerror(errno));
    code = MRPC_STATUS_INTERNAL;
    why = why_buf;
    goto out;
  }
  have_tmp = true;
  fchmod(fd, a->mode); /* mkostemp makes it 0600 */

  for (;;) {
    File__FileChunk *chunk;
    int rc = file__file_service__upload__stream_recv_request(s, &chunk);
    if (rc == 0) break; /* the client half-closed: all there */
    if (rc < 0) {       /* cancelled, deadline, connection lost */
      code = MRPC_STATUS_CANCELLED;
      why = mrpc_strerror(rc);
      goto out;
    }
    if (!named && chunk->filename && chunk->filename[0]) {
      why = check_name(chunk->filename, name);
      named = true;
    }
    if (!why && (long long)chunk->data.len > a->max_bytes - total) {
      snprintf(why_buf, sizeof why_buf,
               "upload is larger than the limit of %lld bytes", a->max_bytes);
      why = why_buf;
      code = MRPC_STATUS_RESOURCE_EXHAUSTED;
    } else if (why) {
      code = MRPC_STATUS_INVALID_ARGUMENT;
    } else if (chunk->data.len > 0) {
      if (!write_all(fd, chunk->data.data, chunk->data.len)) {
        snprintf(why_buf, sizeof why_buf, "write failed: %s",
                 strerror(errno));
        why = why_buf;
        code = MRPC_STATUS_INTERNAL;
      } else {
        EVP_DigestUpdate(md, chunk->data.data, chunk->data.len);
        total += (long long)chunk->data.len;
      }
    }
    protobuf_c_message_free_unpacked(&chunk->base, NULL);
    if (why) goto out;
  }

  /* Complete: on disk first, then under its name (atomic). */
  if (!named || !name[0])
    snprintf(name, sizeof name, "upload-%lld-%u", (long long)wall_ms(),
             atomic_fetch_add(&a->next_id, 1) + 1);
  snprintf(final, sizeof final, "%s/%s", a->dir, name);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned dlen = 0;
  char sha[2 * EVP_MAX_MD_SIZE + 1];
  EVP_DigestFinal_ex(md, digest, &dlen);
  hex(digest, dlen, sha);
  if (fsync(fd) != 0 || close(fd) != 0) {
    fd = -1;
    snprintf(why_buf, sizeof why_buf, "write failed: %s", strerror(errno));
    why = why_buf;
    code = MRPC_STATUS_INTERNAL;
    goto out;
  }
  fd = -1;
  if (mrpc_call_is_cancelled(mrpc_stream_call(s))) {
    code = MRPC_STATUS_CANCELLED; /* gone before we could answer */
    why = "cancelled";
    goto out;
  }
  if (rename(tmp, final) != 0) {
    snprintf(why_buf, sizeof why_buf, "cannot store %s: %s", name,
             strerror(errno));
    why = why_buf;
    code = MRPC_STATUS_INTERNAL;
    goto out;
  }
  have_tmp = false; /* nothing to clean up any more */

  File__UploadResponse resp = FILE__UPLOAD_RESPONSE__INIT;
  char msg[64];
  snprintf(msg, sizeof msg, "stored %lld bytes", total);
  resp.success = true;
  resp.total_size = total;
  resp.sha256 = sha;
  resp.filename = name;
  resp.message = msg;
  int rc = file__file_service__upload__stream_send_response(s, &resp);
  if (rc != 0) code = MRPC_STATUS_CANCELLED; /* the file stays: complete */

out:
  if (fd >= 0) close(fd);
  if (have_tmp) unlink(tmp); /* no partial file left behind */
  EVP_MD_CTX_free(md);
  mrpc_stream_set_status(s, code, code == MRPC_STATUS_OK ? NULL : why, NULL,
                         0);
  printf("upload: name=%s bytes=%lld status=%s ms=%lld%s%s\n",
         name[0] ? name : "-", total, mrpc_status_code_name(code),
         (long long)(mono_ms() - t0), why ? " why=" : "", why ? why : "");
  fflush(stdout);
}

/* ---- main ------------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr,
          "usage: file_server [--listen HOST:PORT] --dir DIR"
          " [--max-bytes N[k|m|g]]\n"
          "                   [--tls-cert FILE --tls-key FILE"
          " [--tls-client-ca FILE]]\n"
          "                   [--no-health] [--no-reflection]\n"
          "  (--listen default: %s)\n"
          "%s"
          "  --dir DIR              where uploads are stored (must exist)\n"
          "  --max-bytes N          largest upload accepted (default 100m)\n",
          DEFAULT_LISTEN, ex_server_usage);
  return 2;
}

/* "123", "64k", "100m", "2g" (binary units). */
static bool parse_size(const char *s, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || errno || v < 0) return false;
  long long mul = 1;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': mul = 1LL << 10; end++; break;
  case 'm': case 'M': mul = 1LL << 20; end++; break;
  case 'g': case 'G': mul = 1LL << 30; end++; break;
  default: return false;
  }
  if (*end || v > LLONG_MAX / mul) return false;
  *out = v * mul;
  return true;
}

int main(int argc, char **argv) {
  ex_server ex;
  ex_server_init(&ex, "file_server", DEFAULT_LISTEN);
  static app a; /* outlives the server */
  a.max_bytes = DEFAULT_MAX_BYTES;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (ex_server_flag(&ex, argc, argv, &i)) {
      continue;
    } else if ((v = ex_flag_value(argc, argv, &i, "--dir"))) {
      a.dir = v;
    } else if ((v = ex_flag_value(argc, argv, &i, "--max-bytes"))) {
      if (!parse_size(v, &a.max_bytes)) return usage();
    } else {
      return usage();
    }
  }
  if (!a.dir) return usage();
  mode_t mask = umask(0);
  umask(mask);
  a.mode = 0666 & ~mask;
  struct stat st;
  if (stat(a.dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "file_server: %s is not a directory\n", a.dir);
    return 1;
  }

  static File__FileService_MrpcHandlers handlers;
  handlers.upload_blocking = upload_blocking;
  handlers.user = &a;

  /* TLS, health and reflection (example.h); SIGINT / SIGTERM blocked for
   * ex_wait_signal. */
  int rc = ex_server_new(&ex, NULL);
  if (rc != 0) return rc;
  if ((rc = file__file_service__mrpc_register(ex.srv, &handlers)) != 0) {
    fprintf(stderr, "file_server: %s\n", mrpc_strerror(rc));
    rc = 1;
  } else {
    rc = ex_server_start(&ex, &file__file_service__mrpc_service,
                         &file__mrpc_file);
  }
  if (rc != 0) {
    ex_server_del(&ex);
    return rc;
  }
  printf("file_server: listening on %s (dir %s, max %lld bytes)\n", ex.where,
         a.dir, a.max_bytes);
  fflush(stdout);

  ex_wait_signal();
  printf("file_server: shutting down\n");
  fflush(stdout);
  /* Uploads in flight get two seconds, then are cancelled (and their
   * temporary files removed by their handlers).  Health turns NOT_SERVING
   * first. */
  mrpc_server_shutdown(ex.srv, 2000);
  ex_server_del(&ex);
  return 0;
}
