//! Faults injected for real against a running daemon: malformed, trickled and huge replies from
//! the test server on the calls the daemon makes, the server killed and restarted mid-task, and
//! a server that is not there yet when the agent starts. Each test proves the promise that
//! docs/reliability.md makes for that fault.

use std::time::{Duration, Instant};

use clearml_test_server::Fault;
use serde_json::{Value, json};

use crate::context::{AgentContext, Daemon};

/// A task printing `n` numbered lines, one every `every` seconds.
fn counting_script(n: usize, every: f64) -> String {
    format!(
        "import time\nfor i in range({n}):\n    print('line %d of {n}' % i, flush=True)\n    time.sleep({every})\n"
    )
}

fn assert_all_lines(ctx: &AgentContext, task: &str, n: usize, daemon: &Daemon) {
    let log = ctx.server.log_text(task).unwrap();
    for i in 0..n {
        let line = format!("line {i} of {n}");
        assert_eq!(
            log.matches(&line).count(),
            1,
            "line {i} missing or more than once in the log:\n{log}\nagent:\n{}",
            daemon.output()
        );
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every malformed shape, given by every call the daemon makes while a task runs and while it
/// polls: the task runs to the end with every line, each problem is said once, and the daemon
/// then runs the next task.
#[test]
fn malformed_replies_leave_the_task_running_and_the_daemon_serving() {
    let ctx = AgentContext::builder()
        .conf("agent.task_ping_interval_sec: 0.5")
        .env("CLEARML_AGENT_STATUS_REPORT_FREQ_SEC", "0.5")
        .build();
    let n = 60;
    let task = ctx.script_task("under fire", &counting_script(n, 0.1));
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    ctx.wait_status(&task, &["in_progress"], Some(&daemon));

    let shapes = [
        Fault::Data(json!({})),
        Fault::Data(Value::Null),
        Fault::Data(json!({ "tasks": "not a list", "task": 7, "entry": [] })),
        Fault::Data(json!({ "tasks": [{ "status": 12, "status_message": [] }] })),
        Fault::Raw("<html><body>502 Bad Gateway</body></html>".into()),
        Fault::Raw(String::new()),
        Fault::Raw("{\"meta\": 5}".into()),
    ];
    let running = [
        "tasks.get_all",
        "tasks.ping",
        "events.add_batch",
        "workers.status_report",
    ];
    for endpoint in running {
        for shape in &shapes {
            ctx.server.inject_fault(endpoint, shape.clone(), 1);
        }
    }
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    assert_all_lines(&ctx, &task, n, &daemon);

    // The idle daemon's queue poll gets them next; then the next task runs.
    for shape in &shapes {
        ctx.server
            .inject_fault("queues.get_next_task", shape.clone(), 1);
    }
    wait_for(
        "the queue poll to take its faults",
        Duration::from_secs(60),
        || ctx.server.pending_faults() == 0,
    );
    let next = ctx.script_task("after the storm", "print('still serving')\n");
    ctx.server.enqueue(&next, "default").unwrap();
    let t = ctx.wait_status(&next, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    assert!(daemon.stop().is_some(), "the daemon exits on SIGTERM");

    // Each problem is said once per run of failures, not at every poll.
    let out = daemon.output();
    let count = |needle: &str| out.matches(needle).count();
    assert!(count("cannot poll the status of task") <= 2, "{out}");
    assert!(count("Could not access task queue") <= 2, "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

/// A reply that trickles one byte every 25 s holds a call for at most the read timeout (30 s),
/// then the call is retried and the daemon runs the task.
#[test]
fn a_trickling_reply_holds_a_call_for_a_bounded_time() {
    let ctx = AgentContext::new();
    ctx.server.inject_fault(
        "queues.get_next_task",
        Fault::Trickle(Duration::from_secs(25)),
        1,
    );
    let task = ctx.script_task("behind a slow proxy", "print('got through')\n");
    ctx.server.enqueue(&task, "default").unwrap();
    let started = Instant::now();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}:\n{}",
        started.elapsed(),
        daemon.output()
    );
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Huge replies (256 MiB) are refused past the reply limit: the daemon's peak memory stays far
/// below them, and it runs the task.
#[test]
fn a_huge_reply_is_refused_without_reading_it_into_memory() {
    let ctx = AgentContext::new();
    ctx.server
        .inject_fault("queues.get_next_task", Fault::Huge(256 << 20), 2);
    ctx.server
        .inject_fault("workers.status_report", Fault::Huge(256 << 20), 1);
    let task = ctx.script_task("after a flood", "print('fine')\n");
    ctx.server.enqueue(&task, "default").unwrap();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    let peak = rss_kib(daemon.pid());
    assert!(peak > 0 && peak < 100 * 1024, "peak RSS {peak} KiB");
    assert!(daemon.output().contains("MiB limit"), "{}", daemon.output());
}

/// The server killed (its state on disk) and started again mid-task: every line arrives once,
/// the task ends completed, and the daemon runs the next task.
#[test]
fn server_restart_mid_task_loses_no_line_and_the_next_task_runs() {
    let mut ctx = AgentContext::builder().persistent().build();
    let n = 80;
    let task = ctx.script_task("through a restart", &counting_script(n, 0.1));
    ctx.server.enqueue(&task, "default").unwrap();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    ctx.wait_log(&task, |log| log.contains("line 10 of"), &daemon);
    ctx.server.stop();
    std::thread::sleep(Duration::from_secs(4));
    ctx.server.restart().unwrap();
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    // The last lines may still be on their way right after the status.
    wait_for("every line", Duration::from_secs(30), || {
        ctx.server
            .log_text(&task)
            .unwrap()
            .contains(&format!("line {} of {n}", n - 1))
    });
    assert_all_lines(&ctx, &task, n, &daemon);
    let next = ctx.script_task("after the restart", "print('next')\n");
    ctx.server.enqueue(&next, "default").unwrap();
    let t = ctx.wait_status(&next, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
}

/// A server that is not up yet when the daemon starts: the daemon waits for it, then serves.
#[test]
fn server_unreachable_at_start_is_waited_for() {
    let mut ctx = AgentContext::builder().persistent().build();
    let task = ctx.script_task("early bird", "print('served')\n");
    ctx.server.enqueue(&task, "default").unwrap();
    ctx.server.stop();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(crate::context::alive(daemon.pid()), "{}", daemon.output());
    ctx.server.restart().unwrap();
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
}
