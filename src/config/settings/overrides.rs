//! The layers above the files: `CLEARML_*` variables and command-line flags written into the
//! configuration tree (with the keys they set), and the values derived from others.

use serde_json::Value;

use crate::cli::Cli;
use crate::config::{first_env, get_path, parse_bool, set_path};
use crate::env::EnvVars;

/// Keys overridden by environment variables (mirrors definitions.py: ENVIRONMENT_CONFIG).
pub(super) const ENV_KEYS: &[(&str, &[&str])] = &[
    (
        "api.api_server",
        &[EnvVars::CLEARML_API_HOST, EnvVars::TRAINS_API_HOST],
    ),
    (
        "api.files_server",
        &[EnvVars::CLEARML_FILES_HOST, EnvVars::TRAINS_FILES_HOST],
    ),
    (
        "api.web_server",
        &[EnvVars::CLEARML_WEB_HOST, EnvVars::TRAINS_WEB_HOST],
    ),
    (
        "api.credentials.access_key",
        &[
            EnvVars::CLEARML_API_ACCESS_KEY,
            EnvVars::TRAINS_API_ACCESS_KEY,
        ],
    ),
    (
        "api.credentials.secret_key",
        &[
            EnvVars::CLEARML_API_SECRET_KEY,
            EnvVars::TRAINS_API_SECRET_KEY,
        ],
    ),
    (
        "agent.worker_name",
        &[EnvVars::CLEARML_WORKER_NAME, EnvVars::TRAINS_WORKER_NAME],
    ),
    (
        "agent.worker_id",
        &[EnvVars::CLEARML_WORKER_ID, EnvVars::TRAINS_WORKER_ID],
    ),
    (
        "agent.cuda_version",
        &[
            EnvVars::CLEARML_CUDA_VERSION,
            EnvVars::TRAINS_CUDA_VERSION,
            EnvVars::CUDA_VERSION,
        ],
    ),
    (
        "agent.cudnn_version",
        &[
            EnvVars::CLEARML_CUDNN_VERSION,
            EnvVars::TRAINS_CUDNN_VERSION,
            EnvVars::CUDNN_VERSION,
        ],
    ),
    ("sdk.aws.s3.key", &[EnvVars::AWS_ACCESS_KEY_ID]),
    ("sdk.aws.s3.secret", &[EnvVars::AWS_SECRET_ACCESS_KEY]),
    ("sdk.aws.s3.region", &[EnvVars::AWS_DEFAULT_REGION]),
    (
        "sdk.google.storage.credentials_json",
        &[EnvVars::GOOGLE_APPLICATION_CREDENTIALS],
    ),
];

/// Bool keys overridden by environment variables (strtobool; an unparsable value is left out here and
/// reported by [`Settings::from_tree`]).
pub(super) const ENV_BOOL_KEYS: &[(&str, &[&str])] = &[
    (
        "agent.cpu_only",
        &[
            EnvVars::CLEARML_CPU_ONLY,
            EnvVars::TRAINS_CPU_ONLY,
            EnvVars::CPU_ONLY,
        ],
    ),
    (
        "agent.crash_on_exception",
        &[EnvVars::CLEARML_AGENT_CRASH_ON_EXCEPTION],
    ),
];

/// Put environment overrides into the tree (mirrors session.py: Session.__init__ "override with
/// environment variables").
pub(crate) fn apply_env_overrides(tree: &mut Value, env: &dyn Fn(&str) -> Option<String>) {
    for (key, names) in ENV_KEYS {
        if let Some(value) = first_env(env, names) {
            set_path(tree, key, Value::String(value));
        }
    }
    for (key, names) in ENV_BOOL_KEYS {
        if let Some(value) = first_env(env, names)
            && let Some(b) = parse_bool(&value)
        {
            set_path(tree, key, Value::Bool(b));
        }
    }
    // Azure credentials are appended as one more container entry.
    let account = first_env(env, &[EnvVars::AZURE_STORAGE_ACCOUNT]);
    let key = first_env(env, &[EnvVars::AZURE_STORAGE_KEY]);
    if account.is_some() || key.is_some() {
        let mut list = match get_path(tree, "sdk.azure.storage.containers") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        list.push(serde_json::json!({ "account_name": account, "account_key": key }));
        set_path(tree, "sdk.azure.storage.containers", Value::Array(list));
    }
}

/// Put CLI flags that correspond to configuration keys into the tree.
pub(crate) fn apply_cli_overrides(tree: &mut Value, cli: &Cli) {
    // mirrors session.py: Session.force_debug -> config agent.debug = True
    if cli.debug {
        set_path(tree, "agent.debug", Value::Bool(true));
    }
}

/// Fill derived keys: `api.host` from `api.api_server`, `agent.worker_name` from the host name.
pub(crate) fn apply_derived(tree: &mut Value) {
    let server = get_path(tree, "api.api_server")
        .and_then(Value::as_str)
        .map(str::to_string);
    let host_missing = get_path(tree, "api.host")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if let Some(server) = server.filter(|s| !s.is_empty())
        && host_missing
    {
        set_path(tree, "api.host", Value::String(server));
    }
    let name_missing = get_path(tree, "agent.worker_name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if name_missing {
        set_path(tree, "agent.worker_name", Value::String(hostname()));
    }
}

pub(super) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}
