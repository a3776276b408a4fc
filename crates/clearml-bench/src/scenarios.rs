//! The measurements, run against one agent at a time on the shared test server: each returns
//! its figure or an error text, so one failed line never stops the run.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clearml_test_server::TestServer;
use serde_json::json;

use crate::agent::{Agent, Daemon};
use crate::docker_mode::{self, DockerResults, DockerSetup};
use crate::proctree;

/// Everything measured for one agent; `Err` holds why a line has no figure.
#[derive(Default)]
pub(crate) struct Results {
    pub help_s: Option<f64>,
    pub first_poll_s: Option<f64>,
    pub idle_rss_mib: Option<f64>,
    pub idle_rss_max_mib: Option<f64>,
    pub idle_cpu_s: Option<f64>,
    /// The same from clock ticks (`/proc/<pid>/stat`, 10 ms steps), as a cross-check.
    pub idle_cpu_ticks_s: Option<f64>,
    pub idle_calls_per_min: Option<f64>,
    pub idle_calls: BTreeMap<String, u64>,
    pub start_median_s: Option<f64>,
    pub start_samples: Vec<f64>,
    pub trivial_cold_s: Option<f64>,
    pub trivial_warm_s: Option<f64>,
    pub trivial_warm_samples: Vec<f64>,
    pub lines_stored: Option<usize>,
    pub lines_exit_to_last_s: Option<f64>,
    pub abort_s: Option<f64>,
    pub abort_samples: Vec<f64>,
    /// API calls per minute while a quiet task runs (the task itself makes none).
    pub running_calls_per_min: Option<f64>,
    pub running_calls: BTreeMap<String, u64>,
    pub batch_s: Option<f64>,
    pub batch_done: usize,
    pub docker: Option<DockerResults>,
    pub flood: Option<crate::flood::FloodResults>,
    /// The SDK-task lines (`sdk`).
    pub sdk: Option<crate::sdk_tasks::SdkResults>,
    pub errors: Vec<String>,
    /// Load averages when this agent's part of the run started.
    pub load_start: String,
}

/// How much work each line does (the minimums unless reduced on purpose).
pub(crate) struct Plan {
    pub idle: Duration,
    pub starts: usize,
    pub lines: usize,
    pub batch: usize,
    pub batch_timeout: Duration,
    pub task_timeout: Duration,
    /// Which lines to run (`--lines-to-run idle,docker`); empty runs them all.
    pub selected: Vec<String>,
}

impl Plan {
    /// Whether the line named `what` (help, idle, trivial, starts, lines, abort, batch, docker,
    /// flood, sdk) runs.
    pub(crate) fn wants(&self, what: &str) -> bool {
        self.selected.is_empty() || self.selected.iter().any(|s| s == what)
    }
}

pub(crate) fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A task whose code is a literal script (as `clearml-task --script` makes), no requirements.
pub(crate) fn script_task(server: &TestServer, name: &str, script: &str) -> anyhow::Result<String> {
    server.create_task(json!({
        "name": name,
        "script": {
            "binary": "python3",
            "entry_point": "task.py",
            "working_dir": ".",
            "diff": script,
        }
    }))
}

pub(crate) fn status(server: &TestServer, task: &str) -> String {
    server
        .task(task)
        .ok()
        .and_then(|t| t["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) const FINAL: [&str; 3] = ["completed", "failed", "stopped"];

/// Waits until the task is final; returns the status and when it was seen.
pub(crate) fn wait_final(
    server: &TestServer,
    task: &str,
    daemon: &mut Daemon,
    timeout: Duration,
) -> anyhow::Result<(String, Instant)> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = status(server, task);
        if FINAL.contains(&s.as_str()) {
            return Ok((s, Instant::now()));
        }
        if !daemon.running() {
            bail!("the daemon exited; log tail:\n{}", daemon.log_tail());
        }
        if Instant::now() > deadline {
            bail!("task {task} still '{s}' after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `--help`, five runs, median wall time.
pub(crate) fn help(agent: &Agent) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let st = agent
            .command(&["--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("--help exited {st}");
        }
        times.push(t.elapsed().as_secs_f64());
    }
    median(&mut times).ok_or_else(|| anyhow!("no sample"))
}

/// Starts the daemon and returns it with the time to its first `queues.get_next_task`.
pub(crate) fn start_daemon(server: &TestServer, agent: &Agent) -> anyhow::Result<(Daemon, f64)> {
    server.reset_calls();
    let t = Instant::now();
    let mut d = agent.daemon(&[], "daemon.log")?;
    loop {
        if server.calls("queues.get_next_task") > 0 {
            return Ok((d, t.elapsed().as_secs_f64()));
        }
        if !d.running() {
            bail!("the daemon exited; log tail:\n{}", d.log_tail());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "no queues.get_next_task within 120 s; log tail:\n{}",
                d.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Idle daemon: mean and max RSS of the tree, CPU seconds and API calls over `plan.idle`.
pub(crate) fn idle(server: &TestServer, d: &mut Daemon, plan: &Plan, r: &mut Results) {
    std::thread::sleep(Duration::from_secs(5));
    let hz = proctree::ticks_per_sec();
    server.reset_calls();
    let t0 = Instant::now();
    let c0 = proctree::cpu_ticks(d.pid());
    let mut meter = proctree::CpuMeter::default();
    meter.sample(d.pid());
    let mut rss = Vec::new();
    while t0.elapsed() < plan.idle {
        rss.push(proctree::rss_bytes(d.pid()) as f64 / (1024.0 * 1024.0));
        std::thread::sleep(Duration::from_secs(1));
        meter.sample(d.pid());
    }
    let c1 = proctree::cpu_ticks(d.pid());
    let secs = t0.elapsed().as_secs_f64();
    let counts = server.call_counts();
    let total: u64 = counts.values().sum();
    r.idle_cpu_s = Some(meter.seconds());
    r.idle_cpu_ticks_s = Some(c1.saturating_sub(c0) as f64 / hz);
    r.idle_rss_mib = Some(rss.iter().sum::<f64>() / rss.len().max(1) as f64);
    r.idle_rss_max_mib = rss.iter().copied().reduce(f64::max);
    r.idle_calls_per_min = Some(total as f64 * 60.0 / secs);
    r.idle_calls = counts;
}

/// One `print('hello')` task, enqueue to final status.
pub(crate) fn trivial(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    label: &str,
) -> anyhow::Result<f64> {
    let task = script_task(server, &format!("trivial {label}"), "print('hello')\n")?;
    let t = Instant::now();
    server.enqueue(&task, &agent.queue())?;
    let (s, at) = wait_final(server, &task, d, plan.task_timeout)?;
    if s != "completed" {
        bail!("ended {s}: {}", log_tail(server, &task));
    }
    Ok(at.duration_since(t).as_secs_f64())
}

/// The trivial task again with warm caches, `WARM_SAMPLES` times, each enqueued at a moment
/// spread over one poll interval after the previous one ended: both agents poll again at once
/// after a task, so an enqueue right after the final status would measure only who wins that
/// race.
pub(crate) fn warm(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    poll: f64,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    for i in 0..WARM_SAMPLES {
        let phase = poll * (i as f64 + 0.5) / WARM_SAMPLES as f64;
        std::thread::sleep(Duration::from_secs_f64(phase));
        samples.push(trivial(server, agent, d, plan, &format!("warm {i}"))?);
    }
    Ok(samples)
}

pub(crate) const WARM_SAMPLES: usize = 5;

pub(crate) fn log_tail(server: &TestServer, task: &str) -> String {
    let text = server.log_text(task).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// Enqueue to the task's first statement, idle agent, `plan.starts` times. The enqueue moment is
/// spread evenly over the poll interval so both agents see the same phases.
pub(crate) fn starts(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    poll: f64,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    for i in 0..plan.starts {
        let stamp = agent.root().join(format!("start-{i}"));
        let script = format!(
            "import time\nopen({:?}, 'w').write(repr(time.time()))\nprint('started')\n",
            stamp.display().to_string()
        );
        let task = script_task(server, &format!("start {i}"), &script)?;
        let phase = poll * (i as f64 + 0.5) / plan.starts as f64;
        std::thread::sleep(Duration::from_secs_f64(phase));
        let enqueued = now_epoch();
        server.enqueue(&task, &agent.queue())?;
        let (s, _) = wait_final(server, &task, d, plan.task_timeout)?;
        let started: f64 = std::fs::read_to_string(&stamp)
            .with_context(|| format!("task ended {s} without writing its start stamp"))?
            .trim()
            .parse()?;
        samples.push(started - enqueued);
    }
    Ok(samples)
}

/// A task printing `plan.lines` lines: distinct lines stored, and the time from the task's exit
/// (a stamp written after the last print) to the last line stored.
pub(crate) fn lines(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
) -> anyhow::Result<(usize, Option<f64>)> {
    let stamp = agent.root().join("lines-exit");
    let script = format!(
        "import sys, time\nfor i in range({n}):\n    print(f'bench line {{i}}')\n\
         sys.stdout.flush()\nopen({p:?}, 'w').write(repr(time.time()))\n",
        n = plan.lines,
        p = stamp.display().to_string()
    );
    let task = script_task(server, "lines", &script)?;
    server.enqueue(&task, &agent.queue())?;
    let deadline = Instant::now() + plan.task_timeout;
    while !stamp.exists() {
        if Instant::now() > deadline || !d.running() {
            bail!(
                "the task never finished printing (status {})",
                status(server, &task)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut count = 0usize;
    let mut last_change = Instant::now();
    loop {
        // Events are rescanned in full each time: one that arrives late may sort before others.
        let mut seen = vec![false; plan.lines];
        let mut now_count = 0usize;
        for e in server.log_events(&task)? {
            for line in e["msg"].as_str().unwrap_or_default().lines() {
                if let Some(i) = line
                    .trim()
                    .strip_prefix("bench line ")
                    .and_then(|n| n.parse::<usize>().ok())
                    && i < seen.len()
                    && !seen[i]
                {
                    seen[i] = true;
                    now_count += 1;
                }
            }
        }
        if now_count != count {
            count = now_count;
            last_change = Instant::now();
        }
        if count == plan.lines {
            break;
        }
        let fin = FINAL.contains(&status(server, &task).as_str());
        if fin && last_change.elapsed() > Duration::from_secs(15) {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_epoch = now_epoch() - last_change.elapsed().as_secs_f64();
    let exited: f64 = std::fs::read_to_string(&stamp)?.trim().parse()?;
    let _ = wait_final(server, &task, d, plan.task_timeout);
    Ok((count, (count > 0).then_some(last_epoch - exited)))
}

/// `tasks.stop` on a running task (a python process with a `sleep` child) to its tree gone,
/// `ABORT_SAMPLES` times, the stop sent at moments spread evenly over one poll interval. Both
/// agents notice a stop at their next status poll, whose phase the benchmark cannot see: over
/// evenly spread moments the mean wait is half an interval whatever that phase is, while a
/// median (or a fixed delay) would depend on it.
pub(crate) fn abort(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    poll: f64,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    for k in 0..ABORT_SAMPLES {
        let delay = 1.0 + poll * (k as f64 + 0.5) / ABORT_SAMPLES as f64;
        samples.push(abort_once(server, agent, d, plan, k, delay)?);
    }
    Ok(samples)
}

pub(crate) const ABORT_SAMPLES: usize = 6;

/// A quiet running task (one line, then a long sleep; no SDK inside): every API call the server
/// receives over `plan.idle`, from 10 s after the task's first line on (past its start-up
/// calls), per minute and by endpoint. This is what each agent spends to watch a running task:
/// the budget of the abort line.
pub(crate) fn running(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
) -> anyhow::Result<(f64, BTreeMap<String, u64>)> {
    let marker = agent.root().join("running-started");
    let script = format!(
        "import time\nopen({p:?}, 'w').write('1')\nprint('running', flush=True)\ntime.sleep(900)\n",
        p = marker.display().to_string()
    );
    let task = script_task(server, "running quiet", &script)?;
    server.enqueue(&task, &agent.queue())?;
    let deadline = Instant::now() + plan.task_timeout;
    while !marker.exists() || status(server, &task) != "in_progress" {
        if Instant::now() > deadline || !d.running() {
            bail!("the task never started (status {})", status(server, &task));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(10));
    server.reset_calls();
    let t0 = Instant::now();
    std::thread::sleep(plan.idle);
    let counts = server.call_counts();
    let secs = t0.elapsed().as_secs_f64();
    let total: u64 = counts.values().sum();
    server
        .call("tasks.stop", json!({"task": task}))
        .map_err(|e| anyhow!("tasks.stop: {e:?}"))?;
    let _ = wait_final(server, &task, d, plan.task_timeout);
    Ok((total as f64 * 60.0 / secs, counts))
}

/// The mean of the samples.
pub(crate) fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn abort_once(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    k: usize,
    delay: f64,
) -> anyhow::Result<f64> {
    let pidfile = agent.root().join(format!("abort-pids-{k}"));
    let script = format!(
        "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n\
         open({p:?}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\nprint('running', flush=True)\n\
         time.sleep(300)\n",
        p = pidfile.display().to_string()
    );
    let task = script_task(server, &format!("abort {k}"), &script)?;
    server.enqueue(&task, &agent.queue())?;
    let deadline = Instant::now() + plan.task_timeout;
    while !pidfile.exists() || status(server, &task) != "in_progress" {
        if Instant::now() > deadline || !d.running() {
            bail!("the task never started (status {})", status(server, &task));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs_f64(delay));
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut all: Vec<i32> = pids.iter().flat_map(|p| proctree::tree(*p)).collect();
    all.sort_unstable();
    all.dedup();
    if all.is_empty() {
        bail!("the task's processes were gone before the stop");
    }
    let t = Instant::now();
    server
        .call("tasks.stop", json!({"task": task}))
        .map_err(|e| anyhow!("tasks.stop: {e:?}"))?;
    while all.iter().any(|p| proctree::alive(*p)) {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the task's processes outlived the stop by 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed().as_secs_f64();
    let _ = wait_final(server, &task, d, plan.task_timeout);
    Ok(took)
}

/// `plan.batch` trivial tasks enqueued at once: time until all are final.
pub(crate) fn batch(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
) -> anyhow::Result<(usize, f64)> {
    let mut tasks = Vec::new();
    for i in 0..plan.batch {
        tasks.push(script_task(
            server,
            &format!("batch {i}"),
            "print('hello')\n",
        )?);
    }
    let t = Instant::now();
    for task in &tasks {
        server.enqueue(task, &agent.queue())?;
    }
    let mut done = 0;
    let mut i = 0;
    loop {
        while i < tasks.len() && FINAL.contains(&status(server, &tasks[i]).as_str()) {
            done += 1;
            i += 1;
        }
        if done == tasks.len() || t.elapsed() > plan.batch_timeout || !d.running() {
            return Ok((done, t.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the selected lines for one agent, in order: start, idle, cold/warm trivial, starts,
/// lines, abort, batch, then docker mode (its own daemon) when `docker` is set up.
pub(crate) fn run_all(
    server: &TestServer,
    agent: &Agent,
    plan: &Plan,
    poll: f64,
    docker: Option<&DockerSetup>,
) -> Results {
    let mut r = Results {
        load_start: proctree::loadavg(),
        ..Results::default()
    };
    let note = |r: &mut Results, what: &str, e: anyhow::Error| {
        eprintln!("[bench] {}: {what} failed: {e:#}", agent.name);
        r.errors.push(format!("{what}: {e:#}"));
    };
    if plan.wants("help") {
        eprintln!("[bench] {}: --help", agent.name);
        match help(agent) {
            Ok(v) => r.help_s = Some(v),
            Err(e) => note(&mut r, "--help", e),
        }
    }
    eprintln!("[bench] {}: daemon start", agent.name);
    let mut d = match start_daemon(server, agent) {
        Ok((d, v)) => {
            r.first_poll_s = Some(v);
            d
        }
        Err(e) => {
            note(&mut r, "daemon start", e);
            return r;
        }
    };
    if plan.wants("idle") {
        eprintln!("[bench] {}: idle {:?}", agent.name, plan.idle);
        idle(server, &mut d, plan, &mut r);
    }
    if plan.wants("trivial") {
        eprintln!("[bench] {}: trivial cold/warm", agent.name);
        match trivial(server, agent, &mut d, plan, "cold") {
            Ok(v) => r.trivial_cold_s = Some(v),
            Err(e) => note(&mut r, "trivial task (cold)", e),
        }
        match warm(server, agent, &mut d, plan, poll) {
            Ok(mut v) => {
                r.trivial_warm_s = median(&mut v);
                r.trivial_warm_samples = v;
            }
            Err(e) => note(&mut r, "trivial task (warm)", e),
        }
    }
    if plan.wants("starts") {
        eprintln!("[bench] {}: enqueue to start x{}", agent.name, plan.starts);
        match starts(server, agent, &mut d, plan, poll) {
            Ok(mut v) => {
                r.start_median_s = median(&mut v);
                r.start_samples = v;
            }
            Err(e) => note(&mut r, "enqueue to start", e),
        }
    }
    if plan.wants("lines") {
        eprintln!("[bench] {}: {} lines", agent.name, plan.lines);
        match lines(server, agent, &mut d, plan) {
            Ok((n, t)) => {
                r.lines_stored = Some(n);
                r.lines_exit_to_last_s = t;
            }
            Err(e) => note(&mut r, "log lines", e),
        }
    }
    if plan.wants("running") {
        eprintln!("[bench] {}: running task, API calls", agent.name);
        match running(server, agent, &mut d, plan) {
            Ok((per_min, counts)) => {
                r.running_calls_per_min = Some(per_min);
                r.running_calls = counts;
            }
            Err(e) => note(&mut r, "running task API calls", e),
        }
    }
    if plan.wants("abort") {
        eprintln!("[bench] {}: abort", agent.name);
        match abort(server, agent, &mut d, plan, poll) {
            Ok(v) => {
                r.abort_s = mean(&v);
                r.abort_samples = v;
            }
            Err(e) => note(&mut r, "abort", e),
        }
    }
    if plan.wants("batch") {
        eprintln!("[bench] {}: batch of {}", agent.name, plan.batch);
        match batch(server, agent, &mut d, plan) {
            Ok((n, t)) => {
                r.batch_done = n;
                r.batch_s = Some(t);
                if n < plan.batch {
                    r.errors.push(format!(
                        "batch: {n}/{} tasks final after {t:.0} s (time limit {:?})",
                        plan.batch, plan.batch_timeout
                    ));
                }
            }
            Err(e) => note(&mut r, "batch", e),
        }
    }
    d.stop();
    if let Some(setup) = docker.filter(|_| plan.wants("docker")) {
        eprintln!("[bench] {}: docker mode", agent.name);
        match docker_mode::run(server, agent, plan, poll, setup) {
            Ok(v) => r.docker = Some(v),
            Err(e) => note(&mut r, "docker mode", e),
        }
    }
    if let Some(setup) = docker.filter(|_| plan.wants("flood")) {
        eprintln!(
            "[bench] {}: docker mode output flood, 2 x {:?}",
            agent.name,
            crate::flood::FLOOD
        );
        let (v, errors) = crate::flood::run(server, agent, plan, setup);
        for e in errors {
            note(&mut r, "output flood", anyhow!(e));
        }
        r.flood = Some(v);
    }
    r
}
