//! Whether a pid named by a registry file is a live clearml-agent that could have written that
//! file: this binary, or a Python agent (`python ... clearml_agent`, the `clearml-agent` script),
//! started no later than the file was last written or renamed. Anything else is a stale entry
//! (the pid was reused) or a forged one, and is never signalled.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux ABI).
const USER_HZ: u64 = 100;
/// `btime` is whole seconds and the file times are the filesystem's: allow this much skew.
const START_SLACK: Duration = Duration::from_secs(2);

/// True when `pid` runs a clearml-agent and started before `file_changed` (the pid file's ctime:
/// an agent writes its file after it starts, and renames it after a fork).
pub fn is_agent(pid: i32, file_changed: SystemTime) -> bool {
    if pid <= 0 {
        return false;
    }
    let proc_dir = format!("/proc/{pid}");
    if !(same_binary(&proc_dir) || agent_cmdline(&proc_dir)) {
        return false;
    }
    match start_time(&proc_dir) {
        Some(started) => started <= file_changed + START_SLACK,
        // No readable start time: the command line alone decides.
        None => true,
    }
}

/// The process runs this very executable.
fn same_binary(proc_dir: &str) -> bool {
    match (
        std::fs::read_link(format!("{proc_dir}/exe")),
        std::fs::read_link("/proc/self/exe"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}

/// The command line is a clearml-agent's: the program is `clearml-agent` (any path), or a
/// python whose script or `-m` module is clearml-agent / clearml_agent.
fn agent_cmdline(proc_dir: &str) -> bool {
    let Ok(raw) = std::fs::read(format!("{proc_dir}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    is_agent_argv(&args)
}

fn base(arg: &str) -> &str {
    Path::new(arg)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(arg)
}

fn names_agent(arg: &str) -> bool {
    let b = base(arg);
    b == "clearml-agent"
        || b == "clearml_agent"
        || b.starts_with("clearml_agent.")
        || b.starts_with("clearml-agent-")
        || arg.contains("/clearml_agent/")
}

pub(crate) fn is_agent_argv(args: &[String]) -> bool {
    let Some(program) = args.first() else {
        return false;
    };
    if names_agent(program) {
        return true;
    }
    if !base(program).starts_with("python") {
        return false;
    }
    // `python [-u] [-m] clearml_agent ...` or `python /usr/bin/clearml-agent ...`: the first
    // argument that is not an interpreter option names what runs.
    args.iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| names_agent(a))
}

/// When the process started, from `/proc/<pid>/stat` (field 22) and the boot time.
fn start_time(proc_dir: &str) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).ok()?;
    // Fields after the command name (in parentheses, which may hold spaces) start at field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let millis = btime * 1000 + ticks * 1000 / USER_HZ;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn agent_command_lines() {
        assert!(is_agent_argv(&argv(
            "/usr/local/bin/clearml-agent daemon --queue q"
        )));
        assert!(is_agent_argv(&argv("python3 -m clearml_agent daemon")));
        assert!(is_agent_argv(&argv(
            "/usr/bin/python3.11 -u /usr/local/bin/clearml-agent daemon"
        )));
        assert!(is_agent_argv(&argv(
            "python3 /venv/lib/python3.11/site-packages/clearml_agent/__main__.py daemon"
        )));
        assert!(!is_agent_argv(&argv("sleep 1000")));
        assert!(!is_agent_argv(&argv("/sbin/init")));
        assert!(!is_agent_argv(&argv("python3 train.py clearml-agent")));
        assert!(!is_agent_argv(&argv("bash -c clearml-agent")));
        assert!(!is_agent_argv(&[]));
    }

    #[test]
    fn this_process_and_not_init() {
        let me = std::process::id() as i32;
        // Started before now: a file written now may name it.
        assert!(is_agent(me, SystemTime::now()) || !same_binary("/proc/self"));
        // A file older than the process cannot have been written by it (a reused pid).
        assert!(!is_agent(me, UNIX_EPOCH + Duration::from_secs(1)));
        assert!(!is_agent(1, SystemTime::now()));
        assert!(!is_agent(0, SystemTime::now()));
    }
}
