//! Supervising one running task from the outside: spawn its process, ship its output, ping it,
//! poll the server for an abort, kill the whole tree when asked, and report the final status.
//! Used by the daemon (child = `execute --disable-monitoring`) and by a monitored `execute`.
//! It does not prepare code or environments; the child does.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.run_one_task, _log_command_output,
//! _check_if_task_should_stop (abort detection) and handle_task_termination (final status)

use crate::exec::pending_status::{self, PendingStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{Client, RuntimeProperty, StatusChange};
use crate::exec::logs::{LogConfig, LogEvent, LogLevel, LogPipeline, LogSink, SinkError};
use crate::exec::process::{ProcessSpec, TaskProcess};
use crate::exec::server_checks::{CheckTimes, ServerChecks};
use crate::exec::watch::{RunningTask, TaskOutput};

/// How a monitored task is watched; resolved from settings.
#[derive(Debug, Clone)]
pub struct SuperviseConfig {
    /// How often the task status is polled for an abort (the daemon's poll interval).
    pub poll_interval: Duration,
    /// `agent.task_ping_interval_sec` (60 s).
    pub ping_interval: Duration,
    /// SIGTERM to SIGKILL grace when a task is aborted.
    pub kill_grace: Duration,
    /// `agent.abort_callback_max_timeout`: the longest wait for a task's SDK abort callback.
    pub abort_callback_max: Duration,
    /// `agent.suppress_carriage_return`.
    pub suppress_carriage_return: bool,
    /// `--foreground`: the task's output is also printed on our stdout.
    pub echo: bool,
    /// Where a log backlog spills while the server is unreachable.
    pub spill_dir: PathBuf,
    /// How long the end of a task waits for its last log lines to reach the server.
    pub log_finish_timeout: Duration,
    /// `execute --log-file`: the processed output is also written to this file.
    pub log_file: Option<PathBuf>,
    /// Where a final status the server did not take during a shutdown is kept for the next
    /// start (the daemon's state folder; `None` for `execute`, which has no next start).
    pub pending_status_dir: Option<PathBuf>,
    /// The multi-node rank (`RANK`/`SLURM_PROCID`): a rank above 0 changes no status, and its
    /// closing lines say its rank. mirrors Worker.handle_task_process_termination.
    pub node_rank: u32,
    /// `CLEARML_MULTI_NODE_SINGLE_TASK`: a rank above 0 prefixes its output lines with its rank.
    pub multi_node_single_task: bool,
    /// `api.http.max_req_size`: a log request is at most this big (and at most
    /// [`crate::exec::logs::MAX_PACKET_BYTES`]).
    pub max_request_bytes: usize,
}

impl SuperviseConfig {
    /// The timing of the server checks of a running task.
    pub(crate) fn checks(&self) -> CheckTimes {
        CheckTimes {
            poll_interval: self.poll_interval,
            ping_interval: self.ping_interval,
            abort_callback_max: self.abort_callback_max,
        }
    }
}

/// How long the end of a task waits for its last log lines when the agent is stopping.
const SHUTDOWN_LOG_FINISH: Duration = Duration::from_secs(3);

/// The process to run for one task.
#[derive(Debug, Clone)]
pub struct Launch {
    pub task_id: String,
    pub worker_id: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment of the child.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// The queue the daemon pulled the task from (for the "pulled" log line).
    pub pulled_from: Option<String>,
}

pub use crate::exec::ending::{Ending, StopReason};

/// Runs one task to its end, then reports its final status. Never fails: every problem is
/// reported on the task (and printed) and the daemon goes on.
pub async fn run_task(
    client: &Client,
    cfg: &SuperviseConfig,
    launch: Launch,
    shutdown: CancellationToken,
) -> Ending {
    let task_id = launch.task_id.clone();
    let worker_id = launch.worker_id.clone();
    let pipeline = match begin_task(
        client,
        cfg,
        &task_id,
        &worker_id,
        launch.pulled_from.as_deref(),
        "",
    )
    .await
    {
        Ok(pipeline) => pipeline,
        Err(ending) => return ending,
    };

    let cwd = launch
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut spec = ProcessSpec::new(launch.program.as_os_str().to_owned(), cwd);
    spec.args = launch.args.iter().map(Into::into).collect();
    spec.env = launch.env.clone();

    let stopping = shutdown.clone();
    let ending = match TaskProcess::spawn(&spec) {
        Ok(mut process) => {
            watch_process(client, cfg, &task_id, &mut process, &pipeline, shutdown).await
        }
        Err(e) => {
            pipeline.push_line(
                LogLevel::Error,
                format!("cannot start the task process: {e}"),
            );
            Ending::NotStarted(e.to_string())
        }
    };

    // The final status retries as long as the policy allows, unless the agent is stopping: then
    // it is kept for the next start rather than holding the exit, and the last log lines get a
    // short wait only (a server that is away cannot take them).
    let shutdown_cfg;
    let cfg = if stopping.is_cancelled() {
        shutdown_cfg = SuperviseConfig {
            log_finish_timeout: cfg.log_finish_timeout.min(SHUTDOWN_LOG_FINISH),
            ..cfg.clone()
        };
        &shutdown_cfg
    } else {
        cfg
    };
    end_task(
        &client.with_stop(stopping),
        cfg,
        &task_id,
        &worker_id,
        pipeline,
        ending,
    )
    .await
}

/// The end of one supervised task (process or container): the final status, set once every
/// log line has reached the server (so a client that sees the status sees the whole log),
/// and the closing lines on the agent's output.
pub(crate) async fn end_task(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    worker_id: &str,
    pipeline: LogPipeline,
    ending: Ending,
) -> Ending {
    let code = match &ending {
        Ending::Exited(code) => Some(*code),
        _ => None,
    };
    let change = final_status(client, cfg, task_id, &ending, &pipeline).await;
    let report = pipeline.finish(cfg.log_finish_timeout).await;
    // mirrors handle_task_process_termination: only rank 0 changes the task's status.
    if let Some(change) = change.filter(|_| cfg.node_rank == 0) {
        set_final_status(client, cfg, task_id, worker_id, change).await;
    }
    if report.dropped_lines > 0 {
        println!(
            "Warning: {} log lines of task {task_id} were dropped: the server was away and no spill file could be written",
            report.dropped_lines
        );
    }
    if report.undelivered_lines > 0 {
        println!(
            "Warning: {} log lines of task {task_id} could not be delivered to the server",
            report.undelivered_lines
        );
    }
    match code {
        Some(code) => println!("DONE: Running task '{task_id}', exit status {code}"),
        None => println!("DONE: Running task '{task_id}' (user aborted)"),
    }
    ending
}

/// The start of one supervised task (process or container, `mode` " in docker mode" or ""):
/// its log pipeline, the runtime hostname, and the task marked started. A task that cannot be
/// marked started is skipped: the `Err` is its ending. mirrors run_one_task.
pub(crate) async fn begin_task(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    worker_id: &str,
    pulled_from: Option<&str>,
    mode: &str,
) -> Result<LogPipeline, Ending> {
    let pipeline = start_log_pipeline(client, cfg, task_id, worker_id, pulled_from);
    println!("Running task '{task_id}'{mode}");
    // the hostname record and the status are independent: sent side by side, not in a row
    let tasks = client.tasks();
    let change = StatusChange::new(task_id)
        .message("launch by agent")
        .force(true);
    let ((), started) = tokio::join!(set_runtime_hostname(client, task_id), async {
        // mirrors run_one_task: only rank 0 marks the task started.
        if cfg.node_rank == 0 {
            tasks.started(&change).await.map(drop)
        } else {
            Ok(())
        }
    });
    if let Err(e) = started {
        println!("Warning: could not start task {task_id}, skipping it: {e}");
        pipeline.finish(cfg.log_finish_timeout).await;
        return Err(Ending::NotStarted(e.to_string()));
    }
    Ok(pipeline)
}

/// The log pipeline of one supervised task (process or container): output echoed to the
/// `--log-file` or, in `--foreground`, to stdout, and the "pulled" notice first.
fn start_log_pipeline(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    worker_id: &str,
    pulled_from: Option<&str>,
) -> LogPipeline {
    let mut log_cfg = LogConfig::new(task_id, worker_id, cfg.spill_dir.clone());
    log_cfg.suppress_carriage_return = cfg.suppress_carriage_return;
    log_cfg.max_packet_bytes = cfg
        .max_request_bytes
        .min(crate::exec::logs::MAX_PACKET_BYTES);
    if cfg.multi_node_single_task && cfg.node_rank > 0 {
        // mirrors _log_command_output: the rank, colored (ANSI 8-bit), before the lines.
        log_cfg.output_prefix = Some(format!(
            "\u{1b}[38;5;{}mRANK {}:\u{1b}[0m ",
            20 + cfg.node_rank % 210,
            cfg.node_rank
        ));
    }
    if let Some(path) = &cfg.log_file {
        match std::fs::File::create(path) {
            Ok(file) => log_cfg.echo = Some(Box::new(file)),
            Err(e) => println!("Warning: cannot write the log file {}: {e}", path.display()),
        }
    } else if cfg.echo {
        log_cfg.echo = Some(Box::new(std::io::stdout()));
    }
    let pipeline = LogPipeline::start(log_cfg, Arc::new(ApiLogSink::new(client)));
    if let Some(queue) = pulled_from {
        pipeline.push_line(
            LogLevel::Info,
            format!("task {task_id} pulled from {queue} by worker {worker_id}"),
        );
    }
    pipeline
}

/// A task's process tree as the watch loop sees it.
struct WatchedProcess<'a> {
    process: &'a mut TaskProcess,
    kill_grace: Duration,
}

impl RunningTask for WatchedProcess<'_> {
    // Cancel-safe: once the child has exited, this kills what is left of its tree (so a
    // background job holding the output pipe cannot keep us waiting).
    async fn exit(&mut self) -> Result<i32, String> {
        self.process
            .wait()
            .await
            .map_err(|e| format!("lost track of the task process: {e}"))
    }

    // mirrors worker.py: _log_command_output, which calls kill_all_child_processes (SIGKILL to
    // the whole tree at once) when the task was stopped; only the agent's own shutdown gives the
    // task a grace period after SIGTERM.
    async fn end(&mut self, reason: &StopReason) -> Result<(), String> {
        let grace = match reason {
            StopReason::AgentShutdown => self.kill_grace,
            _ => Duration::ZERO,
        };
        self.process
            .kill_tree(grace)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot kill the task: {e}"))
    }

    fn stopping_line(&self, what: &str) -> String {
        format!(
            "User aborted: stopping task ({}) {what}",
            self.process.pid()
        )
    }

    fn drain_wait(&self) -> Option<Duration> {
        None
    }
}

impl TaskOutput for crate::exec::process::OutputStream {
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.next_chunk().await.map(Ok)
    }
}

/// Feeds output to the pipeline and waits for the process, an abort or a shutdown.
async fn watch_process(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    process: &mut TaskProcess,
    pipeline: &LogPipeline,
    shutdown: CancellationToken,
) -> Ending {
    let mut output = process.take_output();
    let mut checks = ServerChecks::new(client, task_id, pipeline, &cfg.checks());
    let mut task = WatchedProcess {
        process,
        kill_grace: cfg.kill_grace,
    };
    crate::exec::watch::watch(
        &mut task,
        output.as_mut(),
        &mut checks,
        pipeline,
        &mut |_| {},
        shutdown,
    )
    .await
}

/// The final status change a task gets (shared with docker mode, `docker/run.rs`).
pub(crate) enum FinalChange {
    Completed,
    Stopped(&'static str),
    Failed(String),
}

/// Decides the final status and logs its line. mirrors Worker.handle_task_termination.
pub(crate) async fn final_status(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    ending: &Ending,
    pipeline: &LogPipeline,
) -> Option<FinalChange> {
    // mirrors handle_task_process_termination: a rank above 0 says its rank.
    let rank = if cfg.node_rank > 0 {
        format!(" - rank {}", cfg.node_rank)
    } else {
        String::new()
    };
    match ending {
        Ending::Stopped(StopReason::Stopped) | Ending::Stopped(StopReason::AgentShutdown) => {
            let current = client.tasks().status(task_id).await.ok().flatten();
            if current.as_ref().is_some_and(|s| s.status == "failed") {
                pipeline.push_line(
                    LogLevel::Debug,
                    "Process aborted by user - Task status was Failed",
                );
                return None;
            }
            pipeline.push_line(LogLevel::Debug, "Process aborted by user");
            Some(FinalChange::Stopped(
                if matches!(ending, Ending::Stopped(StopReason::Stopped)) {
                    "task was stopped by tasks.stop"
                } else {
                    "user abort"
                },
            ))
        }
        Ending::Stopped(_) => {
            // The status was changed elsewhere: only a local note.
            println!("Task {task_id} was changed from outside the agent, not updating its status");
            None
        }
        Ending::NotStarted(_) => None,
        Ending::Exited(0) => {
            pipeline.push_line(
                LogLevel::Debug,
                format!("Process completed successfully{rank}"),
            );
            Some(FinalChange::Completed)
        }
        Ending::Exited(code @ (-2 | 254)) => {
            pipeline.push_line(
                LogLevel::Debug,
                format!("Process terminated by user ({code}){rank}"),
            );
            Some(FinalChange::Stopped("user abort"))
        }
        Ending::Exited(code) => {
            pipeline.push_line(
                LogLevel::Debug,
                format!("Process failed, exit code {code}{rank}"),
            );
            // A setup failure inside the child already failed the task with a reason naming the
            // stage; keep that reason rather than overwrite it with the bare exit code.
            let current = client.tasks().status(task_id).await.ok().flatten();
            if current.as_ref().is_some_and(|s| s.status == "failed") {
                return None;
            }
            Some(FinalChange::Failed(format!(
                "worker execution exit code {code}"
            )))
        }
    }
}

pub(crate) async fn set_final_status(
    client: &Client,
    cfg: &SuperviseConfig,
    task_id: &str,
    worker_id: &str,
    change: FinalChange,
) {
    let (status, reason) = match change {
        FinalChange::Completed => ("completed", "worker execution done".to_owned()),
        FinalChange::Stopped(reason) => ("stopped", reason.to_owned()),
        FinalChange::Failed(reason) => ("failed", reason),
    };
    let Err(e) = send_status(client, task_id, worker_id, status, &reason).await else {
        return;
    };
    println!("Warning: could not set the final status of task {task_id}: {e}");
    // Given up because the agent is stopping: the next start of this worker sets it.
    if let Some(dir) = &cfg.pending_status_dir {
        let pending = PendingStatus {
            task: task_id.to_owned(),
            worker: worker_id.to_owned(),
            status: status.to_owned(),
            reason,
        };
        match pending_status::save(dir, &pending) {
            Ok(path) => println!(
                "The final status ({status}) of task {task_id} is kept in {} and set at the next start of worker {worker_id}",
                path.display()
            ),
            Err(e) => println!("Warning: cannot keep the final status of task {task_id}: {e}"),
        }
    }
}

/// Sets a final status (`completed`, `stopped` or `failed`) with the agent's message.
pub async fn send_status(
    client: &Client,
    task_id: &str,
    worker_id: &str,
    status: &str,
    reason: &str,
) -> Result<(), crate::api::Error> {
    let change = StatusChange::by_agent(task_id, worker_id)
        .reason(reason)
        .force(false);
    let tasks = client.tasks();
    match status {
        "completed" => tasks.completed(&change).await,
        "stopped" => tasks.stopped(&change).await,
        _ => tasks.failed(&change).await,
    }
    .map(drop)
}

/// mirrors Worker._set_runtime_hostname.
async fn set_runtime_hostname(client: &Client, task_id: &str) {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    if let Err(e) = client
        .tasks()
        .set_runtime_property(task_id, RuntimeProperty::AgentHostname, &host)
        .await
    {
        tracing::warn!("cannot set the runtime properties of task {task_id}: {e}");
    }
}

/// Ships log events through the API client. The pipeline has its own backoff and spill, so this
/// client retries little: a send that fails comes back to the pipeline quickly.
pub struct ApiLogSink {
    client: Client,
}

impl ApiLogSink {
    pub fn new(client: &Client) -> ApiLogSink {
        ApiLogSink {
            client: client.with_retries(1),
        }
    }
}

impl LogSink for ApiLogSink {
    async fn send(&self, events: &[LogEvent]) -> Result<(), SinkError> {
        let wire: Vec<crate::api::LogEvent> = events
            .iter()
            .map(|e| crate::api::LogEvent {
                task: e.task.clone(),
                level: e.level.clone(),
                worker: e.worker.clone(),
                msg: e.msg.clone(),
                timestamp: e.timestamp_ms,
            })
            .collect();
        match self.client.events().add_log_events(&wire).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_transport() || e.server_code().is_some_and(|(c, _)| c >= 500) => {
                Err(SinkError::Retryable(e.to_string()))
            }
            Err(e) if e.is_unauthorized() => Err(SinkError::Retryable(e.to_string())),
            // A reply that is no ClearML envelope (a proxy's page, a cut body) says nothing about
            // the lines: sent again, as a duplicate line is better than a lost one.
            Err(e @ crate::api::Error::BadResponse { .. }) => {
                Err(SinkError::Retryable(e.to_string()))
            }
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}
