//! The machine owner's overrides of how a task is built and run, as the Python agent honours
//! them: `agent.custom_build_script` (builds the environment and names what to run),
//! `CLEARML_AGENT_FORCE_EXEC_SCRIPT` (another entry point) and `CLEARML_AGENT_FORCE_CODE_DIR`
//! (the code is a given folder). Real `execute`, real processes, the test server.

use crate::context::{AgentContext, GitRepo};

/// A script that answers with the system python, an entry point it writes, and its folder; it
/// also shows what it was told.
fn build_script(dir: &std::path::Path, exit: i32) -> std::path::PathBuf {
    let script = dir.join("build.sh");
    let entry = dir.join("built_entry.py");
    std::fs::write(
        &entry,
        "import os\nprint('built entry ran in', os.getcwd())\n",
    )
    .unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo \"build script sees entry=$CLEARML_TASK_SCRIPT_ENTRY venv=$CLEARML_VENV_PATH\"\n\
             case \"$CLEARML_CUSTOM_BUILD_TASK_CONFIG_JSON\" in *'\"name\":\"custom built\"'*) echo 'task json ok';; esac\n\
             [ {exit} -ne 0 ] && exit {exit}\n\
             printf '{{\"binary\": \"%s\", \"entry_point\": \"{entry}\", \"working_dir\": \"{dir}\"}}' \"$(command -v python3)\" > \"$CLEARML_CUSTOM_BUILD_OUTPUT\"\n",
            entry = entry.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    script
}

#[test]
fn a_custom_build_script_builds_the_environment_and_names_what_runs() {
    let scripts = tempfile::tempdir().unwrap();
    let script = build_script(scripts.path(), 0);
    let ctx = AgentContext::builder()
        .with_venvs()
        .conf(&format!(
            "agent.custom_build_script: \"{}\"",
            script.display()
        ))
        .build();
    let task = ctx.script_task("custom built", "print('the task itself')\n");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("Running custom build script {}", script.display())),
        "{log}"
    );
    assert!(
        log.contains("build script sees entry=task.py venv="),
        "{log}"
    );
    assert!(log.contains("task json ok"), "{log}");
    assert!(
        log.contains(&format!("built entry ran in {}", scripts.path().display())),
        "{log}"
    );
    assert!(!log.contains("the task itself"), "{log}");
    // Nothing was installed by the agent.
    assert!(!log.contains("pip install"), "{log}");

    // A failing script fails the task with its exit code.
    let failing = tempfile::tempdir().unwrap();
    let script = build_script(failing.path(), 3);
    let ctx = AgentContext::builder()
        .conf(&format!(
            "agent.custom_build_script: \"{}\"",
            script.display()
        ))
        .build();
    let task = ctx.script_task("custom built", "print('the task itself')\n");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(
        t["status_reason"], "Custom build script failed with return code 3",
        "{t}"
    );

    // A script that is not there is skipped with a warning.
    let ctx = AgentContext::builder()
        .conf("agent.custom_build_script: /nonexistent/build.sh")
        .build();
    let task = ctx.script_task("custom built", "print('the task itself')\n");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Warning: Build script /nonexistent/build.sh is not found"),
        "{log}"
    );
    assert!(log.contains("the task itself"), "{log}");
}

#[test]
fn a_forced_entry_point_and_a_forced_code_folder_replace_the_tasks() {
    // The repository's task.py prints v2; the forced entry is another file of the repository.
    let repo = GitRepo::new();
    crate::context::git(&repo.path, &["checkout", "-q", "main"]);
    std::fs::create_dir_all(repo.path.join("tools")).unwrap();
    std::fs::write(
        repo.path.join("tools/other.py"),
        "print('the other entry')\n",
    )
    .unwrap();
    crate::context::git(&repo.path, &["add", "-A"]);
    crate::context::git(&repo.path, &["commit", "-q", "-m", "other"]);
    let head = crate::context::git(&repo.path, &["rev-parse", "HEAD"]);
    let ctx = AgentContext::builder()
        .env("CLEARML_AGENT_FORCE_EXEC_SCRIPT", "tools:other.py")
        .build();
    let task = ctx.repo_task("forced entry", &repo.url(), &head, "");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("WARNING: Using forced script entry [tools:other.py]"),
        "{log}"
    );
    assert!(log.contains("the other entry"), "{log}");
    assert!(!log.contains("v2"), "{log}");

    // A forced code folder: nothing cloned, the folder's task.py runs.
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("task.py"),
        "print('from the forced folder')\n",
    )
    .unwrap();
    let ctx = AgentContext::builder()
        .env(
            "CLEARML_AGENT_FORCE_CODE_DIR",
            &code.path().display().to_string(),
        )
        .build();
    let task = ctx.repo_task("forced code", &repo.url(), &repo.c2, &repo.diff);
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("from the forced folder"), "{log}");
    assert!(!log.contains("patched"), "{log}");
    assert!(!log.contains("git clone"), "{log}");
}

/// `agent.git_use_azure_pat` / `git_use_ms_entra_token`: the git password goes to an Azure
/// DevOps-like server as an `Authorization` header (Basic of `:PAT`, or Bearer), never in the URL
/// or on git's command line; plain askpass credentials are refused by that server.
#[test]
fn azure_devops_credentials_go_as_an_authorization_header() {
    use base64::Engine as _;
    let repo = GitRepo::new();
    // A git server over (dumb) HTTP: the bare repository's files, behind the header.
    let served = tempfile::tempdir().unwrap();
    let bare = served.path().join("repo.git");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.path)
        .arg(&bare)
        .status()
        .unwrap();
    assert!(cloned.success());
    crate::context::git(&bare, &["update-server-info"]);
    let pat = "pat-s3cret";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{pat}"));
    let server = crate::index::PackageIndex::serve(served, Some(format!("Basic {basic}")));
    let url = format!("http://127.0.0.1:{}/repo.git", server.port);
    let conf = |flag: &str| {
        format!(
            "agent.git_user: someone\nagent.git_pass: \"{pat}\"\nagent.vcs_cache.enabled: false\n{flag}"
        )
    };

    let ctx = AgentContext::builder()
        .conf(&conf("agent.git_use_azure_pat: true"))
        .build();
    let task = ctx.repo_task("azure", &url, &repo.c2, "");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("v2"), "{log}");
    assert!(!log.contains(pat) && !log.contains(&basic), "{log}");

    // Without the setting the credentials go through askpass as user:password: refused.
    let ctx = AgentContext::builder().conf(&conf("")).build();
    let task = ctx.repo_task("azure", &url, &repo.c2, "");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));

    // An Entra token: `Bearer <token>`.
    let served = tempfile::tempdir().unwrap();
    let bare = served.path().join("repo.git");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.path)
        .arg(&bare)
        .status()
        .unwrap();
    assert!(cloned.success());
    crate::context::git(&bare, &["update-server-info"]);
    let server = crate::index::PackageIndex::serve(served, Some(format!("Bearer {pat}")));
    let url = format!("http://127.0.0.1:{}/repo.git", server.port);
    let ctx = AgentContext::builder()
        .conf(&conf("agent.git_use_ms_entra_token: true"))
        .build();
    let task = ctx.repo_task("entra", &url, &repo.c2, "");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("v2"), "{log}");
}

/// A multi-node run (`RANK`, else `SLURM_PROCID`): a rank above 0 runs the task but leaves its
/// status and requirements to rank 0, says its rank in its closing line, and with
/// `CLEARML_MULTI_NODE_SINGLE_TASK` prefixes its output lines with it.
#[test]
fn only_rank_zero_changes_the_tasks_status() {
    let ctx = AgentContext::builder()
        .env("SLURM_PROCID", "2")
        .env("CLEARML_MULTI_NODE_SINGLE_TASK", "1")
        .build();
    let task = ctx.script_task("multi node", "print('hello from a node')\n");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("\u{1b}[38;5;22mRANK 2:\u{1b}[0m hello from a node"),
        "{log}"
    );
    assert!(
        log.contains("Process completed successfully - rank 2"),
        "{log}"
    );
    // Started (every rank says so before it runs the task, as in the Python agent), never ended.
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "in_progress", "{t}");

    // Rank 0 (RANK wins over SLURM_PROCID) sets it.
    let ctx = AgentContext::builder()
        .env("RANK", "0")
        .env("SLURM_PROCID", "2")
        .build();
    let task = ctx.script_task("multi node", "print('hello from a node')\n");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "completed");
}

/// `CLEARML_AGENT_SKIP_PIP_VENV_INSTALL=<interpreter>`: no venv is made; the task's requirements
/// go into that interpreter, which runs the task (mirrors the Python agent's SystemPip).
#[test]
fn skip_pip_venv_install_installs_into_the_named_interpreter() {
    let tmp = tempfile::tempdir().unwrap();
    let interpreter_env = tmp.path().join("own-env");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&interpreter_env)
        .status()
        .unwrap();
    assert!(made.success());
    let python = interpreter_env.join("bin/python");
    let ctx = AgentContext::builder()
        .with_venvs()
        .env(
            "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL",
            &python.display().to_string(),
        )
        .build();
    let task = ctx
        .server
        .create_task(serde_json::json!({
            "name": "own interpreter",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import six, sys\nprint('six', six.__version__, 'in', sys.prefix)\n",
                "requirements": {"pip": "six==1.16.0\n"}},
        }))
        .unwrap();
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("six 1.16.0 in {}", interpreter_env.display())),
        "{log}"
    );
    let six = std::process::Command::new(&python)
        .args(["-c", "import six; print(six.__version__)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&six.stdout).trim(), "1.16.0");
}

/// A task whose entry point is a Jupyter notebook: nbconvert (and ipython) join its requirements,
/// the notebook is converted to a script, and the script runs.
#[test]
fn a_notebook_entry_point_is_converted_and_run() {
    let ctx = AgentContext::builder().with_venvs().build();
    let notebook = serde_json::json!({
        "cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [],
                   "source": ["import six\n", "print('hello from the notebook', six.__version__)"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5
    });
    let task = ctx
        .server
        .create_task(serde_json::json!({
            "name": "notebook",
            "script": {"binary": "python3", "entry_point": "analysis.ipynb", "working_dir": ".",
                "diff": notebook.to_string(),
                "requirements": {"pip": "six==1.16.0\n"}},
        }))
        .unwrap();
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Force nbconvert patch to convert .ipynb to python"),
        "{log}"
    );
    assert!(log.contains("hello from the notebook 1.16.0"), "{log}");
    assert!(log.contains("analysis.py"), "{log}");
}
