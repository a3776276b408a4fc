//! The daemon: register a worker, pull tasks from the queues by priority (or round robin), run
//! each one under supervision, report machine stats, unregister on exit. It owns the polling
//! loop and the worker's identity; running a task is `exec::supervise`'s job.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.daemon / run_tasks_loop

pub mod queues;
pub mod registry;
pub mod report;
pub mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::api::{Client, StatusChange};
use crate::docker::{DockerConfig, Engine};
use crate::env::EnvVars;
use crate::exec::supervise::{self, Launch, SuperviseConfig};
use queues::QueueRef;
use registry::Registry;
use report::{Current, ReportConfig, Reporter};

/// Everything the daemon needs, resolved from settings before the runtime starts.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// `agent.worker_id` / `CLEARML_WORKER_ID`, if set.
    pub worker_id: Option<String>,
    /// `agent.worker_name` (the hostname by default).
    pub worker_name: String,
    /// The effective `NVIDIA_VISIBLE_DEVICES` after `--gpus` / `--cpu-only`.
    pub visible_gpus: Option<String>,
    /// `--queue`, in priority order (names or ids).
    pub queues: Vec<String>,
    pub create_queue: bool,
    pub order_fairness: bool,
    pub poll_interval: Duration,
    pub report_interval: Duration,
    pub foreground: bool,
    pub child_report_tags: Vec<String>,
    /// Folder of the per-agent pid files (the system temp dir).
    pub registry_dir: PathBuf,
    /// Disk whose free space is reported.
    pub disk_path: PathBuf,
    /// The full configuration handed to each task's `execute` child (written as JSON).
    pub child_config: serde_json::Value,
    /// Where the child config file and per-task spill files go.
    pub temp_dir: PathBuf,
    /// This binary, run as `execute --disable-monitoring` for each task.
    pub self_exe: PathBuf,
    /// The daemon's environment plus the GPU variables, given to every task.
    pub base_env: BTreeMap<String, String>,
    pub supervise: SuperviseConfig,
    /// `--docker`: each task runs in a container (see `crate::docker`).
    pub docker: Option<DockerConfig>,
}

/// Runs until `shutdown` turns true. Returns after unregistering.
pub async fn run(cfg: DaemonConfig, client: Client, shutdown: watch::Receiver<bool>) -> Result<()> {
    // Docker mode needs the engine: fail at start, not at the first task.
    let engine = match &cfg.docker {
        Some(_) => Some(Engine::connect().await?),
        None => None,
    };
    client.login().await.with_context(|| {
        format!(
            "Connection Error: it seems *api_server* is misconfigured. Is this the ClearML API server {} ?",
            client.config().api_server
        )
    })?;
    let queues = queues::resolve(&client, &cfg.queues, cfg.create_queue).await?;

    let (fixed_id, name) = registry::worker_identity(
        cfg.worker_id.as_deref(),
        &cfg.worker_name,
        cfg.visible_gpus.as_deref(),
        false,
    );
    let registration =
        Registry::new(&cfg.registry_dir).register(fixed_id.as_deref(), &name, false)?;
    let worker_id = registration.worker_id.clone();
    if let Some(engine) = &engine {
        // A crashed run of this worker may have left its containers behind.
        match engine.reap(&worker_id).await {
            Ok(0) => {}
            Ok(n) => println!("Removed {n} leftover container(s) of worker {worker_id}"),
            Err(e) => println!("Warning: cannot remove leftover containers: {e}"),
        }
    }

    println!("Worker \"{worker_id}\" - Listening to queues:");
    print_queue_table(&queues);
    let queue_ids: Vec<String> = queues.iter().map(|q| q.id.clone()).collect();
    client
        .workers()
        .register(&worker_id, &queue_ids, None)
        .await
        .context("cannot register the worker")?;

    let child_config = ChildConfig::write(&cfg.temp_dir, &cfg.child_config)?;
    let reporter = Reporter::spawn(
        client.clone(),
        ReportConfig {
            worker_id: worker_id.clone(),
            queues: queue_ids.clone(),
            tags: cfg.child_report_tags.clone(),
            period: cfg.report_interval,
            disk_path: cfg.disk_path.clone(),
            is_daemon: true,
        },
    );

    let result = poll_loop(
        &cfg,
        &client,
        &worker_id,
        &queues,
        &reporter,
        &child_config,
        engine.as_ref(),
        shutdown,
    )
    .await;

    reporter.stop().await;
    // mirrors run_tasks_loop's finally: unregister on every exit.
    if let Err(e) = client.workers().unregister(&worker_id, &queue_ids).await {
        tracing::warn!("cannot unregister worker {worker_id}: {e}");
    }
    drop(registration);
    result
}

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    cfg: &DaemonConfig,
    client: &Client,
    worker_id: &str,
    queues: &[QueueRef],
    reporter: &Reporter,
    child_config: &ChildConfig,
    engine: Option<&Engine>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut ran_any = false;
        for queue in queues {
            if *shutdown.borrow() {
                return Ok(());
            }
            let next = match client.queues().get_next_task(&queue.id, false).await {
                Ok(next) => next,
                Err(e) => {
                    // mirrors run_tasks_loop: a failing queue is skipped, not fatal.
                    println!(
                        "Warning: Could not access task queue [{}], error: {e}",
                        queue.id
                    );
                    continue;
                }
            };
            let Some(next) = next else {
                if cfg.foreground {
                    println!("No tasks in queue {}", queue.id);
                }
                continue;
            };
            ran_any = true;
            run_pulled(
                cfg,
                client,
                worker_id,
                queue,
                &next.task,
                reporter,
                child_config,
                engine,
                &shutdown,
            )
            .await;
            if !cfg.order_fairness {
                // Priority: after a task, start again from the first queue at once.
                break;
            }
        }
        if ran_any && !cfg.order_fairness {
            continue;
        }
        if cfg.foreground {
            println!(
                "No tasks in Queues, sleeping for {:.1} seconds",
                cfg.poll_interval.as_secs_f64()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_pulled(
    cfg: &DaemonConfig,
    client: &Client,
    worker_id: &str,
    queue: &QueueRef,
    task_id: &str,
    reporter: &Reporter,
    child_config: &ChildConfig,
    engine: Option<&Engine>,
    shutdown: &watch::Receiver<bool>,
) {
    // mirrors run_tasks_loop: started(force) "pulled by agent", then an immediate report.
    if let Err(e) = client
        .tasks()
        .started(
            &StatusChange::new(task_id)
                .message("pulled by agent")
                .force(true),
        )
        .await
    {
        println!("Warning: could not mark task {task_id} as started, skipping it: {e}");
        return;
    }
    reporter.set_current(Current {
        task: Some(task_id.to_string()),
        queue: Some(queue.id.clone()),
    });
    let mut env = cfg.base_env.clone();
    env.insert(EnvVars::CLEARML_WORKER_ID.into(), worker_id.to_string());
    env.insert(EnvVars::TRAINS_WORKER_ID.into(), worker_id.to_string());
    if !cfg.child_report_tags.is_empty() {
        env.insert(
            EnvVars::CLEARML_WORKER_TAGS.into(),
            cfg.child_report_tags.join(" "),
        );
    }
    if let (Some(docker), Some(engine)) = (&cfg.docker, engine) {
        let job = crate::docker::run::ContainerJob {
            task_id: task_id.to_string(),
            worker_id: worker_id.to_string(),
            parent_worker_id: worker_id.to_string(),
            config_file: child_config.path.clone(),
            pulled_from: Some(queue.id.clone()),
            worker_tags: cfg.child_report_tags.clone(),
            host_env: env,
        };
        crate::docker::run::run_task(
            client,
            &cfg.supervise,
            docker,
            engine,
            job,
            shutdown.clone(),
        )
        .await;
        reporter.set_current(Current::default());
        return;
    }
    let launch = Launch {
        task_id: task_id.to_string(),
        worker_id: worker_id.to_string(),
        program: cfg.self_exe.clone(),
        args: vec![
            "--config-file".into(),
            child_config.path.display().to_string(),
            "execute".into(),
            "--disable-monitoring".into(),
            "--id".into(),
            task_id.to_string(),
        ],
        env,
        cwd: None,
        pulled_from: Some(queue.id.clone()),
    };
    supervise::run_task(client, &cfg.supervise, launch, shutdown.clone()).await;
    reporter.set_current(Current::default());
}

fn print_queue_table(queues: &[QueueRef]) {
    let w_id = queues.iter().map(|q| q.id.len()).max().unwrap_or(2).max(2);
    let w_name = queues
        .iter()
        .map(|q| q.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<w_id$} | {:<w_name$}", "id", "name");
    println!("{}", "-".repeat(w_id + w_name + 3));
    for q in queues {
        println!("{:<w_id$} | {:<w_name$}", q.id, q.name);
    }
    println!();
}

/// The configuration file handed to task processes (`--config-file` of the `execute` child and
/// `CLEARML_CONFIG_FILE` for the SDK): the whole resolved configuration as JSON, which pyhocon
/// reads too. Removed when dropped.
pub struct ChildConfig {
    pub path: PathBuf,
}

impl ChildConfig {
    pub fn write(dir: &std::path::Path, tree: &serde_json::Value) -> Result<ChildConfig> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = tempfile::Builder::new()
            .prefix(".clearml_agent.")
            .suffix(".cfg")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a config file in {}", dir.display()))?;
        let text =
            serde_json::to_string_pretty(tree).context("cannot serialize the configuration")?;
        std::fs::write(file.path(), text)
            .with_context(|| format!("cannot write {}", file.path().display()))?;
        let (_, path) = file.keep().context("cannot keep the child config file")?;
        // The file holds credentials: readable by the owner only.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        Ok(ChildConfig { path })
    }
}

impl Drop for ChildConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
