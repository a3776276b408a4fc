//! `tasks.*`: reading a task, status changes, edits, requirements and hyperparameters.
//!
//! Versions follow clearml-agent 3.0.3 (inventory §3.1): status changes, ping, clone, enqueue,
//! set_requirements and the script edit at /v2.5; status polling and the container read at
//! /v2.14; the runtime read at /v2.15; the container edit at /v2.13; dequeue, the runtime edit and
//! get_hyper_params unversioned. One deliberate difference: `get_by_id` goes to /v2.13, not
//! /v2.5, so the server skips its legacy shims (`execution.docker_cmd`, `execution.parameters`)
//! and answers with `container` and `hyperparams`, which is what [`Task`] reads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::client::Client;
use super::error::Error;
use super::types::{Container, ScriptRequirements, Task, Updated, nullable};

/// Calls of the `tasks` service.
pub struct Tasks<'a> {
    client: &'a Client,
}

/// A status change request (`tasks.started` / `stopped` / `failed` / `completed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusChange {
    pub task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    pub force: bool,
}

impl StatusChange {
    pub fn new(task: impl Into<String>) -> StatusChange {
        StatusChange {
            task: task.into(),
            ..StatusChange::default()
        }
    }

    /// A change the agent makes as `worker_id`: the message the Python agent writes
    /// (mirrors Worker: `status_message="Changed by clearml-agent {worker_id}"`).
    pub fn by_agent(task: impl Into<String>, worker_id: &str) -> StatusChange {
        StatusChange::new(task).message(format!("Changed by clearml-agent {worker_id}"))
    }

    pub fn reason(mut self, reason: impl Into<String>) -> StatusChange {
        self.status_reason = Some(reason.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> StatusChange {
        self.status_message = Some(message.into());
        self
    }

    pub fn force(mut self, force: bool) -> StatusChange {
        self.force = force;
        self
    }
}

/// A `tasks.get_all` query; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_hidden: Option<bool>,
}

impl TaskQuery {
    /// `{id: [task], only_fields, search_hidden: true}`, the agent's usual form.
    pub fn fields_of(task: &str, only_fields: &[&str]) -> TaskQuery {
        TaskQuery {
            id: Some(vec![task.to_owned()]),
            only_fields: Some(only_fields.iter().map(|f| (*f).to_owned()).collect()),
            search_hidden: Some(true),
            ..TaskQuery::default()
        }
    }
}

/// The status fields the abort poll reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskStatus {
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    #[serde(deserialize_with = "nullable")]
    pub status_message: String,
    #[serde(deserialize_with = "nullable")]
    pub status_reason: String,
}

/// A runtime property the agent sets on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeProperty {
    /// The host that runs the task (`_exec_agent_hostname`).
    AgentHostname,
    /// The host ports a docker-mode task's ports were published on
    /// (`_external_host_tcp_port_mapping`).
    ExternalPortMapping,
}

impl RuntimeProperty {
    /// The key in the task's `runtime` map.
    pub fn key(self) -> &'static str {
        match self {
            RuntimeProperty::AgentHostname => "_exec_agent_hostname",
            RuntimeProperty::ExternalPortMapping => "_external_host_tcp_port_mapping",
        }
    }
}

/// What `Task.register_abort_callback` of the SDK leaves in the task's `runtime`:
/// `_abort_callback_timeout` (seconds the callback may take), `_abort_poll_freq` (how often the
/// SDK looks for a stop) and `_abort_callback_completed` (set once the callback has run).
/// Values are read the way Python tests them: a non-empty string or a non-zero number is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AbortCallback {
    /// `None`: no callback registered (the task is stopped at once).
    pub timeout_sec: Option<f64>,
    pub poll_freq_sec: f64,
    pub completed: bool,
}

impl AbortCallback {
    pub fn from_runtime(runtime: &Map<String, Value>) -> AbortCallback {
        let number = |v: &Value| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let truthy = |v: Option<&Value>| match v {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
            Some(Value::Bool(b)) => *b,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Null) | None => false,
        };
        let timeout = runtime.get("_abort_callback_timeout");
        AbortCallback {
            timeout_sec: timeout.filter(|v| truthy(Some(v))).and_then(number),
            poll_freq_sec: runtime
                .get("_abort_poll_freq")
                .and_then(number)
                .unwrap_or(0.0),
            completed: truthy(runtime.get("_abort_callback_completed")),
        }
    }
}

/// `tasks.enqueue` reply.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EnqueueResult {
    #[serde(deserialize_with = "nullable")]
    pub updated: u64,
    #[serde(deserialize_with = "nullable")]
    pub queued: u64,
    pub fields: Value,
}

/// One hyperparameter of `tasks.get_hyper_params`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HyperParam {
    #[serde(deserialize_with = "nullable")]
    pub section: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub value: String,
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub param_type: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub description: Option<String>,
}

/// The hyperparameters of one task.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskHyperParams {
    #[serde(deserialize_with = "nullable")]
    pub task: String,
    #[serde(deserialize_with = "nullable")]
    pub hyperparams: Vec<HyperParam>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TaskReply {
    #[serde(deserialize_with = "nullable")]
    task: Task,
}

/// `tasks` is required: a reply without the list (`data: {}` from a proxy or a failover) is a
/// bad response, not "no such task", which would kill a running task.
#[derive(Deserialize)]
struct TasksReply {
    tasks: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdReply {
    #[serde(deserialize_with = "nullable")]
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ParamsReply {
    #[serde(deserialize_with = "nullable")]
    params: Vec<TaskHyperParams>,
}

impl Client {
    /// The `tasks` calls.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { client: self }
    }
}

impl Tasks<'_> {
    /// `tasks.get_by_id` (/v2.13, see the module note). Unknown id: `Error::is_task_not_found`.
    pub async fn get_by_id(&self, task: &str) -> Result<Task, Error> {
        let reply: TaskReply = self
            .client
            .call("tasks.get_by_id", Some("2.13"), &json!({ "task": task }))
            .await?;
        Ok(reply.task)
    }

    /// `tasks.get_all` (/v2.14): the projected task objects.
    pub async fn get_all(&self, query: &TaskQuery) -> Result<Vec<Value>, Error> {
        self.get_all_at("2.14", query).await
    }

    /// Tasks whose name matches `pattern` (a server-side regex), as `(id, name)` pairs.
    pub async fn find_by_name(&self, pattern: &str) -> Result<Vec<(String, String)>, Error> {
        let found = self
            .get_all(&TaskQuery {
                name: Some(pattern.to_string()),
                only_fields: Some(vec!["id".into(), "name".into()]),
                search_hidden: Some(true),
                ..TaskQuery::default()
            })
            .await?;
        Ok(found
            .iter()
            .filter_map(|t| {
                Some((
                    t.get("id")?.as_str()?.to_string(),
                    t.get("name")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// `tasks.get_all` at an explicit version.
    pub async fn get_all_at(&self, version: &str, query: &TaskQuery) -> Result<Vec<Value>, Error> {
        let reply: TasksReply = self
            .client
            .call("tasks.get_all", Some(version), query)
            .await?;
        Ok(reply.tasks)
    }

    /// The abort poll: `tasks.get_all {id, only_fields: [status, status_message], search_hidden}`
    /// (/v2.14). None when the task does not exist.
    // mirrors clearml_agent/commands/worker.py: Worker._wait_for_command / get_task status polling
    pub async fn status(&self, task: &str) -> Result<Option<TaskStatus>, Error> {
        let query = TaskQuery::fields_of(task, &["status", "status_message", "status_reason"]);
        let tasks = self.get_all(&query).await?;
        Ok(tasks
            .into_iter()
            .next()
            .map(|t| serde_json::from_value(t).unwrap_or_default()))
    }

    /// The ids of the tasks `in_progress` whose `last_worker` is `worker` (filtered here: the
    /// server's `get_all` filters only on its documented fields).
    pub async fn in_progress_on(&self, worker: &str) -> Result<Vec<String>, Error> {
        let query = TaskQuery {
            status: Some(vec!["in_progress".to_owned()]),
            only_fields: Some(vec!["id".to_owned(), "last_worker".to_owned()]),
            search_hidden: Some(true),
            ..TaskQuery::default()
        };
        let tasks = self.get_all(&query).await?;
        Ok(tasks
            .iter()
            .filter(|t| t.get("last_worker").and_then(Value::as_str) == Some(worker))
            .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// The status fields of many tasks in one `tasks.get_all` (/v2.14); ids the server does not
    /// know are absent from the map.
    pub async fn statuses(
        &self,
        tasks: &[String],
    ) -> Result<std::collections::BTreeMap<String, TaskStatus>, Error> {
        let query = TaskQuery {
            id: Some(tasks.to_vec()),
            only_fields: Some(
                ["id", "status", "status_message", "status_reason"]
                    .map(String::from)
                    .to_vec(),
            ),
            search_hidden: Some(true),
            ..TaskQuery::default()
        };
        let found = self.get_all(&query).await?;
        Ok(found
            .into_iter()
            .filter_map(|t| {
                let id = t.get("id")?.as_str()?.to_string();
                Some((id, serde_json::from_value(t).unwrap_or_default()))
            })
            .collect())
    }

    /// Sets the task's status message without a status change (`tasks.update`, unversioned), as
    /// a scheduler glue does to show why a task still waits.
    pub async fn set_status_message(&self, task: &str, message: &str) -> Result<(), Error> {
        let _: Value = self
            .client
            .call(
                "tasks.update",
                None,
                &json!({ "task": task, "status_message": message }),
            )
            .await?;
        Ok(())
    }

    /// The task's `runtime` map (`tasks.get_all` /v2.15, only_fields runtime); empty if unset.
    pub async fn runtime(&self, task: &str) -> Result<Map<String, Value>, Error> {
        let tasks = self
            .get_all_at("2.15", &TaskQuery::fields_of(task, &["runtime"]))
            .await?;
        Ok(tasks
            .into_iter()
            .next()
            .and_then(|mut t| match t.get_mut("runtime").map(Value::take) {
                Some(Value::Object(map)) => Some(map),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// The SDK's abort callback of a task, from its `runtime` properties.
    /// mirrors TaskStopSignal._get_abort_callback_stat.
    pub async fn abort_callback(&self, task: &str) -> Result<AbortCallback, Error> {
        let runtime = self.runtime(task).await?;
        Ok(AbortCallback::from_runtime(&runtime))
    }

    /// The task's `container` (`tasks.get_all` /v2.14, only_fields container).
    pub async fn container(&self, task: &str) -> Result<Container, Error> {
        let tasks = self
            .get_all(&TaskQuery::fields_of(task, &["container"]))
            .await?;
        Ok(tasks
            .into_iter()
            .next()
            .and_then(|mut t| t.get_mut("container").map(Value::take))
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default())
    }

    /// `tasks.edit {task, force: true, ...fields}` at `version`. Remember the server's merge
    /// rule: `script`/`execution`/`output`/`models` merge one level deep, the rest is replaced.
    pub async fn edit(
        &self,
        task: &str,
        version: Option<&str>,
        fields: Map<String, Value>,
    ) -> Result<Updated, Error> {
        let mut body = Map::new();
        body.insert("task".to_owned(), json!(task));
        body.insert("force".to_owned(), json!(true));
        body.extend(fields);
        self.client.call("tasks.edit", version, &body).await
    }

    /// Replaces the whole `runtime` map (`tasks.edit`, unversioned, force).
    pub async fn edit_runtime(
        &self,
        task: &str,
        runtime: &Map<String, Value>,
    ) -> Result<Updated, Error> {
        let mut fields = Map::new();
        fields.insert("runtime".to_owned(), Value::Object(runtime.clone()));
        self.edit(task, None, fields).await
    }

    /// Records the container that ran the task (`tasks.edit` /v2.13, force).
    pub async fn edit_container(
        &self,
        task: &str,
        container: &Container,
    ) -> Result<Updated, Error> {
        let mut fields = Map::new();
        fields.insert(
            "container".to_owned(),
            json!({
                "image": container.image.clone().unwrap_or_default(),
                "arguments": container.arguments.clone().unwrap_or_default(),
                "setup_shell_script": container.setup_shell_script.clone().unwrap_or_default(),
            }),
        );
        self.edit(task, Some("2.13"), fields).await
    }

    /// Records the commit that ran (`tasks.edit {script: {version_num}}` /v2.5, force).
    pub async fn set_version_num(&self, task: &str, commit: &str) -> Result<Updated, Error> {
        let mut fields = Map::new();
        fields.insert("script".to_owned(), json!({ "version_num": commit }));
        self.edit(task, Some("2.5"), fields).await
    }

    /// `tasks.clone` (/v2.5) → the new task id.
    pub async fn clone_task(
        &self,
        task: &str,
        new_task_name: Option<&str>,
    ) -> Result<String, Error> {
        let mut body = json!({ "task": task });
        if let Some(name) = new_task_name {
            body["new_task_name"] = json!(name);
        }
        let reply: IdReply = self.client.call("tasks.clone", Some("2.5"), &body).await?;
        Ok(reply.id)
    }

    /// `tasks.enqueue` (/v2.5); `queue` None means the server's default queue.
    pub async fn enqueue(
        &self,
        change: &StatusChange,
        queue: Option<&str>,
    ) -> Result<EnqueueResult, Error> {
        let mut body = serde_json::to_value(change).unwrap_or_else(|_| json!({}));
        if let Some(queue) = queue {
            body["queue"] = json!(queue);
        }
        self.client.call("tasks.enqueue", Some("2.5"), &body).await
    }

    /// `tasks.dequeue` (unversioned; `new_status` needs API 2.26). The agent claims a task with
    /// `new_status: "in_progress"` and proceeds only if `updated` is 1.
    pub async fn dequeue(&self, task: &str, new_status: Option<&str>) -> Result<Updated, Error> {
        let mut body = json!({ "task": task });
        if let Some(status) = new_status {
            body["new_status"] = json!(status);
        }
        self.client.call("tasks.dequeue", None, &body).await
    }

    /// `tasks.started` (/v2.5).
    pub async fn started(&self, change: &StatusChange) -> Result<Updated, Error> {
        self.client.call("tasks.started", Some("2.5"), change).await
    }

    /// `tasks.stopped` (/v2.5).
    pub async fn stopped(&self, change: &StatusChange) -> Result<Updated, Error> {
        self.client.call("tasks.stopped", Some("2.5"), change).await
    }

    /// `tasks.failed` (/v2.5).
    pub async fn failed(&self, change: &StatusChange) -> Result<Updated, Error> {
        self.client.call("tasks.failed", Some("2.5"), change).await
    }

    /// `tasks.completed` (/v2.5).
    pub async fn completed(&self, change: &StatusChange) -> Result<Updated, Error> {
        self.client
            .call("tasks.completed", Some("2.5"), change)
            .await
    }

    /// `tasks.ping` (/v2.5): keeps `last_update` fresh.
    pub async fn ping(&self, task: &str) -> Result<(), Error> {
        let _: Value = self
            .client
            .call("tasks.ping", Some("2.5"), &json!({ "task": task }))
            .await?;
        Ok(())
    }

    /// `tasks.set_requirements` (/v2.5): replaces `script.requirements` whole.
    pub async fn set_requirements(
        &self,
        task: &str,
        requirements: &ScriptRequirements,
    ) -> Result<Updated, Error> {
        self.client
            .call(
                "tasks.set_requirements",
                Some("2.5"),
                &json!({ "task": task, "requirements": requirements }),
            )
            .await
    }

    /// Records what a run installed: `previous` (the task's requirements when it was pulled)
    /// with `frozen` as its `pip` ([`ScriptRequirements::with_freeze`]). The one freeze report
    /// of venv and docker mode. mirrors Worker.freeze_task_environment (update_requirements).
    pub async fn record_freeze(
        &self,
        task: &str,
        previous: &ScriptRequirements,
        frozen: &[String],
    ) -> Result<Updated, Error> {
        self.set_requirements(task, &previous.with_freeze(frozen))
            .await
    }

    /// Sets one of the task's runtime properties (read, change, `tasks.edit`), keeping the
    /// others. mirrors TaskRuntime.update_task_runtime / Worker._set_runtime_hostname.
    pub async fn set_runtime_property(
        &self,
        task: &str,
        property: RuntimeProperty,
        value: &str,
    ) -> Result<Updated, Error> {
        let mut runtime = self.runtime(task).await?;
        runtime.insert(property.key().to_owned(), Value::from(value));
        self.edit_runtime(task, &runtime).await
    }

    /// `tasks.get_hyper_params` (unversioned).
    pub async fn get_hyper_params(&self, tasks: &[String]) -> Result<Vec<TaskHyperParams>, Error> {
        let reply: ParamsReply = self
            .client
            .call("tasks.get_hyper_params", None, &json!({ "tasks": tasks }))
            .await?;
        Ok(reply.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn abort_callback_reads_like_python() {
        // What the SDK writes: floats, an empty string until the callback completes, then 1.
        let c = AbortCallback::from_runtime(&runtime(json!({
            "_abort_callback_timeout": 30.0, "_abort_poll_freq": 10.0, "_abort_callback_completed": ""
        })));
        assert_eq!(
            c,
            AbortCallback {
                timeout_sec: Some(30.0),
                poll_freq_sec: 10.0,
                completed: false
            }
        );
        let c = AbortCallback::from_runtime(&runtime(json!({
            "_abort_callback_timeout": "180", "_abort_callback_completed": 1
        })));
        assert_eq!(c.timeout_sec, Some(180.0));
        assert!(c.completed);
        // No callback, a zero, or text that is not a number: stop at once.
        for v in [
            json!({}),
            json!({"_abort_callback_timeout": 0}),
            json!({"_abort_callback_timeout": "soon"}),
        ] {
            assert_eq!(AbortCallback::from_runtime(&runtime(v)).timeout_sec, None);
        }
    }
}
