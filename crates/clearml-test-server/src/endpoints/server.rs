//! `debug.ping`, `server.info`, `server.endpoints` and `users.get_current_user`.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::Ctx;
use crate::token::{API_VERSION, SERVER_VERSION};

/// `debug.ping` → `{msg: "ClearML server", ...request fields}`; needs no credentials.
pub(crate) fn ping(_ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let mut out = match body {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    out.insert("msg".into(), json!("ClearML server"));
    Ok(Value::Object(out))
}

/// `server.info` → versions (no credentials needed, as in server 2.0).
pub(crate) fn info(_ctx: &Ctx, _body: Value) -> Result<Value, ApiError> {
    Ok(json!({
        "version": SERVER_VERSION,
        "build": "clearml-test-server",
        "commit": "",
        "uid": "clearml-test-server",
        "api_version": API_VERSION,
    }))
}

/// `server.endpoints` (system role): the registered endpoint names and versions.
pub(crate) fn endpoints(_ctx: &Ctx, _body: Value) -> Result<Value, ApiError> {
    let list: Vec<Value> = super::ENDPOINTS
        .iter()
        .map(|e| json!({"name": e.name, "min_version": format!("{}.{}", e.min_version.0, e.min_version.1)}))
        .collect();
    Ok(json!({ "endpoints": list }))
}

/// `users.get_current_user` → the caller.
pub(crate) fn current_user(ctx: &Ctx, _body: Value) -> Result<Value, ApiError> {
    let id = ctx.identity;
    Ok(json!({
        "user": {
            "id": id.user, "name": id.user_name, "given_name": "Test", "family_name": "User",
            "role": id.role, "avatar": null,
            "company": {"id": id.company, "name": id.company_name},
            "preferences": {}, "created": crate::clock::iso(0), "created_in_version": SERVER_VERSION,
        },
        "getting_started": {},
        "settings": {"max_download_items": 1000},
    }))
}
