//! `queues.*`: queue lookup, creation and popping the next task.
//! Typed calls use /v2.5 and `get_next_task` /v2.14, as clearml-agent 3.0.3 does.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::Client;
use super::error::Error;
use super::types::{Queue, nullable};

/// Calls of the `queues` service.
pub struct Queues<'a> {
    client: &'a Client,
}

/// A `queues.get_all` query; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Vec<String>>,
    /// A regular expression (use [`escape_regex`] for a literal name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_hidden: Option<bool>,
}

/// The owner of a popped task (`get_task_info`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskOwner {
    #[serde(deserialize_with = "nullable")]
    pub user: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub company: Option<String>,
}

/// A task popped from a queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NextTask {
    pub task: String,
    pub added: Option<String>,
    pub task_info: Option<TaskOwner>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    #[serde(deserialize_with = "nullable")]
    task: String,
    #[serde(deserialize_with = "nullable")]
    added: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextTaskReply {
    #[serde(deserialize_with = "nullable")]
    entry: Option<Entry>,
    #[serde(deserialize_with = "nullable")]
    task_info: Option<TaskOwner>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueuesReply {
    #[serde(deserialize_with = "nullable")]
    queues: Vec<Queue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueueReply {
    #[serde(deserialize_with = "nullable")]
    queue: Queue,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdReply {
    #[serde(deserialize_with = "nullable")]
    id: String,
    #[serde(deserialize_with = "nullable")]
    name: String,
}

impl Client {
    /// The `queues` calls.
    pub fn queues(&self) -> Queues<'_> {
        Queues { client: self }
    }
}

impl Queues<'_> {
    /// `queues.get_all` (/v2.5).
    pub async fn get_all(&self, query: &QueueQuery) -> Result<Vec<Queue>, Error> {
        let reply: QueuesReply = self
            .client
            .call("queues.get_all", Some("2.5"), query)
            .await?;
        Ok(reply.queues)
    }

    /// `queues.get_by_id` (/v2.5). Unknown id: `Error::is_queue_not_found`.
    pub async fn get_by_id(&self, queue: &str) -> Result<Queue, Error> {
        let reply: QueueReply = self
            .client
            .call("queues.get_by_id", Some("2.5"), &json!({ "queue": queue }))
            .await?;
        Ok(reply.queue)
    }

    /// `queues.get_default` (/v2.5) → `(id, name)`. None configured: `Error::is_no_default_queue`.
    pub async fn get_default(&self) -> Result<(String, String), Error> {
        let reply: IdReply = self
            .client
            .call("queues.get_default", Some("2.5"), &json!({}))
            .await?;
        Ok((reply.id, reply.name))
    }

    /// `queues.create` (/v2.5) → the new queue id.
    pub async fn create(&self, name: &str, system_tags: &[String]) -> Result<String, Error> {
        let mut body = json!({ "name": name });
        if !system_tags.is_empty() {
            body["system_tags"] = json!(system_tags);
        }
        let reply: IdReply = self
            .client
            .call("queues.create", Some("2.5"), &body)
            .await?;
        Ok(reply.id)
    }

    /// `queues.get_next_task` (/v2.14): pops the head of the queue; None when it is empty.
    // mirrors clearml_agent/commands/worker.py: Worker.run_tasks_loop (get_next_task)
    pub async fn get_next_task(
        &self,
        queue: &str,
        get_task_info: bool,
    ) -> Result<Option<NextTask>, Error> {
        let mut body = json!({ "queue": queue });
        if get_task_info {
            body["get_task_info"] = json!(true);
        }
        let reply: NextTaskReply = self
            .client
            .call("queues.get_next_task", Some("2.14"), &body)
            .await?;
        Ok(reply
            .entry
            .filter(|entry| !entry.task.is_empty())
            .map(|entry| NextTask {
                task: entry.task,
                added: entry.added,
                task_info: reply.task_info,
            }))
    }
}

/// Whether a queue entry's task id looks like a task id (the server's are 32 hex digits): only
/// ASCII letters, digits, `-` and `_`, so it can never name a path or break a bind string.
pub fn is_task_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Escapes a literal for a server-side regex, as Python's `re.escape` (3.7+) does.
pub fn escape_regex(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_task_id;

    #[test]
    fn task_ids_are_plain_names() {
        assert!(is_task_id("0123456789abcdef0123456789abcdef"));
        assert!(is_task_id("my_task-1"));
        for bad in ["", "../../home/agent", "a:b", "a/b", "a b", "."] {
            assert!(!is_task_id(bad), "{bad}");
        }
    }
}
