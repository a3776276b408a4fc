//! Background agents: `--detached` started and `--stop`ped by the same command line, the local
//! registry (stale files, several agents with different `--gpus`), the SIGUSR1 drain,
//! `--uptime`/`--downtime` gating the pulls, and what the status reports carry.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::context::{AgentContext, Daemon, TASK_TIMEOUT, alive};

const NAME: &str = "bgtest";

fn ctx() -> AgentContext {
    AgentContext::builder()
        .env("CLEARML_WORKER_NAME", NAME)
        .build()
}

fn run(ctx: &AgentContext, args: &[&str]) -> Output {
    let mut full = vec!["daemon"];
    full.extend_from_slice(args);
    ctx.command(&full).output().expect("agent runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Polls `f` until it returns Some (bounded by the task timeout); `what` names it on failure.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TASK_TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn worker(ctx: &AgentContext, id: &str) -> Option<Value> {
    ctx.server
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w["id"] == id)
}

/// The registry files in the agents' temp dir: (path, pid in the name, contents).
fn registry_files(ctx: &AgentContext) -> Vec<(PathBuf, i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(ctx.root().join("tmp")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix(".clearmlagent_")
            && name.ends_with(".tmp")
        {
            let pid = rest.split('_').next().unwrap().parse().unwrap();
            out.push((e.path(), pid, std::fs::read_to_string(e.path()).unwrap()));
        }
    }
    out
}

fn long_task(ctx: &AgentContext) -> String {
    ctx.script_task(
        "long",
        "import time\nprint('running', flush=True)\ntime.sleep(300)\n",
    )
}

fn wait_running(ctx: &AgentContext, task: &str) {
    wait_for("the task to print 'running'", || {
        ctx.server
            .log_text(task)
            .ok()
            .filter(|l| l.contains("running"))
    });
}

#[test]
fn detached_agent_is_stopped_by_the_same_command_line() {
    let ctx = ctx();
    let task = long_task(&ctx);
    ctx.server.enqueue(&task, "default").unwrap();
    let args = ["--queue", "default", "--cpu-only"];

    let mut detached = args.to_vec();
    detached.push("--detached");
    let out = run(&ctx, &detached);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let log: PathBuf = shown
        .split("writing stdout/stderr to ")
        .nth(1)
        .expect("the launcher says where the output goes")
        .trim()
        .into();
    assert!(log.starts_with(ctx.root().join("tmp")), "{}", log.display());
    assert!(
        log.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".clearml_agent_daemon_out")
    );

    wait_running(&ctx, &task);
    let files = registry_files(&ctx);
    assert_eq!(files.len(), 1, "{files:?}");
    let (file, pid, content) = files[0].clone();
    // The pid file names the daemon itself, not the launcher that exited.
    assert!(alive(pid), "registered pid {pid} is not running");
    let worker_id = format!("{NAME}:cpu:0");
    assert_eq!(content, format!("{worker_id}\n0"));
    assert!(worker(&ctx, &worker_id).is_some());
    let daemon_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        daemon_log.contains(&format!("Worker \"{worker_id}\"")),
        "{daemon_log}"
    );

    let mut stop = args.to_vec();
    stop.push("--stop");
    let out = run(&ctx, &stop);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "Terminating clearml-agent worker_id={worker_id} pid={pid}"
        )),
        "{}",
        text(&out)
    );
    assert!(!alive(pid), "the daemon survived --stop");
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(
        t["status"],
        "stopped",
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        worker(&ctx, &worker_id).is_none(),
        "the worker is still registered"
    );
    assert!(!file.exists(), "the registry file outlived its agent");

    let out = run(&ctx, &stop);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&format!(
        "Could not find a running clearml-agent instance with worker_name={NAME}:cpu worker_id=None"
    )));
}

#[test]
fn detached_duplicate_worker_id_fails_on_the_terminal() {
    if too_few_gpus(1) {
        return;
    }
    let ctx = ctx();
    let first = daemon_gpus(&ctx, "0");
    let id = format!("{NAME}:gpu0");
    wait_for("the first agent", || worker(&ctx, &id));
    let out = run(&ctx, &["--queue", "default", "--gpus", "0", "--detached"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "an agent with worker id \"{id}\" is already running"
        )),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("writing stdout/stderr"));
    assert!(alive(first.pid()));
}

#[test]
fn stale_registry_files_are_ignored_and_cleaned() {
    let ctx = ctx();
    // A pid that surely ended: a process we started and reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = ctx
        .root()
        .join("tmp")
        .join(format!(".clearmlagent_{dead}_stale123.tmp"));
    std::fs::write(&stale, format!("{NAME}:cpu:0\n0")).unwrap();

    let out = run(&ctx, &["--queue", "default", "--cpu-only", "--stop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Could not find a running clearml-agent instance"));
    assert!(!stale.exists(), "--stop left the stale file");

    // A new agent takes the dead agent's slot and worker id.
    std::fs::write(&stale, format!("{NAME}:cpu:0\n0")).unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let id = format!("{NAME}:cpu:0");
    wait_for("the worker to register", || worker(&ctx, &id));
    assert!(!stale.exists());
    let out = run(&ctx, &["--queue", "default", "--stop", &id]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.output());
    assert!(!alive(d.pid()), "{}", d.output());
    assert!(worker(&ctx, &id).is_none());
}

#[test]
fn drain_finishes_the_running_task_then_exits() {
    let ctx = ctx();
    let release = ctx.root().join("release");
    let first = ctx.script_task(
        "first",
        &format!(
            "import os, time\nprint('running', flush=True)\n\
             while not os.path.exists({r:?}):\n    time.sleep(0.05)\nprint('finished')\n",
            r = release.display().to_string()
        ),
    );
    let second = ctx.script_task("second", "print('second ran')\n");
    ctx.server.enqueue(&first, "default").unwrap();
    let mut d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    wait_running(&ctx, &first);
    ctx.server.enqueue(&second, "default").unwrap();
    kill(Pid::from_raw(d.pid()), Signal::SIGUSR1).unwrap();
    wait_for("the drain to be acknowledged", || {
        d.output().contains("Drain requested").then_some(())
    });
    std::fs::write(&release, "").unwrap();
    let status = wait_for("the daemon to exit", || d.child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0), "{}", d.output());
    let t = ctx.server.task(&first).unwrap();
    assert_eq!(t["status"], "completed", "{}", d.output());
    assert!(ctx.server.log_text(&first).unwrap().contains("finished"));
    assert_eq!(ctx.server.task(&second).unwrap()["status"], "queued");
    assert!(worker(&ctx, &format!("{NAME}:cpu:0")).is_none());
    assert!(registry_files(&ctx).is_empty());
}

/// True when NVML shows fewer than `n` GPUs: `--gpus` naming a missing GPU is then refused, so
/// tests that name GPU indices only run where NVML is absent (no check) or has enough GPUs.
fn too_few_gpus(n: usize) -> bool {
    let few = clearml_agent::gpu::devices().is_some_and(|d| d.len() < n);
    if few {
        eprintln!("skipped: NVML shows fewer than {n} GPUs");
    }
    few
}

fn daemon_gpus(ctx: &AgentContext, gpus: &str) -> Daemon {
    ctx.daemon(&["--queue", "default", "--gpus", gpus])
}

#[test]
fn two_agents_with_different_gpus_have_distinct_worker_ids() {
    if too_few_gpus(2) {
        return;
    }
    let ctx = ctx();
    let a = daemon_gpus(&ctx, "0");
    let b = daemon_gpus(&ctx, "1");
    for id in ["gpu0", "gpu1"] {
        let id = format!("{NAME}:{id}");
        wait_for(&id, || worker(&ctx, &id));
    }
    let mut files: Vec<String> = registry_files(&ctx).into_iter().map(|f| f.2).collect();
    files.sort();
    // Slots are distinct too (they pick the cache folders).
    let slots: Vec<&str> = files
        .iter()
        .map(|f| f.rsplit('\n').next().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}\n{}\n{}", a.output(), b.output());
    assert_ne!(slots[0], slots[1]);

    let out = run(&ctx, &["--queue", "default", "--status"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(
        shown.contains("  - Listening to queue 'default'"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("worker_id={NAME}:gpu0 pid={}", a.pid())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("worker_id={NAME}:gpu1 pid={}", b.pid())),
        "{shown}"
    );

    // `--stop` with the same --gpus finds exactly that agent.
    let out = run(&ctx, &["--queue", "default", "--gpus", "1", "--stop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("worker_id={NAME}:gpu1 pid={}", b.pid())));
    assert!(!alive(b.pid()));
    assert!(alive(a.pid()));
    assert!(worker(&ctx, &format!("{NAME}:gpu0")).is_some());
}

/// Today's weekday in UTC, 0 = Sunday (1970-01-01 was a Thursday).
fn utc_weekday() -> u64 {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    (days + 4) % 7
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[test]
fn outside_uptime_nothing_is_pulled_and_downtime_elsewhere_allows_it() {
    // Three days ahead: never today, whatever the hour.
    let other_day = DAYS[((utc_weekday() + 3) % 7) as usize];
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_NAME", NAME)
        .env("TZ", "UTC")
        .build();
    let task = ctx.script_task("scheduled", "print('ran')\n");
    ctx.server.enqueue(&task, "default").unwrap();
    let window = format!("1-24 {other_day}");
    let mut d = ctx.daemon(&["--queue", "default", "--cpu-only", "--uptime", &window]);
    wait_for("the schedule message", || {
        d.output().contains("Outside working hours").then_some(())
    });
    assert_eq!(
        ctx.server.calls("queues.get_next_task"),
        0,
        "{}",
        d.output()
    );
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "queued");
    d.stop();

    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--downtime", &window]);
    ctx.wait_status(&task, &["completed"], Some(&d));
}

#[test]
fn status_reports_carry_child_tags_and_no_gpu_fields_without_nvml() {
    let ctx = ctx();
    let task = ctx.script_task(
        "tags",
        "import os\nprint('tags=' + os.environ.get('CLEARML_WORKER_TAGS', ''))\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&[
        "--queue",
        "default",
        "--cpu-only",
        "--child-report-tags",
        "alpha",
        "be ta",
    ]);
    ctx.wait_status(&task, &["completed"], Some(&d));
    // Shell words, as the Python agent writes them (shlex.quote).
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("tags=alpha 'be ta'"), "{log}");
    let id = format!("{NAME}:cpu:0");
    let w = wait_for("a report with machine stats", || {
        worker(&ctx, &id).filter(|w| w["machine_stats"].is_object())
    });
    assert_eq!(w["tags"], serde_json::json!(["alpha", "be ta"]), "{w}");
    let stats = w["machine_stats"].as_object().unwrap();
    assert!(stats.contains_key("memory_used"), "{w}");
    // This machine has no NVML library: no GPU field at all, and the daemon kept running.
    assert!(
        stats.keys().all(|k| !k.starts_with("gpu_")),
        "GPU fields without a GPU: {w}"
    );
    assert!(alive(d.pid()));
}

#[test]
fn services_mode_runs_tasks_at_once_up_to_its_limit() {
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_NAME", NAME)
        .env("CLEARML_AGENT_STATUS_REPORT_FREQ_SEC", "1")
        .build();
    let dir = ctx.root().join("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let release = ctx.root().join("release");
    // Each task announces itself, then waits for the other one and for the release: run one at
    // a time, they would never finish.
    let mk = |me: &str, other: &str| {
        ctx.script_task(
            &format!("service {me}"),
            &format!(
                "import os, time\nd = {d:?}\nopen(os.path.join(d, {me:?}), 'w').write(os.environ['CLEARML_WORKER_ID'])\n\
                 print('running', flush=True)\n\
                 while not (os.path.exists(os.path.join(d, {other:?})) and os.path.exists({r:?})):\n    time.sleep(0.05)\n\
                 print('both ran')\n",
                d = dir.display().to_string(),
                r = release.display().to_string(),
            ),
        )
    };
    let a = mk("a", "b");
    let b = mk("b", "a");
    let c = ctx.script_task("third", "print('third')\n");
    for t in [&a, &b, &c] {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let d = ctx.daemon(&[
        "--queue",
        "default",
        "--services-mode",
        "2",
        "--child-report-tags",
        "svc",
    ]);
    wait_running(&ctx, &a);
    wait_running(&ctx, &b);
    // At the limit: the third task is not pulled while both run.
    assert_eq!(
        ctx.server.task(&c).unwrap()["status"],
        "queued",
        "{}",
        d.output()
    );
    // Each service builds in a venvs folder of its own (`<venvs_dir>.<slot>`): sharing one,
    // the second task's script would replace the first's.
    let id = std::fs::read_to_string(dir.join("a")).unwrap();
    assert_eq!(id, format!("{NAME}:cpu:0:service:{a}"));
    // --child-report-tags reach the services (their reports carry them); the services-mode
    // daemon's own reports do not (mirrors Worker.new_monitor).
    wait_for("the service's tagged report", || {
        worker(&ctx, &id).filter(|w| w["tags"] == serde_json::json!(["svc"]))
    });
    let own = wait_for("the daemon's report", || {
        worker(&ctx, &format!("{NAME}:cpu:0"))
    });
    assert_ne!(own["tags"], serde_json::json!(["svc"]), "{own}");
    std::fs::write(&release, "").unwrap();
    for t in [&a, &b, &c] {
        ctx.wait_status(t, &["completed"], Some(&d));
    }
    assert!(ctx.server.log_text(&a).unwrap().contains("both ran"));
}

#[test]
fn dynamic_gpus_allocate_by_queue_and_release() {
    if too_few_gpus(4) {
        return;
    }
    let ctx = ctx();
    let dir = ctx.root().join("gpus");
    std::fs::create_dir_all(&dir).unwrap();
    let release = ctx.root().join("release");
    let mk = |name: &str, wait: bool| {
        let wait = if wait {
            format!(
                "while not os.path.exists({r:?}):\n    time.sleep(0.05)\n",
                r = release.display().to_string()
            )
        } else {
            String::new()
        };
        ctx.script_task(
            name,
            &format!(
                "import os, time\n\
                 open(os.path.join({d:?}, {name:?}), 'w').write(os.environ['NVIDIA_VISIBLE_DEVICES'] + ' ' + os.environ['CUDA_VISIBLE_DEVICES'] + ' ' + os.environ['CLEARML_WORKER_ID'])\n\
                 print('running', flush=True)\n{wait}",
                d = dir.display().to_string(),
            ),
        )
    };
    let dual1 = mk("dual1", true);
    let dual2 = mk("dual2", true);
    let quad = mk("quad", false);
    ctx.server.enqueue(&dual1, "dual_gpu").unwrap();
    ctx.server.enqueue(&dual2, "dual_gpu").unwrap();
    ctx.server.enqueue(&quad, "quad_gpu").unwrap();
    let d = ctx.daemon(&[
        "--gpus",
        "0-3",
        "--dynamic-gpus",
        "--queue",
        "dual_gpu=2",
        "quad_gpu=4",
    ]);
    wait_running(&ctx, &dual1);
    wait_running(&ctx, &dual2);
    wait_for("the agent's worker", || {
        worker(&ctx, &format!("{NAME}:dgpu0,1,2,3"))
    });
    let seen = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    assert_eq!(seen("dual1"), format!("0,1 0,1 {NAME}:gpu0,1"));
    assert_eq!(seen("dual2"), format!("2,3 2,3 {NAME}:gpu2,3"));
    // All four GPUs are taken: the quad task waits.
    assert_eq!(
        ctx.server.task(&quad).unwrap()["status"],
        "queued",
        "{}",
        d.output()
    );
    std::fs::write(&release, "").unwrap();
    ctx.wait_status(&quad, &["completed"], Some(&d));
    assert_eq!(seen("quad"), format!("0,1,2,3 0,1,2,3 {NAME}:gpu0,1,2,3"));
    for t in [&dual1, &dual2] {
        assert_eq!(ctx.server.task(t).unwrap()["status"], "completed");
    }
}

#[test]
fn bad_background_arguments_are_one_line_errors() {
    let ctx = ctx();
    for (args, wanted) in [
        (
            &["--queue", "q=2", "--dynamic-gpus"][..],
            "--dynamic-gpus needs the GPUs to allocate from",
        ),
        (
            &[
                "--queue",
                "q=2",
                "--dynamic-gpus",
                "--gpus",
                "0-1",
                "--services-mode",
            ][..],
            "Combining --dynamic-gpus and --services-mode is not supported",
        ),
        (
            &["--queue", "q", "--uptime", "17-20"][..],
            "is not \"<hours> <days>\"",
        ),
    ] {
        let out = run(&ctx, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("clearml_agent: ERROR: "), "{err}");
        assert!(err.contains(wanted), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn stopping_a_services_agent_stops_every_service_task() {
    let ctx = ctx();
    let tasks: Vec<String> = (1..=2)
        .map(|i| {
            ctx.script_task(
                &format!("svc{i}"),
                "import time\nprint('running', flush=True)\ntime.sleep(300)\n",
            )
        })
        .collect();
    for t in &tasks {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let mut d = ctx.daemon(&["--queue", "default", "--services-mode"]);
    for t in &tasks {
        wait_running(&ctx, t);
    }
    assert_eq!(d.stop(), Some(0), "{}", d.output());
    for t in &tasks {
        let task = ctx.server.task(t).unwrap();
        assert_eq!(task["status"], "stopped", "{}", d.output());
    }
    assert!(ctx.server.workers().unwrap().is_empty());
    assert!(registry_files(&ctx).is_empty());
}

/// A monitored `execute` reports the tags a daemon passed down in `CLEARML_WORKER_TAGS` (mirrors
/// ResourceMonitor).
#[test]
fn monitored_execute_reports_the_tags_it_was_given() {
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_NAME", NAME)
        .env("CLEARML_WORKER_TAGS", "gamma 'del ta'")
        .env("CLEARML_AGENT_STATUS_REPORT_FREQ_SEC", "1")
        .build();
    let release = ctx.root().join("release");
    let task = ctx.script_task(
        "tagged execute",
        &format!(
            "import os, time\nwhile not os.path.exists({r:?}):\n    time.sleep(0.05)\nprint('released')\n",
            r = release.display().to_string()
        ),
    );
    let mut child = ctx
        .command(&["execute", "--id", &task, "--full-monitoring"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let w = wait_for("the execute worker's report", || {
        ctx.server
            .workers()
            .unwrap()
            .into_iter()
            .find(|w| w["tags"] == serde_json::json!(["gamma", "del ta"]))
    });
    std::fs::write(&release, "").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(w["id"].as_str().unwrap_or("").starts_with(NAME), "{w}");
}
