//! Errors of the API client: transport failures, server error envelopes, bad replies.
//! Owns the classification callers branch on (`is_task_not_found`, ...); not the retry policy.

use std::fmt::Write as _;

/// Every way an API call can fail. `Display` is one line that names the endpoint and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be built from its configuration (bad CA bundle, bad server URL).
    #[error("invalid API client configuration: {0}")]
    Config(String),
    /// No TCP/TLS connection to the server (refused, DNS, certificate), after all retries.
    #[error(
        "cannot connect to the ClearML API server for {endpoint} ({url}): {cause}; check api.api_server (CLEARML_API_HOST) and that the server is up"
    )]
    Connect {
        endpoint: String,
        url: String,
        cause: String,
    },
    /// The server did not answer in time, after all retries.
    #[error("{endpoint}: no reply from {url} in time: {cause}")]
    Timeout {
        endpoint: String,
        url: String,
        cause: String,
    },
    /// Another transport failure (connection reset mid-body, protocol error), after all retries.
    #[error("{endpoint}: HTTP transport error: {cause}")]
    Transport { endpoint: String, cause: String },
    /// Login failed (bad or missing credentials, login rejected).
    #[error(
        "authentication with {url} failed: {message}; check api.credentials (CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY)"
    )]
    Auth { url: String, message: String },
    /// The server answered with an error envelope (`meta.result_code` != 200).
    #[error("{endpoint} failed: {message} (error {code}/{subcode})")]
    Server {
        code: u16,
        subcode: u32,
        message: String,
        endpoint: String,
    },
    /// The reply was not a ClearML envelope, or its `data` did not have the expected shape.
    #[error(
        "bad response from {endpoint} (HTTP {status}): {detail}; body starts with: {snippet:?}"
    )]
    BadResponse {
        endpoint: String,
        status: u16,
        detail: String,
        snippet: String,
    },
}

impl Error {
    /// The `(code, subcode)` of a server error envelope.
    pub fn server_code(&self) -> Option<(u16, u32)> {
        match self {
            Error::Server { code, subcode, .. } => Some((*code, *subcode)),
            _ => None,
        }
    }

    /// 400/101 invalid_task_id or 400/130 task_not_found.
    pub fn is_task_not_found(&self) -> bool {
        matches!(self.server_code(), Some((400, 101 | 130)))
    }

    /// 400/701 invalid_queue_id.
    pub fn is_queue_not_found(&self) -> bool {
        matches!(self.server_code(), Some((400, 701)))
    }

    /// 400/707 no_default_queue.
    pub fn is_no_default_queue(&self) -> bool {
        matches!(self.server_code(), Some((400, 707)))
    }

    /// 404: the endpoint (or that version of it) does not exist on this server.
    pub fn is_endpoint_missing(&self) -> bool {
        matches!(self.server_code(), Some((404, _)))
            || matches!(self, Error::BadResponse { status: 404, .. })
    }

    /// 400/110 invalid_task_status (illegal status transition).
    pub fn is_invalid_task_status(&self) -> bool {
        matches!(self.server_code(), Some((400, 110)))
    }

    /// 401 of any subcode, or a failed login.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.server_code(), Some((401, _))) || matches!(self, Error::Auth { .. })
    }

    /// Connection refused, timeout or another transport failure (the server may come back).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. }
        )
    }
}

/// One line with an error and every `source()` below it: reqwest's own `Display` hides the cause.
pub(crate) fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The first bytes of a body, lossily decoded, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let mut text = text.into_owned();
    if body.len() > MAX {
        text.push_str("...");
    }
    text
}
