//! The daemon: register a worker, pull tasks from the queues by priority (or round robin), run
//! each one under supervision, report machine stats, unregister on exit. It owns the polling
//! loop and the worker's identity; running a task is `exec::supervise`'s job.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.daemon / run_tasks_loop

pub mod agent_proc;
pub mod control;
pub mod detach;
pub mod dynamic_gpus;
pub mod one_task;
pub mod poll;
pub mod queues;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod services;
pub mod stats;
pub mod stop;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

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
    /// Retries of the first connection to the server (`CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE`).
    pub initial_connect_retries: u32,
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
    /// Between queue polls: the user's interval, else adaptive (see `poll`).
    pub poll: poll::PollPace,
    pub report_interval: Duration,
    pub foreground: bool,
    pub child_report_tags: Vec<String>,
    /// The tags of the daemon's own status reports.
    pub report_tags: Vec<String>,
    /// `--dynamic-gpus`: `queues` are `<name>=<gpus>` and tasks get GPUs from `visible_gpus`.
    pub dynamic_gpus: bool,
    /// `--services-mode [N]` (-1: no limit): tasks run at once as monitored `execute` processes.
    pub services_mode: Option<i64>,
    /// `--uptime`/`--downtime`: outside its active hours the daemon pulls no task.
    pub schedule: Option<schedule::Schedule>,
    /// Folder of the per-agent pid files (the system temp dir).
    pub registry_dir: PathBuf,
    /// Disk whose free space is reported.
    pub disk_path: PathBuf,
    /// `agent.resource_monitoring.default_gpu_utilization`.
    pub default_gpu_utilization: Option<f64>,
    /// The full configuration handed to each task's `execute` child (written as JSON).
    pub child_config: serde_json::Value,
    /// `agent.venvs_dir`; an agent in slot N > 0 builds in `<venvs_dir>.N`.
    pub venvs_dir: PathBuf,
    /// Where the child config file and per-task spill files go.
    pub temp_dir: PathBuf,
    /// This binary, run as `execute --disable-monitoring` for each task.
    pub self_exe: PathBuf,
    /// The daemon's environment plus the GPU variables, given to every task.
    pub base_env: BTreeMap<String, String>,
    pub supervise: SuperviseConfig,
    /// Worker flags for each task's `execute` child (`-O`, `--log-level`).
    pub child_args: Vec<String>,
    /// `--docker`: each task runs in a container (see `crate::docker`).
    pub docker: Option<DockerConfig>,
}

/// Runs until `shutdown` is cancelled (the running task is stopped) or `drain` is (the running
/// task finishes, no other is pulled; `drain` is a child of `shutdown`, so it is cancelled by
/// either). Returns after unregistering.
pub async fn run(
    cfg: DaemonConfig,
    client: Client,
    shutdown: CancellationToken,
    drain: CancellationToken,
) -> Result<()> {
    // Docker mode needs the engine: fail at start, not at the first task.
    let mut cfg = cfg;
    let engine = match &cfg.docker {
        Some(_) => Some(Engine::connect().await?),
        None => None,
    };
    if let (Some(engine), Some(docker)) = (&engine, cfg.docker.as_mut())
        && let Some(warning) = engine
            .cpu_only_fallback(docker, crate::gpu::devices().as_deref())
            .await
    {
        println!("{warning}");
        // Services get the choice too (they resolve their own docker settings).
        cfg.base_env
            .insert(EnvVars::NVIDIA_VISIBLE_DEVICES.into(), "none".into());
    }
    if !control::first_login(&client, cfg.initial_connect_retries, &shutdown).await? {
        return Ok(());
    }
    let names = if cfg.dynamic_gpus {
        dynamic_gpus::parse_queues(&cfg.queues)?
            .into_iter()
            .map(|q| q.name)
            .collect()
    } else {
        cfg.queues.clone()
    };
    let queues = queues::resolve(&client, &names, cfg.create_queue).await?;

    let (fixed_id, name) = registry::worker_identity(
        cfg.worker_id.as_deref(),
        &cfg.worker_name,
        cfg.visible_gpus.as_deref(),
        cfg.dynamic_gpus,
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

    abandoned_by_a_killed_run(&client, &cfg, &worker_id).await;

    println!("Worker \"{worker_id}\" - Listening to queues:");
    print_queue_table(&queues);
    let queue_ids: Vec<String> = queues.iter().map(|q| q.id.clone()).collect();
    client
        .workers()
        .register(&worker_id, &queue_ids, None)
        .await
        .context("cannot register the worker")?;

    let child_config = ChildConfig::write(
        &cfg.temp_dir,
        &crate::config::slot_tree(&cfg.child_config, &cfg.venvs_dir, registration.slot),
    )?;
    let reporter = Reporter::spawn(
        client.clone(),
        ReportConfig {
            worker_id: worker_id.clone(),
            queues: queue_ids.clone(),
            tags: cfg.report_tags.clone(),
            period: cfg.report_interval,
            disk_path: cfg.disk_path.clone(),
            gpus: cfg.visible_gpus.clone(),
            is_daemon: true,
            default_gpu_utilization: cfg.default_gpu_utilization,
        },
    );

    let daemon = Daemon {
        cfg: &cfg,
        client: &client,
        worker_id: &worker_id,
        reporter: &reporter,
        child_config: &child_config,
        engine: engine.as_ref(),
    };
    let result = daemon.poll_loop(&queues, shutdown, drain).await;

    reporter.stop().await;
    // mirrors run_tasks_loop's finally: unregister on every exit. A few retries only: a server
    // that is away drops the worker by itself, and the agent must not hang on its way out.
    if let Err(e) = client
        .with_retries(UNREGISTER_RETRIES)
        .workers()
        .unregister(&worker_id, &queue_ids)
        .await
    {
        tracing::warn!("cannot unregister worker {worker_id}: {e}");
    }
    drop(registration);
    result
}

/// What a killed earlier run of this worker left behind (before this run starts anything): its
/// task processes are killed, and its tasks still `in_progress` on this worker are failed with a
/// reason that says so. The Python agent leaves them `in_progress` until the server's watchdog
/// stops them hours later (docs/differences.md).
async fn abandoned_by_a_killed_run(client: &Client, cfg: &DaemonConfig, worker_id: &str) {
    // First the final statuses an earlier run kept because the server was away as it stopped.
    if let Some(dir) = &cfg.supervise.pending_status_dir {
        for (file, pending) in crate::exec::pending_status::load_for(dir, worker_id) {
            let sent = supervise::send_status(
                client,
                &pending.task,
                worker_id,
                &pending.status,
                &pending.reason,
            )
            .await;
            match &sent {
                Ok(()) => println!(
                    "Task {}: final status {} kept by an earlier run is set",
                    pending.task, pending.status
                ),
                Err(e) => println!(
                    "Warning: cannot set the kept final status of task {}: {e}",
                    pending.task
                ),
            }
            // Set, or refused for good (the task moved on meanwhile): either way it is done.
            if !matches!(sent, Err(ref e) if e.is_transport()) {
                let _ = std::fs::remove_file(file);
            }
        }
    }
    let killed = crate::exec::process::kill_orphans_of(worker_id);
    if killed > 0 {
        println!(
            "Killed {killed} leftover task process(es) of an earlier run of worker {worker_id}"
        );
    }
    let abandoned = match client.tasks().in_progress_on(worker_id).await {
        Ok(ids) => ids,
        Err(e) => {
            println!("Warning: cannot look for tasks an earlier run of this worker left: {e}");
            return;
        }
    };
    for task in abandoned {
        let change = crate::api::StatusChange::new(&task)
            .reason(format!(
                "the agent running it (worker {worker_id}) was killed and restarted"
            ))
            .force(true);
        match client.tasks().failed(&change).await {
            Ok(_) => println!(
                "Task {task} was left in progress by an earlier run of this worker: marked failed"
            ),
            Err(e) => println!("Warning: cannot mark task {task} failed: {e}"),
        }
    }
}

/// How a child `execute` of the agent is monitored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildMonitoring {
    /// `--disable-monitoring`: the task process of a daemon (or a monitored `execute`), which
    /// supervises it.
    Disabled,
    /// `--full-monitoring`: a worker of its own (a service, a Slurm job).
    Full,
}

/// The arguments of a child `execute`: `--config-file F execute <monitoring> [extra...] --id T`.
/// mirrors Worker.run_one_task / run_tasks_loop's `execute` command line.
pub fn execute_args(
    config_file: &std::path::Path,
    monitoring: ChildMonitoring,
    extra: &[String],
    task_id: &str,
) -> Vec<String> {
    let mode = match monitoring {
        ChildMonitoring::Disabled => "--disable-monitoring",
        ChildMonitoring::Full => "--full-monitoring",
    };
    let mut args = vec![
        "--config-file".to_string(),
        config_file.display().to_string(),
        "execute".into(),
        mode.into(),
    ];
    args.extend(extra.iter().cloned());
    args.extend(["--id".to_string(), task_id.to_string()]);
    args
}

/// Retries of `workers.unregister` on the way out.
pub const UNREGISTER_RETRIES: u32 = 2;

/// What the daemon's loop and each pulled task share: its settings, its session, its identity,
/// its status reporter, the configuration file its task processes get, and the engine in docker
/// mode.
#[derive(Clone, Copy)]
struct Daemon<'a> {
    cfg: &'a DaemonConfig,
    client: &'a Client,
    worker_id: &'a str,
    reporter: &'a Reporter,
    child_config: &'a ChildConfig,
    engine: Option<&'a Engine>,
}

impl Daemon<'_> {
    /// Pulls and runs tasks until `drain` (or `shutdown`, its parent) is cancelled.
    async fn poll_loop(
        &self,
        queues: &[QueueRef],
        shutdown: CancellationToken,
        drain: CancellationToken,
    ) -> Result<()> {
        let Daemon {
            cfg,
            client,
            worker_id,
            ..
        } = *self;
        if let Some(schedule) = &cfg.schedule {
            for w in &schedule.warnings {
                println!("{w}");
            }
        }
        let mut was_active = true;
        let mut clock = poll::PollClock::new(cfg.poll, queues.len());
        let queue_notices: Vec<crate::exec::notice::FailureNotice> =
            queues.iter().map(|_| Default::default()).collect();
        // Polls give up their retries when the agent is told to stop: a server that is away must
        // not hold a SIGTERM for hours.
        let poller = client.with_stop(drain.clone());
        // Dynamic GPUs run every task as a service on its share of the pool.
        let gpu_queues = if cfg.dynamic_gpus {
            dynamic_gpus::parse_queues(&cfg.queues)?
        } else {
            Vec::new()
        };
        let mut services = if cfg.dynamic_gpus {
            Some(services::Services::with_pool(dynamic_gpus::GpuPool::new(
                cfg.visible_gpus.as_deref().unwrap_or_default(),
            )))
        } else {
            cfg.services_mode.map(services::Services::new)
        };
        'poll: loop {
            if drain.is_cancelled() {
                break;
            }
            // mirrors run_tasks_loop: outside the uptime (inside the downtime) no queue is polled;
            // the check runs once per poll interval, when the loop wakes anyway.
            let active = cfg
                .schedule
                .as_ref()
                .is_none_or(|s| s.active_at(schedule::LocalTime::now()));
            if active != was_active {
                println!(
                    "{}",
                    if active {
                        "Working hours started: pulling tasks"
                    } else {
                        "Outside working hours (uptime/downtime): not pulling tasks"
                    }
                );
                was_active = active;
            }
            let mut ran_any = false;
            for (index, queue) in queues.iter().enumerate().filter(|_| active) {
                if drain.is_cancelled() {
                    break 'poll;
                }
                if services.as_ref().is_some_and(services::Services::is_full) {
                    break;
                }
                let gpus = gpu_queues.get(index);
                if services.as_ref().is_some_and(|s| !s.can_take(gpus)) {
                    // Not enough free GPUs for this queue's tasks: leave them queued.
                    continue;
                }
                let next = match poller.queues().get_next_task(&queue.id, false).await {
                    Ok(next) => {
                        if queue_notices[index].recovered() {
                            println!("Task queue [{}] can be accessed again", queue.id);
                        }
                        next
                    }
                    Err(e) => {
                        // mirrors run_tasks_loop: a failing queue is skipped, not fatal. Said once
                        // per run of failures (Python says it at every poll).
                        if queue_notices[index].first_failure() {
                            println!(
                                "Warning: Could not access task queue [{}], error: {e}",
                                queue.id
                            );
                        }
                        continue;
                    }
                };
                let Some(next) = next else {
                    if cfg.foreground {
                        println!("No tasks in queue {}", queue.id);
                    }
                    continue;
                };
                if !crate::api::is_task_id(&next.task) {
                    println!(
                        "ERROR: skipping a queue entry of {}: {:?} is not a task id (letters, digits, '-' and '_' only); check the server",
                        queue.id, next.task
                    );
                    continue;
                }
                ran_any = true;
                clock.worked();
                if let Some(services) = services.as_mut() {
                    start_service(
                        cfg, client, worker_id, &next.task, gpus, services, &shutdown,
                    )
                    .await;
                } else {
                    self.run_pulled(queue, &next.task, &shutdown).await;
                }
                if !cfg.order_fairness {
                    // Priority: after a task, start again from the first queue at once.
                    break;
                }
            }
            if ran_any && !cfg.order_fairness {
                continue;
            }
            // At the services limit nothing is polled until a service ends.
            let full = services.as_ref().is_some_and(|s| {
                s.is_full()
                    || (!gpu_queues.is_empty() && gpu_queues.iter().all(|q| !s.can_take(Some(q))))
            });
            let wait = clock.next_wait();
            if cfg.foreground && !full {
                println!(
                    "No tasks in Queues, sleeping for {:.1} seconds",
                    wait.as_secs_f64()
                );
            }
            let ended = async {
                match services.as_mut() {
                    Some(s) => s.one_ended().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait), if !full => {}
                _ = drain.cancelled() => {}
                _ = ended => {}
            }
        }
        if let Some(services) = services.as_mut() {
            // Drain: the services finish their tasks; shutdown: each was sent SIGTERM.
            services.wait_all().await;
        }
        Ok(())
    }

    /// Runs one pulled task to its end (a supervised process, or a container in docker mode).
    async fn run_pulled(&self, queue: &QueueRef, task_id: &str, shutdown: &CancellationToken) {
        let Daemon {
            cfg,
            client,
            worker_id,
            reporter,
            child_config,
            engine,
        } = *self;
        // mirrors run_tasks_loop: started(force) "pulled by agent", then an immediate report.
        if !mark_pulled(client, task_id).await {
            return;
        }
        reporter.set_current(Current {
            task: Some(task_id.to_string()),
            queue: Some(queue.id.clone()),
        });
        let mut env = cfg.base_env.clone();
        env.insert(EnvVars::CLEARML_WORKER_ID.into(), worker_id.to_string());
        env.insert(EnvVars::TRAINS_WORKER_ID.into(), worker_id.to_string());
        set_worker_tags(&mut env, &cfg.child_report_tags);
        if let (Some(docker), Some(engine)) = (&cfg.docker, engine) {
            let job = crate::docker::run::ContainerJob {
                task_id: task_id.to_string(),
                worker_id: worker_id.to_string(),
                parent_worker_id: worker_id.to_string(),
                config_file: child_config.path.clone(),
                pulled_from: Some(queue.id.clone()),
                worker_tags: cfg.child_report_tags.clone(),
                host_env: env,
                build: false,
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
            args: execute_args(
                &child_config.path,
                ChildMonitoring::Disabled,
                &cfg.child_args,
                task_id,
            ),
            env,
            cwd: None,
            pulled_from: Some(queue.id.clone()),
        };
        supervise::run_task(client, &cfg.supervise, launch, shutdown.clone()).await;
        reporter.set_current(Current::default());
    }
}

/// Services mode: mark the task started as the daemon does for every pulled task, then hand it
/// to its own monitored `execute` process.
async fn start_service(
    cfg: &DaemonConfig,
    client: &Client,
    worker_id: &str,
    task_id: &str,
    gpus: Option<&dynamic_gpus::GpuQueue>,
    services: &mut services::Services,
    shutdown: &CancellationToken,
) {
    if !mark_pulled(client, task_id).await {
        return;
    }
    // Dynamic GPUs: the task runs on its share of the pool, under the worker id
    // `<name>:gpu<ids>` (mirrors run_tasks_loop: the last part of `<name>:dgpu<pool>` replaced).
    let taken = services.take_gpus(gpus);
    let mut env = cfg.base_env.clone();
    set_worker_tags(&mut env, &cfg.child_report_tags);
    let service_id = match &taken {
        Some(ids) => {
            let ids = ids.join(",");
            env.insert(EnvVars::NVIDIA_VISIBLE_DEVICES.into(), ids.clone());
            env.insert(EnvVars::CUDA_VISIBLE_DEVICES.into(), ids.clone());
            let base = worker_id.rsplit_once(':').map_or(worker_id, |(b, _)| b);
            format!("{base}:gpu{ids}")
        }
        None => services::service_worker_id(worker_id, task_id),
    };
    // Like the Python service process, each service takes a slot of its own in the registry,
    // and with it its own venvs folder; both are released when it ends.
    let started = Registry::new(&cfg.registry_dir)
        .register(Some(&service_id), &cfg.worker_name, true)
        .map_err(anyhow::Error::from)
        .and_then(|reg| {
            let config = ChildConfig::write(
                &cfg.temp_dir,
                &crate::config::slot_tree(&cfg.child_config, &cfg.venvs_dir, reg.slot),
            )?;
            let config_file = config.path.clone();
            let launch = services::ServiceLaunch {
                program: &cfg.self_exe,
                config_file: &config_file,
                base_env: &env,
                worker_id: &service_id,
                docker: cfg.docker.as_ref().map(|d| {
                    (
                        d.default_image.as_str(),
                        d.default_args.as_slice(),
                        worker_id,
                    )
                }),
            };
            services.start(
                &launch,
                task_id,
                shutdown.clone(),
                (reg, config),
                taken.clone().unwrap_or_default(),
            )
        });
    if let Err(e) = started {
        if let Some(ids) = taken {
            services.give_back(ids);
        }
        println!("Warning: cannot run task {task_id} as a service: {e:#}");
    }
}

/// `--child-report-tags` for a task's process (or service), which reports them (mirrors
/// Worker.run_one_task: shell-quoted words in CLEARML_WORKER_TAGS).
fn set_worker_tags(env: &mut BTreeMap<String, String>, tags: &[String]) {
    if !tags.is_empty() {
        env.insert(
            EnvVars::CLEARML_WORKER_TAGS.into(),
            shlex::try_join(tags.iter().map(String::as_str)).unwrap_or_else(|_| tags.join(" ")),
        );
    }
}

/// Marks a pulled task started ("pulled by agent", forced); false (with a warning) when the
/// server refuses, and the task is skipped. mirrors run_tasks_loop.
async fn mark_pulled(client: &Client, task_id: &str) -> bool {
    match client
        .tasks()
        .started(
            &StatusChange::new(task_id)
                .message("pulled by agent")
                .force(true),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            println!("Warning: could not mark task {task_id} as started, skipping it: {e}");
            false
        }
    }
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
