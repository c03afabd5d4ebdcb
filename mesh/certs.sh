#!/usr/bin/env bash
# Development PKI for the mesh: one CA and one certificate per service, whose
# identity is the URI SAN spiffe://meshchat.local/<service> (DNS SAN <service>,
# plus localhost and 127.0.0.1 so loopback connections verify). Also, for the
# negative tests: "rogue" (a valid-looking service cert from an unrelated CA) and
# "intruder" (signed by the real CA, with an identity no service trusts).
# The CAs' private keys go to DIR-ca/, beside DIR and not in it: the services read
# DIR, and each needs only its own key (a process that can read the CA key can mint
# any identity).
# Usage: mesh/certs.sh [DIR]   (default var/certs). Idempotent; nothing here is committed.
set -euo pipefail
DIR="${1:-var/certs}"
SERVICES=(edge chat presence message-store notifier)
DAYS=825
umask 077
mkdir -p "$DIR" "${DIR%/}-ca"
CA_DIR="$(cd "${DIR%/}-ca" && pwd)"
cd "$DIR"
# A folder made before the keys moved out: move them now.
for k in ./*-ca-key.pem; do [ -e "$k" ] && mv "$k" "$CA_DIR/"; done
[ -f .complete ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make_ca() { # name
  openssl ecparam -name prime256v1 -genkey -noout -out "$CA_DIR/$1-ca-key.pem"
  openssl req -x509 -new -key "$CA_DIR/$1-ca-key.pem" -sha256 -days "$DAYS" -subj "/O=meshchat/CN=$1 development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1-ca.pem" 2>/dev/null
}

make_cert() { # ca-prefix name identity
  local ca=$1 name=$2 id=$3
  openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/$name.ec"
  openssl pkcs8 -topk8 -nocrypt -in "$tmp/$name.ec" -out "$name-key.pem"
  openssl req -new -key "$name-key.pem" -subj "/O=meshchat/CN=$id" -out "$tmp/$name.csr" 2>/dev/null
  cat > "$tmp/$name.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:spiffe://meshchat.local/$id,DNS:$id,DNS:localhost,IP:127.0.0.1
EXT
  openssl x509 -req -in "$tmp/$name.csr" -CA "$ca-ca.pem" -CAkey "$CA_DIR/$ca-ca-key.pem" -CAserial "$tmp/$ca.srl" -CAcreateserial -days "$DAYS" -sha256 \
    -extfile "$tmp/$name.ext" -out "$name.pem" 2>/dev/null
}

make_ca mesh
cp mesh-ca.pem ca.pem
for s in "${SERVICES[@]}"; do make_cert mesh "$s" "$s"; done
make_cert mesh intruder intruder
make_ca rogue
make_cert rogue rogue-edge edge
rm -f ./*.srl
chmod 600 ./*-key.pem
touch .complete
echo "mesh certificates in $(pwd)"
