//! The `execute` pipeline that runs inside the task's own process: fetch and claim the task, get
//! its code, build its Python environment, record the frozen requirements, then replace this
//! process with the task's interpreter. Everything printed here is the task's setup log (the
//! supervisor ships it). It does not watch the task: `supervise` does that from outside.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.execute (the --disable-monitoring path)

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::api::{Client, StatusChange, Task};
use crate::env::EnvVars;
use crate::exec::custom_build;
use crate::exec::ending::SetupError;
use crate::exec::git::{self, GitOptions, ScriptInfo, SourceLayout};
use crate::exec::requirements::{self, Requirements, frozen_lines};
use crate::exec::venv::{self, BuiltEnv, EnvOptions, PythonOptions};

/// Folder names inside the venv, as the Python agent uses them.
const TASK_REPOSITORY_DIR: &str = "task_repository";
const CODE_DIR: &str = "code";

/// What `execute` needs, resolved from settings before the runtime starts.
#[derive(Debug, Clone)]
pub struct ExecuteConfig {
    pub task_id: String,
    pub worker_id: String,
    pub clone: bool,
    pub require_queue: bool,
    pub standalone: bool,
    /// `--log-level`, exported as `CLEARML_LOG_LEVEL`.
    pub log_level: String,
    /// `-O` count for the task's python.
    pub optimization: u8,
    /// The configuration file this process runs with, exported as `CLEARML_CONFIG_FILE`.
    pub config_file: Option<PathBuf>,
    pub git: GitOptions,
    pub python: PythonOptions,
    pub env: EnvOptions,
    /// `agent.package_manager.force_repo_requirements_txt`.
    pub force_repo_requirements_txt: bool,
    /// `agent.package_manager.force_original_requirements`.
    pub force_original_requirements: bool,
    /// `agent.force_git_root_python_path`.
    pub force_git_root_python_path: bool,
    /// `CLEARML_AGENT_EXTRA_PYTHON_PATH`.
    pub extra_python_path: Option<String>,
    /// `agent.enable_task_env`: the task's `Environment` hyper-parameters become variables.
    pub enable_task_env: bool,
    /// `agent.custom_build_script` / `CLEARML_AGENT_CUSTOM_BUILD_SCRIPT`: builds the environment
    /// instead of the agent.
    pub custom_build_script: Option<String>,
    /// `CLEARML_AGENT_FORCE_CODE_DIR`: the task's code is this folder (nothing cloned or patched).
    pub force_code_dir: Option<PathBuf>,
    /// `CLEARML_AGENT_FORCE_EXEC_SCRIPT` (`[working_dir:]entry_point`): replaces the task's.
    pub force_exec_script: Option<String>,
    /// Where the agent's temporary files go (the custom build script's answer).
    pub temp_dir: PathBuf,
    /// `build --python-version`: the interpreter version instead of the task's.
    pub python_version: Option<String>,
    /// The multi-node rank (`RANK`/`SLURM_PROCID`): above 0, the task is not marked started and
    /// its requirements are not recorded (only rank 0 does). mirrors Worker.execute.
    pub node_rank: u32,
    /// How PyTorch requirements are resolved (`agent.package_manager.pytorch_resolve` & co).
    pub pytorch: crate::exec::pytorch::TorchOptions,
    /// The environment the task starts from: the agent's own plus the GPU variables.
    pub base_env: BTreeMap<String, String>,
}

/// Runs the pipeline and execs the task. Returns only on failure (the error has already been
/// recorded on the task when it came from a setup stage).
pub async fn execute(client: &Client, cfg: &ExecuteConfig) -> Result<std::convert::Infallible> {
    let task = fetch_task(client, &cfg.task_id).await?;
    let task = claim(client, cfg, task).await?;
    let task_id = task.id.clone();
    print_execution_info(&task);
    // The status call goes beside the setup, not before it (the setup reads nothing it sets).
    let tasks = client.tasks();
    let change = StatusChange::by_agent(&task_id, &cfg.worker_id)
        .reason("worker started execution")
        .force(true);
    let started = async {
        if cfg.node_rank == 0 {
            tasks.started(&change).await.map(drop)
        } else {
            Ok(())
        }
    };
    let (started, prepared) = tokio::join!(started, prepare(cfg, &task));
    let prepared = match prepared {
        Ok(p) => p,
        Err(failure) => {
            println!("{}", failure.error);
            let _ = std::io::stdout().flush();
            let _ = client
                .tasks()
                .failed(
                    &StatusChange::by_agent(&task_id, &cfg.worker_id)
                        .reason(failure.reason)
                        .force(true),
                )
                .await;
            return Err(anyhow!(failure.error));
        }
    };
    started.context("cannot mark the task started")?;

    let version_num = async {
        if let Some(commit) = prepared.layout.commit.as_deref()
            && task.script.version_num.is_empty()
        {
            println!("Updating task commit ID: {commit}");
            let _ = client.tasks().set_version_num(&task_id, commit).await;
        }
    };
    let hyperparams = async {
        if cfg.enable_task_env {
            environment_hyperparams(client, &task_id).await
        } else {
            Vec::new()
        }
    };
    // the task's records (commit, requirements) are written side by side
    let requirements = async {
        // mirrors Worker.execute: only rank 0 updates the requirements.
        if cfg.node_rank == 0 {
            record_requirements(client, &task, &prepared).await;
        }
    };
    let ((), (), task_env_vars) = tokio::join!(version_num, requirements, hyperparams);
    let mut env = task_env(cfg, &task_id, &prepared);
    for (k, v) in task_env_vars {
        env.insert(k, v);
    }
    // mirrors Worker.execute: _task_logging_pass_control_message before the command is built.
    println!("Running task id [{task_id}]:");
    let mut prepared = prepared;
    if is_notebook(
        task.script.binary.as_deref().unwrap_or_default(),
        &prepared.layout.entry_point,
    ) {
        prepared.layout.entry_point = convert_notebook(&prepared, &env)?;
    }
    let command = entry_command(&task, &prepared, cfg.optimization, &cfg.base_env)?;
    println!(
        "[{}]$ {}",
        prepared.layout.working_dir,
        shlex::try_join(command.iter().map(String::as_str)).unwrap_or_else(|_| command.join(" "))
    );
    print_freeze_summary(prepared.env.frozen.as_deref());
    println!("Environment setup completed successfully\n");
    client
        .tasks()
        .started(
            &StatusChange::by_agent(&task_id, &cfg.worker_id)
                .reason("worker starting task execution")
                .force(true),
        )
        .await
        .context("cannot mark the task started")?;
    println!("Starting Task Execution:\n");
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();

    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("the task has no command to run"))?;
    let err = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(&env)
        .current_dir(&prepared.layout.script_dir)
        .exec();
    Err(anyhow!("cannot start the task process {program}: {err}"))
}

/// `--clone`, or claim the task from its queue: the task `execute` runs, in every mode (venv,
/// monitored, docker). mirrors the start of Worker.execute.
/// `--id` as given: an id is returned as is; a name is resolved to the one task of that name
/// (case-insensitive), else a one-line error naming the candidates. mirrors
/// clearml_agent/commands/base.py: ServiceCommandSection._resolve_name (used by `--id`'s
/// `foreign_object_id('tasks')` type).
pub async fn resolve_task_id(client: &Client, given: &str) -> Result<String> {
    let looks_like_id = given.len() >= 30
        && given
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-');
    if looks_like_id {
        return Ok(given.to_string());
    }
    let found = client
        .tasks()
        .find_by_name(&format!("(?i){}", regex::escape(given)))
        .await
        .with_context(|| format!("cannot look up the task named {given:?}"))?;
    let exact: Vec<&(String, String)> = found
        .iter()
        .filter(|(_, name)| name.eq_ignore_ascii_case(given))
        .collect();
    match exact.as_slice() {
        [(id, _)] => Ok(id.clone()),
        [] if found.is_empty() => bail!("Could not find task with name/id \"{given}\""),
        [] => {
            let mut names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
            names.sort();
            names.truncate(10);
            bail!(
                "Could not find task with name/id \"{given}\". Did you mean: {}?",
                names.join(", ")
            )
        }
        many => bail!(
            "Found multiple tasks with name \"{given}\": {}; pass the id instead",
            many.iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub async fn claim(client: &Client, cfg: &ExecuteConfig, task: Task) -> Result<Task> {
    if cfg.clone {
        let new_id = client
            .tasks()
            .clone_task(&task.id, Some(&format!("Clone of {}", task.name)))
            .await
            .context("Cloning failed")?;
        println!("Task cloned, new task id={new_id}");
        return client
            .tasks()
            .get_by_id(&new_id)
            .await
            .with_context(|| format!("Could not find task id={new_id}"));
    }
    take_from_queue(client, &task.id, cfg.require_queue).await?;
    Ok(task)
}

/// Takes the task out of any queue it waits in and marks it started; with `require_queue`, a task
/// that was not queued is an error and is left untouched. mirrors the dequeue step of
/// clearml_agent/commands/worker.py: Worker.execute.
pub async fn take_from_queue(client: &Client, task_id: &str, require_queue: bool) -> Result<()> {
    match client.tasks().dequeue(task_id, Some("in_progress")).await {
        Ok(updated) if updated.updated > 0 => {
            client
                .tasks()
                .started(
                    &StatusChange::new(task_id)
                        .reason("starting execution soon")
                        .message("")
                        .force(true),
                )
                .await
                .context("cannot mark the task started")?;
        }
        Ok(_) if require_queue => {
            anyhow::bail!("Execution required enqueued task, but task id={task_id} is not queued.")
        }
        Ok(_) => {}
        Err(e) if require_queue => return Err(e).context("cannot dequeue the task"),
        Err(e) => tracing::debug!("dequeue of {task_id} failed: {e}"),
    }
    Ok(())
}

fn print_execution_info(task: &Task) {
    let s = &task.script;
    println!("Executing task id [{}]:", task.id);
    println!(
        "repository = {}",
        crate::exec::git::scrub_url(&s.repository)
    );
    println!("branch = {}", s.branch);
    println!("version_num = {}", s.version_num);
    println!("tag = {}", s.tag);
    println!(
        "docker_cmd = {}",
        task.container.image.as_deref().unwrap_or("")
    );
    println!("entry_point = {}", s.entry_point);
    println!("working_dir = {}\n", s.working_dir);
}

/// The prepared task: code and environment.
struct Prepared {
    layout: SourceLayout,
    env: BuiltEnv,
}

async fn prepare(cfg: &ExecuteConfig, task: &Task) -> std::result::Result<Prepared, SetupError> {
    let owned_cfg = cfg.clone();
    let owned_task = task.clone();
    tokio::task::spawn_blocking(move || prepare_blocking(&owned_cfg, &owned_task))
        .await
        .map_err(|e| SetupError {
            reason: "agent error".into(),
            error: format!("the setup stage crashed: {e}"),
        })?
}

/// The installed packages as the Python agent prints them: `print(dump_flat_dict(freeze))` of
/// `{"pip": [lines]}`.
fn print_freeze_summary(frozen: Option<&str>) {
    match frozen {
        Some(frozen) => {
            println!("Summary - installed python packages:\npip:");
            for line in frozen_lines(frozen) {
                println!("- {line}");
            }
        }
        None => println!("No freeze information available"),
    }
}

/// The task `given` names (an id or a name).
async fn fetch_task(client: &Client, given: &str) -> Result<Task> {
    let task_id = resolve_task_id(client, given).await?;
    client
        .tasks()
        .get_by_id(&task_id)
        .await
        .with_context(|| format!("Could not find task id={task_id}"))
}

/// `clearml-agent build`: the task's code and venv prepared as `execute` prepares them (in
/// `cfg.env.venv_path` when set), without claiming the task or changing it on the server, and a
/// summary of where they are. mirrors clearml_agent/commands/worker.py: Worker.build.
pub async fn build(client: &Client, cfg: &ExecuteConfig) -> Result<()> {
    let task = fetch_task(client, &cfg.task_id).await?;
    let prepared = prepare(cfg, &task)
        .await
        .map_err(|failure| anyhow!("{}", failure.error))?;
    println!("Restoring running environment of task id [{}]:", task.id);
    print_freeze_summary(prepared.env.frozen.as_deref());
    println!(
        "Virtual environment: {}",
        prepared.env.venv.join("bin").display()
    );
    let layout = &prepared.layout;
    println!(
        "Source code: {}",
        layout
            .repo_root
            .as_deref()
            .map_or_else(|| layout.entry_point.clone(), |r| r.display().to_string())
    );
    println!(
        "Entry point: {}",
        layout.script_dir.join(&layout.entry_point).display()
    );
    Ok(())
}

/// Records the freeze on the task (the one freeze report, shared with docker mode).
async fn record_requirements(client: &Client, task: &Task, prepared: &Prepared) {
    let Some(frozen) = &prepared.env.frozen else {
        return;
    };
    if let Err(e) = client
        .tasks()
        .record_freeze(&task.id, &task.script.requirements, &frozen_lines(frozen))
        .await
    {
        println!("Warning: could not update the task requirements: {e}");
    }
}

fn prepare_blocking(cfg: &ExecuteConfig, task: &Task) -> std::result::Result<Prepared, SetupError> {
    let log = |line: &str| {
        println!("{line}");
    };
    let env: HashMap<String, String> = cfg.base_env.clone().into_iter().collect();
    let binary = task.script.binary.clone().unwrap_or_default();
    let requested = cfg
        .python_version
        .clone()
        .or_else(|| venv::requested_python_version(&binary));
    let python = venv::find_python(requested.as_deref(), &cfg.python, &env, &log).map_err(|e| {
        SetupError {
            reason: format!("failed locating python: {e}"),
            error: e.to_string(),
        }
    })?;
    let venv_dir = cfg
        .env
        .venv_path
        .clone()
        .unwrap_or_else(|| cfg.env.venvs_dir.join(python.major_minor()));
    let mut script = ScriptInfo::of(&task.script, binary.clone());
    // mirrors Worker.execute: CLEARML_AGENT_FORCE_EXEC_SCRIPT replaces the entry point.
    if let Some(forced) = cfg.force_exec_script.as_deref().filter(|s| !s.is_empty()) {
        let (working_dir, entry_point) = forced.split_once(':').unwrap_or((".", forced));
        script.entry_point = entry_point.to_string();
        script.working_dir = working_dir.to_string();
        log(&format!(
            "WARNING: Using forced script entry [{working_dir}:{entry_point}]"
        ));
    }
    let mut git_opts = cfg.git.clone();
    git_opts.standalone = cfg.standalone;
    let layout = match &cfg.force_code_dir {
        // mirrors Worker.execute: with a forced code folder nothing is cloned or patched.
        Some(dir) => Ok(forced_code_layout(dir, &script.entry_point)),
        None => git::prepare_source(
            &script,
            &venv_dir.join(TASK_REPOSITORY_DIR),
            &venv_dir.join(CODE_DIR),
            &git_opts,
            &env,
            &log,
        ),
    }
    .map_err(|e| SetupError {
        reason: match &e {
            git::SourceError::Clone { .. } | git::SourceError::GitMissing { .. } => {
                "failed cloning repository".to_string()
            }
            other => short_reason(&other.to_string()),
        },
        error: e.to_string(),
    })?;

    let (mut requirements, repo_files) = requirements::choose(
        &Requirements::from_script(&task.script.requirements),
        cfg.force_repo_requirements_txt,
        cfg.force_original_requirements,
        layout.repo_root.as_deref().map(|root| {
            (
                root,
                layout.working_dir.as_str(),
                layout.entry_point.as_str(),
            )
        }),
        &|path| path.exists(),
    );
    for warning in &requirements.warnings {
        log(warning);
    }
    let mut pip_lines = requirements.pip_lines();
    if is_notebook(binary.as_str(), &layout.entry_point) && !pip_lines.is_empty() {
        log("Force nbconvert patch to convert .ipynb to python");
        add_notebook_packages(&mut pip_lines);
        requirements.pip = Some(pip_lines.join("\n"));
    }
    if let Some(script_path) = cfg
        .custom_build_script
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let input = custom_build::BuildInput {
            entry_point: &script.entry_point,
            working_dir: &script.working_dir,
            venv: &venv_dir,
            git_root: layout.repo_root.as_deref(),
            task_json: serde_json::to_string(task).unwrap_or_default(),
        };
        match custom_build::run(script_path, &input, &env, &cfg.temp_dir, &log) {
            Ok(build) => {
                let mut layout = layout;
                layout.entry_point = build.entry_point.display().to_string();
                layout.working_dir = build.working_dir.display().to_string();
                layout.script_dir = build.working_dir;
                layout.script_file = Some(build.entry_point);
                let frozen = venv::freeze_interpreter(&build.binary, &env, &log);
                return Ok(Prepared {
                    layout,
                    env: BuiltEnv {
                        venv: venv_dir,
                        python: build.binary,
                        frozen,
                        cache_hit: false,
                        cache_entry: None,
                    },
                });
            }
            Err(custom_build::CustomBuildError::Skipped(why)) => log(&format!("Warning: {why}")),
            Err(e) => {
                return Err(SetupError {
                    reason: e.to_string(),
                    error: e.to_string(),
                });
            }
        }
    }
    let mut env_opts = cfg.env.clone();
    env_opts.install_cwd = layout.repo_root.clone();
    // mirrors Worker.execute: no repository, no requirements and a non-python binary → no env.
    let is_python = is_python_binary(&binary);
    if !is_python && layout.repo_root.is_none() && !requirements.has_task_requirements() {
        env_opts.skip_install = true;
    }
    if cfg.standalone {
        env_opts.skip_install = true;
    }
    env_opts.pytorch = Some(cfg.pytorch.clone());
    env_opts.project_dir = layout.repo_root.as_deref().map(|root| {
        let from_working_dir = match env_opts.manager {
            venv::PackageManagerKind::Uv => env_opts.project.uv_files_from_working_dir,
            venv::PackageManagerKind::Poetry => env_opts.project.poetry_files_from_working_dir,
            venv::PackageManagerKind::Pip => false,
        };
        crate::exec::project_env::project_dir(root, &layout.working_dir, from_working_dir)
    });
    // A task with nothing to install skips the install and the freeze (mirrors Worker.execute:
    // skip_freeze when there are no requirements and no repository).
    let built = venv::build_env(&python, &requirements, &repo_files, &env_opts, &env, &log)
        .map_err(|e| SetupError {
            reason: short_reason(&e.to_string()),
            error: e.to_string(),
        })?;
    Ok(Prepared { layout, env: built })
}

/// The layout of a task whose code is a given folder (`CLEARML_AGENT_FORCE_CODE_DIR`): it runs
/// there, with its entry point relative to it.
fn forced_code_layout(dir: &Path, entry_point: &str) -> SourceLayout {
    let script = entry_point.split_whitespace().next().unwrap_or_default();
    SourceLayout {
        repo_root: None,
        script_dir: dir.to_path_buf(),
        entry_point: entry_point.trim().to_string(),
        working_dir: ".".into(),
        script_file: Some(dir.join(script)).filter(|p| !script.is_empty() && p.is_file()),
        commit: None,
        repo: None,
    }
}

/// A python task (`script.binary`) whose entry point is a Jupyter notebook (`*.ipynb`), in venv
/// and docker mode.
pub(crate) fn is_notebook(binary: &str, entry_point: &str) -> bool {
    is_python_binary(binary) && entry_point.trim().to_lowercase().ends_with(".ipynb")
}

/// `python -m nbconvert --to python <notebook>` in the script folder; the converted script's
/// name. mirrors Worker.execute (the .ipynb branch).
fn convert_notebook(prepared: &Prepared, env: &BTreeMap<String, String>) -> Result<String> {
    let notebook = prepared.layout.entry_point.trim();
    let status = std::process::Command::new(&prepared.env.python)
        .args(["-m", "nbconvert", "--to", "python", notebook])
        .current_dir(&prepared.layout.script_dir)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", prepared.env.python.display()))?;
    if !status.success() {
        bail!(
            "Failed [{}] converting jupyter notebook: {notebook}",
            status.code().unwrap_or(-1)
        );
    }
    Ok(Path::new(notebook)
        .with_extension("py")
        .display()
        .to_string())
}

/// mirrors Worker._install_patched_python_requirements: a notebook task's requirement lines
/// (when it has any) start with `nbconvert` and `ipython`, to convert it before it runs.
pub(crate) fn add_notebook_packages(lines: &mut Vec<String>) {
    lines.splice(0..0, ["nbconvert".to_string(), "ipython".to_string()]);
}

/// A status reason is shown in one line of the UI: keep the first line, at most 200 characters.
fn short_reason(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    line.chars().take(200).collect()
}

fn is_python_binary(binary: &str) -> bool {
    let name = binary.trim().rsplit('/').next().unwrap_or("");
    name.is_empty() || name.starts_with("python")
}

fn is_bash_binary(binary: &str) -> bool {
    let name = binary.trim().rsplit('/').next().unwrap_or("");
    matches!(name, "bash" | "sh" | "zsh")
}

/// The argv of the task. mirrors the command building at the end of Worker.execute.
fn entry_command(
    task: &Task,
    prepared: &Prepared,
    optimization: u8,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let binary = task.script.binary.clone().unwrap_or_default();
    let entry = prepared.layout.entry_point.trim().to_string();
    let script_dir = &prepared.layout.script_dir;
    if is_bash_binary(&binary) {
        let shell = prepared_shell(env);
        let mut argv = vec![shell];
        if let Some(rest) = entry.strip_prefix("-c") {
            argv.push("-c".into());
            argv.push(rest.trim().to_string());
        } else if script_dir.join(&entry).exists() {
            argv.push(entry);
        } else {
            argv.extend(split_words(&entry)?);
        }
        return Ok(argv);
    }
    let mut argv = vec![prepared.env.python.display().to_string(), "-u".to_string()];
    if optimization > 0 {
        argv.push(format!("-{}", "O".repeat(optimization.min(2) as usize)));
    }
    if entry.split_whitespace().next() == Some("-m") {
        argv.extend(split_words(&entry)?);
    } else if entry.is_empty() {
        return Err(anyhow!(
            "the task has no entry point (script.entry_point is empty); set it in the task"
        ));
    } else if script_dir.join(&entry).exists() {
        argv.push(entry);
    } else {
        argv.extend(split_words(&entry)?);
        // mirrors Worker.execute: the message shows the python arguments as a Python list.
        println!(
            "INFO: script entrypoint contains args, parsing and passing directly to execution: {}",
            python_list(&argv[1..])
        );
    }
    Ok(argv)
}

/// `repr()` of a Python list of plain strings: `['-u', 'a.py']`.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The shell of a bash task: `$SHELL`, else bash, else sh. mirrors Worker.execute.
fn prepared_shell(env: &BTreeMap<String, String>) -> String {
    if let Some(shell) = env
        .get(crate::env::EnvVars::SHELL)
        .filter(|s| !s.trim().is_empty())
    {
        shell.clone()
    } else if Path::new("/bin/bash").exists() {
        "/bin/bash".into()
    } else {
        "/bin/sh".into()
    }
}

fn split_words(s: &str) -> Result<Vec<String>> {
    shlex::split(s).ok_or_else(|| anyhow!("cannot parse the entry point {s:?} (unbalanced quotes)"))
}

/// The task's environment. mirrors Worker._get_job_os_envs and the PYTHONPATH and clean-up steps
/// at the end of Worker.execute.
fn task_env(cfg: &ExecuteConfig, task_id: &str, prepared: &Prepared) -> BTreeMap<String, String> {
    let mut env = cfg.base_env.clone();
    for (clearml, trains, value) in [
        (
            EnvVars::CLEARML_TASK_ID,
            EnvVars::TRAINS_TASK_ID,
            task_id.to_string(),
        ),
        (
            EnvVars::CLEARML_LOG_LEVEL,
            EnvVars::TRAINS_LOG_LEVEL,
            cfg.log_level.clone(),
        ),
        (
            EnvVars::CLEARML_LOG_TASK_TO_BACKEND,
            EnvVars::TRAINS_LOG_TASK_TO_BACKEND,
            "0".to_string(),
        ),
    ] {
        env.insert(clearml.into(), value.clone());
        env.insert(trains.into(), value);
    }
    if let Some(file) = &cfg.config_file {
        env.insert(
            EnvVars::CLEARML_CONFIG_FILE.into(),
            file.display().to_string(),
        );
        env.insert(
            EnvVars::TRAINS_CONFIG_FILE.into(),
            file.display().to_string(),
        );
    }
    env.insert(EnvVars::CLEARML_WORKER_ID.into(), cfg.worker_id.clone());
    env.insert(EnvVars::TRAINS_WORKER_ID.into(), cfg.worker_id.clone());
    for key in [
        EnvVars::CLEARML_APT_INSTALL,
        EnvVars::TRAINS_APT_INSTALL,
        "UV_CACHE_DIR",
        "UV_PYTHON_CACHE_DIR",
        "UV_PYTHON_INSTALL_DIR",
    ] {
        env.remove(key);
    }
    // PYTHONPATH: the script folder, the entry point's folder, then the interpreter's own path.
    let base_dir = match (&prepared.layout.repo_root, cfg.force_git_root_python_path) {
        (Some(root), true) => root.clone(),
        _ => prepared.layout.script_dir.clone(),
    };
    let mut parts = vec![base_dir.display().to_string()];
    if !cfg.force_git_root_python_path && !prepared.layout.entry_point.is_empty() {
        let first = prepared
            .layout
            .entry_point
            .split_whitespace()
            .next()
            .unwrap_or("");
        if first != "-m"
            && let Some(parent) = base_dir.join(first).parent()
        {
            parts.push(parent.display().to_string());
        }
    }
    let mut python_path = parts.join(":") + ":";
    if let Some(sys_path) = interpreter_sys_path(&prepared.env.python, &prepared.layout.script_dir)
    {
        python_path.push_str(&sys_path);
    }
    if let Some(extra) = cfg.extra_python_path.as_deref().filter(|s| !s.is_empty()) {
        python_path = format!("{python_path}:{extra}");
    }
    let joined = match env.get("PYTHONPATH").filter(|s| !s.is_empty()) {
        Some(existing) => format!("{existing}:{python_path}"),
        None => python_path,
    };
    env.insert("PYTHONPATH".into(), joined);
    env
}

/// The interpreter's `sys.path`, joined with `:` (mirrors helper/base.py: get_python_path).
fn interpreter_sys_path(python: &Path, cwd: &Path) -> Option<String> {
    let out = std::process::Command::new(python)
        .args(["-c", "import sys; print(':'.join(sys.path))"])
        .current_dir(cwd)
        .env_remove("PYTHONPATH")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The task's `Environment` hyper-parameter section (mirrors Worker._get_task_os_env).
/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

pub(crate) async fn environment_hyperparams(
    client: &Client,
    task_id: &str,
) -> Vec<(String, String)> {
    match client
        .tasks()
        .get_hyper_params(&[task_id.to_string()])
        .await
    {
        Ok(params) => params
            .into_iter()
            .flat_map(|p| p.hyperparams)
            .filter(|h| h.section == "Environment")
            .filter(|h| {
                // A task names these: only a plain variable name may become one (a name holding
                // `=` would set another variable, past the check that keeps the agent's own).
                let ok = is_variable_name(&h.name);
                if !ok {
                    println!(
                        "Warning: the task's Environment parameter {:?} is not a variable name (letters, digits, `_`); skipped",
                        h.name
                    );
                }
                ok
            })
            .map(|h| (h.name, h.value))
            .collect(),
        Err(e) => {
            println!("Warning: could not read the task's Environment section: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_variables() {
        for ok in ["A", "_x", "TASK_VAR2"] {
            assert!(is_variable_name(ok), "{ok}");
        }
        for bad in ["", "1A", "CLEARML_TASK_ID=forged", "A B", "A-B", "X\0"] {
            assert!(!is_variable_name(bad), "{bad:?}");
        }
    }
}
