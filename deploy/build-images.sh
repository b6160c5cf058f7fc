#!/usr/bin/env bash
# Build the AEGIS container images without any image registry: a base image from Debian
# packages (mmdebstrap, then `docker import`), then `aegis` (web + worker code, the pinned
# wheels, FRR) on top of it with `docker build` from a context that holds everything it needs.
#
#   deploy/build-images.sh [--tag TAG] [--out DIR] [--repin] [--latest] [--fresh-base]
#
# Inputs, pinned and committed: deploy/debian-packages.txt (name=version), whose whole closure
# must match deploy/debian-packages.lock (name, version, arch, sha256 of each .deb), and
# deploy/wheels.lock (sha256 of every wheel file, resolved from requirements.txt by the image's
# own python3). --repin rewrites both locks. Downloads are cached in
# $AEGIS_BUILD_CACHE (default /var/cache/aegis-build): a warm cache downloads nothing (apt reads the index).
# Outputs in DIR (default deploy/build): debs/ (the exact .deb files of the base image),
# wheelhouse/, debian-packages.lock and wheels.lock (name, version, sha256), images.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=""
OUT=$ROOT/deploy/build
REPIN=0
LATEST=0
FRESH_BASE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --repin) REPIN=1; shift ;;
    --latest) LATEST=1; shift ;;
    --fresh-base) FRESH_BASE=1; shift ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
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

# A failed build leaves no image of its tag behind (nor the temporary root file system).
built=0
cleanup() {
  # mmdebstrap's own temporary root (under $OUT/tmp) stays behind when the build is killed;
  # --one-file-system: never into a mount left inside that chroot.
  if [ -d "$OUT/tmp" ]; then
    grep -o " $OUT/tmp/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$OUT/tmp"
  fi
  rm -f "$OUT/rootfs.tar"; rm -rf "$OUT/context" "$CACHE/wheels/.new"
  if [ "$built" = 0 ]; then
    docker rmi -f "aegis:$TAG" "aegis-base:$TAG" >/dev/null 2>&1 || true
    stage=$(docker images -q --filter "label=aegis.build-stage=venv-$TAG" 2>/dev/null || true)
    [ -z "$stage" ] || docker rmi -f $stage >/dev/null 2>&1 || true
    # What a failed `docker build` left: untagged images of this build (its labels name the tag).
    for label in "aegis.build-stage=venv-$TAG" "org.opencontainers.image.version=$TAG"; do
      docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
    done
  fi
}
trap cleanup EXIT

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
# The base image is a function of deploy/debian-packages.lock (every .deb by digest) and the
# recipe below (suite, mmdebstrap's options, the image's settings): their digest is the image's
# label aegis.debian-lock. An image with that label is reused as it is (`--fresh-base` builds
# anew), its .deb files taken from the cache; a repin or any change of lock or recipe builds anew.
MM_OPTS=(--variant=minbase --mode=root --format=tar
  --aptopt='APT::Install-Recommends "false"' --dpkgopt='force-unsafe-io'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --skip=download/empty --skip=essential/unlink)
MM_CLEAN=(--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin; rm -rf "$1"/var/lib/apt/lists/*'
  --customize-hook='rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main')
IMPORT_CHANGES=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]')
recipe_id() { { printf '%s\n' "$SUITE" "${MM_OPTS[@]}" "${MM_CLEAN[@]}" "${IMPORT_CHANGES[@]}"; cat deploy/debian-packages.lock 2>/dev/null; } \
  | sha256sum | cut -c1-32; }
lock_id=$(recipe_id)
reuse=""
if [ "$FRESH_BASE" = 0 ] && [ "$REPIN" = 0 ] && [ -f deploy/debian-packages.lock ]; then
  # Images built on the base inherit its labels: only an image titled aegis-base is one.
  reuse=$(docker images -q --filter "label=aegis.debian-lock=$lock_id" \
    --filter "label=org.opencontainers.image.title=aegis-base" | head -n1)
  if [ -n "$reuse" ]; then
    while read -r name ver arch digest; do
      f="${name}_${ver/:/%3a}_${arch}.deb"
      if [ "$(sha256sum "$CACHE/debs/$f" 2>/dev/null | cut -d' ' -f1)" != "$digest" ]; then reuse=""; break; fi
    done < deploy/debian-packages.lock
  fi
fi
if [ -n "$reuse" ]; then
  docker tag "$reuse" "aegis-base:$TAG"
  cp deploy/debian-packages.lock "$OUT/debian-packages.lock"
  while read -r name ver arch _; do
    f="${name}_${ver/:/%3a}_${arch}.deb"
    ln -f "$CACHE/debs/$f" "$OUT/debs/$f" 2>/dev/null || cp "$CACHE/debs/$f" "$OUT/debs/$f"
  done < deploy/debian-packages.lock
  step "base: reused image $reuse (built from this debian-packages.lock) as aegis-base:$TAG"
else
  step "base: mmdebstrap $SUITE ($(echo "$pins" | wc -w) packages and their dependencies)"
  rootfs=$OUT/rootfs.tar
  rm -f "$rootfs"
  mkdir -p "$OUT/tmp"
  # The cache hooks are mmdebstrap's documented way to reuse downloaded .debs: copy them in,
  # keep what apt fetched (--skip=download/empty), copy the set back out, then empty the image.
  TMPDIR=$OUT/tmp mmdebstrap --quiet "${MM_OPTS[@]}" \
    --include="$(echo $pins | tr ' ' ',')" \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version} \${Architecture}\n' > $OUT/installed.txt" \
    "${MM_CLEAN[@]}" \
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
  # deploy/debian-packages.lock (committed) is the whole closure, each .deb with its digest: a
  # build that installed anything else (the mirror moved on under a pin's dependency) stops here.
  if [ ! -f deploy/debian-packages.lock ] || [ "$REPIN" = 1 ]; then
    cp "$OUT/debian-packages.lock" deploy/debian-packages.lock
    step "base: wrote deploy/debian-packages.lock"
  elif ! diff -u deploy/debian-packages.lock "$OUT/debian-packages.lock" >&2; then
    rm -f "$rootfs"
    die "the base image's packages differ from deploy/debian-packages.lock (above); run with --repin"
  fi
  step "base: $(wc -l < "$OUT/debian-packages.lock") Debian packages, rootfs $(du -h "$rootfs" | cut -f1)"
  lock_id=$(recipe_id)

  docker import "${IMPORT_CHANGES[@]}" \
    --change "LABEL org.opencontainers.image.title=aegis-base org.opencontainers.image.version=$TAG aegis.debian-lock=$lock_id" \
    "$rootfs" "aegis-base:$TAG" >/dev/null
  rm -rf "$rootfs" "$OUT/tmp"
  step "base: image aegis-base:$TAG"
fi

# --- wheelhouse -----------------------------------------------------------------------------
# deploy/wheels.lock (committed) is the wheelhouse: every wheel file with its sha256. It is made
# by resolving requirements.txt with the image's own python3 (--repin, or when there is no lock):
# pip evaluates environment markers against the interpreter it runs on, so a resolution on the
# build host (another Python patch release) would drop or add marker-conditional dependencies
# (async-timeout for redis is `python_full_version < "3.11.3"`: needed on Debian's 3.11.2).
# A build then only fetches the locked files missing from the cache, by digest, without
# dependencies or markers (pip --no-deps --require-hashes); a warm cache reads no network.
lock=deploy/wheels.lock
new=$CACHE/wheels/.new
rm -rf "$new"; mkdir -p "$new"
if [ ! -f "$lock" ] || [ "$REPIN" = 1 ]; then
  step "wheels: resolve requirements.txt with the image's python3 (pip download in aegis-base:$TAG)"
  # The build side's CA bundle and proxy settings go in (a TLS-inspecting proxy signs PyPI's
  # certificate with a local CA that the image's pip would not trust otherwise).
  ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
  docker run --rm --network bridge -v "$ROOT/requirements.txt:/in/requirements.txt:ro" -v "$new:/out" \
    -v "$ca:/etc/aegis-build-ca.crt:ro" -e PIP_CERT=/etc/aegis-build-ca.crt \
    -e HTTPS_PROXY="${HTTPS_PROXY:-${https_proxy:-}}" -e HTTP_PROXY="${HTTP_PROXY:-${http_proxy:-}}" \
    -e NO_PROXY="${NO_PROXY:-${no_proxy:-}}" -e PIP_INDEX_URL="${PIP_INDEX_URL:-https://pypi.org/simple}" \
    "aegis-base:$TAG" sh -ec 'python3 -m venv /tmp/v
      /tmp/v/bin/pip download --quiet --disable-pip-version-check --only-binary=:all: \
        -r /in/requirements.txt -d /out' </dev/null \
    || die "resolving the wheels inside aegis-base:$TAG failed (needs the package index on the build side)"
  (cd "$new" && sha256sum -- *.whl) | LC_ALL=C sort -k2 > "$lock"
  mv -f "$new"/*.whl "$CACHE/wheels/"
  step "wheels: wrote $lock ($(wc -l < "$lock") wheels)"
fi
"$PY" deploy/wheel_requirements.py "$lock" > "$OUT/requirements.hashed.txt"
missing=$(cd "$CACHE/wheels" && sha256sum -c "$ROOT/$lock" 2>/dev/null | grep -cv ': OK$' || true)
if [ "$missing" != 0 ]; then
  step "wheels: pip download of the $missing locked wheels missing from the cache (by digest)"
  # The platform tags of the locked files, so that pip on this host may pick exactly those files.
  plats=$("$PY" deploy/wheel_requirements.py --platforms "$lock")
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$DEB_PY" --implementation cp --abi cp311 --abi abi3 --abi none $plats \
    --require-hashes -r "$OUT/requirements.hashed.txt" -d "$new" </dev/null 2>&1 | grep -v "is ignored" || true
  mv -f "$new"/*.whl "$CACHE/wheels/" 2>/dev/null || true
fi
rm -rf "$new"
(cd "$CACHE/wheels" && sha256sum --quiet -c "$ROOT/$lock") \
  || die "the cached wheels differ from $lock (a changed requirements.txt? run with --repin)"
while read -r _ f; do
  ln -f "$CACHE/wheels/$f" "$OUT/wheelhouse/$f" 2>/dev/null || cp "$CACHE/wheels/$f" "$OUT/wheelhouse/$f"
done < "$lock"
cp "$lock" "$OUT/wheels.lock"
step "wheels: $(wc -l < "$lock") wheels, $(du -sh "$OUT/wheelhouse" | cut -f1)"

# --- aegis image ----------------------------------------------------------------------------
ctx=$OUT/context
cp deploy/Dockerfile requirements.txt "$ctx/"
# pip --require-hashes: every wheel of the lock, by name==version with its digest.
cp "$OUT/requirements.hashed.txt" "$ctx/requirements.hashed.txt"
cp -al "$OUT/wheelhouse" "$ctx/wheelhouse" 2>/dev/null || cp -a "$OUT/wheelhouse" "$ctx/wheelhouse"
mkdir -p "$ctx/app"
# The tracked files of the working tree, minus what does not run in the image.
git ls-files -z --cached --others --exclude-standard \
  | grep -zv -e '^tests/' -e '^benchmarks/' -e '^docs/' -e '^deploy/build' -e '/tests/' \
  | xargs -0 -r tar -cf - --ignore-failed-read 2>/dev/null | tar -xf - -C "$ctx/app"
step "aegis: docker build"
docker build --quiet --force-rm --build-arg "BASE=aegis-base:$TAG" --build-arg "AEGIS_VERSION=$TAG" \
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
built=1
step "aegis: image aegis:$TAG"
cat "$OUT/images.txt"
