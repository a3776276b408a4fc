//! `ApiError`: a ClearML error reply (HTTP code, subcode, message, error data). Building the
//! envelope from it belongs to `wire`.

use serde_json::{Map, Value};

/// An error answered to the client as `meta.result_code` / `result_subcode` / `result_msg`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status, also `meta.result_code`.
    pub code: u16,
    /// `meta.result_subcode` (the code from the server's `errors.conf`).
    pub subcode: u32,
    /// The capitalised default text of the error.
    pub text: String,
    /// Optional detail shown in parentheses after the text.
    pub extra: Option<String>,
    /// Structured keyword values (`meta.error_data`), also rendered as `k=v` in the message.
    pub data: Box<Map<String, Value>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}: {}", self.code, self.subcode, self.message())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(code: u16, subcode: u32, text: &str) -> Self {
        ApiError {
            code,
            subcode,
            text: text.to_string(),
            extra: None,
            data: Box::default(),
        }
    }

    /// Adds the parenthesised detail, e.g. `Invalid task status (Invalid status change)`.
    pub fn extra(mut self, extra: impl Into<String>) -> Self {
        self.extra = Some(extra.into());
        self
    }

    /// Adds one keyword value to `error_data` and to the message.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// `Text (extra): k=v, k2=v2`, the message format of the ClearML server.
    pub fn message(&self) -> String {
        let mut msg = self.text.clone();
        if let Some(extra) = &self.extra {
            msg.push_str(&format!(" ({extra})"));
        }
        if !self.data.is_empty() {
            let parts: Vec<String> = self
                .data
                .iter()
                .map(|(k, v)| format!("{k}={}", render(v)))
                .collect();
            msg.push_str(": ");
            msg.push_str(&parts.join(", "));
        }
        msg
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::new(500, 0, "General data error").extra(cause.to_string())
    }

    pub fn missing_field(field: &str) -> Self {
        ApiError::new(400, 11, "Missing required fields").with("field", field)
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::new(400, 12, "Validation error").extra(detail)
    }

    pub fn task_not_found(id: &str, company: &str) -> Self {
        ApiError::new(400, 101, "Invalid task id")
            .with("id", id)
            .with("company", company)
    }

    pub fn queue_not_found(id: &str) -> Self {
        ApiError::new(400, 701, "Invalid queue id").with("id", id)
    }

    pub fn invalid_status(current: &str, new: &str) -> Self {
        ApiError::new(400, 110, "Invalid task status")
            .extra("Invalid status change")
            .with("current_status", current)
            .with("new_status", new)
    }

    pub fn not_editable(status: &str) -> Self {
        ApiError::new(400, 110, "Invalid task status")
            .extra("Task is not in an editable state")
            .with("expected", "created")
            .with("status", status)
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!(
                "({})",
                items.iter().map(render).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}
