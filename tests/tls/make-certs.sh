#!/usr/bin/env bash
# Makes the TLS test certificates with the openssl command (never
# committed):
#
#   tests/tls/make-certs.sh OUT_DIR
#
# OUT_DIR/
#   ca.pem ca.key                 test CA ("minirpc test CA")
#   server1.pem server1.key       server: CN=*.test.google.fr, SANs
#                                 foo.test.google.fr, *.test.google.fr,
#                                 localhost, 127.0.0.1, ::1 (signed by ca)
#   client.pem client.key         client: CN=testclient, O=minirpc tests,
#                                 SANs DNS:client.test,
#                                 URI:spiffe://minirpc.test/client,
#                                 email:client@minirpc.test (signed by ca)
#   other-ca.pem other-ca.key     a second CA nobody trusts
#   other-server.pem/.key         the server names, signed by other-ca
#   other-client.pem/.key         a client, signed by other-ca
#
# Keys are EC P-256, unencrypted.  Exits non-zero if openssl fails.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT"
cd "$OUT"
umask 077

DAYS=30
SERVER_SANS="DNS:foo.test.google.fr,DNS:*.test.google.fr,DNS:localhost,IP:127.0.0.1,IP:::1"
CLIENT_SANS="DNS:client.test,URI:spiffe://minirpc.test/client,email:client@minirpc.test"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME CN
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$DAYS" \
        -subj "/O=minirpc tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem"
}

# leaf NAME CA SUBJECT SANS EKU
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=$5" "subjectAltName=$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
        -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$DAYS" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "minirpc test CA"
leaf server1 ca "/O=minirpc tests/CN=*.test.google.fr" "$SERVER_SANS" serverAuth
leaf client ca "/O=minirpc tests/CN=testclient" "$CLIENT_SANS" clientAuth
ca other-ca "untrusted test CA"
leaf other-server other-ca "/O=minirpc tests/CN=*.test.google.fr" "$SERVER_SANS" serverAuth
leaf other-client other-ca "/O=minirpc tests/CN=otherclient" "DNS:other.test" clientAuth
chmod 644 ./*.pem
