#!/usr/bin/env bash
# Build the AEGIS container images without any image registry: a base image from Debian
# packages (mmdebstrap, then `docker import`), then `aegis` (web + worker code, the pinned
# wheels, FRR) on top of it with `docker build` from a context that holds everything it needs.
#
#   deploy/build-images.sh [--tag TAG] [--out DIR] [--repin] [--latest]
#
# Inputs, pinned: deploy/debian-packages.txt (name=version) and requirements.txt, whose wheels
# must match deploy/wheels.lock (sha256 of every wheel file). Downloads are cached in
# $AEGIS_BUILD_CACHE (default /var/cache/aegis-build): a warm cache reads no network at all.
# Outputs in DIR (default deploy/build): debs/ (the exact .deb files of the base image),
# wheelhouse/, debian-packages.lock and wheels.lock (name, version, sha256), images.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=""
OUT=$ROOT/deploy/build
REPIN=0
LATEST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --repin) REPIN=1; shift ;;
    --latest) LATEST=1; shift ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
CACHE=${AEGIS_BUILD_CACHE:-/var/cache/aegis-build}
SOURCES=${AEGIS_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
SUITE=${AEGIS_DEBIAN_SUITE:-bookworm}
# The wheels are resolved for the image's interpreter, Debian bookworm's python3 (markers such as
# python_full_version < "3.11.3" decide which dependencies a wheel pulls in).
DEB_PY=${AEGIS_IMAGE_PYTHON_VERSION:-3.11.2}
PY=${AEGIS_BUILD_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ -z "$TAG" ]; then TAG=$(git describe --always --dirty 2>/dev/null || echo dev); fi

step() { printf '[%5ss] %s\n' "$SECONDS" "$*"; }
die() { echo "build-images: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap builds the root file system as root)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install -y mmdebstrap"
docker info >/dev/null 2>&1 || die "docker is not running: start dockerd (see docs/airgap.md)"
[ -f "$SOURCES" ] || die "no Debian sources file at $SOURCES (set AEGIS_DEBIAN_SOURCES)"

mkdir -p "$CACHE/debs" "$CACHE/wheels" "$OUT"
rm -rf "$OUT/debs" "$OUT/wheelhouse" "$OUT/context"
mkdir -p "$OUT/debs" "$OUT/wheelhouse" "$OUT/context"

# --- pins ---------------------------------------------------------------------------------
pins=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' deploy/debian-packages.txt | grep -v '^$')
if [ "$REPIN" = 1 ]; then
  apt-get update -q >/dev/null
  new=""
  for p in $pins; do
    name=${p%%=*}
    ver=$(apt-cache policy "$name" | awk '/Candidate:/{print $2}')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate for $name"
    new="$new $name=$ver"
    sed -i "s|^$name=[^[:space:]]*|$name=$ver|" deploy/debian-packages.txt
  done
  pins=$new
  step "repinned: $pins"
fi

# --- base image from Debian packages --------------------------------------------------------
step "base: mmdebstrap $SUITE ($(echo "$pins" | wc -w) packages and their dependencies)"
rootfs=$OUT/rootfs.tar
rm -f "$rootfs"
# The cache hooks are mmdebstrap's documented way to reuse downloaded .debs: copy them in,
# keep what apt fetched (--skip=download/empty), copy the set back out, then empty the image.
mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
  --include="$(echo $pins | tr ' ' ',')" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
  --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives" \
  --skip=download/empty --skip=essential/unlink \
  --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
  --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version} \${Architecture}\n' > $OUT/installed.txt" \
  --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin; rm -rf "$1"/var/lib/apt/lists/*' \
  --customize-hook='rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main' \
  "$SUITE" "$rootfs" "$SOURCES" </dev/null \
  || die "mmdebstrap failed; if a pinned version is gone from the mirror, run: deploy/build-images.sh --repin"

# The exact .deb files of this image, with their digests (also the bare-metal package set).
: > "$OUT/debian-packages.lock"
while read -r name ver arch; do
  f="${name}_${ver/:/%3a}_${arch}.deb"
  [ -f "$CACHE/debs/$f" ] || die "the .deb of $name $ver is not in the cache ($f)"
  ln -f "$CACHE/debs/$f" "$OUT/debs/$f" 2>/dev/null || cp "$CACHE/debs/$f" "$OUT/debs/$f"
  echo "$name $ver $arch $(sha256sum "$OUT/debs/$f" | cut -d' ' -f1)" >> "$OUT/debian-packages.lock"
done < "$OUT/installed.txt"
step "base: $(wc -l < "$OUT/debian-packages.lock") Debian packages, rootfs $(du -h "$rootfs" | cut -f1)"

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.opencontainers.image.title=aegis-base org.opencontainers.image.version=$TAG" \
  --change 'CMD ["/bin/bash"]' \
  "$rootfs" "aegis-base:$TAG" >/dev/null
rm -f "$rootfs"
step "base: image aegis-base:$TAG"

# --- wheelhouse -----------------------------------------------------------------------------
# A warm cache that matches deploy/wheels.lock needs no network; otherwise pip downloads the
# pinned wheels (binary only: nothing is compiled) and they must match the lock.
lock=deploy/wheels.lock
have_all=0
if [ -f "$lock" ] && [ "$REPIN" = 0 ]; then
  (cd "$CACHE/wheels" && sha256sum --quiet -c "$ROOT/$lock" >/dev/null 2>&1) && have_all=1
fi
if [ "$have_all" = 0 ]; then
  step "wheels: pip download (requirements.txt, binary wheels for cp311 manylinux x86_64)"
  "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --python-version "$DEB_PY" --implementation cp --abi cp311 --abi abi3 --abi none \
    -r requirements.txt -d "$CACHE/wheels/.new" </dev/null 2>&1 | grep -v "is ignored" || true
  ls "$CACHE/wheels/.new"/*.whl >/dev/null 2>&1 || die "pip download fetched no wheels"
  mv -f "$CACHE/wheels/.new"/*.whl "$CACHE/wheels/"
  rm -rf "$CACHE/wheels/.new"
  if [ ! -f "$lock" ] || [ "$REPIN" = 1 ]; then
    # Re-resolve the set from the fresh download: the files requirements.txt needs now.
    "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
      --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --python-version "$DEB_PY" --implementation cp --abi cp311 --abi abi3 --abi none \
      --no-index --find-links "$CACHE/wheels" -r requirements.txt -d "$OUT/wheelhouse" </dev/null \
      2>&1 | grep -v "is ignored" || true
    (cd "$OUT/wheelhouse" && sha256sum -- *.whl) | sort -k2 > "$lock"
    step "wheels: wrote $lock ($(wc -l < "$lock") wheels)"
  fi
  (cd "$CACHE/wheels" && sha256sum --quiet -c "$ROOT/$lock") \
    || die "downloaded wheels differ from $lock (a changed requirements.txt? run with --repin)"
fi
while read -r _ f; do
  ln -f "$CACHE/wheels/$f" "$OUT/wheelhouse/$f" 2>/dev/null || cp "$CACHE/wheels/$f" "$OUT/wheelhouse/$f"
done < "$lock"
cp "$lock" "$OUT/wheels.lock"
step "wheels: $(wc -l < "$lock") wheels, $(du -sh "$OUT/wheelhouse" | cut -f1)"

# --- aegis image ----------------------------------------------------------------------------
ctx=$OUT/context
cp deploy/Dockerfile requirements.txt "$ctx/"
# pip --require-hashes: every wheel of the lock, by name==version with its digest.
"$PY" deploy/wheel_requirements.py "$lock" > "$ctx/requirements.hashed.txt"
cp -al "$OUT/wheelhouse" "$ctx/wheelhouse" 2>/dev/null || cp -a "$OUT/wheelhouse" "$ctx/wheelhouse"
mkdir -p "$ctx/app"
# The tracked files of the working tree, minus what does not run in the image.
git ls-files -z --cached --others --exclude-standard \
  | grep -zv -e '^tests/' -e '^benchmarks/' -e '^docs/' -e '^deploy/build' -e '/tests/' \
  | xargs -0 -r tar -cf - --ignore-failed-read 2>/dev/null | tar -xf - -C "$ctx/app"
step "aegis: docker build"
docker build --quiet --build-arg "BASE=aegis-base:$TAG" --build-arg "AEGIS_VERSION=$TAG" \
  -t "aegis:$TAG" "$ctx" >/dev/null
rm -rf "$ctx"
stage=$(docker images -q --filter "label=aegis.build-stage=venv-$TAG")
[ -z "$stage" ] || docker rmi $stage >/dev/null
if [ "$LATEST" = 1 ]; then
  # What docker-compose.yml runs when AEGIS_TAG is not set.
  docker tag "aegis-base:$TAG" aegis-base:latest
  docker tag "aegis:$TAG" aegis:latest
fi
for img in "aegis-base:$TAG" "aegis:$TAG"; do
  echo "$img $(docker image inspect -f '{{.Id}} {{.Size}}' "$img")"
done > "$OUT/images.txt"
echo "$TAG" > "$OUT/TAG"
step "aegis: image aegis:$TAG"
cat "$OUT/images.txt"
