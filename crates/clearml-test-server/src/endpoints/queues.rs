//! `queues.*`: queue documents and their FIFO entries. Every call runs under the store lock in
//! one transaction, so `get_next_task` pops atomically.

use serde_json::{Map, Value, json};

use crate::clock::now_iso;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::query;
use crate::request::{opt_bool, opt_i64, opt_str, opt_str_list, req_str};
use crate::state::{COMPANY_ID, Ctx};
use crate::store::{Store, Table};

/// On a database without queues, creates `default` tagged as the default queue (as the real
/// server does on first start).
pub(crate) fn ensure_default_queue(db: &Store) -> Result<(), ApiError> {
    if db.all(Table::Queues)?.is_empty() {
        insert(
            db,
            "default",
            json!([]),
            json!(["default"]),
            json!({}),
            None,
        )?;
    }
    Ok(())
}

fn insert(
    db: &Store,
    name: &str,
    tags: Value,
    system_tags: Value,
    metadata: Value,
    display_name: Option<String>,
) -> Result<String, ApiError> {
    if find_by_name(db, name)?.is_some() {
        return Err(ApiError::new(
            400,
            801,
            "Value combination already exists (unique field already contains this value)",
        )
        .with("name", name));
    }
    let id = new_id();
    let now = now_iso();
    let mut doc = json!({
        "id": id, "name": name, "company": COMPANY_ID, "created": now,
        "tags": tags, "system_tags": system_tags, "entries": [], "metadata": metadata,
        "last_update": now,
    });
    if let Some(d) = display_name {
        doc["display_name"] = json!(d);
    }
    db.put(Table::Queues, &id, &doc)?;
    Ok(id)
}

/// Creates a queue named `name` (400/801 when taken); returns its id.
pub(crate) fn create_named(db: &Store, name: &str) -> Result<String, ApiError> {
    insert(db, name, json!([]), json!([]), json!({}), None)
}

pub(crate) fn find_by_name(db: &Store, name: &str) -> Result<Option<Value>, ApiError> {
    Ok(db
        .all(Table::Queues)?
        .into_iter()
        .find(|q| q.get("name").and_then(Value::as_str) == Some(name)))
}

/// The queue with this id, or 400/701.
pub(crate) fn load(db: &Store, id: &str) -> Result<Value, ApiError> {
    db.get(Table::Queues, id)?
        .ok_or_else(|| ApiError::queue_not_found(id))
}

/// The queue tagged `default`: 400/707 when none, 400/708 when several.
pub(crate) fn default_queue(db: &Store) -> Result<Value, ApiError> {
    let mut found: Vec<Value> = db
        .all(Table::Queues)?
        .into_iter()
        .filter(|q| {
            q.get("system_tags")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|x| x == "default"))
        })
        .collect();
    match found.len() {
        0 => Err(ApiError::new(
            400,
            707,
            "No queue is tagged as the default queue for this company",
        )),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::new(
            400,
            708,
            "More than one queue is tagged as the default queue for this company",
        )),
    }
}

fn entries(queue: &Value) -> Vec<Value> {
    queue
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry_task(entry: &Value) -> &str {
    entry.get("task").and_then(Value::as_str).unwrap_or("")
}

fn save(db: &Store, queue: &mut Value) -> Result<(), ApiError> {
    queue["last_update"] = json!(now_iso());
    let id = queue
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    db.put(Table::Queues, &id, queue)
}

/// Appends a task to a queue: 400/701 unknown queue, 400/706 already in it.
pub(crate) fn push(db: &Store, queue_id: &str, task: &str) -> Result<(), ApiError> {
    let mut queue = load(db, queue_id)?;
    let mut entries = entries(&queue);
    if entries.iter().any(|e| entry_task(e) == task) {
        return Err(ApiError::new(
            400,
            706,
            "Failed adding task to queue since task is already queued",
        )
        .with("task", task)
        .with("queue", queue_id));
    }
    entries.push(json!({"task": task, "added": now_iso()}));
    queue["entries"] = Value::Array(entries);
    save(db, &mut queue)
}

/// Removes a task from one queue; returns how many entries went.
pub(crate) fn remove(db: &Store, queue_id: &str, task: &str) -> Result<usize, ApiError> {
    let mut queue = load(db, queue_id)?;
    let mut entries = entries(&queue);
    let before = entries.len();
    entries.retain(|e| entry_task(e) != task);
    let removed = before - entries.len();
    if removed > 0 {
        queue["entries"] = Value::Array(entries);
        save(db, &mut queue)?;
    }
    Ok(removed)
}

/// Removes a task from every queue except `keep`; returns how many entries went.
pub(crate) fn remove_everywhere(
    db: &Store,
    task: &str,
    keep: Option<&str>,
) -> Result<usize, ApiError> {
    let mut total = 0;
    for q in db.all(Table::Queues)? {
        let id = q
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if Some(id.as_str()) != keep {
            total += remove(db, &id, task)?;
        }
    }
    Ok(total)
}

fn truncate_entries(mut q: Value, max: Option<i64>) -> Value {
    if let Some(max) = max
        && let Some(Value::Array(items)) = q.get_mut("entries")
    {
        items.truncate(max.max(0) as usize);
    }
    q
}

fn list(ctx: &Ctx, body: &Value) -> Result<Vec<Value>, ApiError> {
    let mut docs = query::filter(ctx.db.all(Table::Queues)?, body, &[])?;
    // Queues with a hidden system tag (k8s-glue by default) are listed only on request.
    let show_hidden = opt_bool(body, "search_hidden", false)?
        || body.get("id").is_some()
        || body.get("name").is_some();
    if !show_hidden {
        docs.retain(|q| {
            !q.get("system_tags")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|x| x == "k8s-glue"))
        });
    }
    let max = opt_i64(body, "max_task_entries")?;
    let docs = docs.into_iter().map(|q| truncate_entries(q, max)).collect();
    query::order_and_page(docs, body)
}

/// `queues.get_all` → `{queues}`.
pub(crate) fn get_all(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let only = opt_str_list(&body, "only_fields")?;
    let queues: Vec<Value> = list(ctx, &body)?
        .into_iter()
        .map(|q| query::project(q, only.as_deref()))
        .collect();
    Ok(json!({ "queues": queues }))
}

/// `queues.get_all_ex` → `{queues}` with `workers` per queue and task names in `entries`.
pub(crate) fn get_all_ex(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let only = opt_str_list(&body, "only_fields")?;
    let workers = super::workers::live(ctx.db)?;
    let mut out = Vec::new();
    for mut q in list(ctx, &body)? {
        let qid = q
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut entries = entries(&q);
        for e in entries.iter_mut() {
            let task = entry_task(e).to_string();
            let name = ctx
                .db
                .get(Table::Tasks, &task)?
                .and_then(|t| t.get("name").cloned())
                .unwrap_or(Value::Null);
            e["task"] = json!({"id": task, "name": name});
        }
        q["entries"] = Value::Array(entries);
        let qworkers: Vec<Value> = workers
            .iter()
            .filter(|w| {
                w.get("queues")
                    .and_then(Value::as_array)
                    .is_some_and(|qs| qs.iter().any(|x| x.as_str() == Some(qid.as_str())))
            })
            .map(|w| {
                json!({"name": w.get("id"), "ip": w.get("ip"), "key": w.get("key"),
                       "task": w.get("task").cloned().unwrap_or(Value::Null)})
            })
            .collect();
        q["workers"] = Value::Array(qworkers);
        out.push(query::project(q, only.as_deref()));
    }
    Ok(json!({ "queues": out }))
}

/// `queues.get_by_id {queue R, max_task_entries?}` → `{queue}`; 400/701 when unknown.
pub(crate) fn get_by_id(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "queue")?;
    let q = truncate_entries(load(ctx.db, &id)?, opt_i64(&body, "max_task_entries")?);
    Ok(json!({ "queue": q }))
}

/// `queues.create {name R, tags?, system_tags?, metadata?, display_name?}` → `{id}`.
pub(crate) fn create(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let name = req_str(&body, "name")?;
    if name.trim().len() < 3 {
        return Err(
            ApiError::validation("queue name must have at least 3 characters").with("name", name),
        );
    }
    let id = insert(
        ctx.db,
        &name,
        body.get("tags").cloned().unwrap_or(json!([])),
        body.get("system_tags").cloned().unwrap_or(json!([])),
        body.get("metadata").cloned().unwrap_or(json!({})),
        opt_str(&body, "display_name")?,
    )?;
    Ok(json!({ "id": id }))
}

/// `queues.update {queue R, name?, tags?, system_tags?, metadata?, display_name?}` → Update.
pub(crate) fn update(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "queue")?;
    let mut q = load(ctx.db, &id)?;
    let mut fields = Map::new();
    if let Some(name) = opt_str(&body, "name")? {
        if let Some(other) = find_by_name(ctx.db, &name)?
            && other.get("id").and_then(Value::as_str) != Some(&id)
        {
            return Err(ApiError::new(
                400,
                801,
                "Value combination already exists (unique field already contains this value)",
            )
            .with("name", name));
        }
        fields.insert("name".into(), json!(name));
    }
    for key in ["tags", "system_tags", "metadata", "display_name"] {
        if let Some(v) = body.get(key) {
            fields.insert(key.into(), v.clone());
        }
    }
    for (k, v) in &fields {
        q[k] = v.clone();
    }
    save(ctx.db, &mut q)?;
    Ok(json!({ "updated": if fields.is_empty() { 0 } else { 1 }, "fields": fields }))
}

/// `queues.delete {queue R, force?}` → `{deleted: 1}`; 400/702 when not empty and not forced.
/// With force, queued tasks go back to their pre-enqueue status.
pub(crate) fn delete(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "queue")?;
    let q = load(ctx.db, &id)?;
    let tasks: Vec<String> = entries(&q)
        .iter()
        .map(|e| entry_task(e).to_string())
        .collect();
    if !tasks.is_empty() && !opt_bool(&body, "force", false)? {
        return Err(ApiError::new(400, 702, "Queue is not empty")
            .with("queue", id)
            .with("num_entries", tasks.len()));
    }
    for t in &tasks {
        super::task_status::revert_dequeued(ctx, t)?;
    }
    ctx.db.delete(Table::Queues, &id)?;
    Ok(json!({ "deleted": 1 }))
}

/// `queues.get_default` → `{id, name}`.
pub(crate) fn get_default(ctx: &Ctx, _body: Value) -> Result<Value, ApiError> {
    let q = default_queue(ctx.db)?;
    Ok(json!({ "id": q.get("id"), "name": q.get("name") }))
}

/// `queues.get_next_task {queue R, get_task_info?, task?}` → `{entry, task_info?}` or `{}`.
/// Pops the head entry (only if it is `task`, when given). A popped `stopped` task is put back
/// to `queued` (mirrors the real server's race fix).
pub(crate) fn get_next_task(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "queue")?;
    let only_task = opt_str(&body, "task")?;
    let mut q = load(ctx.db, &id)?;
    let mut entries = entries(&q);
    let Some(head) = entries.first() else {
        return Ok(json!({}));
    };
    if let Some(t) = &only_task
        && entry_task(head) != t
    {
        return Ok(json!({}));
    }
    let entry = entries.remove(0);
    q["entries"] = Value::Array(entries);
    save(ctx.db, &mut q)?;
    let task_id = entry_task(&entry).to_string();
    let mut out = json!({ "entry": entry });
    if let Some(mut task) = ctx.db.get(Table::Tasks, &task_id)? {
        if task.get("status").and_then(Value::as_str) == Some("stopped") {
            task["status"] = json!("queued");
            ctx.db.put(Table::Tasks, &task_id, &task)?;
        }
        if opt_bool(&body, "get_task_info", false)? {
            out["task_info"] = json!({"company": task.get("company"), "user": task.get("user")});
        }
    }
    Ok(out)
}

/// `queues.add_task {queue R, task R, update_execution_queue?: true}` → `{added: 1}`.
pub(crate) fn add_task(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let qid = req_str(&body, "queue")?;
    let task_id = req_str(&body, "task")?;
    let mut task = super::tasks::load(ctx, &task_id)?;
    push(ctx.db, &qid, &task_id)?;
    if opt_bool(&body, "update_execution_queue", true)? {
        query::set_path(&mut task, "execution.queue", json!(qid));
        ctx.db.put(Table::Tasks, &task_id, &task)?;
    }
    Ok(json!({ "added": 1 }))
}

/// `queues.remove_task {queue R, task R, update_task_status?}` → `{removed}`; 400/703 when the
/// task is not in the queue.
pub(crate) fn remove_task(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let qid = req_str(&body, "queue")?;
    let task_id = req_str(&body, "task")?;
    let removed = remove(ctx.db, &qid, &task_id)?;
    if removed == 0 {
        return Err(
            ApiError::new(400, 703, "Invalid queue id or task not in queue")
                .with("queue", qid)
                .with("task", task_id),
        );
    }
    if opt_bool(&body, "update_task_status", false)? {
        super::task_status::revert_dequeued(ctx, &task_id)?;
    }
    Ok(json!({ "removed": removed }))
}

fn move_to(ctx: &Ctx, body: &Value, front: bool) -> Result<Value, ApiError> {
    let qid = req_str(body, "queue")?;
    let task_id = req_str(body, "task")?;
    let mut q = load(ctx.db, &qid)?;
    let mut entries = entries(&q);
    let Some(pos) = entries.iter().position(|e| entry_task(e) == task_id) else {
        return Err(
            ApiError::new(400, 703, "Invalid queue id or task not in queue")
                .with("queue", qid)
                .with("task", task_id),
        );
    };
    let entry = entries.remove(pos);
    let position = if front {
        entries.insert(0, entry);
        0
    } else {
        entries.push(entry);
        entries.len() - 1
    };
    q["entries"] = Value::Array(entries);
    save(ctx.db, &mut q)?;
    Ok(json!({ "position": position }))
}

/// `queues.move_task_to_front {queue R, task R}` → `{position}`.
pub(crate) fn move_task_to_front(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    move_to(ctx, &body, true)
}

/// `queues.move_task_to_back {queue R, task R}` → `{position}`.
pub(crate) fn move_task_to_back(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    move_to(ctx, &body, false)
}

/// `queues.peek_task {queue R}` → `{task: id|null}`.
pub(crate) fn peek_task(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let q = load(ctx.db, &req_str(&body, "queue")?)?;
    let head = entries(&q).first().map(|e| entry_task(e).to_string());
    Ok(json!({ "task": head }))
}

/// `queues.get_num_entries {queue R}` → `{num}`.
pub(crate) fn get_num_entries(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let q = load(ctx.db, &req_str(&body, "queue")?)?;
    Ok(json!({ "num": entries(&q).len() }))
}

/// `queues.clear_queue {queue R}` → `{removed_tasks}`; the tasks revert to their
/// pre-enqueue status.
pub(crate) fn clear_queue(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let qid = req_str(&body, "queue")?;
    let mut q = load(ctx.db, &qid)?;
    let tasks: Vec<String> = entries(&q)
        .iter()
        .map(|e| entry_task(e).to_string())
        .collect();
    q["entries"] = json!([]);
    save(ctx.db, &mut q)?;
    for t in &tasks {
        super::task_status::revert_dequeued(ctx, t)?;
    }
    Ok(json!({ "removed_tasks": tasks }))
}
