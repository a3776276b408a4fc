//! The task's interpreter: the Python version a task asks for (`script.binary`), found on `PATH`
//! (or as `agent.python_binary`), with its version read from the interpreter itself.
//! mirrors clearml_agent/commands/worker.py: Worker.find_python_executable_for_version.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::venv::EnvError;

/// Interpreter settings of the `agent` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonOptions {
    /// `agent.python_binary`: a name (`python3.10`) or a path.
    pub python_binary: Option<String>,
    /// `agent.default_python` (`3.11`).
    pub default_python: Option<String>,
    /// `agent.ignore_requested_python_version`.
    pub ignore_requested_python_version: bool,
}

/// The interpreter a venv is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInfo {
    /// Resolved path of the interpreter.
    pub exe: PathBuf,
    /// The name it was found by (`python3.11`, or the configured path); part of the cache key.
    pub name: String,
    /// `(major, minor, patch)` from `--version`.
    pub version: (u32, u32, u32),
}

impl PythonInfo {
    /// `X.Y`, the venv folder name.
    pub fn major_minor(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }
}

/// The venv folder for an interpreter: `<venvs_dir>/<X.Y>` (what [`build_env`] uses).
pub fn venv_dir(venvs_dir: &Path, python: &PythonInfo) -> PathBuf {
    venvs_dir.join(python.major_minor())
}

/// The requested version from `script.binary`: `pythonX.Y` → `X.Y`, `python3` → `3`, else none.
/// Mirrors clearml_agent/commands/worker.py: Worker.execute (`python_ver` from the binary basename).
pub fn requested_python_version(binary: &str) -> Option<String> {
    let name = binary.trim().rsplit('/').next()?;
    let rest = name.strip_prefix("python")?;
    (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then(|| rest.to_string())
}

/// Finds the interpreter for a requested version (`3.10.4`, `3.10`, `3`, or a path).
/// The request falls back to `python_binary`, then `default_python`, then `3`. Candidates for
/// `3.10.4`: `python3.10.4`, `python3.10`, `python3`, `python`; each is asked `--version`; the first
/// exact match wins, else the first one found (with a warning).
/// Mirrors clearml_agent/commands/worker.py: Worker.install_virtualenv and
/// Worker.find_python_executable_for_version (the agent's own interpreter is not a candidate:
/// this agent is compiled).
pub fn find_python(
    requested: Option<&str>,
    opts: &PythonOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<PythonInfo, EnvError> {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let fallback = nonempty(&opts.python_binary)
        .or_else(|| nonempty(&opts.default_python))
        .unwrap_or_else(|| "3".to_string());
    let requested = if opts.ignore_requested_python_version {
        None
    } else {
        requested
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
    };
    match requested {
        Some(r) => match search_python(&r, env, log) {
            Ok(found) => Ok(found),
            Err(_) => {
                log(&format!(
                    "Warning: could not locate requested Python version {r}, reverting to version {fallback}"
                ));
                search_python(&fallback, env, log)
            }
        },
        None => search_python(&fallback, env, log),
    }
}

fn search_python(
    version: &str,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<PythonInfo, EnvError> {
    let version = version.trim();
    let is_path = version.contains('/');
    let suffix = if is_path {
        let base = version.rsplit('/').next().unwrap_or(version);
        base.rsplit("python").next().unwrap_or("").to_string()
    } else {
        version.trim_start_matches("python").to_string()
    };
    let parts: Vec<&str> = suffix.split('.').filter(|p| !p.is_empty()).collect();
    let mut candidates: Vec<(String, String)> = Vec::new();
    for n in (0..=parts.len()).rev() {
        let v = parts[..n].join(".");
        let exe = if is_path {
            version.to_string()
        } else {
            format!("python{v}")
        };
        candidates.push((v, exe));
    }
    let mut first: Option<PythonInfo> = None;
    for (_, name) in &candidates {
        let Some(exe) = which(name, env) else {
            continue;
        };
        let Some(found) = python_version(&exe, env) else {
            continue;
        };
        let info = PythonInfo {
            exe,
            name: name.clone(),
            version: found,
        };
        let want: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        let have = [found.0, found.1, found.2];
        if is_path || want.iter().zip(have.iter()).all(|(w, h)| w == h) {
            return Ok(info);
        }
        if first.is_none() {
            first = Some(info);
        }
    }
    match first {
        Some(info) => {
            log(&format!(
                "WARNING: Python executable with version '{version}' requested by the Task, not found in path, using '{}' (v{}.{}.{}) instead",
                info.exe.display(),
                info.version.0,
                info.version.1,
                info.version.2
            ));
            Ok(info)
        }
        None => Err(EnvError::PythonNotFound {
            requested: version.to_string(),
            tried: candidates
                .into_iter()
                .map(|(_, e)| e)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Resolves a program name through `PATH` of `env` (paths are taken as they are).
pub(crate) fn which(name: &str, env: &HashMap<String, String>) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = env.get("PATH")?;
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `(major, minor, patch)` from `<exe> --version` (`Python 3.11.7`).
fn python_version(exe: &Path, env: &HashMap<String, String>) -> Option<(u32, u32, u32)> {
    let out = Command::new(exe)
        .arg("--version")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "Python")
        .nth(1)?;
    let mut nums = v.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = nums.next()??;
    let minor = nums.next().flatten().unwrap_or(0);
    let patch = nums.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}
