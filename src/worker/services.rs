//! `daemon --services-mode [N]` and `--dynamic-gpus`: several tasks at once, at most N (unlimited
//! without N) or as many as the GPU pool holds. Each pulled task runs as its own monitored
//! `execute --full-monitoring --id <task>` process (with `--docker IMAGE ARGS...` in docker mode:
//! the task then runs in a container of its own) under the worker id
//! `<worker id>:service:<task id>`, which supervises the task itself (logs, aborts, final status);
//! this module only starts those processes, counts them and ends them.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.run_tasks_loop (`max_num_instances`) and
//! Worker.run_one_task (`'{}:service:{}'.format(worker_id, task_id)`, `--full-monitoring`; in
//! docker mode it runs `docker run ... execute --full-monitoring --id <task>`)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::env::EnvVars;
use crate::worker::dynamic_gpus::{GpuPool, GpuQueue};

/// How long a service process gets to stop its task after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The running service processes.
pub struct Services {
    limit: usize,
    /// `--dynamic-gpus`: the GPUs services run on; each returns its share when it ends.
    pool: Option<GpuPool>,
    running: JoinSet<Vec<String>>,
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
    /// Docker mode: the daemon's image and `docker run` arguments, and its own worker id (the
    /// service's container is labelled with it).
    pub docker: Option<(&'a str, &'a [String], &'a str)>,
}

impl Services {
    /// `n` from `--services-mode [N]`: N > 0 is the limit; -1 (bare flag) or 0 is unlimited.
    pub fn new(n: i64) -> Services {
        Services {
            limit: usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(usize::MAX),
            pool: None,
            running: JoinSet::new(),
        }
    }

    /// `--dynamic-gpus`: no count limit, the pool limits instead.
    pub fn with_pool(pool: GpuPool) -> Services {
        Services {
            limit: usize::MAX,
            pool: Some(pool),
            running: JoinSet::new(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.running.len() >= self.limit
    }

    /// Whether a task from a queue needing `gpus` could start now.
    pub fn can_take(&self, gpus: Option<&GpuQueue>) -> bool {
        !self.is_full()
            && match (gpus, &self.pool) {
                (Some(q), Some(pool)) => pool.fits(q),
                _ => true,
            }
    }

    /// Takes GPUs for a task of this queue from the pool (`None` without a pool or need).
    pub fn take_gpus(&mut self, gpus: Option<&GpuQueue>) -> Option<Vec<String>> {
        match (gpus, self.pool.as_mut()) {
            (Some(q), Some(pool)) => pool.take(q),
            _ => None,
        }
    }

    /// Returns GPUs to the pool (a service ended, or could not start).
    pub fn give_back(&mut self, gpus: Vec<String>) {
        if let Some(pool) = self.pool.as_mut() {
            pool.give_back(gpus);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Waits until one service process ends (never returns while none runs).
    pub async fn one_ended(&mut self) {
        match self.running.join_next().await {
            Some(Ok(gpus)) => self.give_back(gpus),
            Some(Err(_)) => {}
            None => std::future::pending::<()>().await,
        }
    }

    /// Waits for every service process: on shutdown each has been sent SIGTERM already.
    pub async fn wait_all(&mut self) {
        while !self.running.is_empty() {
            self.one_ended().await;
        }
    }

    /// Starts `execute --full-monitoring --id <task>` under `launch.worker_id`; its output joins
    /// the daemon's. `keep` (its registration, its config file) is dropped when it ends, and
    /// `gpus` (already in `launch.base_env`) return to the pool.
    pub fn start(
        &mut self,
        launch: &ServiceLaunch<'_>,
        task_id: &str,
        shutdown: CancellationToken,
        keep: impl Send + 'static,
        gpus: Vec<String>,
    ) -> Result<()> {
        let worker_id = launch.worker_id.to_string();
        let mut cmd = tokio::process::Command::new(launch.program);
        cmd.args(super::execute_args(
            launch.config_file,
            super::ChildMonitoring::Full,
            &[],
            task_id,
        ))
        .env_clear()
        .envs(launch.base_env)
        .env(EnvVars::CLEARML_WORKER_ID, &worker_id)
        .env(EnvVars::TRAINS_WORKER_ID, &worker_id);
        if let Some((image, args, parent)) = launch.docker {
            // `--docker=WORD` each: words that look like options stay container words.
            cmd.arg(format!("--docker={image}"))
                .args(args.iter().map(|a| format!("--docker={a}")))
                .env(EnvVars::CLEARML_AGENT_PARENT_WORKER_ID, parent);
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
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
                    return gpus;
                }
                _ = shutdown.cancelled() => {}
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
            gpus
        });
        Ok(())
    }
}
