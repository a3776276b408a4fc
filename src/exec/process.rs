//! Child processes: spawning in their own process group, output capture, killing the whole tree.
//!
//! A task runs in a new process group with stdout and stderr sharing one pipe (the kernel keeps the
//! order, as `2>&1` does). What a task "is" when it has to die: the child, every process still in its
//! group, every process still holding the output pipe (a daemon it started with `setsid` usually
//! does), every process whose environment carries the task's mark (`CLEARML_AGENT_TASK_MARK`: one
//! that double-forked, called `setsid` and closed its descriptors) and every descendant of those,
//! found by walking `/proc`. Log shipping is not done here: the caller reads [`OutputStream`] and
//! feeds the log pipeline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cgroup::TaskCgroup;
use crate::env::EnvVars;

/// How long the output stream still waits for end-of-file once the task's processes are all dead
/// (only a process we could not kill, e.g. one owned by another user, keeps the pipe open that long).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);
/// How long to wait for SIGKILLed processes to disappear before reporting survivors.
const KILL_CONFIRM: Duration = Duration::from_secs(10);
/// Size of one read from the output pipe.
const READ_CHUNK: usize = 64 * 1024;

/// What to run. The environment is complete: nothing of the agent's own environment is inherited.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl ProcessSpec {
    pub fn new(program: impl Into<OsString>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: cwd.into(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot create the output pipe: {0}")]
    Pipe(#[source] std::io::Error),
    #[error(
        "cannot start {program:?} in {cwd}: {source}; check that the program exists, is executable and the directory exists"
    )]
    Spawn {
        program: OsString,
        cwd: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for process {pid}: {source}")]
    Wait {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("processes {0:?} of the task survived SIGKILL")]
    Survivors(Vec<i32>),
}

/// A running task process tree.
pub struct TaskProcess {
    child: Child,
    pid: i32,
    /// `CLEARML_AGENT_TASK_MARK=<token>`: a process whose environment has it belongs to the task.
    mark_entry: Vec<u8>,
    /// The inode of the output pipe: a process holding it belongs to the task.
    pipe_ino: u64,
    /// Start time of the child (clock ticks since boot, from /proc).
    child_start: i64,
    output: Option<OutputStream>,
    /// Exit code once the child has been reaped (after that its pid may be reused, so the group
    /// is no longer signalled as a whole).
    code: Option<i32>,
    /// Tells the output stream that no process of the task is left.
    done_tx: watch::Sender<bool>,
    /// The task's own cgroup (v2) where the machine offers one: what is in it belongs to the
    /// task, whatever it did to its session or environment.
    cgroup: Option<TaskCgroup>,
}

/// The merged stdout/stderr of a task, as raw chunks in the order the kernel received them.
pub struct OutputStream {
    pipe: pipe::Receiver,
    done: watch::Receiver<bool>,
    drain_until: Option<Instant>,
    buf: Vec<u8>,
}

impl OutputStream {
    /// The next chunk of output, or `None` once every writer has closed the pipe (or, after the task
    /// has been cleaned up, a writer we could not kill keeps it open for too long).
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.drain_until.is_none() && *self.done.borrow() {
                self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            }
            let drain_until = self.drain_until;
            tokio::select! {
                read = self.pipe.read(&mut self.buf) => {
                    return match read {
                        Ok(0) => None,
                        Ok(n) => Some(self.buf[..n].to_vec()),
                        Err(error) => {
                            tracing::warn!("reading task output failed: {error}");
                            None
                        }
                    };
                }
                changed = self.done.changed(), if drain_until.is_none() => {
                    if changed.is_err() {
                        // The process handle is gone without cleanup: keep reading until EOF.
                        self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                    }
                }
                _ = tokio::time::sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                    tracing::warn!("task output still open after all processes were killed; stop reading it");
                    return None;
                }
            }
        }
    }
}

/// Exit code as the Python agent sees it from `Popen.returncode`: the exit status, or `-N` when the
/// process was killed by signal `N`.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| -signal))
        .unwrap_or(-1)
}

impl TaskProcess {
    /// Starts `spec` in a new process group, stdin from /dev/null, stdout and stderr into one pipe.
    pub fn spawn(spec: &ProcessSpec) -> Result<Self, ProcessError> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|errno| ProcessError::Pipe(errno.into()))?;
        let pipe_ino = std::fs::metadata(format!("/proc/self/fd/{}", raw(&read_end)))
            .map(|meta| meta.ino())
            .map_err(ProcessError::Pipe)?;
        let write_err = write_end.try_clone().map_err(ProcessError::Pipe)?;
        let mark = new_mark();
        let child = {
            // The command owns our copies of the write end; dropping it right after spawn leaves
            // the child (and what it starts) the only writers, so EOF means they are all gone.
            let mut command = Command::new(&spec.program);
            command
                .args(&spec.args)
                .env_clear()
                .envs(&spec.env)
                .env(EnvVars::CLEARML_AGENT_TASK_MARK, &mark)
                .current_dir(&spec.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::from(write_end))
                .stderr(Stdio::from(write_err))
                .process_group(0);
            command.spawn().map_err(|source| ProcessError::Spawn {
                program: spec.program.clone(),
                cwd: spec.cwd.clone(),
                source,
            })?
        };
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| ProcessError::Spawn {
                program: spec.program.clone(),
                cwd: spec.cwd.clone(),
                source: std::io::Error::other("the process exited before its id was read"),
            })?;
        // Moved in right after the start (a fork before that is still found by the mark).
        let cgroup = TaskCgroup::create(&mark).filter(|cg| cg.add(pid).is_ok());
        let pipe = pipe::Receiver::from_owned_fd(read_end).map_err(ProcessError::Pipe)?;
        let (done_tx, done_rx) = watch::channel(false);
        let child_start = read_stat(pid).map_or(0, |entry| entry.start);
        Ok(Self {
            child,
            pid,
            mark_entry: format!("{}={mark}", EnvVars::CLEARML_AGENT_TASK_MARK).into_bytes(),
            pipe_ino,
            child_start,
            output: Some(OutputStream {
                pipe,
                done: done_rx,
                drain_until: None,
                buf: vec![0; READ_CHUNK],
            }),
            code: None,
            done_tx,
            cgroup,
        })
    }

    /// Whether the task runs in a cgroup of its own.
    pub fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// The child's process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// The output stream; `None` when already taken.
    pub fn take_output(&mut self) -> Option<OutputStream> {
        self.output.take()
    }

    /// Waits for the child itself to exit and keeps its exit code. Cancel-safe (tokio's
    /// `Child::wait`).
    async fn reap(&mut self) -> Result<i32, ProcessError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| ProcessError::Wait {
                pid: self.pid(),
                source,
            })?;
        let code = exit_code(status);
        self.code = Some(code);
        Ok(code)
    }

    /// Waits for the child to exit, then kills what is left of its tree (mirrors
    /// clearml_agent/commands/worker.py: Worker._log_command_output, the "full cleanup" after the
    /// loop). Returns the exit code (`-N` for signal `N`) once no process of the task survives.
    /// Read the output stream concurrently (e.g. in a spawned task): a child writing into a full
    /// pipe never exits. Cancel-safe: calling it again after cancellation resumes.
    pub async fn wait(&mut self) -> Result<i32, ProcessError> {
        let code = match self.code {
            Some(code) => code,
            None => self.reap().await?,
        };
        self.kill_leftovers(&[]).await?;
        Ok(code)
    }

    /// Waits for the child to exit unless `stop` completes first; then kills the tree with
    /// [`TaskProcess::kill_tree`]. Returns the exit code and whether the stop fired.
    pub async fn wait_or_kill(
        &mut self,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(i32, bool), ProcessError> {
        if self.code.is_none() {
            tokio::select! {
                code = self.reap() => {
                    code?;
                }
                () = stop => return Ok((self.kill_tree(grace).await?, true)),
            }
        }
        Ok((self.wait().await?, false))
    }

    /// SIGTERM to the whole tree, up to `grace` for the child to exit, then SIGKILL to every process
    /// of the task, including descendants that left the group. Returns the child's exit code once no
    /// process of the task survives. (The Python agent SIGKILLs at once: helper/process.py:
    /// kill_all_child_processes; with a zero grace this does the same.)
    pub async fn kill_tree(&mut self, grace: Duration) -> Result<i32, ProcessError> {
        if self.code.is_some() {
            return self.wait().await;
        }
        // Taken before anything dies: once a parent is gone its children are reparented and only
        // this snapshot still links them to the task.
        let snapshot = self.members();
        if !grace.is_zero() {
            self.signal_all(&snapshot, Signal::SIGTERM);
            if let Ok(code) = tokio::time::timeout(grace, self.reap()).await {
                code?;
            }
        }
        if self.code.is_none() {
            let mut members = self.members();
            members.extend(snapshot.iter().cloned());
            self.signal_all(&members, Signal::SIGKILL);
            self.reap().await?;
        }
        let code = self.code.unwrap_or(-1);
        self.kill_leftovers(&snapshot).await?;
        Ok(code)
    }

    /// After the child is reaped: SIGKILL every remaining process of the task and wait until none
    /// is left (SIGKILL takes effect asynchronously, so this re-checks with a short backoff).
    async fn kill_leftovers(&mut self, snapshot: &[Member]) -> Result<(), ProcessError> {
        let mut backoff = Duration::from_millis(1);
        let give_up = Instant::now() + KILL_CONFIRM;
        loop {
            let mut members = self.members();
            members.extend(snapshot.iter().filter(|m| m.still_alive()).cloned());
            if members.is_empty() {
                self.done_tx.send_replace(true);
                return Ok(());
            }
            if Instant::now() >= give_up {
                self.done_tx.send_replace(true);
                return Err(ProcessError::Survivors(
                    members.iter().map(|m| m.pid).collect(),
                ));
            }
            self.signal_all(&members, Signal::SIGKILL);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    fn signal_all(&self, members: &[Member], signal: Signal) {
        if self.code.is_none() {
            // The child is not reaped, so its pid (the group id) cannot have been reused.
            ignore_gone(killpg(Pid::from_raw(self.pid), signal));
        }
        if signal == Signal::SIGKILL
            && let Some(cgroup) = &self.cgroup
        {
            cgroup.kill_all();
        }
        let mut seen = HashSet::new();
        for member in members {
            if seen.insert(member.pid) && member.still_alive() {
                ignore_gone(kill(Pid::from_raw(member.pid), signal));
            }
        }
    }

    /// The live processes of the task right now: the child (if not reaped), its group, holders of
    /// the output pipe, and all their descendants.
    fn members(&self) -> Vec<Member> {
        let table = proc_table();
        let own = std::process::id() as i32;
        let pipe_link = format!("pipe:[{}]", self.pipe_ino);
        let mut roots: Vec<i32> = self
            .cgroup
            .as_ref()
            .map(TaskCgroup::pids)
            .unwrap_or_default()
            .into_iter()
            .filter(|pid| *pid != own)
            .collect();
        for (pid, entry) in &table {
            if *pid == own || entry.zombie {
                continue;
            }
            // After the child is reaped its pid could name a new group; members of the task's
            // group started no earlier than the child.
            let in_group = entry.pgrp == self.pid && entry.start >= self.child_start;
            if (*pid == self.pid && self.code.is_none())
                || in_group
                || holds_pipe(*pid, &pipe_link)
                || environ_has(*pid, |entry| entry == self.mark_entry.as_slice())
            {
                roots.push(*pid);
            }
        }
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (pid, entry) in &table {
            children.entry(entry.ppid).or_default().push(*pid);
        }
        let mut found: HashSet<i32> = HashSet::new();
        let mut stack = roots;
        while let Some(pid) = stack.pop() {
            if pid == own || !found.insert(pid) {
                continue;
            }
            if let Some(kids) = children.get(&pid) {
                stack.extend(kids.iter().copied());
            }
        }
        found
            .into_iter()
            .filter_map(|pid| {
                let entry = table.get(&pid)?;
                (!entry.zombie).then_some(Member {
                    pid,
                    start: entry.start,
                })
            })
            .collect()
    }
}

impl Drop for TaskProcess {
    fn drop(&mut self) {
        if self.code.is_none() {
            // Dropped while running: do not leave the group behind.
            ignore_gone(killpg(Pid::from_raw(self.pid), Signal::SIGKILL));
            if let Some(cgroup) = &self.cgroup {
                cgroup.kill_all();
            }
        }
    }
}

/// One process of the task, identified by pid and start time (so a reused pid is not killed).
#[derive(Debug, Clone)]
struct Member {
    pid: i32,
    start: i64,
}

impl Member {
    fn still_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|entry| !entry.zombie && entry.start == self.start)
    }
}

struct StatEntry {
    ppid: i32,
    pgrp: i32,
    zombie: bool,
    start: i64,
}

fn proc_table() -> HashMap<i32, StatEntry> {
    let mut table = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            table.insert(pid, stat);
        }
    }
    table
}

/// Parses `/proc/<pid>/stat`: fields after the command name (which may contain spaces and parens).
fn read_stat(pid: i32) -> Option<StatEntry> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N of proc(5) is fields[N - 3].
    let state = fields.first()?;
    Some(StatEntry {
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        zombie: *state == "Z" || *state == "X" || *state == "x",
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether one `NAME=value` entry of the process's environment satisfies `pred` (false when the
/// environment cannot be read: another user's process, or one that is gone).
fn environ_has(pid: i32, pred: impl Fn(&[u8]) -> bool) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|b| *b == 0).any(pred))
}

/// A task mark: `<agent pid>.<agent start time>-<random>`, so that a process can be traced to the
/// agent run that started it, and that run told alive or gone.
fn new_mark() -> String {
    let own = std::process::id() as i32;
    let start = read_stat(own).map_or(0, |entry| entry.start);
    format!("{own}.{start}-{:016x}", rand::random::<u64>())
}

/// Whether the agent run named by a mark's value is gone (its pid dead, or reused by a process
/// that started at another time).
fn mark_owner_gone(value: &[u8]) -> bool {
    let text = String::from_utf8_lossy(value);
    let Some((pid, start)) = text
        .split_once('-')
        .and_then(|(owner, _)| owner.split_once('.'))
        .and_then(|(pid, start)| Some((pid.parse::<i32>().ok()?, start.parse::<i64>().ok()?)))
    else {
        return false;
    };
    read_stat(pid).is_none_or(|entry| entry.zombie || entry.start != start)
}

/// A new task mark for processes the agent starts itself outside a task's process (the host-side
/// clone of docker mode), so that [`kill_marked`] finds them.
pub fn new_task_mark() -> String {
    new_mark()
}

/// SIGKILLs every process carrying `CLEARML_AGENT_TASK_MARK=<mark>`; returns how many.
pub fn kill_marked(mark: &str) -> usize {
    let own = std::process::id() as i32;
    let entry = format!("{}={mark}", EnvVars::CLEARML_AGENT_TASK_MARK).into_bytes();
    let marked: Vec<i32> = proc_table()
        .into_iter()
        .filter(|(pid, e)| *pid != own && !e.zombie)
        .map(|(pid, _)| pid)
        .filter(|pid| environ_has(*pid, |e| e == entry.as_slice()))
        .collect();
    for pid in &marked {
        ignore_gone(kill(Pid::from_raw(*pid), Signal::SIGKILL));
    }
    marked.len()
}

/// SIGKILLs every process that an earlier, killed run of worker `worker_id` left behind: those
/// with that worker id in their environment and a task mark of an agent run that is gone (another
/// live agent's tasks are never touched, whatever its worker id). Returns how many were signalled.
pub fn kill_orphans_of(worker_id: &str) -> usize {
    let own = std::process::id() as i32;
    let worker_entry = format!("{}={worker_id}", EnvVars::CLEARML_WORKER_ID).into_bytes();
    let mark_prefix = format!("{}=", EnvVars::CLEARML_AGENT_TASK_MARK).into_bytes();
    let orphans: Vec<i32> = proc_table()
        .into_iter()
        .filter(|(pid, entry)| *pid != own && !entry.zombie)
        .map(|(pid, _)| pid)
        .filter(|pid| {
            environ_has(*pid, |entry| {
                entry
                    .strip_prefix(mark_prefix.as_slice())
                    .is_some_and(mark_owner_gone)
            }) && environ_has(*pid, |entry| entry == worker_entry.as_slice())
        })
        .collect();
    for pid in &orphans {
        ignore_gone(kill(Pid::from_raw(*pid), Signal::SIGKILL));
    }
    orphans.len()
}

fn holds_pipe(pid: i32, pipe_link: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == pipe_link))
}

fn ignore_gone(result: nix::Result<()>) {
    match result {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(errno) => tracing::warn!("cannot signal a task process: {errno}"),
    }
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod mark_tests {
    use super::*;

    #[test]
    fn a_mark_of_this_run_is_alive_and_one_of_a_gone_run_is_not() {
        let mark = new_mark();
        assert!(!mark_owner_gone(mark.as_bytes()), "{mark}");
        let own = std::process::id();
        assert!(
            mark_owner_gone(format!("{own}.1-00").as_bytes()),
            "another start time"
        );
        assert!(
            mark_owner_gone(format!("{}.1-00", i32::MAX).as_bytes()),
            "no such pid"
        );
        assert!(!mark_owner_gone(b"not a mark"), "unparsable: never killed");
    }
}
