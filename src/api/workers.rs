//! `workers.*`: registration, status reports and the worker list. All unversioned, as the
//! Python agent sends them (the server's newest implementation answers).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::Client;
use super::error::Error;
use super::types::{MachineStats, Worker, nullable};

/// Calls of the `workers` service.
pub struct Workers<'a> {
    client: &'a Client,
}

/// `workers.status_report`: `task`, `queue` and `queues` are sent only when set, and
/// `machine_stats` is sent as null when unknown, as the Python agent does
/// (mirrors clearml_agent/helper/resource_monitor.py: ResourceMonitor.send_report).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusReport {
    pub worker: String,
    /// Epoch **milliseconds** (whole seconds * 1000), as clearml-agent 3.x sends.
    pub timestamp: i64,
    pub machine_stats: Option<MachineStats>,
    pub tags: Option<Vec<String>>,
    pub is_daemon: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
}

/// A `workers.get_all` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerQuery {
    /// Seconds; 0 means every worker the server still keeps (`clearml-agent list`).
    pub last_seen: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_pattern: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkersReply {
    #[serde(deserialize_with = "nullable")]
    workers: Vec<Worker>,
}

impl Client {
    /// The `workers` calls.
    pub fn workers(&self) -> Workers<'_> {
        Workers { client: self }
    }
}

impl Workers<'_> {
    /// `workers.register {worker, queues[, timeout]}`; the server's default timeout is 600 s.
    pub async fn register(
        &self,
        worker: &str,
        queues: &[String],
        timeout_sec: Option<u64>,
    ) -> Result<(), Error> {
        let mut body = json!({ "worker": worker, "queues": queues });
        if let Some(timeout) = timeout_sec {
            body["timeout"] = json!(timeout);
        }
        let _: Value = self.client.call("workers.register", None, &body).await?;
        Ok(())
    }

    /// `workers.unregister {worker, queues}`.
    pub async fn unregister(&self, worker: &str, queues: &[String]) -> Result<(), Error> {
        let body = json!({ "worker": worker, "queues": queues });
        let _: Value = self.client.call("workers.unregister", None, &body).await?;
        Ok(())
    }

    /// `workers.status_report`.
    pub async fn status_report(&self, report: &StatusReport) -> Result<(), Error> {
        let _: Value = self
            .client
            .call("workers.status_report", None, report)
            .await?;
        Ok(())
    }

    /// `workers.get_all`, typed.
    pub async fn get_all(&self, query: &WorkerQuery) -> Result<Vec<Worker>, Error> {
        let reply: WorkersReply = self.client.call("workers.get_all", None, query).await?;
        Ok(reply.workers)
    }

    /// `workers.get_runtime_properties {worker}` (unversioned) → `[{key, value, expiry}]`.
    /// Enterprise only: the open-source server answers 404 (`Error::is_endpoint_missing`), after
    /// which the Python agent stops asking (commands/worker.py: Worker.get_runtime_properties).
    pub async fn get_runtime_properties(&self, worker: &str) -> Result<Vec<Value>, Error> {
        let reply: Value = self
            .client
            .call(
                "workers.get_runtime_properties",
                None,
                &json!({ "worker": worker }),
            )
            .await?;
        Ok(match reply.get("runtime_properties") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        })
    }

    /// `workers.get_all`, the reply's whole `data` object (`{"workers": [...]}`) as sent.
    pub async fn get_all_raw(&self, query: &WorkerQuery) -> Result<Value, Error> {
        self.client.call("workers.get_all", None, query).await
    }
}
