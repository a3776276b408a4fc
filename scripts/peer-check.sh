#!/usr/bin/env bash
# Peer check: the real Python peers (clearml SDK `clearml-task` and `clearml-agent` 3.0.3)
# against our test server (crates/clearml-test-server), checked through the server's HTTP API.
#
#   scripts/peer-check.sh            # builds/caches its venv in .venv-peers/
#   PEER_VENV=/some/venv scripts/peer-check.sh   # reuse a venv that already has the peers
#
# Proves: (a) clearml-task creates and enqueues a task; (b) `clearml-agent daemon --queue
# default --foreground --cpu-only` runs it in venv mode: completed with its printed lines as
# log events; an exit-3 task ends failed; a task stopped with tasks.stop ends stopped and its
# process is gone; (c) Task.init() inside the task reports a scalar that the server stores;
# (d) the same literal-script task with one requirement, run once by the Python agent and once by
# ours (target/debug/clearml-agent), leaves the same status, reasons, runtime keys, requirement
# keys and printed lines on the server; (e) a task that registers the SDK's abort callback is left
# running by our agent after tasks.stop until the callback has run, then ends stopped.
# Prints "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PEER_VENV:-$ROOT/.venv-peers}
WAIT_SEC=${PEER_WAIT_SEC:-900}
PASSED=0
FAILED=0

say() { printf '[peer-check] %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); say "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAIL: $*"; }
die() {
    say "ERROR: $*"
    say "$PASSED passed, $((FAILED + 1)) failed"
    exit 1
}

# --- the peers' venv -------------------------------------------------------------------
if [ ! -x "$VENV/bin/clearml-agent" ] || [ ! -x "$VENV/bin/clearml-task" ]; then
    say "creating $VENV with clearml-agent==3.0.3 and clearml (from PyPI)"
    python3 -m venv "$VENV" || die "cannot create a venv at $VENV (is python3-venv installed?)"
    "$VENV/bin/pip" install -q clearml-agent==3.0.3 clearml \
        || die "pip install clearml-agent==3.0.3 clearml failed; check PyPI access"
fi
PY="$VENV/bin/python"
API="$PY $ROOT/scripts/peer_api.py"

# --- our agent, for (d); built before HOME is replaced (cargo and rustup live under it) ---------
RS_AGENT="${CARGO_TARGET_DIR:-$ROOT/target}/debug/clearml-agent"
say "building our agent (cargo build --bin clearml-agent; a no-op when it is up to date)"
(cd "$ROOT" && cargo build -q --bin clearml-agent) || fail "(d) cargo build of our agent failed"

# --- our server --------------------------------------------------------------------------
WORK=$(mktemp -d -t clearml-peer-check.XXXXXX)
SERVER_PID=""
AGENT_PID=""
cleanup() {
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill -INT "$AGENT_PID" 2>/dev/null
        for _ in $(seq 1 20); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$AGENT_PID" 2>/dev/null
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "${PEER_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say "starting the test server (cargo run -p clearml-test-server -- --port 0)"
(cd "$ROOT" && exec cargo run -q -p clearml-test-server -- --port 0 --db "$WORK/server.db") \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 600); do
    URL=$(head -n 1 "$WORK/server.out" 2>/dev/null)
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -n 5 "$WORK/server.err")"
    sleep 0.5
done
[[ "$URL" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || die "first server line is not the URL: '$URL'"
say "server at $URL"

# --- an isolated HOME with clearml.conf ------------------------------------------------------
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export HOME="$WORK/home"
mkdir -p "$HOME"
export CLEARML_CONFIG_FILE="$HOME/clearml.conf"
export CLEARML_API_ACCESS_KEY=test-access-key
export CLEARML_API_SECRET_KEY=test-secret-key
cat >"$CLEARML_CONFIG_FILE" <<CONF
api {
    api_server: "$URL"
    web_server: "$URL"
    files_server: "$URL"
    credentials {
        access_key: "test-access-key"
        secret_key: "test-secret-key"
    }
}
agent {
    worker_name: "peer-check"
    package_manager {
        type: pip
        pip_version: ""
    }
    venvs_dir: "$HOME/.clearml/venvs-builds"
    venvs_cache {
        max_entries: 10
        free_space_threshold_gb: 0.5
        path: "$HOME/.clearml/venvs-cache"
    }
}
sdk {
    development { report_use_subprocess: false }
}
CONF

# --- (a) clearml-task creates and enqueues ------------------------------------------------------
TASKS="$WORK/tasks"
mkdir -p "$TASKS"
cp "$ROOT/scripts/peer_task.py" "$ROOT/scripts/peer_task_fail.py" "$ROOT/scripts/peer_task_sleep.py" "$TASKS/"

field() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

create_task() { # name script -> task id
    # Every task gets the same requirements, so the agent's venv cache serves the later ones.
    (cd "$TASKS" && "$VENV/bin/clearml-task" --project peer-check --name "$1" --script "$2" \
        --packages clearml --queue default) >"$WORK/clearml-task-$1.log" 2>&1 \
        || { say "clearml-task output:" >&2; tail -n 20 "$WORK/clearml-task-$1.log" >&2; return 1; }
    $API "$URL" tasks.get_all "{\"name\": \"^$1\$\", \"only_fields\": [\"id\"]}" | field 'd["tasks"][0]["id"]'
}

OK_ID=$(create_task peer-ok peer_task.py) || die "clearml-task could not create peer-ok"
FAIL_ID=$(create_task peer-fail peer_task_fail.py) || die "clearml-task could not create peer-fail"
SLEEP_ID=$(create_task peer-sleep peer_task_sleep.py) || die "clearml-task could not create peer-sleep"
say "tasks: ok=$OK_ID fail=$FAIL_ID sleep=$SLEEP_ID"

alive() { # pid -> success while the process exists and is not a zombie
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
task_json() { $API "$URL" tasks.get_by_id "{\"task\": \"$1\"}"; }
status_of() { task_json "$1" | field 'd["task"]["status"]'; }

DEFAULT_Q=$($API "$URL" queues.get_default | field 'd["id"]')
ENTRIES=$($API "$URL" queues.get_by_id "{\"queue\": \"$DEFAULT_Q\"}" | field '",".join(e["task"] for e in d["queue"]["entries"])')
if [ "$ENTRIES" = "$OK_ID,$FAIL_ID,$SLEEP_ID" ] && [ "$(status_of "$OK_ID")" = queued ]; then
    pass "(a) clearml-task created 3 tasks and enqueued them on default in order"
else
    fail "(a) default queue entries are '$ENTRIES', ok task status $(status_of "$OK_ID")"
fi
ENTRY=$(task_json "$OK_ID" | field 'd["task"]["script"].get("entry_point")')
TAGS=$(task_json "$OK_ID" | field '"development" in d["task"]["system_tags"]')
if [ "$ENTRY" = peer_task.py ] && [ "$TAGS" = False ]; then
    pass "(a) the task has its script entry point and lost the development tag on enqueue"
else
    fail "(a) entry_point='$ENTRY', development tag still present: $TAGS"
fi

# --- (b) the Python agent runs the tasks ---------------------------------------------------------
say "starting clearml-agent daemon --queue default --foreground --cpu-only"
CLEARML_AGENT_QUEUE_POLL_FREQ_SEC=1 "$VENV/bin/clearml-agent" daemon --queue default \
    --foreground --cpu-only >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

wait_status() { # id wanted-statuses-regex -> final status
    local s=""
    for _ in $(seq 1 "$WAIT_SEC"); do
        s=$(status_of "$1")
        [[ "$s" =~ ^($2)$ ]] && { echo "$s"; return 0; }
        kill -0 "$AGENT_PID" 2>/dev/null || { echo "agent-exited:$s"; return 1; }
        sleep 1
    done
    echo "timeout:$s"
    return 1
}
log_text() { $API "$URL" events.get_task_log "{\"task\": \"$1\", \"navigate_earlier\": false}" | field '"\n".join(e.get("msg", "") for e in d["events"])'; }

S=$(wait_status "$OK_ID" 'completed|failed|stopped')
if [ "$S" = completed ]; then pass "(b) peer-ok ran and ended completed"; else
    fail "(b) peer-ok ended '$S'"; tail -n 30 "$WORK/agent.log"; fi
# Read the whole log first: `grep -q` quits at the first match, and under pipefail the writer's
# broken pipe would fail the check although the line is there.
OK_LOG=$(log_text "$OK_ID")
if grep -q "peer task: hello from the task" <<<"$OK_LOG"; then
    pass "(b) peer-ok's printed line is stored as a log event"
else
    fail "(b) peer-ok's log lacks its printed line"
fi
SCALAR=$($API "$URL" events.get_task_events "{\"task\": \"$OK_ID\", \"event_type\": \"training_stats_scalar\"}" \
    | field '[(e["metric"], e["variant"], e["value"], e["iter"]) for e in d["events"]]')
if [ "$SCALAR" = "[('peer_metric', 'series_a', 42.5, 3)]" ]; then
    pass "(c) Task.init() in the task reported a scalar the server stored"
else
    fail "(c) scalar events: $SCALAR"
fi

S=$(wait_status "$FAIL_ID" 'completed|failed|stopped')
REASON=$(task_json "$FAIL_ID" | field 'd["task"]["status_reason"]')
if [ "$S" = failed ]; then pass "(b) peer-fail (exit 3) ended failed ($REASON)"; else
    fail "(b) peer-fail ended '$S' ($REASON)"; fi

PID=""
for _ in $(seq 1 "$WAIT_SEC"); do
    PID=$(log_text "$SLEEP_ID" | sed -n 's/.*sleeping pid=\([0-9]*\).*/\1/p' | head -n 1)
    [ -n "$PID" ] && break
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 1
done
if [ -z "$PID" ]; then
    fail "(b) peer-sleep never logged its pid (status $(status_of "$SLEEP_ID"))"
else
    alive "$PID" || fail "(b) peer-sleep process $PID is not running before the stop"
    $API "$URL" tasks.stop "{\"task\": \"$SLEEP_ID\"}" >/dev/null || fail "(b) tasks.stop was refused"
    MSG=$(task_json "$SLEEP_ID" | field 'd["task"]["status_message"]')
    S=$(wait_status "$SLEEP_ID" 'stopped|failed|completed')
    # The agent terminates, waits up to 10 s, then kills (clearml_agent/helper/process.py:
    # terminate_process), so allow it time. A zombie counts as gone.
    GONE=no
    for _ in $(seq 1 180); do
        alive "$PID" || { GONE=yes; break; }
        sleep 0.5
    done
    if [ "$S" = stopped ] && [ "$GONE" = yes ]; then
        pass "(b) tasks.stop ('$MSG' handshake) ended peer-sleep stopped and its process $PID is gone"
    else
        fail "(b) after tasks.stop: status '$S', message '$MSG', process $PID gone: $GONE"
    fi
fi

# --- (d) the same task run by the Python agent and by ours leaves the same server state ----------
# One literal-script task with one requirement, created twice through the API: the Python agent
# (still running from (b)) runs the first, then it is stopped and our agent runs the second.
compare_task() { # name -> task id, enqueued on default
    local body id
    body=$("$PY" - "$ROOT/scripts/peer_task_compare.py" "$1" <<'PYEOF'
import json, sys
print(json.dumps({"name": sys.argv[2], "type": "training", "script": {
    "binary": "python3", "entry_point": "peer_task_compare.py", "working_dir": ".",
    "diff": open(sys.argv[1]).read(), "requirements": {"pip": "six==1.16.0"}}}))
PYEOF
)
    id=$($API "$URL" tasks.create "$body" | field 'd["id"]') || return 1
    $API "$URL" tasks.enqueue "{\"task\": \"$id\", \"queue_name\": \"default\"}" >/dev/null || return 1
    echo "$id"
}
stop_agent() {
    [ -n "$AGENT_PID" ] || return 0
    kill -INT "$AGENT_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$AGENT_PID" 2>/dev/null
    wait "$AGENT_PID" 2>/dev/null
    AGENT_PID=""
}
if kill -0 "$AGENT_PID" 2>/dev/null; then
    PY_CMP=$(compare_task peer-compare-python) || die "cannot create the comparison task"
    S=$(wait_status "$PY_CMP" 'completed|failed|stopped')
    say "(d) the Python agent ran $PY_CMP: $S"
    stop_agent
    if [ -x "$RS_AGENT" ]; then
        RS_CMP=$(compare_task peer-compare-ours) || die "cannot create the comparison task"
        CLEARML_AGENT_QUEUE_POLL_FREQ_SEC=1 "$RS_AGENT" daemon --queue default --foreground \
            --cpu-only >"$WORK/our-agent.log" 2>&1 &
        AGENT_PID=$!
        S=$(wait_status "$RS_CMP" 'completed|failed|stopped')
        say "(d) our agent ran $RS_CMP: $S"
        stop_agent
        while read -r verdict rest; do
            case "$verdict" in
                ok) pass "(d) same $rest" ;;
                diff) fail "(d) differs: $rest" ;;
                *) fail "(d) comparison output: $verdict $rest" ;;
            esac
        done < <(cd "$ROOT/scripts" && "$PY" peer_compare.py "$URL" "$PY_CMP" "$RS_CMP" "peer-compare:" 2>&1)
    fi
else
    fail "(d) the Python agent is gone before the comparison stage"
fi

# --- (e) the SDK's abort callback under our agent ------------------------------------------------
# Task.register_abort_callback in the task: after tasks.stop our agent must leave the task
# running until the SDK has run the callback and said so, then stop it.
if [ -x "$RS_AGENT" ] && [ -z "$AGENT_PID" ]; then
    cp "$ROOT/scripts/peer_task_abort.py" "$TASKS/"
    ABORT_ID=$(create_task peer-abort peer_task_abort.py) || die "clearml-task could not create peer-abort"
    CLEARML_AGENT_QUEUE_POLL_FREQ_SEC=1 "$RS_AGENT" daemon --queue default --foreground \
        --cpu-only >"$WORK/our-agent-abort.log" 2>&1 &
    AGENT_PID=$!
    REGISTERED=no
    for _ in $(seq 1 "$WAIT_SEC"); do
        ABORT_LOG=$(log_text "$ABORT_ID")
        grep -q "peer-abort: registered" <<<"$ABORT_LOG" && { REGISTERED=yes; break; }
        kill -0 "$AGENT_PID" 2>/dev/null || break
        sleep 1
    done
    if [ "$REGISTERED" = yes ]; then
        # Give the SDK's abort monitor its first poll before the stop (a stop that comes before
        # it runs was seen, once in CI, to end the task without the callback).
        sleep 5
        $API "$URL" tasks.stop "{\"task\": \"$ABORT_ID\"}" >/dev/null || fail "(e) tasks.stop was refused"
        S=$(wait_status "$ABORT_ID" 'completed|failed|stopped')
        ABORT_LOG=$(log_text "$ABORT_ID")
        # The SDK polls the status on its own: when its poll comes first, the callback has
        # completed by the time the agent reads it, and the agent (as the Python agent,
        # TaskStopSignal._wait_for_abort_callback) says only that it set the timeout.
        if [ "$S" = stopped ] && grep -q "peer-abort: callback ran" <<<"$ABORT_LOG" \
            && grep -qE "### Task abort callback (completed in|timeout set)" <<<"$ABORT_LOG"; then
            pass "(e) our agent waited for the SDK's abort callback, then the task ended stopped"
        else
            fail "(e) after tasks.stop: status '$S'; log tail: $(tail -n 8 <<<"$ABORT_LOG" | tr '\n' '|')"
        fi
    else
        fail "(e) peer-abort never registered its callback (status $(status_of "$ABORT_ID"))"
        tail -n 30 "$WORK/our-agent-abort.log"
    fi
    stop_agent
fi

if [ "$FAILED" -gt 0 ]; then
    say "agent log tail:"
    tail -n 40 "$WORK/agent.log"
fi
say "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
