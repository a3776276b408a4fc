//! The server side of watching a running task: the status poll that notices aborts and the
//! ping. Both run beside the task's output, never in its way: while the server is away their
//! retries wait in the background, and the task's output is still read (a full pipe would
//! stall the task) and its exit still noticed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::OptionFuture;
use tokio::time::{Interval, MissedTickBehavior};

use crate::api::Client;
use crate::exec::ending::StopReason;
use crate::exec::logs::{LogLevel, LogPipeline};
use crate::exec::notice::FailureNotice;

/// mirrors _check_if_task_should_stop: "created" must be seen this many times in a row.
const RESET_POLLS: u32 = 4;
/// A task the server says does not exist must be missing this many polls in a row before it is
/// killed: one empty reply from a proxy or a failover must not end a running task.
const NOT_FOUND_POLLS: u32 = 3;

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the status polls remember from one to the next.
#[derive(Debug, Clone, Copy, Default)]
struct PollState {
    /// "created" seen this many times in a row.
    created_polls: u32,
    /// The task not found this many times in a row.
    not_found_polls: u32,
    /// The last poll failed and said so in the agent's log: the next failures stay quiet.
    failing: bool,
    /// A stop was seen and the task's SDK abort callback is being waited for: since when, and
    /// for how long at most.
    callback: Option<(Instant, Duration)>,
}

/// When the server checks of a running task happen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckTimes {
    /// How often the task status is polled for an abort.
    pub poll_interval: Duration,
    /// How often the task is pinged.
    pub ping_interval: Duration,
    /// The longest wait for a task's SDK abort callback.
    pub abort_callback_max: Duration,
}

/// The status poll (every `poll_interval`, first after one interval) and the ping (at once,
/// then every `ping_interval`) of one task; at most one of each in flight.
pub(crate) struct ServerChecks<'a> {
    client: &'a Client,
    task_id: &'a str,
    pipeline: &'a LogPipeline,
    poll: Interval,
    ping: Interval,
    callback_max: Duration,
    check: Option<Pending<'a, (Option<StopReason>, PollState)>>,
    pinging: Option<Pending<'a, ()>>,
    ping_notice: Arc<FailureNotice>,
    state: PollState,
}

impl<'a> ServerChecks<'a> {
    pub(crate) fn new(
        client: &'a Client,
        task_id: &'a str,
        pipeline: &'a LogPipeline,
        cfg: &CheckTimes,
    ) -> ServerChecks<'a> {
        let (poll_interval, ping_interval) = (cfg.poll_interval, cfg.ping_interval);
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
            callback_max: cfg.abort_callback_max,
            check: None,
            pinging: None,
            ping_notice: Arc::default(),
            state: PollState::default(),
        }
    }

    /// Whether a task that ended with `code` was ending because of an abort: a stop was seen
    /// and its abort callback waited for, or it was killed (SIGKILL, 137) after its callback
    /// completed (the SDK may end its own process). Such a task is stopped, not failed.
    /// mirrors TaskStopSignal.was_abort_function_called.
    pub(crate) async fn ended_by_abort(&self, code: i32) -> bool {
        if let Some((since, _)) = self.state.callback {
            // The SDK ends its own process once its callback has run, often before the next
            // status poll: say the callback completed, as that poll would have.
            let done = self
                .client
                .tasks()
                .abort_callback(self.task_id)
                .await
                .is_ok_and(|c| c.completed);
            if done {
                self.pipeline.push_line(
                    LogLevel::Info,
                    format!(
                        "### Task abort callback completed in {:.2} seconds ###",
                        since.elapsed().as_secs_f64()
                    ),
                );
            }
            return true;
        }
        if code != -9 && code != 137 {
            return false;
        }
        self.client
            .tasks()
            .abort_callback(self.task_id)
            .await
            .is_ok_and(|c| c.completed)
    }

    /// Resolves when a status poll says the task must stop. Cancel-safe: a poll or ping in
    /// flight is kept and goes on at the next call.
    pub(crate) async fn abort_requested(&mut self) -> StopReason {
        loop {
            tokio::select! {
                _ = self.poll.tick(), if self.check.is_none() => {
                    self.check = Some(Box::pin(poll_once(
                        self.client,
                        self.task_id,
                        self.state,
                        self.callback_max,
                        self.pipeline,
                    )));
                }
                Some((reason, state)) = OptionFuture::from(self.check.as_mut()), if self.check.is_some() => {
                    self.check = None;
                    self.state = state;
                    if let Some(reason) = reason {
                        return reason;
                    }
                }
                _ = self.ping.tick(), if self.pinging.is_none() => {
                    let (client, task_id) = (self.client, self.task_id);
                    let notice = self.ping_notice.clone();
                    self.pinging = Some(Box::pin(async move {
                        match client.tasks().ping(task_id).await {
                            Ok(_) => {
                                notice.recovered();
                            }
                            Err(e) if notice.first_failure() => tracing::warn!(
                                "ping of task {task_id} failed (said once until it works again): {e}"
                            ),
                            Err(e) => tracing::debug!("ping of task {task_id} failed: {e}"),
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

/// One status poll, then, when it asks for a stop, the wait for the task's SDK abort callback:
/// a task whose SDK registered one (`Task.register_abort_callback`) keeps running until the
/// callback reports completion or its time (callback timeout plus the SDK's poll period, at most
/// `agent.abort_callback_max_timeout`) is up. mirrors TaskStopSignal._test and
/// _wait_for_abort_callback.
async fn poll_once(
    client: &Client,
    task_id: &str,
    mut state: PollState,
    callback_max: Duration,
    pipeline: &LogPipeline,
) -> (Option<StopReason>, PollState) {
    let reason = check_abort(client, task_id, &mut state, pipeline).await;
    let Some(reason) = reason else {
        return (None, state);
    };
    if reason == StopReason::NotFound {
        return (Some(reason), state);
    }
    let say = |text: String| pipeline.push_line(LogLevel::Info, format!("### {text} ###"));
    if let Some((since, timeout)) = state.callback {
        let elapsed = since.elapsed();
        if elapsed < timeout {
            let done = client
                .tasks()
                .abort_callback(task_id)
                .await
                .is_ok_and(|c| c.completed);
            if !done {
                return (None, state);
            }
            say(format!(
                "Task abort callback completed in {:.2} seconds",
                elapsed.as_secs_f64()
            ));
        } else {
            say(format!(
                "Task abort callback timed out [timeout: {:?}, elapsed: {:.2}]",
                timeout.as_secs_f64(),
                elapsed.as_secs_f64()
            ));
        }
        return (Some(reason), state);
    }
    let callback = match client.tasks().abort_callback(task_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot read the abort callback of task {task_id}: {e}");
            return (Some(reason), state);
        }
    };
    let Some(callback_timeout) = callback.timeout_sec else {
        return (Some(reason), state);
    };
    let timeout = (callback_timeout + callback.poll_freq_sec)
        .min(callback_max.as_secs_f64())
        .max(0.0);
    say(format!(
        "Task abort callback timeout set, waiting for max {timeout:?} sec"
    ));
    // The server's figures: a value that is no duration (NaN) waits not at all.
    let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
    state.callback = Some((Instant::now(), timeout));
    if callback.completed {
        (Some(reason), state)
    } else {
        (None, state)
    }
}

/// One status poll; `state` counts what must be seen several times in a row ("created", not
/// found) and whether a failure was already reported. mirrors Worker._check_if_task_should_stop.
async fn check_abort(
    client: &Client,
    task_id: &str,
    state: &mut PollState,
    pipeline: &LogPipeline,
) -> Option<StopReason> {
    let status = match client.tasks().status(task_id).await {
        Ok(found) => {
            if std::mem::take(&mut state.failing) {
                tracing::info!("the status poll of task {task_id} works again");
            }
            found
        }
        Err(e) if e.is_task_not_found() => None,
        Err(e) => {
            // Once per run of failures: a poll every few seconds must not flood the log.
            if !std::mem::replace(&mut state.failing, true) {
                tracing::warn!(
                    "cannot poll the status of task {task_id} (the task runs on; said once until it works again): {e}"
                );
            }
            return None;
        }
    };
    let Some(status) = status else {
        state.not_found_polls += 1;
        if state.not_found_polls >= NOT_FOUND_POLLS {
            return Some(StopReason::NotFound);
        }
        return None;
    };
    state.not_found_polls = 0;
    match status.status.as_str() {
        "in_progress" if status.status_message.contains("stopping") => Some(StopReason::Stopped),
        s @ ("closed" | "stopped" | "failed" | "published" | "queued") => {
            Some(StopReason::StatusChanged(s.to_string()))
        }
        "created" => {
            state.created_polls += 1;
            let polls = state.created_polls;
            if polls >= RESET_POLLS {
                return Some(StopReason::Reset);
            }
            pipeline.push_line(
                LogLevel::Warning,
                format!(
                    "Warning: Task {task_id} was reset! if state is consistent we shall terminate ({polls}/{RESET_POLLS})."
                ),
            );
            None
        }
        _ => {
            state.created_polls = 0;
            None
        }
    }
}
