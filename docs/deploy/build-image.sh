#!/bin/sh
# Build the condaops image with podman where Docker Hub is out of reach: make the Debian
# base with debootstrap from a Debian mirror, import it, build docs/deploy/Containerfile on
# it, and check that `condaops --help` runs inside. Run as root from anywhere in the
# checkout; needs debootstrap and podman (apt-get install debootstrap podman runc).
#
#   docs/deploy/build-image.sh [TAG]        # default TAG: localhost/condaops:dev
#
# Environment: MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm),
# CA_BUNDLE (the host's trusted CAs, default /etc/ssl/certs/ca-certificates.crt; pip in the
# build uses it, so a TLS-intercepting proxy works), PIP_INDEX_URL (a private index),
# ROOTFS (default /tmp/condaops-rootfs, reused when it exists), CONTAINERS_CONF (a file
# is written when unset: runc, cgroupfs and low ulimits, which podman needs on hosts
# like the CI machines).
set -eu

tag=${1:-localhost/condaops:dev}
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}
rootfs=${ROOTFS:-/tmp/condaops-rootfs}
base=localhost/debian:$suite
repo=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${CONTAINERS_CONF:-}" ]; then
    CONTAINERS_CONF=$(mktemp)
    trap 'rm -f "$CONTAINERS_CONF"' EXIT
    cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi
export CONTAINERS_CONF

if ! podman image exists "$base"; then
    if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
        debootstrap --variant=minbase "$suite" "$rootfs" "$mirror"
    fi
    rm -f "$rootfs"/var/cache/apt/archives/*.deb
    echo "deb $mirror $suite main" >"$rootfs/etc/apt/sources.list"
    tar -C "$rootfs" -c . | podman import - "$base"
fi

# --network host: the RUN steps reach the Debian mirror and PyPI the way this host does,
# and trust the same certificate authorities (the host's bundle is mounted for pip only).
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
podman build --network host --build-arg BASE="$base" \
    -v "$ca:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt \
    ${PIP_INDEX_URL:+--build-arg PIP_INDEX_URL="$PIP_INDEX_URL"} \
    --ignorefile "$repo/docs/deploy/Containerfile.dockerignore" \
    -f "$repo/docs/deploy/Containerfile" -t "$tag" "$repo"

podman run --rm "$tag" --help
podman run --rm --entrypoint id "$tag"
echo "built $tag"
