//! `${CLEARML_...}` templates in docker arguments (`-e project=${CLEARML_TASK.project}`) and the
//! container name format (`agent.docker_container_name_format`), resolved from the task, its
//! queue and project, the worker and the container's configuration. Pure: the caller fetches
//! what the templates name.
//!
//! mirrors clearml_agent/helper/custom_template.py: CustomTemplate (`$NAME` / `${NAME}`, the
//! `CLEARML_` prefix, `:default`, `|op` filters, values as strings, lists of scalars joined by
//! `,`) and helper/docker_args.py: DockerArgsTemplateResolver (only words holding `$` and
//! `CLEARML_`; a word that cannot be resolved is kept as written), and commands/worker.py:
//! run_one_task (the container name: `{task_id}`, `{worker_id}`, `{rand_string}`, custom fields,
//! `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`).

use serde_json::Value;

/// What templates can name. `config` is the configuration the container reads (the agent's less
/// its host-only secrets): a template shows a task nothing its container could not read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub queue_id: Option<String>,
    pub queue_name: Option<String>,
    pub worker_id: String,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    /// The task as the server returned it.
    pub task: Value,
    pub config: Value,
}

/// The prefix a template name carries.
const PREFIX: &str = "CLEARML_";

/// Whether a word may hold a template (the Python agent's quick test).
pub fn has_template(word: &str) -> bool {
    word.contains('$') && word.contains(PREFIX)
}

/// Whether the templates in `words` name the queue or the project (worth a server call).
pub fn needs(words: &[String], what: &str) -> bool {
    words
        .iter()
        .any(|w| has_template(w) && w.contains(&format!("{PREFIX}{what}")))
}

/// Resolves every `${CLEARML_...}` / `$CLEARML_...` of one word; `$$` is a `$`. A template that
/// cannot be resolved is kept as written (the Python agent's KeyError path).
pub fn resolve(word: &str, src: &Sources) -> String {
    if !has_template(word) {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) if is_id(&inner[..end]) => (&inner[..end], end + 2),
                _ => ("", 0),
            }
        } else {
            let end = after
                .char_indices()
                .find(|(i, c)| !(id_char(*c) && (*i > 0 || !c.is_ascii_digit())))
                .map_or(after.len(), |(i, _)| i);
            (&after[..end], end)
        };
        match (consumed, lookup_template(name, src)) {
            (0, _) | (_, None) => {
                // Not a template, or one that cannot be resolved: kept as written.
                out.push('$');
                rest = after;
                if consumed > 0 {
                    out.push_str(&after[..consumed]);
                    rest = &after[consumed..];
                }
            }
            (_, Some(value)) => {
                out.push_str(&value);
                rest = &after[consumed..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `[_a-z][_a-z0-9|.:]*`, case-insensitive (Python's `Template` idpattern of CustomTemplate).
fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(id_char)
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '|' | '.' | ':')
}

/// `CLEARML_<KEY>[:default][|op...]` → its value; `None` when it cannot be resolved.
fn lookup_template(name: &str, src: &Sources) -> Option<String> {
    let name = name.strip_prefix(PREFIX)?;
    let mut parts = name.split('|');
    let key = parts.next().unwrap_or_default();
    let ops: Vec<&str> = parts.collect();
    let (key, default) = match key.split_once(':') {
        Some((k, d)) => (k, Some(d)),
        None => (key, None),
    };
    let value = lookup(key, default, src)?;
    Some(apply_ops(&ops, value))
}

fn lookup(key: &str, default: Option<&str>, src: &Sources) -> Option<String> {
    let mut path = key.split('.');
    let head = path.next().unwrap_or_default();
    let rest: Vec<&str> = path.collect();
    let single = |v: &Option<String>| -> Option<String> {
        if !rest.is_empty() {
            return None;
        }
        v.clone()
            .filter(|v| !v.is_empty())
            .or_else(|| default.map(str::to_string))
    };
    match head {
        "QUEUE_ID" => single(&src.queue_id),
        "QUEUE_NAME" => single(&src.queue_name),
        "WORKER_ID" => single(&Some(src.worker_id.clone())),
        // mirrors default_resolve_template: "unknown" without a project.
        "PROJECT_NAME" => single(&Some(
            src.project_name.clone().unwrap_or_else(|| "unknown".into()),
        )),
        "PROJECT_ID" => single(&Some(
            src.project_id.clone().unwrap_or_else(|| "unknown".into()),
        )),
        "TASK" => nested(&src.task, &rest, default),
        "CONFIG" => nested(&src.config, &rest, default),
        _ => None,
    }
}

/// A value inside `root` by its dotted path: a scalar as text, a list of scalars joined by `,`,
/// else the default.
fn nested(root: &Value, path: &[&str], default: Option<&str>) -> Option<String> {
    let mut cur = Some(root);
    for part in path {
        cur = cur.and_then(|v| match v {
            Value::Object(map) => map.get(*part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        });
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match cur {
        Some(Value::Array(items)) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        Some(v @ (Value::String(_) | Value::Bool(_) | Value::Number(_))) => scalar(v),
        _ => None,
    }
    .or_else(|| default.map(str::to_string))
}

/// The `|op` filters: `strip[(chars)]`, `capitalize`, `lower`; newlines are removed unless `raw`.
/// (The Python agent 3.0.3 parses the filters off by one and never applies them; here they work.)
fn apply_ops(ops: &[&str], mut value: String) -> String {
    let mut keep_newlines = false;
    for op in ops {
        let (name, args) = match op.split_once('(') {
            Some((n, a)) => (n, Some(a.trim_end_matches(')'))),
            None => (*op, None),
        };
        match name {
            "raw" => keep_newlines = true,
            "lower" => value = value.to_lowercase(),
            "capitalize" => {
                let lower = value.to_lowercase();
                let mut chars = lower.chars();
                value = chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default();
            }
            "strip" => {
                value = match args.filter(|a| !a.is_empty()) {
                    Some(set) => value.trim_matches(|c| set.contains(c)).to_string(),
                    None => value.trim().to_string(),
                }
            }
            _ => {}
        }
    }
    if !keep_newlines {
        value = value.replace('\n', "");
    }
    value
}

/// Why a container name could not be made from `agent.docker_container_name_format`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("failed generating docker container name: {0}")]
    Format(String),
    #[error("generated docker container name is invalid: {0}")]
    Invalid(String),
}

/// The container name from `format` (Python `str.format` fields: `{task_id}`, `{worker_id}`,
/// `{rand_string}` and the custom `fields`, each optionally `{name:.N}` to keep N characters).
/// Ids are made name-safe (`[^a-zA-Z0-9._-]` → `-`) as the Python agent does.
pub fn container_name(
    format: &str,
    task_id: &str,
    worker_id: &str,
    rand_string: &str,
    fields: &[(String, String)],
) -> Result<String, NameError> {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let value_of = |name: &str| -> Option<String> {
        match name {
            "task_id" => Some(safe(task_id)),
            "worker_id" => Some(safe(worker_id)),
            "rand_string" => Some(rand_string.to_string()),
            _ => fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    };
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => field.push(c),
                        None => {
                            return Err(NameError::Format(format!("unclosed `{{` in {format}")));
                        }
                    }
                }
                let (name, spec) = field.split_once(':').unwrap_or((&field, ""));
                let value = value_of(name)
                    .ok_or_else(|| NameError::Format(format!("unknown field `{name}`")))?;
                let value = match spec {
                    "" => value,
                    s => match s.strip_prefix('.').and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => value.chars().take(n).collect(),
                        None => {
                            return Err(NameError::Format(format!(
                                "unsupported format `{s}` of field `{name}` (use `.N`)"
                            )));
                        }
                    },
                };
                out.push_str(&value);
            }
            '}' => return Err(NameError::Format(format!("single `}}` in {format}"))),
            c => out.push(c),
        }
    }
    let mut chars = out.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !chars.as_str().is_empty()
        && chars
            .as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(out)
    } else {
        Err(NameError::Invalid(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> Sources {
        Sources {
            queue_id: Some("q1".into()),
            queue_name: Some("gpu queue".into()),
            worker_id: "host:gpu0".into(),
            project_id: Some("p1".into()),
            project_name: Some("Team/Proj".into()),
            task: json!({
                "id": "t1", "name": "My Task\n", "tags": ["a", "b"], "project": "p1",
                "hyperparams": {"properties": {"user_key": {"value": "42"}}},
                "flag": true, "n": 3, "obj": {"x": 1}
            }),
            config: json!({"agent": {"worker_name": "host"}}),
        }
    }

    #[test]
    fn templates_resolve_as_the_python_agent_resolves_them() {
        let s = src();
        for (word, want) in [
            ("-e", "-e"),
            ("QUEUE=${CLEARML_QUEUE_NAME}", "QUEUE=gpu queue"),
            ("${CLEARML_QUEUE_ID}/${CLEARML_WORKER_ID}", "q1/host:gpu0"),
            ("P=$CLEARML_PROJECT_NAME", "P=Team/Proj"),
            ("${CLEARML_PROJECT_ID}", "p1"),
            ("${CLEARML_TASK.id}", "t1"),
            ("${CLEARML_TASK.name}", "My Task"),
            ("${CLEARML_TASK.name|raw}", "My Task\n"),
            ("${CLEARML_TASK.name|lower|strip}", "my task"),
            ("${CLEARML_TASK.tags}", "a,b"),
            ("${CLEARML_TASK.flag}/${CLEARML_TASK.n}", "true/3"),
            (
                "K=${CLEARML_TASK.hyperparams.properties.user_key.value}",
                "K=42",
            ),
            ("${CLEARML_TASK.missing:dflt}", "dflt"),
            ("${CLEARML_CONFIG.agent.worker_name}", "host"),
            // Unresolvable: kept as written.
            ("${CLEARML_TASK.obj}", "${CLEARML_TASK.obj}"),
            ("${CLEARML_TASK.missing}", "${CLEARML_TASK.missing}"),
            ("${CLEARML_NOPE}", "${CLEARML_NOPE}"),
            ("${HOME}-${CLEARML_TASK.id}", "${HOME}-t1"),
            ("$$CLEARML_TASK.id", "$CLEARML_TASK.id"),
            ("${CLEARML_QUEUE_NAME.x}", "${CLEARML_QUEUE_NAME.x}"),
            ("${CLEARML_TASK.id", "${CLEARML_TASK.id"),
        ] {
            assert_eq!(resolve(word, &s), want, "{word}");
        }
        let none = Sources::default();
        assert_eq!(resolve("${CLEARML_PROJECT_NAME}", &none), "unknown");
        assert_eq!(resolve("${CLEARML_QUEUE_NAME:q}", &none), "q");
        assert_eq!(
            resolve("${CLEARML_QUEUE_NAME}", &none),
            "${CLEARML_QUEUE_NAME}"
        );
    }

    #[test]
    fn container_names_follow_the_format() {
        let fields = vec![("proj".to_string(), "p1".to_string())];
        assert_eq!(
            container_name(
                "clearml-id-{task_id}-{rand_string:.8}",
                "abc",
                "w",
                "qwertyuiopasdf",
                &fields
            )
            .unwrap(),
            "clearml-id-abc-qwertyui"
        );
        assert_eq!(
            container_name("{worker_id}_{proj}", "t", "host:gpu0/1", "r", &fields).unwrap(),
            "host-gpu0-1_p1"
        );
        assert!(matches!(
            container_name("-{task_id}", "t", "w", "r", &[]),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            container_name("{nope}", "t", "w", "r", &[]),
            Err(NameError::Format(_))
        ));
        assert!(matches!(
            container_name("{task_id:>9}", "t", "w", "r", &[]),
            Err(NameError::Format(_))
        ));
    }
}
