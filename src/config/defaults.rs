//! Built-in configuration defaults: the tree every `clearml.conf` is merged onto.
//!
//! The values are those shipped by clearml-agent 3.0.3 (its `backend_api/config/default/{api,agent,sdk,
//! logging}.conf`), written here as data in the same key order so `clearml-agent config` lists keys in the
//! order users know. Keys the Python agent reads with an in-code fallback (not present in its default files)
//! are not added here; `settings/` applies those fallbacks, so the printed tree matches the Python one.

use serde_json::{Value, json};

/// The full default tree: `{ agent, api, logging, sdk }`.
pub fn tree() -> Value {
    json!({
        "agent": agent(),
        "api": api(),
        "logging": {
            "version": 1,
            "loggers": { "urllib3": { "level": "ERROR" } }
        },
        "sdk": sdk(),
    })
}

/// One `default_docker.match_rules` entry (enterprise feature; kept so printouts and child configs match).
fn match_rule(minor: u32, update_back_task: bool) -> Value {
    let mut rule = json!({
        "image": format!("python:3.{minor}-bullseye"),
        "arguments": "--ipc=host",
    });
    if update_back_task && let Some(map) = rule.as_object_mut() {
        map.insert("update_back_task".into(), Value::Bool(true));
    }
    if let Some(map) = rule.as_object_mut() {
        map.insert(
            "match".into(),
            json!({ "script": { "binary": format!("python3.{minor}$") } }),
        );
    }
    rule
}

fn agent() -> Value {
    json!({
        "worker_id": "",
        "worker_name": "",
        "force_git_ssh_protocol": false,
        "git_fetch_args": ["--all", "--tags", "--recurse-submodules"],
        "python_binary": "",
        "package_manager": {
            "type": "pip",
            "pip_version": [
                "<20.2 ; python_version < '3.10'",
                "<22.3 ; python_version >= '3.10' and python_version <= '3.11'",
                ">=23,<26 ; python_version >= '3.12'"
            ],
            "uv_sync_locked_if_lock_file": true,
            "system_site_packages": false,
            "force_upgrade": false,
            "pip_legacy_resolver": [">=20.3,<24.3"],
            "conda_channels": ["pytorch", "conda-forge", "nvidia", "defaults"],
            "priority_optional_packages": ["pygobject"],
            "torch_nightly": false,
            "poetry_files_from_repo_working_dir": false,
            "uv_files_from_repo_working_dir": false
        },
        "venvs_dir": "~/.clearml/venvs-builds",
        "venvs_cache": {
            "max_entries": 10,
            "free_space_threshold_gb": 2.0,
            "path": "~/.clearml/venvs-cache"
        },
        "vcs_cache": { "enabled": true, "path": "~/.clearml/vcs-cache" },
        "pip_download_cache": { "enabled": true, "path": "~/.clearml/pip-download-cache" },
        "translate_ssh": true,
        "translate_ssl_replacement_scheme": "https",
        "reload_config": false,
        "docker_pip_cache": "~/.clearml/pip-cache",
        "docker_apt_cache": "~/.clearml/apt-cache",
        "forbidden_docker_args": ["entrypoint"],
        "bootstrap": {
            "use_bootstrap": true,
            "check_for_latest": false,
            "check_for_latest_timeout": 5,
            "host_bootstrap_dir": "~/.clearml.bootstrap",
            "host_bootstrap_cache_dir": "~/.clearml.bootstrap.cache",
            "skip_git_installation": true,
            "always_use_static_git": false,
            "always_install_ca_cert": true
        },
        "docker_force_pull": false,
        "default_docker": {
            "image": "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu20.04",
            "update_back_task": true,
            "match_rules": [
                match_rule(6, true), match_rule(7, true), match_rule(8, false), match_rule(9, false),
                match_rule(10, false), match_rule(11, false), match_rule(12, false), match_rule(13, false)
            ]
        },
        "enable_task_env": false,
        "sanitize_config_printout": {
            "hide_secrets": ["^sanitize_config_printout$", "secret", "pass", "token", "account_key", "contents"],
            "hide_secrets_recursive": ["^environment$"],
            "dont_hide_secrets": ["^enable_git_ask_pass$"],
            "docker_commands": ["^extra_docker_arguments$"],
            "urls": ["^extra_index_url$"]
        },
        "hide_docker_command_env_vars": {
            "enabled": true,
            "extra_keys": [],
            "parse_embedded_urls": true
        },
        "abort_callback_max_timeout": 1800,
        "docker_internal_mounts": {
            "bootstrap_folder": "/.clearml.bootstrap",
            "bootstrap_cache": "/.clearml.bootstrap.cache",
            "sdk_cache": "/clearml_agent_cache",
            "apt_cache": "/var/cache/apt/archives",
            "ssh_folder": "~/.ssh",
            "ssh_ro_folder": "/.ssh",
            "pip_cache": "/root/.cache/pip",
            "poetry_cache": "/root/.cache/pypoetry",
            "vcs_cache": "/root/.clearml/vcs-cache",
            "venvs_cache": "/root/.clearml/venvs-cache",
            "venv_build": "~/.clearml/venvs-builds",
            "pip_download": "/root/.clearml/pip-download-cache"
        },
        "apply_environment": true,
        "docker_apply_environment_from_vault": true,
        "apply_files": true,
        "custom_build_script": "",
        "disable_task_docker_override": false
    })
}

fn api() -> Value {
    json!({
        "version": 1.5,
        "verify_certificate": true,
        "default_version": 1.5,
        "http": {
            "max_req_size": 15728640,
            "retries": {
                "total": 240,
                "connect": 240,
                "read": 240,
                "redirect": 240,
                "status": 240,
                "backoff_factor": 1.0,
                "backoff_max": 120.0
            },
            "wait_on_maintenance_forever": true,
            "pool_maxsize": 512,
            "pool_connections": 512
        },
        "auth": { "token_expiration_threshold_sec": 43200 }
    })
}

fn sdk() -> Value {
    json!({
        "storage": {
            "cache": {
                "default_base_dir": "~/.clearml/cache",
                "size": { "min_free_bytes": "10GB" }
            },
            "direct_access": [ { "url": "file://*" } ]
        },
        "metrics": {
            "file_history_size": 100,
            "matplotlib_untitled_history_size": 100,
            "images": { "format": "JPEG", "quality": 87, "subsampling": 0 },
            "tensorboard_single_series_per_graph": false
        },
        "network": {
            "metrics": { "file_upload_threads": 4, "file_upload_starvation_warning_sec": 120 },
            "iteration": { "max_retries_on_server_error": 5, "retry_backoff_factor_sec": 10 }
        },
        "aws": {
            "s3": { "key": "", "secret": "", "region": "", "credentials": [] },
            "boto3": { "pool_connections": 512, "max_multipart_concurrency": 16 }
        },
        "google": { "storage": {} },
        "azure": { "storage": {} },
        "log": {
            "null_log_propagate": false,
            "task_log_buffer_capacity": 66,
            "disable_urllib3_info": true
        },
        "development": {
            "task_reuse_time_window_in_hours": 72.0,
            "vcs_repo_detect_async": true,
            "store_uncommitted_code_diff": true,
            "support_stopping": true,
            "default_output_uri": "",
            "force_analyze_entire_repo": false,
            "suppress_update_message": false,
            "detect_with_pip_freeze": false,
            "worker": {
                "report_period_sec": 2,
                "ping_period_sec": 30,
                "log_stdout": true,
                "report_global_mem_used": false
            }
        }
    })
}
