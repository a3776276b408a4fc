//! Environments a repository describes itself: `uv sync` of its `pyproject.toml` / `uv.lock`
//! (`package_manager.type: uv`) and `poetry install` of its `pyproject.toml` / `poetry.lock`
//! (`type: poetry`), into the task's venv instead of the task's requirement lines.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._install_uv_requirements and
//! _install_poetry_requirements, helper/package/uv_api.py: UvAPI.install / UvConfig.get_run_argv
//! and helper/package/poetry_api.py: PoetryConfig / PoetryAPI. Where they differ: the Python agent
//! lets uv and poetry make `<project>/.venv` and runs the task with `uv run` / `poetry run`; here
//! both install into the task's venv (`UV_PROJECT_ENVIRONMENT`, `VIRTUAL_ENV`), which the task then
//! runs with, so the venv folder, the freeze and the task's command stay those of every other task.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::command::{StreamOutcome, display_command, run_streamed};
use super::venv::{EnvError, PythonInfo};

/// The `agent.package_manager` settings of project installs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectOptions {
    /// `uv_sync_locked_if_lock_file` (default true): `uv sync --locked` when `uv.lock` exists.
    pub uv_sync_locked: bool,
    /// `uv_sync_extra_args`.
    pub uv_sync_extra_args: Vec<String>,
    /// `uv_files_from_repo_working_dir`: the project is the task's working dir, not the root.
    pub uv_files_from_working_dir: bool,
    /// `poetry_version`: installed into a side venv; unset uses `poetry` from `PATH`.
    pub poetry_version: Option<String>,
    /// `poetry_install_extra_args`.
    pub poetry_install_extra_args: Vec<String>,
    /// `poetry_files_from_repo_working_dir`.
    pub poetry_files_from_working_dir: bool,
}

const UV_FILES: [&str; 2] = ["pyproject.toml", "uv.lock"];
const POETRY_FILES: [&str; 2] = ["pyproject.toml", "poetry.lock"];

fn holds_any(dir: &Path, files: &[&str]) -> bool {
    files.iter().any(|f| dir.join(f).is_file())
}

fn run(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<StreamOutcome, String> {
    log(&display_command(program, args));
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).env_clear().envs(env);
    run_streamed(cmd, None, log).map_err(|e| format!("cannot run {}: {e}", program.display()))
}

/// `uv sync` of the project in `project` into `venv`. `Ok(false)`: not a uv project, or (without
/// a lock file) the sync failed and the task's requirements are installed instead, as the Python
/// agent reverts. A failed sync of a locked project is retried without `--locked`, then fails
/// the task.
pub fn uv_sync(
    uv: &Path,
    project: &Path,
    venv: &Path,
    opts: &ProjectOptions,
    extra_index_urls: &[String],
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<bool, EnvError> {
    if !holds_any(project, &UV_FILES) {
        return Ok(false);
    }
    log("UV Enabled: Ignoring requested python packages, using repository uv lock file!");
    let locked_file = project.join("uv.lock").is_file();
    let mut env = env.clone();
    env.insert("UV_PROJECT_ENVIRONMENT".into(), venv.display().to_string());
    env.remove("VIRTUAL_ENV");
    env.remove("CONDA_PREFIX");
    // The Python agent points UV_CACHE_DIR at the venvs folder for a sync (UvConfig.get_run_argv),
    // which holds the repository copy, and uv refuses a project inside its cache; uv's own cache
    // (or the UV_CACHE_DIR the agent was given) is used.
    let args = |locked: bool| -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["sync".into()];
        if locked {
            a.push("--locked".into());
        }
        a.extend(opts.uv_sync_extra_args.iter().map(OsString::from));
        for url in extra_index_urls {
            a.push("--extra-index-url".into());
            a.push(url.into());
        }
        a
    };
    let failure = |cause: String| EnvError::InstallRequirements {
        what: format!("the uv project {}", project.display()),
        cause,
    };
    let first = run(
        uv,
        &args(locked_file && opts.uv_sync_locked),
        project,
        &env,
        log,
    )
    .map_err(failure)?;
    if first.success {
        return Ok(true);
    }
    if !locked_file {
        log(&format!(
            "Failed installing uv requirements from lock file: {}",
            first.failure_summary()
        ));
        log(
            "Reverting to UV as pip replacement - installing from Task requirements or git requirements.txt",
        );
        return Ok(false);
    }
    log("INFO: failed installing using lock file, trying without");
    let again = run(uv, &args(false), project, &env, log).map_err(failure)?;
    if again.success {
        Ok(true)
    } else {
        Err(failure(again.failure_summary()))
    }
}

/// `poetry install -n` of the project in `project` into `venv` (the venv is the active one for
/// poetry: `VIRTUAL_ENV`). `false` when it is not a poetry project or the install failed (said in
/// the log): the task's requirements are then installed with pip, as the Python agent does.
pub fn poetry_install(
    python: &PythonInfo,
    project: &Path,
    venv: &Path,
    opts: &ProjectOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Option<PathBuf> {
    if !holds_any(project, &POETRY_FILES) {
        log(&format!(
            "Could not find pyproject.toml or poetry.lock file in {} \n",
            project.display()
        ));
        return None;
    }
    let poetry = match poetry_binary(python, venv, opts, env, log) {
        Ok(p) => p,
        Err(e) => {
            log(&format!("failed installing poetry requirements: {e}"));
            return None;
        }
    };
    log("Poetry Enabled: Ignoring requested python packages, using repository poetry lock file!");
    let mut args: Vec<OsString> = vec!["install".into(), "-n".into()];
    args.extend(opts.poetry_install_extra_args.iter().map(OsString::from));
    match run(&poetry, &args, project, &poetry_env(venv, env), log) {
        Ok(out) if out.success => Some(poetry),
        Ok(out) => {
            log(&format!(
                "failed installing poetry requirements: {}",
                out.failure_summary()
            ));
            None
        }
        Err(e) => {
            log(&format!("failed installing poetry requirements: {e}"));
            None
        }
    }
}

/// The environment poetry runs in: `venv` is the active virtualenv.
fn poetry_env(venv: &Path, env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut env = env.clone();
    env.insert("VIRTUAL_ENV".into(), venv.display().to_string());
    env.remove("CONDA_PREFIX");
    env.remove("PYTHONPATH");
    let path = env.get("PATH").cloned().unwrap_or_default();
    env.insert(
        "PATH".into(),
        format!("{}:{path}", venv.join("bin").display()),
    );
    env
}

/// `poetry` from `PATH` (when no `poetry_version` is pinned), else poetry installed with pip into
/// the side venv `<venv>_poetry`. mirrors PoetryConfig.initialize.
fn poetry_binary(
    python: &PythonInfo,
    venv: &Path,
    opts: &ProjectOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<PathBuf, String> {
    super::venv::side_tool(
        python,
        venv,
        &super::venv::SideTool {
            name: "poetry",
            found: "Notice: Poetry was found, no specific version required, skipping poetry installation",
        },
        opts.poetry_version.as_deref(),
        env,
        log,
    )
}

/// The poetry project's packages as the Python agent records them: `name==version # description`
/// per line of `poetry show`; `None` when poetry lists nothing. mirrors PoetryAPI.freeze.
pub fn poetry_freeze(
    poetry: &Path,
    project: &Path,
    venv: &Path,
    env: &HashMap<String, String>,
) -> Option<String> {
    let out = Command::new(poetry)
        .args(["show", "--no-ansi"])
        .current_dir(project)
        .env_clear()
        .envs(poetry_env(venv, env))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(show_line_to_requirement)
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n") + "\n")
}

/// `six   1.16.0  Python 2 and 3 compatibility utilities` → `six==1.16.0 # Python 2 and 3 ...`.
fn show_line_to_requirement(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(' ').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [name, version, rest @ ..] => Some(format!("{name}=={version} # {}", rest.join(" "))),
        _ => None,
    }
}

/// The project folder: the repository root, or its `working_dir` with the
/// `*_files_from_repo_working_dir` setting of the package manager in use.
pub fn project_dir(repo_root: &Path, working_dir: &str, from_working_dir: bool) -> PathBuf {
    let wd = working_dir.trim().trim_start_matches("./");
    if from_working_dir && !wd.is_empty() && wd != "." {
        repo_root.join(wd)
    } else {
        repo_root.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_show_lines_become_pinned_requirements() {
        assert_eq!(
            show_line_to_requirement("six      1.16.0 Python 2 and 3 compatibility utilities"),
            Some("six==1.16.0 # Python 2 and 3 compatibility utilities".into())
        );
        assert_eq!(show_line_to_requirement("   "), None);
    }

    #[test]
    fn the_project_is_the_root_unless_the_working_dir_is_asked_for() {
        let root = Path::new("/r");
        assert_eq!(project_dir(root, "sub/dir", false), PathBuf::from("/r"));
        assert_eq!(
            project_dir(root, "sub/dir", true),
            PathBuf::from("/r/sub/dir")
        );
        assert_eq!(project_dir(root, ".", true), PathBuf::from("/r"));
    }
}
