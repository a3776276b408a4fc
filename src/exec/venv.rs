//! Python environments: venv creation (virtualenv/venv or uv), requirement installation with pip
//! or uv, and the freeze; the interpreter is `python.rs`'s choice and the venv cache
//! `venv_cache.rs`'s. Which requirements to install is decided by the caller (`requirements.rs`
//! helps); the task's code is `git.rs`'s job.
//!
//! Every command line and its output goes to the caller's log callback. Commands run with exactly
//! the caller's environment map (minus `PYTHONPATH` for pip, as the Python agent does).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::command::{StreamOutcome, display_command, run_streamed};
use super::project_env::{self, ProjectOptions};
pub(crate) use super::python::which;
pub use super::python::{
    PythonInfo, PythonOptions, find_python, requested_python_version, venv_dir,
};
use super::pytorch::{self, TorchOptions};
use super::requirements::{
    CacheKeyContext, InstallOrder, InstallUnit, PIP_MANAGER_CLASS, Requirements, cache_key,
    external_lines, install_steps, lines_of_files, meaningful_lines, pip_flags, pip_pin_args,
    requested_pip_version, version_matches_rules,
};
use super::venv_cache::{cache_lookup, cache_store, entry_holds_keys};
use super::venv_state::{self, VenvState};

/// `agent.package_manager.type` values this module handles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PackageManagerKind {
    #[default]
    Pip,
    Uv,
    /// pip for the task's requirements; `poetry install` for a repository with poetry files.
    Poetry,
}

/// `agent.venvs_cache.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct VenvCacheOptions {
    pub path: PathBuf,
    pub max_entries: usize,
    pub free_space_threshold_gb: f64,
    /// `agent.venvs_cache.lock_timeout` (default 30 s): how long to wait for the cache's lock.
    pub lock_timeout: Duration,
}

/// Everything `build_env` needs besides the interpreter and the requirements.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvOptions {
    pub manager: PackageManagerKind,
    /// `agent.venvs_dir`; the venv is `<venvs_dir>/<X.Y>`.
    pub venvs_dir: PathBuf,
    /// `None` disables the venv cache.
    pub venvs_cache: Option<VenvCacheOptions>,
    /// `agent.package_manager.system_site_packages`.
    pub system_site_packages: bool,
    /// `agent.package_manager.force_upgrade`: `--upgrade` on installs.
    pub force_upgrade: bool,
    /// `agent.package_manager.extra_index_url`.
    pub extra_index_urls: Vec<String>,
    /// `agent.package_manager.extra_pip_install_flags` / `CLEARML_EXTRA_PIP_INSTALL_FLAGS`.
    pub extra_pip_install_flags: Vec<String>,
    /// `agent.package_manager.pip_legacy_resolver`: pip versions that install with
    /// `--use-deprecated=legacy-resolver`.
    pub pip_legacy_resolver: Vec<String>,
    /// `agent.package_manager.pip_version`: each entry becomes `pip<spec>` (markers allowed).
    pub pip_version: Vec<String>,
    /// The uv executable; `None` looks `uv` up in `PATH`, else pip-installs it into `<venv>_uv`.
    pub uv_binary: Option<PathBuf>,
    /// `agent.package_manager.uv_version`: forces the side-venv install of that uv version.
    pub uv_version: Option<String>,
    /// The skip-venv modes (`CLEARML_AGENT_SKIP_PIP_VENV_INSTALL`, `..._SKIP_PYTHON_ENV_INSTALL`):
    /// no venv, nothing installed, the interpreter is used as is.
    pub skip_install: bool,
    /// `CLEARML_AGENT_SKIP_PIP_VENV_INSTALL`: no venv; the requirements are installed into the
    /// interpreter itself (the one that variable names, else the one found).
    pub no_venv: bool,
    /// Directory installs run in (the task's repository copy or script dir), so relative paths
    /// in the requirements (`-e .`, `./pkg`) resolve as in the Python agent (`package_api.cwd`).
    pub install_cwd: Option<PathBuf>,
    /// Priority/post packages of `agent.package_manager.*`.
    pub install_order: InstallOrder,
    /// Docker image of the task (cache key only).
    pub docker_image: Option<String>,
    /// `agent.cuda_version` (cache key only).
    pub cuda_version: Option<String>,
    /// The repository's project folder (`pyproject.toml`, `uv.lock`, `poetry.lock`), where uv
    /// and poetry install from instead of the task's requirement lines.
    pub project_dir: Option<PathBuf>,
    /// The uv sync and poetry settings.
    pub project: ProjectOptions,
    /// `agent.package_manager.uv_unsafe_best_match`: uv calls get
    /// `UV_INDEX_STRATEGY=unsafe-best-match` (unless the variable is set).
    pub uv_unsafe_best_match: bool,
    /// The venv's folder, when it is not `<venvs_dir>/<X.Y>` (`build --target`).
    pub venv_path: Option<PathBuf>,
    /// How PyTorch lines are resolved when the venv is built (`None`: installed as written).
    /// The venv cache key is the task's own lines either way.
    pub pytorch: Option<TorchOptions>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            manager: PackageManagerKind::Pip,
            venvs_dir: PathBuf::from("venvs-builds"),
            venvs_cache: None,
            system_site_packages: false,
            force_upgrade: false,
            extra_index_urls: Vec::new(),
            extra_pip_install_flags: Vec::new(),
            pip_legacy_resolver: vec![">=20.3,<24.3".into()],
            // mirrors the default `agent.package_manager.pip_version` of clearml.conf
            pip_version: vec![
                "<20.2 ; python_version < '3.10'".into(),
                "<22.3 ; python_version >= '3.10' and python_version <= '3.11'".into(),
                ">=23,<26 ; python_version >= '3.12'".into(),
            ],
            uv_binary: None,
            uv_version: None,
            skip_install: false,
            no_venv: false,
            install_cwd: None,
            install_order: InstallOrder::default(),
            docker_image: None,
            cuda_version: None,
            project_dir: None,
            project: ProjectOptions::default(),
            uv_unsafe_best_match: false,
            venv_path: None,
            pytorch: None,
        }
    }
}

/// A ready environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltEnv {
    /// The venv folder (`<venvs_dir>/<X.Y>`).
    pub venv: PathBuf,
    /// The interpreter to run the task with.
    pub python: PathBuf,
    /// `pip freeze` of the venv (`None` when nothing could be frozen, e.g. skip-install mode).
    pub frozen: Option<String>,
    /// True when the venv came from the venv cache and nothing was installed.
    pub cache_hit: bool,
    /// The cache entry used or stored.
    pub cache_entry: Option<PathBuf>,
}

/// Why building the environment failed; each variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "Python executable with version '{requested}' not found in PATH (tried: {tried}); install it or set agent.python_binary"
    )]
    PythonNotFound { requested: String, tried: String },
    #[error("failed creating the virtual environment {path}: {cause}")]
    CreateVenv { path: PathBuf, cause: String },
    #[error(
        "cannot run uv ({cause}); install it (`pip install uv`) or use agent.package_manager.type: pip"
    )]
    UvMissing { cause: String },
    #[error("failed installing {what}: {cause}")]
    InstallRequirements { what: String, cause: String },
    #[error("failed freezing the environment: {cause}")]
    Freeze { cause: String },
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
}

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EnvError {
    let context = context.into();
    move |cause| EnvError::Io { context, cause }
}

/// Creates (or reuses) the venv `<venvs_dir>/<X.Y>`, takes it from the venv cache when the same
/// requirements were built before, else installs the task's requirements (or, when the task has
/// none, the repository's `requirements.txt` files), freezes it and stores it in the cache.
/// Mirrors clearml_agent/commands/worker.py: Worker.install_virtualenv and
/// Worker.install_requirements_for_package_api.
///
/// Call order for a task: [`find_python`], then `git::prepare_source` into
/// `venv_dir(..)/task_repository` and `venv_dir(..)/code`, then
/// `requirements::find_repo_requirements`, then this (with `install_cwd` = the repository copy).
/// A cache hit keeps `task_repository` and `code`, so the code survives in either order.
pub fn build_env(
    python: &PythonInfo,
    requirements: &Requirements,
    repo_requirements_files: &[PathBuf],
    opts: &EnvOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<BuiltEnv, EnvError> {
    let venv = opts
        .venv_path
        .clone()
        .unwrap_or_else(|| venv_dir(&opts.venvs_dir, python));
    if opts.skip_install {
        fs::create_dir_all(&venv).map_err(io_err(format!("creating {}", venv.display())))?;
        return Ok(BuiltEnv {
            venv,
            python: python.exe.clone(),
            frozen: None,
            cache_hit: false,
            cache_entry: None,
        });
    }
    let mut pip_env = env.clone();
    pip_env.remove("PYTHONPATH");
    if opts.no_venv {
        return build_in_interpreter(
            python,
            venv,
            requirements,
            repo_requirements_files,
            opts,
            &pip_env,
            log,
        );
    }
    let venv_python = venv.join("bin").join("python");

    // The venv cache is pip-only, as in the Python agent (not used with uv or poetry).
    let cache = match (&opts.venvs_cache, opts.manager) {
        (Some(c), PackageManagerKind::Pip) => Some(c),
        (None, _) => {
            log(
                "::: Python virtual environment cache is DISABLED. To accelerate spin-up time set `agent.venvs_cache.path=~/.clearml/venvs-cache` :::",
            );
            None
        }
        _ => None,
    };
    let key_ctx = CacheKeyContext {
        manager_class: PIP_MANAGER_CLASS.to_string(),
        docker_image: opts.docker_image.clone(),
        cuda_version: opts.cuda_version.clone(),
        python: python.name.clone(),
    };
    let requested_key = cache_key(
        &key_ctx,
        requirements.pip.as_deref().unwrap_or(""),
        requirements.conda.as_deref().unwrap_or(""),
    );
    if let (Some(c), Some(key)) = (cache, &requested_key)
        && let Some(entry) = cache_lookup(c, std::slice::from_ref(key), &venv, log)?
    {
        log(&format!(
            "::: Using Cached environment {} :::",
            entry.display()
        ));
        // mirrors worker.py: Worker.execute (is_cached: "reinstalling git / local packages")
        let external = external_lines(&requirements.pip_lines());
        if !external.is_empty() {
            log("reinstalling git / local packages");
            let installer = Installer::new(opts, None, &venv_python, &pip_env, log)?;
            install_lines_file(&installer, &external, opts, "the git / local packages")?;
        }
        // The freeze stored with the entry is the venv's as it was cached; only reinstalled
        // git/local packages can change it, and then pip is asked again.
        let stored = fs::read_to_string(entry.join(FREEZE_MEMO)).ok();
        let frozen = match stored {
            Some(text) if external.is_empty() => Some(text),
            _ => freeze(None, &venv_python, &pip_env, log)?,
        };
        if external.is_empty() {
            VenvState::record(&venv, Some(&entry), frozen.as_deref());
        } else {
            // reinstalled packages make the venv differ from the entry
            venv_state::forget(&venv);
        }
        return Ok(BuiltEnv {
            venv,
            python: venv_python,
            frozen,
            cache_hit: true,
            cache_entry: Some(entry),
        });
    }

    let uv = match opts.manager {
        PackageManagerKind::Uv => Some(resolve_uv(python, &venv, opts, env, log)?),
        PackageManagerKind::Pip | PackageManagerKind::Poetry => None,
    };
    if uv.is_some() && opts.uv_unsafe_best_match {
        // mirrors UvConfig.get_run_argv (uv_unsafe_best_match)
        if let Some(set) = pip_env.get("UV_INDEX_STRATEGY") {
            log(&format!(
                "INFO: skipping uv_unsafe_best_match, UV_INDEX_STRATEGY already set to '{set}'"
            ));
        } else if opts
            .extra_pip_install_flags
            .iter()
            .any(|f| f.starts_with("--index-strategy"))
        {
            log("INFO: skipping uv_unsafe_best_match, --index-strategy already passed to uv");
        } else {
            pip_env.insert("UV_INDEX_STRATEGY".into(), "unsafe-best-match".into());
        }
    }
    create_venv(
        python,
        &venv,
        uv.as_deref(),
        opts.system_site_packages,
        env,
        log,
    )?;

    // A repository that describes its own environment (uv or poetry project files) installs
    // that instead of the task's requirement lines; nothing of it is cached, as in the Python
    // agent.
    if let Some(project) = opts.project_dir.as_deref() {
        let frozen = match (opts.manager, uv.as_deref()) {
            (PackageManagerKind::Uv, Some(uv)) => {
                if project_env::uv_sync(
                    uv,
                    project,
                    &venv,
                    &opts.project,
                    &opts.extra_index_urls,
                    &pip_env,
                    log,
                )? {
                    Some(freeze(Some(uv), &venv_python, &pip_env, log)?)
                } else {
                    None
                }
            }
            (PackageManagerKind::Poetry, _) => {
                project_env::poetry_install(python, project, &venv, &opts.project, &pip_env, log)
                    .map(|poetry| {
                        project_env::poetry_freeze(&poetry, project, &venv, &pip_env).map_or_else(
                            || freeze(None, &venv_python, &pip_env, log),
                            |f| Ok(Some(f)),
                        )
                    })
                    .transpose()?
            }
            _ => None,
        };
        if let Some(frozen) = frozen {
            venv_state::forget(&venv);
            return Ok(BuiltEnv {
                venv,
                python: venv_python,
                frozen,
                cache_hit: false,
                cache_entry: None,
            });
        }
    }

    // The PyTorch index and pins (only when something is installed: a cache hit probes nothing).
    let mut task_lines = requirements.pip_lines();
    let with_torch_index;
    let opts = match &opts.pytorch {
        Some(torch) => {
            let repo_lines = if task_lines.is_empty() {
                lines_of_files(repo_requirements_files)
            } else {
                Vec::new()
            };
            match pytorch::plan_for_host_blocking(torch, &task_lines, &repo_lines) {
                Some(plan) => {
                    for message in &plan.messages {
                        log(message);
                    }
                    if !task_lines.is_empty() {
                        task_lines = plan.lines;
                    }
                    let mut o = opts.clone();
                    o.extra_index_urls.extend(plan.index);
                    with_torch_index = o;
                    &with_torch_index
                }
                None => opts,
            }
        }
        None => opts,
    };

    let installer = Installer::new(opts, uv.as_deref(), &venv_python, &pip_env, log)?;
    if opts.manager == PackageManagerKind::Pip {
        let pins = match requested_pip_version(requirements) {
            Some(v) => pip_pin_args(&[v]),
            None => pip_pin_args(&opts.pip_version),
        };
        let pins = if pins.is_empty() {
            vec!["pip".to_string()]
        } else {
            pins
        };
        let mut args = pins.clone();
        args.push("--upgrade".into());
        // The Python agent runs this upgrade before every task, a package-index round trip each
        // time. A reused venv remembers the pin it was given and the pip it then had; when both
        // are unchanged the upgrade cannot change anything and is skipped.
        let memo = PipPinMemo::new(&venv, &args);
        if memo.is_current() {
            log(&format!(
                "pip already satisfies {} in this venv, skipping the upgrade",
                pins.join(" ")
            ));
        } else {
            installer.install(&args, "pip", false)?;
            memo.record();
        }
        // Cython is installed only for interpreters below 3.9, the documented intent of
        // Worker.install_requirements_for_package_api; the Python agent's quirk of always installing
        // it when the task binary is plain `python3` (unparsable minor) is not reproduced.
        if python.version.0 == 3 && python.version.1 < 9 {
            installer.install(&["Cython".to_string()], "Cython", true)?;
        }
    }

    install_requirements(&installer, &task_lines, repo_requirements_files, opts, log)?;

    // mirrors Worker.execute: skip_freeze when there are no requirements and no repository
    // (nothing was installed, so there is nothing to record or cache).
    if task_lines.is_empty() && repo_requirements_files.is_empty() && opts.install_cwd.is_none() {
        return Ok(BuiltEnv {
            venv,
            python: venv_python,
            frozen: None,
            cache_hit: false,
            cache_entry: None,
        });
    }
    // An unchanged venv (same packages as when it was last frozen) keeps its freeze, and when it
    // already is a cache entry under every key it would be stored with, it is not stored again.
    let unchanged = VenvState::current(&venv);
    let frozen = match &unchanged {
        Some(state) => {
            log("the virtual environment is unchanged since its last freeze, reusing it");
            state.freeze.clone()
        }
        None => freeze(uv.as_deref(), &venv_python, &pip_env, log)?,
    };
    let mut cache_entry = None;
    if let Some(c) = cache {
        let mut keys: Vec<String> = requested_key.into_iter().collect();
        if let Some(f) = &frozen
            && let Some(k) = cache_key(&key_ctx, f, "")
        {
            keys.push(k);
        }
        keys.sort();
        keys.dedup();
        let stored = unchanged
            .as_ref()
            .and_then(|s| s.entry.clone())
            .filter(|e| entry_holds_keys(e, &keys));
        if let Some(entry) = stored {
            log(&format!(
                "the venv cache entry {} already holds this environment",
                entry.display()
            ));
            cache_entry = Some(entry);
        } else if !keys.is_empty() {
            cache_entry = cache_store(c, &keys, &venv, log)?;
            if let (Some(entry), Some(f)) = (&cache_entry, &frozen) {
                let _ = fs::write(entry.join(FREEZE_MEMO), f);
            }
        }
    }
    VenvState::record(&venv, cache_entry.as_deref(), frozen.as_deref());
    Ok(BuiltEnv {
        venv,
        python: venv_python,
        frozen,
        cache_hit: false,
        cache_entry,
    })
}

/// The task's requirement lines, else the repository's requirements files.
fn install_requirements(
    installer: &Installer,
    task_lines: &[String],
    repo_requirements_files: &[PathBuf],
    opts: &EnvOptions,
    log: &dyn Fn(&str),
) -> Result<(), EnvError> {
    if !task_lines.is_empty() {
        log("Found task requirements section, trying to install");
        install_task_lines(installer, task_lines, opts, log)?;
        log("task requirements installation passed");
    } else if !repo_requirements_files.is_empty() {
        for f in repo_requirements_files {
            log(&format!("Trying pip install: {}", f.display()));
            installer.install(
                &["-r".to_string(), f.to_string_lossy().into_owned()],
                &f.display().to_string(),
                true,
            )?;
        }
    } else {
        log("Warning: installing NO task requirements or repository requirements");
    }
    Ok(())
}

/// `CLEARML_AGENT_SKIP_PIP_VENV_INSTALL`: an empty venv folder (for the code), the requirements
/// installed with pip into the interpreter itself, and its freeze. No venv cache, no pip
/// upgrade. mirrors Worker.install_virtualenv with skip_pip_venv_install (SystemPip).
fn build_in_interpreter(
    python: &PythonInfo,
    venv: PathBuf,
    requirements: &Requirements,
    repo_requirements_files: &[PathBuf],
    opts: &EnvOptions,
    pip_env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<BuiltEnv, EnvError> {
    fs::create_dir_all(&venv).map_err(io_err(format!("creating {}", venv.display())))?;
    log(&format!(
        "Python interpreter {} is used as is (CLEARML_AGENT_SKIP_PIP_VENV_INSTALL): no virtual environment",
        python.exe.display()
    ));
    let installer = Installer::new(opts, None, &python.exe, pip_env, log)?;
    let task_lines = requirements.pip_lines();
    install_requirements(&installer, &task_lines, repo_requirements_files, opts, log)?;
    let frozen = freeze(None, &python.exe, pip_env, log)?;
    Ok(BuiltEnv {
        venv,
        python: python.exe.clone(),
        frozen,
        cache_hit: false,
        cache_entry: None,
    })
}

/// Installs the task's own requirement lines: priority packages one by one, the main set from a
/// temporary `-r` file, then the post packages. Mirrors clearml_agent/helper/package/priority_req.py
/// and post_req.py as driven by RequirementsManager.replace / post_install.
fn install_task_lines(
    installer: &Installer,
    lines: &[String],
    opts: &EnvOptions,
    log: &dyn Fn(&str),
) -> Result<(), EnvError> {
    let mut dropped: Vec<String> = Vec::new();
    for step in install_steps(lines, &opts.install_order) {
        let result = match &step.unit {
            InstallUnit::Line(line) => installer.install(std::slice::from_ref(line), line, true),
            InstallUnit::File(main) => {
                let main: Vec<String> = main
                    .iter()
                    .filter(|l| !dropped.contains(l))
                    .cloned()
                    .collect();
                if main.is_empty() {
                    continue;
                }
                install_lines_file(installer, &main, opts, "the task requirements")
            }
        };
        match (result, &step.unit) {
            (Ok(()), _) => {}
            (Err(e), InstallUnit::Line(line)) if step.optional => {
                log(&format!(
                    "WARNING: optional package {line} was not installed: {e}"
                ));
                dropped.push(line.clone());
            }
            (Err(e), _) => return Err(e),
        }
    }
    Ok(())
}

/// `pip install -r <temp file holding lines>`.
fn install_lines_file(
    installer: &Installer,
    lines: &[String],
    opts: &EnvOptions,
    what: &str,
) -> Result<(), EnvError> {
    fs::create_dir_all(&opts.venvs_dir)
        .map_err(io_err(format!("creating {}", opts.venvs_dir.display())))?;
    // Removed when dropped, whatever the install did.
    let mut file = tempfile::Builder::new()
        .prefix("cached-reqs-")
        .suffix(".txt")
        .tempfile_in(&opts.venvs_dir)
        .map_err(io_err(format!(
            "creating a file in {}",
            opts.venvs_dir.display()
        )))?;
    std::io::Write::write_all(&mut file, format!("{}\n", lines.join("\n")).as_bytes())
        .map_err(io_err(format!("writing {}", file.path().display())))?;
    installer.install(
        &["-r".to_string(), file.path().to_string_lossy().into_owned()],
        what,
        true,
    )
}

/// Creates the venv unless it already has an interpreter (an existing venv is reused and packages
/// are installed on top). pip: `python -m virtualenv`, falling back to `python -m venv`; uv:
/// `uv venv --python <exe>`. Mirrors clearml_agent/helper/package/pip_api/venv.py: VirtualenvPip.create
/// and helper/package/uv_api.py. (The Python agent checks the folder; checking `bin/python` also
/// copes with a folder that only holds `task_repository`.)
fn create_venv(
    python: &PythonInfo,
    venv: &Path,
    uv: Option<&Path>,
    system_site_packages: bool,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<(), EnvError> {
    if venv.join("bin").join("python").exists() {
        log(&format!(
            "Reusing the virtual environment {}",
            venv.display()
        ));
        return Ok(());
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    }
    let site = system_site_packages.then(|| OsString::from("--system-site-packages"));
    let run = |program: &Path, args: Vec<OsString>| -> Result<StreamOutcome, EnvError> {
        log(&display_command(program, &args));
        let mut cmd = Command::new(program);
        cmd.args(&args).env_clear().envs(env);
        run_streamed(cmd, None, log).map_err(|e| EnvError::CreateVenv {
            path: venv.to_path_buf(),
            cause: format!("cannot run {}: {e}", program.display()),
        })
    };
    let args_for = |module: &str| {
        let mut a: Vec<OsString> = vec!["-m".into(), module.into(), venv.into()];
        a.extend(site.clone());
        a
    };
    let mut created = false;
    if let Some(uv) = uv {
        // `--allow-existing`: the task's repository may already be cloned into the venv folder
        // (`task_repository`), and uv refuses a folder that is not empty without it.
        let mut a: Vec<OsString> = vec![
            "venv".into(),
            "--allow-existing".into(),
            "--python".into(),
            python.exe.clone().into(),
            venv.into(),
        ];
        a.extend(site.clone());
        let out = run(uv, a)?;
        if out.success {
            created = true;
        } else {
            // mirrors uv_api.py: UvAPI.create (falls back to virtualenv/venv)
            log(&format!(
                "ERROR: UV venv creation failed: {}\n\nINFO: UV environment creation failed - reverting to VirtualEnv !!!",
                out.failure_summary()
            ));
        }
    }
    if !created {
        let out = run(&python.exe, args_for("virtualenv"))?;
        if !out.success || !venv.is_dir() {
            log(&format!(
                "WARNING: virtualenv call failed: {}\n INFO: Creating virtual environment with venv",
                out.failure_summary()
            ));
            let out = run(&python.exe, args_for("venv"))?;
            if !out.success {
                return Err(EnvError::CreateVenv {
                    path: venv.to_path_buf(),
                    cause: out.failure_summary(),
                });
            }
        }
    }
    if !venv.join("bin").join("python").exists() {
        return Err(EnvError::CreateVenv {
            path: venv.to_path_buf(),
            cause: "no bin/python after creation".into(),
        });
    }
    Ok(())
}

/// The uv executable: `uv_binary`, else `uv` from `PATH` (when no `uv_version` is pinned), else
/// uv installed with pip into the side venv `<venv>_uv`.
/// Mirrors clearml_agent/helper/package/uv_api.py: UvAPI.install_uv_package.
fn resolve_uv(
    python: &PythonInfo,
    venv: &Path,
    opts: &EnvOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<PathBuf, EnvError> {
    if let Some(p) = &opts.uv_binary {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(EnvError::UvMissing {
                cause: format!("{} does not exist", p.display()),
            })
        };
    }
    side_tool(
        python,
        venv,
        &SideTool {
            name: "uv",
            found: "Notice: `uv` was found, no specific version required, skipping uv installation",
        },
        opts.uv_version.as_deref(),
        env,
        log,
    )
    .map_err(|cause| EnvError::UvMissing { cause })
}

/// A tool the agent runs beside the task's venv (uv, poetry).
pub(crate) struct SideTool<'a> {
    /// The command and the PyPI project (`uv`, `poetry`).
    pub name: &'a str,
    /// Said when the one on `PATH` is used.
    pub found: &'a str,
}

/// `tool` from `PATH` when no version is pinned (`pin`: `1.2`, `>=1.2`), else the one already in
/// the side venv `<venv>_<name>`, else pip-installed there. mirrors the `install_uv_package` of
/// uv_api.py and PoetryConfig.initialize (which install into the agent's own interpreter).
pub(crate) fn side_tool(
    python: &PythonInfo,
    venv: &Path,
    tool: &SideTool<'_>,
    pin: Option<&str>,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<PathBuf, String> {
    let pin = pin.map(|v| v.replace(' ', "")).filter(|v| !v.is_empty());
    let side = PathBuf::from(format!("{}_{}", venv.display(), tool.name));
    let side_bin = side.join("bin").join(tool.name);
    if pin.is_none() {
        if let Some(found) = which(tool.name, env) {
            log(tool.found);
            return Ok(found);
        }
        if side_bin.is_file() {
            return Ok(side_bin);
        }
    }
    let spec = match &pin {
        Some(v) if v.contains(['=', '~', '<', '>']) => format!("{}{v}", tool.name),
        Some(v) => format!("{}=={v}", tool.name),
        None => tool.name.to_string(),
    };
    log(&format!(
        "Installing `{}` ({spec}) into {}",
        tool.name,
        side.display()
    ));
    let mut pip_env = env.clone();
    pip_env.remove("PYTHONPATH");
    let pip_install = |pip_python: &Path, target: Option<&Path>| -> Result<bool, String> {
        let mut args: Vec<OsString> = vec!["-m".into(), "pip".into()];
        if let Some(t) = target {
            args.extend(["--python".into(), t.as_os_str().to_owned()]);
        }
        args.extend([
            "--disable-pip-version-check".into(),
            "install".into(),
            spec.clone().into(),
            "--upgrade".into(),
        ]);
        log(&display_command(pip_python, &args));
        let mut cmd = Command::new(pip_python);
        cmd.args(&args).env_clear().envs(&pip_env);
        let out = run_streamed(cmd, None, log)
            .map_err(|e| format!("cannot run {}: {e}", pip_python.display()))?;
        if out.success && side_bin.is_file() {
            Ok(true)
        } else if target.is_some() {
            Ok(false)
        } else {
            Err(format!(
                "installing {spec} failed: {}",
                out.failure_summary()
            ))
        }
    };
    // A venv without pip, filled by the interpreter's own pip (`pip --python`, pip 22.3+): no
    // seconds spent seeding a pip the tool does not need. Where that cannot work (no venv
    // module, no or an older pip), the side venv gets its own pip, as the Python agent's does.
    let side_python = side.join("bin").join("python");
    let side_has_pip = side.join("bin").join("pip").exists();
    if !side_has_pip && (side_python.exists() || bare_venv(python, &side, env, log)) {
        if pip_install(&python.exe, Some(&side_python))? {
            return Ok(side_bin);
        }
        log(
            "INFO: installing with the interpreter's pip failed, giving the tool's venv its own pip",
        );
        let _ = fs::remove_dir_all(&side);
    }
    create_venv(python, &side, None, false, env, log).map_err(|e| e.to_string())?;
    pip_install(&side_python, None)?;
    Ok(side_bin)
}

/// `python -m venv --without-pip <dir>`; false (and nothing left behind) when that fails.
fn bare_venv(
    python: &PythonInfo,
    dir: &Path,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> bool {
    let args: Vec<OsString> = vec![
        "-m".into(),
        "venv".into(),
        "--without-pip".into(),
        dir.into(),
    ];
    log(&display_command(&python.exe, &args));
    let mut cmd = Command::new(&python.exe);
    cmd.args(&args).env_clear().envs(env);
    let ok = run_streamed(cmd, None, log).is_ok_and(|o| o.success)
        && dir.join("bin").join("python").exists();
    if !ok {
        let _ = fs::remove_dir_all(dir);
    }
    ok
}

/// Runs `pip install` / `uv pip install` into the venv.
struct Installer<'a> {
    cwd: Option<PathBuf>,
    legacy_rules: Vec<String>,
    program: PathBuf,
    prefix: Vec<OsString>,
    flags: Vec<OsString>,
    env: &'a HashMap<String, String>,
    log: &'a dyn Fn(&str),
}

impl<'a> Installer<'a> {
    fn new(
        opts: &EnvOptions,
        uv: Option<&Path>,
        venv_python: &Path,
        env: &'a HashMap<String, String>,
        log: &'a dyn Fn(&str),
    ) -> Result<Self, EnvError> {
        let flags: Vec<OsString> = pip_flags(
            &opts.extra_index_urls,
            &opts.extra_pip_install_flags,
            opts.force_upgrade,
        )
        .into_iter()
        .map(OsString::from)
        .collect();
        Ok(match uv {
            None => Self {
                cwd: opts.install_cwd.clone(),
                legacy_rules: opts.pip_legacy_resolver.clone(),
                program: venv_python.to_path_buf(),
                prefix: vec![
                    "-m".into(),
                    "pip".into(),
                    "--disable-pip-version-check".into(),
                    "install".into(),
                ],
                flags,
                env,
                log,
            },
            Some(uv) => Self {
                cwd: opts.install_cwd.clone(),
                legacy_rules: Vec::new(),
                program: uv.to_path_buf(),
                prefix: vec![
                    "pip".into(),
                    "install".into(),
                    "--python".into(),
                    venv_python.into(),
                ],
                flags,
                env,
                log,
            },
        })
    }

    /// `pip install <args> <flags>`; `legacy` adds the legacy-resolver flag when the venv's pip
    /// matches `agent.package_manager.pip_legacy_resolver` (default `>=20.3,<24.3`).
    fn install(&self, args: &[String], what: &str, legacy: bool) -> Result<(), EnvError> {
        let mut all = self.prefix.clone();
        all.extend(args.iter().map(OsString::from));
        all.extend(self.flags.iter().cloned());
        if legacy
            && !self.legacy_rules.is_empty()
            && self.prefix.first().is_some_and(|p| p == "-m")
            && self.pip_wants_legacy_resolver()
        {
            (self.log)(
                "INFO: Using legacy resolver for PIP to avoid inconsistency with package versions!",
            );
            all.push("--use-deprecated=legacy-resolver".into());
        }
        (self.log)(&display_command(&self.program, &all));
        let mut cmd = Command::new(&self.program);
        cmd.args(&all).env_clear().envs(self.env);
        if let Some(dir) = self.cwd.as_deref().filter(|d| d.is_dir()) {
            cmd.current_dir(dir);
        }
        let out = run_streamed(cmd, None, self.log).map_err(|e| EnvError::InstallRequirements {
            what: what.to_string(),
            cause: format!("cannot run {}: {e}", self.program.display()),
        })?;
        if out.success {
            Ok(())
        } else {
            Err(EnvError::InstallRequirements {
                what: what.to_string(),
                cause: out.failure_summary(),
            })
        }
    }

    fn pip_wants_legacy_resolver(&self) -> bool {
        let out = Command::new(&self.program)
            .args(["-m", "pip", "--disable-pip-version-check", "--version"])
            .env_clear()
            .envs(self.env)
            .stdin(Stdio::null())
            .output();
        let Ok(out) = out else { return false };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(v) = text.split_whitespace().nth(1) else {
            return false;
        };
        version_matches_rules(v, &self.legacy_rules)
    }
}

/// `pip freeze` of an interpreter the agent did not build (a custom build script's); `None`
/// when it cannot be frozen or lists nothing.
pub fn freeze_interpreter(
    python: &Path,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Option<String> {
    let mut pip_env = env.clone();
    pip_env.remove("PYTHONPATH");
    freeze(None, python, &pip_env, log).ok().flatten()
}

/// `pip freeze` (or `uv pip freeze`) of the venv; `None` when it lists nothing.
fn freeze(
    uv: Option<&Path>,
    venv_python: &Path,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<Option<String>, EnvError> {
    let (program, args): (PathBuf, Vec<OsString>) = match uv {
        None => (
            venv_python.to_path_buf(),
            vec![
                "-m".into(),
                "pip".into(),
                "--disable-pip-version-check".into(),
                "freeze".into(),
            ],
        ),
        Some(uv) => (
            uv.to_path_buf(),
            vec![
                "pip".into(),
                "freeze".into(),
                "--python".into(),
                venv_python.into(),
            ],
        ),
    };
    log(&display_command(&program, &args));
    let out = Command::new(&program)
        .args(&args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EnvError::Freeze {
            cause: format!("cannot run {}: {e}", program.display()),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(EnvError::Freeze {
            cause: err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Ok((!meaningful_lines(&text).is_empty()).then_some(text))
}

/// What a venv's last pip upgrade was: the pin arguments and the pip distribution it left
/// (`pip-X.Y.dist-info`). Stored in the venv itself, so a recreated venv starts without it.
struct PipPinMemo {
    file: PathBuf,
    state: String,
    site_packages_root: PathBuf,
}

const PIP_PIN_MEMO: &str = ".clearml-agent-pip-pin";
/// The `pip freeze` of a venv cache entry, written when the entry is stored.
const FREEZE_MEMO: &str = ".clearml-agent-freeze";

impl PipPinMemo {
    fn new(venv: &Path, args: &[String]) -> PipPinMemo {
        PipPinMemo {
            file: venv.join(PIP_PIN_MEMO),
            state: args.join("\n"),
            site_packages_root: venv.join("lib"),
        }
    }

    /// The installed pip's dist-info folder name, read from the file system (no subprocess).
    fn installed_pip(&self) -> Option<String> {
        let libs = fs::read_dir(&self.site_packages_root).ok()?;
        for lib in libs.flatten() {
            let site = lib.path().join("site-packages");
            let Ok(entries) = fs::read_dir(&site) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("pip-") && name.ends_with(".dist-info") {
                    return Some(name);
                }
            }
        }
        None
    }

    fn content(&self) -> Option<String> {
        Some(format!("{}\n{}", self.state, self.installed_pip()?))
    }

    fn is_current(&self) -> bool {
        match (fs::read_to_string(&self.file), self.content()) {
            (Ok(stored), Some(now)) => stored == now,
            _ => false,
        }
    }

    fn record(&self) {
        if let Some(content) = self.content() {
            let _ = fs::write(&self.file, content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_versions() {
        assert_eq!(
            requested_python_version("python3.10").as_deref(),
            Some("3.10")
        );
        assert_eq!(
            requested_python_version("/usr/bin/python3").as_deref(),
            Some("3")
        );
        assert_eq!(requested_python_version("bash"), None);
        assert_eq!(requested_python_version("python"), None);
    }
}
