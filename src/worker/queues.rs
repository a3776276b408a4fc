//! Turning the `--queue` arguments into queue ids: ids pass through, names are looked up (and
//! created with `--create-queue`), no queue means the server's default queue.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._resolve_queue_names and
//! clearml_agent/commands/base.py: ServiceCommandSection._resolve_name

use anyhow::{Context, Result, bail};

use crate::api::{Client, QueueQuery, escape_regex};

/// How many "did you mean" suggestions an unknown name prints (mirrors MAX_SUGGESTIONS).
const MAX_SUGGESTIONS: usize = 10;

/// A queue the daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub id: String,
    pub name: String,
}

/// Anything matching `^[-a-f0-9]{30,}$` is an id, as the Python agent decides.
pub fn looks_like_id(s: &str) -> bool {
    s.len() >= 30
        && s.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Resolves queue names or ids, in the given (priority) order.
pub async fn resolve(client: &Client, names: &[String], create: bool) -> Result<Vec<QueueRef>> {
    if names.is_empty() {
        match client.queues().get_default().await {
            Ok((id, name)) => return Ok(vec![QueueRef { id, name }]),
            Err(e) if e.is_no_default_queue() => {
                // mirrors _resolve_queue_names: fall back to a queue named "default".
                return Box::pin(resolve(client, &["default".to_string()], create)).await;
            }
            Err(e) => return Err(e).context("cannot find the default queue"),
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if looks_like_id(name) {
            let q = client
                .queues()
                .get_by_id(name)
                .await
                .with_context(|| format!("cannot find queue with id \"{name}\""))?;
            out.push(QueueRef {
                id: q.id,
                name: q.name,
            });
            continue;
        }
        let query = QueueQuery {
            name: Some(escape_regex(name)),
            only_fields: Some(vec!["name".into(), "id".into()]),
            search_hidden: Some(true),
            ..Default::default()
        };
        let found = client
            .queues()
            .get_all(&query)
            .await
            .with_context(|| format!("cannot look up queue \"{name}\""))?;
        let matches: Vec<_> = found
            .iter()
            .filter(|q| q.name.to_lowercase() == name.to_lowercase())
            .collect();
        match matches.as_slice() {
            [q] => out.push(QueueRef {
                id: q.id.clone(),
                name: q.name.clone(),
            }),
            [] if create => {
                let id = client
                    .queues()
                    .create(name, &[])
                    .await
                    .with_context(|| format!("cannot create queue \"{name}\""))?;
                out.push(QueueRef {
                    id,
                    name: name.clone(),
                });
            }
            [] => {
                let mut msg = format!(
                    "could not find queue with name/id \"{name}\"; create it in the UI or pass --create-queue"
                );
                if !found.is_empty() {
                    let list: Vec<_> = found
                        .iter()
                        .take(MAX_SUGGESTIONS)
                        .map(|q| q.name.as_str())
                        .collect();
                    msg.push_str(&format!(" (did you mean: {}?)", list.join(", ")));
                }
                bail!(msg);
            }
            many => {
                let ids: Vec<_> = many.iter().map(|q| q.id.as_str()).collect();
                bail!(
                    "queue name \"{name}\" is ambiguous, it matches the queues {}; pass a queue id instead",
                    ids.join(", ")
                );
            }
        }
    }
    Ok(out)
}
