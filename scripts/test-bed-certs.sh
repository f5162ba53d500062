#!/usr/bin/env bash
# Makes the certificates of the production-like test bed (compose.production.yaml) in deploy/tls/:
# one test CA, a server certificate per host of the compose network (its name in the SAN), and
# the hub's client certificate (the simulators, RabbitMQ and PostgreSQL require it: mutual TLS).
# A test bed only: production takes its certificates from the state PKI or the organisation's CA,
# and never keeps keys readable by everyone, as these are (the containers run as other users).
#   scripts/test-bed-certs.sh [DIR]
set -euo pipefail
dir=${1:-"$(cd "$(dirname "$0")/.." && pwd)/deploy/tls"}
command -v openssl >/dev/null || { echo "error: openssl is needed (apt install openssl)" >&2; exit 69; }
mkdir -p "$dir"
cd "$dir"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=eservices-hub test-bed CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.pem 2>/dev/null
fi
issue() { # name, subjectAltName, extendedKeyUsage
  local name=$1 san=$2 eku=$3
  [[ -f $name.pem ]] && return
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=%s\n" "$san" "$eku") \
    -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
}
issue rabbitmq "DNS:rabbitmq,DNS:localhost,IP:127.0.0.1" serverAuth
issue postgres "DNS:postgres,DNS:localhost,IP:127.0.0.1" serverAuth
issue simulators "DNS:simulators,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
issue mailpit "DNS:mailpit,DNS:localhost,IP:127.0.0.1" serverAuth
issue proxy "DNS:proxy,DNS:localhost,IP:127.0.0.1" serverAuth
issue hub-client "DNS:hub" clientAuth
chmod 644 ./*.pem ./*.key
echo "test-bed certificates in $dir: ca.pem and $(ls ./*.pem | grep -vc ca.pem) certificates"
