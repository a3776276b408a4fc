//! The `api` section: the server, credentials and HTTP behaviour, typed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::reader::*;
use crate::config::{Error, expand_path, first_env, parse_bool};
use crate::env::EnvVars;

/// `api` section.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `api.api_server` / `CLEARML_API_HOST`. `None` means not configured (commands that need the server
    /// fail with "Could not find host server definition").
    pub api_server: Option<String>,
    /// `api.web_server` / `CLEARML_WEB_HOST`, else derived from the API host (api.→app., :8008→:8080).
    pub web_server: Option<String>,
    /// `api.files_server` / `CLEARML_FILES_HOST`, else derived from the web host (app.→files., :8080→:8081).
    pub files_server: Option<String>,
    /// `api.credentials.access_key` / `CLEARML_API_ACCESS_KEY`.
    pub access_key: Option<String>,
    /// `api.credentials.secret_key` / `CLEARML_API_SECRET_KEY`.
    pub secret_key: Option<String>,
    /// `CLEARML_AUTH_TOKEN`: bearer token used instead of key/secret.
    pub auth_token: Option<String>,
    /// `api.verify_certificate` / `CLEARML_API_HOST_VERIFY_CERT` (a path value means "verify with this CA
    /// bundle", see `ca_bundle`).
    pub verify_certificate: bool,
    /// CA bundle when `api.verify_certificate` is a path.
    pub ca_bundle: Option<PathBuf>,
    /// `api.http.default_method` / `CLEARML_API_DEFAULT_REQ_METHOD`.
    pub default_method: HttpMethod,
    /// `api.http.max_req_size` (bytes; batches are split at this size).
    pub max_req_size: u64,
    /// `api.http.retries.*`.
    pub retries: HttpRetries,
    /// `api.http.wait_on_maintenance_forever`: retry HTTP 503 forever.
    pub wait_on_maintenance_forever: bool,
    /// `api.auth.token_expiration_threshold_sec`: refresh the token when less than this is left.
    pub token_expiration_threshold: Duration,
    /// `api.auth.request_token_expiration_sec`: `expiration_sec` requested on login.
    pub request_token_expiration_sec: Option<u64>,
    /// `CLEARML_API_VERBOSE`.
    pub verbose: bool,
    /// `CLEARML_AGENT_FORCE_MAX_API_VERSION`.
    pub force_max_api_version: Option<String>,
    /// `CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE` (default 4; `false` = 0, `true` = 4).
    pub initial_connect_retries: u32,
    /// `CLEARML_AGENT_DISABLE_VAULT_SUPPORT`.
    pub disable_vault_support: bool,
}

/// HTTP method used for API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
}

/// `api.http.retries` (urllib3 `Retry` semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRetries {
    pub total: u32,
    pub connect: u32,
    pub read: u32,
    pub redirect: u32,
    pub status: u32,
    pub backoff_factor: f64,
    pub backoff_max: f64,
}

pub(super) fn api_settings(
    r: &Reader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ApiSettings, Error> {
    let api_server = r
        .opt_string("api.api_server")?
        .or(r.opt_string("api.host")?)
        .map(|s| s.trim_end_matches('/').to_string());
    let web_server = r
        .opt_string("api.web_server")?
        .map(|s| s.trim_end_matches('/').to_string())
        .or_else(|| api_server.as_deref().map(derive_web_host));
    let files_server = r
        .opt_string("api.files_server")?
        .map(|s| s.trim_end_matches('/').to_string())
        .or_else(|| web_server.as_deref().map(derive_files_host));

    // verify_certificate: bool, or a CA bundle path (requests' `verify=` accepts both).
    let (mut verify_certificate, ca_bundle) = match r.get("api.verify_certificate") {
        Some(Value::String(s)) if parse_bool(s).is_none() && !s.is_empty() => {
            (true, Some(expand_path(s, r.home, env)))
        }
        _ => (r.bool("api.verify_certificate", true)?, None),
    };
    if let Some(v) = env_bool(env, &[EnvVars::CLEARML_API_HOST_VERIFY_CERT])? {
        verify_certificate = v;
    }

    let method_text = first_env(env, &[EnvVars::CLEARML_API_DEFAULT_REQ_METHOD])
        .or(r.opt_string("api.http.default_method")?)
        .unwrap_or_else(|| "get".into());
    let default_method = match method_text.to_ascii_lowercase().as_str() {
        "get" => HttpMethod::Get,
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        _ => {
            return Err(Error::Value {
                key: "api.http.default_method".into(),
                found: format!("{method_text:?}"),
                origin: r.origin.to_string(),
                expected: "expected GET, POST or PUT".into(),
            });
        }
    };

    // mirrors backend_api/session/session.py: ENV_INITIAL_CONNECT_RETRY_OVERRIDE (int or bool, default 4)
    let initial_connect_retries = match first_env(
        env,
        &[EnvVars::CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE],
    ) {
        None => 4,
        Some(v) => match (v.parse::<u32>(), parse_bool(&v)) {
            (Ok(n), _) => n,
            (_, Some(true)) => 4,
            (_, Some(false)) => 0,
            _ => {
                return Err(Error::Env {
                    name: EnvVars::CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE,
                    value: v,
                    expected: "expected a number of retries or a boolean".into(),
                });
            }
        },
    };

    Ok(ApiSettings {
        api_server,
        web_server,
        files_server,
        access_key: r.opt_string("api.credentials.access_key")?,
        secret_key: r.opt_string("api.credentials.secret_key")?,
        auth_token: first_env(env, &[EnvVars::CLEARML_AUTH_TOKEN]),
        verify_certificate,
        ca_bundle,
        default_method,
        max_req_size: r.u64("api.http.max_req_size", 15_728_640)?,
        retries: HttpRetries {
            total: r.u32("api.http.retries.total", 240)?,
            connect: r.u32("api.http.retries.connect", 240)?,
            read: r.u32("api.http.retries.read", 240)?,
            redirect: r.u32("api.http.retries.redirect", 240)?,
            status: r.u32("api.http.retries.status", 240)?,
            backoff_factor: r.f64("api.http.retries.backoff_factor", 1.0)?,
            backoff_max: r.f64("api.http.retries.backoff_max", 120.0)?,
        },
        wait_on_maintenance_forever: r.bool("api.http.wait_on_maintenance_forever", true)?,
        token_expiration_threshold: r
            .seconds("api.auth.token_expiration_threshold_sec", 43200.0)?,
        request_token_expiration_sec: r.opt_u64("api.auth.request_token_expiration_sec")?,
        verbose: env_bool(env, &[EnvVars::CLEARML_API_VERBOSE])?.unwrap_or(false),
        force_max_api_version: first_env(env, &[EnvVars::CLEARML_AGENT_FORCE_MAX_API_VERSION]),
        initial_connect_retries,
        disable_vault_support: env_bool(env, &[EnvVars::CLEARML_AGENT_DISABLE_VAULT_SUPPORT])?
            .unwrap_or(false),
    })
}

/// Web host from the API host (mirrors backend_api/session/session.py: Session.get_app_server_host).
pub fn derive_web_host(api: &str) -> String {
    if api.contains("://demoapi.") {
        return api.replacen("://demoapi.", "://demoapp.", 1);
    }
    if api.contains("://api.") {
        return api.replacen("://api.", "://app.", 1);
    }
    if let Some(base) = api.strip_suffix(":8008") {
        return format!("{base}:8080");
    }
    api.to_string()
}

/// Files host from the web host (mirrors backend_api/session/session.py: Session.get_files_server_host).
pub fn derive_files_host(web: &str) -> String {
    if web.contains("://demoapp.") {
        return web.replacen("://demoapp.", "://demofiles.", 1);
    }
    if web.contains("://app.") {
        return web.replacen("://app.", "://files.", 1);
    }
    if let Some(base) = web.strip_suffix(":8080") {
        return format!("{base}:8081");
    }
    web.to_string()
}
