//! Every environment variable the agent reads or sets, one `pub const` per name with its meaning.
//!
//! Reading happens only in `config::resolve` (which turns them into typed `Settings`); the constants
//! for variables the agent *sets* for its children are used by whoever builds the child environment.
//! Names and semantics mirror `clearml_agent/definitions.py` and `clearml_agent/backend_config/defs.py`.
//! Legacy `TRAINS_*` spellings are listed next to their `CLEARML_*` name; the first set (non-empty) wins.

/// Holder of the names (uv `EnvVars` style): `EnvVars::CLEARML_API_HOST`.
pub struct EnvVars;

impl EnvVars {
    // ---- configuration location -------------------------------------------------------------------

    /// Path of the configuration file to use instead of `~/clearml.conf`. When set, no other file is read.
    /// `--config-file` sets it for the agent and its children.
    pub const CLEARML_CONFIG_FILE: &'static str = "CLEARML_CONFIG_FILE";
    /// Legacy alias of [`Self::CLEARML_CONFIG_FILE`].
    pub const TRAINS_CONFIG_FILE: &'static str = "TRAINS_CONFIG_FILE";
    /// Prefix of config injections: `CLEARML_AGENT__agent__git_user=bob` sets `agent.git_user: bob`
    /// (the rest of the name is lower-cased and `__` becomes `.`; the value is parsed as HOCON).
    pub const CLEARML_AGENT_CONFIG_PREFIX: &'static str = "CLEARML_AGENT__";
    /// Whether to apply the top-level `environment {}` section (overrides `agent.apply_environment`).
    pub const CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION: &'static str =
        "CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION";
    /// Whether to materialise the top-level `files {}` section (overrides `agent.apply_files`).
    pub const CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION: &'static str =
        "CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION";

    // ---- server and credentials -------------------------------------------------------------------

    /// API server URL (overrides `api.api_server`).
    pub const CLEARML_API_HOST: &'static str = "CLEARML_API_HOST";
    /// Legacy alias of [`Self::CLEARML_API_HOST`].
    pub const TRAINS_API_HOST: &'static str = "TRAINS_API_HOST";
    /// Web application URL (overrides `api.web_server`).
    pub const CLEARML_WEB_HOST: &'static str = "CLEARML_WEB_HOST";
    /// Legacy alias of [`Self::CLEARML_WEB_HOST`].
    pub const TRAINS_WEB_HOST: &'static str = "TRAINS_WEB_HOST";
    /// File server URL (overrides `api.files_server`).
    pub const CLEARML_FILES_HOST: &'static str = "CLEARML_FILES_HOST";
    /// Legacy alias of [`Self::CLEARML_FILES_HOST`].
    pub const TRAINS_FILES_HOST: &'static str = "TRAINS_FILES_HOST";
    /// API access key (overrides `api.credentials.access_key`).
    pub const CLEARML_API_ACCESS_KEY: &'static str = "CLEARML_API_ACCESS_KEY";
    /// Legacy alias of [`Self::CLEARML_API_ACCESS_KEY`].
    pub const TRAINS_API_ACCESS_KEY: &'static str = "TRAINS_API_ACCESS_KEY";
    /// API secret key (overrides `api.credentials.secret_key`).
    pub const CLEARML_API_SECRET_KEY: &'static str = "CLEARML_API_SECRET_KEY";
    /// Legacy alias of [`Self::CLEARML_API_SECRET_KEY`].
    pub const TRAINS_API_SECRET_KEY: &'static str = "TRAINS_API_SECRET_KEY";
    /// Bearer token used instead of key/secret; the agent re-exports refreshed tokens into it.
    pub const CLEARML_AUTH_TOKEN: &'static str = "CLEARML_AUTH_TOKEN";
    /// `false`/`0` disables TLS certificate verification (overrides `api.verify_certificate`).
    pub const CLEARML_API_HOST_VERIFY_CERT: &'static str = "CLEARML_API_HOST_VERIFY_CERT";
    /// Log every API request and response.
    pub const CLEARML_API_VERBOSE: &'static str = "CLEARML_API_VERBOSE";
    /// HTTP method for API calls: GET, POST or PUT (overrides `api.http.default_method`).
    pub const CLEARML_API_DEFAULT_REQ_METHOD: &'static str = "CLEARML_API_DEFAULT_REQ_METHOD";
    /// Cap the API version the agent negotiates.
    pub const CLEARML_AGENT_FORCE_MAX_API_VERSION: &'static str =
        "CLEARML_AGENT_FORCE_MAX_API_VERSION";
    /// Connection retries for the very first login (an int, or a bool: false = 0). Default 4.
    pub const CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE: &'static str =
        "CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE";
    /// Disable loading configuration vaults from the server (enterprise).
    pub const CLEARML_AGENT_DISABLE_VAULT_SUPPORT: &'static str =
        "CLEARML_AGENT_DISABLE_VAULT_SUPPORT";

    // ---- identity and scheduling ------------------------------------------------------------------

    /// Full worker id (overrides `agent.worker_id`).
    pub const CLEARML_WORKER_ID: &'static str = "CLEARML_WORKER_ID";
    /// Set by the agent for every process it starts for a task: a token unique to that process
    /// tree. A descendant that leaves the task's process group and session (double fork,
    /// `setsid`, closed descriptors) still carries it, so it is found in `/proc` and dies with
    /// its task; with `CLEARML_WORKER_ID` it lets a restarted daemon find what a killed run of
    /// the same worker left behind. Not in the Python agent.
    pub const CLEARML_AGENT_TASK_MARK: &'static str = "CLEARML_AGENT_TASK_MARK";
    /// Set by a services-mode (or `--dynamic-gpus`) daemon with `--docker` for each service
    /// process it starts: the daemon's own worker id, written on the service's container as its
    /// `clearml-parent-worker-id` label, so a restarted daemon removes what a killed run left.
    /// Not in the Python agent (there the daemon runs `docker run` itself).
    pub const CLEARML_AGENT_PARENT_WORKER_ID: &'static str = "CLEARML_AGENT_PARENT_WORKER_ID";
    /// Legacy alias of [`Self::CLEARML_WORKER_ID`].
    pub const TRAINS_WORKER_ID: &'static str = "TRAINS_WORKER_ID";
    /// Worker name used as the prefix of generated worker ids (overrides `agent.worker_name`).
    pub const CLEARML_WORKER_NAME: &'static str = "CLEARML_WORKER_NAME";
    /// Legacy alias of [`Self::CLEARML_WORKER_NAME`].
    pub const TRAINS_WORKER_NAME: &'static str = "TRAINS_WORKER_NAME";
    /// Worker tags; set for children from `--child-report-tags` (shell-quoted, space-joined).
    pub const CLEARML_WORKER_TAGS: &'static str = "CLEARML_WORKER_TAGS";
    /// Queue polling interval in seconds (float); wins over `--polling-interval` and its minimum of 5.
    pub const CLEARML_AGENT_QUEUE_POLL_FREQ_SEC: &'static str = "CLEARML_AGENT_QUEUE_POLL_FREQ_SEC";
    /// Seconds between `workers.status_report` calls (float, default 30).
    pub const CLEARML_AGENT_STATUS_REPORT_FREQ_SEC: &'static str =
        "CLEARML_AGENT_STATUS_REPORT_FREQ_SEC";
    /// Print `queues.get_next_task` requests and responses.
    pub const CLEARML_AGENT_DEBUG_GET_NEXT_TASK: &'static str = "CLEARML_AGENT_DEBUG_GET_NEXT_TASK";
    /// Extra debug context for log lines.
    pub const CLEARML_AGENT_DEBUG_INFO: &'static str = "CLEARML_AGENT_DEBUG_INFO";
    /// Crash instead of restarting the daemon loop on an unexpected error (overrides `agent.crash_on_exception`).
    pub const CLEARML_AGENT_CRASH_ON_EXCEPTION: &'static str = "CLEARML_AGENT_CRASH_ON_EXCEPTION";
    /// Directory for the agent's temporary log, crash and config files (default: the system temp dir).
    pub const CLEARML_AGENT_TEMP_STDOUT_FILE_DIR: &'static str =
        "CLEARML_AGENT_TEMP_STDOUT_FILE_DIR";
    /// Multi-node rank (only rank 0 reports); `SLURM_PROCID` is the fallback.
    pub const RANK: &'static str = "RANK";
    /// SLURM rank, used when [`Self::RANK`] is unset.
    pub const SLURM_PROCID: &'static str = "SLURM_PROCID";
    /// Treat a multi-node run as a single task.
    pub const CLEARML_MULTI_NODE_SINGLE_TASK: &'static str = "CLEARML_MULTI_NODE_SINGLE_TASK";
    /// Make `execute --full-monitoring`/`--docker` exit with the task's exit code instead of 0.
    pub const CLEARML_AGENT_PROPAGATE_EXITCODE: &'static str = "CLEARML_AGENT_PROPAGATE_EXITCODE";

    // ---- GPU and CUDA -----------------------------------------------------------------------------

    /// GPUs visible to containers; set from `--gpus`/`--cpu-only`.
    pub const NVIDIA_VISIBLE_DEVICES: &'static str = "NVIDIA_VISIBLE_DEVICES";
    /// GPUs visible to CUDA; set from `--gpus`/`--cpu-only` (removed for `--gpus all`).
    pub const CUDA_VISIBLE_DEVICES: &'static str = "CUDA_VISIBLE_DEVICES";
    /// Always set to `PCI_BUS_ID` so GPU indexes match `nvidia-smi`.
    pub const CUDA_DEVICE_ORDER: &'static str = "CUDA_DEVICE_ORDER";
    /// CUDA version override, e.g. `12.6` (overrides `agent.cuda_version`).
    pub const CLEARML_CUDA_VERSION: &'static str = "CLEARML_CUDA_VERSION";
    /// Legacy alias of [`Self::CLEARML_CUDA_VERSION`].
    pub const TRAINS_CUDA_VERSION: &'static str = "TRAINS_CUDA_VERSION";
    /// Generic CUDA version variable, last fallback for [`Self::CLEARML_CUDA_VERSION`].
    pub const CUDA_VERSION: &'static str = "CUDA_VERSION";
    /// Where ROCm is installed (default `/opt/rocm`): its version picks the PyTorch ROCm index.
    pub const ROCM_PATH: &'static str = "ROCM_PATH";
    /// cuDNN version override (overrides `agent.cudnn_version`).
    pub const CLEARML_CUDNN_VERSION: &'static str = "CLEARML_CUDNN_VERSION";
    /// Legacy alias of [`Self::CLEARML_CUDNN_VERSION`].
    pub const TRAINS_CUDNN_VERSION: &'static str = "TRAINS_CUDNN_VERSION";
    /// Generic cuDNN version variable, last fallback for [`Self::CLEARML_CUDNN_VERSION`].
    pub const CUDNN_VERSION: &'static str = "CUDNN_VERSION";
    /// Bool: no CUDA-aware requirement rewriting (overrides `agent.cpu_only`).
    pub const CLEARML_CPU_ONLY: &'static str = "CLEARML_CPU_ONLY";
    /// Legacy alias of [`Self::CLEARML_CPU_ONLY`].
    pub const TRAINS_CPU_ONLY: &'static str = "TRAINS_CPU_ONLY";
    /// Generic alias of [`Self::CLEARML_CPU_ONLY`].
    pub const CPU_ONLY: &'static str = "CPU_ONLY";
    /// GPU fractions reported by the worker (enterprise).
    pub const CLEARML_AGENT_GPU_FRACTIONS: &'static str = "CLEARML_AGENT_GPU_FRACTIONS";
    /// Set together with [`Self::KUBERNETES_PORT`] inside Kubernetes; `--gpus` is then ignored.
    pub const KUBERNETES_SERVICE_HOST: &'static str = "KUBERNETES_SERVICE_HOST";
    /// See [`Self::KUBERNETES_SERVICE_HOST`].
    pub const KUBERNETES_PORT: &'static str = "KUBERNETES_PORT";

    // ---- git ----------------------------------------------------------------------------------------

    /// Git user for HTTPS clones (overrides `agent.git_user`).
    pub const CLEARML_AGENT_GIT_USER: &'static str = "CLEARML_AGENT_GIT_USER";
    /// Legacy alias of [`Self::CLEARML_AGENT_GIT_USER`].
    pub const TRAINS_AGENT_GIT_USER: &'static str = "TRAINS_AGENT_GIT_USER";
    /// Git password or token (overrides `agent.git_pass`).
    pub const CLEARML_AGENT_GIT_PASS: &'static str = "CLEARML_AGENT_GIT_PASS";
    /// Legacy alias of [`Self::CLEARML_AGENT_GIT_PASS`].
    pub const TRAINS_AGENT_GIT_PASS: &'static str = "TRAINS_AGENT_GIT_PASS";
    /// Only send git credentials to this host (overrides `agent.git_host`).
    pub const CLEARML_AGENT_GIT_HOST: &'static str = "CLEARML_AGENT_GIT_HOST";
    /// Legacy alias of [`Self::CLEARML_AGENT_GIT_HOST`].
    pub const TRAINS_AGENT_GIT_HOST: &'static str = "TRAINS_AGENT_GIT_HOST";
    /// Bool: show git clone progress.
    pub const CLEARML_AGENT_GIT_CLONE_VERBOSE: &'static str = "CLEARML_AGENT_GIT_CLONE_VERBOSE";
    /// Scheme used when rewriting ssh URLs (overrides `agent.translate_ssl_replacement_scheme`).
    pub const CLEARML_AGENT_SSH_URL_REPLACEMENT_SCHEME: &'static str =
        "CLEARML_AGENT_SSH_URL_REPLACEMENT_SCHEME";
    /// Bool: Azure DevOps auth with git_pass as an MS Entra token.
    pub const CLEARML_AGENT_GIT_USE_MS_ENTRA_TOKEN: &'static str =
        "CLEARML_AGENT_GIT_USE_MS_ENTRA_TOKEN";
    /// Bool: Azure DevOps auth with git_pass as a personal access token.
    pub const CLEARML_AGENT_GIT_USE_AZURE_PAT: &'static str = "CLEARML_AGENT_GIT_USE_AZURE_PAT";
    /// ssh-agent socket, mounted into containers when set.
    pub const SSH_AUTH_SOCK: &'static str = "SSH_AUTH_SOCK";
    /// Where the docker CLI's configuration is (default `~/.docker`): `config.json` gives the
    /// agent its registry credentials for pulls.
    pub const DOCKER_CONFIG: &'static str = "DOCKER_CONFIG";

    // ---- python environment building --------------------------------------------------------------

    /// Extra `pip install` flags (shell-split; overrides `agent.package_manager.extra_pip_install_flags`).
    pub const CLEARML_EXTRA_PIP_INSTALL_FLAGS: &'static str = "CLEARML_EXTRA_PIP_INSTALL_FLAGS";
    /// Truthy: use the system python without a venv; a path: use that interpreter.
    pub const CLEARML_AGENT_SKIP_PIP_VENV_INSTALL: &'static str =
        "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL";
    /// Bool: skip all python environment setup.
    pub const CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL: &'static str =
        "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL";
    /// Use this directory as the task code (no clone).
    pub const CLEARML_AGENT_FORCE_CODE_DIR: &'static str = "CLEARML_AGENT_FORCE_CODE_DIR";
    /// `working_dir:entry_point` override of the task's script.
    pub const CLEARML_AGENT_FORCE_EXEC_SCRIPT: &'static str = "CLEARML_AGENT_FORCE_EXEC_SCRIPT";
    /// Bool: use poetry as the package manager.
    pub const CLEARML_AGENT_FORCE_POETRY: &'static str = "CLEARML_AGENT_FORCE_POETRY";
    /// Bool: use uv as the package manager.
    pub const CLEARML_AGENT_FORCE_UV: &'static str = "CLEARML_AGENT_FORCE_UV";
    /// Path of a uv binary to use.
    pub const CLEARML_BOOTSTRAP_UV_EXEC: &'static str = "CLEARML_BOOTSTRAP_UV_EXEC";
    /// Bool: inject `Task.init()` into the entry script and add `clearml` to the requirements.
    pub const CLEARML_AGENT_FORCE_TASK_INIT: &'static str = "CLEARML_AGENT_FORCE_TASK_INIT";
    /// Bool: force `system_site_packages` (default true in containers).
    pub const CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES: &'static str =
        "CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES";
    /// Venv cache directory (overrides `agent.venvs_cache.path`).
    pub const CLEARML_AGENT_VENV_CACHE_PATH: &'static str = "CLEARML_AGENT_VENV_CACHE_PATH";
    /// `pip`, `direct` or `none` (overrides `agent.package_manager.pytorch_resolve`).
    pub const CLEARML_AGENT_PACKAGE_PYTORCH_RESOLVE: &'static str =
        "CLEARML_AGENT_PACKAGE_PYTORCH_RESOLVE";
    /// Script that replaces venv creation (overrides `agent.custom_build_script`).
    pub const CLEARML_AGENT_CUSTOM_BUILD_SCRIPT: &'static str = "CLEARML_AGENT_CUSTOM_BUILD_SCRIPT";
    /// Conda package of a base environment (overrides `agent.package_manager.conda_env_as_base_docker`).
    pub const CLEARML_CONDA_ENV_PACKAGE: &'static str = "CLEARML_CONDA_ENV_PACKAGE";
    /// Use the conda base env (overrides `agent.package_manager.use_conda_base_env`).
    pub const CLEARML_USE_CONDA_BASE_ENV: &'static str = "CLEARML_USE_CONDA_BASE_ENV";
    /// An activated venv (detected inside containers).
    pub const VIRTUAL_ENV: &'static str = "VIRTUAL_ENV";
    /// Run the task as this Unix user.
    pub const CLEARML_AGENT_EXEC_USER: &'static str = "CLEARML_AGENT_EXEC_USER";
    /// Legacy alias of [`Self::CLEARML_AGENT_EXEC_USER`].
    pub const TRAINS_AGENT_EXEC_USER: &'static str = "TRAINS_AGENT_EXEC_USER";
    /// Extra entries for the task's PYTHONPATH.
    pub const CLEARML_AGENT_EXTRA_PYTHON_PATH: &'static str = "CLEARML_AGENT_EXTRA_PYTHON_PATH";
    /// Legacy alias of [`Self::CLEARML_AGENT_EXTRA_PYTHON_PATH`].
    pub const TRAINS_AGENT_EXTRA_PYTHON_PATH: &'static str = "TRAINS_AGENT_EXTRA_PYTHON_PATH";

    // ---- docker -------------------------------------------------------------------------------------

    /// Default image, optionally followed by arguments (overrides `agent.default_docker.image`).
    pub const CLEARML_DOCKER_IMAGE: &'static str = "CLEARML_DOCKER_IMAGE";
    /// Legacy alias of [`Self::CLEARML_DOCKER_IMAGE`].
    pub const TRAINS_DOCKER_IMAGE: &'static str = "TRAINS_DOCKER_IMAGE";
    /// Do not pass `--gpus` to `docker run`.
    pub const CLEARML_DOCKER_SKIP_GPUS_FLAG: &'static str = "CLEARML_DOCKER_SKIP_GPUS_FLAG";
    /// Legacy alias of [`Self::CLEARML_DOCKER_SKIP_GPUS_FLAG`].
    pub const TRAINS_DOCKER_SKIP_GPUS_FLAG: &'static str = "TRAINS_DOCKER_SKIP_GPUS_FLAG";
    /// Admin docker arguments (shell-split; overrides `agent.extra_docker_arguments`).
    pub const CLEARML_AGENT_EXTRA_DOCKER_ARGS: &'static str = "CLEARML_AGENT_EXTRA_DOCKER_ARGS";
    /// Container labels (shell-split list of `-l` values).
    pub const CLEARML_AGENT_EXTRA_DOCKER_LABELS: &'static str = "CLEARML_AGENT_EXTRA_DOCKER_LABELS";
    /// Regex allow-list of task docker args (shell-split; overrides `agent.docker_args_filters`).
    pub const CLEARML_AGENT_DOCKER_ARGS_FILTERS: &'static str = "CLEARML_AGENT_DOCKER_ARGS_FILTERS";
    /// Bool: the untrusted-tasks policy (overrides `agent.docker_untrusted_tasks`).
    pub const CLEARML_AGENT_DOCKER_UNTRUSTED_TASKS: &'static str =
        "CLEARML_AGENT_DOCKER_UNTRUSTED_TASKS";
    /// Extra env names to mask in printed docker commands.
    pub const CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV: &'static str =
        "CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV";
    /// Bool: do not mount `~/.ssh` into containers (overrides `agent.disable_ssh_mount`).
    pub const CLEARML_AGENT_DISABLE_SSH_MOUNT: &'static str = "CLEARML_AGENT_DISABLE_SSH_MOUNT";
    /// `/host/path:/container/path` when the agent itself runs in a container (k8s spelling).
    pub const CLEARML_AGENT_K8S_HOST_MOUNT: &'static str = "CLEARML_AGENT_K8S_HOST_MOUNT";
    /// Same as [`Self::CLEARML_AGENT_K8S_HOST_MOUNT`] (docker spelling).
    pub const CLEARML_AGENT_DOCKER_HOST_MOUNT: &'static str = "CLEARML_AGENT_DOCKER_HOST_MOUNT";
    /// Legacy alias of [`Self::CLEARML_AGENT_K8S_HOST_MOUNT`].
    pub const TRAINS_AGENT_K8S_HOST_MOUNT: &'static str = "TRAINS_AGENT_K8S_HOST_MOUNT";
    /// Legacy alias of [`Self::CLEARML_AGENT_DOCKER_HOST_MOUNT`].
    pub const TRAINS_AGENT_DOCKER_HOST_MOUNT: &'static str = "TRAINS_AGENT_DOCKER_HOST_MOUNT";
    /// Host IP reported for containers.
    pub const CLEARML_AGENT_FORCE_HOST_MACHINE_IP: &'static str =
        "CLEARML_AGENT_FORCE_HOST_MACHINE_IP";
    /// Command that prints the number of running child agents.
    pub const CLEARML_AGENT_CHILD_AGENTS_COUNT_CMD: &'static str =
        "CLEARML_AGENT_CHILD_AGENTS_COUNT_CMD";
    /// `<restart>[;<task.field>[=value]]` restart policy for services containers.
    pub const CLEARML_AGENT_SERVICES_DOCKER_RESTART: &'static str =
        "CLEARML_AGENT_SERVICES_DOCKER_RESTART";
    /// pip spec used to install the agent inside containers.
    pub const FORCE_CLEARML_AGENT_REPO: &'static str = "FORCE_CLEARML_AGENT_REPO";
    /// Alias of [`Self::FORCE_CLEARML_AGENT_REPO`].
    pub const CLEARML_AGENT_DOCKER_AGENT_REPO: &'static str = "CLEARML_AGENT_DOCKER_AGENT_REPO";

    // ---- abort callback -----------------------------------------------------------------------------

    /// Command the SDK registers to be run on abort.
    pub const CLEARML_AGENT_ABORT_CALLBACK_CMD: &'static str = "CLEARML_AGENT_ABORT_CALLBACK_CMD";
    /// Seconds to wait for the abort callback (default 180).
    pub const CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT: &'static str =
        "CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT";

    // ---- storage credentials copied into the config ---------------------------------------------------

    /// `sdk.aws.s3.key`.
    pub const AWS_ACCESS_KEY_ID: &'static str = "AWS_ACCESS_KEY_ID";
    /// `sdk.aws.s3.secret`.
    pub const AWS_SECRET_ACCESS_KEY: &'static str = "AWS_SECRET_ACCESS_KEY";
    /// `sdk.aws.s3.region`.
    pub const AWS_DEFAULT_REGION: &'static str = "AWS_DEFAULT_REGION";
    /// `sdk.azure.storage.containers[].account_name` (appended item).
    pub const AZURE_STORAGE_ACCOUNT: &'static str = "AZURE_STORAGE_ACCOUNT";
    /// `sdk.azure.storage.containers[].account_key` (appended item).
    pub const AZURE_STORAGE_KEY: &'static str = "AZURE_STORAGE_KEY";
    /// `sdk.google.storage.credentials_json`.
    pub const GOOGLE_APPLICATION_CREDENTIALS: &'static str = "GOOGLE_APPLICATION_CREDENTIALS";

    // ---- set by the agent for the task process --------------------------------------------------------

    /// Id of the task the process runs.
    pub const CLEARML_TASK_ID: &'static str = "CLEARML_TASK_ID";
    /// Legacy alias of [`Self::CLEARML_TASK_ID`].
    pub const TRAINS_TASK_ID: &'static str = "TRAINS_TASK_ID";
    /// SDK log level (from `--log-level`).
    pub const CLEARML_LOG_LEVEL: &'static str = "CLEARML_LOG_LEVEL";
    /// Legacy alias of [`Self::CLEARML_LOG_LEVEL`].
    pub const TRAINS_LOG_LEVEL: &'static str = "TRAINS_LOG_LEVEL";
    /// `0`/`1`: whether the SDK ships the task's console output itself.
    pub const CLEARML_LOG_TASK_TO_BACKEND: &'static str = "CLEARML_LOG_TASK_TO_BACKEND";
    /// Legacy alias of [`Self::CLEARML_LOG_TASK_TO_BACKEND`].
    pub const TRAINS_LOG_TASK_TO_BACKEND: &'static str = "TRAINS_LOG_TASK_TO_BACKEND";
    /// Root of the cloned repository (custom build script).
    pub const CLEARML_GIT_ROOT: &'static str = "CLEARML_GIT_ROOT";
    /// JSON dump of the task (custom build script).
    pub const CLEARML_CUSTOM_BUILD_TASK_CONFIG_JSON: &'static str =
        "CLEARML_CUSTOM_BUILD_TASK_CONFIG_JSON";
    /// Task entry script (custom build script).
    pub const CLEARML_TASK_SCRIPT_ENTRY: &'static str = "CLEARML_TASK_SCRIPT_ENTRY";
    /// Task working directory (custom build script).
    pub const CLEARML_TASK_WORKING_DIR: &'static str = "CLEARML_TASK_WORKING_DIR";
    /// Venv path (custom build script).
    pub const CLEARML_VENV_PATH: &'static str = "CLEARML_VENV_PATH";
    /// File the custom build script may write its result into.
    pub const CLEARML_CUSTOM_BUILD_OUTPUT: &'static str = "CLEARML_CUSTOM_BUILD_OUTPUT";
    /// Python: unbuffered output for tasks.
    pub const PYTHONUNBUFFERED: &'static str = "PYTHONUNBUFFERED";

    /// Removed from the task's environment (the Python agent's apt step reads it, not the task).
    pub const CLEARML_APT_INSTALL: &'static str = "CLEARML_APT_INSTALL";
    /// Legacy alias of [`Self::CLEARML_APT_INSTALL`].
    pub const TRAINS_APT_INSTALL: &'static str = "TRAINS_APT_INSTALL";
    /// Carries an Azure DevOps `Authorization` header to `git --config-env` (never on argv).
    pub const CLEARML_AGENT_GIT_AUTH_HEADER: &'static str = "CLEARML_AGENT_GIT_AUTH_HEADER";

    // ---- generic --------------------------------------------------------------------------------------

    /// Home directory: where `~/clearml.conf` and `~/.clearml` live.
    pub const HOME: &'static str = "HOME";
    /// The agent's own log filter (`tracing` directives such as `debug` or
    /// `clearml_agent::api=trace`); unset: INFO, or DEBUG with `--debug`.
    pub const RUST_LOG: &'static str = "RUST_LOG";
    /// Shell used for bash tasks.
    pub const SHELL: &'static str = "SHELL";

    // ---- slurm ------------------------------------------------------------------------------------

    /// Set by Slurm in a job: its id. The job script of `clearml-agent slurm` builds the job's
    /// `CLEARML_WORKER_ID` from it (`<worker_name>:slurm-<job id>`).
    pub const SLURM_JOB_ID: &'static str = "SLURM_JOB_ID";
}

/// Variables whose legacy `TRAINS_*` twin the Python agent exports for tasks
/// (`CLEARML_X` → `TRAINS_X` when the latter is unset).
pub const LEGACY_PREFIX_FROM: &str = "CLEARML_";
/// See [`LEGACY_PREFIX_FROM`].
pub const LEGACY_PREFIX_TO: &str = "TRAINS_";
