//! The server side of watching a running task: the status poll that notices aborts and the
//! ping. Both run beside the task's output, never in its way: while the server is away their
//! retries wait in the background, and the task's output is still read (a full pipe would
//! stall the task) and its exit still noticed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::OptionFuture;
use tokio::time::{Interval, MissedTickBehavior};

use crate::api::Client;
use crate::exec::logs::{LogLevel, LogPipeline};
use crate::exec::supervise::StopReason;

/// mirrors _check_if_task_should_stop: "created" must be seen this many times in a row.
const RESET_POLLS: u32 = 4;

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The status poll (every `poll_interval`, first after one interval) and the ping (at once,
/// then every `ping_interval`) of one task; at most one of each in flight.
pub(crate) struct ServerChecks<'a> {
    client: &'a Client,
    task_id: &'a str,
    pipeline: &'a LogPipeline,
    poll: Interval,
    ping: Interval,
    check: Option<Pending<'a, (Option<StopReason>, u32)>>,
    pinging: Option<Pending<'a, ()>>,
    created_polls: u32,
}

impl<'a> ServerChecks<'a> {
    pub(crate) fn new(
        client: &'a Client,
        task_id: &'a str,
        pipeline: &'a LogPipeline,
        poll_interval: Duration,
        ping_interval: Duration,
    ) -> ServerChecks<'a> {
        let mut poll =
            tokio::time::interval_at(tokio::time::Instant::now() + poll_interval, poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // mirrors _log_command_output: the first ping right after launch, then every interval.
        let mut ping = tokio::time::interval(ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ServerChecks {
            client,
            task_id,
            pipeline,
            poll,
            ping,
            check: None,
            pinging: None,
            created_polls: 0,
        }
    }

    /// Resolves when a status poll says the task must stop. Cancel-safe: a poll or ping in
    /// flight is kept and goes on at the next call.
    pub(crate) async fn abort_requested(&mut self) -> StopReason {
        loop {
            tokio::select! {
                _ = self.poll.tick(), if self.check.is_none() => {
                    self.check = Some(Box::pin(check_abort(
                        self.client,
                        self.task_id,
                        self.created_polls,
                        self.pipeline,
                    )));
                }
                Some((reason, polls)) = OptionFuture::from(self.check.as_mut()), if self.check.is_some() => {
                    self.check = None;
                    self.created_polls = polls;
                    if let Some(reason) = reason {
                        return reason;
                    }
                }
                _ = self.ping.tick(), if self.pinging.is_none() => {
                    let (client, task_id) = (self.client, self.task_id);
                    self.pinging = Some(Box::pin(async move {
                        if let Err(e) = client.tasks().ping(task_id).await {
                            tracing::warn!("ping of task {task_id} failed: {e}");
                        }
                    }));
                }
                Some(()) = OptionFuture::from(self.pinging.as_mut()), if self.pinging.is_some() => {
                    self.pinging = None;
                }
            }
        }
    }
}

/// One status poll; `created_polls` counts "created" seen in a row, and its new value comes
/// back. mirrors Worker._check_if_task_should_stop.
pub(crate) async fn check_abort(
    client: &Client,
    task_id: &str,
    created_polls: u32,
    pipeline: &LogPipeline,
) -> (Option<StopReason>, u32) {
    let status = match client.tasks().status(task_id).await {
        Ok(Some(status)) => status,
        Ok(None) => return (Some(StopReason::NotFound), created_polls),
        Err(e) if e.is_task_not_found() => return (Some(StopReason::NotFound), created_polls),
        Err(e) => {
            tracing::warn!("cannot poll the status of task {task_id}: {e}");
            return (None, created_polls);
        }
    };
    match status.status.as_str() {
        "in_progress" if status.status_message.contains("stopping") => {
            (Some(StopReason::Stopped), created_polls)
        }
        s @ ("closed" | "stopped" | "failed" | "published" | "queued") => (
            Some(StopReason::StatusChanged(s.to_string())),
            created_polls,
        ),
        "created" => {
            let polls = created_polls + 1;
            if polls >= RESET_POLLS {
                return (Some(StopReason::Reset), polls);
            }
            pipeline.push_line(
                LogLevel::Warning,
                format!(
                    "Warning: Task {task_id} was reset! if state is consistent we shall terminate ({polls}/{RESET_POLLS})."
                ),
            );
            (None, polls)
        }
        _ => (None, 0),
    }
}
