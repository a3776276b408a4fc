//! `workers.*`: registration, status reports (which also refresh the reported task) and
//! listing. A worker expires `timeout` seconds (default 600) after its last register/report.

use serde_json::{Value, json};

use crate::clock::{now_iso, now_ms, parse_iso};
use crate::error::ApiError;
use crate::request::{opt_i64, opt_str, opt_str_list, req_str};
use crate::state::Ctx;
use crate::store::{Store, Table};

/// The default registration timeout (seconds).
pub(crate) const DEFAULT_TIMEOUT_SEC: i64 = 600;

fn is_live(w: &Value, now: i64) -> bool {
    let last = w
        .get("last_activity_time")
        .and_then(Value::as_str)
        .and_then(parse_iso)
        .unwrap_or(0);
    let timeout = w
        .get("register_timeout")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TIMEOUT_SEC);
    now - last <= timeout * 1000
}

/// Live workers (expired ones are dropped from the store).
pub(crate) fn live(db: &Store) -> Result<Vec<Value>, ApiError> {
    let now = now_ms();
    let mut out = Vec::new();
    for w in db.all(Table::Workers)? {
        if is_live(&w, now) {
            out.push(w);
        } else if let Some(id) = w.get("id").and_then(Value::as_str) {
            db.delete(Table::Workers, id)?;
        }
    }
    Ok(out)
}

fn check_queues(ctx: &Ctx, queues: &Option<Vec<String>>) -> Result<(), ApiError> {
    for q in queues.iter().flatten() {
        super::queues::load(ctx.db, q)?;
    }
    Ok(())
}

fn upsert(ctx: &Ctx, id: &str, timeout: Option<i64>) -> Result<Value, ApiError> {
    let now = now_iso();
    let existing = ctx
        .db
        .get(Table::Workers, id)?
        .filter(|w| is_live(w, now_ms()));
    let mut w = existing.unwrap_or_else(|| {
        json!({
            "id": id,
            "key": format!("worker_{}_{}_{}", ctx.identity.company, ctx.identity.user, id),
            "user": {"id": ctx.identity.user, "name": ctx.identity.user_name},
            "company": {"id": ctx.identity.company, "name": ctx.identity.company_name},
            "ip": "127.0.0.1",
            "register_time": now,
            "register_timeout": DEFAULT_TIMEOUT_SEC,
            "queues": [], "tags": [], "system_tags": [],
        })
    });
    if let Some(t) = timeout {
        w["register_timeout"] = json!(t);
    }
    w["last_activity_time"] = json!(now);
    Ok(w)
}

/// `workers.register {worker R, timeout?, queues?, tags?, system_tags?}` → `{}`.
pub(crate) fn register(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "worker")?;
    let queues = opt_str_list(&body, "queues")?;
    check_queues(ctx, &queues)?;
    let timeout = opt_i64(&body, "timeout")?
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SEC);
    let mut w = upsert(ctx, &id, Some(timeout))?;
    w["register_time"] = json!(now_iso());
    w["queues"] = json!(queues.unwrap_or_default());
    for key in ["tags", "system_tags"] {
        w[key] = body.get(key).cloned().unwrap_or(json!([]));
    }
    ctx.db.put(Table::Workers, &id, &w)?;
    Ok(json!({}))
}

/// `workers.unregister {worker R}` → `{}`; unknown workers are tolerated.
pub(crate) fn unregister(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "worker")?;
    ctx.db.delete(Table::Workers, &id)?;
    Ok(json!({}))
}

/// `workers.status_report {worker R, timestamp R, task?, queue?, queues?, machine_stats?,
/// tags?, system_tags?}` → `{}`. Auto-registers; `task`/`queue` are replaced (cleared when
/// absent); a reported task gets `last_worker`, `last_worker_report` and `last_update`.
pub(crate) fn status_report(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "worker")?;
    if opt_i64(&body, "timestamp")?.is_none() {
        return Err(ApiError::missing_field("timestamp"));
    }
    let queues = opt_str_list(&body, "queues")?;
    check_queues(ctx, &queues)?;
    let task_id = opt_str(&body, "task")?.filter(|t| !t.is_empty());
    let mut w = upsert(ctx, &id, None)?;
    let now = now_iso();
    w["last_report_time"] = json!(now);
    if let Some(t) = &task_id {
        let mut task = super::tasks::load(ctx, t)?;
        task["last_worker"] = json!(id);
        task["last_worker_report"] = json!(now);
        task["last_update"] = json!(now);
        task["last_change"] = json!(now);
        super::tasks::save(ctx, &task)?;
        w["task"] = json!(t);
    } else if let Value::Object(m) = &mut w {
        m.remove("task");
    }
    match opt_str(&body, "queue")? {
        Some(q) => w["queue"] = json!(q),
        None => {
            if let Value::Object(m) = &mut w {
                m.remove("queue");
            }
        }
    }
    if let Some(q) = queues {
        w["queues"] = json!(q);
    }
    for key in ["tags", "system_tags", "machine_stats"] {
        if let Some(v) = body.get(key) {
            w[key] = v.clone();
        }
    }
    ctx.db.put(Table::Workers, &id, &w)?;
    Ok(json!({}))
}

fn queue_info(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    let Some(q) = ctx.db.get(Table::Queues, id)? else {
        return Ok(json!({"id": id}));
    };
    let entries = q
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut info = json!({
        "id": id, "name": q.get("name"), "display_name": q.get("display_name"),
        "num_tasks": entries.len(),
    });
    if let Some(next) = entries
        .first()
        .and_then(|e| e.get("task"))
        .and_then(Value::as_str)
    {
        let name = ctx
            .db
            .get(Table::Tasks, next)?
            .and_then(|t| t.get("name").cloned());
        info["next_task"] = json!({"id": next, "name": name});
    }
    Ok(info)
}

/// `workers.get_all {last_seen?: 3600 (0 = all)}` → `{workers}` with task, project and queue
/// details.
pub(crate) fn get_all(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let last_seen = opt_i64(&body, "last_seen")?.unwrap_or(3600);
    let now = now_ms();
    let mut out = Vec::new();
    for mut w in live(ctx.db)? {
        let seen = w
            .get("last_activity_time")
            .and_then(Value::as_str)
            .and_then(parse_iso)
            .unwrap_or(0);
        if last_seen > 0 && now - seen > last_seen * 1000 {
            continue;
        }
        if let Some(t) = w.get("task").and_then(Value::as_str).map(str::to_string) {
            let task = ctx.db.get(Table::Tasks, &t)?;
            let started = task
                .as_ref()
                .and_then(|t| t.get("started"))
                .and_then(Value::as_str)
                .and_then(parse_iso);
            w["task"] = json!({
                "id": t,
                "name": task.as_ref().and_then(|x| x.get("name")),
                "running_time": started.map(|s| now - s),
                "last_iteration": task.as_ref().and_then(|x| x.get("last_iteration")),
            });
            if let Some(pid) = task
                .as_ref()
                .and_then(|x| x.get("project"))
                .and_then(Value::as_str)
            {
                let pname = ctx
                    .db
                    .get(Table::Projects, pid)?
                    .and_then(|p| p.get("name").cloned());
                w["project"] = json!({"id": pid, "name": pname});
            }
        }
        if let Some(q) = w.get("queue").and_then(Value::as_str).map(str::to_string) {
            w["queue"] = queue_info(ctx, &q)?;
        }
        let ids: Vec<String> = w
            .get("queues")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut qs = Vec::new();
        for q in ids {
            qs.push(queue_info(ctx, &q)?);
        }
        w["queues"] = Value::Array(qs);
        if let Value::Object(m) = &mut w {
            m.remove("machine_stats");
        }
        out.push(w);
    }
    Ok(json!({ "workers": out }))
}
