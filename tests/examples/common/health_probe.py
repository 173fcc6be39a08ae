#!/usr/bin/python3
"""grpcio's health client against an example server (tests/examples/*.sh).

    health_probe.py --target HOST:PORT [--unimplemented] SERVICE...

Check(SERVICE) must answer SERVING for each SERVICE ("" is the whole
server); with --unimplemented every Check must fail with UNIMPLEMENTED
(a server started with --no-health).  Then Check("no.such.Service") must
fail with NOT_FOUND.  Plaintext, or TLS as the environment says (ex_grpc).
Stubs: lib/proto/grpc/health/v1/health.proto generated onto PYTHONPATH as
mrpc_health_v1/health_pb2{,_grpc}.py (tests/examples/common/lib.sh).
Prints one line per check; exit status 0 when all went as expected.
"""
import argparse
import sys

import grpc

import ex_grpc
from mrpc_health_v1 import health_pb2, health_pb2_grpc

DEADLINE = 10  # s
Status = health_pb2.HealthCheckResponse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--unimplemented", action="store_true")
    ap.add_argument("services", nargs="*")
    a = ap.parse_args()
    failed = 0
    with ex_grpc.channel(a.target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for svc in a.services:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=svc),
                               timeout=DEADLINE)
                got = Status.ServingStatus.Name(r.status)
            except grpc.RpcError as e:
                got = f"{e.code().name} ({e.details()})"
            want = "UNIMPLEMENTED" if a.unimplemented else "SERVING"
            ok = got.split(" ")[0] == want
            failed += not ok
            print(f"{'ok' if ok else 'FAILED'}: Check({svc!r}) = {got}"
                  f"{'' if ok else ', want ' + want}", flush=True)
        if not a.unimplemented:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(
                    service="no.such.Service"), timeout=DEADLINE)
                got = Status.ServingStatus.Name(r.status)
            except grpc.RpcError as e:
                got = e.code().name
            ok = got == "NOT_FOUND"
            failed += not ok
            print(f"{'ok' if ok else 'FAILED'}: Check('no.such.Service') = "
                  f"{got}{'' if ok else ', want NOT_FOUND'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
