//! `projects.*`: create (parents of `a/b/c` made as needed), get_all, get_by_id.

use serde_json::{Value, json};

use crate::clock::now_iso;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::query;
use crate::request::{opt_str_list, req_str};
use crate::state::Ctx;
use crate::store::{Store, Table};

fn find_by_name(db: &Store, name: &str) -> Result<Option<Value>, ApiError> {
    Ok(db
        .all(Table::Projects)?
        .into_iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name)))
}

fn insert(ctx: &Ctx, name: &str, body: &Value) -> Result<String, ApiError> {
    let id = new_id();
    let now = now_iso();
    let basename = name.rsplit('/').next().unwrap_or(name);
    let doc = json!({
        "id": id,
        "name": name,
        "basename": basename,
        "description": body.get("description").cloned().unwrap_or(json!("")),
        "user": ctx.identity.user,
        "company": ctx.identity.company,
        "created": now,
        "last_update": now,
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
        "system_tags": body.get("system_tags").cloned().unwrap_or(json!([])),
        "default_output_destination": body.get("default_output_destination").cloned().unwrap_or(Value::Null),
    });
    ctx.db.put(Table::Projects, &id, &doc)?;
    Ok(id)
}

/// `projects.create {name R, description?, tags?, system_tags?, default_output_destination?}`
/// → `{id}`; 400/801 on a duplicate name.
pub(crate) fn create(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let name = req_str(&body, "name")?;
    let name = name.trim().trim_matches('/').to_string();
    if name.split('/').any(|part| part.trim().len() < 3) {
        return Err(
            ApiError::validation("project name parts must have at least 3 characters")
                .with("name", name),
        );
    }
    if find_by_name(ctx.db, &name)?.is_some() {
        return Err(ApiError::new(
            400,
            801,
            "Value combination already exists (unique field already contains this value)",
        )
        .with("name", name));
    }
    let parts: Vec<&str> = name.split('/').collect();
    for i in 1..parts.len() {
        let parent = parts[..i].join("/");
        if find_by_name(ctx.db, &parent)?.is_none() {
            insert(ctx, &parent, &json!({}))?;
        }
    }
    let id = insert(ctx, &name, &body)?;
    Ok(json!({ "id": id }))
}

/// `projects.get_all {id?, name? (regex), tags?, system_tags?, only_fields?, order_by?, page?,
/// page_size?, search_hidden?}` → `{projects}`.
pub(crate) fn get_all(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let docs = query::filter(ctx.db.all(Table::Projects)?, &body, &["basename"])?;
    let docs = query::order_and_page(docs, &body)?;
    let only = opt_str_list(&body, "only_fields")?;
    let projects: Vec<Value> = docs
        .into_iter()
        .map(|d| query::project(d, only.as_deref()))
        .collect();
    Ok(json!({ "projects": projects }))
}

/// `projects.get_by_id {project R}` → `{project}`; 400/401 when unknown.
pub(crate) fn get_by_id(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let id = req_str(&body, "project")?;
    match ctx.db.get(Table::Projects, &id)? {
        Some(p) => Ok(json!({ "project": p })),
        None => Err(ApiError::new(400, 401, "Invalid project id").with("id", id)),
    }
}

/// Checks that a project id exists (for `tasks.create` / `edit`).
pub(crate) fn check_exists(ctx: &Ctx, id: Option<String>) -> Result<(), ApiError> {
    if let Some(id) = id
        && !id.is_empty()
        && ctx.db.get(Table::Projects, &id)?.is_none()
    {
        return Err(ApiError::new(400, 401, "Invalid project id").with("id", id));
    }
    Ok(())
}
