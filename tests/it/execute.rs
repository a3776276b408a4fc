//! `clearml-agent execute` end to end (monitored, `--clone`, `--require-queue`, `--log-file`,
//! `--full-monitoring`), `list` against a live worker, and the proof that a task can attach to
//! its task with the environment and configuration the agent gives it.

use std::process::{Output, Stdio};

use crate::context::{AgentContext, GitRepo};

fn execute(ctx: &AgentContext, args: &[&str]) -> Output {
    let mut full = vec!["execute"];
    full.extend_from_slice(args);
    ctx.command(&full)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("agent runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn monitored_execute_runs_the_task_and_exits_with_its_code() {
    let ctx = AgentContext::new();
    let ok = ctx.script_task("ok task", "print('standalone run')\n");
    let out = execute(&ctx, &["--id", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = ctx.server.task(&ok).unwrap();
    assert_eq!(t["status"], "completed", "{}", text(&out));
    assert_eq!(t["status_reason"], "worker execution done");
    let log = ctx.server.log_text(&ok).unwrap();
    assert!(log.contains("standalone run\n"), "{log}");
    assert!(log.contains("Process completed successfully"), "{log}");

    let bad = ctx.script_task("bad task", "import sys\nprint('going down')\nsys.exit(5)\n");
    let out = execute(&ctx, &["--id", &bad]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let t = ctx.server.task(&bad).unwrap();
    assert_eq!(t["status"], "failed");
    assert_eq!(t["status_reason"], "worker execution exit code 5");
    assert!(ctx.server.log_text(&bad).unwrap().contains("going down"));

    // mirrors Worker.execute: --full-monitoring exits 0 unless CLEARML_AGENT_PROPAGATE_EXITCODE.
    let full = ctx.script_task("full bad", "import sys\nsys.exit(4)\n");
    let out = execute(&ctx, &["--id", &full, "--full-monitoring"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ctx.server.task(&full).unwrap()["status"], "failed");
    let full = ctx.script_task("full bad again", "import sys\nsys.exit(4)\n");
    let out = ctx
        .command(&["execute", "--id", &full, "--full-monitoring"])
        .env("CLEARML_AGENT_PROPAGATE_EXITCODE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn full_monitoring_takes_a_worker_slot_as_the_daemon_does() {
    // mirrors Worker.execute: --full-monitoring ignores agent.worker_id from the file and takes
    // `<worker_name>:<slot>` from the local registry; CLEARML_WORKER_ID still wins.
    let ctx = AgentContext::builder()
        .env("CLEARML_WORKER_NAME", "fullmon")
        .conf("agent.worker_id: \"from-the-file\"")
        .build();
    let script = "import os\nprint('worker is', os.environ['CLEARML_WORKER_ID'])\n";
    let task = ctx.script_task("slot", script);
    let out = execute(&ctx, &["--id", &task, "--full-monitoring"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("worker is fullmon:0\n"), "{log}");

    let task = ctx.script_task("fixed", script);
    let out = ctx
        .command(&["execute", "--id", &task, "--full-monitoring"])
        .env("CLEARML_WORKER_ID", "fixed-id")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("worker is fixed-id\n"), "{log}");

    // Without --full-monitoring the configured id is used as it is.
    let task = ctx.script_task("plain", script);
    let out = execute(&ctx, &["--id", &task]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("worker is from-the-file\n"), "{log}");
}

#[test]
fn execute_of_a_git_task_with_full_monitoring() {
    let ctx = AgentContext::new();
    let repo = GitRepo::new();
    let task = ctx.repo_task("git", &repo.url(), "", &repo.diff);
    let out = execute(&ctx, &["--id", &task, "--full-monitoring"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "completed", "{}", text(&out));
    assert_eq!(t["script"]["version_num"], repo.c2.as_str());
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("patched\n"), "{log}");
}

#[test]
fn clone_runs_a_new_task_and_leaves_the_original() {
    let ctx = AgentContext::new();
    let original = ctx.script_task("original", "print('in the clone')\n");
    let before = ctx.server.task(&original).unwrap();
    let out = execute(&ctx, &["--id", &original, "--clone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = ctx.server.task(&original).unwrap();
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["status"], "created");
    assert!(ctx.server.log_text(&original).unwrap().is_empty());
    let clones: Vec<_> = ctx
        .server
        .tasks()
        .unwrap()
        .into_iter()
        .filter(|t| t["id"] != original.as_str())
        .collect();
    assert_eq!(clones.len(), 1, "{clones:?}");
    let clone = &clones[0];
    assert_eq!(clone["name"], "Clone of original");
    let id = clone["id"].as_str().unwrap();
    assert_eq!(ctx.server.task(id).unwrap()["status"], "completed");
    assert!(ctx.server.log_text(id).unwrap().contains("in the clone\n"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("Task cloned, new task id={id}")),
        "{}",
        text(&out)
    );
}

#[test]
fn require_queue_refuses_a_task_that_is_not_queued() {
    let ctx = AgentContext::new();
    let task = ctx.script_task("not queued", "print('must not run')\n");
    for extra in [&[][..], &["--disable-monitoring"][..]] {
        let mut args = vec!["--id", &task, "--require-queue"];
        args.extend_from_slice(extra);
        let out = execute(&ctx, &args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // mirrors Worker.execute: the ValueError's text, printed as the command's error.
        assert!(
            stderr.contains(&format!(
                "Execution required enqueued task, but task id={task} is not queued."
            )),
            "{}",
            text(&out)
        );
        let t = ctx.server.task(&task).unwrap();
        assert_eq!(t["status"], "created", "{}", text(&out));
    }
    assert!(!ctx.server.log_text(&task).unwrap().contains("must not run"));

    // A queued task is taken out of its queue and run.
    let queued = ctx.script_task("queued", "print('ran from the queue')\n");
    ctx.server.enqueue(&queued, "default").unwrap();
    let out = execute(&ctx, &["--id", &queued, "--require-queue"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ctx.server.task(&queued).unwrap()["status"], "completed");
    assert!(ctx.server.queue_entries("default").unwrap().is_empty());
}

#[test]
fn log_file_gets_the_task_output() {
    let ctx = AgentContext::new();
    let task = ctx.script_task("logged", "print('to the log file')\n");
    let file = ctx.root().join("task.log");
    let out = execute(&ctx, &["--id", &task, "--log-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("to the log file"), "{written}");
    assert!(
        ctx.server
            .log_text(&task)
            .unwrap()
            .contains("to the log file")
    );
}

#[test]
fn the_task_can_log_in_with_the_configuration_it_is_given() {
    // What Task.init() needs to attach: the task id, and a configuration file whose server and
    // credentials work. The task proves it by logging in with them over HTTP and reading itself.
    let ctx = AgentContext::new();
    let script = r#"
import base64, json, os, urllib.request
task_id = os.environ['CLEARML_TASK_ID']
conf = json.load(open(os.environ['CLEARML_CONFIG_FILE']))
api = conf['api']
cred = api['credentials']
auth = base64.b64encode(f"{cred['access_key']}:{cred['secret_key']}".encode()).decode()
req = urllib.request.Request(api['api_server'] + '/auth.login', data=b'{}', method='POST',
    headers={'Authorization': 'Basic ' + auth, 'Content-Type': 'application/json'})
token = json.load(urllib.request.urlopen(req))['data']['token']
req = urllib.request.Request(api['api_server'] + '/tasks.get_by_id',
    data=json.dumps({'task': task_id}).encode(), method='POST',
    headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
me = json.load(urllib.request.urlopen(req))['data']['task']
print('attached to', me['id'], 'status', me['status'])
"#;
    let task = ctx.script_task("attach", script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(
        log.contains(&format!("attached to {task} status in_progress")),
        "{log}"
    );
}

#[test]
fn list_shows_a_running_worker() {
    let ctx = AgentContext::builder()
        .conf("agent.worker_id: \"listed-worker\"")
        .build();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let deadline = std::time::Instant::now() + crate::context::TASK_TIMEOUT;
    while ctx.server.workers().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", d.output());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = ctx
        .command(&["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listed-worker"), "{stdout}");
}

#[test]
fn monitored_execute_reports_its_worker_and_unregisters() {
    let ctx = AgentContext::builder()
        .conf("agent.worker_id: \"execute-worker\"")
        .build();
    let go = ctx.root().join("go");
    let task = ctx.script_task(
        "waits for go",
        &format!(
            "import os, time\nprint('waiting', flush=True)\n\
             while not os.path.exists({:?}):\n    time.sleep(0.05)\n",
            go.display().to_string()
        ),
    );
    let mut child = ctx
        .command(&["execute", "--id", &task])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + crate::context::TASK_TIMEOUT;
    let worker = loop {
        let workers = ctx.server.workers().unwrap();
        if let Some(w) = workers.into_iter().find(|w| w["id"] == "execute-worker")
            && w["task"] == task.as_str()
        {
            break w;
        }
        assert!(std::time::Instant::now() < deadline, "no worker reported");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(worker["task"], task.as_str(), "{worker}");
    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "completed");
    assert!(
        ctx.server.workers().unwrap().is_empty(),
        "the execute worker is still registered"
    );
}

/// `--id` takes a task's name as the Python agent's `foreign_object_id('tasks')` does: the one
/// task of that name (case-insensitive) runs; an unknown or ambiguous name is one line naming it.
#[test]
fn execute_resolves_a_task_name() {
    let ctx = AgentContext::new();
    let task = ctx.script_task("Named Task (v1.2)", "print('run by name')\n");
    let out = execute(&ctx, &["--id", "named task (v1.2)"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("run by name"), "{}", text(&out));
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "completed");

    let out = execute(&ctx, &["--id", "Named"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Could not find task with name/id \"Named\". Did you mean: Named Task (v1.2)?"
        ),
        "{err}"
    );
    ctx.script_task("twin", "print(1)\n");
    ctx.script_task("twin", "print(2)\n");
    let out = execute(&ctx, &["--id", "twin"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Found multiple tasks with name \"twin\""),
        "{}",
        text(&out)
    );
}
