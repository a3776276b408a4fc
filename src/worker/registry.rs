//! The local registry of running agents: one pid file per agent in the temp dir, the same files the
//! Python agent's singleton keeps, so slots are shared with Python agents on the same machine and
//! `--stop` can find an agent by worker id. It owns slot choice and worker-id uniqueness on this
//! machine; it does not talk to the server.
//!
//! mirrors clearml_agent/helper/singleton.py: Singleton.register_instance / get_running_pids
//!
//! The folder is shared with every local user, so an entry is believed only when its file is a
//! regular file of this user and its pid is a live clearml-agent that started before the file
//! was written ([`super::agent_proc`]); other users' files are skipped, stale own ones removed.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

const PREFIX: &str = ".clearmlagent";
const EXT: &str = ".tmp";
const LOCK_NAME: &str = "_.clearmlagent_global.lock";
/// mirrors Singleton._lock_timeout: a lock older than this is considered abandoned.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times an abandoned lock is cleared before giving up (another agent keeps taking it).
const LOCK_TAKEOVERS: u32 = 3;
/// A registry file is small ("<worker id>\n<slot>"): read no more than this.
const MAX_PID_FILE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "an agent with worker id \"{0}\" is already running on this machine; stop it first \
         (clearml-agent daemon ... --stop) or choose another worker id"
    )]
    AlreadyRunning(String),
    #[error(
        "cannot take the agent registry lock {path}: {reason}; remove it, or set TMPDIR to a \
         folder of your own"
    )]
    Lock { path: PathBuf, reason: String },
    #[error("cannot use the agent registry in {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One agent found in the registry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The pid in the file name; `None` when that process no longer exists.
    pub pid: Option<i32>,
    pub worker_id: Option<String>,
    pub slot: Option<u32>,
    pub file: PathBuf,
}

/// This agent's own registration; removing it (drop) deletes the pid file.
#[derive(Debug)]
pub struct Registration {
    pub worker_id: String,
    pub slot: u32,
    file: PathBuf,
}

impl Registration {
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Renames the pid file after a fork changed our pid (mirrors Singleton.update_pid_file).
    pub fn update_pid(&mut self) -> io::Result<()> {
        let name = pid_file_name(std::process::id(), &random_suffix());
        let new = self.file.with_file_name(name);
        fs::rename(&self.file, &new)?;
        self.file = new;
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// The registry folder (the system temp dir, or the container side of the docker host mount).
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every pid file in the registry, live or not, sorted by worker id.
    /// Whether the process that started this one holds `worker_id` in the registry (a daemon
    /// registers each service it starts under the service's id, before the service runs).
    pub fn held_by_parent(&self, worker_id: &str) -> bool {
        let parent = std::os::unix::process::parent_id() as i32;
        self.entries().is_ok_and(|entries| {
            entries
                .iter()
                .any(|e| e.pid == Some(parent) && e.worker_id.as_deref() == Some(worker_id))
        })
    }

    pub fn entries(&self) -> Result<Vec<Entry>, RegistryError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(source) => return Err(self.io(source)),
        };
        let uid = nix::unistd::geteuid().as_raw();
        let mut out = Vec::new();
        for item in rd.flatten() {
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('_')) else {
                continue;
            };
            if !name.ends_with(EXT) {
                continue;
            }
            let path = item.path();
            // Not a regular file of ours (another user's, a link, a fifo): not ours to read,
            // believe or remove.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.file_type().is_file() || meta.uid() != uid {
                tracing::debug!(
                    "registry: skipping {} (not a file of this user)",
                    path.display()
                );
                continue;
            }
            let changed = std::time::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(meta.ctime()).unwrap_or(0),
                    u32::try_from(meta.ctime_nsec()).unwrap_or(0),
                );
            let pid = rest
                .split('_')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .filter(|p| pid_alive(*p) && super::agent_proc::is_agent(*p, changed));
            let (worker_id, slot) = read_pid_file(&path);
            out.push(Entry {
                pid,
                worker_id,
                slot,
                file: path,
            });
        }
        out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(out)
    }

    /// Registers this process: removes files of dead agents, picks the smallest free slot and
    /// writes our pid file. With no `worker_id`, the id is `<worker_name>:<slot>`.
    pub fn register(
        &self,
        worker_id: Option<&str>,
        worker_name: &str,
        allow_double: bool,
    ) -> Result<Registration, RegistryError> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let _lock = GlobalLock::acquire(&self.dir.join(LOCK_NAME))?;
        let mut used = Vec::new();
        for entry in self.entries()? {
            if entry.pid.is_none() {
                let _ = fs::remove_file(&entry.file);
                continue;
            }
            let Some(slot) = entry.slot else { continue };
            if worker_id.is_some() && entry.worker_id.as_deref() == worker_id {
                if !allow_double {
                    return Err(RegistryError::AlreadyRunning(
                        worker_id.unwrap_or_default().to_string(),
                    ));
                }
                tracing::warn!(
                    "an agent with the same worker id {:?} runs on this machine; continuing",
                    worker_id
                );
            }
            used.push(slot);
        }
        let slot = (0u32..).find(|s| !used.contains(s)).unwrap_or(0);
        let worker_id = match worker_id {
            Some(id) => id.to_string(),
            None => format!("{worker_name}:{slot}"),
        };
        let file = self
            .dir
            .join(pid_file_name(std::process::id(), &random_suffix()));
        // mode 0600 as the Python agent's NamedTemporaryFile
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| self.io(e))?;
        f.write_all(format!("{worker_id}\n{slot}").as_bytes())
            .map_err(|e| self.io(e))?;
        Ok(Registration {
            worker_id,
            slot,
            file,
        })
    }

    fn io(&self, source: io::Error) -> RegistryError {
        RegistryError::Io {
            dir: self.dir.clone(),
            source,
        }
    }
}

fn pid_file_name(pid: u32, suffix: &str) -> String {
    format!("{PREFIX}_{pid}_{suffix}{EXT}")
}

fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn read_pid_file(path: &Path) -> (Option<String>, Option<u32>) {
    let mut text = String::new();
    if OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(MAX_PID_FILE).read_to_string(&mut text))
        .is_err()
    {
        return (None, None);
    }
    let mut lines = text.split('\n');
    let id = lines.next().map(str::to_string).filter(|s| !s.is_empty());
    let slot = lines.next().and_then(|s| s.trim().parse().ok());
    (id, slot)
}

/// True when a process with this pid exists (also when it belongs to another user).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

/// The machine-wide registration lock: an exclusively created file, as the Python agent's
/// `_.clearmlagent_global.lock`, forcibly taken over when older than the timeout (mirrors
/// Singleton.register_instance: wait up to `_lock_timeout`, then remove it). A lock that cannot be
/// removed (another user's, a folder in its place) is an error naming it, not an endless wait.
struct GlobalLock {
    path: PathBuf,
    /// (device, inode) of the file this agent created (holding its pid): only that file is
    /// removed on drop.
    identity: (u64, u64),
}

impl GlobalLock {
    fn acquire(path: &Path) -> Result<GlobalLock, RegistryError> {
        let failed = |reason: String| RegistryError::Lock {
            path: path.to_path_buf(),
            reason,
        };
        let mut start = Instant::now();
        let mut takeovers = 0;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = f.write_all(std::process::id().to_string().as_bytes());
                    let identity = f
                        .metadata()
                        .map(|m| (m.dev(), m.ino()))
                        .map_err(|e| failed(e.to_string()))?;
                    return Ok(GlobalLock {
                        path: path.to_path_buf(),
                        identity,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if start.elapsed() > LOCK_TIMEOUT {
                        if takeovers >= LOCK_TAKEOVERS {
                            return Err(failed(format!(
                                "other agents keep taking it ({takeovers} takeovers)"
                            )));
                        }
                        tracing::warn!(
                            "registry lock {} held for over {}s, clearing it",
                            path.display(),
                            LOCK_TIMEOUT.as_secs()
                        );
                        if let Err(e) = fs::remove_file(path) {
                            return Err(failed(format!(
                                "held for over {}s and cannot be cleared: {e}",
                                LOCK_TIMEOUT.as_secs()
                            )));
                        }
                        takeovers += 1;
                        start = Instant::now();
                        continue;
                    }
                    // Another agent is registering right now; this happens only at start-up and
                    // lasts milliseconds, so a short sleep is the simplest correct wait.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(failed(e.to_string())),
            }
        }
    }
}

impl Drop for GlobalLock {
    fn drop(&mut self) {
        // After a takeover by another agent the file at the path is theirs: leave it. An inode
        // number is reused at once, so the content (our pid) must match too.
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_file() && (m.dev(), m.ino()) == self.identity)
            && fs::read(&self.path).is_ok_and(|c| c == std::process::id().to_string().as_bytes());
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The worker id and name as the Python agent forms them from the configured id, the worker name
/// (hostname by default) and the visible GPUs (`NVIDIA_VISIBLE_DEVICES` after `--gpus`/`--cpu-only`).
/// Returns `(fixed worker id, worker name)`; with no fixed id the registry appends the slot.
///
/// mirrors clearml_agent/commands/worker.py: Worker._generate_worker_id_name
pub fn worker_identity(
    configured_id: Option<&str>,
    worker_name: &str,
    visible_gpus: Option<&str>,
    dynamic_gpus: bool,
) -> (Option<String>, String) {
    if let Some(id) = configured_id.filter(|s| !s.is_empty()) {
        return (Some(id.to_string()), worker_name.to_string());
    }
    match visible_gpus {
        Some(v) if !v.is_empty() && !v.eq_ignore_ascii_case("none") => (
            Some(format!(
                "{worker_name}:{}gpu{v}",
                if dynamic_gpus { "d" } else { "" }
            )),
            worker_name.to_string(),
        ),
        Some("") | None => (None, worker_name.to_string()),
        Some(_) => (None, format!("{worker_name}:cpu")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn drop_leaves_a_lock_another_agent_took_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_NAME);
        let lock = GlobalLock::acquire(&path).unwrap();
        // Another agent cleared it as abandoned and took it.
        fs::remove_file(&path).unwrap();
        fs::write(&path, "other").unwrap();
        drop(lock);
        assert_eq!(fs::read_to_string(&path).unwrap(), "other");
        // Our own lock is removed.
        fs::remove_file(&path).unwrap();
        drop(GlobalLock::acquire(&path).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_live_process_that_is_no_agent_is_a_stale_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let file = dir.path().join(pid_file_name(sleep.id(), "abcdefgh"));
        fs::write(&file, "host:0\n0").unwrap();
        let entries = Registry::new(dir.path()).entries().unwrap();
        let _ = sleep.kill();
        let _ = sleep.wait();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].pid, None);
        assert_eq!(entries[0].worker_id.as_deref(), Some("host:0"));
        // Our own pid (this binary) written now is a live agent entry.
        let own = dir
            .path()
            .join(pid_file_name(std::process::id(), "ownfile1"));
        fs::write(&own, "host:1\n1").unwrap();
        let entries = Registry::new(dir.path()).entries().unwrap();
        let me = entries.iter().find(|e| e.file == own).unwrap();
        assert_eq!(me.pid, Some(std::process::id() as i32));
    }
}
