//! The configuration a task's container reads (mounted at `/tmp/clearml.conf`): the agent's,
//! less what only the host uses. The Python agent clones inside the container and so passes
//! `agent.git_user`, `agent.git_pass` and `agent.git` in (commands/worker.py:
//! Worker.get_docker_config_cmd); this agent clones on the host, so the container's task never
//! needs the host's git credentials and does not get them. The API server and credentials and
//! the `sdk` section stay: the task's SDK needs them.

use serde_json::Value;

/// `agent.*` keys removed from the container's configuration: git credentials (the clone is
/// done on the host), the `agent.git` section (`extra_credentials`), and the admin's docker
/// arguments and scripts, which the agent has already put into the container's command (they
/// may hold tokens the task should not read back from its configuration).
pub const HOST_ONLY_AGENT_KEYS: [&str; 7] = [
    "git_user",
    "git_pass",
    "git",
    "extra_docker_arguments",
    "extra_docker_shell_script",
    "docker_init_bash_script",
    "docker_preprocess_bash_script",
];

/// `tree` without the host-only secrets.
pub fn container_config(tree: &Value) -> Value {
    let mut tree = tree.clone();
    // mirrors Worker.get_docker_config_cmd: the SDK inside caches where the host's cache is
    // mounted (`docker_internal_mounts.sdk_cache`).
    let sdk_cache = tree
        .pointer("/agent/docker_internal_mounts/sdk_cache")
        .and_then(Value::as_str)
        .unwrap_or("/clearml_agent_cache")
        .to_string();
    if tree.is_object() {
        crate::config::hocon::merge(
            &mut tree,
            serde_json::json!({"sdk": {"storage": {"cache": {"default_base_dir": sdk_cache}}}}),
        );
    }
    if let Some(agent) = tree.get_mut("agent").and_then(Value::as_object_mut) {
        for key in HOST_ONLY_AGENT_KEYS {
            agent.remove(key);
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn git_credentials_stay_on_the_host() {
        let tree = json!({
            "api": {"api_server": "http://s", "credentials": {"access_key": "a", "secret_key": "s"}},
            "sdk": {"aws": {"s3": {"key": "k"}}},
            "agent": {
                "git_user": "u", "git_pass": "p", "git_host": "h",
                "git": {"extra_credentials": [{"host": "x", "user": "u", "pass": "p2"}]},
                "venvs_dir": "/v",
                "extra_docker_shell_script": ["echo https://u:p@h"],
            },
        });
        let child = container_config(&tree);
        assert_eq!(child["api"], tree["api"]);
        assert_eq!(child["sdk"]["aws"], tree["sdk"]["aws"]);
        assert_eq!(
            child["sdk"]["storage"]["cache"]["default_base_dir"],
            "/clearml_agent_cache"
        );
        assert_eq!(child["agent"], json!({"git_host": "h", "venvs_dir": "/v"}));
        assert_eq!(container_config(&json!(null)), json!(null));
    }
}
