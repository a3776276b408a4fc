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
    #[serde(deserialize_with = "lenient_requirements")]
    pub requirements: ScriptRequirements,
    #[serde(deserialize_with = "nullable")]
    pub diff: String,
}

/// `task.script.requirements`: sections by name (`pip`, `org_pip`, `conda`, `org_conda`, and
/// whatever else a client stored), each a string or a list of lines. Kept whole, so a write
/// back loses no section this agent does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScriptRequirements(pub serde_json::Map<String, Value>);

impl ScriptRequirements {
    /// A section as newline-separated text; `None` when missing or null.
    pub fn section(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            other => Some(other.to_string()),
        }
    }

    /// The task's own pip requirements (after a run: the freeze).
    pub fn pip(&self) -> Option<String> {
        self.section("pip")
    }

    /// The pip requirements as the task was created with them, kept once the freeze replaced
    /// `pip`.
    pub fn org_pip(&self) -> Option<String> {
        self.section("org_pip")
    }

    /// The conda section.
    pub fn conda(&self) -> Option<String> {
        self.section("conda")
    }

    /// The requirements after a run installed `frozen` (one package per line): the first time,
    /// `pip` moves to `org_pip` and `conda` to `org_conda` (a present original is kept), then
    /// `pip` becomes the freeze as a list of lines. Every other section stays.
    /// mirrors clearml_agent/commands/worker.py: Worker.freeze_task_environment.
    pub fn with_freeze(&self, frozen: &[String]) -> ScriptRequirements {
        let mut map = self.0.clone();
        for (now, original) in [("pip", "org_pip"), ("conda", "org_conda")] {
            let has_original = map.get(original).is_some_and(|v| !is_empty_section(v));
            if map.get(now).is_some_and(|v| !is_empty_section(v))
                && !has_original
                && let Some(v) = map.remove(now)
            {
                map.insert(original.to_owned(), v);
            }
        }
        map.insert(
            "pip".to_owned(),
            Value::Array(frozen.iter().cloned().map(Value::from).collect()),
        );
        ScriptRequirements(map)
    }
}

impl From<Value> for ScriptRequirements {
    /// An object's sections; anything else is no sections.
    fn from(value: Value) -> Self {
        match value {
            Value::Object(map) => ScriptRequirements(map),
            _ => ScriptRequirements::default(),
        }
    }
}

/// Python's truthiness of a section: null, blank text, an empty list or map count as empty.
fn is_empty_section(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `script.requirements` may be null or missing.
fn lenient_requirements<'de, D: Deserializer<'de>>(d: D) -> Result<ScriptRequirements, D::Error> {
    Ok(ScriptRequirements::from(Value::deserialize(d)?))
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
        assert_eq!(task.script.requirements.pip().as_deref(), Some("a\nb"));
        assert_eq!(task.container, Container::default());
        assert_eq!(task.execution.queue.as_deref(), Some("q"));
        assert!(task.tags.is_empty());
    }

    #[test]
    fn the_freeze_keeps_the_originals_once_as_the_python_agent_does() {
        let first = ScriptRequirements::from(serde_json::json!({
            "pip": "six\nclearml", "conda": "numpy", "custom": {"a": 1}
        }));
        let frozen = ["six==1.16.0".to_string(), "clearml==2.1.12".to_string()];
        let after = first.with_freeze(&frozen);
        assert_eq!(
            serde_json::to_value(&after).expect("json"),
            serde_json::json!({
                "org_pip": "six\nclearml", "org_conda": "numpy", "custom": {"a": 1},
                "pip": ["six==1.16.0", "clearml==2.1.12"]
            })
        );
        // A second run keeps the originals and replaces only the freeze.
        let again = after.with_freeze(&["six==1.17.0".to_string()]);
        assert_eq!(again.org_pip().as_deref(), Some("six\nclearml"));
        assert_eq!(again.pip().as_deref(), Some("six==1.17.0"));
        // An empty `pip` is not an original.
        let empty = ScriptRequirements::from(serde_json::json!({"pip": ""})).with_freeze(&frozen);
        assert!(empty.org_pip().is_none());
        // Not an object: no sections.
        assert_eq!(
            ScriptRequirements::from(serde_json::json!(null)),
            ScriptRequirements::default()
        );
    }
}
