//! The command line: clap definitions of every sub-command and flag of clearml-agent 3.0.3, plus the two
//! argv rewrites argparse did for free (`@file` argument files and the free-form `--docker IMAGE ARGS...`).
//!
//! This module only parses. Turning flags into typed intent (GPU specs, docker image and arguments, polling
//! interval) happens once in `config::resolve`; running anything happens in `app`.
//!
//! The flag set mirrors `clearml_agent/interface/base.py` (top level) and `clearml_agent/interface/worker.py`
//! (sub-commands). Help texts are our own.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Version of this agent.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the Python clearml-agent whose behaviour, flags and files this agent reproduces.
pub const COMPATIBLE_VERSION: &str = "3.0.3";

/// Banner printed above the help, as the Python agent does.
pub const HEADER: &str = "CLEARML-AGENT AI Orchestration DevOps";

/// Top-level command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "clearml-agent",
    about = "Run ClearML tasks from queues on this machine (drop-in for the Python clearml-agent)",
    before_help = HEADER,
    disable_version_flag = true,
    disable_help_subcommand = true,
    infer_long_args = true,
    // `@file` expansion is done by `parse_from` (argparse semantics: one argument per line).
)]
pub struct Cli {
    /// Print `CLEARML-AGENT version <version>` and exit.
    #[arg(long)]
    pub version: bool,

    /// Configuration file to use instead of ~/clearml.conf (also exported to tasks as CLEARML_CONFIG_FILE).
    #[arg(long, value_name = "CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Verbose agent logging; passed on to child `execute` processes.
    #[arg(short = 'd', long)]
    pub debug: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands, in the order the Python agent lists them.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Set up the environment of one task and run it
    Execute(ExecuteArgs),
    /// Build a task's environment (venv, code, packages) without running it; for debugging
    Build(BuildArgs),
    /// Show the workers known to the server
    List,
    /// Run the agent: pull tasks from queues and execute them
    Daemon(DaemonArgs),
    /// Run the Slurm glue: pull tasks from queues and submit each as a Slurm batch job
    Slurm(SlurmArgs),
    /// Print the resolved configuration (never contacts the server)
    Config,
    /// Write ~/clearml.conf, interactively or from flags
    Init(InitArgs),
    /// Install the clearml-agent-bootstrap package (not supported by this agent)
    #[command(name = "install-bootstrap")]
    InstallBootstrap(InstallBootstrapArgs),
}

/// SDK log levels accepted by `--log-level` (case-insensitive, as argparse upper-cased them first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// The name as the SDK expects it in `CLEARML_LOG_LEVEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }
}

/// Flags shared by `daemon`, `execute` and `build` (Python's `WORKER_ARGS`).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Python optimisation level passed to the task's interpreter (-O, -OO).
    #[arg(short = 'O', action = ArgAction::Count)]
    pub optimization: u8,

    /// Git user name for repository access (accepted for compatibility; use agent.git_user).
    #[arg(long)]
    pub git_user: Option<String>,

    /// Git password or personal access token (accepted for compatibility; use agent.git_pass).
    #[arg(long)]
    pub git_pass: Option<String>,

    /// Log level of the SDK inside the task.
    #[arg(long, value_enum, ignore_case = true, default_value = "INFO")]
    pub log_level: LogLevel,

    /// GPUs this agent may use: `0`, `0,1`, `all`, MIG slices `0:1`, or a range `0-3` (with --dynamic-gpus).
    #[arg(long, help_heading = "Docker support")]
    pub gpus: Option<String>,

    /// Hide all GPUs from tasks.
    #[arg(long, help_heading = "Docker support")]
    pub cpu_only: bool,
}

/// `clearml-agent daemon` flags (Python's `DAEMON_ARGS`).
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// Seconds between queue polls when idle; at least 5 (CLEARML_AGENT_QUEUE_POLL_FREQ_SEC overrides).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
    pub polling_interval: i64,

    /// Stay attached to the terminal and print everything there.
    #[arg(long)]
    pub foreground: bool,

    /// Queues (names or ids) to pull from; the first has the highest priority.
    #[arg(long = "queue", num_args = 1.., value_name = "QUEUES")]
    pub queues: Vec<String>,

    /// Pull from the queues round-robin instead of by priority.
    #[arg(long)]
    pub order_fairness: bool,

    /// Assume everything is installed: no venv, no clone, no package installation.
    #[arg(long)]
    pub standalone_mode: bool,

    /// Run many long-lived tasks at once (bare flag = no limit).
    #[arg(long, num_args = 0..=1, default_missing_value = "-1", allow_negative_numbers = true)]
    pub services_mode: Option<i64>,

    /// Tags added to the status reports of workers running a task.
    #[arg(long, num_args = 1..)]
    pub child_report_tags: Option<Vec<String>>,

    /// Create the queues that do not exist yet.
    #[arg(long)]
    pub create_queue: bool,

    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detached: bool,

    /// Stop a running agent started with the same arguments, or the given local worker ids.
    #[arg(long, num_args = 0.., value_name = "WORKER_ID")]
    pub stop: Option<Vec<String>>,

    /// Allocate GPUs per task from queue settings (`--queue name=N`).
    #[arg(long)]
    pub dynamic_gpus: bool,

    /// Working hours, e.g. "17-20 TUE".
    #[arg(long, num_args = 0..)]
    pub uptime: Option<Vec<String>>,

    /// Non-working hours, e.g. "09-13 TUE".
    #[arg(long, num_args = 0..)]
    pub downtime: Option<Vec<String>>,

    /// Print the worker's schedule, forced state and queues, then exit.
    #[arg(long)]
    pub status: bool,

    /// Warn when the installed clearml-agent-bootstrap package is outdated.
    #[arg(long)]
    pub check_bootstrap: bool,

    /// Run each task with its owner's credentials (ClearML Enterprise).
    #[arg(long)]
    pub use_owner_token: bool,

    /// Like --docker, with a podman-compatible command line.
    #[arg(long, num_args = 0.., value_name = "IMAGE [ARGS]", help_heading = "Docker support")]
    pub podman: Option<Vec<String>>,

    /// Run tasks in containers: optional image and `docker run` arguments (default agent.default_docker).
    #[arg(long, num_args = 0.., value_name = "IMAGE [ARGS]", help_heading = "Docker support")]
    pub docker: Option<Vec<String>>,

    /// Install this agent's own version inside containers.
    #[arg(long, help_heading = "Docker support")]
    pub force_current_version: bool,

    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// `clearml-agent slurm` flags: the glue that turns queued tasks into Slurm batch jobs.
/// Resources, the job cap and the poll interval come from `agent.slurm` in clearml.conf.
#[derive(Debug, Clone, Args)]
pub struct SlurmArgs {
    /// Queues (names or ids) to pull from; the first has the highest priority.
    #[arg(long = "queue", num_args = 1.., value_name = "QUEUES")]
    pub queues: Vec<String>,

    /// Pull from the queues round-robin instead of by priority.
    #[arg(long)]
    pub order_fairness: bool,

    /// Create the queues that do not exist yet.
    #[arg(long)]
    pub create_queue: bool,

    /// Stay attached to the terminal and print every poll.
    #[arg(long)]
    pub foreground: bool,

    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detached: bool,

    /// Stop a running glue started with the same arguments, or the given local worker ids.
    #[arg(long, num_args = 0.., value_name = "WORKER_ID")]
    pub stop: Option<Vec<String>>,

    /// Jobs run `execute --docker`: optional image and `docker run` arguments (nodes need Docker).
    #[arg(long, num_args = 0.., value_name = "IMAGE [ARGS]")]
    pub docker: Option<Vec<String>>,
}

/// `clearml-agent execute` flags.
#[derive(Debug, Clone, Args)]
pub struct ExecuteArgs {
    /// Task id (or name) to run.
    #[arg(long = "id", value_name = "TASK_ID")]
    pub task_id: String,

    /// Write the task's output to this file.
    #[arg(long)]
    pub log_file: Option<PathBuf>,

    /// No log shipping and no resource monitoring (the daemon does them).
    #[arg(long)]
    pub disable_monitoring: bool,

    /// Act as a one-task daemon: register a worker, ship logs, watch for aborts.
    #[arg(long)]
    pub full_monitoring: bool,

    /// Fail unless the task is currently enqueued.
    #[arg(long)]
    pub require_queue: bool,

    /// Assume everything is installed: no venv, no clone, no package installation.
    #[arg(long)]
    pub standalone_mode: bool,

    /// Run the task in a container: optional image and `docker run` arguments.
    #[arg(long, num_args = 0.., value_name = "IMAGE [ARGS]")]
    pub docker: Option<Vec<String>>,

    /// Clone the task first and run the clone.
    #[arg(long)]
    pub clone: bool,

    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// What `build --docker` puts in the image's ENTRYPOINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EntryPoint {
    /// Run the same task when the container starts.
    #[value(name = "reuse_task")]
    ReuseTask,
    /// Clone the task and run the clone when the container starts.
    #[value(name = "clone_task")]
    CloneTask,
}

/// `clearml-agent build` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Task id (or name) to build.
    #[arg(long = "id", value_name = "TASK_ID")]
    pub task_id: String,

    /// Directory for the venv and code, or (with --docker) the image name to create.
    #[arg(long)]
    pub target: Option<String>,

    /// Install packages into the system interpreter and use system site packages.
    #[arg(long)]
    pub install_globally: bool,

    /// Build inside a container and commit it as an image.
    #[arg(long, num_args = 0.., value_name = "IMAGE [ARGS]")]
    pub docker: Option<Vec<String>>,

    /// Ignore the task's container settings; use --docker or the default image.
    #[arg(long)]
    pub force_docker: bool,

    /// Python version for the venv.
    #[arg(long)]
    pub python_version: Option<String>,

    /// ENTRYPOINT of the built image.
    #[arg(long, value_enum)]
    pub entry_point: Option<EntryPoint>,

    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// `clearml-agent init` flags. The Python agent has none (it is only interactive); these are ours, for
/// scripted setups. With `--api-host`, `--access-key` and `--secret-key` nothing is asked.
#[derive(Debug, Clone, Default, Args)]
pub struct InitArgs {
    /// API server URL, e.g. http://localhost:8008.
    #[arg(long, value_name = "URL")]
    pub api_host: Option<String>,

    /// Web application URL (derived from the API host when omitted).
    #[arg(long, value_name = "URL")]
    pub web_host: Option<String>,

    /// File server URL (derived from the web host when omitted).
    #[arg(long, value_name = "URL")]
    pub files_host: Option<String>,

    /// API access key.
    #[arg(long)]
    pub access_key: Option<String>,

    /// API secret key.
    #[arg(long)]
    pub secret_key: Option<String>,

    /// Git user name written to agent.git_user.
    #[arg(long)]
    pub git_user: Option<String>,

    /// Git password or token written to agent.git_pass.
    #[arg(long)]
    pub git_pass: Option<String>,

    /// Never prompt: fail if a required value is missing.
    #[arg(long)]
    pub non_interactive: bool,
}

/// `clearml-agent install-bootstrap` flags, accepted only to give a clear "not supported" error.
#[derive(Debug, Clone, Args)]
pub struct InstallBootstrapArgs {
    /// Show what would be installed.
    #[arg(long)]
    pub check: bool,
    /// Reinstall even when installed.
    #[arg(long)]
    pub force: bool,
    /// Release to install.
    #[arg(long = "version")]
    pub release: Option<String>,
    /// Install from a local wheel.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
}

/// Why the raw argv could not even be handed to clap.
#[derive(Debug, thiserror::Error)]
pub enum ArgvError {
    #[error("cannot read argument file {path}: {source}")]
    ArgFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

/// Either an argv problem or a clap error (which knows how to print itself and its exit code).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Argv(#[from] ArgvError),
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

impl Cli {
    /// Parse a full argv (program name first), with `@file` expansion and the `--docker` rewrite.
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut words: Vec<String> = Vec::new();
        for arg in args.into_iter() {
            let arg: OsString = arg.into();
            words.push(arg.into_string().map_err(ArgvError::NotUtf8)?);
        }
        let args = expand_arg_files(words, 0)?;
        let args = rewrite_container_values(args);
        Ok(Cli::try_parse_from(args)?)
    }

    /// Flags that parse but whose feature this agent does not have yet, in the spelling the user typed them.
    /// The command layer refuses to run when this is not empty, rather than silently ignoring them.
    pub fn unsupported_flags(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match &self.command {
            Some(Command::Daemon(d)) => {
                if d.use_owner_token {
                    out.push("--use-owner-token");
                }
                if d.podman.is_some() {
                    out.push("--podman");
                }
                // Python's --check-bootstrap only acts when the optional bootstrap package is installed;
                // this agent never has it, so the flag would be a silent no-op. Say so instead.
                if d.check_bootstrap {
                    out.push("--check-bootstrap");
                }
            }
            // The entry points run the agent inside the image, which this agent never installs
            // there (the built image's command runs the task instead).
            Some(Command::Build(b)) if b.entry_point.is_some() => out.push("build --entry-point"),
            Some(Command::InstallBootstrap(_)) => out.push("install-bootstrap"),
            _ => {}
        }
        out
    }
}

/// Expand `@path` arguments: each line of the file is one argument (argparse `fromfile_prefix_chars='@'`
/// with its default `convert_arg_line_to_args`). Files may reference further files.
fn expand_arg_files(args: Vec<String>, depth: usize) -> Result<Vec<String>, ArgvError> {
    let mut out = Vec::with_capacity(args.len());
    for (index, arg) in args.into_iter().enumerate() {
        // The program name is never an argument file.
        if (depth > 0 || index > 0) && arg.starts_with('@') && arg.len() > 1 {
            let path = &arg[1..];
            let text = std::fs::read_to_string(path).map_err(|source| ArgvError::ArgFile {
                path: path.to_string(),
                source,
            })?;
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if depth > 16 {
                return Err(ArgvError::ArgFile {
                    path: path.to_string(),
                    source: std::io::Error::other("argument files nest too deeply"),
                });
            }
            out.extend(expand_arg_files(lines, depth + 1)?);
        } else {
            out.push(arg);
        }
    }
    Ok(out)
}

/// Options whose values are free-form container words.
const CONTAINER_FLAGS: [&str; 2] = ["--docker", "--podman"];

/// Rewrite `--docker IMAGE ARG...` into `--docker=IMAGE --docker=ARG ...` so clap accepts container
/// arguments that look like flags (`--ipc=host`, `-v /a:/b`).
///
/// argparse (`nargs='*'`) stops a `--docker` value list at the first word that looks like an option and
/// rejects unknown ones. We stop at the first word that is one of the sub-command's own options (exact, an
/// unambiguous-or-not prefix of a long option as argparse abbreviations allow, or a known short option) and
/// keep everything else as a container word. Every command line argparse accepts therefore parses the same;
/// lines it rejected (`--docker img --ipc=host`) now work as users expect.
fn rewrite_container_values(args: Vec<String>) -> Vec<String> {
    let Some((sub_index, sub)) = find_subcommand(&args) else {
        return args;
    };
    let root = Cli::command();
    let Some(cmd) = root.find_subcommand(&sub) else {
        return args;
    };
    let longs: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .chain(["help".to_string()])
        .collect();
    let shorts: Vec<char> = cmd
        .get_arguments()
        .filter_map(|a| a.get_short())
        .chain(['h'])
        .collect();
    let is_option = |word: &str| -> bool {
        if word == "--" {
            return true;
        }
        if word.contains(' ') {
            return false;
        }
        if let Some(long) = word.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            return !name.is_empty() && longs.iter().any(|l| l.starts_with(name));
        }
        if let Some(short) = word.strip_prefix('-') {
            return short.chars().next().is_some_and(|c| shorts.contains(&c));
        }
        false
    };

    let mut out: Vec<String> = args[..=sub_index].to_vec();
    let mut rest = args[sub_index + 1..].iter().peekable();
    while let Some(word) = rest.next() {
        if word == "--" {
            out.push(word.clone());
            out.extend(rest.cloned());
            break;
        }
        if let Some(flag) = CONTAINER_FLAGS.iter().find(|f| **f == word) {
            let mut values = Vec::new();
            while let Some(next) = rest.peek() {
                if is_option(next) {
                    break;
                }
                values.push(format!("{flag}={next}"));
                rest.next();
            }
            if values.is_empty() {
                out.push(word.clone());
            } else {
                out.extend(values);
            }
        } else {
            out.push(word.clone());
        }
    }
    out
}

/// Index and name of the sub-command word, skipping top-level options (and `--config-file`'s value).
fn find_subcommand(args: &[String]) -> Option<(usize, String)> {
    let mut i = 1;
    while i < args.len() {
        let word = &args[i];
        if word == "--config-file" || word == "--config" || word == "--conf" {
            i += 2;
            continue;
        }
        if word.starts_with('-') {
            i += 1;
            continue;
        }
        return Some((i, word.clone()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        std::iter::once("clearml-agent".to_string())
            .chain(line.split_whitespace().map(str::to_string))
            .collect()
    }

    #[test]
    fn docker_words_stop_at_known_options() {
        let out =
            rewrite_container_values(argv("daemon --docker img --ipc=host -v /a:/b --queue q"));
        assert_eq!(
            out[1..],
            [
                "daemon",
                "--docker=img",
                "--docker=--ipc=host",
                "--docker=-v",
                "--docker=/a:/b",
                "--queue",
                "q"
            ]
        );
    }

    #[test]
    fn bare_docker_is_kept() {
        let out = rewrite_container_values(argv("execute --docker --id abc"));
        assert_eq!(out[1..], ["execute", "--docker", "--id", "abc"]);
    }

    #[test]
    fn abbreviated_option_ends_docker_words() {
        let out = rewrite_container_values(argv("daemon --docker img --que q"));
        assert_eq!(out[1..], ["daemon", "--docker=img", "--que", "q"]);
    }
}
