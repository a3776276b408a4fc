//! Reading typed fields out of a request body, with the server's errors for missing (400/11)
//! and mistyped (400/12) fields.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// A required string field.
pub(crate) fn req_str(body: &Value, key: &str) -> Result<String, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Err(ApiError::missing_field(key)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::validation(format!("{key} must be a string"))),
    }
}

/// An optional string field (null counts as absent).
pub(crate) fn opt_str(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(format!("{key} must be a string"))),
    }
}

pub(crate) fn opt_bool(body: &Value, key: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::validation(format!("{key} must be a boolean"))),
    }
}

pub(crate) fn opt_i64(body: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| ApiError::validation(format!("{key} must be an integer"))),
    }
}

/// An optional list of strings; a single string counts as a one-item list.
pub(crate) fn opt_str_list(body: &Value, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::validation(format!("{key} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::validation(format!(
            "{key} must be a list of strings"
        ))),
    }
}

/// An optional JSON object field.
pub(crate) fn opt_object(body: &Value, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ApiError::validation(format!("{key} must be an object"))),
    }
}
