#!/usr/bin/env bash
# Every test, on a fresh machine with Rust, Python 3 (venv) and a Docker Engine: installs what the
# tests need first, then runs them.
#   1. uv, poetry, maturin, cargo-zigbuild, ziglang into target/tools (scripts/test-tools.sh)
#   2. the docker-mode test image clearml-agent-test:py3-git (scripts/build-test-image.sh)
#   3. Debian's docker-registry (the pull tests run local registries with it)
#   4. the pip wheel of the release binary (scripts/build-wheel.sh; its test installs it)
#   5. a real single-node Slurm cluster for tests/it/slurm.rs (scripts/slurm-cluster.sh), then
#      cargo test --workspace
#   6. the peer check: the real Python clearml SDK and clearml-agent 3.0.3 against our test
#      server (scripts/peer-check.sh); TEST_SKIP_PEER=1 skips it
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test it docker`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
step() { printf '\n== %s\n' "$*"; }

step "tools (uv, poetry, maturin, cargo-zigbuild, ziglang)"
bash scripts/test-tools.sh
export PATH="$ROOT/target/tools/bin:$PATH"
uv --version
poetry --version

# Tests create git commits; give git an identity when the machine has none.
git config --global user.email >/dev/null 2>&1 || git config --global user.email "tests@localhost"
git config --global user.name >/dev/null 2>&1 || git config --global user.name "tests"

step "docker test image"
bash scripts/build-test-image.sh

step "local image registry (docker-registry, for the pull tests in tests/it/docker_pull.rs)"
if ! command -v docker-registry >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq docker-registry >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; }
    # The package's service is not wanted: the tests start their own registries.
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
docker-registry --version

step "pip wheel (release binary, manylinux2014)"
bash scripts/build-wheel.sh >/dev/null

step "slurm test cluster (scripts/slurm-cluster.sh; stopped again on exit)"
bash scripts/slurm-cluster.sh start
trap 'bash scripts/slurm-cluster.sh stop' EXIT

step "cargo test --workspace"
cargo test --workspace "$@"

if [ "${TEST_SKIP_PEER:-0}" != 1 ] && [ $# -eq 0 ]; then
    step "peer check: the real Python SDK and agent against our test server"
    bash scripts/peer-check.sh
fi
