//! The output-flood line: the daemon's memory (peak RSS of the agent process, from /proc) while a
//! docker-mode task prints as fast as it can for a fixed time: `yes` as the task, and `yes`
//! between freeze markers forged with the run's real token (read from the container's own
//! script). The daemon is stopped after each flood and its containers removed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clearml_test_server::TestServer;
use serde_json::json;

use crate::agent::{Agent, signal};
use crate::docker_mode::DockerSetup;
use crate::proctree;
use crate::scenarios::{Plan, status};

/// How long each flood runs once the task is in progress.
pub(crate) const FLOOD: Duration = Duration::from_secs(60);

/// Setup-script lines printing this run's real freeze begin marker (the worst case: a task that
/// reads its own container's script).
const FORGE_REAL_BEGIN: &str = "T=$(tr '\\0' '\\n' < /proc/$$/cmdline | grep -o 'pip freeze begin [0-9a-f]\\{32\\}' | head -n 1 | cut -d ' ' -f 4)\n\
                                echo \"=== clearml-agent: pip freeze begin $T ===\"";

/// Peak RSS of the agent process for each flood, in MiB.
#[derive(Default)]
pub(crate) struct FloodResults {
    pub yes_peak_mib: Option<f64>,
    pub marker_peak_mib: Option<f64>,
}

/// A field of `/proc/<pid>/status` in KiB.
fn status_kib(pid: i32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Removes the task's containers (our agent labels them with the task id).
fn remove_containers(task: &str) {
    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=clearml-task-id={task}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One flood with a fresh daemon: peak RSS in MiB (the largest sample of VmRSS every 200 ms, and
/// the kernel's own high-water mark VmHWM at the end).
fn one(
    server: &TestServer,
    agent: &Agent,
    plan: &Plan,
    setup: &DockerSetup,
    label: &str,
    setup_script: &str,
) -> anyhow::Result<f64> {
    let mut d = agent.daemon(
        &["--docker", &setup.image],
        &format!("daemon-flood-{label}.log"),
    )?;
    let task = server.create_task(json!({
        "name": format!("flood {label}"),
        "script": {
            "binary": "python3",
            "entry_point": "task.py",
            "working_dir": ".",
            "diff": "import os\nos.execvp('yes', ['yes'])\n",
        },
        "container": {"setup_shell_script": setup_script},
    }))?;
    server.enqueue(&task, &agent.queue())?;
    let deadline = Instant::now() + plan.task_timeout;
    while status(server, &task) != "in_progress" {
        if !d.running() || Instant::now() > deadline {
            bail!("the flood task never started; log tail:\n{}", d.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = d.pid();
    let mut peak = 0u64;
    let end = Instant::now() + FLOOD;
    let result = loop {
        if !d.running() {
            break Err(anyhow::anyhow!(
                "the daemon exited during the flood; log tail:\n{}",
                d.log_tail()
            ));
        }
        peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
        if Instant::now() >= end {
            peak = peak.max(status_kib(pid, "VmHWM:").unwrap_or(0));
            break Ok(peak as f64 / 1024.0);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The backlog of a minute of `yes` would take long to deliver: no need to wait for it.
    signal(
        "-KILL",
        &proctree::tree(pid).into_iter().collect::<Vec<_>>(),
    );
    d.stop();
    remove_containers(&task);
    result.context(format!("flood {label}"))
}

/// Both floods, one after the other.
pub(crate) fn run(
    server: &TestServer,
    agent: &Agent,
    plan: &Plan,
    setup: &DockerSetup,
) -> (FloodResults, Vec<String>) {
    let mut r = FloodResults::default();
    let mut errors = Vec::new();
    match one(server, agent, plan, setup, "yes", "") {
        Ok(v) => r.yes_peak_mib = Some(v),
        Err(e) => errors.push(format!("{e:#}")),
    }
    match one(
        server,
        agent,
        plan,
        setup,
        "freeze-markers",
        &format!("{FORGE_REAL_BEGIN}\nyes"),
    ) {
        Ok(v) => r.marker_peak_mib = Some(v),
        Err(e) => errors.push(format!("{e:#}")),
    }
    (r, errors)
}
