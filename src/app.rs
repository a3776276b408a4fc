//! The program: parse the command line, resolve settings, run the sub-command, and turn the outcome into
//! an exit code and the Python agent's error line (`clearml_agent: ERROR: <message>`, exit 1).
//!
//! `daemon`, `execute`, `build` and `list` are dispatched to the `run_*` functions below; they are the
//! seams the worker, executor and API layers plug into. Everything here is synchronous until a command
//! that needs async builds its own tokio runtime.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::CommandFactory;

use crate::api::Client;
use crate::cli::{Cli, Command, ParseError, VERSION};
use crate::commands;
use crate::config::{self, CommandOptions, Resolved};
use crate::env::EnvVars;
use crate::{exec, plan, worker};

/// Entry point used by `src/main.rs`.
pub fn main() -> ExitCode {
    main_with_args(std::env::args_os())
}

/// [`main`] with an explicit argv (program name first).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::parse_from_args(args) {
        Ok(cli) => cli,
        Err(ParseError::Clap(e)) => {
            // clap prints usage errors (exit 2) and --help (exit 0) itself.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
        Err(ParseError::Argv(e)) => {
            eprintln!("clearml-agent: error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // mirrors __main__.py: run_command -> command_class.error(e): one line, exit 1; never a backtrace.
            eprintln!("clearml_agent: ERROR: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Run a parsed command line; returns the process exit status.
pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    if cli.version {
        println!("CLEARML-AGENT version {VERSION}");
        return Ok(0);
    }
    let Some(command) = &cli.command else {
        // mirrors __main__.py: no sub-command prints the help and exits 0
        let mut help = Cli::command();
        help.print_help().context("cannot print help")?;
        println!();
        return Ok(0);
    };
    let unsupported = cli.unsupported_flags();
    if let Some(flag) = unsupported.first() {
        bail!("`{flag}` is not supported yet by this agent");
    }

    if let Command::Init(args) = command {
        // init needs no configuration (the file may not exist yet).
        let home = config::home_from_process();
        let target = commands::init::target_file(cli.config_file.as_deref(), home.as_deref())?;
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut out = std::io::stdout();
        let outcome = commands::init::run(
            args,
            &target,
            &mut input,
            &mut out,
            &commands::init::verify_with_server,
        )?;
        return Ok(match outcome {
            commands::init::InitOutcome::AlreadyExists(_) if args.non_interactive => {
                bail!(
                    "configuration file {} already exists and is not empty; edit it or remove it first",
                    target.display()
                )
            }
            _ => 0,
        });
    }

    let resolved = config::resolve_from_process(cli)?;
    init_tracing(
        resolved.settings.debug,
        resolved.settings.process.get(EnvVars::RUST_LOG),
    );

    match &resolved.settings.command {
        CommandOptions::Config => {
            let mut out = std::io::stdout().lock();
            commands::config::run(&resolved, &mut out)
                .context("cannot write to standard output")?;
            out.flush().ok();
            Ok(0)
        }
        CommandOptions::Daemon(_) => run_daemon(&resolved),
        CommandOptions::Slurm(_) => run_slurm(&resolved),
        CommandOptions::Execute(_) => run_execute(&resolved),
        CommandOptions::Build(_) => run_build(&resolved),
        CommandOptions::List => run_list(&resolved),
        CommandOptions::Help | CommandOptions::Init(_) | CommandOptions::InstallBootstrap => Ok(0),
    }
}

/// Agent logging on stderr: DEBUG with `--debug`/`agent.debug`, else INFO (`RUST_LOG` overrides).
fn init_tracing(debug: bool, rust_log: Option<&str>) {
    let default = if debug { "debug" } else { "info" };
    let filter = rust_log
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// A multi-threaded runtime for the commands that talk to the server or supervise processes.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `clearml-agent daemon`.
pub fn run_daemon(resolved: &Resolved) -> anyhow::Result<u8> {
    let CommandOptions::Daemon(opts) = &resolved.settings.command else {
        bail!("internal error: run_daemon called for another command");
    };
    let client_cfg = plan::client_config(&resolved.settings)?;
    let cfg = plan::daemon_config(&resolved.settings, &resolved.tree, opts)?;
    // mirrors Worker.daemon: `--stop` and `--status` act and return before any registration.
    if let Some(ids) = &opts.stop {
        return worker::control::stop_daemon(&cfg, ids, opts.dynamic_gpus);
    }
    if opts.status {
        return runtime()?.block_on(async {
            worker::control::daemon_status(&Client::new(client_cfg)?, &cfg).await
        });
    }
    refuse_unsupported(resolved)?;
    print_unsupported(resolved);
    if let (Some(requested), Some(devices)) = (cfg.visible_gpus.as_deref(), crate::gpu::devices()) {
        crate::gpu::check_requested(requested, &devices).map_err(anyhow::Error::msg)?;
    }
    // mirrors Worker.daemon: `--detached` only applies without `--foreground`. The fork happens
    // here, while the process has one thread; the runtime and the registration come after it.
    if opts.detached && !opts.foreground {
        worker::control::refuse_duplicate(&cfg)?;
        worker::detach::detach(&cfg.temp_dir)?;
    }
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let client = Client::new(client_cfg)?;
        let shutdown = worker::control::shutdown_signal()?;
        let drain = worker::control::drain_signal(&shutdown)?;
        worker::run(cfg, client, shutdown, drain).await
    });
    // Blocking work left behind by a stopped task's preparation (docker mode's host-side lock
    // wait) does not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(0)
}

/// `clearml-agent slurm`: the Slurm glue, a worker like the daemon (same registry, `--stop`,
/// signals and `--detached`).
pub fn run_slurm(resolved: &Resolved) -> anyhow::Result<u8> {
    let CommandOptions::Slurm(opts) = &resolved.settings.command else {
        bail!("internal error: run_slurm called for another command");
    };
    let client_cfg = plan::client_config(&resolved.settings)?;
    let cfg = plan::slurm_config(&resolved.settings, opts)?;
    let registry = worker::registry::Registry::new(&cfg.registry_dir);
    if let Some(ids) = &opts.stop {
        return worker::control::stop_slurm(
            &registry,
            cfg.worker_id.as_deref(),
            &cfg.worker_name,
            ids,
        );
    }
    if opts.detached && !opts.foreground {
        worker::detach::detach(&plan::temp_dir(&resolved.settings))?;
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let client = Client::new(client_cfg)?;
        let shutdown = worker::control::shutdown_signal()?;
        crate::slurm::run(cfg, client, shutdown).await
    })?;
    Ok(0)
}

/// Settings this agent refuses to run with rather than do something else silently.
fn refuse_unsupported(resolved: &Resolved) -> anyhow::Result<()> {
    if resolved.settings.agent.package_manager.type_ == config::settings::PackageManagerType::Conda
    {
        bail!(
            "agent.package_manager.type: conda is not supported by this agent (it would not create conda environments); set it to pip or uv"
        );
    }
    Ok(())
}

/// At the start of a command that runs tasks: one warning line per setting that is set and has
/// no effect here (config::unsupported), then the `files {}` section written on this host
/// (mirrors Session init: apply_files, with `agent.apply_files`).
fn print_unsupported(resolved: &Resolved) {
    for line in &resolved.warnings {
        println!("{line}");
    }
    if resolved.settings.agent.apply_files {
        for line in config::files::apply(&resolved.settings.files) {
            println!("{line}");
        }
    }
}

/// `clearml-agent execute`.
pub fn run_execute(resolved: &Resolved) -> anyhow::Result<u8> {
    let CommandOptions::Execute(opts) = &resolved.settings.command else {
        bail!("internal error: run_execute called for another command");
    };
    // A daemon's task process (`--disable-monitoring`) would repeat them in every task log.
    refuse_unsupported(resolved)?;
    if !opts.disable_monitoring {
        print_unsupported(resolved);
    }
    let client_cfg = plan::client_config(&resolved.settings)?;
    let mut exec_cfg = plan::execute_config(&resolved.settings, opts);
    let registration = monitored_identity(resolved, opts, &mut exec_cfg)?;
    if let Some(spec) = &opts.docker {
        return run_execute_docker(resolved, opts, spec, exec_cfg, registration);
    }
    let rt = runtime()?;
    if opts.disable_monitoring {
        // The pipeline ends by exec'ing the task; it only returns on failure.
        return rt.block_on(async move {
            let client = Client::new(client_cfg)?;
            match exec::task::execute(&client, &exec_cfg).await {
                Ok(never) => match never {},
                Err(e) => Err(e),
            }
        });
    }
    // Monitored: this process supervises `execute --disable-monitoring` as its child, as the
    // daemon does for each task (mirrors Worker.execute with --full-monitoring).
    let tree = resolved.tree.clone();
    let sup = plan::execute_supervise_config(&resolved.settings, opts);
    let report_cfg = plan::execute_report_config(&resolved.settings, opts, &exec_cfg.worker_id);
    // mirrors Worker.execute: --full-monitoring runs the task as the daemon does and returns 0
    // unless CLEARML_AGENT_PROPAGATE_EXITCODE is set; plain monitoring returns the task's code.
    let propagate = !opts.full_monitoring || resolved.settings.agent.propagate_exitcode;
    let venvs_dir = resolved.settings.agent.venvs_dir.clone();
    rt.block_on(async move {
        let client = Client::new(client_cfg)?;
        let shutdown = worker::control::shutdown_signal()?;
        let ending =
            worker::one_task::run_one(&client, &exec_cfg, Some(report_cfg), |task_id| async {
                // A registry slot has its own venvs folder, as the daemon's slots do.
                let child_tree = match &registration {
                    Some(reg) => config::slot_tree(&tree, &venvs_dir, reg.slot),
                    None => tree.clone(),
                };
                let child_config = worker::ChildConfig::write(&sup.spill_dir, &child_tree)?;
                // mirrors Worker.execute: the child gets the worker flags (`-O`, `--log-level`) and
                // `--standalone-mode`.
                let mut extra = plan::child_worker_args(&opts.worker);
                if opts.standalone_mode {
                    extra.push("--standalone-mode".into());
                }
                let args = worker::execute_args(
                    &child_config.path,
                    worker::ChildMonitoring::Disabled,
                    &extra,
                    &task_id,
                );
                let mut env = exec_cfg.base_env.clone();
                env.insert(
                    EnvVars::CLEARML_WORKER_ID.into(),
                    exec_cfg.worker_id.clone(),
                );
                let launch = exec::supervise::Launch {
                    task_id,
                    worker_id: exec_cfg.worker_id.clone(),
                    program: std::env::current_exe().context("cannot find this program's path")?,
                    args,
                    env,
                    cwd: None,
                    pulled_from: None,
                };
                Ok(exec::supervise::run_task(&client, &sup, launch, shutdown).await)
            })
            .await?;
        drop(registration);
        // mirrors Worker.execute: the task's exit code is the process's exit status.
        Ok(ending.exit_status(propagate))
    })
}

/// `--full-monitoring` takes a worker id as the daemon does (a registry slot), held to the end;
/// a service of a daemon finds its id and slot already held by the daemon (which also wrote its
/// configuration). Sets `exec_cfg.worker_id`; `None` when nothing is to be held here.
fn monitored_identity(
    resolved: &Resolved,
    opts: &config::ExecuteOptions,
    exec_cfg: &mut exec::task::ExecuteConfig,
) -> anyhow::Result<Option<worker::registry::Registration>> {
    if !opts.full_monitoring || opts.disable_monitoring {
        return Ok(None);
    }
    let (fixed, name, dir) = plan::full_monitoring_identity(&resolved.settings, opts);
    let registry = worker::registry::Registry::new(&dir);
    Ok(match fixed {
        Some(id) if registry.held_by_parent(&id) => {
            exec_cfg.worker_id = id;
            None
        }
        fixed => {
            let reg = registry.register(fixed.as_deref(), &name, false)?;
            exec_cfg.worker_id = reg.worker_id.clone();
            Some(reg)
        }
    })
}

/// `clearml-agent execute --id T --docker [image [args]]`: this process supervises the task's
/// container as the daemon does (mirrors Worker.execute with --docker: it runs `docker run`).
fn run_execute_docker(
    resolved: &Resolved,
    opts: &config::ExecuteOptions,
    spec: &config::DockerSpec,
    exec_cfg: exec::task::ExecuteConfig,
    registration: Option<worker::registry::Registration>,
) -> anyhow::Result<u8> {
    let client_cfg = plan::client_config(&resolved.settings)?;
    let mut docker_cfg = plan::docker_config(&resolved.settings, spec, &opts.worker);
    let sup = plan::execute_supervise_config(&resolved.settings, opts);
    let tree = resolved.tree.clone();
    let propagate = resolved.settings.agent.propagate_exitcode;
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let engine = crate::docker::Engine::connect().await?;
        if let Some(warning) = engine
            .cpu_only_fallback(&mut docker_cfg, crate::gpu::devices().as_deref())
            .await
        {
            println!("{warning}");
        }
        let client = Client::new(client_cfg)?;
        let shutdown = worker::control::shutdown_signal()?;
        // Monitored (a service, or `--full-monitoring`): report as a worker running the task,
        // unregister at the end, as the venv path does.
        let report = opts
            .full_monitoring
            .then(|| plan::execute_report_config(&resolved.settings, opts, &exec_cfg.worker_id));
        let ending = worker::one_task::run_one(&client, &exec_cfg, report, |task_id| async {
            let child_config = worker::ChildConfig::write(
                &sup.spill_dir,
                &crate::docker::child_config::container_config(&tree),
            )?;
            // A daemon's service: its container is labelled with the daemon's id, so a restarted
            // daemon removes it (the daemon runs `docker run` itself in the Python agent).
            let parent_worker_id = exec_cfg
                .base_env
                .get(EnvVars::CLEARML_AGENT_PARENT_WORKER_ID)
                .filter(|id| !id.is_empty())
                .cloned()
                .unwrap_or_else(|| exec_cfg.worker_id.clone());
            let job = crate::docker::run::ContainerJob {
                task_id,
                worker_id: exec_cfg.worker_id.clone(),
                parent_worker_id,
                config_file: child_config.path.clone(),
                pulled_from: None,
                worker_tags: Vec::new(),
                host_env: exec_cfg.base_env.clone(),
                build: false,
            };
            Ok(
                crate::docker::run::run_task(&client, &sup, &docker_cfg, &engine, job, shutdown)
                    .await,
            )
        })
        .await?;
        drop(registration);
        // mirrors Worker.execute: with --docker the run ends like --full-monitoring, 0 unless
        // CLEARML_AGENT_PROPAGATE_EXITCODE asks for the task's code.
        Ok(ending.exit_status(propagate))
    });
    // As in `run_daemon`: a stopped preparation's blocking work does not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// `clearml-agent build`.
pub fn run_build(resolved: &Resolved) -> anyhow::Result<u8> {
    let CommandOptions::Build(opts) = &resolved.settings.command else {
        bail!("internal error: run_build called for another command");
    };
    refuse_unsupported(resolved)?;
    print_unsupported(resolved);
    let client_cfg = plan::client_config(&resolved.settings)?;
    if let Some(spec) = &opts.docker {
        let docker_cfg = plan::docker_config(&resolved.settings, spec, &opts.worker);
        let build_cfg = plan::build_config(&resolved.settings, opts);
        let target = opts.target.clone();
        let force = opts.force_docker;
        return runtime()?.block_on(async move {
            let client = Client::new(client_cfg)?;
            crate::docker::build::build(&client, &docker_cfg, &build_cfg, target, force).await?;
            Ok(0)
        });
    }
    let build_cfg = plan::build_config(&resolved.settings, opts);
    runtime()?.block_on(async move {
        let client = Client::new(client_cfg)?;
        exec::task::build(&client, &build_cfg).await?;
        Ok(0)
    })
}

/// `clearml-agent list`.
pub fn run_list(resolved: &Resolved) -> anyhow::Result<u8> {
    let client_cfg = plan::client_config(&resolved.settings)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let client = Client::new(client_cfg)?;
        let mut out = std::io::stdout();
        commands::list::list(&client, &mut out).await
    })?;
    Ok(0)
}
