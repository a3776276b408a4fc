//! The tasks the SDK creates: code in a git repository (here a local one, `file://`) and a
//! `clearml` requirement, the shape `Task.init` records. Lines: the first such task with cold
//! caches, with pip and with uv (each agent in a fresh HOME); the same task again with warm caches
//! (pulled → the script's first statement, and the script's last statement → the final status);
//! a repository task with empty requirements (pulled → first statement).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clearml_test_server::{TestServer, parse_iso};
use serde_json::json;

use crate::agent::{Agent, Daemon};
use crate::scenarios::{Plan, median, wait_final};

/// The requirement the tasks carry (the SDK's own version in the Python agent's venv).
pub(crate) const REQUIREMENT: &str = "clearml==2.1.12";
/// Warm samples (each a new task with the same commit and requirements).
pub(crate) const WARM: usize = 3;

#[derive(Default, Debug, Clone)]
pub(crate) struct SdkResults {
    pub cold_pip_s: Option<f64>,
    pub cold_uv_s: Option<f64>,
    pub warm_total_s: Option<f64>,
    pub warm_first_line_s: Option<f64>,
    pub warm_first_line_samples: Vec<f64>,
    pub warm_end_to_final_s: Option<f64>,
    pub bare_first_line_s: Option<f64>,
    pub errors: Vec<String>,
}

/// A repository whose `task.py` stamps, under `stamps`, `<task id>.start` and `<task id>.end`
/// with the wall-clock time of its first and last statements.
fn repository(dir: &Path, stamps: &Path) -> anyhow::Result<(String, String)> {
    std::fs::create_dir_all(dir)?;
    std::fs::create_dir_all(stamps)?;
    std::fs::write(
        dir.join("task.py"),
        format!(
            "import os, time\n\
             d = {stamps:?}\n\
             tid = os.environ.get('CLEARML_TASK_ID', 'unknown')\n\
             open(os.path.join(d, tid + '.start'), 'w').write(repr(time.time()))\n\
             print('sdk task running')\n\
             open(os.path.join(d, tid + '.end'), 'w').write(repr(time.time()))\n",
            stamps = stamps.display().to_string()
        ),
    )?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git")
            .args(["-c", "user.email=bench@localhost", "-c", "user.name=bench"])
            .args(args)
            .current_dir(dir)
            .output()
            .context("git")?;
        if !out.status.success() {
            bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "task.py"])?;
    git(&["commit", "-q", "-m", "task"])?;
    let commit = git(&["rev-parse", "HEAD"])?;
    Ok((format!("file://{}", dir.display()), commit))
}

fn sdk_task(
    server: &TestServer,
    name: &str,
    repo: &str,
    commit: &str,
    requirements: &str,
) -> anyhow::Result<String> {
    server.create_task(json!({
        "name": name,
        "script": {
            "binary": "python3",
            "repository": repo,
            "branch": "main",
            "version_num": commit,
            "entry_point": "task.py",
            "working_dir": ".",
            "requirements": {"pip": requirements},
        },
    }))
}

/// Runs one task to completion; returns enqueue → final status.
fn run_one(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    task: &str,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    server.enqueue(task, &agent.queue())?;
    let (s, at) = wait_final(
        server,
        task,
        d,
        plan.task_timeout.max(Duration::from_secs(600)),
    )?;
    if s != "completed" {
        bail!("ended {s}: {}", crate::scenarios::log_tail(server, task));
    }
    Ok(at.duration_since(t).as_secs_f64())
}

/// Seconds from the moment the agent marked `task` pulled (`tasks.started`) to its first
/// statement, and from its last statement to its final status.
fn phases(server: &TestServer, task: &str, stamps: &Path) -> anyhow::Result<(f64, f64)> {
    let t = server.task(task)?;
    let ms = |field: &str| -> anyhow::Result<f64> {
        let text = t[field]
            .as_str()
            .with_context(|| format!("no `{field}` on {task}"))?;
        Ok(parse_iso(text).with_context(|| format!("bad time {text}"))? as f64 / 1000.0)
    };
    let stamp = |ext: &str| -> anyhow::Result<f64> {
        let p = stamps.join(format!("{task}.{ext}"));
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("no stamp {}", p.display()))?
            .trim()
            .parse()?)
    };
    let pulled = ms("started")?;
    let done = ms("completed")?;
    Ok((stamp("start")? - pulled, done - stamp("end")?))
}

/// Every SDK-task line for one agent (`make` gives a fresh agent, with extra configuration).
pub(crate) fn run(
    server: &TestServer,
    make: &dyn Fn(&str) -> anyhow::Result<Agent>,
    plan: &Plan,
    poll: f64,
) -> SdkResults {
    let mut r = SdkResults::default();
    if let Err(e) = run_pip(server, make, plan, poll, &mut r) {
        r.errors.push(format!("SDK tasks (pip): {e:#}"));
    }
    if let Err(e) = run_uv(server, make, plan, &mut r) {
        r.errors.push(format!("SDK tasks (uv): {e:#}"));
    }
    r
}

fn run_pip(
    server: &TestServer,
    make: &dyn Fn(&str) -> anyhow::Result<Agent>,
    plan: &Plan,
    poll: f64,
    r: &mut SdkResults,
) -> anyhow::Result<()> {
    let agent = make("")?;
    let stamps: PathBuf = agent.root().join("stamps");
    let (repo, commit) = repository(&agent.root().join("repo"), &stamps)?;
    let mut d = agent.daemon(&[], "daemon-sdk-pip.log")?;
    let req = format!("{REQUIREMENT}\n");
    let cold = sdk_task(
        server,
        &format!("sdk cold pip {}", agent.name),
        &repo,
        &commit,
        &req,
    )?;
    eprintln!("[bench] {}: SDK task, cold, pip", agent.name);
    r.cold_pip_s = Some(run_one(server, &agent, &mut d, plan, &cold)?);
    let (mut totals, mut firsts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARM {
        // Enqueued at moments spread over a poll interval (see scenarios::warm).
        std::thread::sleep(Duration::from_secs_f64(
            poll * (i as f64 + 0.5) / WARM as f64,
        ));
        let task = sdk_task(
            server,
            &format!("sdk warm {i} {}", agent.name),
            &repo,
            &commit,
            &req,
        )?;
        eprintln!("[bench] {}: SDK task, warm {i}", agent.name);
        totals.push(run_one(server, &agent, &mut d, plan, &task)?);
        let (first, end) = phases(server, &task, &stamps)?;
        firsts.push(first);
        ends.push(end);
    }
    r.warm_total_s = median(&mut totals);
    r.warm_first_line_samples = firsts.clone();
    r.warm_first_line_s = median(&mut firsts);
    r.warm_end_to_final_s = median(&mut ends);
    let bare = sdk_task(
        server,
        &format!("sdk bare {}", agent.name),
        &repo,
        &commit,
        "",
    )?;
    eprintln!(
        "[bench] {}: repository task without requirements",
        agent.name
    );
    run_one(server, &agent, &mut d, plan, &bare)?;
    r.bare_first_line_s = Some(phases(server, &bare, &stamps)?.0);
    d.stop();
    Ok(())
}

fn run_uv(
    server: &TestServer,
    make: &dyn Fn(&str) -> anyhow::Result<Agent>,
    plan: &Plan,
    r: &mut SdkResults,
) -> anyhow::Result<()> {
    // `uv_replace_pip`: without a uv project the Python agent otherwise installs the
    // requirements with pip into the venv uv made, which has no pip (worker.py:
    // install_requirements_for_package_api); ours installs with uv either way (and says the key
    // has no effect). No `uv` on PATH: each agent installs its own, as on a fresh host.
    let mut agent =
        make("agent.package_manager.type: uv\nagent.package_manager.uv_replace_pip: true\n")?;
    agent.hide_tool("uv");
    let stamps = agent.root().join("stamps");
    let (repo, commit) = repository(&agent.root().join("repo"), &stamps)?;
    let mut d = agent.daemon(&[], "daemon-sdk-uv.log")?;
    let task = sdk_task(
        server,
        &format!("sdk cold uv {}", agent.name),
        &repo,
        &commit,
        &format!("{REQUIREMENT}\n"),
    )?;
    eprintln!("[bench] {}: SDK task, cold, uv", agent.name);
    r.cold_uv_s = Some(run_one(server, &agent, &mut d, plan, &task)?);
    d.stop();
    Ok(())
}
