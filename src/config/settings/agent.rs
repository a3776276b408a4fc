//! The `agent` section (and `sdk`, `environment`, `files`): what the agent does with a task, typed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::overrides::*;
use super::reader::*;
use crate::cli::WorkerArgs;
use crate::config::{Error, expand_path, first_env};
use crate::env::EnvVars;

/// `agent` section (and the environment variables that override its keys).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// `agent.worker_id` / `CLEARML_WORKER_ID`: full worker id override.
    pub worker_id: Option<String>,
    /// Whether `worker_id` came from `CLEARML_WORKER_ID`/`TRAINS_WORKER_ID` (a full-monitoring
    /// `execute` ignores one from the file, as Worker.execute does).
    pub worker_id_from_env: bool,
    /// `agent.worker_name` / `CLEARML_WORKER_NAME`, default the host name.
    pub worker_name: String,
    /// `agent.crash_on_exception` / `CLEARML_AGENT_CRASH_ON_EXCEPTION`.
    pub crash_on_exception: bool,
    /// `agent.reload_config`: re-read the configuration file after every daemon loop.
    pub reload_config: bool,
    /// `agent.disable_agent_update_check`.
    pub disable_agent_update_check: bool,
    /// `agent.python_binary`: explicit interpreter.
    pub python_binary: Option<String>,
    /// `agent.default_python`: python version when the task does not ask for one.
    pub default_python: Option<String>,
    /// `agent.ignore_requested_python_version`.
    pub ignore_requested_python_version: bool,
    /// `agent.package_manager.*`.
    pub package_manager: PackageManagerSettings,
    /// `agent.venvs_dir` (expanded).
    pub venvs_dir: PathBuf,
    /// `agent.venvs_cache.*`.
    pub venvs_cache: VenvsCacheSettings,
    /// `agent.vcs_cache.*`.
    pub vcs_cache: VcsCacheSettings,
    /// `agent.pip_download_cache.*`.
    pub pip_download_cache: PipDownloadCacheSettings,
    /// `agent.git_user` / `CLEARML_AGENT_GIT_USER` / `--git-user`.
    pub git_user: Option<String>,
    /// `agent.git_pass` / `CLEARML_AGENT_GIT_PASS` / `--git-pass`.
    pub git_pass: Option<String>,
    /// `agent.git_host` / `CLEARML_AGENT_GIT_HOST`: only send credentials to this host.
    pub git_host: Option<String>,
    /// `agent.git_host_match_prefix`.
    pub git_host_match_prefix: bool,
    /// `agent.git.extra_credentials`.
    pub git_extra_credentials: Vec<GitCredential>,
    /// `agent.git_use_ms_entra_token` / env.
    pub git_use_ms_entra_token: bool,
    /// `agent.git_use_azure_pat` / env.
    pub git_use_azure_pat: bool,
    /// `agent.enable_git_ask_pass` (default true).
    pub enable_git_ask_pass: bool,
    /// `agent.force_git_ssh_protocol`.
    pub force_git_ssh_protocol: bool,
    /// `agent.force_git_ssh_port`.
    pub force_git_ssh_port: Option<u16>,
    /// `agent.force_git_ssh_user`.
    pub force_git_ssh_user: Option<String>,
    /// `agent.translate_ssh`.
    pub translate_ssh: bool,
    /// `agent.translate_ssl_replacement_scheme` / `CLEARML_AGENT_SSH_URL_REPLACEMENT_SCHEME`.
    pub translate_ssl_replacement_scheme: String,
    /// `agent.git_fetch_args`.
    pub git_fetch_args: Vec<String>,
    /// `CLEARML_AGENT_GIT_CLONE_VERBOSE`.
    pub git_clone_verbose: bool,
    /// `agent.force_git_root_python_path`.
    pub force_git_root_python_path: bool,
    /// `agent.default_docker.*` (image already overridden by `CLEARML_DOCKER_IMAGE`).
    pub default_docker: DefaultDocker,
    /// `agent.extra_docker_arguments` / `CLEARML_AGENT_EXTRA_DOCKER_ARGS`.
    pub extra_docker_arguments: Vec<String>,
    /// `agent.extra_docker_shell_script` (lines).
    pub extra_docker_shell_script: Vec<String>,
    /// `CLEARML_AGENT_EXTRA_DOCKER_LABELS`.
    pub extra_docker_labels: Vec<String>,
    /// `agent.docker_init_bash_script` (lines; `None` = built-in script).
    pub docker_init_bash_script: Option<Vec<String>>,
    /// `agent.docker_preprocess_bash_script` (lines).
    pub docker_preprocess_bash_script: Vec<String>,
    /// `agent.docker_install_opencv_libs` (default true).
    pub docker_install_opencv_libs: bool,
    /// `agent.docker_force_pull`.
    pub docker_force_pull: bool,
    /// `agent.docker_use_activated_venv` (default true).
    pub docker_use_activated_venv: bool,
    /// `agent.docker_allow_host_environ`.
    pub docker_allow_host_environ: bool,
    /// `agent.docker_allow_host_repositories` (default false; ours): in docker mode, allow a
    /// task repository that is a path or `file://` URL of the host.
    pub docker_allow_host_repositories: bool,
    /// `agent.docker_args_filters` / `CLEARML_AGENT_DOCKER_ARGS_FILTERS`.
    pub docker_args_filters: Vec<String>,
    /// `agent.docker_untrusted_tasks` / `CLEARML_AGENT_DOCKER_UNTRUSTED_TASKS` (default false):
    /// task docker arguments that reach the host are refused (`docker::policy`), and neither
    /// `~/.ssh` nor `SSH_AUTH_SOCK` is mounted into containers.
    pub docker_untrusted_tasks: bool,
    /// `agent.forbidden_docker_args`.
    pub forbidden_docker_args: Vec<String>,
    /// `agent.docker_args_extra_precedes_task` (default true).
    pub docker_args_extra_precedes_task: bool,
    /// `agent.protected_docker_extra_args`.
    pub protected_docker_extra_args: Vec<String>,
    /// `agent.docker_args_allowed_port_range` (`[min, max]`, inclusive): where published host
    /// ports may be remapped to.
    pub docker_args_allowed_port_range: Option<(u16, u16)>,
    /// `agent.docker_container_name_format`.
    pub docker_container_name_format: Option<String>,
    /// `agent.docker_container_name_format_fields`: `{name: "dotted.task.field"}` for the format.
    pub docker_container_name_format_fields: Vec<(String, String)>,
    /// `agent.disable_task_docker_override`.
    pub disable_task_docker_override: bool,
    /// `agent.disable_ssh_mount` / `CLEARML_AGENT_DISABLE_SSH_MOUNT`.
    pub disable_ssh_mount: bool,
    /// `CLEARML_DOCKER_SKIP_GPUS_FLAG`.
    pub docker_skip_gpus_flag: bool,
    /// `CLEARML_AGENT_K8S_HOST_MOUNT` / `CLEARML_AGENT_DOCKER_HOST_MOUNT`: `/host/path:/container/path`.
    pub docker_host_mount: Option<String>,
    /// `CLEARML_AGENT_FORCE_HOST_MACHINE_IP`.
    pub force_host_machine_ip: Option<String>,
    /// `FORCE_CLEARML_AGENT_REPO` / `CLEARML_AGENT_DOCKER_AGENT_REPO`.
    pub docker_agent_repo: Option<String>,
    /// `agent.docker_pip_cache` (expanded).
    pub docker_pip_cache: PathBuf,
    /// `agent.docker_apt_cache` (expanded).
    pub docker_apt_cache: PathBuf,
    /// `agent.docker_poetry_cache` (expanded; default `~/.clearml/poetry-cache`).
    pub docker_poetry_cache: PathBuf,
    /// `agent.docker_internal_mounts.*`.
    pub docker_internal_mounts: DockerInternalMounts,
    /// `agent.hide_docker_command_env_vars.*`.
    pub hide_docker_command_env_vars: HideDockerEnvVars,
    /// `agent.enable_task_env`.
    pub enable_task_env: bool,
    /// `agent.task_ping_interval_sec` (default 60; 0 disables pings).
    pub task_ping_interval: Duration,
    /// `CLEARML_AGENT_STATUS_REPORT_FREQ_SEC` (default 30 s).
    pub status_report_interval: Duration,
    /// `agent.suppress_carriage_return` (default true).
    pub suppress_carriage_return: bool,
    /// `agent.truncate_task_output_files`.
    pub truncate_task_output_files: bool,
    /// `agent.log_files_buffering` (default 1).
    pub log_files_buffering: i64,
    /// `agent.abort_callback_max_timeout` (default 1800 s).
    pub abort_callback_max_timeout: Duration,
    /// `CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT` (default 180 s).
    pub abort_callback_timeout: Duration,
    /// `agent.apply_environment` / `CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION` (default true).
    pub apply_environment: bool,
    /// `agent.apply_files` / `CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION` (default true).
    pub apply_files: bool,
    /// `agent.custom_build_script` / `CLEARML_AGENT_CUSTOM_BUILD_SCRIPT`.
    pub custom_build_script: Option<String>,
    /// `agent.cpu_only` / `CLEARML_CPU_ONLY` (only disables CUDA-aware requirement rewriting).
    pub cpu_only: bool,
    /// `agent.cuda_version` / `CLEARML_CUDA_VERSION` / `CUDA_VERSION` (as configured; `None` = detect).
    pub cuda_version: Option<String>,
    /// `agent.cudnn_version` / `CLEARML_CUDNN_VERSION` / `CUDNN_VERSION`.
    pub cudnn_version: Option<String>,
    /// `ROCM_PATH`: where the ROCm version files are (default `/opt/rocm`).
    pub rocm_path: Option<PathBuf>,
    /// `agent.uptime`.
    pub uptime: Vec<String>,
    /// `agent.downtime`.
    pub downtime: Vec<String>,
    /// `agent.resource_monitoring.default_gpu_utilization` (default 100; `None` = skip).
    pub default_gpu_utilization: Option<f64>,
    /// `agent.resource_monitoring.disk_use_path` (default: home).
    pub disk_use_path: Option<PathBuf>,
    /// `CLEARML_AGENT_QUEUE_POLL_FREQ_SEC`.
    pub queue_poll_freq_sec: Option<f64>,
    /// `CLEARML_AGENT_DEBUG_GET_NEXT_TASK`.
    pub debug_get_next_task: bool,
    /// `CLEARML_AGENT_TEMP_STDOUT_FILE_DIR`.
    pub temp_dir: Option<PathBuf>,
    /// `CLEARML_AGENT_PROPAGATE_EXITCODE`.
    pub propagate_exitcode: bool,
    /// `RANK`, else `SLURM_PROCID` (0 when unset or not a number): in a multi-node run only rank
    /// 0 changes the task's status and requirements. mirrors Worker._get_node_rank.
    pub node_rank: u32,
    /// `CLEARML_MULTI_NODE_SINGLE_TASK` above 0: the other ranks' log lines say their rank.
    pub multi_node_single_task: bool,
    /// `CLEARML_WORKER_TAGS` (shell words): the tags of this worker's status reports when no
    /// `--child-report-tags` are given (a daemon sets it for its task processes).
    pub worker_tags: Vec<String>,
    /// `CLEARML_AGENT_EXEC_USER`: run the task as this Unix user.
    pub exec_user: Option<String>,
    /// `CLEARML_AGENT_EXTRA_PYTHON_PATH`.
    pub extra_python_path: Option<String>,
    /// `CLEARML_AGENT_SKIP_PIP_VENV_INSTALL` (truthy or an interpreter path).
    pub skip_pip_venv_install: Option<String>,
    /// `CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL`.
    pub skip_python_env_install: bool,
    /// `CLEARML_AGENT_FORCE_CODE_DIR`.
    pub force_code_dir: Option<PathBuf>,
    /// `CLEARML_AGENT_FORCE_EXEC_SCRIPT` (`working_dir:entry`).
    pub force_exec_script: Option<String>,
    /// `CLEARML_AGENT_FORCE_TASK_INIT`.
    pub force_task_init: bool,
    /// `CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES` (`None` = default for the mode).
    pub force_system_site_packages: Option<bool>,
    /// `CLEARML_AGENT_ABORT_CALLBACK_CMD`.
    pub abort_callback_cmd: Option<String>,
}

/// `agent.package_manager`.
#[derive(Debug, Clone)]
pub struct PackageManagerSettings {
    /// `type` (forced by `CLEARML_AGENT_FORCE_UV` / `CLEARML_AGENT_FORCE_POETRY`).
    pub type_: PackageManagerType,
    /// `pip_version`: each entry becomes `pip<spec>`.
    pub pip_version: Vec<String>,
    /// `system_site_packages`.
    pub system_site_packages: bool,
    /// `force_upgrade`.
    pub force_upgrade: bool,
    /// `extra_index_url`.
    pub extra_index_url: Vec<String>,
    /// `extra_pip_install_flags` / `CLEARML_EXTRA_PIP_INSTALL_FLAGS`.
    pub extra_pip_install_flags: Vec<String>,
    /// `pip_legacy_resolver`.
    pub pip_legacy_resolver: Vec<String>,
    /// `pytorch_resolve` / `CLEARML_AGENT_PACKAGE_PYTORCH_RESOLVE` (default `pip`).
    pub pytorch_resolve: String,
    /// `torch_nightly`.
    pub torch_nightly: bool,
    /// `extra_index_url_template` (PyTorch's CUDA wheel index, `{}` the CUDA version).
    pub extra_index_url_template: Option<String>,
    /// `nightly_extra_index_url_template`.
    pub nightly_extra_index_url_template: Option<String>,
    /// `rocm_extra_index_url_template` (`{}.{}` the ROCm version).
    pub rocm_extra_index_url_template: Option<String>,
    /// `nightly_rocm_extra_index_url_template`.
    pub nightly_rocm_extra_index_url_template: Option<String>,
    /// `conda_channels`.
    pub conda_channels: Vec<String>,
    /// `force_repo_requirements_txt`.
    pub force_repo_requirements_txt: bool,
    /// `force_original_requirements`.
    pub force_original_requirements: bool,
    /// `priority_packages` (default cython, numpy, setuptools, pip, uv).
    pub priority_packages: Vec<String>,
    /// `priority_optional_packages`.
    pub priority_optional_packages: Vec<String>,
    /// `post_packages` (default horovod).
    pub post_packages: Vec<String>,
    /// `post_optional_packages`.
    pub post_optional_packages: Vec<String>,
    /// `uv_version`.
    pub uv_version: Option<String>,
    /// `uv_sync_locked_if_lock_file` (default true).
    pub uv_sync_locked_if_lock_file: bool,
    /// `uv_files_from_repo_working_dir`.
    pub uv_files_from_repo_working_dir: bool,
    /// `uv_replace_pip`.
    pub uv_replace_pip: bool,
    /// `uv_sync_extra_args`.
    pub uv_sync_extra_args: Vec<String>,
    /// `uv_run_extra_args` (the Python agent's `uv run`; tasks here run with the venv's python).
    pub uv_run_extra_args: Vec<String>,
    /// `uv_unsafe_best_match`.
    pub uv_unsafe_best_match: bool,
    /// `poetry_install_extra_args`.
    pub poetry_install_extra_args: Vec<String>,
    /// `CLEARML_BOOTSTRAP_UV_EXEC`: uv binary to use.
    pub uv_exec: Option<PathBuf>,
    /// `poetry_version`.
    pub poetry_version: Option<String>,
    /// `poetry_files_from_repo_working_dir`.
    pub poetry_files_from_repo_working_dir: bool,
}

/// `agent.package_manager.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManagerType {
    Pip,
    Uv,
    Conda,
    Poetry,
}

/// `agent.venvs_cache`.
#[derive(Debug, Clone)]
pub struct VenvsCacheSettings {
    /// Cache directory (`CLEARML_AGENT_VENV_CACHE_PATH` wins); `None` disables the cache.
    pub path: Option<PathBuf>,
    /// `max_entries` (default 10).
    pub max_entries: u32,
    /// `free_space_threshold_gb` (default 2.0).
    pub free_space_threshold_gb: f64,
    /// `lock_timeout` (default 30 s).
    pub lock_timeout: Duration,
}

/// `agent.vcs_cache`.
#[derive(Debug, Clone)]
pub struct VcsCacheSettings {
    pub enabled: bool,
    pub path: PathBuf,
    /// `clone_on_pull_fail`.
    pub clone_on_pull_fail: bool,
}

/// `agent.pip_download_cache`.
#[derive(Debug, Clone)]
pub struct PipDownloadCacheSettings {
    pub enabled: bool,
    pub path: PathBuf,
}

/// One `agent.git.extra_credentials` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GitCredential {
    pub user: Option<String>,
    pub pass: Option<String>,
    pub host: Option<String>,
}

/// `agent.default_docker`.
#[derive(Debug, Clone)]
pub struct DefaultDocker {
    /// Image (after `CLEARML_DOCKER_IMAGE`; when that variable holds `image args`, only the image).
    pub image: String,
    /// Arguments (from the variable's extra words, else `agent.default_docker.arguments`).
    pub arguments: Vec<String>,
    /// `update_back_task` (default true).
    pub update_back_task: bool,
}

/// `agent.docker_internal_mounts`.
#[derive(Debug, Clone)]
pub struct DockerInternalMounts {
    pub sdk_cache: String,
    pub apt_cache: String,
    pub ssh_folder: String,
    pub ssh_ro_folder: String,
    pub pip_cache: String,
    pub poetry_cache: String,
    pub vcs_cache: String,
    pub venvs_cache: String,
    pub venv_build: String,
    pub pip_download: String,
}

/// `agent.hide_docker_command_env_vars`.
#[derive(Debug, Clone)]
pub struct HideDockerEnvVars {
    pub enabled: bool,
    /// `extra_keys` plus `CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV`.
    pub extra_keys: Vec<String>,
    pub parse_embedded_urls: bool,
}

/// `sdk` keys the agent uses.
#[derive(Debug, Clone)]
pub struct SdkSettings {
    /// `sdk.storage.cache.default_base_dir` (expanded).
    pub cache_dir: PathBuf,
    /// `sdk.development.default_output_uri`.
    pub default_output_uri: Option<String>,
}

/// One `files {}` entry (mirrors backend_config/utils.py: apply_files).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFileSpec {
    /// Entry name (the key under `files`).
    pub name: String,
    /// Target path (expanded).
    pub path: PathBuf,
    /// Target path as written (a container expands its `~` itself).
    pub raw_path: String,
    /// `contents` (a string, or an object for json/yaml targets).
    pub contents: Option<Value>,
    /// `format`: `string` (default) or `base64`.
    pub format: String,
    /// `target_format`: `string` (default), `json`, `yaml`, `yml` or `bytes`.
    pub target_format: String,
    /// `overwrite` (default true).
    pub overwrite: bool,
    /// `mode` as permission bits (`"0o600"` or `600`).
    pub mode: Option<u32>,
}

pub(super) fn agent_settings(
    r: &Reader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    cli_worker: Option<&WorkerArgs>,
) -> Result<AgentSettings, Error> {
    let home = r.home;
    let package_manager = package_manager_settings(r, env)?;
    let list_or = |key: &str, default: &[&str]| list_or(r, key, default);

    let venvs_cache_path = match first_env(env, &[EnvVars::CLEARML_AGENT_VENV_CACHE_PATH]) {
        Some(p) => Some(expand_path(&p, home, env)),
        None => r
            .opt_string("agent.venvs_cache.path")?
            .map(|p| expand_path(&p, home, env)),
    };

    // CLEARML_DOCKER_IMAGE may hold "image arg arg" (mirrors worker.py: Worker.get_docker_config_cmd).
    let (image, image_args) = match first_env(
        env,
        &[EnvVars::CLEARML_DOCKER_IMAGE, EnvVars::TRAINS_DOCKER_IMAGE],
    ) {
        Some(v) => split_image(&v),
        None => split_image(&r.string("agent.default_docker.image", "nvidia/cuda")?),
    };
    let default_docker = DefaultDocker {
        image,
        arguments: if image_args.is_empty() {
            r.string_list("agent.default_docker.arguments")?
        } else {
            image_args
        },
        update_back_task: r.bool("agent.default_docker.update_back_task", true)?,
    };

    let mut hide_extra = r.string_list("agent.hide_docker_command_env_vars.extra_keys")?;
    if let Some(v) = first_env(env, &[EnvVars::CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV]) {
        hide_extra.extend(shell_split(&v));
    }

    let git_extra_credentials = match r.get("agent.git.extra_credentials") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let field = |names: &[&str]| {
                    names.iter().find_map(|n| {
                        item.get(*n)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    })
                };
                GitCredential {
                    user: field(&["user", "username"]),
                    pass: field(&["pass", "password"]),
                    host: field(&["host"]),
                }
            })
            .collect(),
        Some(other) => {
            return Err(r.err(
                "agent.git.extra_credentials",
                other,
                "expected a list of {user, pass, host} objects",
            ));
        }
    };

    let mounts = |k: &str, d: &str| r.string(&format!("agent.docker_internal_mounts.{k}"), d);
    let force_git_ssh_port = match r.opt_u64("agent.force_git_ssh_port")? {
        None => None,
        Some(p) => Some(u16::try_from(p).map_err(|_| {
            r.err(
                "agent.force_git_ssh_port",
                r.get("agent.force_git_ssh_port").unwrap_or(&Value::Null),
                "expected a port number",
            )
        })?),
    };

    let env_worker_id = first_env(
        env,
        &[EnvVars::CLEARML_WORKER_ID, EnvVars::TRAINS_WORKER_ID],
    );
    Ok(AgentSettings {
        worker_id_from_env: env_worker_id
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty()),
        worker_id: env_worker_id.or(r.opt_string("agent.worker_id")?),
        worker_name: r.opt_string("agent.worker_name")?.unwrap_or_else(hostname),
        crash_on_exception: r.bool("agent.crash_on_exception", false)?,
        reload_config: r.bool("agent.reload_config", false)?,
        disable_agent_update_check: r.bool("agent.disable_agent_update_check", false)?,
        python_binary: r.opt_string("agent.python_binary")?,
        default_python: r.opt_string("agent.default_python")?,
        ignore_requested_python_version: r.bool("agent.ignore_requested_python_version", false)?,
        package_manager,
        venvs_dir: r.path("agent.venvs_dir", "~/.clearml/venvs-builds")?,
        venvs_cache: VenvsCacheSettings {
            path: venvs_cache_path,
            max_entries: r.u32("agent.venvs_cache.max_entries", 10)?,
            free_space_threshold_gb: r.f64("agent.venvs_cache.free_space_threshold_gb", 2.0)?,
            lock_timeout: r.seconds("agent.venvs_cache.lock_timeout", 30.0)?,
        },
        vcs_cache: VcsCacheSettings {
            enabled: r.bool("agent.vcs_cache.enabled", true)?,
            path: r.path("agent.vcs_cache.path", "~/.clearml/vcs-cache")?,
            clone_on_pull_fail: r.bool("agent.vcs_cache.clone_on_pull_fail", false)?,
        },
        pip_download_cache: PipDownloadCacheSettings {
            enabled: r.bool("agent.pip_download_cache.enabled", true)?,
            path: r.path(
                "agent.pip_download_cache.path",
                "~/.clearml/pip-download-cache",
            )?,
        },
        git_user: git_value(
            r,
            env,
            cli_worker.and_then(|w| w.git_user.as_ref()),
            "agent.git_user",
            &[
                EnvVars::CLEARML_AGENT_GIT_USER,
                EnvVars::TRAINS_AGENT_GIT_USER,
            ],
        )?,
        git_pass: git_value(
            r,
            env,
            cli_worker.and_then(|w| w.git_pass.as_ref()),
            "agent.git_pass",
            &[
                EnvVars::CLEARML_AGENT_GIT_PASS,
                EnvVars::TRAINS_AGENT_GIT_PASS,
            ],
        )?,
        git_host: first_env(
            env,
            &[
                EnvVars::CLEARML_AGENT_GIT_HOST,
                EnvVars::TRAINS_AGENT_GIT_HOST,
            ],
        )
        .or(r.opt_string("agent.git_host")?),
        git_host_match_prefix: r.bool("agent.git_host_match_prefix", false)?,
        git_extra_credentials,
        git_use_ms_entra_token: env_bool(env, &[EnvVars::CLEARML_AGENT_GIT_USE_MS_ENTRA_TOKEN])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.git_use_ms_entra_token", false))?,
        git_use_azure_pat: env_bool(env, &[EnvVars::CLEARML_AGENT_GIT_USE_AZURE_PAT])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.git_use_azure_pat", false))?,
        enable_git_ask_pass: r.bool("agent.enable_git_ask_pass", true)?,
        force_git_ssh_protocol: r.bool("agent.force_git_ssh_protocol", false)?,
        force_git_ssh_port,
        force_git_ssh_user: r.opt_string("agent.force_git_ssh_user")?,
        translate_ssh: r.bool("agent.translate_ssh", true)?,
        translate_ssl_replacement_scheme: first_env(
            env,
            &[EnvVars::CLEARML_AGENT_SSH_URL_REPLACEMENT_SCHEME],
        )
        .map(Ok)
        .unwrap_or_else(|| r.string("agent.translate_ssl_replacement_scheme", "https"))?,
        git_fetch_args: r.string_list("agent.git_fetch_args")?,
        git_clone_verbose: env_bool(env, &[EnvVars::CLEARML_AGENT_GIT_CLONE_VERBOSE])?
            .unwrap_or(false),
        force_git_root_python_path: r.bool("agent.force_git_root_python_path", false)?,
        default_docker,
        extra_docker_arguments: match first_env(env, &[EnvVars::CLEARML_AGENT_EXTRA_DOCKER_ARGS]) {
            Some(v) => shell_split(&v),
            None => r.string_list("agent.extra_docker_arguments")?,
        },
        extra_docker_shell_script: r.string_list("agent.extra_docker_shell_script")?,
        extra_docker_labels: first_env(env, &[EnvVars::CLEARML_AGENT_EXTRA_DOCKER_LABELS])
            .map(|v| shell_split(&v))
            .unwrap_or_default(),
        docker_init_bash_script: r.opt_string_list("agent.docker_init_bash_script")?,
        docker_preprocess_bash_script: r.string_list("agent.docker_preprocess_bash_script")?,
        docker_install_opencv_libs: r.bool("agent.docker_install_opencv_libs", true)?,
        docker_force_pull: r.bool("agent.docker_force_pull", false)?,
        docker_use_activated_venv: r.bool("agent.docker_use_activated_venv", true)?,
        docker_allow_host_environ: r.bool("agent.docker_allow_host_environ", false)?,
        docker_allow_host_repositories: r.bool("agent.docker_allow_host_repositories", false)?,
        docker_args_filters: docker_args_filters(r, env)?,
        docker_untrusted_tasks: env_bool(env, &[EnvVars::CLEARML_AGENT_DOCKER_UNTRUSTED_TASKS])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.docker_untrusted_tasks", false))?,
        // mirrors the shipped agent.conf: forbidden_docker_args: ["entrypoint"].
        forbidden_docker_args: list_or("agent.forbidden_docker_args", &["entrypoint"])?,
        docker_args_extra_precedes_task: r.bool("agent.docker_args_extra_precedes_task", true)?,
        // The Python agent's list plus runtime and pid (docs/differences.md).
        protected_docker_extra_args: list_or(
            "agent.protected_docker_extra_args",
            &crate::docker::merge::PROTECTED_DEFAULT,
        )?,
        docker_args_allowed_port_range: port_range(r)?,
        docker_container_name_format: r.opt_string("agent.docker_container_name_format")?,
        docker_container_name_format_fields: name_format_fields(r)?,
        disable_task_docker_override: r.bool("agent.disable_task_docker_override", false)?,
        disable_ssh_mount: env_bool(env, &[EnvVars::CLEARML_AGENT_DISABLE_SSH_MOUNT])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.disable_ssh_mount", false))?,
        docker_skip_gpus_flag: env_bool(
            env,
            &[
                EnvVars::CLEARML_DOCKER_SKIP_GPUS_FLAG,
                EnvVars::TRAINS_DOCKER_SKIP_GPUS_FLAG,
            ],
        )?
        .unwrap_or(false),
        docker_host_mount: first_env(
            env,
            &[
                EnvVars::CLEARML_AGENT_K8S_HOST_MOUNT,
                EnvVars::CLEARML_AGENT_DOCKER_HOST_MOUNT,
                EnvVars::TRAINS_AGENT_K8S_HOST_MOUNT,
                EnvVars::TRAINS_AGENT_DOCKER_HOST_MOUNT,
            ],
        ),
        force_host_machine_ip: first_env(env, &[EnvVars::CLEARML_AGENT_FORCE_HOST_MACHINE_IP]),
        docker_agent_repo: first_env(
            env,
            &[
                EnvVars::FORCE_CLEARML_AGENT_REPO,
                EnvVars::CLEARML_AGENT_DOCKER_AGENT_REPO,
            ],
        ),
        docker_pip_cache: r.path("agent.docker_pip_cache", "~/.clearml/pip-cache")?,
        docker_apt_cache: r.path("agent.docker_apt_cache", "~/.clearml/apt-cache")?,
        docker_poetry_cache: r.path("agent.docker_poetry_cache", "~/.clearml/poetry-cache")?,
        docker_internal_mounts: DockerInternalMounts {
            sdk_cache: mounts("sdk_cache", "/clearml_agent_cache")?,
            apt_cache: mounts("apt_cache", "/var/cache/apt/archives")?,
            ssh_folder: mounts("ssh_folder", "~/.ssh")?,
            ssh_ro_folder: mounts("ssh_ro_folder", "/.ssh")?,
            pip_cache: mounts("pip_cache", "/root/.cache/pip")?,
            poetry_cache: mounts("poetry_cache", "/root/.cache/pypoetry")?,
            vcs_cache: mounts("vcs_cache", "/root/.clearml/vcs-cache")?,
            venvs_cache: mounts("venvs_cache", "/root/.clearml/venvs-cache")?,
            venv_build: mounts("venv_build", "~/.clearml/venvs-builds")?,
            pip_download: mounts("pip_download", "/root/.clearml/pip-download-cache")?,
        },
        hide_docker_command_env_vars: HideDockerEnvVars {
            enabled: r.bool("agent.hide_docker_command_env_vars.enabled", true)?,
            extra_keys: hide_extra,
            parse_embedded_urls: r.bool(
                "agent.hide_docker_command_env_vars.parse_embedded_urls",
                true,
            )?,
        },
        enable_task_env: r.bool("agent.enable_task_env", false)?,
        task_ping_interval: r.seconds("agent.task_ping_interval_sec", 60.0)?,
        status_report_interval: Duration::from_secs_f64(
            env_f64(env, EnvVars::CLEARML_AGENT_STATUS_REPORT_FREQ_SEC)?
                .unwrap_or(30.0)
                .clamp(0.0, MAX_SECONDS),
        ),
        suppress_carriage_return: r.bool("agent.suppress_carriage_return", true)?,
        truncate_task_output_files: r.bool("agent.truncate_task_output_files", false)?,
        log_files_buffering: r.f64("agent.log_files_buffering", 1.0)? as i64,
        abort_callback_max_timeout: r.seconds("agent.abort_callback_max_timeout", 1800.0)?,
        abort_callback_timeout: Duration::from_secs_f64(
            env_f64(env, EnvVars::CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT)?
                .unwrap_or(180.0)
                .clamp(0.0, MAX_SECONDS),
        ),
        apply_environment: env_bool(env, &[EnvVars::CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.apply_environment", true))?,
        apply_files: env_bool(env, &[EnvVars::CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION])?
            .map(Ok)
            .unwrap_or_else(|| r.bool("agent.apply_files", true))?,
        // mirrors Worker.execute: the configured script first, else the variable.
        custom_build_script: r
            .opt_string("agent.custom_build_script")?
            .filter(|s| !s.trim().is_empty())
            .or_else(|| first_env(env, &[EnvVars::CLEARML_AGENT_CUSTOM_BUILD_SCRIPT])),
        cpu_only: {
            // An unparsable env value was left out of the tree; report it here.
            env_bool(
                env,
                &[
                    EnvVars::CLEARML_CPU_ONLY,
                    EnvVars::TRAINS_CPU_ONLY,
                    EnvVars::CPU_ONLY,
                ],
            )?;
            r.bool("agent.cpu_only", false)?
        },
        cuda_version: r.opt_string("agent.cuda_version")?,
        cudnn_version: r.opt_string("agent.cudnn_version")?,
        rocm_path: first_env(env, &[EnvVars::ROCM_PATH]).map(PathBuf::from),
        uptime: r.string_list("agent.uptime")?,
        downtime: r.string_list("agent.downtime")?,
        // An explicit `null` means "do not report a value" (mirrors monitor: default_gpu_utilization).
        default_gpu_utilization: match r
            .tree
            .pointer("/agent/resource_monitoring/default_gpu_utilization")
        {
            Some(Value::Null) => None,
            _ => Some(r.f64("agent.resource_monitoring.default_gpu_utilization", 100.0)?),
        },
        disk_use_path: r
            .opt_string("agent.resource_monitoring.disk_use_path")?
            .map(|p| expand_path(&p, home, env)),
        queue_poll_freq_sec: env_f64(env, EnvVars::CLEARML_AGENT_QUEUE_POLL_FREQ_SEC)?,
        debug_get_next_task: env_bool(env, &[EnvVars::CLEARML_AGENT_DEBUG_GET_NEXT_TASK])?
            .unwrap_or(false),
        temp_dir: first_env(env, &[EnvVars::CLEARML_AGENT_TEMP_STDOUT_FILE_DIR])
            .map(|p| expand_path(&p, home, env)),
        propagate_exitcode: env_bool(env, &[EnvVars::CLEARML_AGENT_PROPAGATE_EXITCODE])?
            .unwrap_or(false),
        node_rank: env(EnvVars::RANK)
            .or_else(|| env(EnvVars::SLURM_PROCID))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        worker_tags: env(EnvVars::CLEARML_WORKER_TAGS)
            .and_then(|v| shlex::split(&v))
            .unwrap_or_default(),
        multi_node_single_task: env(EnvVars::CLEARML_MULTI_NODE_SINGLE_TASK)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_some_and(|v| v > 0),
        exec_user: first_env(
            env,
            &[
                EnvVars::CLEARML_AGENT_EXEC_USER,
                EnvVars::TRAINS_AGENT_EXEC_USER,
            ],
        ),
        extra_python_path: first_env(
            env,
            &[
                EnvVars::CLEARML_AGENT_EXTRA_PYTHON_PATH,
                EnvVars::TRAINS_AGENT_EXTRA_PYTHON_PATH,
            ],
        ),
        skip_pip_venv_install: first_env(env, &[EnvVars::CLEARML_AGENT_SKIP_PIP_VENV_INSTALL]),
        skip_python_env_install: env_bool(env, &[EnvVars::CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL])?
            .unwrap_or(false),
        force_code_dir: first_env(env, &[EnvVars::CLEARML_AGENT_FORCE_CODE_DIR]).map(PathBuf::from),
        force_exec_script: first_env(env, &[EnvVars::CLEARML_AGENT_FORCE_EXEC_SCRIPT]),
        force_task_init: env_bool(env, &[EnvVars::CLEARML_AGENT_FORCE_TASK_INIT])?.unwrap_or(false),
        force_system_site_packages: env_bool(
            env,
            &[EnvVars::CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES],
        )?,
        abort_callback_cmd: first_env(env, &[EnvVars::CLEARML_AGENT_ABORT_CALLBACK_CMD]),
    })
}

/// `agent.package_manager` (with `CLEARML_AGENT_FORCE_UV`/`_POETRY`, the pip flags, PyTorch
/// resolution and uv bootstrap variables).
fn package_manager_settings(
    r: &Reader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PackageManagerSettings, Error> {
    let pm_text = r.string("agent.package_manager.type", "pip")?;
    let mut pm_type = match pm_text.to_ascii_lowercase().as_str() {
        "pip" => PackageManagerType::Pip,
        "uv" => PackageManagerType::Uv,
        "conda" => PackageManagerType::Conda,
        "poetry" => PackageManagerType::Poetry,
        _ => {
            return Err(Error::Value {
                key: "agent.package_manager.type".into(),
                found: format!("{pm_text:?}"),
                origin: r.origin.to_string(),
                expected: "expected one of pip, uv, conda, poetry".into(),
            });
        }
    };
    if env_bool(env, &[EnvVars::CLEARML_AGENT_FORCE_UV])? == Some(true) {
        pm_type = PackageManagerType::Uv;
    } else if env_bool(env, &[EnvVars::CLEARML_AGENT_FORCE_POETRY])? == Some(true) {
        pm_type = PackageManagerType::Poetry;
    }
    let extra_pip_install_flags = match first_env(env, &[EnvVars::CLEARML_EXTRA_PIP_INSTALL_FLAGS])
    {
        Some(v) => shell_split(&v),
        None => r.string_list("agent.package_manager.extra_pip_install_flags")?,
    };
    let list_or = |key: &str, default: &[&str]| list_or(r, key, default);
    Ok(PackageManagerSettings {
        type_: pm_type,
        pip_version: r.string_list("agent.package_manager.pip_version")?,
        system_site_packages: r.bool("agent.package_manager.system_site_packages", false)?,
        force_upgrade: r.bool("agent.package_manager.force_upgrade", false)?,
        extra_index_url: r.string_list("agent.package_manager.extra_index_url")?,
        extra_pip_install_flags,
        pip_legacy_resolver: r.string_list("agent.package_manager.pip_legacy_resolver")?,
        pytorch_resolve: first_env(env, &[EnvVars::CLEARML_AGENT_PACKAGE_PYTORCH_RESOLVE])
            .map(Ok)
            .unwrap_or_else(|| r.string("agent.package_manager.pytorch_resolve", "pip"))?,
        torch_nightly: r.bool("agent.package_manager.torch_nightly", false)?,
        extra_index_url_template: r.opt_string("agent.package_manager.extra_index_url_template")?,
        nightly_extra_index_url_template: r
            .opt_string("agent.package_manager.nightly_extra_index_url_template")?,
        rocm_extra_index_url_template: r
            .opt_string("agent.package_manager.rocm_extra_index_url_template")?,
        nightly_rocm_extra_index_url_template: r
            .opt_string("agent.package_manager.nightly_rocm_extra_index_url_template")?,
        conda_channels: r.string_list("agent.package_manager.conda_channels")?,
        force_repo_requirements_txt: r
            .bool("agent.package_manager.force_repo_requirements_txt", false)?,
        force_original_requirements: r
            .bool("agent.package_manager.force_original_requirements", false)?,
        priority_packages: list_or(
            "agent.package_manager.priority_packages",
            &["cython", "numpy", "setuptools", "pip", "uv"],
        )?,
        priority_optional_packages: r
            .string_list("agent.package_manager.priority_optional_packages")?,
        post_packages: list_or("agent.package_manager.post_packages", &["horovod"])?,
        post_optional_packages: r.string_list("agent.package_manager.post_optional_packages")?,
        uv_version: r.opt_string("agent.package_manager.uv_version")?,
        uv_sync_locked_if_lock_file: r
            .bool("agent.package_manager.uv_sync_locked_if_lock_file", true)?,
        uv_files_from_repo_working_dir: r.bool(
            "agent.package_manager.uv_files_from_repo_working_dir",
            false,
        )?,
        uv_replace_pip: r.bool("agent.package_manager.uv_replace_pip", false)?,
        uv_sync_extra_args: r.string_list("agent.package_manager.uv_sync_extra_args")?,
        uv_run_extra_args: r.string_list("agent.package_manager.uv_run_extra_args")?,
        uv_unsafe_best_match: r.bool("agent.package_manager.uv_unsafe_best_match", false)?,
        poetry_install_extra_args: r
            .string_list("agent.package_manager.poetry_install_extra_args")?,
        uv_exec: first_env(env, &[EnvVars::CLEARML_BOOTSTRAP_UV_EXEC]).map(PathBuf::from),
        poetry_version: r.opt_string("agent.package_manager.poetry_version")?,
        poetry_files_from_repo_working_dir: r.bool(
            "agent.package_manager.poetry_files_from_repo_working_dir",
            false,
        )?,
    })
}

/// `agent.docker_args_filters` / `CLEARML_AGENT_DOCKER_ARGS_FILTERS`: regular expressions, each
/// checked here.
fn docker_args_filters(
    r: &Reader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Error> {
    let (filters, origin) = match first_env(env, &[EnvVars::CLEARML_AGENT_DOCKER_ARGS_FILTERS]) {
        Some(v) => (
            shell_split(&v),
            EnvVars::CLEARML_AGENT_DOCKER_ARGS_FILTERS.to_string(),
        ),
        None => (
            r.string_list("agent.docker_args_filters")?,
            r.origin.to_string(),
        ),
    };
    // A filter that does not compile would let every argument through or none.
    if let Some((f, e)) = filters
        .iter()
        .find_map(|f| regex::Regex::new(f).err().map(|e| (f, e)))
    {
        let why = e.to_string();
        return Err(Error::Value {
            key: "agent.docker_args_filters".into(),
            found: format!("{f:?}"),
            origin,
            expected: format!(
                "regular expressions; this one does not compile: {}",
                why.lines().last().unwrap_or_default().trim()
            ),
        });
    }
    Ok(filters)
}

/// `agent.docker_args_allowed_port_range`: the lowest and highest port listed.
fn port_range(r: &Reader<'_>) -> Result<Option<(u16, u16)>, Error> {
    // mirrors TcpPorts: the range is the min and max of the list.
    let key = "agent.docker_args_allowed_port_range";
    let listed = r.string_list(key)?;
    let ports = listed
        .iter()
        .map(|p| p.trim().parse::<u16>())
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| Error::Value {
            key: key.into(),
            found: format!("{listed:?}"),
            origin: r.origin.to_string(),
            expected: "a list of port numbers, e.g. [9000, 10000]".into(),
        })?;
    Ok(ports
        .iter()
        .min()
        .zip(ports.iter().max())
        .map(|(a, b)| (*a, *b)))
}

/// A list, or `default` when the key is unset.
fn list_or(r: &Reader<'_>, key: &str, default: &[&str]) -> Result<Vec<String>, Error> {
    Ok(r.opt_string_list(key)?
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect()))
}

/// Git credential: `--git-user`/`--git-pass` win, then the variable, then the file.
///
/// The Python agent parses `--git-user`/`--git-pass` but never uses them; we honour them as the
/// highest-priority credentials, which is what their help text promises. The variables beating the file
/// mirrors helper/repo.py (ENV_AGENT_GIT_USER.get() or config).
pub(super) fn git_value(
    r: &Reader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    cli_value: Option<&String>,
    key: &str,
    names: &[&str],
) -> Result<Option<String>, Error> {
    if let Some(v) = cli_value.filter(|v| !v.is_empty()) {
        return Ok(Some(v.clone()));
    }
    Ok(first_env(env, names).or(r.opt_string(key)?))
}

/// `"image arg1 arg2"` → image and args (split on spaces, as the Python agent does).
pub(super) fn split_image(s: &str) -> (String, Vec<String>) {
    let mut words = s.split_whitespace().map(str::to_string);
    let image = words.next().unwrap_or_default();
    (image, words.collect())
}

/// `agent.docker_container_name_format_fields`: an object of name → task field path.
pub(super) fn name_format_fields(r: &Reader<'_>) -> Result<Vec<(String, String)>, Error> {
    const KEY: &str = "agent.docker_container_name_format_fields";
    match r.get(KEY) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(path) => Ok((k.clone(), path.clone())),
                other => Err(r.err(KEY, other, "expected name: \"task.field.path\" pairs")),
            })
            .collect(),
        Some(other) => Err(r.err(
            KEY,
            other,
            "expected an object of name: \"task.field.path\"",
        )),
    }
}

pub(super) fn environment_section(r: &Reader<'_>) -> Result<Vec<(String, String)>, Error> {
    match r.get("environment") {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.clone(), python_str(v)))
            .collect()),
        Some(other) => Err(r.err(
            "environment",
            other,
            "expected an object of NAME: value pairs",
        )),
    }
}

/// Python's `str(value)` for config scalars (`True`/`False`, empty for null).
pub(super) fn python_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn files_section(r: &Reader<'_>) -> Result<Vec<ConfigFileSpec>, Error> {
    let map = match r.get("files") {
        None => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(r.err("files", other, "expected an object of named file entries"));
        }
    };
    let mut out = Vec::new();
    for (name, entry) in map {
        let key = format!("files.{name}");
        if !entry.is_object() {
            return Err(r.err(&key, entry, "expected an object with at least `path`"));
        }
        let Some(path) = r.opt_string(&format!("{key}.path"))? else {
            return Err(r.err(&key, entry, "the entry has no `path`"));
        };
        let mode = match r.get(&format!("{key}.mode")) {
            None => None,
            Some(v) => {
                let text = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    other => {
                        return Err(r.err(
                            &format!("{key}.mode"),
                            other,
                            "expected an octal mode like \"0o600\"",
                        ));
                    }
                };
                let digits = text
                    .trim()
                    .trim_start_matches("0o")
                    .trim_start_matches("0O");
                Some(u32::from_str_radix(digits, 8).map_err(|_| {
                    r.err(
                        &format!("{key}.mode"),
                        v,
                        "expected an octal mode like \"0o600\"",
                    )
                })?)
            }
        };
        out.push(ConfigFileSpec {
            name: name.clone(),
            path: expand_path(&path, r.home, r.env),
            raw_path: path.clone(),
            contents: r.get(&format!("{key}.contents")).cloned(),
            format: r.string(&format!("{key}.format"), "string")?,
            target_format: r.string(&format!("{key}.target_format"), "string")?,
            overwrite: r.bool(&format!("{key}.overwrite"), true)?,
            mode,
        });
    }
    Ok(out)
}
