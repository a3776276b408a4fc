#!/usr/bin/env bash
# Installs the tools the tests need that a fresh machine lacks, from PyPI, into a private venv
# (target/tools/venv; never the system Python) and links just those commands into
# target/tools/bin, which scripts/test.sh puts first on PATH:
#   uv                          the uv path of the venv tests (package_manager.type: uv)
#   maturin, cargo-zigbuild,    the pip wheel of the binary (scripts/build-wheel.sh) and its test
#   python-zig (ziglang)
#   poetry                      the poetry path of the venv tests (package_manager.type: poetry),
#                               in a venv of its own (target/tools/poetry-venv): its dependencies
#                               stay apart from the others'
# Idempotent: a second run with everything in place installs nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/target/tools"
VENV="$TOOLS/venv"
PINS=(uv==0.13.9 maturin==1.16.0 cargo-zigbuild==0.24.1 ziglang==0.17.1)
command -v python3 >/dev/null || { echo "test-tools: python3 is needed (with venv); install it first" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || {
        echo "test-tools: 'python3 -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
        exit 1
    }
fi
if ! "$VENV/bin/python" -m pip show -q "${PINS[@]%%==*}" >/dev/null 2>&1; then
    echo "test-tools: installing ${PINS[*]} into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
fi
POETRY_VENV="$TOOLS/poetry-venv"
POETRY_PIN=poetry==2.2.1
if [ ! -x "$POETRY_VENV/bin/poetry" ]; then
    echo "test-tools: installing $POETRY_PIN into $POETRY_VENV" >&2
    python3 -m venv "$POETRY_VENV"
    "$POETRY_VENV/bin/python" -m pip install -q --disable-pip-version-check "$POETRY_PIN"
fi
mkdir -p "$TOOLS/bin"
ln -sf "$POETRY_VENV/bin/poetry" "$TOOLS/bin/poetry"
for tool in uv maturin cargo-zigbuild python-zig; do
    ln -sf "$VENV/bin/$tool" "$TOOLS/bin/$tool"
done
