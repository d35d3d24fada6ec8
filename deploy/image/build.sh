#!/usr/bin/env bash
# `make image`: the image of deploy/image/Containerfile, built with Debian's buildah from a
# debootstrapped Debian root (no container registry needed), then a smoke check inside it.
# As root: buildah with the vfs storage driver and chroot isolation works in a container.
#   IMAGE=localhost/hallpass:0.1.0 SUITE=bookworm deploy/image/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(.venv/bin/hallpass --version | awk '{print $NF}')
IMAGE=${IMAGE:-localhost/hallpass:$VERSION}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BUILDAH=(buildah --storage-driver vfs)
RUN=("${BUILDAH[@]}" run --isolation chroot)

command -v buildah >/dev/null && command -v debootstrap >/dev/null || {
  echo "needs buildah and debootstrap: apt-get install buildah debootstrap"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, buildah with vfs)"; exit 1; }

echo "== wheels (hallpass and its dependencies, on this machine: the root installs offline)"
rm -rf dist && .venv/bin/pip wheel --quiet --no-deps -w dist .
wheel=$(ls dist/hallpass-*.whl)
.venv/bin/pip wheel --quiet -w dist/wheelhouse -c constraints.txt "$wheel"

echo "== Debian $SUITE root (debootstrap)"
ctr=$("${BUILDAH[@]}" from scratch)
trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$("${BUILDAH[@]}" mount "$ctr")
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$root" "$MIRROR" >/dev/null

echo "== hallpass in /opt/hallpass, user 10001"
mkdir -p "$root/tmp/build"
cp -r dist/wheelhouse constraints.txt "$root/tmp/build/"
"${RUN[@]}" "$ctr" -- sh -c "python3 -m venv /opt/hallpass \
  && /opt/hallpass/bin/pip install --quiet --no-cache-dir --no-index \
     --find-links /tmp/build/wheelhouse -c /tmp/build/constraints.txt hallpass \
  && groupadd --gid 10001 hallpass \
  && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/hallpass --create-home \
     --shell /usr/sbin/nologin hallpass"
rm -rf "$root/tmp/build" "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
"${BUILDAH[@]}" umount "$ctr" >/dev/null
"${BUILDAH[@]}" config \
  --env PATH=/opt/hallpass/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 \
  --env HALLPASS_DATA_DIR=/var/lib/hallpass \
  --user 10001:10001 --workingdir /var/lib/hallpass \
  --entrypoint '["hallpass"]' --cmd '--help' \
  --label org.opencontainers.image.title=hallpass \
  --label org.opencontainers.image.version="$VERSION" "$ctr"
"${BUILDAH[@]}" commit --quiet "$ctr" "$IMAGE" >/dev/null
echo "== built $IMAGE"

echo "== smoke check"
smoke=$("${BUILDAH[@]}" from "$IMAGE")
trap '"${BUILDAH[@]}" rm "$ctr" "$smoke" >/dev/null 2>&1 || true' EXIT
"${RUN[@]}" "$smoke" -- hallpass --version
"${RUN[@]}" -v "$PWD/deploy/contracts:/etc/hallpass/contracts:ro" "$smoke" -- \
  hallpass contracts check /etc/hallpass/contracts
user=$("${RUN[@]}" "$smoke" -- id -u)
[ "$user" = 10001 ] || { echo "runs as uid $user, not 10001"; exit 1; }
echo "== $IMAGE: hallpass runs as uid $user; contracts check passed"
