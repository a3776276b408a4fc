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

use crate::cli::{Cli, Command, ParseError, VERSION};
use crate::commands;
use crate::config::{self, CommandOptions, Resolved};

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
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
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
    init_tracing(resolved.settings.debug);

    match &resolved.settings.command {
        CommandOptions::Config => {
            let mut out = std::io::stdout().lock();
            commands::config::run(&resolved, &mut out)
                .context("cannot write to standard output")?;
            out.flush().ok();
            Ok(0)
        }
        CommandOptions::Daemon(_) => run_daemon(&resolved),
        CommandOptions::Execute(_) => run_execute(&resolved),
        CommandOptions::Build(_) => run_build(&resolved),
        CommandOptions::List => run_list(&resolved),
        CommandOptions::Help | CommandOptions::Init(_) | CommandOptions::InstallBootstrap => Ok(0),
    }
}

/// Agent logging on stderr: DEBUG with `--debug`/`agent.debug`, else INFO (`RUST_LOG` overrides).
fn init_tracing(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// A multi-threaded runtime for the commands that talk to the server or supervise processes.
#[allow(dead_code)]
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `clearml-agent daemon`.
pub fn run_daemon(_resolved: &Resolved) -> anyhow::Result<u8> {
    bail!("`daemon` is not implemented yet by this agent")
}

/// `clearml-agent execute`.
pub fn run_execute(_resolved: &Resolved) -> anyhow::Result<u8> {
    bail!("`execute` is not implemented yet by this agent")
}

/// `clearml-agent build`.
pub fn run_build(_resolved: &Resolved) -> anyhow::Result<u8> {
    bail!("`build` is not implemented yet by this agent")
}

/// `clearml-agent list`.
pub fn run_list(_resolved: &Resolved) -> anyhow::Result<u8> {
    bail!("`list` is not implemented yet by this agent")
}
