//! One task in a container, supervised from the host: choose the image, prepare the code on the
//! host, create the container (labels, mounts, GPUs, SSH), stream its output into the task log,
//! stop and remove it on abort, always remove it at the end, and report the final status with
//! the same rules as venv mode (`exec::supervise`).
//!
//! mirrors clearml_agent/commands/worker.py: Worker.run_one_task (docker branch),
//! Worker.get_task_container / _get_docker_cmd / _get_docker_config_cmd

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::args::{self, RunArgs};
use super::merge;
use super::ports;
use super::script::{self, Freeze, FreezeCapture, FreezeMarkers, ScriptSpec};
use super::template;
use super::{DockerConfig, DockerError, Engine, LABEL_PARENT_WORKER, LABEL_TASK, LABEL_WORKER};
use crate::api::{Client, Container, RuntimeProperty, ScriptRequirements, StatusChange, Task};
use crate::config::masking::{sanitize_docker_args, sanitize_urls};
use crate::env::EnvVars;
use crate::exec::ending::SetupError;
use crate::exec::git::{self, ScriptInfo, SourceLayout};
use crate::exec::logs::{LogLevel, LogPipeline};
use crate::exec::requirements::{InstallUnit, Requirements};
use crate::exec::server_checks::ServerChecks;
use crate::exec::supervise::{self, Ending, StopReason, SuperviseConfig};
use crate::exec::watch::{self as watch_loop, RunningTask, TaskOutput};

/// Where the host's child configuration is mounted (mirrors `-v <cfg>:/tmp/clearml.conf`).
pub const CONFIG_INSIDE: &str = "/tmp/clearml.conf";

/// One task to run in a container.
#[derive(Debug, Clone)]
pub struct ContainerJob {
    pub task_id: String,
    /// The worker id the task runs under (`CLEARML_WORKER_ID`, label `clearml-worker-id`).
    pub worker_id: String,
    /// The daemon's worker id (label `clearml-parent-worker-id`; leftovers are reaped by it).
    pub parent_worker_id: String,
    /// The host file with the configuration the task's SDK reads.
    pub config_file: PathBuf,
    /// The queue the task was pulled from (for the "pulled" log line).
    pub pulled_from: Option<String>,
    /// `--child-report-tags`.
    pub worker_tags: Vec<String>,
    /// The host environment used for git on the host.
    pub host_env: BTreeMap<String, String>,
    /// `build --docker`: the container only builds the environment, to be committed as an
    /// image. Nothing is written back to the task, no venv cache is used, the code is copied into
    /// the container instead of mounted, and nothing secret is put in it (the agent's token and
    /// `environment {}`, the SSH folder, git credentials and `files {}` stay out).
    pub build: bool,
}

/// The image, arguments and setup script a task runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub image: String,
    pub args: Vec<String>,
    pub setup_shell_script: Vec<String>,
    /// The agent's default was used (so it is written back to the task).
    pub default_used: bool,
}

/// The task's own container first, then the agent's. mirrors Worker.get_task_container and the
/// docker branch of Worker.run_one_task.
pub fn choose_container(task: &Container, cfg: &DockerConfig) -> Chosen {
    let image = task.image.as_deref().unwrap_or("").trim().to_string();
    let setup_shell_script: Vec<String> = task
        .setup_shell_script
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if image.is_empty() || cfg.disable_task_override {
        return Chosen {
            image: cfg.default_image.clone(),
            args: cfg.default_args.clone(),
            setup_shell_script,
            default_used: true,
        };
    }
    let args = task
        .arguments
        .as_deref()
        .map(crate::config::shell_split)
        .unwrap_or_default();
    Chosen {
        image,
        args,
        setup_shell_script,
        default_used: false,
    }
}

/// The GPU part of the container: the device request and the variables inside.
/// `NVIDIA_VISIBLE_DEVICES` names the host devices (as docker's own `--gpus` sets it);
/// `CUDA_VISIBLE_DEVICES` numbers them as CUDA sees them inside, where only the requested
/// devices exist, from 0 (the Python agent passes the host indices, its issue #47).
pub fn gpu_setup(visible: Option<&str>, skip_flag: bool) -> (Option<DeviceRequest>, Vec<String>) {
    let visible = visible.map(str::trim);
    match visible {
        None | Some("all") => {
            let req = (!skip_flag)
                .then(|| args::gpu_request("all"))
                .and_then(Result::ok);
            (req, vec!["NVIDIA_VISIBLE_DEVICES=all".into()])
        }
        Some("") | Some("none") => (
            None,
            vec![
                "NVIDIA_VISIBLE_DEVICES=none".into(),
                "CUDA_VISIBLE_DEVICES=".into(),
            ],
        ),
        Some(list) => {
            let ids: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let req = (!skip_flag)
                .then(|| args::gpu_request(&ids.join(",")))
                .and_then(Result::ok);
            let inside: Vec<String> = (0..ids.len()).map(|i| i.to_string()).collect();
            (
                req,
                vec![
                    format!("NVIDIA_VISIBLE_DEVICES={}", ids.join(",")),
                    format!("CUDA_VISIBLE_DEVICES={}", inside.join(",")),
                ],
            )
        }
    }
}

/// What `prepare` made: the create body and the host folder to remove afterwards.
pub(crate) struct Planned {
    pub(crate) body: ContainerCreateBody,
    pub(crate) name: Option<String>,
    pub(crate) platform: Option<String>,
    /// `build --docker`: the command of the image (the task's start, see script::image_command).
    pub(crate) image_command: Option<String>,
    /// Where the task starts (the image's working dir).
    pub(crate) script_dir: String,
    pub(crate) work: PathBuf,
    original_requirements: ScriptRequirements,
    /// Held while the container runs: the cached venv it builds or uses is its own.
    venv_lock: Option<std::fs::File>,
    /// The lines around the `pip freeze` output in the container's script.
    freeze_markers: FreezeMarkers,
}

/// Runs one task in a container to its end and reports its final status. Never fails: every
/// problem is reported on the task and printed, and the daemon goes on.
pub async fn run_task(
    client: &Client,
    sup: &SuperviseConfig,
    cfg: &DockerConfig,
    engine: &Engine,
    job: ContainerJob,
    shutdown: CancellationToken,
) -> Ending {
    let task_id = job.task_id.clone();
    let pipeline = match supervise::begin_task(
        client,
        sup,
        &task_id,
        &job.worker_id,
        job.pulled_from.as_deref(),
        " in docker mode",
    )
    .await
    {
        Ok(pipeline) => pipeline,
        Err(ending) => return ending,
    };

    let mut container_id = None;
    let mut work = None;
    let mut failure = None;
    // The host-side clone's processes carry a mark of their own: a shutdown during the
    // preparation (a clone, a lock wait, an image pull) stops waiting for it and kills them.
    let mark = crate::exec::process::new_task_mark();
    let prepared = tokio::select! {
        prepared = prepare(client, cfg, engine, &job, &pipeline, &mark) => Some(prepared),
        _ = shutdown.cancelled() => None,
    };
    let ending = match prepared {
        None => {
            crate::exec::process::kill_marked(&mark);
            pipeline.push_line(
                LogLevel::Warning,
                "clearml-agent: the agent is shutting down; the task's preparation was stopped"
                    .to_string(),
            );
            Ending::Stopped(StopReason::AgentShutdown)
        }
        Some(Err(setup)) => {
            pipeline.push_line(LogLevel::Error, setup.error);
            failure = Some(setup.reason);
            Ending::Exited(1)
        }
        Some(Ok(planned)) => {
            work = Some(planned.work.clone());
            let _venv_lock = planned.venv_lock;
            match create_and_start(
                engine,
                planned.body,
                planned.name.as_deref(),
                planned.platform.as_deref(),
            )
            .await
            {
                Err((id, reason)) => {
                    container_id = id;
                    pipeline.push_line(LogLevel::Error, reason.clone());
                    failure = Some(reason);
                    Ending::Exited(1)
                }
                Ok((id, output)) => {
                    container_id = Some(id.clone());
                    watch_container(
                        client,
                        sup,
                        engine,
                        &job,
                        &id,
                        output,
                        &pipeline,
                        &planned.original_requirements,
                        &planned.freeze_markers,
                        shutdown,
                    )
                    .await
                }
            }
        }
    };
    // No container of a task outlives it.
    if let Some(id) = &container_id
        && let Err(e) = engine.remove(id).await
    {
        pipeline.push_line(LogLevel::Error, format!("{e}"));
    }
    if let Some(work) = work {
        let _ = std::fs::remove_dir_all(work);
    }
    // A task that never ran fails with the reason (the container is gone by then).
    if let Some(reason) = &failure {
        fail(client, &job, reason).await;
    }

    supervise::end_task(client, sup, &task_id, &job.worker_id, pipeline, ending).await
}

async fn fail(client: &Client, job: &ContainerJob, reason: &str) {
    let short: String = reason
        .lines()
        .next()
        .unwrap_or(reason)
        .chars()
        .take(200)
        .collect();
    let _ = client
        .tasks()
        .failed(
            &StatusChange::by_agent(&job.task_id, &job.worker_id)
                .reason(short)
                .force(true),
        )
        .await;
}

/// Creates the container, attaches to its output and starts it (attached before the start, no
/// byte of its output is missed). On failure returns the id to remove (if it was created).
async fn create_and_start(
    engine: &Engine,
    body: ContainerCreateBody,
    name: Option<&str>,
    platform: Option<&str>,
) -> Result<(String, ContainerOutput), (Option<String>, String)> {
    let id = engine
        .create_for(name, platform, body)
        .await
        .map_err(|e| (None, e.to_string()))?;
    let output = match engine.attach(&id).await {
        Ok(output) => output,
        Err(e) => return Err((Some(id), e.to_string())),
    };
    match engine.start(&id).await {
        Ok(()) => Ok((id, Box::pin(output))),
        Err(e) => Err((Some(id), e.to_string())),
    }
}

/// The container's output as [`Engine::attach`] streams it.
type ContainerOutput =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<u8>, DockerError>> + Send>>;

/// A task's container as the watch loop sees it.
struct WatchedContainer<'a> {
    engine: &'a Engine,
    id: &'a str,
    /// The engine's wait for the container's exit: one request, kept across the loop's turns.
    wait: std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send + 'a>>,
    code: Option<Result<i32, String>>,
    kill_grace: std::time::Duration,
}

impl RunningTask for WatchedContainer<'_> {
    async fn exit(&mut self) -> Result<i32, String> {
        if self.code.is_none() {
            self.code = Some((&mut self.wait).await);
        }
        self.code.clone().unwrap_or(Ok(-1))
    }

    async fn end(&mut self, _reason: &StopReason) -> Result<(), String> {
        self.engine
            .stop(self.id, self.kill_grace)
            .await
            .map_err(|e| e.to_string())
    }

    fn stopping_line(&self, _what: &str) -> String {
        format!(
            "User aborted: stopping task container ({})",
            short_id(self.id)
        )
    }

    /// The engine may keep the stream open a little after the stop.
    fn drain_wait(&self) -> Option<std::time::Duration> {
        Some(self.kill_grace * 2)
    }
}

/// The container's attached output for the watch loop.
struct AttachedOutput(ContainerOutput);

impl TaskOutput for AttachedOutput {
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.0.next().await.map(|r| r.map_err(|e| e.to_string()))
    }
}

/// Feeds the container's output to the pipeline (watching it for the freeze markers) and waits
/// for its exit, an abort or a shutdown.
#[allow(clippy::too_many_arguments)]
async fn watch_container(
    client: &Client,
    sup: &SuperviseConfig,
    engine: &Engine,
    job: &ContainerJob,
    id: &str,
    output: ContainerOutput,
    pipeline: &LogPipeline,
    original_requirements: &ScriptRequirements,
    freeze_markers: &FreezeMarkers,
    shutdown: CancellationToken,
) -> Ending {
    let task_id = job.task_id.as_str();
    let mut freeze = FreezeCapture::new(freeze_markers);
    let mut checks = ServerChecks::new(client, task_id, pipeline, &sup.checks());
    let mut task = WatchedContainer {
        engine,
        id,
        wait: Box::pin(async move { engine.wait(id).await.map_err(|e| e.to_string()) }),
        code: None,
        kill_grace: sup.kill_grace,
    };
    let mut output = AttachedOutput(output);
    // The frozen requirements are recorded beside the output (a server that is away must not
    // hold up the abort checks); the recording is awaited before the task ends.
    let mut recording: Option<tokio::task::JoinHandle<()>> = None;
    let ending = {
        let mut on_output = |bytes: &[u8]| match freeze.feed(bytes) {
            Some(Freeze::Captured(frozen)) => {
                recording = Some(tokio::spawn(record_freeze(
                    client.clone(),
                    task_id.to_string(),
                    frozen,
                    original_requirements.clone(),
                )));
            }
            Some(Freeze::Abandoned(why)) => pipeline.push_line(LogLevel::Warning, why),
            None => {}
        };
        watch_loop::watch(
            &mut task,
            Some(&mut output),
            &mut checks,
            pipeline,
            &mut on_output,
            shutdown,
        )
        .await
    };
    if let Some(recording) = recording.take() {
        let _ = recording.await;
    }
    ending
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The container's freeze recorded on the task, as venv mode records its own.
async fn record_freeze(
    client: Client,
    task_id: String,
    frozen: String,
    original: ScriptRequirements,
) {
    let lines = crate::exec::requirements::frozen_lines(&frozen);
    if let Err(e) = client
        .tasks()
        .record_freeze(&task_id, &original, &lines)
        .await
    {
        tracing::warn!("could not update the requirements of task {task_id}: {e}");
    }
}

/// Records the host ports the task's ports were published on. mirrors
/// TaskRuntime.update_task_runtime.
async fn record_port_mapping(client: &Client, task_id: &str, mapping: &str) {
    if let Err(e) = client
        .tasks()
        .set_runtime_property(task_id, RuntimeProperty::ExternalPortMapping, mapping)
        .await
    {
        tracing::warn!("cannot record the port mapping of task {task_id}: {e}");
    }
}

/// Everything before the container exists: task, image, code, requirements, script, body.
pub(crate) async fn prepare(
    client: &Client,
    cfg: &DockerConfig,
    engine: &Engine,
    job: &ContainerJob,
    pipeline: &LogPipeline,
    mark: &str,
) -> Result<Planned, SetupError> {
    let task = client
        .tasks()
        .get_by_id(&job.task_id)
        .await
        .map_err(|e| format!("Could not find task id={}: {e}", job.task_id))?;
    let chosen = choose_container(&task.container, cfg);
    let shown_args = sanitize_docker_args(&chosen.args, &cfg.hide_env);
    pipeline.push_line(
        LogLevel::Info,
        format!(
            "Running Task {} inside {}docker: {} arguments: {:?}",
            job.task_id,
            if chosen.default_used { "default " } else { "" },
            chosen.image,
            shown_args
        ),
    );
    if chosen.default_used && cfg.update_back_task && !job.build {
        // mirrors run_one_task: the default container is written back to the task.
        let container = Container {
            image: Some(chosen.image.clone()),
            arguments: Some(
                shlex::try_join(chosen.args.iter().map(String::as_str)).unwrap_or_default(),
            ),
            setup_shell_script: task.container.setup_shell_script.clone(),
        };
        if let Err(e) = client
            .tasks()
            .edit_container(&job.task_id, &container)
            .await
        {
            tracing::warn!(
                "could not record the container of task {}: {e}",
                job.task_id
            );
        }
    }

    // The agent's and the task's arguments, merged by the agent's rules.
    // The agent's default arguments are the admin's; only a task's own are checked by the
    // untrusted-tasks policy.
    let rules = merge::ArgRules {
        untrusted_tasks: cfg.arg_rules.untrusted_tasks && !chosen.default_used,
        ..cfg.arg_rules.clone()
    };
    // `${CLEARML_...}` templates are resolved first, so that the agent's rules and the
    // untrusted-tasks policy see the values the container gets (mirrors run_one_task: the
    // task's docker arguments are resolved "before everything else").
    let (task_args, extra_args) = if chosen
        .args
        .iter()
        .chain(&cfg.extra_args)
        .any(|w| template::has_template(w))
    {
        let words: Vec<String> = chosen.args.iter().chain(&cfg.extra_args).cloned().collect();
        let sources = template_sources(client, job, &task, &words).await;
        let resolve = |args: &[String]| -> Vec<String> {
            args.iter()
                .map(|w| template::resolve(w, &sources))
                .collect()
        };
        (resolve(&chosen.args), resolve(&cfg.extra_args))
    } else {
        (chosen.args.clone(), cfg.extra_args.clone())
    };
    let merged = merge::merge(&rules, &task_args, &extra_args, &|name| {
        job.host_env.get(name).cloned()
    })
    .map_err(SetupError::message)?;
    if !merged.stripped.is_empty() {
        // mirrors the warning of Worker._get_docker_cmd.
        let names: Vec<String> = merged.stripped.iter().map(|s| format!("--{s}")).collect();
        pipeline.push_line(
            LogLevel::Warning,
            format!(
                "clearml-agent: ignoring docker argument(s) {}; they would override the agent startup script and prevent the task from running",
                names.join(", ")
            ),
        );
    }
    // Published ports: taken ones move, the container learns the host's address, the task
    // records the mapping.
    let mut docker_args = merged.args;
    match ports::resolve(
        &docker_args,
        cfg.allowed_port_range,
        &ports::used_ports,
        &|| cfg.host_ip.clone().or_else(ports::private_ip),
    ) {
        Ok(None) => {}
        Ok(Some(plan)) => {
            docker_args = plan.args;
            if !job.build {
                record_port_mapping(client, &job.task_id, &plan.mapping).await;
            }
        }
        Err(why) => pipeline.push_line(
            LogLevel::Warning,
            format!("WARNING: Failed parsing port mapping requested for docker execution: {why}"),
        ),
    }
    let run_args: RunArgs =
        args::translate(&docker_args, &super::env_file::read).map_err(SetupError::message)?;

    // The code, on the host, in a folder private to the agent: 0700, a random name, created
    // exclusively (no other local user can plant or swap anything in it); removed again when
    // the preparation fails.
    let work_dir = private_work_dir(&cfg.work_dir)?;
    let work = work_dir.path().to_path_buf();
    let layout = prepare_code(cfg, job, &task, &work, pipeline, mark).await?;
    if let Some(commit) = layout.commit.as_deref()
        && task.script.version_num.is_empty()
        && !job.build
    {
        pipeline.push_line(LogLevel::Info, format!("Updating task commit ID: {commit}"));
        let _ = client.tasks().set_version_num(&job.task_id, commit).await;
    }
    // The image is there before the install is planned: its own variables (`CUDA_VERSION`)
    // choose the PyTorch index.
    if cfg.force_pull || !engine.has_image(&chosen.image).await {
        pipeline.push_line(LogLevel::Info, format!("Pulling image {}", chosen.image));
        let log = |line: String| pipeline.push_line(LogLevel::Info, line);
        let credentials = match cfg.registry_config.as_deref() {
            Some(text) => super::credentials::for_image(&chosen.image, text, &log).await,
            None => None,
        };
        engine
            .pull(&chosen.image, credentials, &log)
            .await
            .map_err(SetupError::message)?;
    }
    let install = install_plan(
        cfg,
        &task,
        &layout,
        &work,
        (engine, &chosen.image),
        pipeline,
    )
    .await?;
    let files = if job.build {
        Vec::new()
    } else {
        config_files(cfg, &work)?
    };

    let cached_venv = if job.build {
        None
    } else {
        cached_venv(cfg, &chosen.image, &install)
    };
    let mut spec = script_spec(cfg, &chosen, &task, &layout, install, files)?;
    if job.build {
        spec.build_only = true;
        spec.ssh_copy = None;
        spec.git_credentials_copy = None;
    }
    let image_command = job.build.then(|| script::image_command(&spec));
    let script = script::render(&spec);
    let freeze_markers = spec.freeze_markers.clone();

    // Behind a host mount the configuration and the SSH folder are copied into the task's
    // folder, which lies in the shared one (mirrors _get_docker_cmd: copied into the mount).
    let shared_copies;
    let (cfg, job) = match &cfg.host_mount {
        Some(_) => {
            shared_copies = copy_into_shared(cfg, job, &work)?;
            (&shared_copies.0, &shared_copies.1)
        }
        None => (cfg, job),
    };
    let (mut body, ignored, left_out) =
        container_body_and_ignored(cfg, job, &chosen.image, &run_args, script, &work);
    if job.build {
        strip_for_image(&mut body, cfg, &work);
    }
    for why in left_out {
        pipeline.push_line(
            LogLevel::Warning,
            format!("Warning: host mount missing, ignoring the folder {why}"),
        );
    }
    if !ignored.is_empty() {
        pipeline.push_line(
            LogLevel::Warning,
            format!(
                "clearml-agent: ignoring docker argument(s) {}; the agent sets them",
                ignored.join(", ")
            ),
        );
    }
    // mirrors agent.enable_task_env: the task's `Environment` hyper-parameters become variables
    // (never one the agent sets).
    if cfg.enable_task_env {
        let env = body.env.get_or_insert_with(Vec::new);
        for (k, v) in crate::exec::task::environment_hyperparams(client, &job.task_id).await {
            if !env
                .iter()
                .any(|e| e.split_once('=').is_some_and(|(key, _)| key == k))
            {
                env.push(format!("{k}={v}"));
            }
        }
    }
    if let Some((dir, _)) = &cached_venv
        && let Some(binds) = body.host_config.as_mut().and_then(|h| h.binds.as_mut())
    {
        match host_path(cfg, dir) {
            Ok(outside) => binds.push(format!("{outside}:{}", cfg.venv_inside)),
            Err(why) => pipeline.push_line(
                LogLevel::Warning,
                format!("clearml-agent: the venv cache is not used: {why}"),
            ),
        }
    }
    // The task's own `--name` wins over the agent's name format.
    let name = match run_args.name.clone() {
        Some(name) => Some(name),
        None => formatted_name(cfg, job, &task).unwrap_or_else(|warning| {
            pipeline.push_line(LogLevel::Warning, warning);
            None
        }),
    };
    pipeline.push_line(
        LogLevel::Info,
        format!(
            "Running Docker:\nExecuting: {}",
            // The freeze token stays out of the log: the task can read its own log.
            docker_command_line(
                &body,
                name.as_deref(),
                &cfg.hide_env,
                &run_args.env_file_keys,
                &run_args.shown
            )
            .replace(freeze_markers.token(), "<random>")
        ),
    );

    Ok(Planned {
        body,
        name,
        platform: run_args.platform.clone(),
        image_command,
        script_dir: spec.script_dir.clone(),
        work: work_dir.keep(),
        original_requirements: task.script.requirements.clone(),
        venv_lock: cached_venv.map(|(_, lock)| lock),
        freeze_markers,
    })
}

/// A build container's body: the code folder is not mounted (it is copied in, so that the image
/// holds it), no SSH folder, git credentials or agent socket are mounted, and the variables the
/// image would keep hold nothing of the agent's (its token, configuration, `environment {}`,
/// anything named like a secret).
fn strip_for_image(body: &mut ContainerCreateBody, cfg: &DockerConfig, work: &Path) {
    let work_inside = format!(":{}", work.display());
    if let Some(binds) = body.host_config.as_mut().and_then(|h| h.binds.as_mut()) {
        binds.retain(|b| {
            !b.ends_with(&work_inside)
                && !b.contains(&format!(":{}", cfg.ssh_ro_folder))
                && !b.contains(&format!(":{}", git_credentials_folder(&cfg.ssh_ro_folder)))
                && !cfg
                    .ssh_auth_sock
                    .as_deref()
                    .is_some_and(|s| b.ends_with(&format!(":{s}")))
        });
    }
    let agent_only = [
        EnvVars::CLEARML_WORKER_ID,
        EnvVars::CLEARML_CONFIG_FILE,
        EnvVars::CLEARML_LOG_TASK_TO_BACKEND,
        EnvVars::CLEARML_LOG_LEVEL,
        EnvVars::SSH_AUTH_SOCK,
        EnvVars::CLEARML_AUTH_TOKEN,
    ];
    if let Some(env) = body.env.as_mut() {
        env.retain(|e| {
            let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            let upper = name.to_uppercase();
            !agent_only.contains(&name)
                && !cfg.environment.iter().any(|(k, _)| k == name)
                && !["TOKEN", "SECRET", "PASS", "KEY"]
                    .iter()
                    .any(|s| upper.contains(s))
        });
    }
}

/// Behind a host mount: the job's configuration file and the SSH folder copied into `work` (in
/// the shared folder, private to the agent), and the settings and job naming the copies.
fn copy_into_shared(
    cfg: &DockerConfig,
    job: &ContainerJob,
    work: &Path,
) -> Result<(DockerConfig, ContainerJob), SetupError> {
    use std::os::unix::fs::PermissionsExt;
    let mut cfg = cfg.clone();
    let mut job = job.clone();
    let config = work.join(".clearml_agent.cfg");
    std::fs::copy(&job.config_file, &config).map_err(|e| {
        format!(
            "could not copy the configuration file into {}: {e}",
            work.display()
        )
    })?;
    let _ = std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600));
    job.config_file = config;
    if let Some(dir) = cfg.ssh_dir.as_ref().filter(|d| d.is_dir())
        && host_path(&cfg, dir).is_err()
    {
        let copy = work.join(".clearml_agent.ssh");
        crate::exec::tree::copy_tree(dir, &copy).map_err(|e| {
            format!(
                "could not copy the .ssh folder into {}: {e}",
                work.display()
            )
        })?;
        let _ = std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o700));
        cfg.ssh_dir = Some(copy);
    }
    Ok((cfg, job))
}

/// What `${CLEARML_...}` templates in `words` can name: the task, its queue and project (names
/// fetched only when a template asks for them), the worker, and the configuration the container
/// reads (never the agent's host-only secrets).
async fn template_sources(
    client: &Client,
    job: &ContainerJob,
    task: &Task,
    words: &[String],
) -> template::Sources {
    let queue_id = job.pulled_from.clone().or(task.execution.queue.clone());
    let queue_name = match &queue_id {
        Some(q) if template::needs(words, "QUEUE_NAME") => {
            client.queues().get_by_id(q).await.ok().map(|q| q.name)
        }
        _ => None,
    };
    let project_name = match &task.project {
        Some(p) if template::needs(words, "PROJECT_NAME") => {
            client.projects().get_by_id(p).await.ok().map(|p| p.name)
        }
        _ => None,
    };
    let config = std::fs::read_to_string(&job.config_file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    template::Sources {
        queue_id,
        queue_name,
        worker_id: job.worker_id.clone(),
        project_id: task.project.clone(),
        project_name,
        task: serde_json::to_value(task).unwrap_or_default(),
        config,
    }
}

/// The container's name from `agent.docker_container_name_format`; a format that fails is a
/// warning in the task log and the engine names the container (mirrors run_one_task).
fn formatted_name(
    cfg: &DockerConfig,
    job: &ContainerJob,
    task: &Task,
) -> Result<Option<String>, String> {
    let Some(format) = cfg.container_name_format.as_deref() else {
        return Ok(None);
    };
    let task_json = serde_json::to_value(task).unwrap_or_default();
    let fields: Vec<(String, String)> = cfg
        .container_name_fields
        .iter()
        .map(|(name, path)| {
            let value = path
                .split('.')
                .try_fold(&task_json, |v, part| v.get(part))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "{}".into());
            (name.clone(), value)
        })
        .collect();
    let rand_string: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    template::container_name(format, &job.task_id, &job.worker_id, &rand_string, &fields)
        .map(Some)
        .map_err(|e| format!("Warning: {e}"))
}

/// A new folder for one task's code under `parent` (made 0700 first if missing): mode 0700, a
/// random name, created exclusively; removed when dropped before `keep`.
fn private_work_dir(parent: &Path) -> Result<tempfile::TempDir, SetupError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !parent.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    tempfile::Builder::new()
        .prefix("clearml-agent-docker-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| {
            format!(
                "cannot create the task's folder in {}: {e}; check that it exists and is writable",
                parent.display()
            )
            .into()
        })
}

/// The host folder of the cached venv for this image and these requirements, locked for this
/// task; `None` when there is no cache or another task holds it (then the venv is built in the
/// container and thrown away). mirrors the intent of agent.venvs_cache: a second task with the
/// same requirements builds nothing.
fn cached_venv(
    cfg: &DockerConfig,
    image: &str,
    install: &script::ScriptInstall,
) -> Option<(PathBuf, std::fs::File)> {
    let root = cfg.venvs_cache.as_ref()?;
    // A project install is not cached (as in the Python agent, which caches no uv or poetry
    // environment).
    if install.project.is_some() {
        return None;
    }
    // The key: the image and every install with its settings, and what the files hold.
    let mut key = format!("{image}\n{install:?}\n");
    for step in &install.steps {
        if let [flag, file] = step.args.as_slice()
            && flag == "-r"
        {
            key.push_str(&std::fs::read_to_string(file).unwrap_or_default());
            key.push('\n');
        }
    }
    let name = format!("docker-{}", crate::exec::git_url::md5_hex(&key));
    std::fs::create_dir_all(root).ok()?;
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).ok()?;
    lock.try_lock().ok()?;
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).ok()?;
    Some((dir, lock))
}

/// The create body of a task's container: image, the script, the task's variables, labels,
/// mounts (config, code, SSH, caches), the translated `docker run` arguments and the GPU
/// assignment. mirrors the order of Worker._get_docker_cmd. The agent's variables and labels
/// win over the arguments'.
pub fn container_body(
    cfg: &DockerConfig,
    job: &ContainerJob,
    image: &str,
    run_args: &RunArgs,
    script: String,
    work: &Path,
) -> ContainerCreateBody {
    container_body_and_ignored(cfg, job, image, run_args, script, work).0
}

/// [`container_body`], the `-e KEY` / `-l KEY` arguments ignored because the agent sets them, and
/// the folders left out behind a host mount.
fn container_body_and_ignored(
    cfg: &DockerConfig,
    job: &ContainerJob,
    image: &str,
    run_args: &RunArgs,
    script: String,
    work: &Path,
) -> (ContainerCreateBody, Vec<String>, Vec<String>) {
    // A ROCm host gets devices instead of an NVIDIA device request (mirrors _get_docker_cmd).
    let rocm = cfg
        .rocm_render_nodes
        .as_ref()
        .filter(|_| !cfg.skip_gpus_flag)
        .map(|nodes| super::rocm::setup(cfg.visible_gpus.as_deref(), nodes));
    let (gpu_request, gpu_env) = match &rocm {
        Some(Some(amd)) => (None, amd.env.clone()),
        Some(None) => (None, Vec::new()),
        None => gpu_setup(cfg.visible_gpus.as_deref(), cfg.skip_gpus_flag),
    };
    let mut env = vec![
        format!("CLEARML_WORKER_ID={}", job.worker_id),
        format!("CLEARML_DOCKER_IMAGE={image}"),
        format!("CLEARML_TASK_ID={}", job.task_id),
        format!("CLEARML_CONFIG_FILE={CONFIG_INSIDE}"),
        "CLEARML_LOG_TASK_TO_BACKEND=0".to_string(),
        format!("CLEARML_LOG_LEVEL={}", cfg.log_level),
        format!("{}=1", crate::env::EnvVars::PYTHONUNBUFFERED),
    ];
    if !job.worker_tags.is_empty() {
        env.push(format!(
            "{}={}",
            crate::env::EnvVars::CLEARML_WORKER_TAGS,
            shlex::try_join(job.worker_tags.iter().map(String::as_str))
                .unwrap_or_else(|_| job.worker_tags.join(" "))
        ));
    }
    env.extend(gpu_env);
    // mirrors _get_docker_cmd: a token-only agent hands its token to the container.
    if let Some(token) = &cfg.auth_token {
        env.push(format!(
            "{}={token}",
            crate::env::EnvVars::CLEARML_AUTH_TOKEN
        ));
    }
    // `environment {}` of clearml.conf, applied where the task runs (the Python agent applies it
    // in the container when its session starts); the agent's own variables come first.
    for (k, v) in &cfg.environment {
        if !env
            .iter()
            .any(|e| e.split_once('=').is_some_and(|(key, _)| key == k))
        {
            env.push(format!("{k}={v}"));
        }
    }
    // Behind a host mount every host side is named by the engine host's path; a folder outside
    // the shared one cannot be mounted and is left out with a warning (mirrors _get_docker_cmd).
    let mut left_out = Vec::new();
    let mut host_side = |path: &Path| -> Option<String> {
        match host_path(cfg, path) {
            Ok(p) => Some(p),
            Err(warning) => {
                left_out.push(warning);
                None
            }
        }
    };
    let mut binds = Vec::new();
    if let Some(config) = host_side(&job.config_file) {
        binds.push(format!("{config}:{CONFIG_INSIDE}:ro"));
    }
    if let Some(code) = host_side(work) {
        binds.push(format!("{code}:{}", work.display()));
    }
    if let Some(sock) = &cfg.ssh_auth_sock {
        if let Some(outside) = host_side(Path::new(sock)) {
            binds.push(format!("{outside}:{sock}"));
            env.push(format!("SSH_AUTH_SOCK={sock}"));
        }
    } else if let Some(dir) = cfg.ssh_dir.as_ref().filter(|d| d.is_dir())
        && let Some(outside) = host_side(dir)
    {
        binds.push(format!("{outside}:{}:ro", cfg.ssh_ro_folder));
    }
    let git_ro = git_credentials_folder(&cfg.ssh_ro_folder);
    for file in &cfg.git_credentials {
        if let (Some(outside), Some(name)) = (host_side(file), file.file_name()) {
            binds.push(format!("{outside}:{git_ro}/{}:ro", name.to_string_lossy()));
        }
    }
    for (host, inside) in [
        &cfg.pip_cache,
        &cfg.poetry_cache,
        &cfg.apt_cache,
        &cfg.sdk_cache,
    ]
    .into_iter()
    .flatten()
    {
        let _ = std::fs::create_dir_all(host);
        if let Some(outside) = host_side(host) {
            binds.push(format!("{outside}:{inside}"));
        }
    }
    let mut labels = HashMap::new();
    labels.insert(LABEL_WORKER.to_string(), job.worker_id.clone());
    labels.insert(
        LABEL_PARENT_WORKER.to_string(),
        job.parent_worker_id.clone(),
    );
    labels.insert(LABEL_TASK.to_string(), job.task_id.clone());
    for label in &cfg.extra_labels {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            script::LAUNCHER.into(),
            script,
        ]),
        env: Some(env),
        labels: Some(labels),
        host_config: Some(HostConfig {
            binds: Some(binds),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ignored = run_args.apply(&mut body);
    // The agent's GPU assignment wins over any `--gpus` in the arguments: agents sharing a
    // machine must not see each other's devices.
    if let Some(host) = body.host_config.as_mut() {
        host.device_requests = gpu_request.map(|r| vec![r]);
        if let Some(Some(amd)) = &rocm {
            host.devices
                .get_or_insert_with(Vec::new)
                .extend(amd.devices.iter().cloned());
            host.group_add
                .get_or_insert_with(Vec::new)
                .extend(amd.groups.iter().cloned());
        }
    }
    (body, ignored, left_out)
}

/// Where the agent user's git credential files are mounted: `<ssh_ro_folder>.git` (mirrors
/// `mount_git_ro` of Worker._get_docker_cmd).
fn git_credentials_folder(ssh_ro: &str) -> String {
    format!("{}.git", ssh_ro.trim_end_matches('/'))
}

/// The engine host's path of a folder the agent mounts: itself, or behind a host mount
/// (`node:pod`) the node path of a folder inside `pod`; a folder outside it is an error naming it.
pub fn host_path(cfg: &DockerConfig, path: &Path) -> Result<String, String> {
    let Some((node, pod)) = &cfg.host_mount else {
        return Ok(path.display().to_string());
    };
    match path.strip_prefix(pod) {
        Ok(rest) => Ok(node.join(rest).display().to_string()),
        Err(_) => Err(format!(
            "{} (outside the host mount {}, not mounted)",
            path.display(),
            pod.display()
        )),
    }
}

/// Most bytes of code-preparation output (git) kept for the task log.
const PREPARE_LOG_BYTES: usize = 4 * 1024 * 1024;

/// Clones the task's code on the host (blocking work off the runtime); the output goes to the
/// task log.
async fn prepare_code(
    cfg: &DockerConfig,
    job: &ContainerJob,
    task: &Task,
    work: &Path,
    pipeline: &LogPipeline,
    mark: &str,
) -> Result<SourceLayout, SetupError> {
    let script = ScriptInfo::of(&task.script, task.script.binary.clone().unwrap_or_default());
    // The Python agent clones inside the container, where host paths do not exist; here the
    // clone runs on the host, so a host path would hand the task any repository of this host.
    if !cfg.allow_host_repositories && git::is_host_repository(&script.repository) {
        return Err(format!(
            "refused the task's repository {:?}: in docker mode a repository may not be a path or file:// URL of this host; push it to a git server, or set agent.docker_allow_host_repositories: true in clearml.conf",
            git::scrub_url(script.repository.trim())
        )
        .into());
    }
    let git_opts = cfg.git.clone();
    let mut env: HashMap<String, String> = job.host_env.clone().into_iter().collect();
    env.insert(EnvVars::CLEARML_AGENT_TASK_MARK.into(), mark.to_string());
    let work = work.to_path_buf();
    // (lines, their bytes, lines dropped): held until the preparation ends, so bounded to the
    // first PREPARE_LOG_BYTES, with a count of the rest.
    let lines = Arc::new(Mutex::new((Vec::<String>::new(), 0usize, 0u64)));
    let sink = lines.clone();
    let result = tokio::task::spawn_blocking(move || {
        let log = |line: &str| {
            if let Ok(mut v) = sink.lock() {
                if v.1 + line.len() > PREPARE_LOG_BYTES {
                    v.2 += 1;
                } else {
                    v.1 += line.len();
                    v.0.push(line.to_string());
                }
            }
        };
        git::prepare_source(
            &script,
            &work.join("task_repository"),
            &work.join("code"),
            &git_opts,
            &env,
            &log,
        )
    })
    .await
    .map_err(|e| format!("the code preparation crashed: {e}"))?;
    if let Ok(v) = lines.lock() {
        for l in v.0.iter() {
            pipeline.push_output(format!("{l}\n").into_bytes());
        }
        if v.2 > 0 {
            pipeline.push_line(
                LogLevel::Warning,
                format!(
                    "clearml-agent: {} more lines of the code preparation not shown",
                    v.2
                ),
            );
        }
    }
    result.map_err(SetupError::message)
}

/// The task's requirements (written to a file in the mounted work folder), else the
/// repository's requirements.txt files.
/// What a new venv in the container installs: the requirement set and install steps decided as
/// in venv mode (`exec::requirements::choose` and `install_steps`), the main set written to a
/// file of the task folder, and the pip settings of `agent.package_manager`.
async fn install_plan(
    cfg: &DockerConfig,
    task: &Task,
    layout: &SourceLayout,
    work: &Path,
    image: (&Engine, &str),
    pipeline: &LogPipeline,
) -> Result<script::ScriptInstall, SetupError> {
    let packages = &cfg.packages;
    let task_requirements = Requirements::from_script(&task.script.requirements);
    let (requirements, repo_files) = crate::exec::requirements::choose(
        &task_requirements,
        packages.force_repo_requirements_txt,
        packages.force_original_requirements,
        layout.repo_root.as_deref().map(|root| {
            (
                root,
                layout.working_dir.as_str(),
                layout.entry_point.as_str(),
            )
        }),
        // A `file://` of the host does not exist in the container (the Python agent checks
        // inside it): such a line installs the package by name.
        &|_| false,
    );
    for warning in &requirements.warnings {
        pipeline.push_line(LogLevel::Warning, warning.clone());
    }
    let mut lines = requirements.pip_lines();
    if !lines.is_empty()
        && crate::exec::task::is_notebook(
            task.script.binary.as_deref().unwrap_or_default(),
            &layout.entry_point,
        )
    {
        pipeline.push_line(
            LogLevel::Info,
            "Force nbconvert patch to convert .ipynb to python".to_string(),
        );
        crate::exec::task::add_notebook_packages(&mut lines);
    }
    let mut flags = packages.flags.clone();
    if let Some(torch) = torch_plan(&packages.pytorch, &lines, &repo_files, image).await {
        for message in torch.messages {
            pipeline.push_line(LogLevel::Info, message);
        }
        if let Some(index) = torch.index {
            flags.extend(["--extra-index-url".to_string(), index]);
        }
        if !lines.is_empty() {
            lines = torch.lines;
        }
    }
    let main_file = work.join("requirements.txt");
    let mut steps = Vec::new();
    for step in crate::exec::requirements::install_steps(&lines, &packages.install_order) {
        steps.push(match step.unit {
            InstallUnit::Line(line) => script::ScriptStep {
                args: vec![line],
                optional: step.optional,
                drop_from: step.optional.then(|| main_file.display().to_string()),
            },
            InstallUnit::File(main) => {
                let text = main.join("\n") + "\n";
                crate::exec::confined::Beneath::open("the task's folder", work)
                    .and_then(|dir| {
                        dir.create_file(
                            "the requirements file",
                            Path::new("requirements.txt"),
                            text.as_bytes(),
                            0o644,
                        )
                    })
                    .map_err(|e| e.to_string())?;
                script::ScriptStep {
                    args: vec!["-r".into(), main_file.display().to_string()],
                    optional: false,
                    drop_from: None,
                }
            }
        });
    }
    if lines.is_empty() {
        steps.extend(repo_files.iter().map(|f| script::ScriptStep {
            args: vec!["-r".into(), f.display().to_string()],
            optional: false,
            drop_from: None,
        }));
    }
    let pins = match crate::exec::requirements::requested_pip_version(&requirements) {
        Some(v) => crate::exec::requirements::pip_pin_args(&[v]),
        None => crate::exec::requirements::pip_pin_args(&packages.pip_version),
    };
    let project = layout
        .repo_root
        .as_deref()
        .and_then(|root| project_install(packages, root, &layout.working_dir, &flags, pipeline));
    Ok(script::ScriptInstall {
        uv: packages.uv.as_ref().map(|version| match version {
            Some(v) if v.contains(['=', '~', '<', '>']) => format!("uv{v}"),
            Some(v) => format!("uv=={v}"),
            None => "uv".to_string(),
        }),
        pip_pins: if packages.uv.is_some() || steps.is_empty() {
            Vec::new()
        } else {
            pins
        },
        flags,
        cwd: layout.repo_root.as_ref().map(|r| r.display().to_string()),
        steps,
        project,
    })
}

/// The repository's own project install in the container: `uv sync` with `type: uv` and
/// `pyproject.toml`/`uv.lock`, `poetry install` with `type: poetry` and
/// `pyproject.toml`/`poetry.lock` (looked for on the host, where the code was prepared).
fn project_install(
    packages: &crate::docker::Packages,
    root: &Path,
    working_dir: &str,
    flags: &[String],
    pipeline: &LogPipeline,
) -> Option<script::ScriptProject> {
    use crate::exec::project_env::project_dir;
    let opts = &packages.project;
    let has = |dir: &Path, files: &[&str]| files.iter().any(|f| dir.join(f).is_file());
    if packages.uv.is_some() {
        let dir = project_dir(root, working_dir, opts.uv_files_from_working_dir);
        if !has(&dir, &["pyproject.toml", "uv.lock"]) {
            return None;
        }
        // The extra indexes of the pip flags (`--extra-index-url URL` pairs).
        let index_urls = flags
            .windows(2)
            .filter(|w| w[0] == "--extra-index-url")
            .map(|w| w[1].clone())
            .collect();
        return Some(script::ScriptProject::Uv {
            dir: dir.display().to_string(),
            locked: opts.uv_sync_locked,
            lock_file: dir.join("uv.lock").is_file(),
            extra_args: opts.uv_sync_extra_args.clone(),
            index_urls,
        });
    }
    if packages.poetry {
        let dir = project_dir(root, working_dir, opts.poetry_files_from_working_dir);
        if !has(&dir, &["pyproject.toml", "poetry.lock"]) {
            pipeline.push_line(
                LogLevel::Info,
                format!(
                    "Could not find pyproject.toml or poetry.lock file in {} ",
                    dir.display()
                ),
            );
            return None;
        }
        let spec = opts
            .poetry_version
            .as_deref()
            .map(|v| v.replace(' ', ""))
            .filter(|v| !v.is_empty())
            .map(|v| {
                if v.contains(['=', '~', '<', '>']) {
                    format!("poetry{v}")
                } else {
                    format!("poetry=={v}")
                }
            });
        return Some(script::ScriptProject::Poetry {
            dir: dir.display().to_string(),
            spec,
            extra_args: opts.poetry_install_extra_args.clone(),
        });
    }
    None
}

/// The PyTorch resolution of a container's requirements, probed from the host. The CUDA
/// version is the image's `CUDA_VERSION` (NVIDIA's images set it; the Python agent reads it
/// inside the container), else the agent's configured or detected one.
async fn torch_plan(
    opts: &crate::exec::pytorch::TorchOptions,
    lines: &[String],
    repo_files: &[PathBuf],
    (engine, image): (&Engine, &str),
) -> Option<crate::exec::pytorch::TorchPlan> {
    use crate::exec::pytorch;
    let repo_lines = if lines.is_empty() {
        crate::exec::requirements::lines_of_files(repo_files)
    } else {
        Vec::new()
    };
    if !pytorch::wanted(opts, lines) && !pytorch::wanted(opts, &repo_lines) {
        return None;
    }
    // The image is inspected only for a task with PyTorch lines.
    let image_cuda = engine
        .image_env(image)
        .await
        .iter()
        .find_map(|e| e.strip_prefix("CUDA_VERSION="))
        .and_then(pytorch::normalize_cuda);
    let platform = match image_cuda {
        Some(cuda) => pytorch::Platform::Cuda(cuda),
        None => {
            let opts = opts.clone();
            tokio::task::spawn_blocking(move || pytorch::host_platform(&opts))
                .await
                .unwrap_or(pytorch::Platform::Cuda(0))
        }
    };
    let http = crate::api::plain_http();
    pytorch::plan(opts, platform, lines, &repo_lines, |url| {
        pytorch::page_exists(&http, url)
    })
    .await
}

/// `files {}` of clearml.conf: each entry's bytes in a file of the task folder, copied into
/// place by the container's script (an entry that cannot be made is a line in the task log).
fn config_files(cfg: &DockerConfig, work: &Path) -> Result<Vec<script::ScriptFile>, SetupError> {
    if cfg.files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = crate::exec::confined::Beneath::open("the task's folder", work)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, spec) in cfg.files.iter().enumerate() {
        let bytes = match crate::config::files::content(spec) {
            Ok(bytes) => bytes,
            Err(why) => {
                tracing::warn!("files.{}: skipped: {why}", spec.name);
                continue;
            }
        };
        let name = format!("clearml-conf-file-{i}");
        let source = dir
            .create_file("a configuration file", Path::new(&name), &bytes, 0o600)
            .map_err(|e| e.to_string())?;
        out.push(script::ScriptFile {
            source: source.display().to_string(),
            target: spec.raw_path.clone(),
            mode: spec.mode,
            overwrite: spec.overwrite,
        });
    }
    Ok(out)
}

fn script_spec(
    cfg: &DockerConfig,
    chosen: &Chosen,
    task: &Task,
    layout: &SourceLayout,
    install: script::ScriptInstall,
    files: Vec<script::ScriptFile>,
) -> Result<ScriptSpec, SetupError> {
    let binary = task.script.binary.clone().unwrap_or_default();
    let name = binary.trim().rsplit('/').next().unwrap_or("");
    let entry = layout.entry_point.trim().to_string();
    let script_dir = layout.script_dir.display().to_string();
    let split = |s: &str| {
        shlex::split(s)
            .ok_or_else(|| format!("cannot parse the entry point {s:?} (unbalanced quotes)"))
    };
    let mut notebook = None;
    let (python_args, shell_command) = if matches!(name, "bash" | "sh" | "zsh") {
        let mut argv = vec![name.to_string()];
        if let Some(rest) = entry.strip_prefix("-c") {
            argv.push("-c".into());
            argv.push(rest.trim().to_string());
        } else if layout.script_dir.join(&entry).exists() {
            argv.push(entry.clone());
        } else {
            argv.extend(split(&entry)?);
        }
        (Vec::new(), Some(argv))
    } else {
        let mut argv = vec!["-u".to_string()];
        if entry.is_empty() {
            return Err(SetupError::message(
                "the task has no entry point (script.entry_point is empty); set it in the task",
            ));
        } else if entry.to_lowercase().ends_with(".ipynb")
            && layout.script_dir.join(&entry).exists()
        {
            // mirrors Worker.execute: the notebook is converted, then its script runs.
            argv.push(Path::new(&entry).with_extension("py").display().to_string());
            notebook = Some(entry.clone());
        } else if entry.split_whitespace().next() == Some("-m")
            || !layout.script_dir.join(&entry).exists()
        {
            argv.extend(split(&entry)?);
        } else {
            argv.push(entry.clone());
        }
        (argv, None)
    };
    // mirrors Worker.execute (as venv mode): the repository root instead of the script folder
    // with `agent.force_git_root_python_path`.
    let base_dir = match (&layout.repo_root, cfg.force_git_root_python_path) {
        (Some(root), true) => root.clone(),
        _ => layout.script_dir.clone(),
    };
    let mut python_path = vec![base_dir.display().to_string()];
    if !cfg.force_git_root_python_path
        && let Some(first) = entry.split_whitespace().next()
        && first != "-m"
        && let Some(parent) = base_dir.join(first).parent()
        && parent != base_dir
    {
        python_path.push(parent.display().to_string());
    }
    let ssh_copy = (cfg.ssh_auth_sock.is_none()
        && cfg.ssh_dir.as_ref().is_some_and(|d| d.is_dir()))
    .then(|| (cfg.ssh_ro_folder.clone(), cfg.ssh_folder.clone()));
    Ok(ScriptSpec {
        preprocess: cfg.preprocess_script.clone(),
        init: cfg.init_script.clone(),
        opencv_libs: cfg.install_opencv_libs,
        ssh_copy,
        extra_shell_script: cfg.extra_shell_script.clone(),
        setup_shell_script: chosen.setup_shell_script.clone(),
        venv_dir: cfg.venv_inside.clone(),
        use_activated_venv: cfg.use_activated_venv,
        install,
        files,
        git_credentials_copy: (!cfg.git_credentials.is_empty())
            .then(|| git_credentials_folder(&cfg.ssh_ro_folder)),
        script_dir,
        python_path: python_path.join(":"),
        python_args,
        shell_command,
        freeze_markers: FreezeMarkers::random(),
        build_only: false,
        notebook,
    })
}

/// The `docker run` command line equivalent to the create body, secrets masked: the values of
/// variables read from env files (`env_file_keys`, always), of secret-looking and listed
/// variables (`sanitize_docker_args`), and URL passwords anywhere in the line, the scripts
/// included. mirrors the "Running Docker:\nExecuting: ..." line of Worker.run_one_task.
fn docker_command_line(
    body: &ContainerCreateBody,
    name: Option<&str>,
    hide: &crate::config::HideDockerEnvVars,
    env_file_keys: &[String],
    shown: &[String],
) -> String {
    let mut argv: Vec<String> = vec!["docker".into(), "run".into()];
    let host = body.host_config.clone().unwrap_or_default();
    if let Some(reqs) = &host.device_requests {
        for r in reqs {
            argv.push("--gpus".into());
            argv.push(match &r.device_ids {
                Some(ids) => format!("\"device={}\"", ids.join(",")),
                None => "all".into(),
            });
        }
    }
    for (flag, value) in [
        ("--ipc", &host.ipc_mode),
        ("--network", &host.network_mode),
        ("--pid", &host.pid_mode),
        ("--runtime", &host.runtime),
        ("-u", &body.user),
        ("-w", &body.working_dir),
    ] {
        if let Some(v) = value {
            argv.push(flag.into());
            argv.push(v.clone());
        }
    }
    if let Some(shm) = host.shm_size {
        argv.push("--shm-size".into());
        argv.push(shm.to_string());
    }
    if host.privileged == Some(true) {
        argv.push("--privileged".into());
    }
    let mut labels: Vec<_> = body
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.sort();
    for (k, v) in labels {
        argv.push("-l".into());
        argv.push(format!("{k}={v}"));
    }
    for e in body.env.iter().flatten() {
        argv.push("-e".into());
        match e.split_once('=') {
            Some((key, _)) if env_file_keys.iter().any(|k| k == key) => {
                argv.push(format!("{key}=********"));
            }
            _ => argv.push(e.clone()),
        }
    }
    for b in host.binds.iter().flatten() {
        argv.push("-v".into());
        argv.push(b.clone());
    }
    let mut published: Vec<String> = host
        .port_bindings
        .iter()
        .flatten()
        .flat_map(|(inside, bindings)| {
            bindings.iter().flatten().map(move |b| {
                let ip = b
                    .host_ip
                    .as_deref()
                    .map(|ip| format!("{ip}:"))
                    .unwrap_or_default();
                let port = b.host_port.as_deref().unwrap_or_default();
                format!("{ip}{port}:{inside}")
            })
        })
        .collect();
    published.sort();
    for p in published {
        argv.push("-p".into());
        argv.push(p);
    }
    argv.extend(shown.iter().cloned());
    if let Some(name) = name {
        argv.push("--name".into());
        argv.push(name.into());
    }
    argv.push("--rm".into());
    argv.push(body.image.clone().unwrap_or_default());
    argv.extend(body.cmd.iter().flatten().cloned());
    let argv = sanitize_docker_args(&argv, hide);
    let line = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    // URL credentials anywhere (the admin's scripts are part of the command), line by line so
    // that the script keeps its lines.
    line.split('\n')
        .map(|l| sanitize_urls(l).0)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> DockerConfig {
        DockerConfig {
            default_image: "agent/default:1".into(),
            default_args: vec!["--ipc=host".into()],
            work_dir: PathBuf::from("/tmp"),
            ..DockerConfig::default()
        }
    }

    #[test]
    fn task_container_wins_over_the_default() {
        let task = Container {
            image: Some(" task/img:2 ".into()),
            arguments: Some("-e A=1 --network host".into()),
            setup_shell_script: Some("# c\necho hi\n".into()),
        };
        let c = choose_container(&task, &cfg());
        assert_eq!(c.image, "task/img:2");
        assert_eq!(c.args, vec!["-e", "A=1", "--network", "host"]);
        assert_eq!(c.setup_shell_script, vec!["echo hi"]);
        assert!(!c.default_used);
        let mut no_override = cfg();
        no_override.disable_task_override = true;
        let c = choose_container(&task, &no_override);
        assert_eq!(c.image, "agent/default:1");
        assert_eq!(c.setup_shell_script, vec!["echo hi"]);
        assert!(c.default_used);
        let c = choose_container(&Container::default(), &cfg());
        assert_eq!(
            (c.image.as_str(), c.default_used),
            ("agent/default:1", true)
        );
    }

    #[test]
    fn printed_command_masks_secrets() {
        let body = ContainerCreateBody {
            image: Some("img:1".into()),
            env: Some(vec![
                "AWS_SECRET_ACCESS_KEY=topsecret".into(),
                "PLAIN=visible".into(),
            ]),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]),
            host_config: Some(HostConfig {
                device_requests: Some(vec![args::gpu_request("1").unwrap()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = docker_command_line(&body, Some("job"), &cfg().hide_env, &[], &[]);
        assert!(
            line.starts_with("docker run --gpus '\"device=1\"'"),
            "{line}"
        );
        assert!(!line.contains("topsecret"), "{line}");
        assert!(line.contains("PLAIN=visible"), "{line}");
        assert!(
            line.ends_with("--name job --rm img:1 /bin/sh -c true"),
            "{line}"
        );
    }

    #[test]
    fn gpu_variables_follow_the_assignment() {
        let (req, env) = gpu_setup(Some("1"), false);
        assert_eq!(req.unwrap().device_ids, Some(vec!["1".to_string()]));
        assert_eq!(
            env,
            vec!["NVIDIA_VISIBLE_DEVICES=1", "CUDA_VISIBLE_DEVICES=0"]
        );
        let (req, env) = gpu_setup(Some("2,3"), false);
        assert_eq!(
            req.unwrap().device_ids,
            Some(vec!["2".to_string(), "3".to_string()])
        );
        assert_eq!(
            env,
            vec!["NVIDIA_VISIBLE_DEVICES=2,3", "CUDA_VISIBLE_DEVICES=0,1"]
        );
        let (req, env) = gpu_setup(None, false);
        assert_eq!(req.unwrap().count, Some(-1));
        assert_eq!(env, vec!["NVIDIA_VISIBLE_DEVICES=all"]);
        let (req, env) = gpu_setup(Some("none"), false);
        assert!(req.is_none());
        assert_eq!(env[0], "NVIDIA_VISIBLE_DEVICES=none");
        let (req, _) = gpu_setup(Some("0"), true);
        assert!(req.is_none());
    }

    #[test]
    fn a_rocm_host_passes_devices_instead_of_a_device_request() {
        let mut c = cfg();
        c.rocm_render_nodes = Some(vec!["renderD128".into(), "renderD129".into()]);
        c.visible_gpus = Some("1".into());
        let job = ContainerJob {
            task_id: "t".into(),
            worker_id: "w".into(),
            parent_worker_id: "w".into(),
            config_file: PathBuf::from("/tmp/c.cfg"),
            pulled_from: None,
            worker_tags: Vec::new(),
            host_env: BTreeMap::new(),
            build: false,
        };
        let body_of = |c: &DockerConfig| {
            container_body(
                c,
                &job,
                "img",
                &RunArgs::default(),
                "true".into(),
                Path::new("/tmp/w"),
            )
        };
        let body = body_of(&c);
        let host = body.host_config.unwrap();
        assert!(host.device_requests.is_none());
        let devices: Vec<String> = host
            .devices
            .unwrap()
            .into_iter()
            .filter_map(|d| d.path_on_host)
            .collect();
        assert_eq!(devices, ["/dev/kfd", "/dev/dri/renderD129"]);
        assert_eq!(host.group_add.unwrap(), ["video"]);
        let env = body.env.unwrap();
        assert!(
            env.contains(&"ROCR_VISIBLE_DEVICES=1".to_string()),
            "{env:?}"
        );
        assert!(
            !env.iter().any(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES")),
            "{env:?}"
        );
        c.visible_gpus = Some("none".into());
        let host = body_of(&c).host_config.unwrap();
        assert!(host.devices.is_none() && host.device_requests.is_none());
    }
}
