#!/usr/bin/env bash
# Write an offline kit to carry AEGIS across an air gap:
#   deploy/offline-kit.sh OUT [--key SITE_KEY.pem] [--tag TAG]
# OUT/ images/aegis-images.tar (docker save of aegis and aegis-base), wheelhouse/ (+ wheels.lock,
# requirements*.txt), debs/ (+ debian-packages.lock: the exact Debian packages, for a bare-metal
# install), labs/, app/aegis-src.tar (the code, for bare metal), compose/ (the compose files and
# make-secrets.sh), install-offline.sh, VERSION, and MANIFEST.sha256 signed with the site key
# (AEGIS_SITE_KEY_FILE, default var/keys/site_ed25519.pem; evidence/core/keys.py tooling).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=""
KEY=${AEGIS_SITE_KEY_FILE:-$ROOT/var/keys/site_ed25519.pem}
TAG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --key) KEY=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    -*) sed -n '2,8p' "$0"; exit 2 ;;
    *) OUT=$1; shift ;;
  esac
done
[ -n "$OUT" ] || { sed -n '2,8p' "$0"; exit 2; }
PY=${AEGIS_BUILD_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ -z "$TAG" ]; then TAG=$(git describe --always --dirty 2>/dev/null || echo dev); fi
step() { printf '[%5ss] %s\n' "$SECONDS" "$*"; }

if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "offline-kit: $OUT exists and is not empty; give a new folder" >&2; exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
build=$(mktemp -d "${TMPDIR:-/tmp}/aegis-kit-build.XXXXXX")
trap 'rm -rf "$build"' EXIT

deploy/build-images.sh --tag "$TAG" --out "$build"
step "kit: docker save"
mkdir -p "$OUT/images" "$OUT/compose" "$OUT/app"
docker save -o "$OUT/images/aegis-images.tar" "aegis-base:$TAG" "aegis:$TAG"
cp "$build/images.txt" "$OUT/images/images.txt"
mv "$build/wheelhouse" "$OUT/wheelhouse"
cp "$build/wheels.lock" requirements.txt "$OUT/wheelhouse/"
mv "$build/debs" "$OUT/debs"
cp "$build/debian-packages.lock" deploy/debian-packages.txt "$OUT/debs/"
cp -r labs "$OUT/labs"
find "$OUT/labs" -name '__pycache__' -prune -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard | grep -zv '^deploy/build' \
  | xargs -0 tar -cf "$OUT/app/aegis-src.tar" --ignore-failed-read 2>/dev/null
cp deploy/docker-compose.yml deploy/docker-compose.airgap.yml deploy/make-secrets.sh "$OUT/compose/"
cp deploy/install-offline.sh "$OUT/install-offline.sh"
echo "$TAG" > "$OUT/VERSION"
step "kit: sign the manifest"
"$PY" deploy/kit_manifest.py sign "$OUT" --key "$KEY"
step "kit: $OUT $(du -sh "$OUT" | cut -f1)"
