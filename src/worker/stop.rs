//! `daemon --stop`: find the agent started with the same arguments (or the given worker ids) in
//! the local registry and terminate it: SIGTERM, a bounded wait, then SIGKILL. The agent's own
//! SIGTERM handling stops its running task (marked `stopped`) and unregisters the worker. It owns
//! matching and terminating; it does not talk to the server.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._kill_daemon and helper/process.py: terminate_process

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::registry::{Entry, Registry, RegistryError};

/// How long a stopped agent gets to stop its task and unregister (mirrors `_kill_daemon`: 10 s,
/// 120 s for a dynamic-GPU agent).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
pub const STOP_TIMEOUT_DYNAMIC_GPUS: Duration = Duration::from_secs(120);

/// The live agent to stop: with `worker_id`, the one with exactly that id; without, the first
/// (by worker id) whose id starts with `<worker_name>:`.
pub fn find<'a>(
    entries: &'a [Entry],
    worker_id: Option<&str>,
    worker_name: &str,
) -> Option<&'a Entry> {
    let prefix = format!("{worker_name}:");
    entries.iter().find(|e| {
        let (Some(_), Some(uid)) = (e.pid, e.worker_id.as_deref()) else {
            return false;
        };
        match worker_id {
            Some(id) => uid == id,
            None => uid.starts_with(&prefix),
        }
    })
}

/// Stops one agent; returns false (after printing why) when none matched. `worker_id` is the
/// configured or GPU-derived id when the agent was found "by the same arguments", else the id
/// given to `--stop`; `worker_name` is the name used for prefix matching.
pub fn stop_one(
    registry: &Registry,
    worker_id: Option<&str>,
    worker_name: &str,
    timeout: Duration,
) -> Result<bool, RegistryError> {
    let entries = registry.entries()?;
    for dead in entries.iter().filter(|e| e.pid.is_none()) {
        // Stale files of agents that died without cleaning up: ignored, and removed.
        let _ = std::fs::remove_file(&dead.file);
    }
    let Some(entry) = find(&entries, worker_id, worker_name) else {
        println!(
            "Could not find a running clearml-agent instance with worker_name={worker_name} worker_id={}",
            worker_id.unwrap_or("None")
        );
        return Ok(false);
    };
    let (Some(pid), Some(uid)) = (entry.pid, entry.worker_id.as_deref()) else {
        return Ok(false);
    };
    println!("Terminating clearml-agent worker_id={uid} pid={pid}");
    if !terminate(pid, timeout) {
        println!("clearml_agent: ERROR: Could not terminate process pid={pid}");
    }
    Ok(true)
}

/// SIGTERM, wait up to `timeout` for the process to end, then SIGKILL. True when it is gone.
pub fn terminate(pid: i32, timeout: Duration) -> bool {
    let target = Pid::from_raw(pid);
    if kill(target, Signal::SIGTERM).is_err() {
        return !running(pid);
    }
    if wait_gone(pid, timeout) {
        return true;
    }
    let _ = kill(target, Signal::SIGKILL);
    wait_gone(pid, Duration::from_secs(5))
}

/// The process is not our child, so it cannot be waited for; poll its /proc entry with a short,
/// growing backoff (this one-shot command does nothing else meanwhile).
fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(10);
    loop {
        if !running(pid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(250));
    }
}

/// True while the process exists and is not a zombie waiting to be reaped.
fn running(pid: i32) -> bool {
    if !super::registry::pid_alive(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => super::registry::pid_alive(pid),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn entry(pid: Option<i32>, id: &str) -> Entry {
        Entry {
            pid,
            worker_id: Some(id.into()),
            slot: Some(0),
            file: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn exact_id_wins_and_prefix_needs_the_colon() {
        let es = vec![
            entry(Some(10), "host:0"),
            entry(Some(11), "host:gpu1"),
            entry(Some(12), "hostname:0"),
            entry(None, "host:gpu0"),
        ];
        assert_eq!(
            find(&es, Some("host:gpu1"), "host").map(|e| e.pid),
            Some(Some(11))
        );
        // A dead agent's file never matches.
        assert!(find(&es, Some("host:gpu0"), "host").is_none());
        assert_eq!(find(&es, None, "host").map(|e| e.pid), Some(Some(10)));
        assert_eq!(find(&es, None, "hostname").map(|e| e.pid), Some(Some(12)));
        assert!(find(&es, None, "hos").is_none());
    }
}
