//! How a watched task ends: the stop reasons and the ending, shared by the watch loop, the
//! server checks that ask for a stop and the final-status code that reads them.

/// Why a task stopped before its process ended on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `tasks.stop` on a running task: status `in_progress`, message "stopping".
    Stopped,
    /// The status was changed from outside (closed, stopped, failed, published, queued).
    StatusChanged(String),
    /// The task was reset (status `created` on several consecutive polls).
    Reset,
    /// The task no longer exists.
    NotFound,
    /// The agent itself is shutting down (SIGINT/SIGTERM).
    AgentShutdown,
}

impl StopReason {
    /// The words of the "User aborted: stopping task" line.
    pub fn describe(&self) -> String {
        match self {
            StopReason::Stopped => "stopped".to_string(),
            StopReason::StatusChanged(s) => format!("status changed to {s}"),
            StopReason::Reset => "reset".to_string(),
            StopReason::NotFound => "not found".to_string(),
            StopReason::AgentShutdown => "agent shutting down".to_string(),
        }
    }
}

/// How a supervised task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The process exited by itself with this code (`-N` for signal N).
    Exited(i32),
    /// The agent killed it.
    Stopped(StopReason),
    /// It could not be started at all.
    NotStarted(String),
}

impl Ending {
    /// The exit status of a monitored `execute`: the task's own exit code when `propagate`
    /// (1 when it did not exit by itself), else 0. mirrors Worker.execute
    /// (CLEARML_AGENT_PROPAGATE_EXITCODE).
    pub fn exit_status(&self, propagate: bool) -> u8 {
        match self {
            _ if !propagate => 0,
            Ending::Exited(code) => u8::try_from(*code).unwrap_or(1),
            _ => 1,
        }
    }
}
