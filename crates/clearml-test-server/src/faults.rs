//! Injected faults: replies the server gives instead of the real ones, per endpoint and a number
//! of times, so tests can prove what a client does with malformed, trickled or huge replies.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One reply given in place of the endpoint's real one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A 200 envelope whose `data` is this value (`{}`, `null`, fields of the wrong type, ...).
    Data(Value),
    /// Status 200 with this body as it is (not JSON, or JSON that is no envelope).
    Raw(String),
    /// This HTTP status with an empty body.
    Status(u16),
    /// A well-formed 200 envelope with `data: {}`, sent one byte per interval.
    Trickle(Duration),
    /// A 200 envelope padded to about this many bytes.
    Huge(usize),
}

/// The faults waiting to be given, per endpoint name (`service.action`), in order.
#[derive(Default)]
pub struct Faults {
    waiting: Mutex<HashMap<String, VecDeque<Fault>>>,
}

impl Faults {
    /// The next `times` requests to `endpoint` get `fault`.
    pub fn push(&self, endpoint: &str, fault: Fault, times: usize) {
        if let Ok(mut waiting) = self.waiting.lock() {
            let queue = waiting.entry(endpoint.to_string()).or_default();
            queue.extend(std::iter::repeat_n(fault, times));
        }
    }

    /// The fault for this request to `endpoint`, if one is waiting.
    pub fn take(&self, endpoint: &str) -> Option<Fault> {
        self.waiting.lock().ok()?.get_mut(endpoint)?.pop_front()
    }

    /// How many faults are still waiting, over all endpoints.
    pub fn pending(&self) -> usize {
        self.waiting
            .lock()
            .map(|w| w.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }

    pub fn clear(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.clear();
        }
    }
}

fn envelope(endpoint: &str, data: Value) -> Value {
    json!({
        "meta": {
            "id": crate::ids::new_id(),
            "trx": null,
            "endpoint": { "name": endpoint, "requested_version": "2.31", "actual_version": "2.31" },
            "result_code": 200,
            "result_subcode": 0,
            "result_msg": "OK",
            "error_stack": null,
            "error_data": {},
        },
        "data": data,
    })
}

fn json_response(body: impl Into<Body>) -> Response {
    let mut resp = (StatusCode::OK, body.into()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl Fault {
    /// The HTTP reply for this fault to a request for `endpoint`.
    pub fn into_response(self, endpoint: &str) -> Response {
        match self {
            Fault::Data(data) => json_response(envelope(endpoint, data).to_string()),
            Fault::Raw(text) => json_response(text),
            Fault::Status(code) => StatusCode::from_u16(code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
            Fault::Trickle(every) => {
                let bytes = envelope(endpoint, json!({})).to_string().into_bytes();
                let stream = futures_util::stream::unfold(0usize, move |at| {
                    let next = bytes.get(at).copied();
                    async move {
                        let byte = next?;
                        if at > 0 {
                            tokio::time::sleep(every).await;
                        }
                        Some((Ok::<_, std::io::Error>(Bytes::from(vec![byte])), at + 1))
                    }
                });
                json_response(Body::from_stream(stream))
            }
            Fault::Huge(size) => {
                let pad = "x".repeat(size);
                json_response(envelope(endpoint, json!({ "padding": pad })).to_string())
            }
        }
    }
}
