//! What the agent last left in a venv: the venv cache entry it came from or went into, its
//! freeze, and a fingerprint of its installed packages, so that an unchanged venv is neither
//! copied from the cache again nor frozen again.
//!
//! Beyond the Python agent, which copies the cache entry over the venv and runs `pip freeze` on
//! every task (clearml_agent/helper/os/folder_cache.py: FolderCache.copy_cached_entry,
//! commands/worker.py: Worker._freeze_requirements). The fingerprint changes whenever a package
//! is installed, removed, upgraded or reinstalled (new `*.dist-info` names or folder times) or a
//! script is added to `bin/`; a file edited inside an installed package is not noticed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};

/// File in the venv's root holding the state.
const STATE_FILE: &str = ".clearml-agent-venv-state";

/// The state recorded after the venv was last set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VenvState {
    /// [`fingerprint`] of the venv when the state was written.
    pub fingerprint: String,
    /// The venv cache entry the venv equals, if any.
    pub entry: Option<PathBuf>,
    /// The venv's freeze, if it was taken.
    pub freeze: Option<String>,
}

impl VenvState {
    /// The state recorded in `venv`, when there is one and the venv is unchanged since.
    pub(super) fn current(venv: &Path) -> Option<VenvState> {
        let text = fs::read_to_string(venv.join(STATE_FILE)).ok()?;
        let mut parts = text.splitn(3, '\n');
        let fingerprint = parts.next()?.to_string();
        let entry = parts.next()?;
        let freeze = parts.next().filter(|f| !f.is_empty()).map(str::to_string);
        if fingerprint.is_empty() || fingerprint_of(venv)? != fingerprint {
            return None;
        }
        Some(VenvState {
            fingerprint,
            entry: (!entry.is_empty()).then(|| PathBuf::from(entry)),
            freeze,
        })
    }

    /// Records the venv as it is now; best effort (a missing state only costs the next task a
    /// copy or a freeze).
    pub(super) fn record(venv: &Path, entry: Option<&Path>, freeze: Option<&str>) {
        let Some(fingerprint) = fingerprint_of(venv) else {
            forget(venv);
            return;
        };
        let entry = entry.map(|e| e.to_string_lossy().into_owned());
        if entry.as_deref().is_some_and(|e| e.contains('\n')) {
            forget(venv);
            return;
        }
        let text = format!(
            "{fingerprint}\n{}\n{}",
            entry.unwrap_or_default(),
            freeze.unwrap_or("")
        );
        let _ = fs::write(venv.join(STATE_FILE), text);
    }
}

/// Drops the recorded state (the venv is about to change).
pub(crate) fn forget(venv: &Path) {
    let _ = fs::remove_file(venv.join(STATE_FILE));
}

/// md5 over the names in `bin/` and every `lib/*/site-packages` (without `__pycache__`, which
/// imports create), with the modification time of each package metadata entry.
fn fingerprint_of(venv: &Path) -> Option<String> {
    let mut lines = Vec::new();
    names(&venv.join("bin"), "bin", &mut lines)?;
    let mut found = false;
    for lib in fs::read_dir(venv.join("lib")).ok()?.flatten() {
        let site = lib.path().join("site-packages");
        if site.is_dir() {
            found = true;
            names(&site, &lib.file_name().to_string_lossy(), &mut lines)?;
        }
    }
    if !found {
        return None;
    }
    lines.sort();
    let mut hash = Md5::new();
    for l in &lines {
        hash.update(l.as_bytes());
        hash.update(b"\n");
    }
    Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn names(dir: &Path, tag: &str, out: &mut Vec<String>) -> Option<()> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "__pycache__" {
            continue;
        }
        let is_metadata = [".dist-info", ".egg-info", ".egg-link", ".pth"]
            .iter()
            .any(|s| name.ends_with(s));
        let time = if is_metadata {
            e.metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        } else {
            0
        };
        out.push(format!("{tag}/{name} {time}"));
    }
    Some(())
}
