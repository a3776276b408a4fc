#!/usr/bin/env bash
# The main job in one command: start the local test server, enqueue the sample task
# examples/hello.py (a literal-script task, as `clearml-task --script` makes), run
# `clearml-agent daemon --queue default --foreground --cpu-only` until the task ends (a real venv
# is built for it), then print the task's log and final status. Exits 0 when it completed.
#
#   scripts/demo.sh
#   DEMO_KEEP=1 scripts/demo.sh     # keep the temp folder (server log, agent log, HOME)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WAIT_SEC=${DEMO_WAIT_SEC:-600}

say() { printf '[demo] %s\n' "$*"; }
die() { say "ERROR: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is needed (the task runs on it); install it first"
say "building clearml-agent and clearml-test-server (cargo build)"
(cd "$ROOT" && cargo build -q --bins -p clearml-agent -p clearml-test-server) \
    || die "cargo build failed"
AGENT="$TARGET/debug/clearml-agent"
SERVER="$TARGET/debug/clearml-test-server"
[ -x "$AGENT" ] && [ -x "$SERVER" ] || die "binaries not found under $TARGET/debug"

WORK=$(mktemp -d -t clearml-demo.XXXXXX)
SERVER_PID=""
AGENT_PID=""
cleanup() {
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill -TERM "$AGENT_PID" 2>/dev/null
        wait "$AGENT_PID" 2>/dev/null
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "${DEMO_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$SERVER" --port 0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL=$(head -n 1 "$WORK/server.out" 2>/dev/null)
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -n 5 "$WORK/server.err")"
    sleep 0.1
done
[[ "$URL" =~ ^http:// ]] || die "the server did not print its URL"
say "test server at $URL"

export CLEARML_API_ACCESS_KEY=test-access-key
export CLEARML_API_SECRET_KEY=test-secret-key
API() { python3 "$ROOT/scripts/peer_api.py" "$URL" "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

HOME_DIR="$WORK/home"
mkdir -p "$HOME_DIR"
cat >"$HOME_DIR/clearml.conf" <<CONF
api {
    api_server: "$URL"
    web_server: "$URL"
    files_server: "$URL"
    credentials { access_key: "test-access-key", secret_key: "test-secret-key" }
}
agent {
    package_manager.pip_version: ""
    venvs_dir: "$HOME_DIR/.clearml/venvs-builds"
    venvs_cache.path: "$HOME_DIR/.clearml/venvs-cache"
    vcs_cache.path: "$HOME_DIR/.clearml/vcs-cache"
}
CONF

BODY=$(python3 - "$ROOT/examples/hello.py" <<'PY'
import json, sys
print(json.dumps({
    "name": "hello from examples",
    "type": "training",
    "script": {"binary": "python3", "entry_point": "hello.py", "working_dir": ".",
               "diff": open(sys.argv[1]).read()},
}))
PY
)
TASK=$(API tasks.create "$BODY" | field 'd["id"]') || die "tasks.create failed"
API tasks.enqueue "{\"task\": \"$TASK\", \"queue_name\": \"default\"}" >/dev/null \
    || die "tasks.enqueue failed"
say "task $TASK enqueued on queue default"

say "running: clearml-agent daemon --queue default --foreground --cpu-only"
env HOME="$HOME_DIR" CLEARML_CONFIG_FILE="$HOME_DIR/clearml.conf" CLEARML_AGENT_QUEUE_POLL_FREQ_SEC=1 \
    "$AGENT" daemon --queue default --foreground --cpu-only >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

STATUS=""
for _ in $(seq 1 $((WAIT_SEC * 4))); do
    STATUS=$(API tasks.get_by_id "{\"task\": \"$TASK\"}" | field 'd["task"]["status"]')
    case "$STATUS" in completed | failed | stopped) break ;; esac
    kill -0 "$AGENT_PID" 2>/dev/null || { say "the agent exited:"; tail -n 20 "$WORK/agent.log"; break; }
    sleep 0.25
done
kill -TERM "$AGENT_PID" 2>/dev/null
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=""

say "task log (events.get_task_log):"
API events.get_task_log "{\"task\": \"$TASK\", \"navigate_earlier\": false}" \
    | field '"".join(e.get("msg", "") if e.get("msg", "").endswith("\n") else e.get("msg", "") + "\n" for e in d["events"])'
REASON=$(API tasks.get_by_id "{\"task\": \"$TASK\"}" | field 'd["task"].get("status_reason")')
say "final status: $STATUS ($REASON)"
[ "$STATUS" = completed ]
