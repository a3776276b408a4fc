#!/usr/bin/env bash
# Builds the docker-mode test image (python3, venv, pip, git) without a registry:
# a Debian bookworm root filesystem from the machine's apt sources, imported as an image.
# Does nothing when the tag already exists. Usage: scripts/build-test-image.sh [TAG]
set -euo pipefail
tag="${1:-clearml-agent-test:py3-git}"
if ! docker version >/dev/null 2>&1; then
    echo "build-test-image: no Docker Engine reachable (start dockerd or set DOCKER_HOST)" >&2
    exit 1
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
    apt-get install -y mmdebstrap >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y mmdebstrap >/dev/null; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python3-pip,git,ca-certificates \
    bookworm "$work/rootfs.tar"
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/rootfs.tar" "$tag" >/dev/null
