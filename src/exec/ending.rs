//! How a task ends: its setup failing before it runs, the stop reasons and the ending, shared by
//! the venv and docker paths, the watch loop, the server checks that ask for a stop and the
//! final-status code that reads them.

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

/// A task's setup failing before the task runs (venv mode's preparation, docker mode's
/// preparation of its container): the status reason recorded on the task, and the full error
/// for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The failed status's reason.
    pub reason: String,
    /// What the log says.
    pub error: String,
}

impl SetupError {
    pub fn new(reason: impl Into<String>, error: impl Into<String>) -> SetupError {
        SetupError {
            reason: reason.into(),
            error: error.into(),
        }
    }

    /// One message as both the reason and the error (docker mode's failures).
    pub fn message(message: impl std::fmt::Display) -> SetupError {
        let text = message.to_string();
        SetupError {
            reason: text.clone(),
            error: text,
        }
    }
}

impl From<String> for SetupError {
    fn from(message: String) -> SetupError {
        SetupError::message(message)
    }
}
