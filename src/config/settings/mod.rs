//! Typed settings: the merged configuration tree, environment overrides and command-line flags turned into
//! plain structs, once. Every key the agent reads is listed here with its Python default; invalid values
//! fail with a one-line error naming the key, the file and what is expected.
//!
//! This file owns the *meaning* of keys; where they come from (files, layering) is `config/mod.rs`.
//! The sections are read in `api.rs`, `agent.rs` and `command.rs`, with `reader.rs`'s typed
//! reads; `overrides.rs` writes the environment and the command line into the tree first.

mod agent;
mod api;
mod command;
mod overrides;
mod reader;

pub use agent::*;
pub use api::*;
pub use command::*;
pub(crate) use overrides::{apply_cli_overrides, apply_derived, apply_env_overrides};
pub use reader::shell_split;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Error, expand_path};
use crate::cli::Cli;
use crate::env::EnvVars;
use reader::Reader;

/// Everything the agent needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `api.*`: where the server is and how to talk to it.
    pub api: ApiSettings,
    /// `agent.*`: how to run tasks.
    pub agent: AgentSettings,
    /// `sdk.*` keys the agent itself uses.
    pub sdk: SdkSettings,
    /// Top-level `environment {}`: variables exported at start-up (values stringified as Python does).
    pub environment: Vec<(String, String)>,
    /// Top-level `files {}`: files written at start-up.
    pub files: Vec<ConfigFileSpec>,
    /// `--debug` or `agent.debug`.
    pub debug: bool,
    /// The configuration file in use (`--config-file`, `CLEARML_CONFIG_FILE` or `~/clearml.conf`).
    pub config_file: Option<PathBuf>,
    /// The sub-command and its typed options.
    pub command: CommandOptions,
    /// The agent process's environment, captured once with the settings (what task processes
    /// start from; nothing later reads the process environment).
    pub process: ProcessEnv,
}

/// The process environment as the agent started with it.
#[derive(Debug, Clone, Default)]
pub struct ProcessEnv {
    /// Every variable.
    pub vars: std::collections::BTreeMap<String, String>,
    /// `HOME` (see [`ProcessEnv::home_or_root`]).
    home: Option<PathBuf>,
    /// The system's temporary folder (`TMPDIR`, else `/tmp`).
    pub temp_dir: PathBuf,
}

impl ProcessEnv {
    /// The environment of this process, read now.
    pub fn capture() -> ProcessEnv {
        ProcessEnv {
            vars: std::env::vars().collect(),
            home: std::env::var_os(EnvVars::HOME).map(PathBuf::from),
            temp_dir: std::env::temp_dir(),
        }
    }

    /// A variable, when set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `HOME`, else `/`.
    pub fn home_or_root(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from("/"))
    }
}

impl Settings {
    /// Type the merged tree, adding env-only variables and the command-line intent.
    pub(crate) fn from_tree(
        tree: &Value,
        cli: &Cli,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
        origin: &str,
    ) -> Result<Settings, Error> {
        let r = Reader {
            tree,
            origin,
            home,
            env,
        };
        let api = api_settings(&r, env)?;
        let agent = agent_settings(&r, env, worker_args(cli))?;
        let sdk = SdkSettings {
            cache_dir: r.path("sdk.storage.cache.default_base_dir", "~/.clearml/cache")?,
            default_output_uri: r.opt_string("sdk.development.default_output_uri")?,
        };
        let environment = environment_section(&r)?;
        let files = files_section(&r)?;
        let debug = cli.debug || r.bool("agent.debug", false)?;
        let command = command_options(cli, &agent, env, &r)?;
        Ok(Settings {
            api,
            agent,
            sdk,
            environment,
            files,
            debug,
            config_file: None,
            command,
            process: ProcessEnv::default(),
        })
    }
}
