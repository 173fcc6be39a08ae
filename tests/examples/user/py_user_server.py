#!/usr/bin/python3
"""grpcio UserService server (examples/user/user.proto), the tutorial's Go
server ported to Python with its advanced error handling, so that
libminirpc's user_client can be checked against an independent
implementation.

Needs the stubs generated from examples/user/user.proto on PYTHONPATH
(tests/examples/user.sh does that) and /usr/bin/python3, the only
interpreter that sees Debian's grpcio.

Usage: py_user_server.py [--port N]     (0 = a free port; default 0)
Prints "listening on PORT" once it serves; stops on SIGTERM / SIGINT.
"""

import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

try:
    import user_pb2
    import user_pb2_grpc
except ImportError:
    sys.exit("py_user_server: user_pb2/user_pb2_grpc not importable; "
             "generate them with protoc --python_out/--grpc_out from "
             "examples/user/user.proto and put that directory on PYTHONPATH")


class UserService(user_pb2_grpc.UserServiceServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._users = {}
        self._next_id = 1

    def _create(self, req, context):
        if not req.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        if not req.email:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "email is required")
        with self._lock:
            user = user_pb2.User(id=self._next_id, name=req.name,
                                 email=req.email, age=req.age,
                                 hobbies=list(req.hobbies),
                                 status=user_pb2.ACTIVE)
            self._users[user.id] = user
            self._next_id += 1
        return user

    def _sorted(self):
        with self._lock:
            return [self._users[k] for k in sorted(self._users)]

    def CreateUser(self, request, context):
        user = self._create(request, context)
        return user_pb2.CreateUserResponse(user=user,
                                           message=f"user {user.name} created")

    def GetUser(self, request, context):
        if request.id <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid user id: {request.id}")
        with self._lock:
            user = self._users.get(request.id)
        if user is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"user not found: {request.id}")
        if user.status == user_pb2.SUSPENDED:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"user is suspended: {request.id}")
        return user

    def ListUsers(self, request, context):
        users = self._sorted()
        limit = request.limit or 10
        start = request.page * limit
        return user_pb2.ListUsersResponse(users=users[start:start + limit],
                                          total=len(users), page=request.page)

    def StreamUsers(self, request, context):
        for i, user in enumerate(self._sorted()):
            if i and request.delay_seconds > 0:
                time.sleep(request.delay_seconds)
            if not context.is_active():
                return
            yield user

    def CreateBatchUsers(self, request_iterator, context):
        count = 0
        for req in request_iterator:
            self._create(req, context)
            count += 1
        return user_pb2.CreateUserResponse(
            message=f"{count} user{'' if count == 1 else 's'} created")

    def ChatWithUsers(self, request_iterator, context):
        for req in request_iterator:
            yield self._create(req, context)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    user_pb2_grpc.add_UserServiceServicer_to_server(UserService(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        sys.exit(f"py_user_server: cannot listen on port {args.port}")
    server.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on {port}", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
