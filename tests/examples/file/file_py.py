"""grpcio probes of file_server for tests/examples/file.sh.

    file_py.py upload TARGET PATH NAME
        Uploads PATH in 1 MiB chunks, the first named NAME; checks success,
        size and SHA-256 against hashlib.  Prints "filename=... size=...
        sha256=...".
    file_py.py refuse TARGET NAME CODE
        Uploads a few bytes named NAME (Python escapes allowed: \\x00, \\n);
        expects the call to end with status CODE.  Prints the status, or the
        response if it succeeded.
    file_py.py cancel TARGET DIR
        Uploads 64 KiB chunks slowly and without end; once the server's
        temporary file in DIR has data, cancels the call.
    file_py.py hang TARGET
        Uploads two chunks, then waits forever (the test kills it).
Exit status 0 when the call went as expected, 1 otherwise.
"""
import hashlib
import os
import sys
import time

import grpc
# ex_grpc (tests/examples/common): plaintext, or TLS when the test sets
# EX_TLS_CA (and EX_TLS_AUTHORITY, EX_TLS_CERT / EX_TLS_KEY).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
import ex_grpc  # noqa: E402
import file_pb2
import file_pb2_grpc


def stub_for(target):
    return file_pb2_grpc.FileServiceStub(ex_grpc.channel(target))


def do_upload(target, path, name):
    h = hashlib.sha256()
    size = 0

    def chunks():
        nonlocal size
        first = True
        with open(path, "rb") as f:
            while True:
                data = f.read(1024 * 1024)
                if not data and not first:
                    break
                h.update(data)
                size += len(data)
                yield file_pb2.FileChunk(data=data, filename=name if first else "")
                first = False
                if not data:
                    break

    r = stub_for(target).Upload(chunks(), timeout=60)
    print(f"filename={r.filename} size={r.total_size} sha256={r.sha256} "
          f"success={r.success} message={r.message!r}")
    ok = r.success and r.total_size == size and r.sha256 == h.hexdigest()
    if not ok:
        print(f"expected size={size} sha256={h.hexdigest()}")
    return 0 if ok else 1


def do_refuse(target, name, code):
    name = name.encode("utf-8").decode("unicode_escape")
    try:
        r = stub_for(target).Upload(
            iter([file_pb2.FileChunk(data=b"evil data\n", filename=name)]),
            timeout=30)
    except grpc.RpcError as e:
        print(f"code={e.code().name} details={e.details()}")
        return 0 if e.code().name == code else 1
    print(f"code=OK filename={r.filename!r} size={r.total_size}")
    return 0 if code == "OK" else 1


def do_cancel(target, directory):
    def chunks():
        while True:
            yield file_pb2.FileChunk(data=b"x" * 65536, filename="cancelled.bin")
            time.sleep(0.05)

    fut = stub_for(target).Upload.future(chunks(), timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tmp = [e for e in os.scandir(directory) if e.name.startswith(".upload-")]
        if tmp and tmp[0].stat().st_size > 0:
            break
        time.sleep(0.02)
    else:
        print("no temporary file appeared")
        return 1
    fut.cancel()
    try:
        fut.result()
    except grpc.FutureCancelledError:
        print("cancelled")
        return 0
    except grpc.RpcError as e:
        print(f"code={e.code().name} details={e.details()}")
        return 0 if e.code() == grpc.StatusCode.CANCELLED else 1
    print("the upload succeeded")
    return 1


def do_hang(target):
    def chunks():
        for _ in range(2):
            yield file_pb2.FileChunk(data=b"y" * 65536, filename="hang.bin")
        while True:
            time.sleep(1)

    stub_for(target).Upload(chunks(), timeout=120)
    return 1


def main(argv):
    fn = {"upload": do_upload, "refuse": do_refuse, "cancel": do_cancel,
          "hang": do_hang}[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
