//! Integration tests: the behaviour behind the speed goals, counted rather than timed where it
//! can be: how many queue polls an idle daemon spends, with and without an explicit interval.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::context::{AgentContext, Daemon};

/// A daemon on queue `default` with the poll pace it chooses itself (no interval set).
fn self_paced_daemon(ctx: &AgentContext) -> Daemon {
    let log = ctx.root().join("daemon-self-paced.log");
    let file = std::fs::File::create(&log).expect("daemon log");
    let child = ctx
        .command(&["daemon", "--queue", "default", "--cpu-only"])
        .env_remove("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC")
        .stdout(Stdio::from(file.try_clone().expect("dup")))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("agent starts");
    Daemon { child, log }
}

fn polls(ctx: &AgentContext) -> u64 {
    ctx.server.calls("queues.get_next_task")
}

/// Waits until the daemon made its first poll (it has registered and found its queue).
fn wait_first_poll(ctx: &AgentContext, d: &Daemon) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while polls(ctx) == 0 {
        assert!(Instant::now() < deadline, "no poll:\n{}", d.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    Instant::now()
}

#[test]
fn idle_daemon_polls_quickly_after_start_then_within_the_python_budget() {
    let ctx = AgentContext::new();
    let d = self_paced_daemon(&ctx);
    let start = wait_first_poll(&ctx, &d);
    // quick polls first: a task queued now starts within about a second
    std::thread::sleep(Duration::from_secs(8).saturating_sub(start.elapsed()));
    let quick = polls(&ctx);
    assert!(
        quick >= 6,
        "{quick} polls in the first 8 s:\n{}",
        d.output()
    );
    // then, idle, the pace drops: the Python agent spends ~27 calls a minute (3 per 5 s pass)
    std::thread::sleep(Duration::from_secs(16).saturating_sub(start.elapsed()));
    let from = polls(&ctx);
    std::thread::sleep(Duration::from_secs(28).saturating_sub(start.elapsed()));
    let idle = polls(&ctx) - from;
    // 12 s at one poll per 4 s: 3 (4 at a window edge); Python's budget would allow 5.4
    assert!(
        idle <= 4,
        "{idle} polls in 12 idle seconds:\n{}",
        d.output()
    );
    assert!(
        idle >= 2,
        "{idle} polls in 12 idle seconds:\n{}",
        d.output()
    );
}

#[test]
fn explicit_poll_interval_is_kept() {
    let ctx = AgentContext::builder()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "2")
        .build();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let start = wait_first_poll(&ctx, &d);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(start.elapsed()));
    // polls at 0, 2, 4, 6, 8 (and maybe 10) seconds: no quick phase
    let n = polls(&ctx);
    assert!((4..=7).contains(&n), "{n} polls in 10 s:\n{}", d.output());
}

#[test]
fn stopped_task_is_killed_at_once_without_sigterm() {
    // mirrors the Python agent (kill_all_child_processes: SIGKILL to the tree): a stopped task
    // gets no SIGTERM grace, so a handler that would stall the abort never runs
    let ctx = AgentContext::new();
    let termed = ctx.root().join("termed");
    let pidfile = ctx.root().join("pid");
    let script = format!(
        "import os, signal, time\n\
         def on_term(*_):\n    open({t:?}, 'w').write('x')\n    time.sleep(30)\n\
         signal.signal(signal.SIGTERM, on_term)\n\
         open({pf:?}, 'w').write(str(os.getpid()))\n\
         print('running', flush=True)\n\
         time.sleep(300)\n",
        t = termed.display().to_string(),
        pf = pidfile.display().to_string()
    );
    let task = ctx.script_task("abort-at-once", &script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("running"), &d);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ctx.server
        .call("tasks.stop", serde_json::json!({"task": task}))
        .unwrap();
    ctx.wait_status(&task, &["stopped"], Some(&d));
    assert!(!crate::context::alive(pid), "the task process survived");
    assert!(
        !termed.exists(),
        "the task got SIGTERM before it was killed:\n{}",
        d.output()
    );
}
