//! `tasks.*` reads and edits: create, get_by_id/get_all, edit (merge rules), update, clone,
//! delete, requirements, artifacts, hyperparameters, configuration, ping. Status changes live
//! in `task_status`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::clock::{now_iso, now_ms};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::query;
use crate::request::{opt_bool, opt_object, opt_str, opt_str_list, req_str};
use crate::state::Ctx;
use crate::store::Table;

/// Task types the server accepts.
pub(crate) const TYPES: &[&str] = &[
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
];

/// Fields never returned unless projected explicitly.
const HIDDEN: &[&str] = &["enqueue_status"];

/// Embedded documents that `tasks.edit` merges one level deep; everything else is replaced.
const MERGED: &[&str] = &["script", "execution", "output", "models"];

/// The stored task, or 400/101.
pub(crate) fn load(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    ctx.db
        .get(Table::Tasks, id)?
        .ok_or_else(|| ApiError::task_not_found(id, &ctx.identity.company))
}

pub(crate) fn save(ctx: &Ctx, task: &Value) -> Result<(), ApiError> {
    let id = task.get("id").and_then(Value::as_str).unwrap_or("");
    ctx.db.put(Table::Tasks, id, task)
}

pub(crate) fn str_field<'a>(task: &'a Value, key: &str) -> &'a str {
    task.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A task as it goes on the wire: defaults filled in for the embedded documents clients rely
/// on, hidden fields dropped, and the pre-2.13 shape (`execution.docker_cmd`, `execution.model`,
/// `output.model`) added for old API versions.
pub(crate) fn present(mut task: Value, version: (u32, u32)) -> Value {
    let Value::Object(map) = &mut task else {
        return task;
    };
    for key in [
        "output",
        "script",
        "execution",
        "hyperparams",
        "configuration",
        "runtime",
        "container",
    ] {
        if !map.get(key).is_some_and(Value::is_object) {
            map.insert(key.to_string(), json!({}));
        }
    }
    if !map.get("models").is_some_and(Value::is_object) {
        map.insert("models".into(), json!({"input": [], "output": []}));
    }
    for key in ["tags", "system_tags"] {
        if !map.get(key).is_some_and(Value::is_array) {
            map.insert(key.to_string(), json!([]));
        }
    }
    for key in HIDDEN {
        map.remove(*key);
    }
    if version < (2, 13) {
        // mirrors apiserver/services/tasks.py: conform_output_tags / _upgrade_task_data (legacy shapes)
        let image = task
            .pointer("/container/image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let args = task
            .pointer("/container/arguments")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !image.is_empty() {
            let cmd = if args.is_empty() {
                image
            } else {
                format!("{image} {args}")
            };
            task["execution"]["docker_cmd"] = json!(cmd);
        }
        if let Some(m) = task.pointer("/models/input/0/model").cloned() {
            task["execution"]["model"] = m;
        }
        if let Some(m) = task
            .pointer("/models/output")
            .and_then(Value::as_array)
            .and_then(|a| a.last())
            .and_then(|m| m.get("model"))
            .cloned()
        {
            task["output"]["model"] = m;
        }
    }
    task
}

/// Pre-2.13 input: `execution.docker_cmd` "image args…" becomes `container`.
fn upgrade_legacy_input(body: &mut Value, version: (u32, u32)) {
    if version >= (2, 13) {
        return;
    }
    let Some(cmd) = body
        .pointer("/execution/docker_cmd")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let (image, args) = cmd.trim().split_once(' ').unwrap_or((cmd.trim(), ""));
    body["container"] = json!({"image": image, "arguments": args.trim(), "setup_shell_script": ""});
    if let Some(Value::Object(exec)) = body.get_mut("execution") {
        exec.remove("docker_cmd");
    }
}

fn check_type(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(t) if !TYPES.contains(&t.as_str()) => {
            Err(ApiError::validation("invalid task type").with("type", t))
        }
        other => Ok(other),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().chars().count() < 3 {
        return Err(
            ApiError::validation("task name must have at least 3 characters").with("name", name),
        );
    }
    Ok(())
}

fn check_parent(ctx: &Ctx, parent: Option<&Value>) -> Result<(), ApiError> {
    if let Some(Value::String(p)) = parent
        && !p.is_empty()
    {
        load(ctx, p)?;
    }
    Ok(())
}

/// Inserts a new `created` task from a `tasks.create` body; returns its id.
pub(crate) fn insert(ctx: &Ctx, mut body: Value) -> Result<String, ApiError> {
    upgrade_legacy_input(&mut body, ctx.version);
    let name = req_str(&body, "name")?;
    check_name(&name)?;
    let kind = check_type(Some(req_str(&body, "type")?))?;
    let project = opt_str(&body, "project")?;
    super::projects::check_exists(ctx, project.clone())?;
    check_parent(ctx, body.get("parent"))?;
    let id = new_id();
    let now = now_iso();
    let mut task = json!({
        "id": id, "name": name, "type": kind,
        "user": ctx.identity.user, "company": ctx.identity.company,
        "project": project,
        "comment": body.get("comment").cloned().unwrap_or(json!("")),
        "status": "created", "status_reason": "", "status_message": "",
        "status_changed": now, "created": now, "last_update": now, "last_change": now,
        "last_changed_by": ctx.identity.user, "last_iteration": 0,
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
        "system_tags": body.get("system_tags").cloned().unwrap_or(json!([])),
        "output": body.get("output").cloned().unwrap_or(json!({})),
        "execution": body.get("execution").cloned().unwrap_or(json!({})),
        "hyperparams": body.get("hyperparams").cloned().unwrap_or(json!({})),
        "configuration": body.get("configuration").cloned().unwrap_or(json!({})),
        "models": body.get("models").cloned().unwrap_or(json!({"input": [], "output": []})),
        "container": body.get("container").cloned().unwrap_or(json!({})),
        "runtime": body.get("runtime").cloned().unwrap_or(json!({})),
    });
    if let Some(script) = body.get("script").filter(|s| s.is_object()) {
        task["script"] = script.clone();
    }
    if let Some(parent) = body.get("parent").filter(|p| p.is_string()) {
        task["parent"] = parent.clone();
    }
    if let Some(dest) = body.get("output_dest").filter(|d| d.is_string()) {
        task["output"]["destination"] = dest.clone();
    }
    save(ctx, &task)?;
    Ok(id)
}

/// `tasks.create` → `{id}`.
pub(crate) fn create(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = insert(ctx, body)?;
    Ok(json!({ "id": id }))
}

/// `tasks.get_by_id {task R}` → `{task}` (always the whole task).
pub(crate) fn get_by_id(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    Ok(json!({ "task": present(load(ctx, &id)?, ctx.version) }))
}

/// `tasks.get_all` / `get_all_ex` → `{tasks}`: filters `id`, `name` (regex), `status`,
/// `project`, `type`, `parent`, `user`, tags, hidden; `only_fields`, `order_by`, paging.
pub(crate) fn get_all(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let docs = match opt_str_list(&body, "id")? {
        Some(ids) => {
            let mut v = Vec::new();
            for id in ids {
                if let Some(t) = ctx.db.get(Table::Tasks, &id)? {
                    v.push(t);
                }
            }
            v
        }
        None => ctx.db.all(Table::Tasks)?,
    };
    let docs = query::filter(
        docs,
        &body,
        &["status", "project", "type", "parent", "user"],
    )?;
    let docs = query::order_and_page(docs, &body)?;
    let only = opt_str_list(&body, "only_fields")?;
    let tasks: Vec<Value> = docs
        .into_iter()
        .map(|t| match &only {
            Some(fields) if !fields.is_empty() => query::project(t, Some(fields)),
            _ => present(t, ctx.version),
        })
        .collect();
    Ok(json!({ "tasks": tasks }))
}

/// Applies edit fields to a task following the merge rule; returns the changed fields.
fn apply_edit(task: &mut Value, body: &Value, fields: &[&str]) -> Map<String, Value> {
    let mut changed = Map::new();
    for key in fields {
        let Some(value) = body.get(*key) else {
            continue;
        };
        if MERGED.contains(key)
            && let (Some(Value::Object(new)), Some(Value::Object(old))) =
                (Some(value), task.get_mut(*key))
        {
            for (k, v) in new {
                old.insert(k.clone(), v.clone());
            }
            changed.insert(key.to_string(), Value::Object(old.clone()));
            continue;
        }
        task[*key] = value.clone();
        changed.insert(key.to_string(), value.clone());
    }
    changed
}

/// `tasks.edit {task R, force?, …fields}` → Update. Needs `created` unless forced (400/110).
pub(crate) fn edit(ctx: &Ctx, mut body: Value) -> Result<Value, ApiError> {
    upgrade_legacy_input(&mut body, ctx.version);
    let id = req_str(&body, "task")?;
    let force = opt_bool(&body, "force", false)?;
    let mut task = load(ctx, &id)?;
    let status = str_field(&task, "status").to_string();
    if status != "created" && !force {
        return Err(ApiError::not_editable(&status).with("task", id));
    }
    if let Some(name) = opt_str(&body, "name")? {
        check_name(&name)?;
    }
    check_type(opt_str(&body, "type")?)?;
    super::projects::check_exists(ctx, opt_str(&body, "project")?)?;
    check_parent(ctx, body.get("parent"))?;
    let mut changed = apply_edit(
        &mut task,
        &body,
        &[
            "name",
            "tags",
            "system_tags",
            "type",
            "comment",
            "parent",
            "project",
            "execution",
            "script",
            "hyperparams",
            "configuration",
            "models",
            "container",
            "runtime",
            "output",
        ],
    );
    if let Some(dest) = body.get("output_dest").filter(|d| d.is_string()) {
        task["output"]["destination"] = dest.clone();
        changed.insert("output.destination".into(), dest.clone());
    }
    let now = now_iso();
    let user_only = changed
        .keys()
        .all(|k| ["name", "comment", "tags", "system_tags", "project"].contains(&k.as_str()));
    if !user_only {
        task["last_update"] = json!(now);
        changed.insert("last_update".into(), json!(now));
    }
    task["last_change"] = json!(now);
    task["last_changed_by"] = json!(ctx.identity.user);
    save(ctx, &task)?;
    Ok(json!({ "updated": 1, "fields": changed }))
}

/// `tasks.update {task R, name?, tags?, system_tags?, comment?, project?, output__error?,
/// status?, status_reason?, status_message?}` → Update; any status, no state machine.
pub(crate) fn update(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let mut task = load(ctx, &id)?;
    let mut changed = apply_edit(
        &mut task,
        &body,
        &[
            "name",
            "tags",
            "system_tags",
            "comment",
            "project",
            "status",
            "status_reason",
            "status_message",
        ],
    );
    if let Some(err) = body.get("output__error") {
        task["output"]["error"] = err.clone();
        changed.insert("output.error".into(), err.clone());
    }
    if changed.contains_key("status") {
        task["status_changed"] = json!(now_iso());
    }
    task["last_change"] = json!(now_iso());
    save(ctx, &task)?;
    Ok(json!({ "updated": if changed.is_empty() { 0 } else { 1 }, "fields": changed }))
}

/// `tasks.clone {task R, new_task_*?, execution_overrides?}` → `{id}`: a `created` copy with
/// script, execution (no queue, no output artifacts), hyperparams, configuration, container,
/// input models, type, tags and output destination; `parent` is the source.
pub(crate) fn clone(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let src_id = req_str(&body, "task")?;
    let src = load(ctx, &src_id)?;
    let strip = |v: Option<&Value>| -> Value {
        let mut list: Vec<Value> = v.and_then(Value::as_array).cloned().unwrap_or_default();
        list.retain(|t| t != "development" && t != "archived");
        Value::Array(list)
    };
    let mut execution = src.get("execution").cloned().unwrap_or(json!({}));
    if let Value::Object(e) = &mut execution {
        e.remove("queue");
        if let Some(Value::Array(arts)) = e.get_mut("artifacts") {
            arts.retain(|a| a.get("mode").and_then(Value::as_str) == Some("input"));
        }
    }
    if let Some(Value::Object(over)) = body.get("execution_overrides")
        && let Value::Object(e) = &mut execution
    {
        for (k, v) in over {
            e.insert(k.clone(), v.clone());
        }
    }
    let pick = |new_key: &str, src_key: &str| -> Value {
        body.get(new_key)
            .cloned()
            .unwrap_or_else(|| src.get(src_key).cloned().unwrap_or(Value::Null))
    };
    let mut new_body = json!({
        "name": body.get("new_task_name").cloned().unwrap_or_else(|| json!(format!("Clone Of {}", str_field(&src, "name")))),
        "type": src.get("type"),
        "comment": pick("new_task_comment", "comment"),
        "tags": body.get("new_task_tags").cloned().unwrap_or_else(|| strip(src.get("tags"))),
        "system_tags": body.get("new_task_system_tags").cloned().unwrap_or_else(|| strip(src.get("system_tags"))),
        "parent": body.get("new_task_parent").cloned().unwrap_or(json!(src_id)),
        "project": pick("new_task_project", "project"),
        "hyperparams": pick("new_task_hyperparams", "hyperparams"),
        "configuration": pick("new_task_configuration", "configuration"),
        "container": pick("new_task_container", "container"),
        "execution": execution,
        "models": {"input": body.get("new_task_input_models").cloned().unwrap_or_else(|| src.pointer("/models/input").cloned().unwrap_or(json!([]))), "output": []},
    });
    if let Some(script) = src.get("script") {
        new_body["script"] = script.clone();
    }
    if let Some(dest) = src.pointer("/output/destination") {
        new_body["output"] = json!({"destination": dest});
    }
    let mut new_project = None;
    if let Some(pname) = opt_str(&body, "new_project_name")? {
        let existing = ctx
            .db
            .all(Table::Projects)?
            .into_iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(&pname));
        let pid = match existing {
            Some(p) => str_field(&p, "id").to_string(),
            None => {
                let r = super::projects::create(ctx, json!({"name": pname}))?;
                str_field(&r, "id").to_string()
            }
        };
        new_body["project"] = json!(pid);
        new_project = Some(json!({"id": pid, "name": pname}));
    }
    let id = insert(ctx, new_body)?;
    let mut out = json!({ "id": id });
    if let Some(p) = new_project {
        out["new_project"] = p;
    }
    Ok(out)
}

/// `tasks.delete {task R, force?}` → `{deleted: 1}`. Only `created` or archived tasks unless forced.
pub(crate) fn delete(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let task = load(ctx, &id)?;
    let status = str_field(&task, "status");
    let archived = task
        .get("system_tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "archived"));
    if status != "created" && !archived && !opt_bool(&body, "force", false)? {
        return Err(ApiError::new(400, 123, "Task cannot be deleted")
            .extra("task is not in created status, use force")
            .with("id", id)
            .with("status", status));
    }
    super::queues::remove_everywhere(ctx.db, &id, None)?;
    let events = ctx.db.delete_events(&id)?;
    ctx.db.delete(Table::Tasks, &id)?;
    Ok(
        json!({ "deleted": 1, "updated_children": 0, "updated_models": 0, "events": {"deleted": events} }),
    )
}

/// `tasks.set_requirements {task R, requirements R}` → Update; replaces `script.requirements`,
/// 400/122 when the task has no script.
pub(crate) fn set_requirements(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let requirements = opt_object(&body, "requirements")?
        .ok_or_else(|| ApiError::missing_field("requirements"))?;
    let mut task = load(ctx, &id)?;
    if !task.get("script").is_some_and(Value::is_object) {
        return Err(ApiError::new(400, 122, "Task is missing expected fields")
            .extra("Task has no script field")
            .with("task", id));
    }
    task["script"]["requirements"] = Value::Object(requirements.clone());
    let now = now_iso();
    task["last_update"] = json!(now);
    task["last_change"] = json!(now);
    save(ctx, &task)?;
    Ok(json!({"updated": 1, "fields": {"script.requirements": requirements, "last_update": now}}))
}

/// Status rule of edit_hyper_params / edit_configuration / artifacts: `created`, or with force
/// also `in_progress` (server 2.0).
fn check_editable(task: &Value, force: bool) -> Result<(), ApiError> {
    let status = str_field(task, "status");
    if status == "created" || (force && status == "in_progress") {
        Ok(())
    } else {
        Err(ApiError::not_editable(status).with("task", str_field(task, "id")))
    }
}

fn touch(task: &mut Value) {
    let now = now_iso();
    task["last_update"] = json!(now);
    task["last_change"] = json!(now);
}

/// `tasks.add_or_update_artifacts {task R, artifacts R, force?}` → `{updated}`; upserts by
/// (key, mode). Force is always passed internally, as in the real server.
pub(crate) fn add_or_update_artifacts(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let artifacts = match body.get("artifacts") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(Value::Array(_)) => return Err(ApiError::validation("artifacts must not be empty")),
        Some(_) => return Err(ApiError::validation("artifacts must be a list")),
        None => return Err(ApiError::missing_field("artifacts")),
    };
    let mut task = load(ctx, &id)?;
    check_editable(&task, true)?;
    let mut current: Vec<Value> = task
        .pointer("/execution/artifacts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key_of = |a: &Value| {
        (
            a.get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            a.get("mode")
                .and_then(Value::as_str)
                .unwrap_or("output")
                .to_string(),
        )
    };
    for a in artifacts {
        if a.get("key").and_then(Value::as_str).is_none()
            || a.get("type").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::missing_field("artifacts.key/type"));
        }
        let k = key_of(&a);
        current.retain(|c| key_of(c) != k);
        current.push(a);
    }
    current.sort_by_key(|a| key_of(a));
    if !task.get("execution").is_some_and(Value::is_object) {
        task["execution"] = json!({});
    }
    task["execution"]["artifacts"] = Value::Array(current);
    touch(&mut task);
    save(ctx, &task)?;
    Ok(json!({ "updated": 1 }))
}

fn sorted_items(section_map: Option<&Value>, nested: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(Value::Object(m)) = section_map else {
        return out;
    };
    if nested {
        let mut sections: BTreeMap<&String, &Value> = BTreeMap::new();
        for (k, v) in m {
            sections.insert(k, v);
        }
        for (section, params) in sections {
            if let Value::Object(p) = params {
                let mut names: Vec<&String> = p.keys().collect();
                names.sort();
                for n in names {
                    let mut item = p.get(n).cloned().unwrap_or(json!({}));
                    item["section"] = json!(section);
                    item["name"] = json!(n);
                    out.push(item);
                }
            }
        }
    } else {
        let mut names: Vec<&String> = m.keys().collect();
        names.sort();
        for n in names {
            let mut item = m.get(n).cloned().unwrap_or(json!({}));
            item["name"] = json!(n);
            out.push(item);
        }
    }
    out
}

/// `tasks.get_hyper_params {tasks R}` → `{params: [{task, hyperparams: [...]}]}`.
pub(crate) fn get_hyper_params(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let ids = opt_str_list(&body, "tasks")?.ok_or_else(|| ApiError::missing_field("tasks"))?;
    let mut params = Vec::new();
    for id in ids {
        let task = load(ctx, &id)?;
        params
            .push(json!({"task": id, "hyperparams": sorted_items(task.get("hyperparams"), true)}));
    }
    Ok(json!({ "params": params }))
}

/// `tasks.edit_hyper_params {task R, hyperparams R, replace_hyperparams?, force?}` → `{updated}`.
pub(crate) fn edit_hyper_params(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let items = body
        .get("hyperparams")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::missing_field("hyperparams"))?;
    let mut task = load(ctx, &id)?;
    let only_properties = items
        .iter()
        .all(|i| i.get("section").and_then(Value::as_str) == Some("properties"));
    if !only_properties {
        check_editable(&task, opt_bool(&body, "force", false)?)?;
    }
    let replace = opt_str(&body, "replace_hyperparams")?.unwrap_or_else(|| "none".into());
    let mut hp = match (replace.as_str(), task.get("hyperparams")) {
        ("all", _) | (_, None) => Map::new(),
        (_, Some(Value::Object(m))) => m.clone(),
        _ => Map::new(),
    };
    if replace == "section" {
        for i in &items {
            if let Some(s) = i.get("section").and_then(Value::as_str) {
                hp.remove(s);
            }
        }
    } else if !["none", "all"].contains(&replace.as_str()) {
        return Err(ApiError::validation(
            "replace_hyperparams must be none, section or all",
        ));
    }
    for i in items {
        let section = i
            .get("section")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = i
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing_field("hyperparams.name"))?
            .to_string();
        let entry = hp.entry(section).or_insert_with(|| json!({}));
        entry[name.as_str()] = i;
    }
    task["hyperparams"] = Value::Object(hp);
    touch(&mut task);
    save(ctx, &task)?;
    Ok(json!({ "updated": 1 }))
}

/// `tasks.get_configurations {tasks R, names?}` → `{configurations: [{task, configuration}]}`.
pub(crate) fn get_configurations(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let ids = opt_str_list(&body, "tasks")?.ok_or_else(|| ApiError::missing_field("tasks"))?;
    let names = opt_str_list(&body, "names")?;
    let mut out = Vec::new();
    for id in ids {
        let task = load(ctx, &id)?;
        let mut items = sorted_items(task.get("configuration"), false);
        if let Some(names) = &names {
            items.retain(|i| {
                names
                    .iter()
                    .any(|n| i.get("name").and_then(Value::as_str) == Some(n))
            });
        }
        out.push(json!({"task": id, "configuration": items}));
    }
    Ok(json!({ "configurations": out }))
}

/// `tasks.edit_configuration {task R, configuration R, replace_configuration?, force?}` → `{updated}`.
pub(crate) fn edit_configuration(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    let items = body
        .get("configuration")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::missing_field("configuration"))?;
    let mut task = load(ctx, &id)?;
    check_editable(&task, opt_bool(&body, "force", false)?)?;
    let mut conf = match task.get("configuration") {
        Some(Value::Object(m)) if !opt_bool(&body, "replace_configuration", false)? => m.clone(),
        _ => Map::new(),
    };
    for i in items {
        let name = i
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing_field("configuration.name"))?;
        conf.insert(name.to_string(), i.clone());
    }
    task["configuration"] = Value::Object(conf);
    touch(&mut task);
    save(ctx, &task)?;
    Ok(json!({ "updated": 1 }))
}

/// `tasks.ping {task R}` → `{}`: refreshes `last_update`; unknown ids are ignored.
pub(crate) fn ping(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "task")?;
    if let Some(mut task) = ctx.db.get(Table::Tasks, &id)? {
        touch(&mut task);
        if str_field(&task, "status") == "in_progress"
            && let Some(started) = task
                .get("started")
                .and_then(Value::as_str)
                .and_then(crate::clock::parse_iso)
        {
            task["active_duration"] = json!((now_ms() - started) / 1000);
        }
        save(ctx, &task)?;
    }
    Ok(json!({}))
}
