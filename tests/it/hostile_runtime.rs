//! Hostile task definitions against the agent's runtime: output floods that must not grow the
//! daemon's memory (docker mode against the real Docker Engine, which these tests need: they
//! fail without it, and venv mode), forged `pip freeze` markers, and a local registry or lock
//! file planted to make `daemon --stop` kill what is not an agent or the agent spin.
//!
//! Floods print lines of `yyy\r` repeated: with `agent.suppress_carriage_return` (the default)
//! each ships as one tiny event, so hundreds of MiB pass through the daemon without loading the
//! test server.

use std::os::unix::fs::chown;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::{AgentContext, Daemon, alive};
use crate::docker::{context as docker_context, image};

/// A generous bound on the daemon's peak memory (about 30 MiB measured with the debug build): the
/// floods are ~300 MiB, and the agent holds a few MiB of them at most (see docs/security.md).
const MAX_DAEMON_RSS_KIB: u64 = 100 * 1024;

/// Python that prints ~300 MiB: 5000 lines of 60 KiB (`yyy\r` repeated).
const FLOOD_LINES: &str = "import sys; l=b'yyy\\r'*15000+b'\\n'; w=sys.stdout.buffer.write; [w(l) for _ in range(5000)]; sys.stdout.flush()";
/// Python that prints ~300 MiB without a newline.
const FLOOD_ONE_LINE: &str = "import sys; w=sys.stdout.buffer.write; [w(b'yyy\\r'*16384) for _ in range(4600)]; sys.stdout.flush()";

/// Setup-script lines that read this run's freeze marker out of the container's own script
/// (the worst case: the task knows the real token) and print the begin marker.
const FORGE_REAL_BEGIN: &str = "T=$(tr '\\0' '\\n' < /proc/$$/cmdline | grep -o 'pip freeze begin [0-9a-f]\\{32\\}' | head -n 1 | cut -d ' ' -f 4)\n\
                                echo \"=== clearml-agent: pip freeze begin $T ===\"";

/// Peak resident memory of a process, from /proc (KiB).
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn assert_small(d: &Daemon, what: &str) {
    let rss = peak_rss_kib(d.pid());
    eprintln!("{what}: the daemon's peak RSS is {rss} KiB");
    assert!(
        rss < MAX_DAEMON_RSS_KIB,
        "{what}: the daemon's peak RSS is {rss} KiB\n{}",
        d.output()
    );
}

fn docker_task(ctx: &AgentContext, name: &str, script: &str, setup: &str) -> String {
    ctx.server
        .create_task(json!({
            "name": name,
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": script,
            },
            "container": {"setup_shell_script": setup},
        }))
        .unwrap()
}

/// Stops the running flood task, then checks the same daemon still runs a normal task.
fn stop_then_run_next(ctx: &AgentContext, task: &str, d: &Daemon, docker: bool) {
    ctx.server
        .call("tasks.stop", json!({"task": task}))
        .unwrap();
    ctx.wait_status(task, &["stopped"], Some(d));
    let next = if docker {
        docker_task(ctx, "next", "print('next ran')\n", "")
    } else {
        ctx.script_task("next", "print('next ran')\n")
    };
    ctx.server.enqueue(&next, "default").unwrap();
    let t = ctx.wait_status(&next, &["completed", "failed"], Some(d));
    assert_eq!(t["status"], "completed", "{}", d.output());
    assert!(ctx.server.log_text(&next).unwrap().contains("next ran"));
}

#[test]
fn freeze_marker_flood_in_docker_keeps_the_daemon_small() {
    let img = image();
    let ctx = docker_context().build();
    let task = docker_task(
        &ctx,
        "freeze flood",
        "import time\nprint('running', flush=True)\ntime.sleep(300)\n",
        // (Short lines are the unit test's and the benchmark's: every line also goes to the
        // task log, and millions of them would load the test server.)
        &format!("{FORGE_REAL_BEGIN}\npython3 -c \"{FLOOD_LINES}\"\n"),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    let log = ctx.wait_log(&task, |l| l.contains("running"), &d);
    assert!(
        log.contains("the frozen requirements are not recorded: over 4 MiB"),
        "{log}"
    );
    assert_eq!(
        log.matches("frozen requirements are not recorded").count(),
        1
    );
    assert_small(&d, "freeze-marker flood");
    stop_then_run_next(&ctx, &task, &d, true);
}

#[test]
fn long_unterminated_line_in_docker_keeps_the_daemon_small() {
    let img = image();
    let ctx = docker_context().build();
    let task = docker_task(
        &ctx,
        "one long line",
        "print('after the long line')\n",
        &format!("{FORGE_REAL_BEGIN}\npython3 -c \"{FLOOD_ONE_LINE}\"\necho\n"),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(
        log.contains("after the long line"),
        "{log}\nagent log:\n{}",
        d.output()
    );
    assert!(
        log.contains("the frozen requirements are not recorded: a line of over 64 KiB"),
        "{log}"
    );
    assert_small(&d, "unterminated line flood");
}

#[test]
fn forged_freeze_markers_are_not_recorded_as_the_freeze() {
    let img = image();
    let ctx = docker_context().build();
    // The markers as they looked before they carried a per-run token, and with a wrong one,
    // both from the setup script (before the real freeze) and from the task itself.
    let forged = "=== clearml-agent: pip freeze begin ===\nevil-package==6.6.6\n=== clearml-agent: pip freeze end ===\n\
                  === clearml-agent: pip freeze begin 0123456789abcdef0123456789abcdef ===\nevil-package==6.6.7\n\
                  === clearml-agent: pip freeze end 0123456789abcdef0123456789abcdef ===";
    let setup: String = forged.lines().map(|l| format!("echo '{l}'\n")).collect();
    let task = docker_task(
        &ctx,
        "forged markers",
        &format!("print({forged:?})\n"),
        &setup,
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    // The real freeze is recorded, none of the forged ones.
    let wait_reqs = Instant::now() + Duration::from_secs(30);
    let pip: Value = loop {
        let pip = ctx.server.task(&task).unwrap()["script"]["requirements"]["pip"].clone();
        if pip.is_array() || Instant::now() > wait_reqs {
            break pip;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(pip.is_array(), "no freeze: {pip}");
    let pip = pip.to_string();
    assert!(!pip.contains("evil-package"), "{pip}");
    assert!(log.contains("evil-package==6.6.6"), "{log}");
    // The token is not in the task's log (the task could read it back from there).
    assert!(log.contains("pip freeze begin <random> ==="), "{log}");
}

#[test]
fn venv_mode_flood_keeps_the_daemon_small() {
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_NAME", "hostile-venv-flood")
        .build();
    let task = ctx.script_task(
        "venv flood",
        &format!(
            "import time\n{}\nprint('running', flush=True)\ntime.sleep(300)\n",
            FLOOD_LINES.replace("; ", "\n")
        ),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("running"), &d);
    assert_small(&d, "venv-mode flood");
    stop_then_run_next(&ctx, &task, &d, false);
}

fn registry_context() -> AgentContext {
    AgentContext::builder()
        .env("CLEARML_WORKER_NAME", "hostile-registry")
        .build()
}

fn run(ctx: &AgentContext, args: &[&str]) -> Output {
    let mut full = vec!["daemon"];
    full.extend_from_slice(args);
    ctx.command(&full).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn stop_spares_a_process_named_by_a_forged_or_stale_registry_file() {
    let ctx = registry_context();
    let mut victim = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = victim.id() as i32;
    let tmp = ctx.root().join("tmp");
    // Ours (a crashed agent's pid reused by an unrelated process), and another user's.
    let own = tmp.join(format!(".clearmlagent_{pid}_reused01.tmp"));
    std::fs::write(&own, "hostile-registry:cpu:0\n0").unwrap();
    let foreign = tmp.join(format!(".clearmlagent_{pid}_foreign1.tmp"));
    std::fs::write(&foreign, "hostile-registry:cpu:1\n1").unwrap();
    chown(&foreign, Some(65534), Some(65534)).unwrap();

    let out = run(&ctx, &["--queue", "default", "--cpu-only", "--stop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Could not find a running clearml-agent instance"));
    let out = run(
        &ctx,
        &["--queue", "default", "--stop", "hostile-registry:cpu:1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(alive(pid), "--stop signalled a process that is no agent");
    assert!(!own.exists(), "the stale entry of this user was left");
    assert!(foreign.exists(), "another user's file was removed");

    // A real agent takes slot 0 (the forged entries hold nothing) and is the one stopped.
    std::fs::write(&own, "hostile-registry:cpu:0\n0").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx
        .server
        .workers()
        .unwrap()
        .iter()
        .all(|w| w["id"] != "hostile-registry:cpu:0")
    {
        assert!(Instant::now() < deadline, "{}", d.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(&ctx, &["--queue", "default", "--cpu-only", "--stop"]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.output());
    assert!(
        text(&out).contains(&format!("pid={}", d.pid())),
        "{}",
        text(&out)
    );
    assert!(alive(pid));
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn registry_lock_that_cannot_be_removed_is_a_one_line_error() {
    let ctx = registry_context();
    // A folder where the lock file goes: it cannot be created, nor removed as a stale lock.
    let lock = ctx.root().join("tmp").join("_.clearmlagent_global.lock");
    std::fs::create_dir(&lock).unwrap();
    let started = Instant::now();
    let mut child = ctx
        .command(&["daemon", "--queue", "default", "--cpu-only"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent still waits for the lock after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    let line = err
        .lines()
        .find(|l| l.starts_with("clearml_agent: ERROR:"))
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(line.contains(&lock.display().to_string()), "{line}");
    assert!(
        line.contains("cannot take the agent registry lock"),
        "{line}"
    );
    assert!(line.contains("remove it"), "{line}");
    // Bounded: the Python agent's 10 s lock timeout, not an endless wait.
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(lock.is_dir());
}
