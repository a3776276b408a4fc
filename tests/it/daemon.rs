//! The daemon end to end: the real binary pulls tasks from the real test server, runs them as
//! real processes and reports statuses and logs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::{AgentContext, GitRepo, alive, git};

#[test]
fn completed_task_has_its_log_and_reasons() {
    let ctx = AgentContext::new();
    let task = ctx.script_task(
        "hello",
        "print('hello from the task')\nprint('second line')\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    assert_eq!(t["status"], "completed", "{}", d.output());
    assert_eq!(t["status_reason"], "worker execution done");
    assert!(
        t["status_message"]
            .as_str()
            .unwrap()
            .starts_with("Changed by clearml-agent")
    );
    assert!(t["runtime"]["_exec_agent_hostname"].is_string());
    let log = ctx.server.log_text(&task).unwrap();
    let a = log.find("hello from the task").expect("first line in log");
    let b = log.find("second line").expect("second line in log");
    assert!(a < b);
    assert!(log.contains("Process completed successfully"));
    assert!(log.contains("pulled from"));
}

/// `package_manager.type: conda` stops the daemon at start with one line (never a silent pip);
/// `poetry` without poetry files installs with pip; a `pkg @ file://` line whose file is missing
/// installs `pkg` by name with a warning (mirrors validate_local_file_ref).
#[test]
fn conda_is_refused_and_missing_local_wheels_dropped() {
    let ctx = AgentContext::builder()
        .conf("agent.package_manager.type: conda")
        .build();
    let out = ctx
        .command(&["daemon", "--queue", "default", "--cpu-only"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("agent.package_manager.type: conda is not supported"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let ctx = AgentContext::builder()
        .with_venvs()
        .conf("agent.package_manager.type: poetry")
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "conda freeze",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "print('ran')\n",
                "requirements": {"pip": "pip @ file:///home/conda/feedstock_root/build_artifacts/pip_1/work/pip-24.0-py3-none-any.whl\n"}},
        }))
        .unwrap();
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(
        log.contains("Local file not found [pip @ file:///home/conda/"),
        "{log}"
    );
    // poetry acts only on a repository with poetry files; this task has none: pip, no warning.
    assert!(!d.output().contains("poetry"), "{}", d.output());
}

/// The worker flags reach the task: `daemon -O` runs it with `python -O` (mirrors
/// `worker_args.get_argv_for_command("execute")`), and so does monitored `execute -O`.
#[test]
fn optimization_flag_reaches_the_task() {
    let ctx = AgentContext::new();
    let script = "import sys\nprint('optimize level', sys.flags.optimize)\n";
    let task = ctx.script_task("optimized", script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "-O"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("optimize level 1"), "{log}");
    let again = ctx.script_task("optimized twice", script);
    let out = ctx
        .command(&["execute", "-OO", "--id", &again])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = ctx.server.log_text(&again).unwrap();
    assert!(log.contains("optimize level 2"), "{log}");
}

/// A setting this agent reads and does not act on is one warning at start (never a silent
/// no-op), and not repeated in the task's log.
#[test]
fn unsupported_settings_warn_once_at_start() {
    let ctx = AgentContext::builder()
        .conf(
            "agent.package_manager.uv_replace_pip: true\nagent.default_docker.match_rules: []\nagent.package_manager.pytorch_resolve: direct",
        )
        .env(
            "FORCE_CLEARML_AGENT_REPO",
            "git+https://example.com/agent.git",
        )
        .build();
    let task = ctx.script_task("warned", "print('ran')\n");
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let out = d.output();
    assert_eq!(t["status"], "completed", "{out}");
    for key in [
        "`agent.package_manager.uv_replace_pip` is set but not supported",
        "`agent.package_manager.pytorch_resolve: direct` is resolved as `pip`",
        "`agent.default_docker.match_rules` is set but not supported",
        "FORCE_CLEARML_AGENT_REPO is set but not supported",
    ] {
        assert_eq!(out.matches(key).count(), 1, "{key}:\n{out}");
    }
    let log = ctx.server.log_text(&task).unwrap();
    assert!(!log.contains("not supported by this agent"), "{log}");
}

#[test]
fn exit_code_fails_the_task_and_the_daemon_goes_on() {
    let ctx = AgentContext::new();
    let bad = ctx.script_task(
        "exit three",
        "import sys\nprint('about to fail')\nsys.exit(3)\n",
    );
    let good = ctx.script_task("after", "print('still serving')\n");
    ctx.server.enqueue(&bad, "default").unwrap();
    ctx.server.enqueue(&good, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&bad, &["failed", "completed"], Some(&d));
    assert_eq!(t["status"], "failed");
    assert_eq!(t["status_reason"], "worker execution exit code 3");
    assert!(ctx.server.log_text(&bad).unwrap().contains("about to fail"));
    ctx.wait_status(&good, &["completed"], Some(&d));
}

#[test]
fn stop_request_kills_the_whole_tree_and_marks_stopped() {
    let ctx = AgentContext::new();
    let pidfile = ctx.root().join("pids");
    let script = format!(
        "import os, subprocess, time\n\
         child = subprocess.Popen(['sleep', '300'])\n\
         escaped = subprocess.Popen(['setsid', 'sleep', '300'])\n\
         open({pf:?}, 'w').write(f'{{os.getpid()}} {{child.pid}} {{escaped.pid}}')\n\
         print('running', flush=True)\n\
         time.sleep(300)\n",
        pf = pidfile.display().to_string()
    );
    let task = ctx.script_task("long", &script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("running"), &d);
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    ctx.server
        .call("tasks.stop", json!({"task": task}))
        .unwrap();
    let t = ctx.wait_status(&task, &["stopped"], Some(&d));
    assert_eq!(t["status_reason"], "task was stopped by tasks.stop");
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the task survived");
    }
    assert!(ctx.server.log_text(&task).unwrap().contains("User aborted"));
}

#[test]
fn priority_serves_the_first_queue_first() {
    let ctx = AgentContext::new();
    let order = ctx.root().join("order");
    let mk = |name: &str| {
        ctx.script_task(
            name,
            &format!(
                "open({:?}, 'a').write({name:?} + '\\n')\n",
                order.display().to_string()
            ),
        )
    };
    let low1 = mk("low1");
    let low2 = mk("low2");
    let high = mk("high");
    ctx.server.enqueue(&low1, "low").unwrap();
    ctx.server.enqueue(&low2, "low").unwrap();
    ctx.server.enqueue(&high, "high").unwrap();
    let d = ctx.daemon(&["--queue", "high", "low", "--cpu-only"]);
    for t in [&low1, &low2, &high] {
        ctx.wait_status(t, &["completed"], Some(&d));
    }
    let seen = std::fs::read_to_string(&order).unwrap();
    assert_eq!(seen, "high\nlow1\nlow2\n");
}

#[test]
fn order_fairness_takes_one_task_per_queue_per_round() {
    let ctx = AgentContext::new();
    let order = ctx.root().join("order");
    let mk = |name: &str| {
        ctx.script_task(
            name,
            &format!(
                "open({:?}, 'a').write({name:?} + '\\n')\n",
                order.display().to_string()
            ),
        )
    };
    let a1 = mk("task-a1");
    let a2 = mk("task-a2");
    let b1 = mk("task-b1");
    let b2 = mk("task-b2");
    for (t, q) in [
        (&a1, "group_a"),
        (&a2, "group_a"),
        (&b1, "group_b"),
        (&b2, "group_b"),
    ] {
        ctx.server.enqueue(t, q).unwrap();
    }
    let d = ctx.daemon(&[
        "--queue",
        "group_a",
        "group_b",
        "--order-fairness",
        "--cpu-only",
    ]);
    for t in [&a1, &a2, &b1, &b2] {
        ctx.wait_status(t, &["completed"], Some(&d));
    }
    let seen = std::fs::read_to_string(&order).unwrap();
    assert_eq!(seen, "task-a1\ntask-b1\ntask-a2\ntask-b2\n");
}

#[test]
fn hundred_thousand_lines_all_arrive_in_order() {
    let ctx = AgentContext::new();
    let task = ctx.script_task(
        "chatty",
        "import sys\nw = sys.stdout.write\nfor i in range(100000):\n    w(f'line {i}\\n')\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_status(&task, &["completed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_numbered_lines(&log, 100_000);
}

#[test]
fn server_restart_mid_task_loses_no_line() {
    let mut ctx = AgentContext::builder().persistent().build();
    let go = ctx.root().join("go");
    let script = format!(
        "import os, time\n\
         for i in range(20):\n    print(f'before {{i}}', flush=True)\n\
         while not os.path.exists({go:?}):\n    time.sleep(0.05)\n\
         for i in range(20):\n    print(f'after {{i}}', flush=True)\n",
        go = go.display().to_string()
    );
    let task = ctx.script_task("restart", &script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("before 19"), &d);
    ctx.server.stop();
    std::fs::write(&go, "").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    ctx.server.restart().unwrap();
    ctx.wait_status(&task, &["completed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    for i in 0..20 {
        assert!(log.contains(&format!("before {i}\n")), "missing before {i}");
        assert!(log.contains(&format!("after {i}\n")), "missing after {i}");
    }
}

#[test]
fn task_output_is_read_while_the_server_is_away() {
    // The status poll retries in the background while the server is down: the task's output
    // (far more than a pipe holds) is still read, so the task runs on, and every line arrives
    // once the server is back.
    let mut ctx = AgentContext::builder()
        .persistent()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "1")
        .build();
    let go = ctx.root().join("go");
    let done = ctx.root().join("done");
    let script = format!(
        "import os, sys, time\nprint('ready', flush=True)\n\
         while not os.path.exists({go:?}):\n    time.sleep(0.05)\n\
         for i in range(200000):\n    print(f'line {{i}}')\n\
         sys.stdout.flush()\nopen({done:?}, 'w').write('x')\n",
        go = go.display().to_string(),
        done = done.display().to_string()
    );
    let task = ctx.script_task("outage", &script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("ready"), &d);
    ctx.server.stop();
    // Long enough for status polls to fail and wait to retry.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(&go, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        done.exists(),
        "the task stalled while the server was away:\n{}",
        d.output()
    );
    ctx.server.restart().unwrap();
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    assert_eq!(t["status"], "completed", "{}", d.output());
    let log = ctx.server.log_text(&task).unwrap();
    assert_numbered_lines(&log, 200_000);
}

#[test]
fn sigterm_while_the_server_is_away_ends_the_daemon() {
    // A poll waiting to retry must not hold the shutdown (the retries span hours).
    let mut ctx = AgentContext::builder()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "1")
        .build();
    let mut d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.server.workers().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    ctx.server.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        d.stop().is_some(),
        "the daemon did not exit within 30 s of SIGTERM:\n{}",
        d.output()
    );
    assert!(d.output().contains("get_next_task"), "{}", d.output());
}

#[test]
fn abort_waits_for_the_sdk_abort_callback() {
    // mirrors TaskStopSignal._wait_for_abort_callback: a task whose SDK registered an abort
    // callback keeps running after the stop request until the callback reports completion (or
    // its time is up), then it is stopped.
    let ctx = AgentContext::builder()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "1")
        .build();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let sleeper = "import time\nprint('up', flush=True)\ntime.sleep(300)\n";
    // What Task.register_abort_callback(callback, timeout) leaves in the task's runtime.
    let register = |task: &str, timeout: f64, completed: Value| {
        ctx.server
            .call(
                "tasks.edit",
                json!({"task": task, "force": true, "runtime": {
                    "_abort_callback_timeout": timeout,
                    "_abort_poll_freq": 1.0,
                    "_abort_callback_completed": completed,
                }}),
            )
            .unwrap();
    };

    let task = ctx.script_task("callback completes", sleeper);
    ctx.server.enqueue(&task, "default").unwrap();
    ctx.wait_log(&task, |l| l.contains("up"), &d);
    register(&task, 30.0, json!(""));
    ctx.server
        .call("tasks.stop", json!({"task": task}))
        .unwrap();
    ctx.wait_log(
        &task,
        |l| l.contains("### Task abort callback timeout set, waiting for max 31.0 sec ###"),
        &d,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(
        t["status"], "in_progress",
        "stopped before its callback completed"
    );
    register(&task, 30.0, json!(1));
    let t = ctx.wait_status(&task, &["stopped", "failed", "completed"], Some(&d));
    assert_eq!(t["status"], "stopped");
    let log = ctx.server.log_text(&task).unwrap();
    assert!(
        log.contains("### Task abort callback completed in "),
        "{log}"
    );

    // A callback that never reports completion is waited for its timeout plus the poll period.
    let task = ctx.script_task("callback times out", sleeper);
    ctx.server.enqueue(&task, "default").unwrap();
    ctx.wait_log(&task, |l| l.contains("up"), &d);
    register(&task, 1.0, json!(""));
    ctx.server
        .call("tasks.stop", json!({"task": task}))
        .unwrap();
    let t = ctx.wait_status(&task, &["stopped", "failed", "completed"], Some(&d));
    assert_eq!(t["status"], "stopped");
    let log = ctx.server.log_text(&task).unwrap();
    assert!(
        log.contains("### Task abort callback timeout set, waiting for max 2.0 sec ###"),
        "{log}"
    );
    assert!(
        log.contains("### Task abort callback timed out [timeout: 2.0, elapsed: "),
        "{log}"
    );
}

#[test]
fn sigterm_stops_the_running_task_and_unregisters() {
    let ctx = AgentContext::new();
    let task = ctx.script_task(
        "sleeper",
        "import time\nprint('up', flush=True)\ntime.sleep(300)\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_log(&task, |l| l.contains("up"), &d);
    assert_eq!(ctx.server.workers().unwrap().len(), 1);
    d.stop();
    let t = ctx.wait_status(&task, &["stopped"], Some(&d));
    assert_eq!(t["status_reason"], "user abort");
    assert!(
        ctx.server.workers().unwrap().is_empty(),
        "worker still registered"
    );
}

#[test]
fn requirements_install_in_a_venv_and_the_second_run_hits_the_cache() {
    let ctx = AgentContext::builder().with_venvs().build();
    let script = "import six\nprint('six', six.__version__)\n";
    let body = |name: &str| {
        json!({
            "name": name,
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": script,
                "requirements": {"pip": "six==1.16.0"},
            }
        })
    };
    let first = ctx.server.create_task(body("first run")).unwrap();
    let second = ctx.server.create_task(body("second run")).unwrap();
    ctx.server.enqueue(&first, "default").unwrap();
    ctx.server.enqueue(&second, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t1 = ctx.wait_status(&first, &["completed", "failed"], Some(&d));
    assert_eq!(
        t1["status"],
        "completed",
        "{}",
        ctx.server.log_text(&first).unwrap()
    );
    assert!(ctx.server.log_text(&first).unwrap().contains("six 1.16.0"));
    let reqs = &t1["script"]["requirements"];
    // mirrors SystemPip.freeze: the frozen `pip` is a list of lines.
    assert!(
        reqs["pip"]
            .as_array()
            .unwrap()
            .contains(&json!("six==1.16.0")),
        "{reqs}"
    );
    assert_eq!(reqs["org_pip"], "six==1.16.0");
    let t2 = ctx.wait_status(&second, &["completed", "failed"], Some(&d));
    assert_eq!(t2["status"], "completed");
    let log2 = ctx.server.log_text(&second).unwrap();
    assert!(log2.contains("Using Cached environment"), "{log2}");
    assert!(
        !log2.contains("-r "),
        "the cache hit installed requirements again:\n{log2}"
    );
}

#[test]
fn the_agent_environment_reaches_the_task() {
    // The seed's example: OPENBLAS_CORETYPE set before starting the agent must reach the task.
    let ctx = AgentContext::builder()
        .env("OPENBLAS_CORETYPE", "ARMV8")
        .conf("agent.worker_id: \"fixed-worker\"")
        .build();
    let task = ctx.script_task(
        "environment",
        "import os\nfor k in ['OPENBLAS_CORETYPE', 'CLEARML_TASK_ID', 'CLEARML_LOG_TASK_TO_BACKEND', \
         'CLEARML_WORKER_ID', 'NVIDIA_VISIBLE_DEVICES', 'CUDA_VISIBLE_DEVICES']:\n    print(k, '=', os.environ.get(k))\n\
         print('CONFIG', os.path.exists(os.environ['CLEARML_CONFIG_FILE']))\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    ctx.wait_status(&task, &["completed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    for line in [
        "OPENBLAS_CORETYPE = ARMV8",
        &format!("CLEARML_TASK_ID = {task}"),
        "CLEARML_LOG_TASK_TO_BACKEND = 0",
        "CLEARML_WORKER_ID = fixed-worker",
        "NVIDIA_VISIBLE_DEVICES = none",
        "CUDA_VISIBLE_DEVICES = none",
        "CONFIG True",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
}

#[test]
fn git_task_runs_at_its_commit_with_the_diff_and_records_the_commit() {
    let ctx = AgentContext::new();
    let repo = GitRepo::new();
    // No version_num: the head of `main` (c2) with the uncommitted diff on top.
    let head = ctx.repo_task("head plus diff", &repo.url(), "", &repo.diff);
    // A pinned older commit, no diff.
    let pinned = ctx.repo_task("pinned", &repo.url(), &repo.c1, "");
    ctx.server.enqueue(&head, "default").unwrap();
    ctx.server.enqueue(&pinned, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&head, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&head).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("patched\n"), "{log}");
    assert!(!log.contains("v2\n"), "{log}");
    // mirrors Worker.execute: the commit that ran is written back when the task had none.
    assert_eq!(t["script"]["version_num"], repo.c2.as_str());
    let t = ctx.wait_status(&pinned, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&pinned).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("v1\n"), "{log}");
    assert_eq!(t["script"]["version_num"], repo.c1.as_str());
}

#[test]
fn bad_task_definitions_fail_with_the_stage_and_the_daemon_goes_on() {
    let ctx = AgentContext::new();
    let repo = GitRepo::new();
    let missing_repo = ctx.repo_task(
        "missing repo",
        &format!("file://{}/nothing-here", ctx.root().display()),
        "",
        "",
    );
    let unknown_commit = ctx.repo_task(
        "unknown commit",
        &repo.url(),
        "0123456789abcdef0123456789abcdef01234567",
        "",
    );
    let bad_diff = ctx.repo_task(
        "bad diff",
        &repo.url(),
        &repo.c1,
        // The diff is against c2's text: it does not apply on c1.
        &repo.diff,
    );
    let missing_entry = ctx
        .server
        .create_task(json!({
            "name": "missing entry point",
            "script": {
                "binary": "python3",
                "repository": repo.url(),
                "branch": "main",
                "entry_point": "not_there.py",
                "working_dir": ".",
            }
        }))
        .unwrap();
    let good = ctx.script_task("still serving", "print('served after the failures')\n");
    for t in [
        &missing_repo,
        &unknown_commit,
        &bad_diff,
        &missing_entry,
        &good,
    ] {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let expect = [
        (
            &missing_repo,
            "failed cloning repository",
            "failed cloning repository file:",
        ),
        (&unknown_commit, "failed checking out", "0123456789abcdef"),
        (
            &bad_diff,
            "failed applying git diff",
            "failed applying git diff",
        ),
        // mirrors Worker.execute: the entry point is not checked; python itself fails with
        // "can't open file" and exit code 2.
        (
            &missing_entry,
            "worker execution exit code 2",
            "can't open file",
        ),
    ];
    for (task, reason, in_log) in expect {
        let t = ctx.wait_status(task, &["failed", "completed"], Some(&d));
        let log = ctx.server.log_text(task).unwrap();
        assert_eq!(t["status"], "failed", "{log}");
        let got = t["status_reason"].as_str().unwrap();
        assert!(
            got.starts_with(reason),
            "reason {got:?}, wanted {reason:?}\n{log}"
        );
        assert!(log.contains(in_log), "missing {in_log:?} in:\n{log}");
        assert!(
            t["status_message"]
                .as_str()
                .unwrap()
                .starts_with("Changed by clearml-agent"),
            "{t}"
        );
    }
    let log = ctx.server.log_text(&missing_entry).unwrap();
    assert!(
        log.contains(
            "INFO: script entrypoint contains args, parsing and passing directly to execution: \
             ['-u', 'not_there.py']"
        ),
        "{log}"
    );
    ctx.wait_status(&good, &["completed"], Some(&d));
}

#[test]
fn a_requirement_that_does_not_exist_fails_the_install_stage() {
    let ctx = AgentContext::builder().with_venvs().build();
    let bad = ctx
        .server
        .create_task(json!({
            "name": "no such package",
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": "print('should not run')\n",
                "requirements": {"pip": "clearml-agent-rs-no-such-package-xyz==0.0.1"},
            }
        }))
        .unwrap();
    let good = ctx.script_task("after", "print('served after the failure')\n");
    ctx.server.enqueue(&bad, "default").unwrap();
    ctx.server.enqueue(&good, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&bad, &["failed", "completed"], Some(&d));
    let log = ctx.server.log_text(&bad).unwrap();
    assert_eq!(t["status"], "failed", "{log}");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("failed installing"), "{reason}\n{log}");
    assert!(
        log.contains("clearml-agent-rs-no-such-package-xyz"),
        "{log}"
    );
    assert!(!log.contains("should not run"), "{log}");
    let t = ctx.wait_status(&good, &["completed", "failed"], Some(&d));
    assert_eq!(
        t["status"],
        "completed",
        "{}",
        ctx.server.log_text(&good).unwrap()
    );
}

#[test]
fn uv_installs_the_requirements() {
    let uv = std::process::Command::new("uv").arg("--version").output();
    if !uv.map(|o| o.status.success()).unwrap_or(false) {
        panic!("uv is not on PATH: install it with `pip install uv`");
    }
    let ctx = AgentContext::builder()
        .with_venvs()
        .conf("agent.package_manager.type: uv")
        .build();
    let task = ctx
        .server
        .create_task(json!({
            "name": "uv install",
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": "import six, sys\nprint('six', six.__version__, 'in', sys.prefix)\n",
                // A task that already ran once: its `org_pip` is kept as it is.
                "requirements": {"pip": "six==1.16.0", "org_pip": "six"},
            }
        }))
        .unwrap();
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("six 1.16.0 in "), "{log}");
    assert!(
        log.contains("pip install --python "),
        "the install did not go through `uv pip install`:\n{log}"
    );
    let reqs = &t["script"]["requirements"];
    // mirrors SystemPip.freeze: the frozen `pip` is a list of lines.
    assert!(
        reqs["pip"]
            .as_array()
            .unwrap()
            .contains(&json!("six==1.16.0")),
        "{reqs}"
    );
    assert_eq!(reqs["org_pip"], "six", "{reqs}");
}

#[test]
fn module_working_dir_and_shell_entry_points_run() {
    let ctx = AgentContext::new();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("entries");
    for (path, text) in [
        ("pkg/__init__.py", ""),
        ("pkg/main.py", "print('module entry point ran')\n"),
        (
            "sub/inner.py",
            "import os\nprint('working dir is', os.path.basename(os.getcwd()))\n",
        ),
        ("run.sh", "echo \"shell entry point ran with $0\"\n"),
    ] {
        let file = repo.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "entries"]);
    let url = format!("file://{}", repo.display());
    let mk = |name: &str, binary: &str, working_dir: &str, entry: &str| {
        ctx.server
            .create_task(json!({
                "name": name,
                "script": {
                    "binary": binary,
                    "repository": url,
                    "branch": "main",
                    "entry_point": entry,
                    "working_dir": working_dir,
                }
            }))
            .unwrap()
    };
    let module = mk("module entry", "python3", ".", "-m pkg.main");
    let inner = mk("working dir entry", "python3", "sub", "inner.py");
    let shell = mk("shell entry", "bash", ".", "run.sh");
    for t in [&module, &inner, &shell] {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let d = ctx.daemon(&["--queue", "default", "--cpu-only"]);
    for (task, line) in [
        (&module, "module entry point ran"),
        (&inner, "working dir is sub"),
        (&shell, "shell entry point ran with run.sh"),
    ] {
        let t = ctx.wait_status(task, &["completed", "failed"], Some(&d));
        let log = ctx.server.log_text(task).unwrap();
        assert_eq!(t["status"], "completed", "{log}");
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
}

/// The log holds `line 0` .. `line {n-1}`, each once, in order.
fn assert_numbered_lines(log: &str, n: usize) {
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(lines.len(), n);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line {i}"));
    }
}
