#!/bin/bash
# Install AEGIS from an offline kit, inside the perimeter. Verifies first, loads after.
#
#   ./install-offline.sh --verify-only [--trusted-key PUB.pem]
#   ./install-offline.sh [--trusted-key PUB.pem] [--target DIR]
#
# 1. The manifest's Ed25519 signature must verify with a key the site already trusts
#    (--trusted-key, or $AEGIS_KIT_TRUSTED_KEY, or /etc/aegis/kit-trusted.pem) — never with the
#    copy inside the kit, which whoever changed the kit could have replaced too.
# 2. Every file must be listed with its sha256, and listed files must all be there:
#    one changed, added or missing byte and nothing is loaded.
# 3. Then: `docker load` the images, copy the compose files to DIR (default /opt/aegis), make
#    the secrets once (kept on upgrades), point DIR/.env at this kit's image tag.
# Needs: bash, coreutils, openssl (the signature); docker and docker-compose for step 3.
set -euo pipefail
KIT=$(cd "$(dirname "$0")" && pwd)
VERIFY_ONLY=0
TRUSTED=${AEGIS_KIT_TRUSTED_KEY:-/etc/aegis/kit-trusted.pem}
TARGET=/opt/aegis
while [ $# -gt 0 ]; do
  case "$1" in
    --verify-only) VERIFY_ONLY=1; shift ;;
    --trusted-key) TRUSTED=$2; shift 2 ;;
    --target) TARGET=$2; shift 2 ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done

refuse() { echo "install-offline: REFUSED: $*" >&2; exit 1; }
keyid() {  # the evidence tooling's key id: sha256 of the raw 32-byte public key, 32 hex digits
  openssl pkey -pubin -in "$1" -outform DER | tail -c 32 | sha256sum | cut -c1-32
}

command -v openssl >/dev/null || { echo "install-offline: openssl is needed to check the signature" >&2; exit 2; }
if [ ! -f "$TRUSTED" ]; then
  echo "install-offline: no trusted key at $TRUSTED." >&2
  if [ -f "$KIT/kit-signing-key.pem" ]; then
    echo "  This kit says it was signed by key $(keyid "$KIT/kit-signing-key.pem")." >&2
    echo "  Compare that id with the one the site's AEGIS shows (manage.py evidence_key show), read" >&2
    echo "  to you over a channel other than the kit; if they match, install the key and rerun:" >&2
    echo "    install -D -m 644 $KIT/kit-signing-key.pem /etc/aegis/kit-trusted.pem" >&2
  fi
  exit 2
fi

cd "$KIT"
[ -f MANIFEST.sha256 ] && [ -f MANIFEST.sha256.sig ] || refuse "no MANIFEST.sha256(.sig): not a signed kit"
openssl pkeyutl -verify -pubin -inkey "$TRUSTED" -rawin -in MANIFEST.sha256 -sigfile MANIFEST.sha256.sig \
  >/dev/null 2>&1 || refuse "the manifest's signature does not verify with the trusted key $(keyid "$TRUSTED")"
# Exactly the listed files: nothing added, nothing missing, nothing changed.
listed=$(cut -c67- MANIFEST.sha256 | LC_ALL=C sort)
present=$(find . -type f ! -name MANIFEST.sha256 ! -name MANIFEST.sha256.sig -printf '%P\n' | LC_ALL=C sort)
[ -z "$(find . -type l)" ] || refuse "the kit holds symbolic links"
extra=$(LC_ALL=C comm -13 <(echo "$listed") <(echo "$present"))
[ -z "$extra" ] || refuse "files not in the signed manifest: $extra"
bad=$(sha256sum --strict -c MANIFEST.sha256 2>/dev/null | grep -v ': OK$' || true)
[ -z "$bad" ] || refuse "$(echo "$bad" | head -5 | tr '\n' ' ')"
echo "install-offline: kit verified: $(wc -l < MANIFEST.sha256) files match the manifest signed by key $(keyid "$TRUSTED")"
[ "$VERIFY_ONLY" = 1 ] && exit 0

# --- load and lay out ---------------------------------------------------------------------
command -v docker >/dev/null || { echo "install-offline: docker is not installed (see debs/ and docs/airgap.md)" >&2; exit 2; }
tag=$(cat VERSION)
echo "install-offline: loading images (aegis:$tag, aegis-base:$tag)"
docker load -q -i images/aegis-images.tar
mkdir -p "$TARGET"
cp compose/docker-compose.yml compose/docker-compose.airgap.yml compose/make-secrets.sh "$TARGET/"
"$TARGET/make-secrets.sh" "$TARGET/secrets"
project=${COMPOSE_PROJECT_NAME:-}
if [ -z "$project" ] && [ -f "$TARGET/.env" ]; then project=$(sed -n 's/^COMPOSE_PROJECT_NAME=//p' "$TARGET/.env"); fi
# The project name fixes the volume names: an upgrade must find the same db, keys and runs.
printf 'COMPOSE_PROJECT_NAME=%s\nAEGIS_TAG=%s\n' "${project:-aegis}" "$tag" > "$TARGET/.env"
echo "install-offline: installed kit $tag in $TARGET. Start (or upgrade) the air-gapped stack with:"
echo "  cd $TARGET && docker-compose -f docker-compose.yml -f docker-compose.airgap.yml up -d"
