//! The command-line intent: which command runs, with which of its flags (settings that only a
//! command has, beside the sections every command reads).

use std::path::PathBuf;
use std::time::Duration;

use super::agent::*;
use super::reader::*;
use crate::cli::{Cli, Command, EntryPoint, InitArgs, LogLevel, WorkerArgs};
use crate::config::{Error, GpuSpec, first_env};
use crate::env::EnvVars;

/// The sub-command to run and its options.
#[derive(Debug, Clone)]
pub enum CommandOptions {
    /// No sub-command: print the help.
    Help,
    Daemon(DaemonOptions),
    /// `slurm`: the Slurm glue.
    Slurm(SlurmOptions),
    Execute(ExecuteOptions),
    Build(BuildOptions),
    List,
    Config,
    Init(InitArgs),
    InstallBootstrap,
}

/// Options shared by `daemon`, `execute` and `build`.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `-O` count.
    pub optimization: u8,
    /// `--log-level` (the task's SDK log level).
    pub log_level: LogLevel,
    /// `--gpus` / `--cpu-only`.
    pub gpus: GpuSpec,
    /// `--cpu-only` given.
    pub cpu_only: bool,
}

/// Container image and `docker run` arguments for docker mode.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    pub image: String,
    pub args: Vec<String>,
}

/// `daemon` options.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `--queue` (empty: the server's default queue).
    pub queues: Vec<String>,
    pub order_fairness: bool,
    pub worker: WorkerOptions,
    /// `--docker`/`--podman`: docker mode with this image and args.
    pub docker: Option<DockerSpec>,
    /// `--podman` given (podman-compatible `--gpus` format).
    pub podman: bool,
    pub foreground: bool,
    pub detached: bool,
    /// `--stop [WORKER_ID...]`: `Some(vec![])` = stop the agent with the same arguments.
    pub stop: Option<Vec<String>>,
    /// `max(--polling-interval, 5)`, unless `CLEARML_AGENT_QUEUE_POLL_FREQ_SEC` is set.
    pub polling_interval: Duration,
    /// The interval was set (`CLEARML_AGENT_QUEUE_POLL_FREQ_SEC`, or `--polling-interval` other
    /// than its default 5): the daemon keeps it; otherwise it paces its polls itself.
    pub polling_explicit: bool,
    pub create_queue: bool,
    pub status: bool,
    pub child_report_tags: Option<Vec<String>>,
    pub standalone_mode: bool,
    /// `--services-mode [N]` (-1 = unlimited).
    pub services_mode: Option<i64>,
    pub dynamic_gpus: bool,
    /// `--uptime` (else `agent.uptime`); `None` when neither.
    pub uptime: Option<Vec<String>>,
    /// `--downtime` (else `agent.downtime`).
    pub downtime: Option<Vec<String>>,
    pub check_bootstrap: bool,
    pub use_owner_token: bool,
    pub force_current_version: bool,
}

/// `slurm` options: the command line plus `agent.slurm` of the configuration.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub queues: Vec<String>,
    pub order_fairness: bool,
    pub create_queue: bool,
    pub foreground: bool,
    pub detached: bool,
    /// `--stop [WORKER_ID...]`.
    pub stop: Option<Vec<String>>,
    /// `--docker`: jobs run `execute --docker` with this image and args.
    pub docker: Option<DockerSpec>,
    /// `agent.slurm.*`.
    pub cluster: super::super::slurm::SlurmSettings,
}

/// `execute` options.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    pub task_id: String,
    pub log_file: Option<PathBuf>,
    pub disable_monitoring: bool,
    pub full_monitoring: bool,
    pub require_queue: bool,
    pub standalone_mode: bool,
    pub docker: Option<DockerSpec>,
    pub clone: bool,
    pub worker: WorkerOptions,
}

/// `build` options.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub task_id: String,
    pub target: Option<String>,
    pub install_globally: bool,
    pub docker: Option<DockerSpec>,
    pub force_docker: bool,
    pub python_version: Option<String>,
    pub entry_point: Option<EntryPoint>,
    pub worker: WorkerOptions,
}

pub(super) fn worker_args(cli: &Cli) -> Option<&WorkerArgs> {
    match &cli.command {
        Some(Command::Daemon(d)) => Some(&d.worker),
        Some(Command::Execute(e)) => Some(&e.worker),
        Some(Command::Build(b)) => Some(&b.worker),
        _ => None,
    }
}

pub(super) fn worker_options(
    w: &WorkerArgs,
    dynamic_gpus: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WorkerOptions, Error> {
    // mirrors session.py: Session.__init__ — --gpus is ignored inside Kubernetes (either variable set)
    let in_kubernetes = first_env(
        env,
        &[EnvVars::KUBERNETES_SERVICE_HOST, EnvVars::KUBERNETES_PORT],
    )
    .is_some();
    let requested = if in_kubernetes { &None } else { &w.gpus };
    let gpus = match (requested, w.cpu_only) {
        // mirrors session.py: --cpu-only sets "none" first, then --gpus (if any) overrides the variables.
        (Some(spec), _) => GpuSpec::parse(spec, dynamic_gpus).map_err(|problem| Error::Flag {
            flag: "--gpus",
            value: spec.clone(),
            expected: format!("{problem}; examples: --gpus 0, --gpus 0,1, --gpus all"),
        })?,
        (None, true) => GpuSpec::CpuOnly,
        (None, false) => GpuSpec::Unset,
    };
    Ok(WorkerOptions {
        optimization: w.optimization,
        log_level: w.log_level,
        gpus,
        cpu_only: w.cpu_only,
    })
}

/// `--docker` words → image and args (mirrors worker.py: Worker.get_docker_config_cmd).
pub(super) fn docker_spec(
    words: &Option<Vec<String>>,
    agent: &AgentSettings,
) -> Option<DockerSpec> {
    let words = words.as_ref()?;
    let Some(first) = words.first().filter(|w| !w.trim().is_empty()) else {
        return Some(DockerSpec {
            image: agent.default_docker.image.clone(),
            args: agent.default_docker.arguments.clone(),
        });
    };
    let (image, inline_args) = split_image(first);
    let args = if !inline_args.is_empty() {
        inline_args
    } else if words.len() > 1 {
        words[1..].to_vec()
    } else {
        agent.default_docker.arguments.clone()
    };
    Some(DockerSpec { image, args })
}

pub(super) fn command_options(
    cli: &Cli,
    agent: &AgentSettings,
    env: &dyn Fn(&str) -> Option<String>,
    r: &Reader<'_>,
) -> Result<CommandOptions, Error> {
    Ok(match &cli.command {
        None => CommandOptions::Help,
        Some(Command::Slurm(s)) => CommandOptions::Slurm(SlurmOptions {
            queues: s.queues.clone(),
            order_fairness: s.order_fairness,
            create_queue: s.create_queue,
            foreground: s.foreground,
            detached: s.detached,
            stop: s.stop.clone(),
            docker: docker_spec(&s.docker, agent),
            cluster: super::super::slurm::SlurmSettings::read(r.tree, r.origin, &|p| {
                super::expand_path(p, r.home, r.env)
            })?,
        }),
        Some(Command::Daemon(d)) => {
            // mirrors worker.py: Worker.daemon (podman implies docker; both with different values is an error)
            let podman = d.podman.is_some();
            let words = match (&d.docker, &d.podman) {
                (None, Some(p)) => Some(p.clone()),
                (Some(dk), Some(p)) if !dk.is_empty() && !p.is_empty() && dk != p => {
                    return Err(Error::Flag {
                        flag: "--podman",
                        value: p.join(" "),
                        expected: "differs from --docker; give the container with only one of --docker or --podman".into(),
                    });
                }
                (Some(dk), Some(p)) if dk.is_empty() => Some(p.clone()),
                (dk, _) => dk.clone(),
            };
            // mirrors worker.py: ENV_QUEUE_POLL_FREQ_SEC.get() or max(polling_interval, 5)
            let polling_interval = match agent.queue_poll_freq_sec.filter(|s| *s > 0.0) {
                Some(secs) => Duration::from_secs_f64(secs.min(MAX_SECONDS)),
                None if d.polling_interval as f64 > MAX_SECONDS => {
                    return Err(Error::Flag {
                        flag: "--polling-interval",
                        value: d.polling_interval.to_string(),
                        expected: SECONDS_EXPECTED.into(),
                    });
                }
                None => Duration::from_secs(d.polling_interval.max(5) as u64),
            };
            let non_empty = |v: &Vec<String>| !v.is_empty();
            CommandOptions::Daemon(DaemonOptions {
                queues: d.queues.clone(),
                order_fairness: d.order_fairness,
                worker: worker_options(&d.worker, d.dynamic_gpus, env)?,
                docker: docker_spec(&words, agent),
                podman,
                foreground: d.foreground,
                detached: d.detached,
                stop: d.stop.clone(),
                polling_interval,
                polling_explicit: agent.queue_poll_freq_sec.is_some_and(|s| s > 0.0)
                    || d.polling_interval != 5,
                create_queue: d.create_queue,
                status: d.status,
                child_report_tags: d.child_report_tags.clone(),
                standalone_mode: d.standalone_mode,
                services_mode: d.services_mode,
                dynamic_gpus: d.dynamic_gpus,
                uptime: d
                    .uptime
                    .clone()
                    .or_else(|| Some(agent.uptime.clone()).filter(non_empty)),
                downtime: d
                    .downtime
                    .clone()
                    .or_else(|| Some(agent.downtime.clone()).filter(non_empty)),
                check_bootstrap: d.check_bootstrap,
                use_owner_token: d.use_owner_token,
                force_current_version: d.force_current_version,
            })
        }
        Some(Command::Execute(e)) => CommandOptions::Execute(ExecuteOptions {
            task_id: e.task_id.clone(),
            log_file: e.log_file.clone(),
            disable_monitoring: e.disable_monitoring,
            full_monitoring: e.full_monitoring,
            require_queue: e.require_queue,
            standalone_mode: e.standalone_mode,
            docker: docker_spec(&e.docker, agent),
            clone: e.clone,
            worker: worker_options(&e.worker, false, env)?,
        }),
        Some(Command::Build(b)) => CommandOptions::Build(BuildOptions {
            task_id: b.task_id.clone(),
            target: b.target.clone(),
            install_globally: b.install_globally,
            docker: docker_spec(&b.docker, agent),
            force_docker: b.force_docker,
            python_version: b.python_version.clone(),
            entry_point: b.entry_point,
            worker: worker_options(&b.worker, false, env)?,
        }),
        Some(Command::List) => CommandOptions::List,
        Some(Command::Config) => CommandOptions::Config,
        Some(Command::Init(args)) => CommandOptions::Init(args.clone()),
        Some(Command::InstallBootstrap(_)) => CommandOptions::InstallBootstrap,
    })
}
