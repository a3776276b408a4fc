//! `agent.custom_build_script`: a script of the machine's owner that builds the task's
//! environment itself and says which interpreter, entry point and working dir to run.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.run_custom_build_script (the variables it
//! sets, the JSON it reads back, and which problems skip the script with a warning and which
//! fail the task).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::EnvVars;

/// What the script said to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomBuild {
    pub binary: PathBuf,
    pub entry_point: PathBuf,
    pub working_dir: PathBuf,
}

/// Why the script's result is not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CustomBuildError {
    /// The task is built as usual after a warning (mirrors SkippedCustomBuildScript).
    #[error("{0}")]
    Skipped(String),
    /// The task fails (mirrors CustomBuildScriptFailed).
    #[error("Custom build script failed with return code {0}")]
    Failed(i32),
}

/// What the script is told about the task.
pub struct BuildInput<'a> {
    pub entry_point: &'a str,
    pub working_dir: &'a str,
    pub venv: &'a Path,
    pub git_root: Option<&'a Path>,
    /// The task as JSON (`CLEARML_CUSTOM_BUILD_TASK_CONFIG_JSON`).
    pub task_json: String,
}

/// Runs `script` (`~` and `$VARS` expanded from `env`) with the build variables on top of `env`,
/// its output passed through `log`, and reads its JSON answer.
pub fn run(
    script: &str,
    input: &BuildInput<'_>,
    env: &HashMap<String, String>,
    temp_dir: &Path,
    log: &dyn Fn(&str),
) -> Result<CustomBuild, CustomBuildError> {
    let script = expand(script, env);
    if !Path::new(&script).is_file() {
        return Err(CustomBuildError::Skipped(format!(
            "Build script {script} is not found"
        )));
    }
    log(&format!("Running custom build script {script}"));
    let output = tempfile::Builder::new()
        .prefix("custom_build_script")
        .suffix(".json")
        .tempfile_in(temp_dir)
        .map_err(|e| CustomBuildError::Skipped(format!("cannot create the output file: {e}")))?;
    let mut cmd = Command::new(&script);
    cmd.env_clear()
        .envs(env)
        .env(EnvVars::CLEARML_TASK_SCRIPT_ENTRY, input.entry_point)
        .env(EnvVars::CLEARML_TASK_WORKING_DIR, input.working_dir)
        .env(EnvVars::CLEARML_VENV_PATH, input.venv)
        .env(
            EnvVars::CLEARML_GIT_ROOT,
            input.git_root.map(Path::as_os_str).unwrap_or_default(),
        )
        .env(EnvVars::CLEARML_AGENT_CUSTOM_BUILD_SCRIPT, &script)
        .env(
            EnvVars::CLEARML_CUSTOM_BUILD_TASK_CONFIG_JSON,
            &input.task_json,
        )
        .env(EnvVars::CLEARML_CUSTOM_BUILD_OUTPUT, output.path());
    let outcome = super::command::run_streamed(cmd, None, log)
        .map_err(|e| CustomBuildError::Skipped(format!("cannot run {script}: {e}")))?;
    if !outcome.success {
        return Err(CustomBuildError::Failed(outcome.code.unwrap_or(-1)));
    }
    let text = std::fs::read_to_string(output.path()).unwrap_or_default();
    parse(&text, &script)
}

/// The script's JSON answer, each path checked.
fn parse(text: &str, script: &str) -> Result<CustomBuild, CustomBuildError> {
    if text.trim().is_empty() {
        return Err(CustomBuildError::Skipped(format!(
            "Build script {script} did not return any output"
        )));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        CustomBuildError::Skipped(format!(
            "Failed parsing build script output JSON ({script}): {e}"
        ))
    })?;
    let field = |name: &str| -> Result<PathBuf, CustomBuildError> {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .ok_or_else(|| {
                CustomBuildError::Skipped(format!("Build script output missing {name} field"))
            })
    };
    let build = CustomBuild {
        binary: field("binary")?,
        entry_point: field("entry_point")?,
        working_dir: field("working_dir")?,
    };
    if !build.binary.is_file() {
        return Err(CustomBuildError::Skipped(format!(
            "Invalid binary path returned from custom build script: {}",
            build.binary.display()
        )));
    }
    if !build.entry_point.is_file() {
        return Err(CustomBuildError::Skipped(format!(
            "Invalid entrypoint path returned from custom build script: {}",
            build.entry_point.display()
        )));
    }
    if !build.working_dir.is_dir() {
        return Err(CustomBuildError::Skipped(format!(
            "Invalid working dir returned from custom build script: {}",
            build.working_dir.display()
        )));
    }
    Ok(build)
}

/// `~/` and `$NAME` / `${NAME}` from `env` (Python's expanduser + expandvars; unknown names stay).
fn expand(text: &str, env: &HashMap<String, String>) -> String {
    let mut text = text.trim().to_string();
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = env.get("HOME")
    {
        text = format!("{home}/{rest}");
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[at..at + 1 + used]),
        }
        rest = &rest[at + 1 + used..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_like_the_python_agent() {
        assert_eq!(
            parse("", "s"),
            Err(CustomBuildError::Skipped(
                "Build script s did not return any output".into()
            ))
        );
        assert!(
            matches!(parse("{", "s"), Err(CustomBuildError::Skipped(m)) if m.starts_with("Failed parsing"))
        );
        assert_eq!(
            parse(r#"{"binary": "/bin/sh", "entry_point": "/bin/sh"}"#, "s"),
            Err(CustomBuildError::Skipped(
                "Build script output missing working_dir field".into()
            ))
        );
        let ok = parse(
            r#"{"binary": "/bin/sh", "entry_point": "/bin/sh", "working_dir": "/"}"#,
            "s",
        )
        .unwrap();
        assert_eq!(ok.working_dir, PathBuf::from("/"));
        assert!(matches!(
            parse(r#"{"binary": "/nope", "entry_point": "/bin/sh", "working_dir": "/"}"#, "s"),
            Err(CustomBuildError::Skipped(m)) if m.starts_with("Invalid binary path")
        ));
    }

    #[test]
    fn the_script_path_expands_home_and_variables() {
        let env: HashMap<String, String> = [("HOME", "/h"), ("D", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("~/b/$D/${D}.sh", &env), "/h/b/x/x.sh");
        assert_eq!(expand("/a/$NOPE/s", &env), "/a/$NOPE/s");
    }
}
