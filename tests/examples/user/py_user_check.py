#!/usr/bin/python3
"""grpcio client that checks a UserService server (examples/user/user.proto):
driven by tests/examples/user.sh against build/bin/user_server.

Needs the stubs generated from examples/user/user.proto on PYTHONPATH and
/usr/bin/python3 (Debian's grpcio).  Every call has a deadline.

Modes (--target HOST:PORT for all):
  suite --suspended-id N   all six RPCs and every error case, against a
                           fresh server started with --suspend N (N > 1);
                           prints "PASS example user-py-<case>" /
                           "FAIL example user-py-<case>: why" per case
  db-fill --count N        creates N users "db-user-<i>" on an empty server
  db-check --count N       checks those N users are there (ids 1..N, same
                           data), then that a new user gets id N+1
  expect-suspended --id N  GetUser(N) answers PERMISSION_DENIED
  stream-cancel --delay S  StreamUsers(delay_seconds=S) over >= 3 users,
                           cancelled after the first user; then checks the
                           server still answers
  stream-deadline --delay S  StreamUsers(delay_seconds=S) with a 1.5 s
                           deadline: DEADLINE_EXCEEDED after the first user
  stream-hold --delay S    like stream-cancel but keeps reading: prints
                           "streaming" after the first user, then waits for
                           the server (being shut down) to end the stream;
                           succeeds when it ends with an error status
Modes other than suite print one line of explanation and exit 0 on success,
1 on failure.
"""

import argparse
import os
import queue
import sys
import threading
import time

import grpc
# ex_grpc (tests/examples/common): plaintext, or TLS when the test sets
# EX_TLS_CA (and EX_TLS_AUTHORITY, EX_TLS_CERT / EX_TLS_KEY).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
import ex_grpc  # noqa: E402

try:
    import user_pb2
    import user_pb2_grpc
except ImportError:
    sys.exit("py_user_check: user_pb2/user_pb2_grpc not importable; "
             "generate them from examples/user/user.proto onto PYTHONPATH")

UNARY_TIMEOUT = 10
STREAM_TIMEOUT = 60


class CheckFailed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise CheckFailed(why)


def expect_error(fn, code, what):
    """Runs fn(); it must raise an RpcError with the given code."""
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code,
              f"{what}: expected {code.name}, got {e.code().name}: "
              f"{e.details()}")
        check(e.details(), f"{what}: {code.name} without a message")
        return e
    raise CheckFailed(f"{what}: expected {code.name}, the call succeeded")


def new_user(name, email=None, age=30, hobbies=("reading",)):
    return user_pb2.CreateUserRequest(
        name=name, email=email if email is not None else f"{name}@example.com",
        age=age, hobbies=list(hobbies))


class Suite:
    def __init__(self, stub, target, suspended_id):
        self.stub = stub
        self.target = target
        self.suspended_id = suspended_id
        self.failures = 0

    def case(self, name, fn):
        try:
            fn()
            print(f"PASS example user-py-{name}", flush=True)
        except CheckFailed as e:
            self.failures += 1
            print(f"FAIL example user-py-{name}: {e}", flush=True)
        except grpc.RpcError as e:
            self.failures += 1
            print(f"FAIL example user-py-{name}: unexpected "
                  f"{e.code().name}: {e.details()}", flush=True)
        except Exception as e:  # a bug here must not hide the other cases
            self.failures += 1
            print(f"FAIL example user-py-{name}: {type(e).__name__}: {e}",
                  flush=True)

    def total(self):
        return self.stub.ListUsers(user_pb2.ListUsersRequest(page=0, limit=1),
                                   timeout=UNARY_TIMEOUT).total

    # --- the six RPCs ---------------------------------------------------
    def create(self):
        req = new_user("홍길동", "hong@example.com", 30, ("독서", "영화감상"))
        resp = self.stub.CreateUser(req, timeout=UNARY_TIMEOUT)
        u = resp.user
        check(u.id == 1, f"first user got id {u.id}, expected 1")
        check((u.name, u.email, u.age, list(u.hobbies)) ==
              ("홍길동", "hong@example.com", 30, ["독서", "영화감상"]),
              f"user echoed wrongly: {u}")
        check(u.status == user_pb2.ACTIVE,
              f"status {user_pb2.UserStatus.Name(u.status)}, expected ACTIVE")
        check("홍길동" in resp.message and "created" in resp.message,
              f"message {resp.message!r}")
        resp = self.stub.CreateUser(new_user("second", age=0, hobbies=()),
                                    timeout=UNARY_TIMEOUT)
        check(resp.user.id == 2, f"second user got id {resp.user.id}")
        check(list(resp.user.hobbies) == [] and resp.user.age == 0,
              f"second user: {resp.user}")
        # A long non-ASCII name comes back whole, in the message too.
        name = "홍길동" * 500
        resp = self.stub.CreateUser(new_user(name, "long@example.com"),
                                    timeout=UNARY_TIMEOUT)
        check(resp.user.name == name, "long name not echoed whole")
        check(name in resp.message, "long name cut in the message")

    def get(self):
        u = self.stub.GetUser(user_pb2.GetUserRequest(id=1),
                              timeout=UNARY_TIMEOUT)
        check(u.id == 1 and u.name == "홍길동" and
              list(u.hobbies) == ["독서", "영화감상"] and
              u.status == user_pb2.ACTIVE, f"GetUser(1) gave {u}")

    def list_pages(self):
        # Enough users for three pages of 2 (the suspended id among them).
        while self.total() < max(6, self.suspended_id):
            self.stub.CreateUser(new_user(f"list{self.total() + 1}"),
                                 timeout=UNARY_TIMEOUT)
        total = self.total()
        seen = []
        for page in range(0, (total + 1) // 2):
            r = self.stub.ListUsers(user_pb2.ListUsersRequest(page=page,
                                                              limit=2),
                                    timeout=UNARY_TIMEOUT)
            check(r.total == total, f"page {page}: total {r.total} != {total}")
            check(r.page == page, f"page {page}: page field {r.page}")
            want = min(2, total - 2 * page)
            check(len(r.users) == want,
                  f"page {page}: {len(r.users)} users, expected {want}")
            seen += [u.id for u in r.users]
        check(seen == list(range(1, total + 1)),
              f"pages are not the users in id order: {seen}")
        # limit 0 means the default page size (10)
        r = self.stub.ListUsers(user_pb2.ListUsersRequest(),
                                timeout=UNARY_TIMEOUT)
        check([u.id for u in r.users] == list(range(1, min(total, 10) + 1)),
              f"limit 0: {[u.id for u in r.users]}")

    def page_past_end(self):
        total = self.total()
        for page, limit in ((100, 10), (total, 1), (1, total), (2**31 - 1, 1000)):
            r = self.stub.ListUsers(user_pb2.ListUsersRequest(page=page,
                                                              limit=limit),
                                    timeout=UNARY_TIMEOUT)
            check(len(r.users) == 0,
                  f"page {page} limit {limit}: {len(r.users)} users")
            check(r.total == total and r.page == page,
                  f"page {page} limit {limit}: total {r.total} page {r.page}")

    def bad_page(self):
        for page, limit in ((-1, 10), (0, -1), (0, 100000)):
            expect_error(lambda: self.stub.ListUsers(
                user_pb2.ListUsersRequest(page=page, limit=limit),
                timeout=UNARY_TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT,
                f"ListUsers(page={page}, limit={limit})")

    def stream(self):
        total = self.total()
        got = [u.id for u in self.stub.StreamUsers(
            user_pb2.StreamUsersRequest(delay_seconds=0),
            timeout=STREAM_TIMEOUT)]
        check(got == list(range(1, total + 1)),
              f"streamed {got}, expected ids 1..{total}")

    def stream_delay(self):
        # delay_seconds=1 over the first users: >= 1 s between two users.
        call = self.stub.StreamUsers(
            user_pb2.StreamUsersRequest(delay_seconds=1),
            timeout=STREAM_TIMEOUT)
        first = next(call)
        t0 = time.monotonic()
        second = next(call)
        gap = time.monotonic() - t0
        call.cancel()
        check((first.id, second.id) == (1, 2),
              f"streamed ids {first.id}, {second.id}")
        check(0.8 <= gap < 5, f"{gap:.2f} s between users, expected about 1")
        expect_error(lambda: self.stub.StreamUsers(
            user_pb2.StreamUsersRequest(delay_seconds=-1),
            timeout=UNARY_TIMEOUT).__next__(),
            grpc.StatusCode.INVALID_ARGUMENT, "StreamUsers(delay_seconds=-1)")

    def batch(self):
        before = self.total()
        reqs = [new_user("김철수", "kim@example.com", 25, ("축구",)),
                new_user("이영희", "lee@example.com", 28, ("요리", "여행")),
                new_user("박민수", "park@example.com", 32, ("게임",))]
        resp = self.stub.CreateBatchUsers(iter(reqs), timeout=STREAM_TIMEOUT)
        check(resp.message == "3 users created",
              f"message {resp.message!r}, expected '3 users created'")
        check(self.total() == before + 3,
              f"total went from {before} to {self.total()}")
        r = self.stub.ListUsers(user_pb2.ListUsersRequest(page=0, limit=1000),
                                timeout=UNARY_TIMEOUT)
        check([(u.name, list(u.hobbies)) for u in r.users[-3:]] ==
              [("김철수", ["축구"]), ("이영희", ["요리", "여행"]),
               ("박민수", ["게임"])], f"batch users: {r.users[-3:]}")
        resp = self.stub.CreateBatchUsers(iter([]), timeout=STREAM_TIMEOUT)
        check(resp.message == "0 users created",
              f"empty batch: {resp.message!r}")

    def chat(self):
        # Lock-step: the next request is only offered once the answer to the
        # previous one arrived, so a server that waits for more input before
        # answering would hang here (and fail on the deadline).
        names = ["실시간1", "실시간2", "실시간3"]
        answered = queue.Queue()

        def requests():
            for n in names:
                yield new_user(n, age=20)
                answered.get(timeout=STREAM_TIMEOUT)

        got = []
        call = self.stub.ChatWithUsers(requests(), timeout=STREAM_TIMEOUT)
        for u in call:
            got.append(u)
            answered.put(True)
        check([u.name for u in got] == names,
              f"chat answered {[u.name for u in got]}")
        ids = [u.id for u in got]
        check(ids == sorted(ids) and len(set(ids)) == 3, f"chat ids {ids}")
        check(all(u.status == user_pb2.ACTIVE for u in got),
              "chat users not ACTIVE")

    # --- error cases -----------------------------------------------------
    def empty_name(self):
        before = self.total()
        expect_error(lambda: self.stub.CreateUser(new_user("", "x@y.z"),
                                                  timeout=UNARY_TIMEOUT),
                     grpc.StatusCode.INVALID_ARGUMENT, "CreateUser(name='')")
        check(self.total() == before, "a user was created anyway")

    def empty_email(self):
        before = self.total()
        expect_error(lambda: self.stub.CreateUser(new_user("noemail", ""),
                                                  timeout=UNARY_TIMEOUT),
                     grpc.StatusCode.INVALID_ARGUMENT, "CreateUser(email='')")
        check(self.total() == before, "a user was created anyway")

    def get_error(self, uid, code):
        return expect_error(lambda: self.stub.GetUser(
            user_pb2.GetUserRequest(id=uid), timeout=UNARY_TIMEOUT),
            code, f"GetUser({uid})")

    def id_zero(self):
        self.get_error(0, grpc.StatusCode.INVALID_ARGUMENT)

    def id_negative(self):
        self.get_error(-1, grpc.StatusCode.INVALID_ARGUMENT)
        self.get_error(-2**31, grpc.StatusCode.INVALID_ARGUMENT)

    def unknown_id(self):
        e = self.get_error(99999, grpc.StatusCode.NOT_FOUND)
        check("99999" in e.details(), f"message {e.details()!r}")
        self.get_error(2**31 - 1, grpc.StatusCode.NOT_FOUND)

    def suspended(self):
        sid = self.suspended_id
        while self.total() < sid:
            self.stub.CreateUser(new_user(f"filler{self.total() + 1}"),
                                 timeout=UNARY_TIMEOUT)
        e = self.get_error(sid, grpc.StatusCode.PERMISSION_DENIED)
        check(str(sid) in e.details(), f"message {e.details()!r}")
        r = self.stub.ListUsers(user_pb2.ListUsersRequest(page=0, limit=1000),
                                timeout=UNARY_TIMEOUT)
        st = {u.id: u.status for u in r.users}
        check(st.get(sid) == user_pb2.SUSPENDED,
              f"ListUsers shows user {sid} as {st.get(sid)}")
        check(st.get(sid - 1) == user_pb2.ACTIVE,
              f"user {sid - 1} is {st.get(sid - 1)}, expected ACTIVE")

    def batch_bad_item(self):
        before = self.total()
        reqs = [new_user("good1"), new_user("bad", ""), new_user("good2")]
        e = expect_error(lambda: self.stub.CreateBatchUsers(
            iter(reqs), timeout=STREAM_TIMEOUT),
            grpc.StatusCode.INVALID_ARGUMENT, "CreateBatchUsers(bad item)")
        check("email" in e.details(), f"message {e.details()!r}")
        after = self.total()
        check(after == before + 1,
              f"{after - before} users created, expected 1 (the one before "
              f"the bad item)")

    def chat_bad_item(self):
        reqs = [new_user("chat-good"), new_user("", "x@y.z"),
                new_user("chat-never")]
        call = self.stub.ChatWithUsers(iter(reqs), timeout=STREAM_TIMEOUT)
        got = []
        try:
            for u in call:
                got.append(u.name)
            raise CheckFailed("ChatWithUsers(bad item) succeeded")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
                  f"got {e.code().name}: {e.details()}")
        check(got == ["chat-good"], f"answered {got}")

    def concurrent_creates(self):
        before = self.total()
        threads, per_thread = 8, 25
        ids, errors = [], []
        lock = threading.Lock()

        def worker(t):
            try:
                # One channel per thread: concurrent connections as well as
                # concurrent calls.
                with ex_grpc.channel(self.target) as ch:
                    stub = user_pb2_grpc.UserServiceStub(ch)
                    for i in range(per_thread):
                        r = stub.CreateUser(new_user(f"t{t}-{i}"),
                                            timeout=UNARY_TIMEOUT)
                        with lock:
                            ids.append(r.user.id)
            except Exception as e:  # reported below
                with lock:
                    errors.append(repr(e))

        ts = [threading.Thread(target=worker, args=(t,))
              for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        check(not errors, f"errors: {errors[:3]}")
        n = threads * per_thread
        check(len(ids) == n, f"{len(ids)} creates answered, expected {n}")
        check(len(set(ids)) == n, "duplicate ids handed out")
        check(sorted(ids) == list(range(before + 1, before + n + 1)),
              "ids are not the next consecutive ones")
        check(self.total() == before + n, "total does not match")

    def run(self):
        cases = [
            ("create", self.create), ("get", self.get),
            ("list", self.list_pages), ("page-past-end", self.page_past_end),
            ("bad-page", self.bad_page), ("stream", self.stream),
            ("stream-delay", self.stream_delay), ("batch", self.batch),
            ("chat", self.chat), ("empty-name", self.empty_name),
            ("empty-email", self.empty_email), ("id-zero", self.id_zero),
            ("id-negative", self.id_negative),
            ("unknown-id", self.unknown_id), ("suspended", self.suspended),
            ("batch-bad-item", self.batch_bad_item),
            ("chat-bad-item", self.chat_bad_item),
            ("concurrent-creates", self.concurrent_creates),
        ]
        for name, fn in cases:
            self.case(name, fn)
        return 1 if self.failures else 0


def db_fill(stub, count):
    for i in range(1, count + 1):
        r = stub.CreateUser(new_user(f"db-user-{i}", age=i,
                                     hobbies=(f"h{i}a", f"h{i}b")),
                            timeout=UNARY_TIMEOUT)
        check(r.user.id == i, f"user {i} got id {r.user.id}")
    print(f"created {count} users")


def db_check(stub, count):
    r = stub.ListUsers(user_pb2.ListUsersRequest(page=0, limit=1000),
                       timeout=UNARY_TIMEOUT)
    check(r.total == count, f"total {r.total}, expected {count}")
    for i, u in enumerate(r.users, 1):
        check((u.id, u.name, u.email, u.age, list(u.hobbies), u.status) ==
              (i, f"db-user-{i}", f"db-user-{i}@example.com", i,
               [f"h{i}a", f"h{i}b"], user_pb2.ACTIVE),
              f"user {i} came back as {u}")
    g = stub.GetUser(user_pb2.GetUserRequest(id=count), timeout=UNARY_TIMEOUT)
    check(g.name == f"db-user-{count}", f"GetUser({count}) gave {g}")
    n = stub.CreateUser(new_user("after-restart"), timeout=UNARY_TIMEOUT)
    check(n.user.id == count + 1,
          f"new user got id {n.user.id}, expected {count + 1}")
    print(f"{count} users survived the restart; the next id is {count + 1}")


def expect_suspended(stub, uid):
    expect_error(lambda: stub.GetUser(user_pb2.GetUserRequest(id=uid),
                                      timeout=UNARY_TIMEOUT),
                 grpc.StatusCode.PERMISSION_DENIED, f"GetUser({uid})")
    print(f"user {uid} is suspended")


def stream_cancel(stub, delay):
    while stub.ListUsers(user_pb2.ListUsersRequest(limit=1),
                         timeout=UNARY_TIMEOUT).total < 3:
        stub.CreateUser(new_user("streamed"), timeout=UNARY_TIMEOUT)
    call = stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=delay),
                            timeout=STREAM_TIMEOUT + 3 * delay)
    first = next(call)
    check(first.id == 1, f"first streamed user has id {first.id}")
    call.cancel()
    try:
        next(call)
        raise CheckFailed("the stream went on after cancel")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.CANCELLED,
              f"after cancel: {e.code().name}")
    # The server still answers, streams included.
    u = stub.GetUser(user_pb2.GetUserRequest(id=1), timeout=UNARY_TIMEOUT)
    check(u.id == 1, f"GetUser(1) gave {u}")
    got = list(stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=0),
                                timeout=STREAM_TIMEOUT))
    check(len(got) >= 3, f"second stream gave {len(got)} users")
    print(f"cancelled after user {first.id}; the server still answers")


def stream_deadline(stub, delay):
    """StreamUsers(delay) with a 1.5 s deadline: DEADLINE_EXCEEDED after the
    first user, long before the second one is due."""
    while stub.ListUsers(user_pb2.ListUsersRequest(limit=1),
                         timeout=UNARY_TIMEOUT).total < 3:
        stub.CreateUser(new_user("streamed"), timeout=UNARY_TIMEOUT)
    t0 = time.monotonic()
    call = stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=delay),
                            timeout=1.5)
    got = []
    try:
        for u in call:
            got.append(u.id)
        raise CheckFailed(f"the stream ended OK with users {got}")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
              f"got {e.code().name}: {e.details()}")
    check(got == [1], f"streamed {got} before the deadline")
    took = time.monotonic() - t0
    check(took < delay / 2, f"the deadline came after {took:.1f} s")
    print(f"DEADLINE_EXCEEDED after user 1, {took:.1f} s")


def stream_hold(stub, delay):
    while stub.ListUsers(user_pb2.ListUsersRequest(limit=1),
                         timeout=UNARY_TIMEOUT).total < 3:
        stub.CreateUser(new_user("streamed"), timeout=UNARY_TIMEOUT)
    call = stub.StreamUsers(user_pb2.StreamUsersRequest(delay_seconds=delay),
                            timeout=STREAM_TIMEOUT + 3 * delay)
    next(call)
    print("streaming", flush=True)
    t0 = time.monotonic()
    try:
        n = 1 + sum(1 for _ in call)
        raise CheckFailed(f"the stream ended OK with {n} users")
    except grpc.RpcError as e:
        print(f"the stream ended with {e.code().name} after "
              f"{time.monotonic() - t0:.1f} s: {e.details()}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["suite", "db-fill", "db-check",
                                    "expect-suspended", "stream-cancel",
                                    "stream-hold", "stream-deadline"])
    p.add_argument("--target", required=True)
    p.add_argument("--suspended-id", type=int, default=3)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--id", type=int, default=1)
    p.add_argument("--delay", type=int, default=1)
    args = p.parse_args()

    with ex_grpc.channel(args.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=UNARY_TIMEOUT)
        stub = user_pb2_grpc.UserServiceStub(channel)
        if args.mode == "suite":
            return Suite(stub, args.target, args.suspended_id).run()
        try:
            if args.mode == "db-fill":
                db_fill(stub, args.count)
            elif args.mode == "db-check":
                db_check(stub, args.count)
            elif args.mode == "expect-suspended":
                expect_suspended(stub, args.id)
            elif args.mode == "stream-cancel":
                stream_cancel(stub, args.delay)
            elif args.mode == "stream-deadline":
                stream_deadline(stub, args.delay)
            else:
                stream_hold(stub, args.delay)
        except CheckFailed as e:
            print(f"check failed: {e}")
            return 1
        except grpc.RpcError as e:
            print(f"unexpected {e.code().name}: {e.details()}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
