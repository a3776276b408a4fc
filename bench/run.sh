#!/usr/bin/env bash
# Benchmark: this agent against the real Python clearml-agent 3.0.3, side by side on the same
# in-process test server; writes docs/benchmarks.md. Not part of the test run; takes ~20 min.
#
#   bench/run.sh                         # builds release binaries, venv cached in .venv-peers/
#   PEER_VENV=/some/venv bench/run.sh    # reuse a venv that has clearml-agent==3.0.3
#   bench/run.sh --idle 30 --starts 10 --batch 20 --out /tmp/b.md   # options of clearml-bench
#
# Needs git, python3 (with venv) and PyPI access the first time (for the Python agent). With a
# Docker Engine, the docker-mode and output-flood lines also run (the flood line: 2 x 60 s,
# `--lines-to-run flood` runs it alone): the test image is built locally
# (scripts/build-test-image.sh) and the Python agent's containers install clearml-agent from a
# wheel folder downloaded once into $VENV/docker-wheels (containers reach no package index here).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PEER_VENV:-$ROOT/.venv-peers}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

say() { printf '[bench] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/clearml-agent" ]; then
    say "creating $VENV with clearml-agent==3.0.3 and clearml (from PyPI)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q clearml-agent==3.0.3 clearml
fi
PY_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("clearml-agent"))')
[ "$PY_VERSION" = 3.0.3 ] || say "warning: $VENV has clearml-agent $PY_VERSION, not 3.0.3"

say "building release binaries (clearml-agent, clearml-bench)"
(cd "$ROOT" && cargo build -q --release -p clearml-agent -p clearml-bench)

DOCKER_ARGS=()
if docker version >/dev/null 2>&1; then
    say "docker mode: test image and clearml-agent wheels"
    bash "$ROOT/scripts/build-test-image.sh"
    WHEELS=$VENV/docker-wheels
    if ! ls "$WHEELS"/clearml_agent-3.0.3-*.whl >/dev/null 2>&1; then
        "$VENV/bin/pip" download -q -d "$WHEELS" clearml-agent==3.0.3
    fi
    DOCKER_ARGS=(--wheels "$WHEELS")
else
    say "no Docker Engine: the docker-mode line is skipped"
fi

cd "$ROOT"
exec "$TARGET/release/clearml-bench" --rust "$TARGET/release/clearml-agent" \
    --python "$VENV/bin/clearml-agent" --out "$ROOT/docs/benchmarks.md" "${DOCKER_ARGS[@]}" "$@"
