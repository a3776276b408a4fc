//! `daemon --services-mode [N]` in venv mode: several tasks at once, at most N (unlimited without
//! N). Each pulled task runs as its own monitored `execute --full-monitoring --id <task>` process
//! under the worker id `<worker id>:service:<task id>`, which supervises the task itself (logs,
//! aborts, final status); this module only starts those processes, counts them and ends them.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.run_tasks_loop (`max_num_instances`) and
//! Worker.run_one_task (`'{}:service:{}'.format(worker_id, task_id)`, `--full-monitoring`)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::env::EnvVars;

/// How long a service process gets to stop its task after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The running service processes.
pub struct Services {
    limit: usize,
    running: JoinSet<()>,
}

/// The worker id a service process reports under (mirrors Worker.run_one_task).
pub fn service_worker_id(worker_id: &str, task_id: &str) -> String {
    format!("{worker_id}:service:{task_id}")
}

/// What a service process needs besides its task id.
pub struct ServiceLaunch<'a> {
    pub program: &'a PathBuf,
    pub config_file: &'a std::path::Path,
    pub base_env: &'a BTreeMap<String, String>,
    pub worker_id: &'a str,
}

impl Services {
    /// `n` from `--services-mode [N]`: N > 0 is the limit; -1 (bare flag) or 0 is unlimited.
    pub fn new(n: i64) -> Services {
        Services {
            limit: usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(usize::MAX),
            running: JoinSet::new(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.running.len() >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Waits until one service process ends (never returns while none runs).
    pub async fn one_ended(&mut self) {
        if self.running.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits for every service process: on shutdown each has been sent SIGTERM already.
    pub async fn wait_all(&mut self) {
        while self.running.join_next().await.is_some() {}
    }

    /// Starts `execute --full-monitoring --id <task>` under `launch.worker_id`; its output joins
    /// the daemon's. `keep` (its registration, its config file) is dropped when it ends.
    pub fn start(
        &mut self,
        launch: &ServiceLaunch<'_>,
        task_id: &str,
        mut shutdown: watch::Receiver<bool>,
        keep: impl Send + 'static,
    ) -> Result<()> {
        let worker_id = launch.worker_id.to_string();
        let mut cmd = tokio::process::Command::new(launch.program);
        cmd.arg("--config-file")
            .arg(launch.config_file)
            .args(["execute", "--full-monitoring", "--id", task_id])
            .env_clear()
            .envs(launch.base_env)
            .env(EnvVars::CLEARML_WORKER_ID, &worker_id)
            .env(EnvVars::TRAINS_WORKER_ID, &worker_id)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the service process of task {task_id}"))?;
        println!("Running task {task_id} as service worker {worker_id}");
        let task_id = task_id.to_string();
        self.running.spawn(async move {
            let _keep = keep;
            tokio::select! {
                status = child.wait() => {
                    tracing::debug!("service task {task_id} ended: {status:?}");
                    return;
                }
                _ = shutdown.wait_for(|s| *s) => {}
            }
            // The daemon is stopping: the service stops its task (marked stopped) on SIGTERM.
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        });
        Ok(())
    }
}
