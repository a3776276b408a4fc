//! Settings this agent reads but does not act on: each with the reason, checked once at start.
//! A key set to anything but its default, or a variable that is set, gives one warning line, so
//! a setting never silently does nothing (docs/configuration.md lists the same keys).

use serde_json::Value;

use crate::env::EnvVars;

/// `(key, reason)`: configuration keys that are read, printed by `config`, and not acted on.
pub const KEYS: &[(&str, &str)] = &[
    (
        "agent.default_docker.match_rules",
        "image match rules are a ClearML Enterprise feature",
    ),
    (
        "agent.pip_download_cache.enabled",
        "pip's own cache serves downloads",
    ),
    (
        "agent.pip_download_cache.path",
        "pip's own cache serves downloads",
    ),
    (
        "agent.package_manager.conda_channels",
        "conda is not supported",
    ),
    (
        "agent.package_manager.uv_run_extra_args",
        "tasks run with their venv's python, not with `uv run`",
    ),
    (
        "agent.package_manager.uv_replace_pip",
        "`package_manager.type: uv` already installs with uv",
    ),
    (
        "agent.docker_internal_mounts.vcs_cache",
        "in docker mode the code is cloned on the host, no VCS cache is mounted",
    ),
    (
        "agent.docker_internal_mounts.pip_download",
        "no pip download cache is mounted",
    ),
    (
        "agent.docker_internal_mounts.bootstrap_folder",
        "the Python agent's bootstrap package is not used",
    ),
    (
        "agent.docker_internal_mounts.bootstrap_cache",
        "the Python agent's bootstrap package is not used",
    ),
    (
        "agent.bootstrap",
        "the Python agent's bootstrap package is not used",
    ),
    (
        "api.http.retries.redirect",
        "redirects are followed by the HTTP client, at most 10",
    ),
    (
        "api.http.pool_maxsize",
        "the HTTP client sizes its own connection pool",
    ),
    (
        "api.http.pool_connections",
        "the HTTP client sizes its own connection pool",
    ),
    (
        "agent.crash_on_exception",
        "the daemon reports an error and goes on",
    ),
    (
        "agent.reload_config",
        "restart the daemon to apply a changed configuration",
    ),
    (
        "agent.truncate_task_output_files",
        "task output is read from a pipe, not from temporary files",
    ),
    (
        "agent.log_files_buffering",
        "task output is read from a pipe, not from temporary files",
    ),
];

/// `(variable, reason)`: variables read and not acted on.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        EnvVars::FORCE_CLEARML_AGENT_REPO,
        "nothing of the agent is installed in containers (the code is prepared on the host)",
    ),
    (
        EnvVars::CLEARML_AGENT_DOCKER_AGENT_REPO,
        "nothing of the agent is installed in containers (the code is prepared on the host)",
    ),
    (
        EnvVars::CLEARML_API_VERBOSE,
        "the agent does not log its API requests",
    ),
    (
        EnvVars::CLEARML_AGENT_FORCE_MAX_API_VERSION,
        "each endpoint is called at the version the Python agent 3.0.3 uses",
    ),
    (
        EnvVars::CLEARML_AGENT_DEBUG_GET_NEXT_TASK,
        "the agent does not print the queue's replies",
    ),
    (
        EnvVars::CLEARML_AGENT_DEBUG_INFO,
        "a debug aid of the Python agent",
    ),
    (
        EnvVars::CLEARML_AGENT_EXEC_USER,
        "tasks run as the agent's user",
    ),
    (
        EnvVars::TRAINS_AGENT_EXEC_USER,
        "tasks run as the agent's user",
    ),
    (
        EnvVars::CLEARML_AGENT_FORCE_TASK_INIT,
        "the task's script is not patched with Task.init",
    ),
    (
        EnvVars::CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES,
        "a container's venv always sees the image's packages",
    ),
    (
        EnvVars::CLEARML_AGENT_ABORT_CALLBACK_CMD,
        "only the SDK's abort callback (Task.register_abort_callback) is waited for",
    ),
    (
        EnvVars::CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT,
        "only the SDK's abort callback (Task.register_abort_callback) is waited for",
    ),
    (
        EnvVars::CLEARML_AGENT_CHILD_AGENTS_COUNT_CMD,
        "services mode counts the services it started itself",
    ),
    (
        EnvVars::CLEARML_AGENT_GPU_FRACTIONS,
        "GPU fractions are a ClearML Enterprise feature",
    ),
    (
        EnvVars::CLEARML_AGENT_SERVICES_DOCKER_RESTART,
        "service containers are supervised by the agent and get no restart policy",
    ),
    (EnvVars::CLEARML_CONDA_ENV_PACKAGE, "conda is not supported"),
    (
        EnvVars::CLEARML_USE_CONDA_BASE_ENV,
        "conda is not supported",
    ),
];

/// One warning per key of [`KEYS`] whose value in `tree` differs from `defaults`, and per
/// variable of [`VARIABLES`] that `env` has set.
pub fn warnings(
    tree: &Value,
    defaults: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let at = |root: &Value, key: &str| -> Option<Value> {
        key.split('.')
            .try_fold(root, |v, part| v.get(part))
            .cloned()
    };
    let mut out: Vec<String> = KEYS
        .iter()
        .filter(|(key, _)| {
            let set = at(tree, key).filter(|v| !v.is_null());
            set.is_some() && set != at(defaults, key).filter(|v| !v.is_null())
        })
        .map(|(key, why)| {
            format!(
                "Warning: `{key}` is set but not supported by this agent ({why}); it has no effect"
            )
        })
        .collect();
    out.extend(
        VARIABLES
            .iter()
            .filter(|(name, _)| env(name).is_some_and(|v| !v.is_empty()))
            .map(|(name, why)| {
                format!("Warning: {name} is set but not supported by this agent ({why}); it has no effect")
            }),
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_keys_changed_from_their_default_warn() {
        let defaults = json!({"agent": {"package_manager": {"uv_replace_pip": false}}});
        let same = defaults.clone();
        assert!(warnings(&same, &defaults, &|_| None).is_empty());
        let set = json!({"agent": {"package_manager": {"uv_replace_pip": true, "uv_run_extra_args": ["--frozen"]}}});
        let w = warnings(&set, &defaults, &|_| None);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("`agent.package_manager.uv_replace_pip`")),
            "{w:?}"
        );
        let env = warnings(&same, &defaults, &|name| {
            (name == "FORCE_CLEARML_AGENT_REPO").then(|| "git+https://x".to_string())
        });
        assert_eq!(env.len(), 1);
        assert!(env[0].starts_with("Warning: FORCE_CLEARML_AGENT_REPO is set"));
    }

    #[test]
    fn every_key_is_listed_as_unsupported_in_the_configuration_docs() {
        let docs = include_str!("../../docs/configuration.md");
        for (key, _) in KEYS {
            let short = key.trim_start_matches("agent.").trim_start_matches("api.");
            let row = docs
                .lines()
                .find(|l| l.starts_with('|') && l.contains(&format!("`{short}")))
                .unwrap_or_else(|| panic!("{key} has no row in docs/configuration.md"));
            assert!(
                row.to_lowercase().contains("not supported"),
                "the row of {key} does not say it is not supported: {row}"
            );
        }
    }
}
