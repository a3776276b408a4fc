//! The glue's ledger of tasks in flight (task id → Slurm job id), kept in a file so that a glue
//! restarted after a crash picks its jobs up again instead of submitting them twice. Every
//! change is written at once (a temp file renamed over the old one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One task this glue took from a queue and has not finished with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The job id once `sbatch` answered; `None` between the pull and the answer (a restarted
    /// glue then looks the job up by its name before submitting again).
    pub job_id: Option<String>,
    /// The name of the queue the task came from.
    pub queue: String,
    /// `scancel` was sent because the task was aborted.
    #[serde(default)]
    pub cancelled: bool,
    /// The last status message written for it (not rewritten while unchanged).
    #[serde(default)]
    pub message: String,
}

/// The ledger file and its entries.
pub struct Ledger {
    path: PathBuf,
    pub entries: BTreeMap<String, Entry>,
}

impl Ledger {
    /// Loads `path` (a missing file is an empty ledger).
    pub fn load(path: &Path) -> Result<Ledger> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "cannot read the Slurm job ledger {}; remove it if its jobs are gone",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Ledger {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Writes the ledger to its file.
    pub fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("tmp");
        let text =
            serde_json::to_string_pretty(&self.entries).context("cannot encode the ledger")?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("l.json");
        let mut l = Ledger::load(&path).expect("empty");
        l.entries.insert(
            "t".into(),
            Entry {
                job_id: Some("5".into()),
                queue: "q".into(),
                ..Entry::default()
            },
        );
        l.save().expect("save");
        let again = Ledger::load(&path).expect("load");
        assert_eq!(again.entries["t"].job_id.as_deref(), Some("5"));
    }
}
