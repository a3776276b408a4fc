//! Final statuses the server did not take before the agent stopped (it was away during a
//! shutdown): kept on disk, one private file per task in the agent's state folder, and set at the
//! next start of the same worker, before it looks for tasks a killed run abandoned.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const PREFIX: &str = ".clearml_agent_pending_status.";

/// One final status to set: `status` is `completed`, `stopped` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingStatus {
    pub task: String,
    pub worker: String,
    pub status: String,
    pub reason: String,
}

/// Writes `pending` into `dir` (created 0600 and exclusively: a file already there is an older
/// status of the same task, replaced).
pub fn save(dir: &Path, pending: &PendingStatus) -> std::io::Result<PathBuf> {
    if pending.task.is_empty()
        || !pending
            .task
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(std::io::Error::other("not a plain task id"));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{PREFIX}{}", pending.task));
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)?;
    file.write_all(&serde_json::to_vec(pending).map_err(std::io::Error::other)?)?;
    Ok(path)
}

/// The pending statuses of `worker` in `dir`, with their files (to remove once set). Files of
/// other users and unreadable ones are skipped.
pub fn load_for(dir: &Path, worker: &str) -> Vec<(PathBuf, PendingStatus)> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = nix::unistd::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| {
            e.path()
                .symlink_metadata()
                .is_ok_and(|m| m.is_file() && m.uid() == uid)
        })
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            let pending: PendingStatus = serde_json::from_slice(&text).ok()?;
            (pending.worker == worker).then(|| (e.path(), pending))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn saved_statuses_load_back_for_their_worker_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = |task: &str, worker: &str| PendingStatus {
            task: task.into(),
            worker: worker.into(),
            status: "completed".into(),
            reason: "worker execution done".into(),
        };
        let path = save(dir.path(), &p("abc123", "w1")).unwrap();
        save(dir.path(), &p("def456", "w2")).unwrap();
        save(dir.path(), &p("abc123", "w1")).unwrap();
        assert!(save(dir.path(), &p("../x", "w1")).is_err());
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let loaded = load_for(dir.path(), "w1");
        assert_eq!(loaded, vec![(path, p("abc123", "w1"))]);
    }
}
