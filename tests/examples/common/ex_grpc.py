"""grpcio channels for the example apps' Python test clients
(tests/examples/{user,llm,file,chat}/*.py and health_probe.py).

    import ex_grpc
    channel = ex_grpc.channel("127.0.0.1:50051", options=[...])

Plaintext, unless the environment asks for TLS (the test scripts set it for
the cases against servers started with --tls-cert / --tls-key):
    EX_TLS_CA         trust roots (PEM): TLS on
    EX_TLS_AUTHORITY  the name the server's certificate must carry
                      (grpc.ssl_target_name_override), e.g.
                      foo.test.google.fr
    EX_TLS_CERT, EX_TLS_KEY
                      a client certificate and its key (mutual TLS)
The helpers in tests/examples/<app>/ put this directory on sys.path
themselves.
"""
import os

import grpc


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def tls_wanted():
    return bool(os.environ.get("EX_TLS_CA"))


def channel(target, options=None):
    options = list(options or [])
    ca = os.environ.get("EX_TLS_CA")
    if not ca:
        return grpc.insecure_channel(target, options=options)
    cert = key = None
    if os.environ.get("EX_TLS_CERT"):
        cert = _read(os.environ["EX_TLS_CERT"])
        key = _read(os.environ["EX_TLS_KEY"])
    creds = grpc.ssl_channel_credentials(root_certificates=_read(ca),
                                         private_key=key,
                                         certificate_chain=cert)
    name = os.environ.get("EX_TLS_AUTHORITY")
    if name:
        options.append(("grpc.ssl_target_name_override", name))
    return grpc.secure_channel(target, creds, options=options)
