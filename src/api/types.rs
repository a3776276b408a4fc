//! Wire structs shared by several services: the task, queue, project and worker objects,
//! machine stats and log events. Readers are lenient: missing or null fields take defaults.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Deserializes `null` as the type's default (serde's `default` only covers missing fields).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The parts of a task the agent reads (`tasks.get_by_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub task_type: String,
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    #[serde(deserialize_with = "nullable")]
    pub status_message: String,
    #[serde(deserialize_with = "nullable")]
    pub status_reason: String,
    #[serde(deserialize_with = "nullable")]
    pub project: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub parent: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub user: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub company: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub comment: String,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub system_tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub last_worker: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub script: Script,
    #[serde(deserialize_with = "nullable")]
    pub execution: Execution,
    #[serde(deserialize_with = "nullable")]
    pub container: Container,
    /// `{section: {name: {section, name, value, type, description}}}`.
    pub hyperparams: Value,
    /// `{name: {name, value, type, description}}`.
    pub configuration: Value,
    /// Free-form runtime properties.
    pub runtime: Value,
    pub output: Value,
    pub models: Value,
}

/// `task.script`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Script {
    #[serde(deserialize_with = "nullable")]
    pub binary: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub repository: String,
    #[serde(deserialize_with = "nullable")]
    pub branch: String,
    #[serde(deserialize_with = "nullable")]
    pub tag: String,
    #[serde(deserialize_with = "nullable")]
    pub version_num: String,
    #[serde(deserialize_with = "nullable")]
    pub entry_point: String,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    /// `{pip, conda, org_pip, org_conda}`; `pip` may be a string or a list of lines.
    pub requirements: Value,
    #[serde(deserialize_with = "nullable")]
    pub diff: String,
}

/// `task.execution`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Execution {
    #[serde(deserialize_with = "nullable")]
    pub queue: Option<String>,
    /// Only present in replies below API 2.13 (derived from `container`).
    #[serde(deserialize_with = "nullable")]
    pub docker_cmd: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub framework: Option<String>,
    pub artifacts: Value,
}

/// `task.container` (a string map; the server allows null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    #[serde(deserialize_with = "nullable")]
    pub image: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub arguments: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub setup_shell_script: Option<String>,
}

/// A queue (`queues.get_all` / `get_by_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Queue {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub system_tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub entries: Vec<QueueEntry>,
    pub metadata: Value,
}

/// One entry of a queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueEntry {
    #[serde(deserialize_with = "nullable")]
    pub task: String,
    #[serde(deserialize_with = "nullable")]
    pub added: Option<String>,
}

/// A project (`projects.get_all` / `get_by_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub basename: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub description: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub default_output_destination: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub system_tags: Vec<String>,
}

/// `{id, name}` of a related object in replies (a worker's task, project or queue).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdName {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: Option<String>,
}

/// A worker as `workers.get_all` reports it (the fields the agent branches on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Worker {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub task: Option<IdName>,
    #[serde(deserialize_with = "nullable")]
    pub queues: Vec<IdName>,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub last_activity_time: Option<String>,
}

/// The result of a status change or edit: `{updated, fields}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Updated {
    #[serde(deserialize_with = "nullable")]
    pub updated: u64,
    pub fields: Value,
}

/// Machine statistics of `workers.status_report`, with the Python agent's field names
/// (mirrors clearml_agent/helper/resource_monitor.py: ResourceMonitor._get_machine_stats).
/// Memory in MB, network and disk rates in MB/s, disk_free_* in percent free.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_temperature: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_used: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_free: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_free_home: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_free_temp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_read: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_write: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_rx: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_tx: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_usage: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_temperature: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_used: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_free: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_fraction: Option<Vec<f64>>,
}

/// A console line for `events.add_batch`; sent as `{"type": "log", ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub task: String,
    /// `DEBUG`, `INFO`, `WARNING` or `ERROR` as the Python agent sends.
    pub level: String,
    pub worker: String,
    pub msg: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
}

impl Serialize for LogEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("LogEvent", 6)?;
        s.serialize_field("type", "log")?;
        s.serialize_field("level", &self.level)?;
        s.serialize_field("task", &self.task)?;
        s.serialize_field("worker", &self.worker)?;
        s.serialize_field("msg", &self.msg)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_tolerates_nulls_and_missing_fields() {
        let task: Task = serde_json::from_str(
            r#"{"id":"t1","name":null,"script":{"requirements":{"pip":["a","b"]},"branch":null},
                "container":null,"execution":{"queue":"q"},"tags":null}"#,
        )
        .expect("lenient task");
        assert_eq!(task.id, "t1");
        assert_eq!(task.name, "");
        assert_eq!(task.script.branch, "");
        assert_eq!(task.script.requirements["pip"][1], "b");
        assert_eq!(task.container, Container::default());
        assert_eq!(task.execution.queue.as_deref(), Some("q"));
        assert!(task.tags.is_empty());
    }
}
