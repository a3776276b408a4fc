//! `clearml-bench`: runs this agent and the Python clearml-agent 3.0.3 side by side against an
//! in-process test server and writes docs/benchmarks.md. Never part of the test run; started by
//! `bench/run.sh`, which builds both and finds the Python agent's venv.
//!
//! ```text
//! clearml-bench --rust target/release/clearml-agent --python .venv-peers/bin/clearml-agent \
//!               --out docs/benchmarks.md [--poll 5] [--idle 60] [--starts 10] [--lines 100000]
//!               [--batch 50] [--batch-timeout 420] [--only rust|python]
//!               [--wheels DIR] [--image clearml-agent-test:py3-git] [--docker-samples 5]
//!               [--lines-to-run help,idle,trivial,starts,lines,running,abort,batch,docker,flood,sdk]
//! ```
//!
//! The docker and flood lines run when `--wheels` names a folder holding the clearml-agent 3.0.3 wheel
//! and its dependencies, the engine answers and the image exists.

mod agent;
mod docker_mode;
mod flood;
mod proctree;
mod report;
mod scenarios;
mod sdk_tasks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clearml_test_server::{Options, TestServer};

use crate::agent::Agent;
use crate::docker_mode::DockerSetup;
use crate::scenarios::{Plan, Results};

fn main() {
    if let Err(e) = run() {
        eprintln!("clearml-bench: {e:#}");
        std::process::exit(1);
    }
}

fn args() -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| anyhow!("unexpected argument '{k}'; options are --name value"))?;
        let v = it.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
        map.insert(key.to_string(), v);
    }
    Ok(map)
}

fn num<T: std::str::FromStr>(
    a: &HashMap<String, String>,
    key: &str,
    default: T,
) -> anyhow::Result<T> {
    match a.get(key) {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow!("--{key} '{v}' is not a number")),
        None => Ok(default),
    }
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1}", kb / 1024.0 / 1024.0));
    let kernel = first_line(Command::new("uname").arg("-sr"));
    format!("{cpu}, {cores} cores, {mem} GiB RAM, {kernel}")
}

fn run() -> anyhow::Result<()> {
    let a = args()?;
    let rust = PathBuf::from(
        a.get("rust")
            .context("--rust <path to our clearml-agent> is required")?,
    );
    let python = PathBuf::from(
        a.get("python")
            .context("--python <path to the Python clearml-agent> is required")?,
    );
    let out = PathBuf::from(a.get("out").map_or("docs/benchmarks.md", String::as_str));
    for b in [&rust, &python] {
        if !b.is_file() {
            bail!(
                "{} does not exist; run bench/run.sh, which builds and installs both",
                b.display()
            );
        }
    }
    let poll: f64 = num(&a, "poll", 5.0)?;
    let plan = Plan {
        idle: Duration::from_secs(num(&a, "idle", 60)?),
        starts: num(&a, "starts", 10)?,
        lines: num(&a, "lines", 100_000)?,
        batch: num(&a, "batch", 50)?,
        batch_timeout: Duration::from_secs(num(&a, "batch-timeout", 420)?),
        task_timeout: Duration::from_secs(300),
        selected: a
            .get("lines-to-run")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
    };
    let docker = match a.get("wheels") {
        None => Err("not measured: no --wheels folder given (bench/run.sh gives one)".to_string()),
        Some(w) => DockerSetup::check(
            a.get("image")
                .map_or("clearml-agent-test:py3-git", String::as_str),
            std::path::Path::new(w),
            num(&a, "docker-samples", 5)?,
        )
        .map_err(|e| format!("not measured: {e:#}")),
    };
    let only = a.get("only").cloned().unwrap_or_default();
    let started = Instant::now();
    let load_before = proctree::loadavg();
    let server = TestServer::start(Options::default())?;
    eprintln!("[bench] test server at {}", server.url());
    let poll_s = poll.to_string();
    let rust_poll = a.get("poll-rust").cloned().unwrap_or_default();
    let mut results: Vec<Results> = Vec::new();
    for (name, bin) in [("rust", &rust), ("python", &python)] {
        if !only.is_empty() && only != name {
            results.push(Results::default());
            continue;
        }
        // Each agent polls at its shipped default: the Python agent every 5 s (its minimum), ours
        // adaptively (issue #14); `--poll-rust S` pins ours to an interval instead.
        let agent_poll = match name {
            "rust" => rust_poll.clone(),
            _ => poll_s.clone(),
        };
        let agent = Agent::new(name, bin, &server.url(), &agent_poll, docker.as_ref().ok())?;
        server.create_queue(&agent.queue())?;
        results.push(scenarios::run_all(
            &server,
            &agent,
            &plan,
            poll,
            docker.as_ref().ok(),
        ));
        if plan.wants("sdk") {
            let url = server.url();
            let make = |extra: &str| -> anyhow::Result<Agent> {
                let a = Agent::new(name, bin, &url, &agent_poll, None)?;
                a.add_conf(extra)?;
                Ok(a)
            };
            let sdk = sdk_tasks::run(&server, &make, &plan, poll);
            for e in &sdk.errors {
                eprintln!("[bench] {name}: {e}");
            }
            if let Some(last) = results.last_mut() {
                last.errors.extend(sdk.errors.iter().cloned());
                last.sdk = Some(sdk);
            }
        }
        if a.contains_key("keep") {
            let kept = agent.home.keep();
            eprintln!("[bench] kept {}", kept.display());
        }
    }
    let date = first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let ctx = report::Context {
        date,
        machine: machine(),
        load_before,
        load_after: proctree::loadavg(),
        poll_sec: poll,
        python_version: first_line(Command::new(&python).arg("--version")),
        rust_version: first_line(Command::new(&rust).arg("--version")),
        docker: match &docker {
            Ok(d) => Ok(d.samples),
            Err(e) => Err(e.clone()),
        },
        total_s: started.elapsed().as_secs_f64(),
    };
    let page = report::render(&ctx, &plan, &results[0], &results[1]);
    std::fs::write(&out, &page).with_context(|| format!("write {}", out.display()))?;
    eprintln!("[bench] wrote {}", out.display());
    print!("{page}");
    Ok(())
}
