//! What the task finds inside its container: packages installed with the agent's
//! `agent.package_manager` settings (a private index with credentials, pins, priority and
//! optional packages), the `environment {}` and `files {}` sections, the task's `Environment`
//! hyper-parameters, the agent's token and git identity, and setup scripts run under bash.
//! Real Docker Engine, real pip inside the test image, a real local package index.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::docker::{context, docker_task, image};
use crate::index::PackageIndex;

/// The private index with credentials in `agent.package_manager.extra_index_url`, a pin of pip
/// the image's pip already satisfies, an optional priority package that does not exist (a
/// warning, and taken out of the set), all through one decision path with venv mode.
#[test]
fn requirements_install_from_a_private_index_with_the_agents_package_settings() {
    let img = image();
    // A private index serving `clearml-rs-private==1.0` (module `VALUE = 42`) behind basic auth.
    let index = PackageIndex::builder()
        .auth("reader", "s3cret")
        .wheel("simple", "clearml-rs-private", "1.0", "VALUE = 42\n")
        .start();
    let url = format!("http://reader:s3cret@127.0.0.1:{}/simple", index.port);
    let ctx = context()
        .conf(&format!(
            "agent.extra_docker_arguments: [\"--network\", \"host\"]\n\
             agent.package_manager.extra_index_url: [\"{url}\"]\n\
             agent.package_manager.extra_pip_install_flags: [\"--no-cache-dir\"]\n\
             agent.package_manager.pip_version: [\">=9\"]\n\
             agent.package_manager.priority_optional_packages: [\"clearml-rs-missing-optional\"]"
        ))
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "private index",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import clearml_rs_private\nprint('private value', clearml_rs_private.VALUE)\n",
                "requirements": {"pip": "clearml-rs-private==1.0\nclearml-rs-missing-optional==9.9\n"}},
            "container": {"image": img},
        }))
        .unwrap();
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("private value 42"), "{log}");
    assert!(
        log.contains(
            "WARNING: optional package clearml-rs-missing-optional==9.9 was not installed"
        ),
        "{log}"
    );
    assert!(log.contains("--no-cache-dir"), "{log}");
    assert!(log.contains("'pip>=9'"), "{log}");
    // The index password never reaches the log.
    assert!(!log.contains("s3cret"), "{log}");
    // The freeze recorded the private package.
    let t = ctx.server.task(&task).unwrap();
    assert!(
        t["script"]["requirements"]["pip"]
            .to_string()
            .contains("clearml-rs-private==1.0"),
        "{t}"
    );
}

/// `environment {}`, `files {}`, `agent.enable_task_env`, the agent's `CLEARML_AUTH_TOKEN` and
/// its `~/.gitconfig` reach the task inside its container; a setup script runs under bash and
/// what it exports reaches the task.
#[test]
fn configuration_sections_token_git_identity_and_bash_setup_reach_the_container() {
    let img = image();
    let ctx = context()
        .conf(
            "environment { CONF_VAR: from-conf }\n\
             files { note { path: \"~/.config/clearml-rs/note.json\", contents: { a: 1 }, target_format: json, mode: \"0o600\" } }\n\
             agent.enable_task_env: true",
        )
        .env("CLEARML_AUTH_TOKEN", "tok-123")
        .build();
    std::fs::write(
        ctx.root().join(".gitconfig"),
        "[user]\n\tname = Container Tester\n",
    )
    .unwrap();
    let task = ctx
        .server
        .create_task(json!({
            "name": "inside",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import os, subprocess, json\n\
                         print('conf', os.environ.get('CONF_VAR'))\n\
                         print('task env', os.environ.get('TASK_VAR'))\n\
                         print('token', os.environ.get('CLEARML_AUTH_TOKEN'))\n\
                         p = os.path.expanduser('~/.config/clearml-rs/note.json')\n\
                         print('file', json.load(open(p)), oct(os.stat(p).st_mode & 0o777))\n\
                         print('git', subprocess.run(['git', 'config', '--global', 'user.name'], capture_output=True, text=True).stdout.strip())\n\
                         print('from setup', os.environ.get('SETUP_VAR'))\n\
                         conf = open(os.environ['CLEARML_CONFIG_FILE']).read()\n\
                         print('sdk cache mounted', '/clearml_agent_cache' in conf and 'default_base_dir' in conf)\n"},
            "hyperparams": {"Environment": {"TASK_VAR": {"section": "Environment", "name": "TASK_VAR", "value": "from-task"}}},
            "container": {"image": img,
                "setup_shell_script": "ARR=(one two)\nif [[ ${#ARR[@]} -eq 2 ]]; then export SETUP_VAR=bash-${ARR[1]}; fi\n"},
        }))
        .unwrap();
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    for want in [
        "conf from-conf",
        "sdk cache mounted True",
        "task env from-task",
        "token tok-123",
        "file {'a': 1} 0o600",
        "git Container Tester",
        "from setup bash-two",
    ] {
        assert!(log.contains(want), "{want} missing:\n{log}");
    }
    // The token is masked in the printed docker command.
    let line = log
        .lines()
        .find(|l| l.starts_with("Executing: docker run"))
        .unwrap_or_default();
    assert!(!line.contains("tok-123"), "{line}");
    // The host got the file too (as the Python agent writes it where it runs).
    assert!(ctx.root().join(".config/clearml-rs/note.json").is_file());
}

/// An image without bash runs the script under sh.
#[test]
fn an_image_without_bash_runs_the_setup_under_sh() {
    let img = image();
    // The test image with bash removed.
    const TAG: &str = "clearml-agent-test:no-bash";
    if Command::new("docker")
        .args(["image", "inspect", TAG])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", TAG, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("FROM {img}\nRUN rm -f /bin/bash /usr/bin/bash\n").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "no bash",
        "import os\nprint('shell var', os.environ.get('SH_VAR'))\n",
        json!({"image": TAG, "setup_shell_script": "export SH_VAR=plain-sh"}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("shell var plain-sh"), "{log}");
}

/// Docker settings of clearml.conf each take effect on a real container: the preprocess script
/// runs first, the task's own image is ignored under `disable_task_docker_override` (and the
/// default is not written back without `update_back_task`), `~/.ssh` is not mounted with
/// `disable_ssh_mount`, extra labels land on the container, listed variables are masked in the
/// printed command, and the apt cache folder is the configured one.
#[test]
fn docker_settings_each_take_effect_on_the_container() {
    let img = image();
    let probe = context().build();
    let apt = probe.root().join("my-apt-cache");
    let ctx = context()
        .conf(&format!(
            "agent.docker_preprocess_bash_script: [\"echo preprocess-ran-first\"]\n\
             agent.disable_task_docker_override: true\n\
             agent.default_docker.update_back_task: false\n\
             agent.disable_ssh_mount: true\n\
             agent.hide_docker_command_env_vars.extra_keys: [\"PLAIN_BUT_HIDDEN\"]\n\
             agent.extra_docker_arguments: [\"-e\", \"PLAIN_BUT_HIDDEN=visible-inside\"]\n\
             agent.docker_internal_mounts.venv_build: \"~/my-venvs\"\n\
             agent.docker_apt_cache: \"{}\"",
            apt.display()
        ))
        .env("CLEARML_AGENT_EXTRA_DOCKER_LABELS", "team=vision")
        .build();
    std::fs::create_dir_all(ctx.root().join(".ssh")).unwrap();
    std::fs::write(ctx.root().join(".ssh/id_test"), "key").unwrap();
    let task = docker_task(
        &ctx,
        "settings",
        "import os\nprint('ssh copied', os.path.exists(os.path.expanduser('~/.ssh/id_test')))\n\
         print('hidden value', os.environ.get('PLAIN_BUT_HIDDEN'))\n\
         import sys\nprint('venv at', sys.prefix)\n",
        // Under disable_task_docker_override the task's image and arguments are both ignored.
        json!({"image": "no-such/image:never", "arguments": "-e TASK_ARG=ignored"}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    let line = log
        .lines()
        .find(|l| l.starts_with("Executing: docker run"))
        .unwrap_or_default();
    let pre = log
        .find("preprocess-ran-first")
        .expect("the preprocess script ran");
    assert!(pre < log.find("ssh copied").unwrap(), "{log}");
    assert!(log.contains("ssh copied False"), "{log}");
    assert!(log.contains("hidden value visible-inside"), "{log}");
    assert!(log.contains("venv at /root/my-venvs/task"), "{log}");
    assert!(!line.contains("TASK_ARG"), "{line}");
    assert!(!line.contains("visible-inside"), "{line}");
    assert!(line.contains("team=vision"), "{line}");
    assert!(
        line.contains(&format!("{}:/var/cache/apt/archives", apt.display())),
        "{line}"
    );
    assert!(line.contains(img), "the default image ran: {line}");
    // Not written back: the task keeps the image it asked for.
    assert_eq!(
        ctx.server.task(&task).unwrap()["container"]["image"],
        "no-such/image:never"
    );
}
