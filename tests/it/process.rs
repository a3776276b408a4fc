//! Integration tests: process.
//!
//! Real processes started through `TaskProcess`; survivors are looked up in /proc.

use std::time::Duration;

use clearml_agent::exec::process::{OutputStream, ProcessSpec, TaskProcess};

fn sh(script: &str) -> ProcessSpec {
    sh_in(script, &std::env::temp_dir())
}

fn sh_in(script: &str, dir: &std::path::Path) -> ProcessSpec {
    ProcessSpec::new("/bin/sh", dir)
        .arg("-c")
        .arg(script)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
}

async fn read_all(mut output: OutputStream) -> String {
    let mut bytes = Vec::new();
    while let Some(chunk) = output.next_chunk().await {
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads output until `marker` has appeared; returns everything read so far.
async fn read_until(output: &mut OutputStream, seen: &mut String, marker: &str) {
    while !seen.contains(marker) {
        let chunk = output
            .next_chunk()
            .await
            .expect("output ended before the marker");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Fields of /proc/<pid>/stat: (state, pgrp, session); None when the process is gone.
fn stat(pid: i32) -> Option<(String, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((
        fields[0].to_string(),
        fields[2].parse().ok()?,
        fields[3].parse().ok()?,
    ))
}

fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != "Z" && state != "X")
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            stat(*pid).is_some_and(|(state, pgrp, _)| pgrp == pgid && state != "Z" && state != "X")
        })
        .collect()
}

fn pids_after(text: &str, tag: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|line| line.strip_prefix(tag)?.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn exit_codes_are_reported() {
    for (script, expected) in [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", -9)] {
        let mut process = TaskProcess::spawn(&sh(script)).expect("spawn");
        let output = process.take_output().expect("output");
        let code = process.wait().await.expect("wait");
        assert_eq!(code, expected, "{script}");
        assert_eq!(read_all(output).await, "");
    }
}

#[tokio::test]
async fn environment_and_directory_are_exactly_the_given_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ProcessSpec::new("/bin/sh", dir.path())
        .arg("-c")
        .arg("echo \"$ONLY_VAR|${HOME:-unset}|$(pwd)\"; env | wc -l")
        .env("ONLY_VAR", "given");
    let mut process = TaskProcess::spawn(&spec).expect("spawn");
    let output = process.take_output().expect("output");
    assert_eq!(process.wait().await.expect("wait"), 0);
    let text = read_all(output).await;
    let cwd = dir.path().canonicalize().expect("canonicalize");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("given|unset|{}", cwd.display()).as_str())
    );
    // ONLY_VAR plus what sh itself exports (PWD, maybe SHLVL and `_`): nothing from the agent.
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("count");
    assert!(count <= 4, "{text}");
}

#[tokio::test]
async fn missing_program_is_a_clear_error() {
    let spec = ProcessSpec::new("/nonexistent/program", std::env::temp_dir());
    let error = TaskProcess::spawn(&spec).err().expect("spawn must fail");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/program"), "{message}");
}

#[tokio::test]
async fn stdout_and_stderr_keep_their_order() {
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; echo err$i >&2; done";
    let mut process = TaskProcess::spawn(&sh(script)).expect("spawn");
    let output = process.take_output().expect("output");
    let reader = tokio::spawn(read_all(output));
    assert_eq!(process.wait().await.expect("wait"), 0);
    let text = reader.await.expect("reader");
    let expected: String = (1..=10).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(text, expected);
}

#[tokio::test]
async fn kill_tree_kills_the_whole_group() {
    let script = "sleep 100 & echo bg $!; sleep 100 & echo bg $!; echo ready; wait";
    let mut process = TaskProcess::spawn(&sh(script)).expect("spawn");
    let pgid = process.pid() as i32;
    let mut output = process.take_output().expect("output");
    let mut seen = String::new();
    read_until(&mut output, &mut seen, "ready").await;
    let sleepers = pids_after(&seen, "bg ");
    assert_eq!(sleepers.len(), 2);
    assert!(sleepers.iter().all(|pid| alive(*pid)));
    assert_eq!(group_members(pgid).len(), 3);

    let code = process
        .kill_tree(Duration::from_secs(5))
        .await
        .expect("kill");
    assert_eq!(code, -15);
    assert!(group_members(pgid).is_empty());
    assert!(sleepers.iter().all(|pid| !alive(*pid)));
    read_all(output).await;
}

#[tokio::test]
async fn kill_tree_kills_a_grandchild_that_left_the_group() {
    // The grandchild makes its own session, stops writing to the pipe, and its parent waits.
    let script = "setsid sh -c 'echo escaped $$; touch up; exec sleep 100 >/dev/null 2>&1' & \
                  until [ -e up ]; do sleep 0.01; done; echo ready; wait";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut process = TaskProcess::spawn(&sh_in(script, dir.path())).expect("spawn");
    let pgid = process.pid() as i32;
    let mut output = process.take_output().expect("output");
    let mut seen = String::new();
    read_until(&mut output, &mut seen, "ready").await;
    let escaped = pids_after(&seen, "escaped ");
    assert_eq!(escaped.len(), 1);
    let (_, pgrp, session) = stat(escaped[0]).expect("grandchild runs");
    assert_ne!(pgrp, pgid, "the grandchild must have left the group");
    assert_eq!(session, escaped[0]);

    process
        .kill_tree(Duration::from_secs(5))
        .await
        .expect("kill");
    assert!(!alive(escaped[0]));
    assert!(group_members(pgid).is_empty());
    read_all(output).await;
}

#[tokio::test]
async fn leftovers_die_after_a_normal_exit() {
    // One background child stays in the group, one daemon leaves it but keeps the pipe open.
    let script = "sleep 100 & echo bg $!; \
                  setsid sh -c 'echo daemon $$; touch up; exec sleep 100' & \
                  until [ -e up ]; do sleep 0.01; done; echo done";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut process = TaskProcess::spawn(&sh_in(script, dir.path())).expect("spawn");
    let pgid = process.pid() as i32;
    let output = process.take_output().expect("output");
    let reader = tokio::spawn(read_all(output));
    assert_eq!(process.wait().await.expect("wait"), 0);
    // The output ends: nobody holds the pipe any more.
    let text = reader.await.expect("reader");
    let survivors: Vec<i32> = pids_after(&text, "bg ")
        .into_iter()
        .chain(pids_after(&text, "daemon "))
        .collect();
    assert_eq!(survivors.len(), 2, "{text}");
    assert!(survivors.iter().all(|pid| !alive(*pid)));
    assert!(group_members(pgid).is_empty());
}

#[tokio::test]
async fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace() {
    let script = "trap 'echo got-term' TERM; echo ready; while true; do sleep 0.05; done";
    let mut process = TaskProcess::spawn(&sh(script)).expect("spawn");
    let mut output = process.take_output().expect("output");
    let mut seen = String::new();
    read_until(&mut output, &mut seen, "ready").await;
    let reader = tokio::spawn(read_all(output));
    let code = process
        .kill_tree(Duration::from_millis(500))
        .await
        .expect("kill");
    assert_eq!(code, -9);
    let rest = reader.await.expect("reader");
    assert!(rest.contains("got-term"), "{rest}");
}

#[tokio::test]
async fn wait_or_kill_reports_which_happened() {
    let mut process = TaskProcess::spawn(&sh("exit 5")).expect("spawn");
    let (code, stopped) = process
        .wait_or_kill(std::future::pending(), Duration::ZERO)
        .await
        .expect("wait");
    assert_eq!((code, stopped), (5, false));

    let mut process = TaskProcess::spawn(&sh("sleep 100")).expect("spawn");
    let pgid = process.pid() as i32;
    let (code, stopped) = process
        .wait_or_kill(async {}, Duration::ZERO)
        .await
        .expect("kill");
    assert_eq!((code, stopped), (-9, true));
    assert!(group_members(pgid).is_empty());
}
