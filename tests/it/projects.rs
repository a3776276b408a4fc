//! Repositories that describe their own environment, installed as the Python agent installs
//! them: `package_manager.type: uv` runs `uv sync` (`--locked` with a `uv.lock`) and `type: poetry`
//! runs `poetry install` instead of installing the task's requirement lines; a uv project that
//! cannot be synced falls back to the task's lines. Real `execute`, real git repositories, real
//! uv and poetry (scripts/test-tools.sh installs them from PyPI), every package from a local
//! index (no network needed).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::context::{AgentContext, git};
use crate::index::PackageIndex;

/// The local index: `clearml-rs-dep==1.0` (module `VALUE = 7`).
fn dep_index() -> PackageIndex {
    PackageIndex::builder()
        .wheel("simple", "clearml-rs-dep", "1.0", "VALUE = 7\n")
        .start()
}

/// A venv-mode context whose pip and uv know only the local index.
fn offline(index: &PackageIndex, conf: &str) -> AgentContext {
    let simple = index.url("simple");
    AgentContext::builder()
        .with_venvs()
        .conf(conf)
        .env("PIP_INDEX_URL", &simple)
        .env("UV_INDEX_URL", &simple)
        .env("UV_DEFAULT_INDEX", &simple)
        .build()
}

/// A git repository holding `files` and `task.py` (prints the dependency's value and where it
/// runs), committed on `main`.
fn project_repo(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("project");
    std::fs::create_dir(&path).unwrap();
    git(&path, &["init", "-q", "-b", "main"]);
    std::fs::write(
        path.join("task.py"),
        "import clearml_rs_dep, sys\nprint('dep value', clearml_rs_dep.VALUE, 'from', sys.prefix)\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(path.join(name), text).unwrap();
    }
    git(&path, &["add", "-A"]);
    git(&path, &["commit", "-q", "-m", "project"]);
    let commit = git(&path, &["rev-parse", "HEAD"]);
    (tmp, commit)
}

fn task_of(ctx: &AgentContext, repo: &Path, commit: &str, pip: &str) -> String {
    ctx.server
        .create_task(json!({
            "name": "project task",
            "script": {"binary": "python3", "repository": format!("file://{}", repo.display()),
                "branch": "main", "version_num": commit, "entry_point": "task.py",
                "working_dir": ".", "requirements": {"pip": pip}},
        }))
        .unwrap()
}

/// A uv project depending on `dep` from the local index.
fn uv_project(index: &PackageIndex, dep: &str) -> String {
    format!(
        "[project]\nname = \"demo\"\nversion = \"0.1\"\nrequires-python = \">=3.8\"\n\
         dependencies = [\"{dep}\"]\n\n[tool.uv]\npackage = false\n\n\
         [[tool.uv.index]]\nname = \"local\"\nurl = \"{}\"\ndefault = true\n",
        index.url("simple")
    )
}

/// `uv lock` of `pyproject` in a scratch folder: the lock file text.
fn uv_lock(pyproject: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pyproject.toml"), pyproject).unwrap();
    let out = Command::new("uv")
        .arg("lock")
        .current_dir(dir.path())
        .output()
        .expect("uv on PATH (scripts/test-tools.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.path().join("uv.lock")).unwrap()
}

#[test]
fn a_locked_uv_project_is_synced_and_the_tasks_lines_ignored() {
    let index = dep_index();
    let pyproject = uv_project(&index, "clearml-rs-dep==1.0");
    let lock = uv_lock(&pyproject);
    let (repo, commit) = project_repo(&[("pyproject.toml", &pyproject), ("uv.lock", &lock)]);
    let ctx = offline(&index, "agent.package_manager.type: uv");
    // A line nothing can install: the project's own files are used instead.
    let task = task_of(
        &ctx,
        &repo.path().join("project"),
        &commit,
        "clearml-rs-no-such-package==9.9\n",
    );
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(
            "UV Enabled: Ignoring requested python packages, using repository uv lock file!"
        ),
        "{log}"
    );
    assert!(log.contains(" sync --locked"), "{log}");
    let venvs = ctx.root().join("venvs");
    assert!(
        log.contains(&format!("dep value 7 from {}", venvs.display())),
        "{log}"
    );
    assert!(!log.contains("clearml-rs-no-such-package==9.9 "), "{log}");
    let t = ctx.server.task(&task).unwrap();
    assert!(
        t["script"]["requirements"]["pip"]
            .to_string()
            .contains("clearml-rs-dep==1.0"),
        "{t}"
    );
}

#[test]
fn a_uv_project_that_cannot_sync_falls_back_to_the_tasks_lines() {
    let index = dep_index();
    let broken = uv_project(&index, "clearml-rs-no-such-package==9.9");
    let (repo, commit) = project_repo(&[("pyproject.toml", &broken)]);
    let ctx = offline(&index, "agent.package_manager.type: uv");
    let task = task_of(
        &ctx,
        &repo.path().join("project"),
        &commit,
        "clearml-rs-dep==1.0\n",
    );
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("Reverting to UV as pip replacement"), "{log}");
    assert!(!log.contains("sync --locked"), "{log}");
    assert!(log.contains("dep value 7 from"), "{log}");
}

#[test]
fn a_poetry_project_is_installed_with_poetry_into_the_tasks_venv() {
    let index = dep_index();
    let pyproject = format!(
        "[tool.poetry]\nname = \"demo\"\nversion = \"0.1.0\"\ndescription = \"\"\n\
         authors = [\"t <t@example.com>\"]\npackage-mode = false\n\n\
         [tool.poetry.dependencies]\npython = \">=3.8\"\nclearml-rs-dep = \"1.0\"\n\n\
         [[tool.poetry.source]]\nname = \"local\"\nurl = \"{}\"\npriority = \"primary\"\n",
        index.url("simple")
    );
    let (repo, commit) = project_repo(&[("pyproject.toml", &pyproject)]);
    let ctx = offline(&index, "agent.package_manager.type: poetry");
    let task = task_of(
        &ctx,
        &repo.path().join("project"),
        &commit,
        "clearml-rs-no-such-package==9.9\n",
    );
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(
            "Poetry Enabled: Ignoring requested python packages, using repository poetry lock file!"
        ),
        "{log}"
    );
    assert!(log.contains("poetry install -n"), "{log}");
    let venvs = ctx.root().join("venvs");
    assert!(
        log.contains(&format!("dep value 7 from {}", venvs.display())),
        "{log}"
    );
    // The freeze as the Python agent records it from `poetry show` (`name==version # ...`).
    let t = ctx.server.task(&task).unwrap();
    assert!(
        t["script"]["requirements"]["pip"]
            .to_string()
            .contains("clearml-rs-dep==1.0 #"),
        "{t}"
    );

    // Without poetry files the task's lines are installed with pip.
    let (plain, commit) = project_repo(&[]);
    let task = task_of(
        &ctx,
        &plain.path().join("project"),
        &commit,
        "clearml-rs-dep==1.0\n",
    );
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Could not find pyproject.toml or poetry.lock file in"),
        "{log}"
    );
    assert!(log.contains("dep value 7 from"), "{log}");
}

/// In docker mode the uv project is synced inside the container, into its venv, from the index
/// its lock file names (a local one: containers here reach no public index).
#[test]
fn in_docker_a_locked_uv_project_is_synced_inside_the_container() {
    let img = crate::docker::image();
    // uv itself for the container's venv: the real wheel, fetched on the host.
    let wheels = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
        .arg(wheels.path())
        .arg("uv==0.13.9")
        .output()
        .expect("pip download");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uv_wheel = std::fs::read_dir(wheels.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("the uv wheel");
    let index = crate::index::PackageIndex::builder()
        .wheel("simple", "clearml-rs-dep", "1.0", "VALUE = 7\n")
        .file("simple", "uv", &uv_wheel)
        .start();
    let simple = index.url("simple");
    let pyproject = format!(
        "[project]\nname = \"demo\"\nversion = \"0.1\"\nrequires-python = \">=3.8\"\n\
         dependencies = [\"clearml-rs-dep==1.0\"]\n\n[tool.uv]\npackage = false\n\n\
         [[tool.uv.index]]\nname = \"local\"\nurl = \"{simple}\"\ndefault = true\n"
    );
    let lock = uv_lock(&pyproject);
    let (repo, commit) = project_repo(&[
        ("pyproject.toml", &pyproject),
        ("uv.lock", &lock),
        (
            "task.py",
            "import clearml_rs_dep, sys\nprint('dep value', clearml_rs_dep.VALUE, sys.prefix)\n",
        ),
    ]);
    let ctx = crate::docker::context()
        .conf(&format!(
            "agent.package_manager.type: uv\n\
             agent.docker_allow_host_repositories: true\n\
             agent.extra_docker_arguments: [\"--network\", \"host\", \"-e\", \"PIP_INDEX_URL={simple}\"]"
        ))
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "uv project in docker",
            "script": {"binary": "python3",
                "repository": format!("file://{}", repo.path().join("project").display()),
                "branch": "main", "version_num": commit, "entry_point": "task.py",
                "working_dir": ".", "requirements": {"pip": "clearml-rs-no-such-package==9.9\n"}},
            "container": {"image": img},
        }))
        .unwrap();
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(
        log.contains(
            "UV Enabled: Ignoring requested python packages, using repository uv lock file!"
        ),
        "{log}"
    );
    assert!(log.contains("dep value 7"), "{log}");
    assert!(!log.contains("Reverting to UV"), "{log}");
}
