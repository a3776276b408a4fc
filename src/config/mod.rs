//! Configuration: `clearml.conf` parsing (pyhocon dialect) and settings resolution.
//!
//! [`resolve`] runs once per process and layers, later wins:
//! 1. built-in defaults ([`defaults`]),
//! 2. the configuration file: `--config-file`, else `CLEARML_CONFIG_FILE`/`TRAINS_CONFIG_FILE` (only that
//!    file), else `~/trains.conf` then `~/clearml.conf` (both, merged in that order),
//! 3. `CLEARML_AGENT__a__b=value` injections,
//! 4. the `CLEARML_*`/`TRAINS_*` variables that override keys (`CLEARML_API_HOST`, ...),
//! 5. command-line flags.
//!
//! The result is a plain typed [`Settings`] plus the merged tree (for `clearml-agent config` and the
//! configuration file handed to child processes). Nothing outside this module reads environment variables
//! or the tree. Mirrors `clearml_agent/backend_config/config.py: Config._reload` and
//! `clearml_agent/session.py: Session.__init__`.

pub mod defaults;
pub mod files;
pub mod gpus;
pub mod hocon;
pub mod masking;
pub mod settings;
pub mod slurm;
pub mod unsupported;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::Cli;
use crate::env::EnvVars;

pub use gpus::GpuSpec;
pub use settings::*;

/// A configuration problem, reported as one line naming the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--config-file` names a file that does not exist.
    #[error("Could not open configuration file: {}", path.display())]
    FileNotFound { path: PathBuf },
    /// The configuration file is not valid HOCON.
    #[error("failed parsing configuration file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: hocon::Error,
    },
    /// A key has a value of the wrong type or outside its allowed set.
    #[error("invalid value for `{key}` ({found}) in {origin}: {expected}")]
    Value {
        key: String,
        found: String,
        origin: String,
        expected: String,
    },
    /// An environment variable has a value that cannot be used.
    #[error("invalid value for environment variable {name}={value:?}: {expected}")]
    Env {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// A command-line flag has a value that cannot be used.
    #[error("invalid value for {flag} {value:?}: {expected}")]
    Flag {
        flag: &'static str,
        value: String,
        expected: String,
    },
}

/// Everything one run of the agent knows about its configuration.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Typed, immutable settings: what the rest of the agent reads.
    pub settings: Settings,
    /// The full merged configuration tree (defaults + file + env), for `config` printing and for the
    /// configuration file written for child processes.
    pub tree: Value,
    /// The configuration file the values came from, when one exists ("location" in printouts).
    pub file: Option<PathBuf>,
    /// One line per setting that is set and has no effect here (`unsupported`); the commands
    /// that run tasks print them at start.
    pub warnings: Vec<String>,
}

/// Resolve the configuration from the process view of the world (real env, real home).
pub fn resolve_from_process(cli: &Cli) -> Result<Resolved, Error> {
    let env = |name: &str| std::env::var(name).ok();
    let injected: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(EnvVars::CLEARML_AGENT_CONFIG_PREFIX))
        .collect();
    let home = env(EnvVars::HOME).map(PathBuf::from);
    let mut resolved = resolve_with_injected(cli, &env, &injected, home.as_deref())?;
    resolved.settings.process = settings::ProcessEnv::capture();
    Ok(resolved)
}

/// `HOME` of this process (for `init`, which needs no configuration).
pub fn home_from_process() -> Option<PathBuf> {
    std::env::var_os(EnvVars::HOME).map(PathBuf::from)
}

/// Resolve defaults < file < env < CLI. `env` looks a variable up; `home` is the user's home directory.
/// `CLEARML_AGENT__*` injections need the list of variables; use [`resolve_with_injected`] for them.
pub fn resolve(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Resolved, Error> {
    resolve_with_injected(cli, env, &[], home)
}

/// [`resolve`], plus the `CLEARML_AGENT__a__b=value` variables (name, value) to inject as `a.b: value`.
pub fn resolve_with_injected(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    injected: &[(String, String)],
    home: Option<&Path>,
) -> Result<Resolved, Error> {
    let mut tree = defaults::tree();

    let (files, location) = config_files(cli, env, home)?;
    for path in &files {
        let parsed = hocon::parse_file(path, env).map_err(|source| Error::Parse {
            path: path.clone(),
            source,
        })?;
        hocon::merge(&mut tree, parsed);
    }

    // mirrors backend_config/config.py: Config._read_extra_env_config_values (sorted by name)
    let mut injected: Vec<&(String, String)> = injected
        .iter()
        .filter(|(k, _)| k.starts_with(EnvVars::CLEARML_AGENT_CONFIG_PREFIX))
        .collect();
    injected.sort();
    for (name, value) in injected {
        let path = name[EnvVars::CLEARML_AGENT_CONFIG_PREFIX.len()..]
            .replace("__", ".")
            .to_lowercase();
        if path.is_empty() {
            continue;
        }
        let overlay = injected_overlay(name, &path, value, env);
        hocon::merge(&mut tree, overlay);
    }

    settings::apply_env_overrides(&mut tree, env);
    settings::apply_cli_overrides(&mut tree, cli);
    settings::apply_derived(&mut tree);

    let origin = match &location {
        Some(p) => p.display().to_string(),
        None => "the configuration".to_string(),
    };
    let mut settings = Settings::from_tree(&tree, cli, env, home, &origin)?;
    settings.config_file = location.clone();
    let mut warnings = unsupported::warnings(&tree, &defaults::tree(), env);
    if let settings::CommandOptions::Daemon(d) = &settings.command
        && d.standalone_mode
    {
        // The Python agent passes it to the `execute` it runs inside each container; here the
        // code is prepared on the host and the container builds the venv.
        warnings.push(
            "Warning: `daemon --standalone-mode` has no effect in this agent (tasks get their code and environment as without it)"
                .to_string(),
        );
    }
    if settings.agent.git_use_ms_entra_token && settings.agent.git_use_azure_pat {
        warnings.push(
            "WARNING: Git MS Entra Token and Azure PAT support are both turned on, using MS Entra Token"
                .to_string(),
        );
    }
    let resolve = settings
        .agent
        .package_manager
        .pytorch_resolve
        .trim()
        .to_lowercase();
    match resolve.as_str() {
        "pip" | "none" => {}
        "direct" => warnings.push(
            "Warning: `agent.package_manager.pytorch_resolve: direct` is resolved as `pip` by this agent (the matching PyTorch index is added; wheel links are not looked up)"
                .to_string(),
        ),
        other => warnings.push(format!(
            "Warning: agent.package_manager.pytorch_resolve=={other} not in ['pip', 'direct', 'none'], reverting to 'pip'"
        )),
    }
    Ok(Resolved {
        settings,
        tree,
        file: location,
        warnings,
    })
}

/// The files to read, in merge order, and the "location" to report.
fn config_files(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<(Vec<PathBuf>, Option<PathBuf>), Error> {
    // mirrors session.py: Session.__init__ (config_file kwarg) — expanded, absolute, must exist.
    if let Some(path) = &cli.config_file {
        let expanded = absolute(&expand_path(&path.to_string_lossy(), home, env));
        if !expanded.is_file() {
            return Err(Error::FileNotFound { path: expanded });
        }
        return Ok((vec![expanded.clone()], Some(expanded)));
    }
    // mirrors backend_config/defs.py: LOCAL_CONFIG_FILE_OVERRIDE_VAR — only that file is used.
    if let Some(value) = first_env(
        env,
        &[EnvVars::CLEARML_CONFIG_FILE, EnvVars::TRAINS_CONFIG_FILE],
    ) {
        let expanded = expand_path(&value, home, env);
        if expanded.is_file() {
            return Ok((vec![expanded.clone()], Some(expanded)));
        }
        // The Python agent silently reads nothing from a missing override file.
        return Ok((Vec::new(), None));
    }
    let Some(home) = home else {
        return Ok((Vec::new(), None));
    };
    let trains = home.join("trains.conf");
    let clearml = home.join("clearml.conf");
    let files: Vec<PathBuf> = [&trains, &clearml]
        .into_iter()
        .filter(|p| p.is_file())
        .cloned()
        .collect();
    let location = files.last().cloned();
    Ok((files, location))
}

/// First non-empty value among `names` (mirrors definitions.py: EnvironmentConfig.get), trimmed.
pub(crate) fn first_env(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| env(n))
        .find(|v| !v.is_empty())
        .map(|v| v.trim().to_string())
}

/// Python's `strtobool`, caseless: y/yes/t/true/on/1 and n/no/f/false/off/0.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `expanduser(expandvars(s))`: `$VAR`/`${VAR}` from `env` (unknown ones left as written), then `~`.
pub fn expand_path(s: &str, home: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let expanded = expand_vars(s, env);
    if let Some(home) = home {
        if expanded == "~" {
            return home.to_path_buf();
        }
        if let Some(rest) = expanded.strip_prefix("~/") {
            return home.join(rest);
        }
    }
    PathBuf::from(expanded)
}

fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), env(name)) {
            (false, Some(value)) => out.push_str(&value),
            _ => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &rest[pos + 1 + consumed..];
    }
    out.push_str(rest);
    out
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Overlay for one `CLEARML_AGENT__` injection: `<path>: <value>` parsed as HOCON (as the Python agent
/// does); a value that does not parse is taken as a plain string.
fn injected_overlay(
    name: &str,
    path: &str,
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let text = format!("{path}: {raw}");
    match hocon::parse_str(&text, Path::new(name), env) {
        Ok(v) => v,
        Err(_) => {
            let mut overlay = Value::Object(Default::default());
            set_path(&mut overlay, path, Value::String(raw.trim().to_string()));
            overlay
        }
    }
}

/// Set `a.b.c` in `tree`, creating objects on the way (replacing non-objects).
/// The configuration tree of an agent in registry `slot`: slots above 0 get their own venvs
/// folder `<venvs_dir>.<slot>`, so agents (and services) on one machine never build in the same
/// one. The daemon hands it to its children; its own settings stay as resolved.
///
/// mirrors clearml_agent/session.py: Session.create_cache_folders (singleton_folders)
pub fn slot_tree(tree: &Value, venvs_dir: &std::path::Path, slot: u32) -> Value {
    let mut tree = tree.clone();
    if slot > 0 {
        let base = venvs_dir.display().to_string();
        let dir = format!("{}.{slot}", base.trim_end_matches('/'));
        set_path(&mut tree, "agent.venvs_dir", Value::String(dir));
    }
    tree
}

pub(crate) fn set_path(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        let Value::Object(map) = node else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        node = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// Look `a.b.c` up in `tree`; `null` counts as absent.
pub fn get_path<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = tree;
    for part in path.split('.') {
        node = match node {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!node.is_null()).then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_vars_and_home() {
        let env = |n: &str| (n == "X").then(|| "xv".to_string());
        let home = Path::new("/h");
        assert_eq!(
            expand_path("~/a/$X/${X}/$Y", Some(home), &env),
            PathBuf::from("/h/a/xv/xv/$Y")
        );
    }

    #[test]
    fn bools_are_caseless() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("OFF"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
