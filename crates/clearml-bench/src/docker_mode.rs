//! The docker-mode line: each agent as `daemon --docker <image>`, timed from `tasks.enqueue` to
//! the task's container started (the engine's own `start` event) and to the task's final
//! status; one cold task first, then warm samples spread over a poll interval.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clearml_test_server::TestServer;

use crate::agent::{Agent, Daemon};
use crate::scenarios::{Plan, log_tail, median, now_epoch, script_task, wait_final};

/// What the docker line needs: an engine, a local image with python3 and git, and a folder of
/// wheels (clearml-agent 3.0.3 and its dependencies) for the Python agent's containers.
pub(crate) struct DockerSetup {
    pub image: String,
    pub wheels: PathBuf,
    pub agent_wheel: PathBuf,
    pub samples: usize,
}

impl DockerSetup {
    /// Checks the engine, the image and the wheel folder; the error says which is missing.
    pub(crate) fn check(image: &str, wheels: &Path, samples: usize) -> anyhow::Result<DockerSetup> {
        let ok = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["info"]) {
            bail!("no Docker engine on this machine");
        }
        if !ok(&["image", "inspect", image]) {
            bail!(
                "image {image} is missing (bench/run.sh builds it with scripts/build-test-image.sh)"
            );
        }
        let agent_wheel = std::fs::read_dir(wheels)
            .with_context(|| format!("wheel folder {} (bench/run.sh fills it)", wheels.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("clearml_agent-") && n.ends_with(".whl"))
            })
            .with_context(|| format!("no clearml_agent wheel in {}", wheels.display()))?;
        Ok(DockerSetup {
            image: image.to_string(),
            wheels: wheels.to_path_buf(),
            agent_wheel,
            samples,
        })
    }
}

/// Figures of the docker line for one agent.
#[derive(Default)]
pub(crate) struct DockerResults {
    pub cold_start_s: Option<f64>,
    pub cold_final_s: Option<f64>,
    pub start_median_s: Option<f64>,
    pub start_samples: Vec<f64>,
    pub final_median_s: Option<f64>,
}

/// The engine's container `start` events for one image, read by a thread as they happen.
struct StartEvents {
    child: Child,
    rx: Receiver<f64>,
}

impl StartEvents {
    /// Streams events from `since` (epoch seconds) on, so none is missed however early it comes.
    fn since(since: f64, image: &str) -> anyhow::Result<StartEvents> {
        let mut child = Command::new("docker")
            .args(["events", "--since"])
            .arg(format!("{}", since.floor() as i64))
            .args(["--filter", "type=container", "--filter", "event=start"])
            .args(["--filter", &format!("image={image}")])
            .args(["--format", "{{.TimeNano}}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("docker events")?;
        let out = child.stdout.take().context("docker events stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(nanos) = line.trim().parse::<i128>()
                    && tx.send(nanos as f64 / 1e9).is_err()
                {
                    break;
                }
            }
        });
        Ok(StartEvents { child, rx })
    }

    /// The first container start at or after `after` (epoch seconds).
    fn first_after(&self, after: f64, timeout: Duration) -> anyhow::Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(t) if t >= after => return Ok(t),
                Ok(_) => continue,
                Err(_) => bail!("no container of the image started within {timeout:?}"),
            }
        }
    }
}

impl Drop for StartEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One trivial task in a container: (enqueue to container started, enqueue to final status).
fn once(
    server: &TestServer,
    agent: &Agent,
    d: &mut Daemon,
    plan: &Plan,
    setup: &DockerSetup,
    label: &str,
) -> anyhow::Result<(f64, f64)> {
    let task = script_task(
        server,
        &format!("docker {label}"),
        "print('hello from a container')\n",
    )?;
    let enqueued = now_epoch();
    let events = StartEvents::since(enqueued - 1.0, &setup.image)?;
    let t = Instant::now();
    server.enqueue(&task, &agent.queue())?;
    let (s, at) = wait_final(server, &task, d, plan.task_timeout)?;
    if s != "completed" {
        bail!("ended {s}: {}", log_tail(server, &task));
    }
    let started = events.first_after(enqueued, Duration::from_secs(10))?;
    Ok((started - enqueued, at.duration_since(t).as_secs_f64()))
}

/// The daemon with `--docker <image>`, one cold task, then `setup.samples` warm ones whose
/// enqueue moments are spread over one poll interval.
pub(crate) fn run(
    server: &TestServer,
    agent: &Agent,
    plan: &Plan,
    poll: f64,
    setup: &DockerSetup,
) -> anyhow::Result<DockerResults> {
    let mut d = agent.daemon(&["--docker", &setup.image], "daemon-docker.log")?;
    let mut r = DockerResults::default();
    let (start, fin) = once(server, agent, &mut d, plan, setup, "cold")?;
    r.cold_start_s = Some(start);
    r.cold_final_s = Some(fin);
    let mut finals = Vec::new();
    for i in 0..setup.samples {
        let phase = poll * (i as f64 + 0.5) / setup.samples as f64;
        std::thread::sleep(Duration::from_secs_f64(phase));
        let (start, fin) = once(server, agent, &mut d, plan, setup, &format!("warm {i}"))?;
        r.start_samples.push(start);
        finals.push(fin);
    }
    r.start_median_s = median(&mut r.start_samples.clone());
    r.final_median_s = median(&mut finals);
    d.stop();
    Ok(r)
}
