//! `clearml-agent build`: a task's environment prepared without running it, in a folder (venv
//! and code) or, with `--docker`, as an image on the real engine whose command runs the task
//! offline. Nothing changes on the server. Real binary, test server, pip, Docker Engine.

use std::process::Command;

use serde_json::json;

use crate::context::AgentContext;
use crate::index::PackageIndex;

#[test]
fn build_prepares_the_venv_and_code_in_the_target_folder() {
    let ctx = AgentContext::builder().with_venvs().build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "built here",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import six\nprint('six', six.__version__)\n",
                "requirements": {"pip": "six==1.16.0\n"}},
        }))
        .unwrap();
    let target = ctx.root().join("built-venv");
    let out = ctx
        .command(&["build", "--id", "built here", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Restoring running environment of task id [{task}]:"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("- six==1.16.0"), "{stdout}");
    assert!(
        stdout.contains(&format!("Virtual environment: {}/bin", target.display())),
        "{stdout}"
    );
    // The environment runs the task's code as it will run.
    let entry = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Entry point: "))
        .expect("entry point line");
    let ran = Command::new(target.join("bin/python"))
        .arg(entry)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "six 1.16.0");
    // Nothing changed on the server.
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "created", "{t}");
    assert!(t["script"]["requirements"].get("org_pip").is_none(), "{t}");
}

/// `build --docker`: the task's image, its requirement from a (local) index, the code copied
/// in; the committed image runs the task with no network and holds nothing of the agent's.
#[test]
fn build_docker_commits_an_image_that_runs_the_task_offline() {
    let img = crate::docker::image();
    let index = PackageIndex::builder()
        .wheel("simple", "clearml-rs-dep", "1.0", "VALUE = 7\n")
        .start();
    let ctx = crate::docker::context()
        .conf(&format!(
            "agent.extra_docker_arguments: [\"--network\", \"host\"]\n\
             agent.package_manager.extra_index_url: [\"{}\"]\n\
             environment {{ ADMIN_ONLY: from-conf }}",
            index.url("simple")
        ))
        .env("CLEARML_AUTH_TOKEN", "tok-secret")
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "built image",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import os, clearml_rs_dep\nprint('image runs the task', clearml_rs_dep.VALUE, os.environ.get('CLEARML_AUTH_TOKEN'), os.environ.get('ADMIN_ONLY'))\n",
                "requirements": {"pip": "clearml-rs-dep==1.0\n"}},
            "container": {"image": img},
        }))
        .unwrap();
    let tag = format!("clearml-agent-test-built:{}", &task[..12]);
    let out = ctx
        .command(&["build", "--id", &task, "--docker", "--target", &tag])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _cleanup = RemoveImage(tag.clone());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Committing docker container to: {tag}")),
        "{stdout}"
    );
    let ran = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &tag])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ran.stdout);
    assert!(
        text.contains("image runs the task 7 None None"),
        "{text}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let inspect = Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(!inspect.contains("tok-secret"), "{inspect}");
    assert!(!inspect.contains("CLEARML_WORKER_ID"), "{inspect}");
    assert!(inspect.contains("\"clearml-worker-id\": \"\""), "{inspect}");
    // Nothing changed on the server.
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "created", "{t}");
}

struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}
