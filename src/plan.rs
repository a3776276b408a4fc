//! Turning resolved settings into the plain configurations of the parts that run: the API client,
//! the daemon, the supervisor and the `execute` pipeline. This is the last place that looks at
//! settings or the process environment; everything after it takes these structs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::api::{ClientConfig, Method, RetryPolicy};
use crate::config::{
    BuildOptions, DaemonOptions, DockerSpec, ExecuteOptions, HttpMethod, PackageManagerType,
    Settings, WorkerOptions,
};
use crate::docker::DockerConfig;
use crate::env::EnvVars;
use crate::exec::git::{GitCredential, GitOptions};
use crate::exec::project_env::ProjectOptions;
use crate::exec::pytorch::{Resolve, TorchOptions};
use crate::exec::requirements::InstallOrder;
use crate::exec::supervise::SuperviseConfig;
use crate::exec::task::ExecuteConfig;
use crate::exec::venv::{EnvOptions, PackageManagerKind, PythonOptions, VenvCacheOptions};
use crate::worker::DaemonConfig;
use crate::worker::report::ReportConfig;

/// The SIGTERM→SIGKILL grace of an aborted task. The Python agent kills at once; a short grace
/// lets the SDK flush its last reports.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long the end of a task waits for its backlog of log lines to reach the server.
const LOG_FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// The API client's configuration. mirrors backend_api/session/session.py: Session.__init__
pub fn client_config(settings: &Settings) -> Result<ClientConfig> {
    let api = &settings.api;
    let server = api.api_server.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        anyhow!(
            "Could not find host server definition (missing ~/clearml.conf or Environment CLEARML_API_HOST); \
             run `clearml-agent init` or set CLEARML_API_HOST"
        )
    })?;
    let mut cfg = ClientConfig::new(server);
    cfg.access_key = api.access_key.clone();
    cfg.secret_key = api.secret_key.clone();
    cfg.auth_token = api.auth_token.clone();
    cfg.verify_certificate = api.verify_certificate;
    cfg.ca_bundle = api.ca_bundle.clone();
    cfg.default_method = match api.default_method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
        HttpMethod::Put => Method::Put,
    };
    cfg.retries = RetryPolicy {
        total: api.retries.total,
        backoff_factor: api.retries.backoff_factor,
        max_backoff: Duration::try_from_secs_f64(api.retries.backoff_max.max(0.0))
            .unwrap_or(Duration::from_secs(120)),
        ..RetryPolicy::default()
    };
    cfg.worker_header = settings.agent.worker_name.clone();
    cfg.token_renew_threshold = api.token_expiration_threshold;
    cfg.request_token_expiration_sec = api.request_token_expiration_sec;
    Ok(cfg)
}

/// The environment every task starts from: the agent's own, the `environment {}` section, the
/// GPU variables of `--gpus`/`--cpu-only`, and the `TRAINS_*` mirror of each `CLEARML_*` variable.
/// mirrors clearml_agent/session.py: Session.__init__ (CUDA/NVIDIA variables) and
/// backend_config/utils.py: apply_environment
pub fn base_env(settings: &Settings, worker: &WorkerOptions) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = settings.process.vars.clone();
    if settings.agent.apply_environment {
        for (k, v) in &settings.environment {
            env.insert(k.clone(), v.clone());
        }
    }
    env.insert("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into());
    if let Some(visible) = worker.gpus.visible_devices() {
        env.insert(EnvVars::NVIDIA_VISIBLE_DEVICES.into(), visible.clone());
        if worker.gpus.removes_cuda_visible_devices() {
            env.remove(EnvVars::CUDA_VISIBLE_DEVICES);
        } else {
            env.insert(EnvVars::CUDA_VISIBLE_DEVICES.into(), visible);
        }
    } else if let Some(cuda) = env.get(EnvVars::CUDA_VISIBLE_DEVICES).cloned()
        && !env.contains_key(EnvVars::NVIDIA_VISIBLE_DEVICES)
    {
        env.insert(EnvVars::NVIDIA_VISIBLE_DEVICES.into(), cuda);
    }
    let mirrors: Vec<(String, String)> = env
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("CLEARML_")
                .map(|rest| (format!("TRAINS_{rest}"), v.clone()))
        })
        .collect();
    for (k, v) in mirrors {
        env.entry(k).or_insert(v);
    }
    env
}

pub fn temp_dir(settings: &Settings) -> PathBuf {
    settings
        .agent
        .temp_dir
        .clone()
        .unwrap_or_else(|| settings.process.temp_dir.clone())
}

/// The supervision of a monitored `execute` (its own task, with or without docker): aborts are
/// polled at the daemon's interval (`CLEARML_AGENT_QUEUE_POLL_FREQ_SEC`, else 5 s), output is
/// echoed, and `--log-file` gets a copy.
pub fn execute_supervise_config(settings: &Settings, opts: &ExecuteOptions) -> SuperviseConfig {
    let poll =
        Duration::try_from_secs_f64(settings.agent.queue_poll_freq_sec.unwrap_or(5.0).max(0.1))
            .unwrap_or(Duration::from_secs(5));
    let mut sup = supervise_config(settings, poll, true);
    sup.log_file = opts.log_file.clone();
    sup
}

pub fn supervise_config(
    settings: &Settings,
    poll_interval: Duration,
    echo: bool,
) -> SuperviseConfig {
    SuperviseConfig {
        poll_interval,
        ping_interval: settings.agent.task_ping_interval,
        kill_grace: KILL_GRACE,
        abort_callback_max: settings.agent.abort_callback_max_timeout,
        suppress_carriage_return: settings.agent.suppress_carriage_return,
        echo,
        spill_dir: temp_dir(settings),
        log_finish_timeout: LOG_FINISH_TIMEOUT,
        log_file: None,
        pending_status_dir: None,
        max_request_bytes: usize::try_from(settings.api.max_req_size).unwrap_or(usize::MAX),
        node_rank: settings.agent.node_rank,
        multi_node_single_task: settings.agent.multi_node_single_task,
    }
}

/// The worker flags a supervisor passes on to its `execute` child, as the Python agent's
/// `worker_args.get_argv_for_command("execute")` does: `-O` (repeated) and `--log-level`.
pub fn child_worker_args(worker: &WorkerOptions) -> Vec<String> {
    let mut args: Vec<String> = (0..worker.optimization).map(|_| "-O".to_string()).collect();
    args.push("--log-level".into());
    args.push(worker.log_level.as_str().to_string());
    args
}

/// The daemon's configuration. The caller has checked for flags that are not supported yet.
pub fn daemon_config(
    settings: &Settings,
    tree: &serde_json::Value,
    opts: &DaemonOptions,
) -> Result<DaemonConfig> {
    // mirrors Worker._verify_command_states: services mode runs CPU-only.
    let mut worker = opts.worker.clone();
    if opts.services_mode.is_some() {
        worker.gpus = crate::config::GpuSpec::CpuOnly;
        worker.cpu_only = true;
    }
    let base_env = base_env(settings, &worker);
    let visible_gpus = base_env.get(EnvVars::NVIDIA_VISIBLE_DEVICES).cloned();
    // mirrors Worker._parse_dynamic_gpus: the pool must be named.
    if opts.dynamic_gpus {
        if opts.services_mode.is_some() {
            return Err(anyhow!(
                "Combining --dynamic-gpus and --services-mode is not supported"
            ));
        }
        if !matches!(
            opts.worker.gpus,
            crate::config::GpuSpec::List(_) | crate::config::GpuSpec::Range { .. }
        ) {
            return Err(anyhow!(
                "--dynamic-gpus needs the GPUs to allocate from: add --gpus 0-3 or --gpus 0,1,2,3"
            ));
        }
    }
    let self_exe =
        std::env::current_exe().map_err(|e| anyhow!("cannot find this program's path: {e}"))?;
    Ok(DaemonConfig {
        initial_connect_retries: settings.api.initial_connect_retries,
        worker_id: settings.agent.worker_id.clone().filter(|s| !s.is_empty()),
        worker_name: settings.agent.worker_name.clone(),
        visible_gpus,
        queues: opts.queues.clone(),
        create_queue: opts.create_queue,
        order_fairness: opts.order_fairness,
        poll: if opts.polling_explicit {
            crate::worker::poll::PollPace::Fixed(opts.polling_interval)
        } else {
            crate::worker::poll::PollPace::Adaptive
        },
        report_interval: settings.agent.status_report_interval,
        foreground: opts.foreground,
        child_report_tags: opts.child_report_tags.clone().unwrap_or_default(),
        // mirrors Worker.new_monitor: a services-mode daemon reports no tags of its own; else
        // its --child-report-tags, else CLEARML_WORKER_TAGS (ResourceMonitor).
        report_tags: match &opts.child_report_tags {
            _ if opts.services_mode.is_some() => Vec::new(),
            Some(tags) if !tags.is_empty() => tags.clone(),
            _ => settings.agent.worker_tags.clone(),
        },
        dynamic_gpus: opts.dynamic_gpus,
        services_mode: opts.services_mode,
        schedule: crate::worker::schedule::Schedule::from_lists(
            opts.uptime.as_deref(),
            opts.downtime.as_deref(),
        )?,
        registry_dir: settings.process.temp_dir.clone(),
        disk_path: settings
            .agent
            .disk_use_path
            .clone()
            .unwrap_or_else(|| settings.process.home_or_root()),
        default_gpu_utilization: settings.agent.default_gpu_utilization,
        // A container gets the configuration less the host-only secrets (git credentials);
        // `execute` children and services clone themselves and get all of it.
        // Services (`--services-mode`, `--dynamic-gpus`) clone on the host themselves and write
        // their container's cut-down configuration.
        child_config: if opts.docker.is_some() && opts.services_mode.is_none() && !opts.dynamic_gpus
        {
            crate::docker::child_config::container_config(tree)
        } else {
            tree.clone()
        },
        venvs_dir: settings.agent.venvs_dir.clone(),
        temp_dir: temp_dir(settings),
        child_args: child_worker_args(&opts.worker),
        self_exe,
        base_env,
        supervise: SuperviseConfig {
            pending_status_dir: Some(settings.process.temp_dir.clone()),
            ..supervise_config(settings, opts.polling_interval, opts.foreground)
        },
        docker: opts
            .docker
            .as_ref()
            .map(|spec| docker_config(settings, spec, &opts.worker)),
    })
}

/// The Slurm glue's configuration: the settings plus this binary's absolute path and the
/// configuration file the jobs read (both resolved once, here).
pub fn slurm_config(
    settings: &Settings,
    opts: &crate::config::settings::SlurmOptions,
) -> Result<crate::slurm::GlueConfig> {
    let self_exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| anyhow!("cannot find this program's path: {e}"))?;
    let config_file = settings
        .config_file
        .clone()
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "the Slurm jobs need a configuration file to read: write ~/clearml.conf or pass --config-file"
            )
        })?;
    let config_file = config_file.canonicalize().unwrap_or(config_file);
    Ok(crate::slurm::GlueConfig {
        initial_connect_retries: settings.api.initial_connect_retries,
        worker_id: settings.agent.worker_id.clone().filter(|s| !s.is_empty()),
        worker_name: settings.agent.worker_name.clone(),
        queues: opts.queues.clone(),
        create_queue: opts.create_queue,
        order_fairness: opts.order_fairness,
        foreground: opts.foreground,
        report_interval: settings.agent.status_report_interval,
        registry_dir: settings.process.temp_dir.clone(),
        self_exe,
        config_file,
        debug: settings.debug,
        docker: opts.docker.as_ref().map(|d| {
            let mut words = vec![d.image.clone()];
            words.extend(d.args.iter().cloned());
            words
        }),
        cluster: opts.cluster.clone(),
    })
}

/// How a full-monitoring `execute` takes its worker id, as the daemon does: the id of
/// `CLEARML_WORKER_ID` if set (one in `clearml.conf` is ignored), else one derived from the
/// visible GPUs or a free slot `<worker_name>:<n>` of the local registry. Returns the fixed id
/// (if any), the name slots are made from and the registry folder. mirrors Worker.execute
/// (`--full-monitoring`: clear agent.worker_id unless set in the environment, then _singleton).
pub fn full_monitoring_identity(
    settings: &Settings,
    opts: &ExecuteOptions,
) -> (Option<String>, String, PathBuf) {
    let agent = &settings.agent;
    let env = base_env(settings, &opts.worker);
    let from_env = agent.worker_id.clone().filter(|_| agent.worker_id_from_env);
    let (fixed, name) = crate::worker::registry::worker_identity(
        from_env.as_deref(),
        &agent.worker_name,
        env.get(EnvVars::NVIDIA_VISIBLE_DEVICES).map(String::as_str),
        false,
    );
    (fixed, name, settings.process.temp_dir.clone())
}

/// The status reports of a monitored `execute` (mirrors Worker.execute: report_monitor with the
/// task, no queues, `is_daemon` false).
pub fn execute_report_config(
    settings: &Settings,
    opts: &ExecuteOptions,
    worker_id: &str,
) -> ReportConfig {
    let env = base_env(settings, &opts.worker);
    ReportConfig {
        worker_id: worker_id.to_string(),
        queues: Vec::new(),
        // mirrors ResourceMonitor: the tags a daemon passed down in CLEARML_WORKER_TAGS.
        tags: settings.agent.worker_tags.clone(),
        period: settings.agent.status_report_interval,
        disk_path: settings
            .agent
            .disk_use_path
            .clone()
            .unwrap_or_else(|| settings.process.home_or_root()),
        default_gpu_utilization: settings.agent.default_gpu_utilization,
        gpus: env.get(EnvVars::NVIDIA_VISIBLE_DEVICES).cloned(),
        is_daemon: false,
    }
}

/// Docker mode's configuration: the agent's image and arguments (`--docker`, already defaulted
/// to `agent.default_docker`), the mounts and the GPU assignment.
/// mirrors clearml_agent/commands/worker.py: Worker._get_docker_cmd (mounts, SSH, GPUs)
pub fn docker_config(
    settings: &Settings,
    spec: &DockerSpec,
    worker: &WorkerOptions,
) -> DockerConfig {
    let agent = &settings.agent;
    let env = base_env(settings, worker);
    let mounts = &agent.docker_internal_mounts;
    // The clone is done on the host: under the untrusted-tasks policy the host's SSH keys and
    // agent are not handed to the task.
    let no_ssh = agent.disable_ssh_mount || agent.docker_untrusted_tasks;
    let ssh_auth_sock = settings
        .process
        .get(EnvVars::SSH_AUTH_SOCK)
        .filter(|_| !no_ssh)
        .map(str::to_string);
    let ssh_dir =
        (!no_ssh && ssh_auth_sock.is_none()).then(|| settings.process.home_or_root().join(".ssh"));
    // mirrors _get_docker_cmd: `CLEARML_AGENT_K8S_HOST_MOUNT=/mnt/host/data:/root/.clearml`.
    let host_mount = agent.docker_host_mount.as_deref().and_then(|v| {
        let (node, pod) = v.split_once(':')?;
        (!node.is_empty() && !pod.is_empty()).then(|| (PathBuf::from(node), PathBuf::from(pod)))
    });
    DockerConfig {
        default_image: spec.image.clone(),
        default_args: spec.args.clone(),
        update_back_task: agent.default_docker.update_back_task,
        disable_task_override: agent.disable_task_docker_override,
        extra_args: agent.extra_docker_arguments.clone(),
        arg_rules: crate::docker::merge::ArgRules {
            filters: agent.docker_args_filters.clone(),
            forbidden: agent.forbidden_docker_args.clone(),
            protected: agent.protected_docker_extra_args.clone(),
            extra_precedes_task: agent.docker_args_extra_precedes_task,
            allow_host_environ: agent.docker_allow_host_environ,
            untrusted_tasks: agent.docker_untrusted_tasks,
        },
        allowed_port_range: agent.docker_args_allowed_port_range,
        host_ip: agent.force_host_machine_ip.clone(),
        extra_shell_script: agent.extra_docker_shell_script.clone(),
        preprocess_script: agent.docker_preprocess_bash_script.clone(),
        init_script: agent.docker_init_bash_script.clone(),
        install_opencv_libs: agent.docker_install_opencv_libs,
        apt_cache: Some((agent.docker_apt_cache.clone(), mounts.apt_cache.clone())),
        force_pull: agent.docker_force_pull,
        packages: crate::docker::Packages {
            uv: (agent.package_manager.type_ == crate::config::settings::PackageManagerType::Uv)
                .then(|| agent.package_manager.uv_version.clone()),
            pip_version: agent.package_manager.pip_version.clone(),
            flags: crate::exec::requirements::pip_flags(
                &agent.package_manager.extra_index_url,
                &agent.package_manager.extra_pip_install_flags,
                agent.package_manager.force_upgrade,
            ),
            install_order: crate::exec::requirements::InstallOrder {
                priority: agent.package_manager.priority_packages.clone(),
                priority_optional: agent.package_manager.priority_optional_packages.clone(),
                post: agent.package_manager.post_packages.clone(),
                post_optional: agent.package_manager.post_optional_packages.clone(),
                ..crate::exec::requirements::InstallOrder::default()
            },
            force_repo_requirements_txt: agent.package_manager.force_repo_requirements_txt,
            force_original_requirements: agent.package_manager.force_original_requirements,
            pytorch: torch_options(settings, worker.cpu_only),
            poetry: agent.package_manager.type_ == PackageManagerType::Poetry,
            project: project_options(settings),
        },
        environment: if agent.apply_environment {
            settings.environment.clone()
        } else {
            Vec::new()
        },
        files: if agent.apply_files {
            settings.files.clone()
        } else {
            Vec::new()
        },
        enable_task_env: agent.enable_task_env,
        // Under the untrusted-tasks policy the host's git credentials are not handed to a task.
        git_credentials: if agent.docker_untrusted_tasks {
            Vec::new()
        } else {
            [".git-credentials", ".gitconfig"]
                .iter()
                .map(|name| settings.process.home_or_root().join(name))
                .filter(|p| p.is_file())
                .collect()
        },
        auth_token: env
            .get(EnvVars::CLEARML_AUTH_TOKEN)
            .filter(|t| !t.is_empty())
            .cloned(),
        rocm_render_nodes: crate::docker::rocm::detect(),
        host_mount: host_mount.clone(),
        container_name_format: agent.docker_container_name_format.clone(),
        container_name_fields: agent.docker_container_name_format_fields.clone(),
        hide_env: agent.hide_docker_command_env_vars.clone(),
        ssh_dir,
        ssh_auth_sock,
        ssh_ro_folder: mounts.ssh_ro_folder.clone(),
        ssh_folder: mounts.ssh_folder.clone(),
        pip_cache: Some((agent.docker_pip_cache.clone(), mounts.pip_cache.clone())),
        force_git_root_python_path: agent.force_git_root_python_path,
        venv_inside: format!(
            "{}/task",
            match mounts.venv_build.strip_prefix('~') {
                Some(rest) => format!("/root{rest}"),
                None => mounts.venv_build.clone(),
            }
            .trim_end_matches('/')
        ),
        // mirrors Worker._get_docker_cmd: the poetry cache is mounted when poetry is enabled.
        poetry_cache: (agent.package_manager.type_ == PackageManagerType::Poetry).then(|| {
            (
                agent.docker_poetry_cache.clone(),
                mounts.poetry_cache.clone(),
            )
        }),
        sdk_cache: Some((settings.sdk.cache_dir.clone(), mounts.sdk_cache.clone())),
        // Behind a host mount the code is prepared inside it, where sibling containers see it.
        work_dir: match &host_mount {
            Some((_, pod)) => pod.join(".clearml_agent.docker-work"),
            None => temp_dir(settings),
        },
        git: git_options(settings),
        allow_host_repositories: agent.docker_allow_host_repositories,
        visible_gpus: env.get(EnvVars::NVIDIA_VISIBLE_DEVICES).cloned(),
        skip_gpus_flag: agent.docker_skip_gpus_flag,
        log_level: worker.log_level.as_str().to_string(),
        registry_config: std::fs::read_to_string(
            settings
                .process
                .get(EnvVars::DOCKER_CONFIG)
                .map(PathBuf::from)
                .unwrap_or_else(|| settings.process.home_or_root().join(".docker"))
                .join("config.json"),
        )
        .ok(),
        use_activated_venv: agent.docker_use_activated_venv,
        venvs_cache: agent.venvs_cache.path.clone(),
        extra_labels: agent.extra_docker_labels.clone(),
    }
}

/// The `execute` pipeline's configuration. `worker_id` is the agent's worker id or, for a
/// standalone execute, `<worker_name>:<pid>` (mirrors Worker.__init__).
pub fn execute_config(settings: &Settings, opts: &ExecuteOptions) -> ExecuteConfig {
    let agent = &settings.agent;
    let worker_id = agent
        .worker_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}:{}", agent.worker_name, std::process::id()));
    let pm = &agent.package_manager;
    ExecuteConfig {
        task_id: opts.task_id.clone(),
        worker_id,
        clone: opts.clone,
        require_queue: opts.require_queue,
        standalone: opts.standalone_mode,
        log_level: opts.worker.log_level.as_str().to_string(),
        optimization: opts.worker.optimization,
        config_file: settings.config_file.clone(),
        git: git_options(settings),
        python: PythonOptions {
            // mirrors CLEARML_AGENT_SKIP_PIP_VENV_INSTALL: a path there names the interpreter.
            python_binary: agent
                .skip_pip_venv_install
                .clone()
                .filter(|v| !v.trim().is_empty() && bool_word(v).is_none())
                .or_else(|| agent.python_binary.clone()),
            default_python: agent.default_python.clone(),
            // An interpreter named there is used whatever the task asks for.
            ignore_requested_python_version: agent.ignore_requested_python_version
                || agent
                    .skip_pip_venv_install
                    .as_deref()
                    .is_some_and(|v| !v.trim().is_empty() && bool_word(v).is_none()),
        },
        env: EnvOptions {
            manager: match pm.type_ {
                PackageManagerType::Uv => PackageManagerKind::Uv,
                PackageManagerType::Poetry => PackageManagerKind::Poetry,
                _ => PackageManagerKind::Pip,
            },
            venvs_dir: agent.venvs_dir.clone(),
            venvs_cache: agent.venvs_cache.path.clone().map(|path| VenvCacheOptions {
                path,
                max_entries: agent.venvs_cache.max_entries as usize,
                free_space_threshold_gb: agent.venvs_cache.free_space_threshold_gb,
                lock_timeout: agent.venvs_cache.lock_timeout,
            }),
            system_site_packages: pm.system_site_packages,
            force_upgrade: pm.force_upgrade,
            extra_index_urls: pm.extra_index_url.clone(),
            extra_pip_install_flags: pm.extra_pip_install_flags.clone(),
            pip_legacy_resolver: pm.pip_legacy_resolver.clone(),
            pip_version: pm.pip_version.clone(),
            uv_binary: pm.uv_exec.clone(),
            uv_version: pm.uv_version.clone(),
            install_cwd: None,
            skip_install: agent.skip_python_env_install,
            // mirrors Worker._get_skip_pip_venv_install: a true value or an interpreter.
            no_venv: agent
                .skip_pip_venv_install
                .as_deref()
                .is_some_and(|v| !v.trim().is_empty() && bool_word(v) != Some(false)),
            install_order: InstallOrder {
                priority: pm.priority_packages.clone(),
                priority_optional: pm.priority_optional_packages.clone(),
                post: pm.post_packages.clone(),
                post_optional: pm.post_optional_packages.clone(),
                ..InstallOrder::default()
            },
            docker_image: None,
            cuda_version: agent.cuda_version.clone(),
            project_dir: None,
            project: project_options(settings),
            uv_unsafe_best_match: pm.uv_unsafe_best_match,
            venv_path: None,
            pytorch: None,
        },
        force_repo_requirements_txt: pm.force_repo_requirements_txt,
        force_original_requirements: pm.force_original_requirements,
        force_git_root_python_path: agent.force_git_root_python_path,
        extra_python_path: agent.extra_python_path.clone(),
        enable_task_env: agent.enable_task_env,
        pytorch: torch_options(settings, opts.worker.cpu_only),
        custom_build_script: agent
            .custom_build_script
            .clone()
            .filter(|s| !s.trim().is_empty()),
        force_code_dir: agent.force_code_dir.clone(),
        force_exec_script: agent.force_exec_script.clone(),
        temp_dir: temp_dir(settings),
        python_version: None,
        node_rank: settings.agent.node_rank,
        base_env: base_env(settings, &opts.worker),
    }
}

/// `build`'s configuration: `execute`'s, with the venv in `--target` (absolute; the Python
/// agent makes a relative one absolute too), `--python-version`, and `--install-globally` as
/// system site packages (packages still go into the venv; see docs/differences.md).
pub fn build_config(settings: &Settings, opts: &BuildOptions) -> ExecuteConfig {
    let mut cfg = execute_config(
        settings,
        &ExecuteOptions {
            task_id: opts.task_id.clone(),
            log_file: None,
            disable_monitoring: true,
            full_monitoring: false,
            require_queue: false,
            standalone_mode: false,
            docker: None,
            clone: false,
            worker: opts.worker.clone(),
        },
    );
    cfg.env.venv_path = opts.target.as_deref().map(|t| {
        let t = PathBuf::from(t);
        if t.is_absolute() {
            t
        } else {
            std::env::current_dir().map(|d| d.join(&t)).unwrap_or(t)
        }
    });
    cfg.python_version = opts.python_version.clone();
    if opts.install_globally {
        cfg.env.system_site_packages = true;
    }
    cfg
}

/// The uv sync and poetry settings.
fn project_options(settings: &Settings) -> ProjectOptions {
    let pm = &settings.agent.package_manager;
    ProjectOptions {
        uv_sync_locked: pm.uv_sync_locked_if_lock_file,
        uv_sync_extra_args: pm.uv_sync_extra_args.clone(),
        uv_files_from_working_dir: pm.uv_files_from_repo_working_dir,
        poetry_version: pm.poetry_version.clone(),
        poetry_install_extra_args: pm.poetry_install_extra_args.clone(),
        poetry_files_from_working_dir: pm.poetry_files_from_repo_working_dir,
    }
}

/// Python's `strtobool` of a word: `Some(true)`/`Some(false)`, `None` when it is no boolean.
fn bool_word(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The PyTorch resolution settings; `worker_cpu_only` is this process's `--cpu-only`.
pub fn torch_options(settings: &Settings, worker_cpu_only: bool) -> TorchOptions {
    let agent = &settings.agent;
    let pm = &agent.package_manager;
    let defaults = TorchOptions::default();
    let or = |v: &Option<String>, d: String| v.clone().filter(|v| !v.is_empty()).unwrap_or(d);
    TorchOptions {
        resolve: Resolve::parse(&pm.pytorch_resolve),
        nightly: pm.torch_nightly,
        cpu_only: agent.cpu_only,
        worker_cpu_only,
        cuda_version: agent.cuda_version.clone(),
        rocm_path: agent.rocm_path.clone(),
        index_template: or(&pm.extra_index_url_template, defaults.index_template),
        nightly_index_template: or(
            &pm.nightly_extra_index_url_template,
            defaults.nightly_index_template,
        ),
        rocm_index_template: or(
            &pm.rocm_extra_index_url_template,
            defaults.rocm_index_template,
        ),
        nightly_rocm_index_template: or(
            &pm.nightly_rocm_extra_index_url_template,
            defaults.nightly_rocm_index_template,
        ),
    }
}

fn git_options(settings: &Settings) -> GitOptions {
    let a = &settings.agent;
    GitOptions {
        git_user: a.git_user.clone(),
        git_pass: a.git_pass.clone(),
        git_host: a.git_host.clone(),
        git_host_match_prefix: a.git_host_match_prefix,
        extra_credentials: a
            .git_extra_credentials
            .iter()
            .map(|c| GitCredential {
                user: c.user.clone().unwrap_or_default(),
                pass: c.pass.clone().unwrap_or_default(),
                host: c.host.clone().unwrap_or_default(),
            })
            .collect(),
        enable_git_ask_pass: a.enable_git_ask_pass,
        force_git_ssh_protocol: a.force_git_ssh_protocol,
        force_git_ssh_port: a.force_git_ssh_port,
        force_git_ssh_user: a.force_git_ssh_user.clone(),
        translate_ssh: a.translate_ssh,
        translate_ssh_replacement_scheme: a.translate_ssl_replacement_scheme.clone(),
        git_fetch_args: a.git_fetch_args.clone(),
        vcs_cache: a.vcs_cache.enabled.then(|| a.vcs_cache.path.clone()),
        clone_on_pull_fail: a.vcs_cache.clone_on_pull_fail,
        clone_verbose: a.git_clone_verbose,
        standalone: false,
        // mirrors Git.__init__: both on, the Entra token wins (with a warning at start).
        header_auth: if a.git_use_ms_entra_token {
            crate::exec::git::HeaderAuth::EntraToken
        } else if a.git_use_azure_pat {
            crate::exec::git::HeaderAuth::AzurePat
        } else {
            crate::exec::git::HeaderAuth::Off
        },
    }
}
