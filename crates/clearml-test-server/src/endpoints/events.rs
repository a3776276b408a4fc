//! `events.*`: storing log/scalar/plot/… events (add, add_batch) with their side effects on
//! the task, and reading them back (get_task_log 2.9, get_task_events, download_task_log).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::clock::{iso, now_iso, now_ms};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::request::{opt_bool, opt_i64, opt_str, req_str};
use crate::state::Ctx;
use crate::store::Table;

const TYPES: &[&str] = &[
    "log",
    "training_stats_scalar",
    "training_stats_vector",
    "training_debug_image",
    "plot",
];

/// A stable key for a metric or variant name inside `last_metrics`. (The real server uses
/// md5 hex; clients treat the keys as opaque.)
fn metric_key(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Updates `last_metrics` of a task with one scalar value.
fn record_scalar(task: &mut Value, metric: &str, variant: &str, value: f64, iter: i64) {
    if !task.get("last_metrics").is_some_and(Value::is_object) {
        task["last_metrics"] = json!({});
    }
    let mk = metric_key(metric);
    let vk = metric_key(variant);
    if !task["last_metrics"].get(&mk).is_some_and(Value::is_object) {
        task["last_metrics"][&mk] = json!({});
    }
    let slot = &mut task["last_metrics"][&mk][&vk];
    let prev = slot.clone();
    let num = |k: &str| prev.get(k).and_then(Value::as_f64);
    let count = prev.get("count").and_then(Value::as_i64).unwrap_or(0);
    let (min, min_iter) = match num("min_value") {
        Some(m) if m <= value => (
            m,
            prev.get("min_value_iteration")
                .cloned()
                .unwrap_or(json!(iter)),
        ),
        _ => (value, json!(iter)),
    };
    let (max, max_iter) = match num("max_value") {
        Some(m) if m >= value => (
            m,
            prev.get("max_value_iteration")
                .cloned()
                .unwrap_or(json!(iter)),
        ),
        _ => (value, json!(iter)),
    };
    let mean = (num("mean_value").unwrap_or(0.0) * count as f64 + value) / (count + 1) as f64;
    *slot = json!({
        "metric": metric, "variant": variant, "value": value,
        "min_value": min, "min_value_iteration": min_iter,
        "max_value": max, "max_value_iteration": max_iter,
        "first_value": prev.get("first_value").cloned().unwrap_or(json!(value)),
        "first_value_iteration": prev.get("first_value_iteration").cloned().unwrap_or(json!(iter)),
        "mean_value": mean, "count": count + 1,
    });
}

/// Stores events; returns `{added, errors, errors_info}`. 400/17 when empty, 400/131 when
/// none was added.
fn store_events(ctx: &Ctx, events: Vec<Value>) -> Result<Value, ApiError> {
    if events.is_empty() {
        return Err(ApiError::new(400, 17, "Batch request contains no items"));
    }
    let mut added = 0;
    let mut errors: BTreeMap<String, i64> = BTreeMap::new();
    let mut tasks: BTreeMap<String, Value> = BTreeMap::new();
    let now = now_ms();
    for ev in events {
        match store_one(ctx, ev, &mut tasks, now) {
            Ok(()) => added += 1,
            Err(reason) => *errors.entry(reason).or_insert(0) += 1,
        }
    }
    let stamp = now_iso();
    for (_, mut task) in tasks {
        task["last_update"] = json!(stamp);
        super::tasks::save(ctx, &task)?;
    }
    let errors_info: Map<String, Value> =
        errors.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let error_count: i64 = errors.values().sum();
    if added == 0 {
        let mut err = ApiError::new(400, 131, "Events not added");
        err.data = Box::new(errors_info);
        return Err(err);
    }
    Ok(json!({"added": added, "errors": error_count, "errors_info": errors_info}))
}

fn store_one(
    ctx: &Ctx,
    mut ev: Value,
    tasks: &mut BTreeMap<String, Value>,
    now: i64,
) -> Result<(), String> {
    let Value::Object(map) = &mut ev else {
        return Err("Event is not an object".into());
    };
    let task_id = match map.get("task") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err("Event must have a 'task' field".into()),
    };
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !TYPES.contains(&kind.as_str()) {
        return Err(format!("Invalid event type {kind}"));
    }
    if !tasks.contains_key(&task_id) {
        match ctx.db.get(Table::Tasks, &task_id) {
            Ok(Some(t)) => {
                tasks.insert(task_id.clone(), t);
            }
            _ => return Err("Invalid task id".into()),
        }
    }
    let Some(task) = tasks.get_mut(&task_id) else {
        return Err("Invalid task id".into());
    };
    let status = task.get("status").and_then(Value::as_str).unwrap_or("");
    let allow_locked = map
        .get("allow_locked")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if (status == "published" || status == "publishing") && !allow_locked {
        return Err("Task is published".into());
    }
    let timestamp = map
        .get("timestamp")
        .or_else(|| map.get("ts"))
        .and_then(Value::as_f64)
        .map(|t| t as i64)
        .unwrap_or(now);
    map.remove("ts");
    map.remove("allow_locked");
    map.insert("timestamp".into(), json!(timestamp));
    map.insert("@timestamp".into(), json!(iso(timestamp)));
    for key in ["metric", "variant"] {
        if !map.get(key).is_some_and(Value::is_string) {
            map.insert(key.into(), json!(""));
        }
    }
    if !map.get("worker").is_some_and(Value::is_string) {
        map.insert("worker".into(), json!(ctx.worker.unwrap_or("")));
    }
    if !map.contains_key("model_event") {
        map.insert("model_event".into(), json!(false));
    }
    let iter = match map.get("iter") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(i) => Some(i),
            None => return Err("Iteration number should be an integer that fits in int64".into()),
        },
    };
    let metric = map
        .get("metric")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let variant = map
        .get("variant")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind == "training_stats_vector"
        && let Some(values) = map.remove("values")
    {
        map.insert("value".into(), values);
    }
    if let Some(i) = iter {
        let last = task
            .get("last_iteration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if i > last {
            task["last_iteration"] = json!(i);
        }
    }
    if kind == "training_stats_scalar" {
        let Some(value) = map.get("value").and_then(Value::as_f64) else {
            return Err("Scalar event must have a numeric 'value'".into());
        };
        record_scalar(task, &metric, &variant, value, iter.unwrap_or(0));
    }
    // Log events always get a new id; others a deterministic one, so re-sending overwrites.
    let event_id = if kind == "log" {
        new_id()
    } else {
        let key = map.get("key").and_then(Value::as_str).unwrap_or("");
        format!(
            "{task_id}|{kind}|{metric}|{variant}|{}|{key}",
            iter.unwrap_or(0)
        )
    };
    map.insert("id".into(), json!(event_id));
    let stored_id = if kind == "log" {
        None
    } else {
        Some(event_id.as_str())
    };
    ctx.db
        .add_event(&task_id, &kind, timestamp, stored_id, &ev)
        .map_err(|e| e.message())
}

/// `events.add_batch` (json-lines) → `{added, errors, errors_info}`.
pub(crate) fn add_batch(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let events = match body {
        Value::Array(items) => items,
        Value::Object(m) if m.is_empty() => Vec::new(),
        other => vec![other],
    };
    store_events(ctx, events)
}

/// `events.add` (one event as the body) → `{added, errors, errors_info}`.
pub(crate) fn add(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    store_events(ctx, vec![body])
}

fn public(mut ev: Value) -> Value {
    if let Value::Object(m) = &mut ev {
        m.remove("id");
    }
    ev
}

/// `events.get_task_log` (2.9 form) `{task R, batch_size?: 5000, navigate_earlier?: true,
/// from_timestamp?, order?}` → `{events, returned, total}`. Events sharing the boundary
/// timestamp are included, as in the real server.
pub(crate) fn get_task_log(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let task = req_str(&body, "task")?;
    super::tasks::load(ctx, &task)?;
    let batch = opt_i64(&body, "batch_size")?.unwrap_or(5000).max(1) as usize;
    let earlier = opt_bool(&body, "navigate_earlier", true)?;
    let from = opt_i64(&body, "from_timestamp")?;
    let order = opt_str(&body, "order")?;
    let all = ctx.db.events(&task, Some("log"))?;
    let total = all.len();
    let mut picked: Vec<(i64, Value)> = if earlier {
        all.into_iter()
            .rev()
            .filter(|(_, ts, _)| from.is_none_or(|f| *ts <= f))
            .map(|(_, ts, d)| (ts, d))
            .collect()
    } else {
        all.into_iter()
            .filter(|(_, ts, _)| from.is_none_or(|f| *ts >= f))
            .map(|(_, ts, d)| (ts, d))
            .collect()
    };
    if picked.len() > batch {
        let boundary = picked[batch - 1].0;
        let mut end = batch;
        while end < picked.len() && picked[end].0 == boundary {
            end += 1;
        }
        picked.truncate(end);
    }
    let ascending_now = !earlier;
    let want_ascending = match order.as_deref() {
        Some("asc") => true,
        Some("desc") => false,
        Some(o) => return Err(ApiError::validation("order must be asc or desc").with("order", o)),
        None => ascending_now,
    };
    if want_ascending != ascending_now {
        picked.reverse();
    }
    let events: Vec<Value> = picked.into_iter().map(|(_, d)| public(d)).collect();
    Ok(json!({"events": events, "returned": events.len(), "total": total}))
}

/// `events.get_task_events {task R, event_type?, order?: asc, scroll_id?, batch_size?: 500}`
/// → `{events, returned, total, scroll_id}`.
pub(crate) fn get_task_events(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let task = req_str(&body, "task")?;
    super::tasks::load(ctx, &task)?;
    let kind = opt_str(&body, "event_type")?;
    let batch = opt_i64(&body, "batch_size")?.unwrap_or(500).max(1) as usize;
    let offset: usize = opt_str(&body, "scroll_id")?
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let mut all: Vec<Value> = ctx
        .db
        .events(&task, kind.as_deref())?
        .into_iter()
        .map(|(_, _, d)| public(d))
        .collect();
    if opt_str(&body, "order")?.as_deref() == Some("desc") {
        all.reverse();
    }
    let total = all.len();
    let events: Vec<Value> = all.into_iter().skip(offset).take(batch).collect();
    let next = offset + events.len();
    Ok(
        json!({"events": events, "returned": events.len(), "total": total,
              "scroll_id": format!("offset:{next}")}),
    )
}

/// `events.download_task_log {task R, line_type?: json|text}` → the log as raw text (the
/// wire layer sends a string result without the envelope).
pub(crate) fn download_task_log(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let task = req_str(&body, "task")?;
    super::tasks::load(ctx, &task)?;
    let json_lines = opt_str(&body, "line_type")?.as_deref() == Some("json");
    let mut out = String::new();
    for (_, ts, ev) in ctx.db.events(&task, Some("log"))? {
        if json_lines {
            out.push_str(&public(ev).to_string());
        } else {
            let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            out.push_str(&format!(
                "{} {} {} {}",
                iso(ts),
                s("worker"),
                s("level").to_uppercase(),
                s("msg")
            ));
        }
        out.push('\n');
    }
    Ok(Value::String(out))
}
