#!/usr/bin/env bash
# Idle RSS of one agent binary, broken down by mapping: starts a clearml-test-server, runs
# `<binary> daemon --queue default --create-queue --cpu-only` against it in a fresh HOME, waits
# (WAIT, default 15 s) and prints the daemon's VmRSS split (anonymous/file) and the largest
# mappings. Used to measure the levers in docs/benchmarks.md ("Idle RSS levers"); extra
# environment (TOKIO_WORKER_THREADS, MALLOC_ARENA_MAX) reaches the daemon.
#
#   bench/idle-rss.sh target/release/clearml-agent
set -euo pipefail
BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${SERVER:-$ROOT/target/release/clearml-test-server}
WORK=$(mktemp -d)
trap 'kill ${D:-} ${SRV:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$SERVER" --port 0 >"$WORK/srv.out" 2>"$WORK/srv.err" &
SRV=$!
for _ in $(seq 100); do [ -s "$WORK/srv.out" ] && break; sleep 0.1; done
URL=$(head -1 "$WORK/srv.out")
export HOME=$WORK/home
mkdir -p "$HOME"
cat >"$HOME/clearml.conf" <<CONF
api { api_server: "$URL", web_server: "$URL", files_server: "$URL",
      credentials { access_key: "test-access-key", secret_key: "test-secret-key" } }
agent { venvs_dir: $HOME/venvs, vcs_cache.path: $HOME/vcs }
CONF
"$BIN" daemon --queue default --create-queue --cpu-only >"$WORK/daemon.log" 2>&1 &
D=$!
sleep "${WAIT:-15}"
grep -E "VmRSS|RssAnon|RssFile|Threads" "/proc/$D/status"
awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{r[name]+=$2}
     END{for (n in r) if (r[n] > 100) printf "%8d kB %s\n", r[n], (n == "" ? "[anon]" : n)}' \
    "/proc/$D/smaps" | sort -rn
