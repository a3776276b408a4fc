//! A cgroup (v2) per task, where the machine offers one the agent may write: every process the
//! task starts stays in it whatever it does to its group, session, descriptors or environment,
//! so the kill finds them all. Without cgroup v2 (or without the right to create one) the task
//! mark in the environment is the only trace (`process.rs`); both are used when both exist.
//!
//! Not in the Python agent (it kills the process tree it can see).

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A task's cgroup; removed when dropped (once empty).
#[derive(Debug)]
pub struct TaskCgroup {
    dir: PathBuf,
}

/// Where this process's cgroup v2 lives: the cgroup2 mount point joined with the path of the
/// `0::` line of `/proc/self/cgroup`.
fn own_cgroup() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // `... mount_point options - fstype source super_options`
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4))?
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(mount).join(path.trim_start_matches('/')))
}

impl TaskCgroup {
    /// A new cgroup for the task `mark` next to the agent's own, `None` when the machine has no
    /// cgroup v2 or it cannot be created here.
    pub fn create(mark: &str) -> Option<TaskCgroup> {
        let parent = own_cgroup()?;
        let name: String = mark
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = parent.join(format!("clearml-agent-task-{name}"));
        std::fs::create_dir(&dir).ok()?;
        Some(TaskCgroup { dir })
    }

    /// Moves `pid` (the task's first process, before it has much chance to start others) in.
    pub fn add(&self, pid: i32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs everything in the cgroup (`cgroup.kill` where the kernel has it, 5.14 and newer,
    /// which also catches a process forking at that moment).
    pub fn kill_all(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        // Fails while processes are left; the kill paths empty it first.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
