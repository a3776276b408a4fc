//! The one loop that watches a running task, a process tree or a container alike: its output
//! into the log pipeline, its exit, the server's abort checks and the agent's shutdown. On a
//! stop it ends the task and reads what the task printed last. The task side is a trait:
//! `exec/supervise.rs` implements it for a process tree, `docker/run.rs` for a container.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exec::ending::{Ending, StopReason};
use crate::exec::logs::{LogLevel, LogPipeline};
use crate::exec::server_checks::ServerChecks;

/// The output of a running task. `next` must be cancel-safe (the loop drops it when another
/// branch wins).
pub(crate) trait TaskOutput: Send {
    /// The next chunk; `None` at its end, `Err` when reading broke (logged, then its end).
    fn next(&mut self) -> impl Future<Output = Option<Result<Vec<u8>, String>>> + Send;
}

/// A running task: what the loop waits for and how it ends it.
pub(crate) trait RunningTask: Send {
    /// Resolves with the exit code once the task is over. Cancel-safe: called again after the
    /// loop dropped it, it resumes.
    fn exit(&mut self) -> impl Future<Output = Result<i32, String>> + Send;
    /// Ends the task for `reason`.
    fn end(&mut self, reason: &StopReason) -> impl Future<Output = Result<(), String>> + Send;
    /// The log line said before it is ended (`what` is [`StopReason::describe`]).
    fn stopping_line(&self, what: &str) -> String;
    /// After a stop, each read of the remaining output waits at most this long (`None`: read to
    /// its end, the task is known to be gone).
    fn drain_wait(&self) -> Option<Duration>;
}

/// Watches `task` until it exits or is stopped. Every chunk of output goes to `on_output`, then
/// to the pipeline. A task that exits because its abort callback ended it counts as stopped.
pub(crate) async fn watch<T: RunningTask, O: TaskOutput>(
    task: &mut T,
    mut output: Option<&mut O>,
    checks: &mut ServerChecks<'_>,
    pipeline: &LogPipeline,
    on_output: &mut (dyn FnMut(&[u8]) + Send),
    shutdown: CancellationToken,
) -> Ending {
    let stop = loop {
        tokio::select! {
            chunk = next(&mut output), if output.is_some() => {
                if !take(chunk, pipeline, on_output).await {
                    output = None;
                }
            }
            code = task.exit() => {
                let code = code.unwrap_or_else(|e| {
                    pipeline.push_line(LogLevel::Error, e);
                    -1
                });
                // Once the task is over its output ends: read it to that end.
                drain(&mut output, None, pipeline, on_output).await;
                if checks.ended_by_abort(code).await {
                    return Ending::Stopped(StopReason::Stopped);
                }
                return Ending::Exited(code);
            }
            reason = checks.abort_requested() => break reason,
            _ = shutdown.cancelled() => break StopReason::AgentShutdown,
        }
    };
    pipeline.push_line(LogLevel::Error, task.stopping_line(&stop.describe()));
    if let Err(e) = task.end(&stop).await {
        pipeline.push_line(LogLevel::Error, e);
    }
    // Whatever the task printed before it died still goes to the server.
    drain(&mut output, task.drain_wait(), pipeline, on_output).await;
    Ending::Stopped(stop)
}

async fn next<O: TaskOutput>(output: &mut Option<&mut O>) -> Option<Result<Vec<u8>, String>> {
    match output.as_mut() {
        Some(out) => out.next().await,
        None => None,
    }
}

/// Passes one read on; false when the output is over.
async fn take(
    chunk: Option<Result<Vec<u8>, String>>,
    pipeline: &LogPipeline,
    on_output: &mut (dyn FnMut(&[u8]) + Send),
) -> bool {
    match chunk {
        Some(Ok(bytes)) => {
            on_output(&bytes);
            pipeline.push_task_output(bytes).await;
            true
        }
        Some(Err(e)) => {
            pipeline.push_line(LogLevel::Error, e);
            false
        }
        None => false,
    }
}

/// Reads the output to its end, each read waiting at most `wait` when given.
async fn drain<O: TaskOutput>(
    output: &mut Option<&mut O>,
    wait: Option<Duration>,
    pipeline: &LogPipeline,
    on_output: &mut (dyn FnMut(&[u8]) + Send),
) {
    while output.is_some() {
        let chunk = match wait {
            Some(limit) => tokio::time::timeout(limit, next(output))
                .await
                .unwrap_or(None),
            None => next(output).await,
        };
        if !take(chunk, pipeline, on_output).await {
            *output = None;
        }
    }
}
