//! `clearml-agent slurm` against the real single-node Slurm cluster that scripts/slurm-cluster.sh
//! starts (scripts/test.sh does it before `cargo test`). These tests fail, not skip, when the
//! cluster is not up.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::{AgentContext, Daemon};

/// The cluster must answer; a clear failure otherwise.
fn require_cluster() {
    let out = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let ok = out
        .as_ref()
        .map(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false);
    assert!(
        ok,
        "the Slurm test cluster is not up: run `scripts/slurm-cluster.sh start` as root (scripts/test.sh does)"
    );
}

fn glue_context(max_jobs: u32) -> AgentContext {
    require_cluster();
    let ctx = AgentContext::builder().build();
    let conf = format!(
        "agent.slurm {{\n  poll_interval_sec: 1\n  max_jobs: {max_jobs}\n  output_dir: {root}/slurm\n  \
         defaults {{ partition: test, time: \"5\" }}\n}}\n",
        root = ctx.root().display()
    );
    let path = ctx.root().join("clearml.conf");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&conf);
    std::fs::write(&path, text).unwrap();
    ctx
}

/// squeue's view: job name → (job id, state) for every job whose name carries one of `tasks`.
fn jobs_of(tasks: &BTreeSet<String>) -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-o", "%i|%j|%T"])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.trim().split('|');
            let (id, name, state) = (p.next()?, p.next()?, p.next()?);
            let task = name.strip_prefix("clearml-")?;
            tasks
                .contains(task)
                .then(|| (id.to_string(), task.to_string(), state.to_string()))
        })
        .collect()
}

fn in_flight(state: &str) -> bool {
    matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED"
    )
}

fn job_state(job_id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["-o", "show", "job", job_id])
        .output()
        .expect("scontrol runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .unwrap_or_default()
        .to_string()
}

fn quick_task(ctx: &AgentContext, n: usize) -> String {
    ctx.script_task(
        &format!("slurm quick {n}"),
        &format!("print('hello from slurm task {n}')\n"),
    )
}

fn task_with_overrides(
    ctx: &AgentContext,
    name: &str,
    script: &str,
    over: &[(&str, &str)],
) -> String {
    let mut section = serde_json::Map::new();
    for (k, v) in over {
        section.insert(
            (*k).to_string(),
            json!({"section": "slurm", "name": k, "value": v}),
        );
    }
    ctx.server
        .create_task(json!({
            "name": name,
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".", "diff": script},
            "hyperparams": {"slurm": Value::Object(section)},
        }))
        .expect("create task")
}

fn wait_until(what: &str, glue: &Daemon, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; glue log:\n{}",
            glue.output()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn slurm_twenty_tasks_on_two_queues_complete_within_the_job_cap() {
    let ctx = glue_context(4);
    let started = Instant::now();
    let mut glue = ctx.slurm_glue(&["--queue", "sq_a", "sq_b", "--create-queue"]);
    wait_until("the queues", &glue, || {
        ctx.server.queue_id("sq_a").is_ok() && ctx.server.queue_id("sq_b").is_ok()
    });
    let mut tasks = BTreeSet::new();
    for n in 0..20 {
        let t = quick_task(&ctx, n);
        ctx.server
            .enqueue(&t, if n % 2 == 0 { "sq_a" } else { "sq_b" })
            .unwrap();
        tasks.insert(t);
    }
    let mut most = 0;
    wait_until("all 20 tasks to complete", &glue, || {
        let flying = jobs_of(&tasks)
            .iter()
            .filter(|(_, _, s)| in_flight(s))
            .count();
        most = most.max(flying);
        tasks
            .iter()
            .all(|t| ctx.server.task(t).unwrap()["status"] == "completed")
    });
    assert!(
        most <= 4,
        "{most} jobs were in flight at once, the cap is 4"
    );
    assert!(most >= 1, "no job was ever seen in squeue");
    let jobs = jobs_of(&tasks);
    let per_task: BTreeMap<&str, usize> = jobs.iter().fold(BTreeMap::new(), |mut m, (_, t, _)| {
        *m.entry(t.as_str()).or_default() += 1;
        m
    });
    assert_eq!(per_task.len(), 20, "every task ran as a job: {jobs:?}");
    assert!(
        per_task.values().all(|n| *n == 1),
        "a task ran twice: {jobs:?}"
    );
    for (n, t) in tasks.iter().enumerate() {
        let log = ctx.server.log_text(t).unwrap();
        assert!(
            log.contains("hello from slurm task"),
            "task {n} log:\n{log}"
        );
    }
    assert_eq!(glue.stop(), Some(0), "glue log:\n{}", glue.output());
    eprintln!(
        "20 tasks through Slurm in {:?}, at most {most} jobs in flight",
        started.elapsed()
    );
}

#[test]
fn slurm_abort_cancels_the_job_and_the_task_ends_stopped() {
    let ctx = glue_context(2);
    let glue = ctx.slurm_glue(&["--queue", "sq_abort", "--create-queue"]);
    wait_until("the queue", &glue, || {
        ctx.server.queue_id("sq_abort").is_ok()
    });
    // Held back by --begin: the job stays pending, with reason BeginTime.
    let task = task_with_overrides(
        &ctx,
        "held",
        "print('never runs')\n",
        &[("extra_args", "--begin=now+600")],
    );
    ctx.server.enqueue(&task, "sq_abort").unwrap();
    let mut message = String::new();
    wait_until("the pending message", &glue, || {
        message = ctx.server.task(&task).unwrap()["status_message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        message.contains("pending (BeginTime)")
    });
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "queued");
    // The worker reports the cluster's queue depth.
    wait_until("the depth report", &glue, || {
        ctx.server.workers().unwrap().iter().any(|w| {
            w["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "slurm-pending:1"))
        })
    });
    let job_id = message
        .split_whitespace()
        .nth(2)
        .expect("message names the job")
        .to_string();
    ctx.server
        .call("tasks.stop", json!({"task": task, "force": true}))
        .unwrap();
    wait_until("the job to be cancelled", &glue, || {
        job_state(&job_id) == "CANCELLED"
    });
    std::thread::sleep(Duration::from_secs(3));
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "stopped", "glue log:\n{}", glue.output());
    assert!(
        glue.output()
            .contains(&format!("cancelling Slurm job {job_id}")),
        "glue log:\n{}",
        glue.output()
    );
}

#[test]
fn slurm_time_limit_fails_the_task_with_the_reason() {
    let ctx = glue_context(2);
    let glue = ctx.slurm_glue(&["--queue", "sq_time", "--create-queue"]);
    wait_until("the queue", &glue, || {
        ctx.server.queue_id("sq_time").is_ok()
    });
    let task = task_with_overrides(
        &ctx,
        "sleeper",
        "import time\nprint('sleeping past the limit', flush=True)\ntime.sleep(600)\n",
        &[("time", "1")],
    );
    ctx.server.enqueue(&task, "sq_time").unwrap();
    ctx.wait_status(&task, &["failed"], Some(&glue));
    // `execute` may end the task first when Slurm sends it SIGTERM; the glue then fails it with
    // Slurm's reason once the controller reports the job TIMEOUT.
    let mut seen = Value::Null;
    wait_until("the time-limit reason", &glue, || {
        seen = ctx.server.task(&task).unwrap();
        seen["status"] == "failed"
            && seen["status_reason"]
                .as_str()
                .is_some_and(|r| r.contains("time limit"))
    });
    assert!(
        seen["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("TIMEOUT")
    );
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("sleeping past the limit"), "log:\n{log}");
}

#[test]
fn slurm_glue_killed_and_restarted_submits_no_task_twice() {
    let ctx = glue_context(3);
    let mut glue = ctx.slurm_glue(&["--queue", "sq_kill", "--create-queue"]);
    wait_until("the queue", &glue, || {
        ctx.server.queue_id("sq_kill").is_ok()
    });
    let mut tasks = BTreeSet::new();
    for n in 0..6 {
        let t = ctx.script_task(
            &format!("restart {n}"),
            "import time\nprint('working', flush=True)\ntime.sleep(3)\n",
        );
        ctx.server.enqueue(&t, "sq_kill").unwrap();
        tasks.insert(t);
    }
    wait_until("two jobs", &glue, || jobs_of(&tasks).len() >= 2);
    glue.child.kill().unwrap();
    glue.child.wait().unwrap();
    let first = glue.output();
    let glue = ctx.slurm_glue(&["--queue", "sq_kill"]);
    wait_until("all 6 tasks to complete", &glue, || {
        tasks
            .iter()
            .all(|t| ctx.server.task(t).unwrap()["status"] == "completed")
    });
    let jobs = jobs_of(&tasks);
    let mut per_task: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, t, _) in &jobs {
        *per_task.entry(t.as_str()).or_default() += 1;
    }
    assert_eq!(per_task.len(), 6, "{jobs:?}");
    assert!(
        per_task.values().all(|n| *n == 1),
        "a task was submitted twice: {jobs:?}\nfirst glue:\n{first}\nsecond glue:\n{}",
        glue.output()
    );
}

#[test]
fn slurm_job_output_reaches_the_log_when_execute_never_started() {
    require_cluster();
    let ctx = AgentContext::builder().build();
    let conf = format!(
        "agent.slurm {{\n  poll_interval_sec: 1\n  output_dir: {root}/slurm\n  \
         template: \"#!/bin/bash\\necho node setup failed on purpose >&2\\nexit 3\\n{{{{command}}}}\\n\"\n}}\n",
        root = ctx.root().display()
    );
    let path = ctx.root().join("clearml.conf");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&conf);
    std::fs::write(&path, text).unwrap();
    let glue = ctx.slurm_glue(&["--queue", "sq_out", "--create-queue"]);
    wait_until("the queue", &glue, || ctx.server.queue_id("sq_out").is_ok());
    let task = quick_task(&ctx, 99);
    ctx.server.enqueue(&task, "sq_out").unwrap();
    ctx.wait_status(&task, &["failed"], Some(&glue));
    let t = ctx.server.task(&task).unwrap();
    let reason = t["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exit code 3"), "reason: {reason}");
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("node setup failed on purpose"), "log:\n{log}");
}

#[test]
fn slurm_glue_stops_like_a_daemon_and_unregisters() {
    let ctx = glue_context(2);
    let mut glue = ctx.slurm_glue(&["--queue", "sq_stop", "--create-queue"]);
    wait_until("the worker", &glue, || {
        ctx.server.workers().unwrap().iter().any(|w| {
            w["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "slurm"))
        })
    });
    let out = ctx
        .command(&["slurm", "--queue", "sq_stop", "--stop"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while glue.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "glue still runs:\n{}",
            glue.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ctx.server.workers().unwrap().is_empty(),
        "worker still registered"
    );
}

#[test]
fn slurm_bad_setting_is_one_line_naming_the_key() {
    let ctx = AgentContext::builder()
        .conf("agent.slurm.max_jobs: 0")
        .build();
    let out = ctx.command(&["slurm", "--queue", "q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agent.slurm.max_jobs"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn slurm_abort_of_a_running_task_ends_it_stopped_and_its_job_ends() {
    let ctx = glue_context(2);
    let glue = ctx.slurm_glue(&["--queue", "sq_abort_run", "--create-queue"]);
    wait_until("the queue", &glue, || {
        ctx.server.queue_id("sq_abort_run").is_ok()
    });
    let task = ctx.script_task(
        "long",
        "import time\nprint('running long', flush=True)\ntime.sleep(600)\n",
    );
    ctx.server.enqueue(&task, "sq_abort_run").unwrap();
    ctx.wait_log(&task, |l| l.contains("running long"), &glue);
    let tasks: BTreeSet<String> = [task.clone()].into();
    let job_id = jobs_of(&tasks).first().expect("the job").0.clone();
    ctx.server
        .call("tasks.stop", json!({"task": task, "force": false}))
        .unwrap();
    ctx.wait_status(&task, &["stopped"], Some(&glue));
    // Whoever saw the abort first (execute in the job, or the glue's scancel), the job ends.
    wait_until("the job to end", &glue, || {
        matches!(job_state(&job_id).as_str(), "CANCELLED" | "COMPLETED")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        ctx.server.task(&task).unwrap()["status"],
        "stopped",
        "glue log:\n{}",
        glue.output()
    );
}
