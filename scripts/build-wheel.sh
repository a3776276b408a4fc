#!/usr/bin/env bash
# Builds the pip wheel `clearml-agent-rs` (the release `clearml-agent` binary, no Python code) for
# manylinux2014 with maturin and cargo-zigbuild, then checks that the binary needs no glibc symbol
# newer than 2.17. Prints the wheel's path on its last line.
#
#   scripts/build-wheel.sh [OUT_DIR]          # default: target/wheels
#
# Needs maturin, cargo-zigbuild and ziglang (scripts/test-tools.sh installs them into
# target/tools, which is put first on PATH when it exists). Builds in its own target folder
# (target/wheel-build) so a running `cargo test` never waits on it or it on `cargo test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/wheels}
[ -d "$ROOT/target/tools/bin" ] && export PATH="$ROOT/target/tools/bin:$PATH"
for tool in maturin cargo-zigbuild python-zig; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-wheel: '$tool' is not on PATH; run scripts/test-tools.sh first (installs maturin, cargo-zigbuild, ziglang)" >&2
        exit 1
    }
done
# cargo-zigbuild runs zig as `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang`: the tools venv has it.
[ -x "$ROOT/target/tools/venv/bin/python" ] && export CARGO_ZIGBUILD_PYTHON_PATH="$ROOT/target/tools/venv/bin/python"
export CARGO_TARGET_DIR=${WHEEL_TARGET_DIR:-$ROOT/target/wheel-build}
mkdir -p "$OUT"
rm -f "$OUT"/clearml_agent_rs-*.whl
# maturin calls `cargo zigbuild` with the glibc version of the manylinux tag (2.17).
(cd "$ROOT" && maturin build --quiet --release --zig --compatibility manylinux2014 \
    --target x86_64-unknown-linux-gnu --out "$OUT" >&2)
WHEEL=$(ls "$OUT"/clearml_agent_rs-*.whl)
BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/clearml-agent"
NEWEST=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
case "$NEWEST" in
    2.[0-9] | 2.1[0-7]) ;;
    *) echo "build-wheel: $BIN needs glibc $NEWEST (> 2.17)" >&2; exit 1 ;;
esac
echo "build-wheel: $(basename "$WHEEL"): binary needs glibc >= $NEWEST" >&2
echo "$WHEEL"
