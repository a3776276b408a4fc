//! The ClearML server API client: the only module that knows the wire format.
//!
//! [`Client`] holds the transport (login, token renewal, retries, envelope); one file per
//! service adds typed calls reached through `client.tasks()`, `client.queues()`, ... Each call
//! goes to the version path the Python agent 3.0.3 uses (see the per-service files).

mod auth;
mod client;
mod error;
mod events;
mod projects;
mod queues;
mod tasks;
mod token;
mod types;
mod workers;

pub use auth::{Auth, CurrentUser};
pub use client::{Client, ClientConfig, Method, RetryPolicy, Timeouts, plain_http};
pub use error::Error;
pub use events::{BatchResult, Events, MAX_EVENT_MSG_CHARS};
pub use projects::{ProjectQuery, Projects};
pub use queues::{NextTask, QueueQuery, Queues, TaskOwner, escape_regex, is_task_id};
pub use tasks::{
    AbortCallback, EnqueueResult, HyperParam, RuntimeProperty, StatusChange, TaskHyperParams,
    TaskQuery, TaskStatus, Tasks,
};
pub use token::{Identity, Token, TokenClaims};
pub use types::{
    Container, Execution, IdName, LogEvent, MachineStats, Project, Queue, QueueEntry, Script,
    ScriptRequirements, Task, Updated, Worker,
};
pub use workers::{StatusReport, WorkerQuery, Workers};
