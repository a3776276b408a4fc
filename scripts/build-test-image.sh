#!/usr/bin/env bash
# Builds the docker-mode test image (python3, venv, pip, git) without a registry:
# a Debian bookworm root filesystem from the machine's apt sources, imported as an image.
# Does nothing when the tag already exists. On a host whose apt sources are not Debian's, set
# TEST_IMAGE_MIRROR to a Debian mirror URL. Usage: scripts/build-test-image.sh [TAG]
set -euo pipefail
tag="${1:-clearml-agent-test:py3-git}"
if ! docker version >/dev/null 2>&1; then
    echo "build-test-image: no Docker Engine reachable (start dockerd or set DOCKER_HOST)" >&2
    exit 1
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
# Root (CI, this project's machines) runs apt-get and mmdebstrap directly; a user goes through sudo.
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v mmdebstrap >/dev/null 2>&1; then
    $SUDO apt-get install -y mmdebstrap >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y mmdebstrap >/dev/null; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
$SUDO mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python3-pip,git,ca-certificates \
    bookworm "$work/rootfs.tar" ${TEST_IMAGE_MIRROR:+"$TEST_IMAGE_MIRROR"}
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/rootfs.tar" "$tag" >/dev/null
