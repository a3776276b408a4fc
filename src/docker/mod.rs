//! Docker mode: the only module that talks to the Docker Engine (through bollard, never the
//! docker CLI). `mod.rs` owns the engine connection and the container operations the agent
//! needs (pull, create, attach, start, wait, stop, remove, reap); `args.rs` translates free-form
//! `docker run` arguments, `merge.rs` combines the agent's and the task's, `policy.rs` is the
//! untrusted-tasks policy, `env_file.rs` reads `--env-file`s, `credentials.rs` finds pull
//! credentials, `child_config.rs` is the
//! configuration the container reads, `script.rs` writes the script that runs inside the container,
//! `rocm.rs` passes AMD GPUs, `template.rs` resolves `${CLEARML_...}` templates and container names, and
//! `run.rs` runs one task in a container under supervision.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._get_docker_cmd / run_one_task (docker branch)

pub mod args;
pub mod build;
pub mod child_config;
pub mod credentials;
pub mod env_file;
pub mod merge;
pub mod policy;
pub mod ports;
pub mod rocm;
pub mod run;
pub mod script;
pub mod template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CommitContainerOptionsBuilder, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use crate::config::HideDockerEnvVars;
use crate::exec::git::GitOptions;

/// Label with the id of the worker that runs the container (mirrors `-l clearml-worker-id=`).
pub const LABEL_WORKER: &str = "clearml-worker-id";
/// Label with the id of the daemon that started it (mirrors `-l clearml-parent-worker-id=`).
pub const LABEL_PARENT_WORKER: &str = "clearml-parent-worker-id";
/// Label with the task id.
pub const LABEL_TASK: &str = "clearml-task-id";

/// Everything docker mode needs, resolved from settings before the runtime starts.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The agent's image: `--docker IMAGE`, else `CLEARML_DOCKER_IMAGE`, else
    /// `agent.default_docker.image`.
    pub default_image: String,
    /// The agent's `docker run` arguments (from `--docker IMAGE ARGS...` or the default).
    pub default_args: Vec<String>,
    /// `agent.default_docker.update_back_task`: write the default image back to the task.
    pub update_back_task: bool,
    /// `agent.disable_task_docker_override`: the task's own image is ignored.
    pub disable_task_override: bool,
    /// `agent.extra_docker_arguments`.
    pub extra_args: Vec<String>,
    /// How the agent's and the task's arguments combine (filters, forbidden and protected
    /// switches, `$VAR` expansion).
    pub arg_rules: merge::ArgRules,
    /// `agent.docker_args_allowed_port_range`: where taken published ports are moved.
    pub allowed_port_range: Option<(u16, u16)>,
    /// `CLEARML_AGENT_FORCE_HOST_MACHINE_IP`: the host address containers are told (else the
    /// machine's address on its default route).
    pub host_ip: Option<String>,
    /// `agent.extra_docker_shell_script` lines.
    pub extra_shell_script: Vec<String>,
    /// `agent.docker_preprocess_bash_script` lines, first in the container.
    pub preprocess_script: Vec<String>,
    /// `agent.docker_init_bash_script` lines, instead of the built-in system setup.
    pub init_script: Option<Vec<String>>,
    /// `agent.docker_install_opencv_libs`.
    pub install_opencv_libs: bool,
    /// Host apt cache (`agent.docker_apt_cache`) and where it goes inside
    /// (`docker_internal_mounts.apt_cache`).
    pub apt_cache: Option<(PathBuf, String)>,
    /// `agent.docker_force_pull`.
    pub force_pull: bool,
    /// `agent.package_manager.*` as the container's script installs with it.
    pub packages: Packages,
    /// `environment {}` of clearml.conf (with `agent.apply_environment`): variables of every
    /// task's container.
    pub environment: Vec<(String, String)>,
    /// `files {}` of clearml.conf (with `agent.apply_files`): written inside every container.
    pub files: Vec<crate::config::settings::ConfigFileSpec>,
    /// `agent.enable_task_env`: the task's `Environment` hyper-parameters become variables.
    pub enable_task_env: bool,
    /// The agent user's `~/.git-credentials` and `~/.gitconfig` that exist: mounted read-only
    /// and copied into the container's home (mirrors Worker._get_docker_cmd).
    pub git_credentials: Vec<PathBuf>,
    /// `CLEARML_AUTH_TOKEN` of the agent (a token-only login): passed to the container, whose
    /// configuration then has no key and secret to log in with.
    pub auth_token: Option<String>,
    /// A ROCm host's render nodes (`rocm::detect`): GPUs are passed as devices, not requested.
    pub rocm_render_nodes: Option<Vec<String>>,
    /// `CLEARML_AGENT_DOCKER_HOST_MOUNT` / `CLEARML_AGENT_K8S_HOST_MOUNT` (`node:pod`): the agent
    /// runs in a container whose `pod` folder is the engine host's `node` folder; the task's
    /// containers are siblings, so every folder the agent mounts must be named by its host path.
    pub host_mount: Option<(PathBuf, PathBuf)>,
    /// `agent.docker_container_name_format` and its `_fields` (see `template::container_name`).
    pub container_name_format: Option<String>,
    pub container_name_fields: Vec<(String, String)>,
    /// `agent.hide_docker_command_env_vars`.
    pub hide_env: HideDockerEnvVars,
    /// Host `~/.ssh`, mounted read-only at `ssh_ro_folder` and copied to `ssh_folder`; `None`
    /// when `agent.disable_ssh_mount` or when `ssh_auth_sock` is used instead.
    pub ssh_dir: Option<PathBuf>,
    /// `SSH_AUTH_SOCK` of the agent: the socket is mounted and the variable set inside.
    pub ssh_auth_sock: Option<String>,
    /// `agent.docker_internal_mounts.ssh_ro_folder` (`/.ssh`).
    pub ssh_ro_folder: String,
    /// `agent.docker_internal_mounts.ssh_folder` (`~/.ssh`).
    pub ssh_folder: String,
    /// Host pip cache (`agent.docker_pip_cache`) and where it goes inside
    /// (`docker_internal_mounts.pip_cache`).
    pub pip_cache: Option<(PathBuf, String)>,
    /// `agent.force_git_root_python_path`: the task's `PYTHONPATH` starts at the repository root.
    pub force_git_root_python_path: bool,
    /// The task's venv inside the container: `<docker_internal_mounts.venv_build>/task` (`~` is
    /// root's home; a cached venv is mounted there).
    pub venv_inside: String,
    /// Host poetry cache (`agent.docker_poetry_cache`) and where it goes inside
    /// (`docker_internal_mounts.poetry_cache`); mounted with `package_manager.type: poetry`.
    pub poetry_cache: Option<(PathBuf, String)>,
    /// Host SDK cache (`sdk.storage.cache.default_base_dir`) and its inside path
    /// (`docker_internal_mounts.sdk_cache`).
    pub sdk_cache: Option<(PathBuf, String)>,
    /// The folder in which each task gets a private folder (0700, random name) for its code on
    /// the host (mounted at the same path).
    pub work_dir: PathBuf,
    /// How the code is cloned on the host.
    pub git: GitOptions,
    /// `agent.docker_allow_host_repositories`: a task repository may be a host path.
    pub allow_host_repositories: bool,
    /// The effective `NVIDIA_VISIBLE_DEVICES` of this agent (`--gpus` / `--cpu-only`).
    pub visible_gpus: Option<String>,
    /// `agent.docker_skip_gpus_flag`: no device request, the variables only.
    pub skip_gpus_flag: bool,
    /// `--log-level` of the task's SDK.
    pub log_level: String,
    /// The text of the Docker client config (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`): its `auths` are the credentials of image pulls.
    pub registry_config: Option<String>,
    /// `agent.docker_use_activated_venv`.
    pub use_activated_venv: bool,
    /// `agent.venvs_cache.path`: venvs built in containers are kept there, keyed by image and
    /// requirements, and mounted into the next task that needs the same.
    pub venvs_cache: Option<PathBuf>,
    /// `CLEARML_AGENT_EXTRA_DOCKER_LABELS`: more `key=value` labels on every container.
    pub extra_labels: Vec<String>,
}

/// `agent.package_manager.*` for the container's installs (one decision path with venv mode:
/// `exec::requirements`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packages {
    /// `type: uv` (with `uv_version`, else the newest uv).
    pub uv: Option<Option<String>>,
    /// `pip_version`.
    pub pip_version: Vec<String>,
    /// `extra_index_url`, `extra_pip_install_flags`, `force_upgrade` as pip flags.
    pub flags: Vec<String>,
    /// `priority_*` and `post_*` packages.
    pub install_order: crate::exec::requirements::InstallOrder,
    pub force_repo_requirements_txt: bool,
    pub force_original_requirements: bool,
    /// How PyTorch requirements are resolved (an index probed from the host).
    pub pytorch: crate::exec::pytorch::TorchOptions,
    /// `type: poetry`: a repository with poetry files is installed with `poetry install`.
    pub poetry: bool,
    /// The uv sync and poetry settings.
    pub project: crate::exec::project_env::ProjectOptions,
}

/// The Python agent's defaults, with no image: what settings give when nothing is configured.
impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            default_image: String::new(),
            default_args: Vec::new(),
            update_back_task: true,
            disable_task_override: false,
            extra_args: Vec::new(),
            arg_rules: merge::ArgRules::default(),
            allowed_port_range: None,
            host_ip: None,
            extra_shell_script: Vec::new(),
            preprocess_script: Vec::new(),
            init_script: None,
            install_opencv_libs: true,
            apt_cache: None,
            force_pull: false,
            packages: Packages::default(),
            environment: Vec::new(),
            files: Vec::new(),
            enable_task_env: false,
            git_credentials: Vec::new(),
            auth_token: None,
            rocm_render_nodes: None,
            host_mount: None,
            container_name_format: None,
            container_name_fields: Vec::new(),
            hide_env: crate::config::HideDockerEnvVars {
                enabled: true,
                extra_keys: Vec::new(),
                parse_embedded_urls: true,
            },
            ssh_dir: None,
            ssh_auth_sock: None,
            ssh_ro_folder: "/.ssh".into(),
            ssh_folder: "~/.ssh".into(),
            pip_cache: None,
            poetry_cache: None,
            venv_inside: "/root/.clearml/venvs-builds/task".into(),
            force_git_root_python_path: false,
            sdk_cache: None,
            work_dir: PathBuf::from("/tmp"),
            git: GitOptions::default(),
            allow_host_repositories: false,
            visible_gpus: None,
            skip_gpus_flag: false,
            log_level: "INFO".into(),
            registry_config: None,
            use_activated_venv: true,
            venvs_cache: None,
            extra_labels: Vec::new(),
        }
    }
}

/// A problem with the Docker Engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker Engine ({0}); start dockerd or set DOCKER_HOST, or run without --docker"
    )]
    Unreachable(String),
    #[error("cannot pull the image {image}: {reason}")]
    Pull { image: String, reason: String },
    #[error("cannot copy the task's code into the container: {0}")]
    Upload(String),
    #[error("{what}: {source}")]
    Engine {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

fn engine(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |source| DockerError::Engine { what, source }
}

/// `registry:5000/name:tag` → (`registry:5000/name`, `tag`); no tag → `None`.
pub fn split_image_ref(image: &str) -> (&str, Option<&str>) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(at) => (
            &image[..last_slash + at],
            Some(&image[last_slash + at + 1..]),
        ),
        None => (image, None),
    }
}

/// A connection to the Docker Engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects through `DOCKER_HOST` or the local socket and checks that the engine answers.
    pub async fn connect() -> Result<Engine, DockerError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        Ok(Engine { docker })
    }

    /// The `ENV` of a local image's configuration (`NAME=value` entries); empty when the
    /// image cannot be inspected.
    pub async fn image_env(&self, image: &str) -> Vec<String> {
        self.docker
            .inspect_image(image)
            .await
            .ok()
            .and_then(|i| i.config)
            .and_then(|c| c.env)
            .unwrap_or_default()
    }

    /// True when the image is present locally.
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// Pulls `image` with `credentials`, reporting progress through `log` as `docker pull` does
    /// without a terminal: one line per layer and status change (`<layer>: Pull complete`), no
    /// byte counts.
    pub async fn pull(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), DockerError> {
        let (name, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, credentials);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let counting = info
                        .progress_detail
                        .as_ref()
                        .is_some_and(|p| p.current.is_some() || p.total.is_some());
                    match (info.status, info.id) {
                        (Some(_), _) if counting => {}
                        (Some(status), Some(id)) if !id.is_empty() => {
                            log(format!("{id}: {status}"))
                        }
                        (Some(status), _) => log(status),
                        (None, _) => {}
                    }
                }
                Err(e) => {
                    return Err(DockerError::Pull {
                        image: image.to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if !self.has_image(image).await {
            return Err(DockerError::Pull {
                image: image.to_string(),
                reason: "the engine reported no error but the image is not there".into(),
            });
        }
        Ok(())
    }

    /// Creates a container; returns its id.
    pub async fn create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        self.create_for(name, None, body).await
    }

    /// [`Engine::create`] for a `platform` (`--platform linux/arm64`), a query parameter.
    pub async fn create_for(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let mut opts = CreateContainerOptionsBuilder::default();
        if let Some(name) = name {
            opts = opts.name(name);
        }
        if let Some(platform) = platform {
            opts = opts.platform(platform);
        }
        let created = self
            .docker
            .create_container(Some(opts.build()), body)
            .await
            .map_err(engine("cannot create the container"))?;
        Ok(created.id)
    }

    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine("cannot start the container"))
    }

    /// Attaches to the container's output (stdout and stderr) before it starts: every byte it
    /// prints comes through this stream until it ends. Attached, a reader that falls behind slows
    /// the container's writes down (the engine copies to attached clients synchronously); the
    /// logs endpoint would not wait for it and, with a rotating log driver (`max-size`), bytes the
    /// reader had not reached yet would be gone. (`docker run` in the Python agent is attached
    /// too.) An engine error mid-stream is the last item.
    pub async fn attach(
        &self,
        id: &str,
    ) -> Result<
        impl Stream<Item = Result<Vec<u8>, DockerError>> + Send + Unpin + 'static,
        DockerError,
    > {
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(engine("cannot attach to the container's output"))?;
        // The input half is not used (no stdin); it lives as long as the output, so nothing of
        // the connection closes early.
        let input = attached.input;
        let mut failed = false;
        Ok(Box::pin(
            attached
                .output
                .take_while(move |item| {
                    let _connection = &input;
                    // Everything up to and including the first error, then the end.
                    let go = !failed;
                    failed |= item.is_err();
                    std::future::ready(go)
                })
                .map(|item| {
                    item.map(|o| o.into_bytes().to_vec())
                        .map_err(engine("lost the container's output"))
                }),
        ))
    }

    /// Copies the folder `dir` into the (created, not started) container at the same path, so
    /// that it is part of the container's own filesystem (and of an image committed from it).
    /// Symbolic links are copied as links.
    pub async fn upload_dir(&self, id: &str, dir: &Path) -> Result<(), DockerError> {
        let dir = dir.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut builder = tar::Builder::new(Vec::new());
            builder.follow_symlinks(false);
            let inside = dir.strip_prefix("/").unwrap_or(&dir);
            builder.append_dir_all(inside, &dir)?;
            builder.into_inner()
        })
        .await
        .map_err(|e| DockerError::Upload(e.to_string()))?
        .map_err(|e| DockerError::Upload(e.to_string()))?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(engine("cannot copy the task's code into the container"))
    }

    /// Commits the (exited) container as the image `target` (`name[:tag]`) whose command is
    /// `sh -c command` in `workdir`, with no entrypoint and the agent's labels emptied (a daemon
    /// must not take a container of that image for one of its own). Returns the image id.
    pub async fn commit(
        &self,
        id: &str,
        target: &str,
        command: &str,
        workdir: &str,
    ) -> Result<String, DockerError> {
        let (repo, tag) = split_image_ref(target);
        let changes = [
            "ENTRYPOINT []".to_string(),
            format!("CMD {}", serde_json::json!(["sh", "-c", command])),
            format!("WORKDIR {workdir}"),
            format!("LABEL {LABEL_WORKER}=\"\" {LABEL_PARENT_WORKER}=\"\" {LABEL_TASK}=\"\""),
        ]
        .join("\n");
        let mut opts = CommitContainerOptionsBuilder::default()
            .container(id)
            .repo(repo)
            .pause(true)
            .changes(&changes);
        if let Some(tag) = tag {
            opts = opts.tag(tag);
        }
        let committed = self
            .docker
            .commit_container(opts.build(), bollard::models::ContainerConfig::default())
            .await
            .map_err(engine(format!("cannot commit the container as {target}")))?;
        Ok(committed.id)
    }

    /// Waits for the container to exit; returns its exit code.
    pub async fn wait(&self, id: &str) -> Result<i32, DockerError> {
        let opts = WaitContainerOptionsBuilder::default().build();
        let mut stream = self.docker.wait_container(id, Some(opts));
        match stream.next().await {
            Some(Ok(resp)) => Ok(resp.status_code as i32),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                Ok(code as i32)
            }
            Some(Err(e)) => Err(DockerError::Engine {
                what: "lost track of the container".into(),
                source: e,
            }),
            None => Ok(-1),
        }
    }

    /// SIGTERM, then SIGKILL after `grace` (`docker stop -t`).
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), DockerError> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().max(1) as i32)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(DockerError::Engine {
                what: "cannot stop the container".into(),
                source: e,
            }),
        }
    }

    /// Removes the container (killing it if still running). A container already gone is fine.
    pub async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(DockerError::Engine {
                what: "cannot remove the container".into(),
                source: e,
            }),
        }
    }

    /// Ids of the containers (running or not) that carry `label=value`.
    pub async fn labelled(&self, label: &str, value: &str) -> Result<Vec<String>, DockerError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![format!("{label}={value}")]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine("cannot list containers"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Whether the engine lists an `nvidia` runtime (the NVIDIA Container Toolkit configured).
    pub async fn has_nvidia_runtime(&self) -> bool {
        self.docker
            .info()
            .await
            .ok()
            .and_then(|info| info.runtimes)
            .is_some_and(|r| r.contains_key("nvidia"))
    }

    /// Beyond the Python agent (which passes `--gpus all` and fails every task with "could not
    /// select device driver" on such a host): with no GPU chosen (`--gpus`, `--cpu-only`,
    /// `NVIDIA_VISIBLE_DEVICES`), no GPU visible on this machine (`gpus` from NVML) and no
    /// NVIDIA runtime in the engine, the containers run CPU-only. Returns the warning to print
    /// once at start when it falls back.
    pub async fn cpu_only_fallback(
        &self,
        cfg: &mut DockerConfig,
        gpus: Option<&[(u32, String)]>,
    ) -> Option<String> {
        if cfg.visible_gpus.is_some()
            || cfg.skip_gpus_flag
            || cfg.rocm_render_nodes.is_some()
            || gpus.is_some_and(|g| !g.is_empty())
            || self.has_nvidia_runtime().await
        {
            return None;
        }
        cfg.visible_gpus = Some("none".into());
        Some(
            "Warning: no GPU is visible on this machine and the Docker Engine has no NVIDIA runtime: \
             containers run CPU-only (pass --gpus to request GPUs, or --cpu-only to silence this)"
                .into(),
        )
    }

    /// Removes the containers a previous run of this worker left behind (an agent that crashed
    /// mid-task); returns how many. mirrors nothing in the Python agent, which leaves them.
    pub async fn reap(&self, worker_id: &str) -> Result<usize, DockerError> {
        let ids = self.labelled(LABEL_PARENT_WORKER, worker_id).await?;
        for id in &ids {
            self.remove(id).await?;
        }
        Ok(ids.len())
    }
}

/// `repo/name:tag` → (`repo/name`, `tag`); a digest or no tag gives `latest` / the digest.
fn split_tag(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_split() {
        assert_eq!(split_tag("python:3.11"), ("python", "3.11"));
        assert_eq!(split_tag("ubuntu"), ("ubuntu", "latest"));
        assert_eq!(
            split_tag("localhost:5000/team/img"),
            ("localhost:5000/team/img", "latest")
        );
        assert_eq!(
            split_tag("localhost:5000/img:v2"),
            ("localhost:5000/img", "v2")
        );
    }
}
