//! The wire format: request paths (`/vX.Y/service.action`), bodies (JSON, JSON on GET,
//! json-lines batches, query-string merge), authentication headers, and the
//! `{"meta": …, "data": …}` envelope. Endpoint semantics live in `endpoints`.

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::endpoints::{self, Auth};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::state::{Ctx, Shared};
use crate::token::{self, Identity};

static PATH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^/(?:v([^/]*)/)?([A-Za-z_]\w+)\.([A-Za-z_]\w+)/?$").ok());

/// The highest API version served; used when the path carries none.
pub(crate) const MAX_VERSION: (u32, u32) = (2, 31);

struct Reply {
    endpoint: String,
    requested: Option<(u32, u32)>,
    actual: Option<(u32, u32)>,
    trx: Option<String>,
    result: Result<Value, ApiError>,
    cookie: Option<String>,
}

/// A version as JSON: a string when the requested version is 2.1 or later, else a float.
fn version_value(v: (u32, u32), requested: (u32, u32)) -> Value {
    let text = format!("{}.{}", v.0, v.1);
    if requested < (2, 1) {
        text.parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let id = new_id();
        let (code, subcode, msg, error_data, data) = match self.result {
            Ok(data) => (
                200u16,
                0u32,
                "OK".to_string(),
                Value::Object(Map::new()),
                data,
            ),
            Err(e) => (
                e.code,
                e.subcode,
                e.message(),
                Value::Object((*e.data).clone()),
                Value::Object(Map::new()),
            ),
        };
        let body = json!({
            "meta": {
                "id": id,
                "trx": self.trx.unwrap_or_else(|| id.clone()),
                "endpoint": {
                    "name": self.endpoint,
                    "requested_version": self.requested.map(|v| version_value(v, v)).unwrap_or(Value::Null),
                    "actual_version": match (self.actual, self.requested) {
                        (Some(a), Some(r)) => version_value(a, r),
                        _ => Value::Null,
                    },
                },
                "result_code": code,
                "result_subcode": subcode,
                "result_msg": msg,
                "error_stack": null,
                "error_data": error_data,
            },
            "data": data,
        });
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::SERVER, HeaderValue::from_static("clearml"));
        if let Some(cookie) = self.cookie
            && let Ok(v) = HeaderValue::from_str(&format!("clearml_token_basic={cookie}; Path=/"))
        {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut resp = (status, text.to_string()).into_response();
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("clearml"));
    resp
}

fn header_str<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

/// The single axum handler: every method, every path.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::OPTIONS {
        return plain(StatusCode::OK, "");
    }
    if headers.contains_key(header::CONTENT_ENCODING) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Compressed request bodies are not supported",
        );
    }
    let trx = header_str(&headers, &["x-clearml-trx", "x-trains-trx"]).map(str::to_string);
    let mut reply = Reply {
        endpoint: String::new(),
        requested: None,
        actual: None,
        trx,
        result: Ok(Value::Null),
        cookie: None,
    };
    let path = uri.path();
    let Some(caps) = PATH.as_ref().and_then(|re| re.captures(path)) else {
        reply.result = Err(ApiError::new(400, 0, "Invalid request path").with("path", path));
        return reply.into_response();
    };
    let name = format!("{}.{}", &caps[2], &caps[3]);
    reply.endpoint = name.clone();
    let requested = match caps.get(1) {
        None => MAX_VERSION,
        Some(v) => match parse_version(v.as_str()) {
            Some(v) => v,
            None => {
                reply.result = Err(ApiError::new(400, 2, "Request path has invalid version")
                    .with("version", v.as_str()));
                return reply.into_response();
            }
        },
    };
    reply.requested = Some(requested);
    // Every request for a well-formed endpoint name counts, including 404s (benchmarks
    // measure the API traffic a client generates).
    shared.count_call(&name);
    if let Some(fault) = shared.faults.take(&name) {
        return fault.into_response(&name);
    }
    let Some(endpoint) = endpoints::find(&name, requested) else {
        reply.result = Err(ApiError::new(
            404,
            0,
            &format!(
                "Unable to find endpoint for name {name} and version {}.{}",
                requested.0, requested.1
            ),
        ));
        return reply.into_response();
    };
    reply.actual = Some(endpoint.min_version);
    let body = match parse_body(&headers, &body, uri.query()) {
        Ok(b) => b,
        Err(e) => {
            reply.result = Err(e);
            return reply.into_response();
        }
    };
    let identity = match authenticate(&shared, &headers, endpoint.auth) {
        Ok(i) => i,
        Err(e) => {
            reply.result = Err(e);
            return reply.into_response();
        }
    };
    let worker = header_str(&headers, &["x-clearml-worker", "x-trains-worker"]).map(str::to_string);
    let task_shared = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let identity = identity.unwrap_or_else(|| task_shared.identity.clone());
        task_shared.with_store(|db| {
            let ctx = Ctx {
                db,
                shared: &task_shared,
                identity: &identity,
                worker: worker.as_deref(),
                version: requested,
            };
            (endpoint.handler)(&ctx, body)
        })
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(format!("handler failed: {e}"))));
    if name == "events.download_task_log"
        && let Ok(Value::String(text)) = &result
    {
        let mut resp = plain(StatusCode::OK, text);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=task.log"),
        );
        return resp;
    }
    if name == "auth.login"
        && let Ok(data) = &result
    {
        reply.cookie = data
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    reply.result = result;
    reply.into_response()
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Checks the caller's credentials as the endpoint requires. `Ok(None)` for endpoints that
/// need none (their credentials are not looked at, as in the real server).
fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    auth: Auth,
) -> Result<Option<Identity>, ApiError> {
    if auth == Auth::None {
        return Ok(None);
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookie_token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix("clearml_token_basic=")
                .map(str::to_string)
        });
    let (scheme, value) = match (authorization, cookie_token) {
        (Some(a), _) => match a.trim().split_once(' ') {
            Some((s, v)) => (s.to_ascii_lowercase(), v.trim().to_string()),
            None => (a.trim().to_ascii_lowercase(), String::new()),
        },
        (None, Some(t)) => ("bearer".to_string(), t),
        (None, None) => return Err(ApiError::new(401, 20, "Unauthorized (missing credentials)")),
    };
    let identity = match scheme.as_str() {
        "bearer" => token::verify(&shared.token_secret, &value, crate::clock::now_ms() / 1000)?,
        "basic" => {
            let decoded = STANDARD
                .decode(value.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::new(401, 21, "Unauthorized (malformed credentials)"))?;
            let (key, secret) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::new(401, 21, "Unauthorized (malformed credentials)"))?;
            if key != shared.access_key || secret != shared.secret_key {
                return Err(ApiError::new(401, 22, "Unauthorized (invalid credentials)"));
            }
            shared.identity.clone()
        }
        _ => {
            return Err(ApiError::new(
                401,
                10,
                "Unauthorized (bad authentication header type)",
            ));
        }
    };
    if auth == Auth::SystemRole && !matches!(identity.role.as_str(), "system" | "root") {
        return Err(ApiError::new(403, 20, "Forbidden (not allowed for role)")
            .with("role", identity.role.clone()));
    }
    Ok(Some(identity))
}

/// The request body as JSON: `{}` when empty, an array for json-lines batches, with the
/// query-string parameters merged in.
fn parse_body(headers: &HeaderMap, body: &[u8], query: Option<&str>) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::new(400, 0, "Invalid request body").extra("not UTF-8"))?;
    let mut value = if content_type.starts_with("application/json-lines") {
        let mut items = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let item: Value = serde_json::from_str(line).map_err(|e| {
                ApiError::new(400, 0, "Invalid batch request").extra(format!("bad JSON line: {e}"))
            })?;
            if !item.is_object() {
                return Err(ApiError::new(400, 0, "Invalid batch request")
                    .extra("batch item is not a JSON object"));
            }
            items.push(item);
        }
        Value::Array(items)
    } else if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::new(400, 0, "Invalid request body").extra(format!("malformed JSON: {e}"))
        })?
    };
    if let Some(q) = query
        && let Value::Object(map) = &mut value
    {
        merge_query(map, q);
    }
    Ok(value)
}

/// Merges query parameters: dotted keys nest, `k[]` or repeated keys make lists, digit strings
/// become numbers, `true`/`false` become booleans.
pub(crate) fn merge_query(map: &mut Map<String, Value>, query: &str) {
    for (key, raw) in form_urlencoded::parse(query.as_bytes()) {
        let (key, force_list) = match key.strip_suffix("[]") {
            Some(k) => (k.to_string(), true),
            None => (key.to_string(), false),
        };
        let value = convert(&raw);
        let parts: Vec<&str> = key.split('.').collect();
        insert_path(map, &parts, value, force_list);
    }
}

fn insert_path(map: &mut Map<String, Value>, parts: &[&str], value: Value, force_list: bool) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if !rest.is_empty() {
        let entry = map
            .entry(first.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(next) = entry {
            insert_path(next, rest, value, force_list);
        }
        return;
    }
    match map.get_mut(*first) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let old = existing.take();
            *existing = Value::Array(vec![old, value]);
        }
        None => {
            let v = if force_list {
                Value::Array(vec![value])
            } else {
                value
            };
            map.insert(first.to_string(), v);
        }
    }
}

fn convert(raw: &str) -> Value {
    if raw == "true" {
        return Value::Bool(true);
    }
    if raw == "false" {
        return Value::Bool(false);
    }
    if !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && let Ok(n) = raw.parse::<i64>()
    {
        return Value::from(n);
    }
    if raw.bytes().any(|b| b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && let Ok(f) = raw.parse::<f64>()
    {
        return Value::from(f);
    }
    Value::String(raw.to_string())
}
