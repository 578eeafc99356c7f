#!/usr/bin/env bash
# Makes a throwaway CA and a PostgreSQL server certificate for docker-compose.tls.yml, for trials
# and development (in production, use your own CA's). Writes into DIR (default: certs):
#   ca.crt, ca.key          the CA (keep ca.key private; only ca.crt goes to postmand)
#   server.crt, server.key  the server's pair, valid for the names db and localhost (and any
#                           extra names given)
# Usage: scripts/make-dev-certs.sh [DIR [EXTRA_DNS_NAME...]]. Needs openssl.
set -euo pipefail
dir=${1:-certs}
shift || true
san="DNS:db,DNS:localhost"
for name in "$@"; do san="$san,DNS:$name"; done

mkdir -p "$dir"
cd "$dir"
openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 825 \
  -subj "/CN=postmand development CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -new -newkey rsa:3072 -nodes -sha256 -subj "/CN=db" \
  -keyout server.key -out server.csr 2>/dev/null
printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
  -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
# The certificates are public (postmand runs as uid 10001 and must read ca.crt through the
# mount); the keys are not (PostgreSQL's entrypoint in the TLS variant copies server.key as root).
chmod 0644 ca.crt server.crt
chmod 0600 ca.key server.key
echo "wrote $PWD/{ca.crt,ca.key,server.crt,server.key} (server names: ${san//DNS:/})"
