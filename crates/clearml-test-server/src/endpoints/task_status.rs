//! The task state machine (allowed transitions, force, compare-and-set) and the status
//! endpoints: enqueue, dequeue, started, stop (the "stopping" handshake), stopped, failed,
//! completed, close, publish, reset.

use serde_json::{Map, Value, json};

use crate::clock::{now_iso, now_ms, parse_iso};
use crate::error::ApiError;
use crate::request::{opt_bool, opt_str, req_str};
use crate::state::Ctx;
use crate::store::Table;

use super::queues;
use super::tasks::{self, str_field};

/// A worker counts as live while the task's `last_update` is at most this old (tasks.stop).
pub(crate) const LIVE_WORKER_SEC: i64 = 600;

/// Whether `from → to` is allowed without force (same-state changes always are).
/// mirrors apiserver/bll/task/task_bll.py / utils.py: `TaskStatusTransitions`
pub(crate) fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let targets: &[&str] = match from {
        "created" => &["queued", "in_progress"],
        "queued" => &["created", "in_progress", "stopped"],
        "in_progress" => &["stopped", "failed", "created", "completed"],
        "stopped" => &[
            "closed",
            "created",
            "failed",
            "queued",
            "in_progress",
            "published",
            "publishing",
            "completed",
        ],
        "closed" => &["created", "failed", "published", "publishing", "stopped"],
        "failed" => &["created", "stopped", "published", "queued"],
        "completed" => &["published", "in_progress", "created"],
        "publishing" => &["published"],
        _ => &[],
    };
    targets.contains(&to)
}

/// The common StatusChange request: `{task R, status_reason?, status_message?, force?}`.
pub(crate) struct StatusChange {
    pub task: String,
    pub reason: String,
    pub message: String,
    pub force: bool,
}

impl StatusChange {
    pub(crate) fn parse(body: &Value) -> Result<StatusChange, ApiError> {
        Ok(StatusChange {
            task: req_str(body, "task")?,
            reason: opt_str(body, "status_reason")?.unwrap_or_default(),
            message: opt_str(body, "status_message")?.unwrap_or_default(),
            force: opt_bool(body, "force", false)?,
        })
    }
}

/// Changes a loaded task's status: checks the state machine unless `force`, sets the status
/// fields (reason and message are cleared when absent), lets `extra` edit the task and add to
/// the returned fields, and writes with compare-and-set on the old status (400/121 when it
/// changed meanwhile). Returns the Update `fields`.
pub(crate) fn set_status(
    ctx: &Ctx,
    mut task: Value,
    new_status: &str,
    reason: &str,
    message: &str,
    force: bool,
    extra: impl FnOnce(&mut Value, &mut Map<String, Value>),
) -> Result<Map<String, Value>, ApiError> {
    let id = str_field(&task, "id").to_string();
    let current = str_field(&task, "status").to_string();
    if !force {
        if current == "unknown" {
            return Err(
                ApiError::internal("cannot change the status of a task in status unknown")
                    .with("task", id),
            );
        }
        if !allowed(&current, new_status) {
            return Err(ApiError::invalid_status(&current, new_status).with("task", id));
        }
    }
    let now = now_iso();
    let mut fields = Map::new();
    fields.insert("status".into(), json!(new_status));
    fields.insert("status_reason".into(), json!(reason));
    fields.insert("status_message".into(), json!(message));
    fields.insert("status_changed".into(), json!(now));
    fields.insert("last_update".into(), json!(now));
    fields.insert("last_change".into(), json!(now));
    fields.insert("last_changed_by".into(), json!(ctx.identity.user));
    for (k, v) in &fields {
        task[k] = v.clone();
    }
    if new_status == "queued"
        && let Some(Value::Array(tags)) = task.get_mut("system_tags")
    {
        tags.retain(|t| t != "development");
    }
    extra(&mut task, &mut fields);
    if !ctx.db.put_task_if_status(&id, &current, &task)? {
        return Err(ApiError::new(
            400,
            121,
            "Failed changing task status. probably someone changed it before you",
        )
        .with("task", id)
        .with("status", current));
    }
    Ok(fields)
}

fn update_reply(fields: Map<String, Value>) -> Value {
    json!({ "updated": 1, "fields": fields })
}

fn simple(ctx: &Ctx, body: &Value, new_status: &str) -> Result<Value, ApiError> {
    let req = StatusChange::parse(body)?;
    let task = tasks::load(ctx, &req.task)?;
    let fields = set_status(
        ctx,
        task,
        new_status,
        &req.reason,
        &req.message,
        req.force,
        |_, _| {},
    )?;
    Ok(update_reply(fields))
}

/// `tasks.started` → Update + `{started}`; sets `started` once.
pub(crate) fn started(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let task = tasks::load(ctx, &req.task)?;
    let fields = set_status(
        ctx,
        task,
        "in_progress",
        &req.reason,
        &req.message,
        req.force,
        |t, f| {
            if t.get("started").is_none_or(Value::is_null) {
                let now = now_iso();
                t["started"] = json!(now);
                f.insert("started".into(), json!(now));
            }
        },
    )?;
    let mut out = update_reply(fields);
    out["started"] = json!(1);
    Ok(out)
}

fn set_completed_time(t: &mut Value, f: &mut Map<String, Value>) {
    let now = now_iso();
    t["completed"] = json!(now);
    f.insert("completed".into(), json!(now));
}

/// `tasks.stopped` → Update; sets `completed`.
pub(crate) fn stopped(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let task = tasks::load(ctx, &req.task)?;
    let fields = set_status(
        ctx,
        task,
        "stopped",
        &req.reason,
        &req.message,
        req.force,
        set_completed_time,
    )?;
    Ok(update_reply(fields))
}

/// `tasks.failed` → Update.
pub(crate) fn failed(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    simple(ctx, &body, "failed")
}

/// `tasks.close` → Update.
pub(crate) fn close(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    simple(ctx, &body, "closed")
}

fn publish_task(ctx: &Ctx, id: &str, req: &StatusChange) -> Result<Map<String, Value>, ApiError> {
    let task = tasks::load(ctx, id)?;
    set_status(
        ctx,
        task,
        "published",
        &req.reason,
        &req.message,
        req.force,
        |t, f| {
            let now = now_iso();
            t["published"] = json!(now);
            f.insert("published".into(), json!(now));
        },
    )
}

/// `tasks.completed {publish?}` → Update + `{published}`; sets `completed`.
pub(crate) fn completed(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let task = tasks::load(ctx, &req.task)?;
    let mut fields = set_status(
        ctx,
        task,
        "completed",
        &req.reason,
        &req.message,
        req.force,
        set_completed_time,
    )?;
    let mut published = 0;
    if opt_bool(&body, "publish", false)? {
        fields = publish_task(ctx, &req.task, &req)?;
        published = 1;
    }
    let mut out = update_reply(fields);
    out["published"] = json!(published);
    Ok(out)
}

/// `tasks.publish` → Update.
pub(crate) fn publish(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let fields = publish_task(ctx, &req.task, &req)?;
    Ok(update_reply(fields))
}

fn resolve_queue(ctx: &Ctx, body: &Value) -> Result<String, ApiError> {
    let queue = opt_str(body, "queue")?.filter(|q| !q.is_empty());
    let queue_name = opt_str(body, "queue_name")?.filter(|q| !q.is_empty());
    match (queue, queue_name) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Either queue id or queue name should be provided, not both",
        )),
        (Some(id), None) => {
            queues::load(ctx.db, &id)?;
            Ok(id)
        }
        (None, Some(name)) => match queues::find_by_name(ctx.db, &name)? {
            Some(q) => Ok(str_field(&q, "id").to_string()),
            None => queues::create_named(ctx.db, &name),
        },
        (None, None) => Ok(str_field(&queues::default_queue(ctx.db)?, "id").to_string()),
    }
}

/// `tasks.enqueue {queue? | queue_name?, verify_watched_queue?, update_execution_queue?}` →
/// Update + `{queued: 1, queue_watched?}`. Saves the old status in `enqueue_status`, appends
/// to the queue and removes the task from other queues (all in one transaction).
pub(crate) fn enqueue(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let task = tasks::load(ctx, &req.task)?;
    let queue_id = resolve_queue(ctx, &body)?;
    // Re-enqueueing a queued task keeps the status it had before it was first queued.
    let previous = match str_field(&task, "status") {
        "queued" => task
            .get("enqueue_status")
            .and_then(Value::as_str)
            .unwrap_or("created")
            .to_string(),
        other => other.to_string(),
    };
    let set_queue = opt_bool(&body, "update_execution_queue", true)?;
    let qid = queue_id.clone();
    let mut fields = set_status(
        ctx,
        task,
        "queued",
        &req.reason,
        &req.message,
        req.force,
        |t, f| {
            t["enqueue_status"] = json!(previous);
            if set_queue {
                if !t.get("execution").is_some_and(Value::is_object) {
                    t["execution"] = json!({});
                }
                t["execution"]["queue"] = json!(qid);
                f.insert("execution.queue".into(), json!(qid));
            }
        },
    )?;
    queues::push(ctx.db, &queue_id, &req.task)?;
    queues::remove_everywhere(ctx.db, &req.task, Some(&queue_id))?;
    fields.retain(|k, _| k != "enqueue_status");
    let mut out = update_reply(fields);
    out["queued"] = json!(1);
    if opt_bool(&body, "verify_watched_queue", false)? {
        let watched = super::workers::live(ctx.db)?.iter().any(|w| {
            w.get("queues")
                .and_then(Value::as_array)
                .is_some_and(|qs| qs.iter().any(|q| q == &json!(queue_id)))
        });
        out["queue_watched"] = json!(watched);
    }
    Ok(out)
}

/// Puts a `queued` task back to its pre-enqueue status (or `created`) and clears its
/// execution queue; used when a queue is cleared or deleted.
pub(crate) fn revert_dequeued(ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    let Some(task) = ctx.db.get(Table::Tasks, id)? else {
        return Ok(());
    };
    if str_field(&task, "status") != "queued" {
        return Ok(());
    }
    let back = task
        .get("enqueue_status")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != "queued")
        .unwrap_or("created")
        .to_string();
    set_status(ctx, task, &back, "", "", true, |t, _| {
        if let Value::Object(m) = t {
            m.remove("enqueue_status");
        }
        if let Some(Value::Object(e)) = t.get_mut("execution") {
            e.remove("queue");
        }
    })?;
    Ok(())
}

/// `tasks.dequeue {remove_from_all_queues?, new_status?}` → Update + `{dequeued: 1}`. Not
/// queued / in_progress (or unknown): `{dequeued: 1, updated: 0}` without error.
pub(crate) fn dequeue(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let all = opt_bool(&body, "remove_from_all_queues", false)?;
    let new_status = opt_str(&body, "new_status")?;
    let Some(task) = ctx.db.get(Table::Tasks, &req.task)? else {
        queues::remove_everywhere(ctx.db, &req.task, None)?;
        return Ok(json!({"dequeued": 1, "updated": 0, "fields": {}}));
    };
    if all {
        queues::remove_everywhere(ctx.db, &req.task, None)?;
    } else if let Some(q) = task.pointer("/execution/queue").and_then(Value::as_str)
        && ctx.db.get(Table::Queues, q)?.is_some()
    {
        queues::remove(ctx.db, q, &req.task)?;
    }
    let status = str_field(&task, "status");
    if status != "queued" && status != "in_progress" {
        return Ok(json!({"dequeued": 1, "updated": 0, "fields": {}}));
    }
    let target = new_status
        .or_else(|| {
            task.get("enqueue_status")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "created".to_string());
    let fields = set_status(
        ctx,
        task,
        &target,
        &req.reason,
        &req.message,
        true,
        |t, _| {
            if let Value::Object(m) = t {
                m.remove("enqueue_status");
            }
        },
    )?;
    let mut out = update_reply(fields);
    out["dequeued"] = json!(1);
    Ok(out)
}

/// `tasks.stop` → Update. A queued task, a `development` task, or one without a live worker
/// (no `last_worker`, or `last_update` older than 600 s) is dequeued and set `stopped` now;
/// otherwise only `status_message` becomes "stopping" for the worker to act on.
/// mirrors apiserver/bll/task/task_operations.py: stop_task
pub(crate) fn stop(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let mut task = tasks::load(ctx, &req.task)?;
    let status = str_field(&task, "status").to_string();
    let development = task
        .get("system_tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "development"));
    let has_worker = task
        .get("last_worker")
        .and_then(Value::as_str)
        .is_some_and(|w| !w.is_empty());
    let recent = task
        .get("last_update")
        .and_then(Value::as_str)
        .and_then(parse_iso)
        .is_some_and(|t| now_ms() - t <= LIVE_WORKER_SEC * 1000);
    if status == "queued" || development || !has_worker || !recent {
        if status == "queued" {
            queues::remove_everywhere(ctx.db, &req.task, None)?;
        }
        let message = format!("Stopped by {}", ctx.identity.user_name);
        let fields = set_status(
            ctx,
            task,
            "stopped",
            &req.reason,
            &message,
            req.force,
            |_, _| {},
        )?;
        return Ok(update_reply(fields));
    }
    let now = now_iso();
    task["status_reason"] = json!(req.reason);
    task["status_message"] = json!("stopping");
    task["last_change"] = json!(now);
    tasks::save(ctx, &task)?;
    Ok(
        json!({"updated": 1, "fields": {"status_reason": req.reason, "status_message": "stopping", "last_change": now}}),
    )
}

/// The watchdog: stops `in_progress` tasks whose `last_update` is older than `timeout_ms`,
/// with reason and message "Forced stop (non-responsive)". Returns how many were stopped.
/// mirrors apiserver/bll/task/non_responsive_tasks_watchdog.py
pub(crate) fn stop_non_responsive(ctx: &Ctx, timeout_ms: i64) -> Result<usize, ApiError> {
    let now = now_ms();
    let mut stopped = 0;
    for task in ctx.db.all(Table::Tasks)? {
        let stale = task
            .get("last_update")
            .and_then(Value::as_str)
            .and_then(parse_iso)
            .is_some_and(|t| now - t > timeout_ms);
        if str_field(&task, "status") == "in_progress" && stale {
            let reason = "Forced stop (non-responsive)";
            set_status(
                ctx,
                task,
                "stopped",
                reason,
                reason,
                true,
                set_completed_time,
            )?;
            stopped += 1;
        }
    }
    Ok(stopped)
}

/// `tasks.reset {clear_all?, force?}` → Update + `{dequeued, events, deleted_models}`. Fails on
/// `published` unless forced; clears run results, events and queue entries, then sets `created`.
pub(crate) fn reset(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let req = StatusChange::parse(&body)?;
    let task = tasks::load(ctx, &req.task)?;
    let status = str_field(&task, "status").to_string();
    if status == "published" && !req.force {
        return Err(ApiError::invalid_status(&status, "created").with("task", req.task));
    }
    let removed = queues::remove_everywhere(ctx.db, &req.task, None)?;
    let deleted_events = ctx.db.delete_events(&req.task)?;
    let clear_all = opt_bool(&body, "clear_all", false)?;
    let fields = set_status(ctx, task, "created", "reset", "reset", true, |t, _| {
        if let Value::Object(m) = t {
            for key in [
                "last_iteration",
                "last_metrics",
                "runtime",
                "last_worker",
                "last_worker_report",
                "started",
                "completed",
                "published",
                "active_duration",
                "enqueue_status",
            ] {
                m.remove(key);
            }
            m.insert("last_iteration".into(), json!(0));
            m.insert("runtime".into(), json!({}));
            if clear_all {
                m.insert("execution".into(), json!({}));
                m.remove("script");
            }
        }
        if let Some(Value::Object(out)) = t.get_mut("output") {
            out.remove("result");
            out.remove("error");
        }
        if let Some(Value::Object(models)) = t.get_mut("models") {
            models.insert("output".into(), json!([]));
        }
        if let Some(Value::Object(e)) = t.get_mut("execution") {
            e.remove("queue");
            if let Some(Value::Array(arts)) = e.get_mut("artifacts") {
                arts.retain(|a| a.get("mode").and_then(Value::as_str) == Some("input"));
            }
        }
    })?;
    let mut out = update_reply(fields);
    out["dequeued"] = json!({"removed": removed});
    out["events"] = json!({"deleted": deleted_events});
    out["deleted_models"] = json!(0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::state::Shared;

    #[test]
    fn a_status_change_from_a_stale_read_loses_the_race_with_400_121() {
        let shared = Shared::open(None, "k".into(), "s".into(), 60).unwrap();
        let store = shared.store.lock().unwrap();
        let ctx = Ctx {
            db: &store,
            shared: &shared,
            identity: &shared.identity,
            worker: None,
            version: (2, 31),
        };
        let id = tasks::insert(&ctx, json!({"name": "race task", "type": "training"})).unwrap();
        let stale = tasks::load(&ctx, &id).unwrap();
        // Another request moves the task on between our read and our write.
        started(&ctx, json!({"task": id})).unwrap();
        let err = set_status(&ctx, stale, "queued", "", "", false, |_, _| {}).unwrap_err();
        assert_eq!((err.code, err.subcode), (400, 121));
        assert_eq!(
            str_field(&tasks::load(&ctx, &id).unwrap(), "status"),
            "in_progress"
        );
    }
}
