//! The Slurm glue (`clearml-agent slurm`): a registered worker that pulls tasks from its queues
//! and submits each as a Slurm batch job running `clearml-agent execute --full-monitoring
//! --require-queue --id T`, then follows the job until it ends and settles the task from it.
//!
//! A pulled task waits, queued, in the pending queue (`agent.slurm.pending_queue`) until its job
//! starts and `execute` takes it from there (as the Python k8s glue does with its
//! `k8s_scheduler` queue); its status message names the job and why it is pending. Each poll asks
//! the server (task statuses, queues) and the controller (`squeue`) once, no more often than
//! `agent.slurm.poll_interval_sec`. The ledger file makes a restart safe.

pub mod controller;
pub mod job;
pub mod ledger;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::api::{Client, LogEvent, StatusChange, StatusReport};
use crate::config::slurm::{SlurmSettings, task_overrides};
use crate::worker::queues::{self, QueueRef};
use crate::worker::registry::{self, Registry};
use controller::Controller;
use job::{JobInfo, JobRequest, JobState};
use ledger::{Entry, Ledger};

/// Lines of a job's output file sent to the task log when `execute` did not end the task.
const OUTPUT_TAIL_LINES: usize = 2000;

/// Everything the glue needs, resolved from settings before the runtime starts.
#[derive(Debug, Clone)]
pub struct GlueConfig {
    pub initial_connect_retries: u32,
    /// `agent.worker_id` / `CLEARML_WORKER_ID`, if set.
    pub worker_id: Option<String>,
    pub worker_name: String,
    pub queues: Vec<String>,
    pub create_queue: bool,
    pub order_fairness: bool,
    pub foreground: bool,
    /// How often the worker's status (with the cluster's queue depth) is reported.
    pub report_interval: Duration,
    /// Folder of the per-agent pid files (the system temp dir), shared with `daemon --stop`.
    pub registry_dir: PathBuf,
    /// This binary, resolved once at start; the jobs run it on the compute nodes.
    pub self_exe: PathBuf,
    /// The configuration file the jobs' `execute` reads.
    pub config_file: PathBuf,
    /// `--debug`, passed on to `execute`.
    pub debug: bool,
    /// `--docker [image [args]]`: the words passed on to `execute --docker`.
    pub docker: Option<Vec<String>>,
    pub cluster: SlurmSettings,
}

/// Runs until `shutdown` turns true; jobs keep running on the cluster and a restarted glue
/// adopts them from its ledger.
pub async fn run(cfg: GlueConfig, client: Client, shutdown: CancellationToken) -> Result<()> {
    if !crate::worker::control::first_login(&client, cfg.initial_connect_retries, &shutdown).await?
    {
        return Ok(());
    }
    // The Slurm tools must be here: fail at start, not at every poll.
    if let Err(e @ controller::SlurmError::Spawn { .. }) =
        Controller.jobs(&cfg.cluster.job_name_prefix).await
    {
        return Err(e.into());
    }
    let queues = queues::resolve(&client, &cfg.queues, cfg.create_queue).await?;
    let pending = queues::resolve(
        &client,
        std::slice::from_ref(&cfg.cluster.pending_queue),
        true,
    )
    .await?
    .into_iter()
    .next()
    .context("the server created no pending queue")?;
    let (fixed, name) =
        registry::worker_identity(cfg.worker_id.as_deref(), &cfg.worker_name, None, false);
    let registration = Registry::new(&cfg.registry_dir).register(fixed.as_deref(), &name, false)?;
    let worker_id = registration.worker_id.clone();
    let queue_ids: Vec<String> = queues.iter().map(|q| q.id.clone()).collect();
    client
        .workers()
        .register(&worker_id, &queue_ids, None)
        .await
        .context("cannot register the worker")?;
    println!(
        "Slurm glue \"{worker_id}\" - listening to queues: {} (at most {} jobs in flight)",
        queues
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.cluster.max_jobs
    );
    let ledger_path = cfg
        .cluster
        .output_dir
        .join(format!("{}.jobs.json", file_safe(&worker_id)));
    let mut glue = Glue {
        cfg: &cfg,
        client: &client,
        controller: Controller,
        worker_id: worker_id.clone(),
        pending,
        ledger: Ledger::load(&ledger_path)?,
        next_queue: 0,
    };
    if !glue.ledger.entries.is_empty() {
        println!(
            "Picking up {} task(s) of a previous run from {}",
            glue.ledger.entries.len(),
            ledger_path.display()
        );
    }
    let result = glue.poll_loop(&queues, &queue_ids, shutdown).await;
    if let Err(e) = client
        .with_retries(crate::worker::UNREGISTER_RETRIES)
        .workers()
        .unregister(&worker_id, &queue_ids)
        .await
    {
        tracing::warn!("cannot unregister worker {worker_id}: {e}");
    }
    drop(registration);
    result
}

struct Glue<'a> {
    cfg: &'a GlueConfig,
    client: &'a Client,
    controller: Controller,
    worker_id: String,
    pending: QueueRef,
    ledger: Ledger,
    /// Round robin position with `--order-fairness`.
    next_queue: usize,
}

impl Glue<'_> {
    async fn poll_loop(
        &mut self,
        queues: &[QueueRef],
        queue_ids: &[String],
        shutdown: CancellationToken,
    ) -> Result<()> {
        let mut last_report: Option<(Instant, (usize, usize))> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let jobs = match self
                .controller
                .jobs(&self.cfg.cluster.job_name_prefix)
                .await
            {
                Ok(jobs) => Some(jobs),
                Err(e) => {
                    println!("Warning: cannot list Slurm jobs: {e}");
                    None
                }
            };
            if let Some(jobs) = &jobs {
                self.follow(jobs).await;
                self.pull(queues).await;
                // Reported when the depth changes, and at least every report interval.
                let depth = self.depth(jobs);
                let due = last_report
                    .as_ref()
                    .is_none_or(|(t, d)| *d != depth || t.elapsed() >= self.cfg.report_interval);
                if due {
                    self.report(queue_ids, depth).await;
                    last_report = Some((Instant::now(), depth));
                }
            }
            if let Err(e) = self.ledger.save() {
                println!("Warning: {e:#}");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.cluster.poll_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        Ok(())
    }

    fn job_name(&self, task_id: &str) -> String {
        format!("{}{task_id}", self.cfg.cluster.job_name_prefix)
    }

    /// Settles every task in flight against the controller's view and the server's statuses.
    async fn follow(&mut self, jobs: &[JobInfo]) {
        if self.ledger.entries.is_empty() {
            return;
        }
        let by_name: BTreeMap<&str, &JobInfo> = jobs.iter().map(|j| (j.name.as_str(), j)).collect();
        let ids: Vec<String> = self.ledger.entries.keys().cloned().collect();
        let statuses = match self.client.tasks().statuses(&ids).await {
            Ok(s) => s,
            Err(e) => {
                println!("Warning: cannot read task statuses: {e}");
                return;
            }
        };
        for task_id in ids {
            let Some(entry) = self.ledger.entries.get(&task_id).cloned() else {
                continue;
            };
            let name = self.job_name(&task_id);
            // The newest job of this task (a name is reused only after a resubmission).
            let job = by_name.get(name.as_str()).copied();
            let status = statuses.get(&task_id);
            let Some(status) = status else {
                // The task was deleted: nothing to report to; cancel what still runs.
                if let Some(job) = job.filter(|j| !j.state.ended()) {
                    let _ = self.controller.cancel(&job.id).await;
                }
                self.ledger.entries.remove(&task_id);
                continue;
            };
            match (job, &entry.job_id) {
                (Some(job), _) if job.state.ended() => {
                    self.ended(&task_id, &entry, job, &status.status).await;
                    self.ledger.entries.remove(&task_id);
                }
                (Some(job), _) => {
                    if entry.job_id.as_deref() != Some(job.id.as_str()) {
                        // Adopted after a restart: sbatch had answered, the ledger had not heard.
                        if let Some(e) = self.ledger.entries.get_mut(&task_id) {
                            e.job_id = Some(job.id.clone());
                        }
                    }
                    let aborted = status.status == "stopped"
                        || (status.status == "in_progress" && status.status_message == "stopping");
                    if aborted && !entry.cancelled {
                        println!("Task {task_id} aborted: cancelling Slurm job {}", job.id);
                        match self.controller.cancel(&job.id).await {
                            Ok(()) => {
                                if let Some(e) = self.ledger.entries.get_mut(&task_id) {
                                    e.cancelled = true;
                                }
                            }
                            Err(e) => println!("Warning: cannot cancel job {}: {e}", job.id),
                        }
                    } else if job.state == JobState::Pending && status.status == "queued" {
                        let reason = if job.reason.is_empty() || job.reason == "None" {
                            "waiting".to_string()
                        } else {
                            job.reason.clone()
                        };
                        let message = format!("Slurm job {} pending ({reason})", job.id);
                        self.set_message(&task_id, &message).await;
                    }
                }
                (None, None) => {
                    // Pulled, then the glue died before sbatch answered (and no job by its
                    // name exists): move it (back) into the pending queue and submit it now.
                    if status.status == "queued" {
                        let queue = entry.queue.clone();
                        let _ = self.client.tasks().dequeue(&task_id, None).await;
                        self.take(&task_id, &queue).await;
                    } else {
                        self.ledger.entries.remove(&task_id);
                    }
                }
                (None, Some(job_id)) => {
                    // The controller forgot the job (or it never showed up).
                    if matches!(status.status.as_str(), "queued" | "in_progress") {
                        let reason = format!(
                            "Slurm job {job_id} vanished from the controller before the task ended"
                        );
                        println!("Task {task_id}: {reason}");
                        self.fail(&task_id, &status.status, &reason).await;
                    }
                    self.ledger.entries.remove(&task_id);
                }
            }
        }
    }

    /// The job ended: the task ends as its job did, unless `execute` already ended it.
    async fn ended(&self, task_id: &str, entry: &Entry, job: &JobInfo, status: &str) {
        let unfinished = matches!(status, "queued" | "in_progress");
        if entry.cancelled || (job.state == JobState::Cancelled && status == "stopped") {
            if status != "stopped" {
                let change = StatusChange::new(task_id)
                    .reason("aborted")
                    .message(format!("Slurm job {} cancelled", job.id))
                    .force(true);
                self.dequeue_if_queued(task_id, status).await;
                if let Err(e) = self.client.tasks().stopped(&change).await {
                    println!("Warning: cannot mark task {task_id} stopped: {e}");
                }
            }
            println!("Task {task_id}: Slurm job {} cancelled", job.id);
            return;
        }
        let exit_code = match job.state {
            JobState::Failed => self.controller.exit_code(&job.id).await,
            _ => None,
        };
        let failure = job.state.failure(&job.id, exit_code.as_deref());
        // A job killed by Slurm fails its task even when `execute` marked it stopped on the way out.
        let forced = matches!(
            job.state,
            JobState::Timeout | JobState::OutOfMemory | JobState::NodeFail | JobState::Preempted
        ) && status != "completed";
        let reason = match (failure, unfinished) {
            (Some(reason), _) if unfinished || forced => Some(reason),
            (None, true) => Some(format!(
                "Slurm job {} ended before the task did (see the job output in the log)",
                job.id
            )),
            _ => None,
        };
        println!(
            "Task {task_id}: Slurm job {} ended {:?}{}",
            job.id,
            job.state,
            reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        if let Some(reason) = reason {
            self.ship_output(task_id, &job.id).await;
            self.fail(task_id, status, &reason).await;
        }
    }

    async fn dequeue_if_queued(&self, task_id: &str, status: &str) {
        if status == "queued" {
            let _ = self.client.tasks().dequeue(task_id, None).await;
        }
    }

    async fn fail(&self, task_id: &str, status: &str, reason: &str) {
        self.dequeue_if_queued(task_id, status).await;
        let change = StatusChange::new(task_id)
            .reason(reason)
            .message(reason)
            .force(true);
        if let Err(e) = self.client.tasks().failed(&change).await {
            println!("Warning: cannot mark task {task_id} failed: {e}");
        }
    }

    /// Sends the job's output file to the task log: what the job printed outside `execute`
    /// (Slurm's own errors, a node that could not start it) never reached the server otherwise.
    async fn ship_output(&self, task_id: &str, job_id: &str) {
        let path = self.output_path(task_id);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..];
        let now = chrono_ms();
        let mut msg = format!("Slurm job {job_id} output ({}):\n", path.display());
        msg.push_str(&tail.join("\n"));
        let event = LogEvent {
            task: task_id.to_string(),
            level: "INFO".into(),
            worker: self.worker_id.clone(),
            msg,
            timestamp: now,
        };
        if let Err(e) = self.client.events().add_log_events(&[event]).await {
            println!("Warning: cannot send the output of job {job_id}: {e}");
        }
    }

    async fn set_message(&mut self, task_id: &str, message: &str) {
        let unchanged = self
            .ledger
            .entries
            .get(task_id)
            .is_some_and(|e| e.message == message);
        if unchanged {
            return;
        }
        match self
            .client
            .tasks()
            .set_status_message(task_id, message)
            .await
        {
            Ok(()) => {
                if let Some(e) = self.ledger.entries.get_mut(task_id) {
                    e.message = message.to_string();
                }
            }
            Err(e) => println!("Warning: cannot set the status message of {task_id}: {e}"),
        }
    }

    fn output_path(&self, task_id: &str) -> PathBuf {
        self.cfg.cluster.output_dir.join(format!("{task_id}.out"))
    }

    /// Takes tasks from the queues while fewer than `max_jobs` are in flight.
    async fn pull(&mut self, queues: &[QueueRef]) {
        if queues.is_empty() {
            return;
        }
        while self.ledger.entries.len() < self.cfg.cluster.max_jobs {
            let mut took = false;
            for i in 0..queues.len() {
                let index = if self.cfg.order_fairness {
                    (self.next_queue + i) % queues.len()
                } else {
                    i
                };
                let queue = &queues[index];
                match self.client.queues().get_next_task(&queue.id, false).await {
                    Ok(Some(next)) => {
                        self.next_queue = (index + 1) % queues.len();
                        let task_id = next.task.clone();
                        self.take(&task_id, &queue.name).await;
                        took = true;
                        break;
                    }
                    Ok(None) => {
                        if self.cfg.foreground {
                            println!("No tasks in queue {}", queue.name);
                        }
                    }
                    Err(e) => println!(
                        "Warning: Could not access task queue [{}], error: {e}",
                        queue.id
                    ),
                }
            }
            if !took {
                break;
            }
        }
    }

    /// A task just taken from `queue`: into the ledger, into the pending queue, then to sbatch.
    async fn take(&mut self, task_id: &str, queue: &str) {
        self.ledger.entries.insert(
            task_id.to_string(),
            Entry {
                queue: queue.to_string(),
                ..Entry::default()
            },
        );
        if let Err(e) = self.ledger.save() {
            println!("Warning: {e:#}");
        }
        let change = StatusChange::new(task_id)
            .reason("slurm pending scheduler")
            .message("submitting to Slurm")
            .force(true);
        if let Err(e) = self
            .client
            .tasks()
            .enqueue(&change, Some(&self.pending.id))
            .await
        {
            println!(
                "Warning: cannot move task {task_id} to the pending queue {}: {e}",
                self.pending.name
            );
            self.fail(
                task_id,
                "queued",
                &format!("cannot move to the Slurm pending queue: {e}"),
            )
            .await;
            self.ledger.entries.remove(task_id);
            return;
        }
        self.submit(task_id, queue).await;
    }

    async fn submit(&mut self, task_id: &str, queue: &str) {
        let resources = match self.task_resources(task_id, queue).await {
            Ok(r) => r,
            Err(reason) => {
                println!("Task {task_id}: {reason}");
                self.fail(task_id, "queued", &reason).await;
                self.ledger.entries.remove(task_id);
                return;
            }
        };
        let output = self.output_path(task_id);
        if let Err(e) = std::fs::create_dir_all(&self.cfg.cluster.output_dir) {
            println!(
                "Warning: cannot create {}: {e}",
                self.cfg.cluster.output_dir.display()
            );
        }
        let mut command = vec![self.cfg.self_exe.display().to_string()];
        if self.cfg.debug {
            command.push("--debug".into());
        }
        command.extend(crate::worker::execute_args(
            &self.cfg.config_file,
            crate::worker::ChildMonitoring::Full,
            &["--require-queue".to_string()],
            task_id,
        ));
        if let Some(words) = &self.cfg.docker {
            command.push("--docker".into());
            command.extend(words.iter().cloned());
        }
        let request = JobRequest {
            task_id,
            job_name: self.job_name(task_id),
            resources,
            output: &output,
            template: &self.cfg.cluster.template,
            command,
            worker_prefix: &format!("{}:slurm-", self.cfg.worker_name),
        };
        match self
            .controller
            .submit(&request.sbatch_args(), &request.script())
            .await
        {
            Ok(job_id) => {
                println!("Task {task_id} (queue {queue}) submitted as Slurm job {job_id}");
                if let Some(e) = self.ledger.entries.get_mut(task_id) {
                    e.job_id = Some(job_id.clone());
                }
                if let Err(e) = self.ledger.save() {
                    println!("Warning: {e:#}");
                }
                self.set_message(task_id, &format!("Slurm job {job_id} submitted"))
                    .await;
            }
            Err(e) => {
                let reason = format!("sbatch refused the job: {e}");
                println!("Task {task_id}: {reason}");
                self.fail(task_id, "queued", &reason).await;
                self.ledger.entries.remove(task_id);
            }
        }
    }

    /// The queue's resources with the task's own section (`agent.slurm.task_section`) over them.
    async fn task_resources(
        &self,
        task_id: &str,
        queue: &str,
    ) -> Result<crate::config::slurm::JobResources, String> {
        let base = self.cfg.cluster.resources_for(queue);
        let params = self
            .client
            .tasks()
            .get_hyper_params(&[task_id.to_string()])
            .await
            .map_err(|e| format!("cannot read the task's hyperparameters: {e}"))?;
        let section = &self.cfg.cluster.task_section;
        let own: Vec<(String, String)> = params
            .into_iter()
            .flat_map(|p| p.hyperparams)
            .filter(|h| &h.section == section)
            .map(|h| (h.name, h.value))
            .collect();
        let over = task_overrides(&own).map_err(|e| {
            format!("bad Slurm override in hyperparameter section `{section}`: {e}")
        })?;
        Ok(base.overlay(&over))
    }

    /// This glue's jobs in the controller: (pending, running or finishing).
    fn depth(&self, jobs: &[JobInfo]) -> (usize, usize) {
        let mine = jobs.iter().filter(|j| {
            !j.state.ended()
                && j.name
                    .strip_prefix(&self.cfg.cluster.job_name_prefix)
                    .is_some_and(|t| self.ledger.entries.contains_key(t))
        });
        let (pending, other): (Vec<&JobInfo>, Vec<&JobInfo>) =
            mine.partition(|j| j.state == JobState::Pending);
        (pending.len(), other.len())
    }

    /// The worker's status report: the cluster's queue depth (this glue's pending and running
    /// jobs) as tags, which `clearml-agent list` and the UI show.
    async fn report(&self, queue_ids: &[String], (pending, running): (usize, usize)) {
        let report = StatusReport {
            worker: self.worker_id.clone(),
            timestamp: chrono_ms() / 1000 * 1000,
            machine_stats: None,
            tags: Some(vec![
                "slurm".into(),
                format!("slurm-pending:{pending}"),
                format!("slurm-running:{running}"),
            ]),
            is_daemon: true,
            task: None,
            queue: None,
            queues: Some(queue_ids.to_vec()),
        };
        if let Err(e) = self.client.workers().status_report(&report).await {
            tracing::debug!("status report failed: {e}");
        }
    }
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A worker id as a file name (`:` and `/` replaced).
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
