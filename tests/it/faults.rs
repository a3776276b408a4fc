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
    let running = ["tasks.get_all", "tasks.ping", "workers.status_report"];
    for endpoint in running {
        for shape in &shapes {
            ctx.server.inject_fault(endpoint, shape.clone(), 1);
        }
    }
    // A 200 envelope to `events.add_batch` says the lines were stored (the fault stores none), so
    // the log upload gets only the replies that are no envelope: those lines are sent again.
    for shape in shapes.iter().filter(|s| matches!(s, Fault::Raw(_))) {
        ctx.server
            .inject_fault("events.add_batch", shape.clone(), 1);
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

/// A task that starts a process which double-forks, calls `setsid` and closes every descriptor
/// (out of the task's group, session and output pipe), writes its pid to `pidfile` and sleeps;
/// then prints `started` and, when `linger`, sleeps too.
fn escaping_script(pidfile: &std::path::Path, linger: bool) -> String {
    format!(
        "import os, time\n\
         if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.closerange(0, 4096)\n        \
         with open({pidfile:?}, 'w') as f:\n            f.write(str(os.getpid()))\n        \
         time.sleep(300)\n        os._exit(0)\n    os._exit(0)\n\
         os.wait()\n\
         while not os.path.exists({pidfile:?}) or not open({pidfile:?}).read():\n    time.sleep(0.05)\n\
         print('escapee-is-running', flush=True)\n\
         {linger}\n",
        pidfile = pidfile.display().to_string(),
        linger = if linger { "time.sleep(300)" } else { "" },
    )
}

fn escaped_pid(pidfile: &std::path::Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A descendant that leaves the task's group, session and pipe and then replaces its whole
/// environment (so no task mark is left on it) dies with its task: the task's cgroup (v2) holds
/// it. On a machine without cgroup v2 the mark is all there is, and this process would survive.
#[test]
fn a_descendant_that_also_clears_its_environment_dies_with_its_task_in_its_cgroup() {
    let probe = clearml_agent::exec::cgroup::TaskCgroup::create("probe-of-the-test");
    if probe.is_none() && !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: no cgroup v2 this user may write (CI runs as root, where it is)");
        return;
    }
    assert!(
        probe.is_some(),
        "as root, this machine must offer a cgroup v2"
    );
    drop(probe);
    let ctx = AgentContext::new();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    let pidfile = ctx.root().join("escaped-without-env");
    let task = ctx.script_task(
        "escapes and clears its environment",
        &escaping_script(&pidfile, false).replace(
            "time.sleep(300)\n        os._exit(0)",
            "os.execve('/bin/sleep', ['sleep', '300'], {})",
        ),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{t}\n{}", daemon.output());
    let pid = escaped_pid(&pidfile);
    wait_for(
        "the escaped process without a mark to die",
        Duration::from_secs(10),
        || !crate::context::alive(pid),
    );
}

/// A descendant that left the task's group, session and pipe dies when its task completes, and
/// when its task is aborted.
#[test]
fn a_descendant_that_escapes_the_session_dies_with_its_task() {
    let ctx = AgentContext::new();
    let daemon = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);

    let done_file = ctx.root().join("escaped-on-completion");
    let task = ctx.script_task(
        "escapes then completes",
        &escaping_script(&done_file, false),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{t}\n{}", daemon.output());
    let pid = escaped_pid(&done_file);
    wait_for(
        "the escaped process to die",
        Duration::from_secs(10),
        || !crate::context::alive(pid),
    );

    let abort_file = ctx.root().join("escaped-on-abort");
    let task = ctx.script_task(
        "escapes then is aborted",
        &escaping_script(&abort_file, true),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    ctx.wait_log(&task, |log| log.contains("escapee-is-running"), &daemon);
    let pid = escaped_pid(&abort_file);
    assert!(crate::context::alive(pid));
    ctx.server
        .call("tasks.stop", json!({ "task": task }))
        .unwrap();
    let t = ctx.wait_status(&task, &["stopped", "failed", "completed"], Some(&daemon));
    assert_eq!(t["status"], "stopped", "{}", daemon.output());
    wait_for(
        "the escaped process to die",
        Duration::from_secs(10),
        || !crate::context::alive(pid),
    );
}

/// The daemon killed with SIGKILL mid-task, then started again with the same worker id: the
/// task's processes (an escaped one too) are killed, and the abandoned task ends failed with a
/// reason that says the agent was restarted. Then the daemon serves.
#[test]
fn a_daemon_killed_mid_task_cleans_up_when_started_again() {
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_ID", "restarted-worker")
        .build();
    let pidfile = ctx.root().join("escaped");
    let task = ctx.script_task("outlives its agent", &escaping_script(&pidfile, true));
    ctx.server.enqueue(&task, "default").unwrap();
    let mut first = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    ctx.wait_log(&task, |log| log.contains("escapee-is-running"), &first);
    let escaped = escaped_pid(&pidfile);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(first.stop().is_none(), "killed by a signal");
    assert!(
        crate::context::alive(escaped),
        "the task outlives a SIGKILLed agent"
    );
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "in_progress");

    let second = ctx.daemon(&["--queue", "default", "--foreground", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["failed", "stopped", "completed"], Some(&second));
    assert_eq!(t["status"], "failed", "{}", second.output());
    let reason = t["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("restarted"), "{reason}");
    wait_for(
        "the abandoned task's processes to die",
        Duration::from_secs(10),
        || !crate::context::alive(escaped),
    );
    let next = ctx.script_task("after the restart", "print('serving')\n");
    ctx.server.enqueue(&next, "default").unwrap();
    let t = ctx.wait_status(&next, &["completed", "failed", "stopped"], Some(&second));
    assert_eq!(t["status"], "completed", "{}", second.output());
}

/// A package index that accepts connections and never answers: pip waits on it for ever.
/// SIGTERM to `daemon` ends it within 10 s, and `task` is not left running.
fn stops_within_10s_with_the_task_marked(ctx: &AgentContext, daemon: &mut Daemon, task: &str) {
    let asked = Instant::now();
    assert!(daemon.stop().is_some(), "no exit:\n{}", daemon.output());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let status = ctx.server.task(task).unwrap()["status"].clone();
    assert!(status != "in_progress", "{status}\n{}", daemon.output());
}

fn black_hole() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, hits)
}

/// SIGTERM to a daemon whose task is stuck in its venv build (pip waiting on an index that never
/// answers): the daemon exits within 10 s and the task is not left running.
#[test]
fn sigterm_during_a_venv_build_ends_the_daemon_quickly() {
    let (index, hits) = black_hole();
    let ctx = AgentContext::builder()
        .with_venvs()
        .env("PIP_INDEX_URL", &index)
        .env("PIP_DEFAULT_TIMEOUT", "600")
        .env("PIP_RETRIES", "0")
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "stuck installing",
            "script": {
                "binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "print('never')\n",
                "requirements": {"pip": "clearml-agent-rs-stuck-package==1.0"},
            }
        }))
        .unwrap();
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    wait_for("pip to reach the index", Duration::from_secs(120), || {
        hits.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    stops_within_10s_with_the_task_marked(&ctx, &mut daemon, &task);
}

/// SIGTERM to a daemon whose task waits for the vcs-cache lock another agent holds: the daemon
/// exits within 10 s.
#[test]
fn sigterm_during_a_git_lock_wait_ends_the_daemon_quickly() {
    let repo = crate::context::GitRepo::new();
    let ctx = AgentContext::new();
    let daemon_args = ["--queue", "default", "--cpu-only"];
    // A first task fills the vcs cache (and leaves its lock file).
    let first = ctx.repo_task("fills the cache", &repo.url(), &repo.c2, "");
    ctx.server.enqueue(&first, "default").unwrap();
    let mut daemon = ctx.daemon(&daemon_args);
    let t = ctx.wait_status(&first, &["completed", "failed"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    daemon.stop();
    // Another agent holds every lock of the cache.
    let held: Vec<std::fs::File> = std::fs::read_dir(ctx.root().join("vcs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .map(|e| {
            let f = std::fs::File::open(e.path()).unwrap();
            f.lock().unwrap();
            f
        })
        .collect();
    assert!(!held.is_empty(), "no lock file in the vcs cache");
    let second = ctx.repo_task("waits for the lock", &repo.url(), &repo.c2, "");
    ctx.server.enqueue(&second, "default").unwrap();
    let mut daemon = ctx.daemon(&daemon_args);
    ctx.wait_log(
        &second,
        |log| log.contains("lock for repo cache folder"),
        &daemon,
    );
    stops_within_10s_with_the_task_marked(&ctx, &mut daemon, &second);
}

/// A second SIGINT ends a daemon whose orderly shutdown is still waiting (here: for a task that
/// ignores SIGTERM... and SIGINT) at once.
#[test]
fn a_second_sigint_exits_at_once() {
    let ctx = AgentContext::new();
    let task = ctx.script_task(
        "stubborn",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('stubborn-up', flush=True)\ntime.sleep(300)\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |log| log.contains("stubborn-up"), &daemon);
    let pid = nix::unistd::Pid::from_raw(daemon.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let code = daemon.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(code, Some(130), "{}", daemon.output());
    assert!(
        daemon.output().contains("second signal"),
        "{}",
        daemon.output()
    );
}

/// SIGTERM while the server is away and a task runs: the daemon exits within 10 s (the final
/// status gives up its retries and the last lines get a short wait), keeps the task's final
/// status on disk, and its next start sets it once the server is back.
#[test]
fn a_final_status_the_server_missed_is_set_at_the_next_start() {
    let mut ctx = AgentContext::builder()
        .persistent()
        .env("CLEARML_WORKER_ID", "keeps-its-status")
        .build();
    let task = ctx.script_task(
        "outlasts the server",
        "import time\nprint('running-now', flush=True)\ntime.sleep(300)\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |log| log.contains("running-now"), &daemon);
    ctx.server.stop();
    let asked = Instant::now();
    assert!(daemon.stop().is_some(), "no exit:\n{}", daemon.output());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}\n{}",
        asked.elapsed(),
        daemon.output()
    );
    assert!(
        daemon.output().contains("set at the next start"),
        "{}",
        daemon.output()
    );
    ctx.server.restart().unwrap();
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "in_progress");

    let again = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["stopped", "failed", "completed"], Some(&again));
    assert_eq!(t["status"], "stopped", "{t}\n{}", again.output());
    assert_eq!(t["status_reason"], "user abort", "{t}");
}

/// Docker mode prepares on the host: SIGTERM while the host-side clone hangs (a git server that
/// accepts and never answers) ends the daemon within 10 s, the clone's git is killed, and the
/// task is marked, not left running.
#[test]
fn sigterm_during_a_docker_host_clone_ends_the_daemon_quickly() {
    let img = crate::docker::image();
    let (url, hits) = black_hole();
    let repo = url.replace("/simple", "/repo.git");
    let ctx = crate::docker::context().build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "stuck cloning",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "repository": repo, "branch": "main"},
        }))
        .unwrap();
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    wait_for("git to reach the server", Duration::from_secs(120), || {
        hits.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    stops_within_10s_with_the_task_marked(&ctx, &mut daemon, &task);
    let port = repo.split(':').nth(2).unwrap().split('/').next().unwrap();
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "the clone's processes outlived the daemon"
    );
}

/// SIGTERM while the engine pulls the task's image from a registry that never answers: the
/// daemon ends within 10 s and the task is marked.
#[test]
fn sigterm_during_an_image_pull_ends_the_daemon_quickly() {
    let img = crate::docker::image();
    let (url, hits) = black_hole();
    let registry = url
        .trim_start_matches("http://")
        .trim_end_matches("/simple")
        .to_string();
    let ctx = crate::docker::context().build();
    let task = crate::docker::docker_task(
        &ctx,
        "stuck pulling",
        "print('never')\n",
        json!({"image": format!("{registry}/never/pulled:1")}),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    wait_for(
        "the engine to reach the registry",
        Duration::from_secs(120),
        || hits.load(std::sync::atomic::Ordering::SeqCst) > 0,
    );
    stops_within_10s_with_the_task_marked(&ctx, &mut daemon, &task);
}

/// Docker mode: the daemon killed with SIGKILL while its task's container runs, then started
/// again with the same worker id: the container is removed and the abandoned task ends failed
/// with a reason that says the agent was restarted.
#[test]
fn a_docker_daemon_killed_mid_task_cleans_up_when_started_again() {
    let img = crate::docker::image();
    let worker = format!("restarted-docker-{}", std::process::id());
    let ctx = crate::docker::context()
        .env("CLEARML_WORKER_ID", &worker)
        .build();
    let task = crate::docker::docker_task(
        &ctx,
        "outlives its docker agent",
        "import time\nprint('container-is-running', flush=True)\ntime.sleep(300)\n",
        json!({}),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let args = ["--queue", "default", "--cpu-only", "--docker", img];
    let mut first = ctx.daemon(&args);
    ctx.wait_log(&task, |log| log.contains("container-is-running"), &first);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(first.stop().is_none(), "killed by a signal");
    assert_eq!(
        crate::docker::containers("clearml-task-id", &task).len(),
        1,
        "the container outlives a SIGKILLed agent"
    );
    let second = ctx.daemon(&args);
    let t = ctx.wait_status(&task, &["failed", "stopped", "completed"], Some(&second));
    assert_eq!(t["status"], "failed", "{}", second.output());
    let reason = t["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("restarted"), "{reason}");
    wait_for(
        "the container to be removed",
        Duration::from_secs(30),
        || crate::docker::containers("clearml-task-id", &task).is_empty(),
    );
}
