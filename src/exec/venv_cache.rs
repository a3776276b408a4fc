//! The venv cache (`agent.venvs_cache`): entries keyed as the Python agent keys them (so both
//! agents share `~/.clearml/venvs-cache`), looked up and stored under its lock, the oldest
//! removed beyond `max_entries`, nothing stored below `free_space_threshold_gb`.
//! mirrors clearml_agent/helper/os/folder_cache.py: FolderCache.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::git::{WORKING_REPOSITORY_DIR, WORKING_STANDALONE_DIR};
use super::lock;
use super::tree::copy_tree_except;
use super::venv::{EnvError, VenvCacheOptions, io_err};
use super::venv_state::{self, VenvState};

/// Lock file inside the venv cache; mirrors clearml_agent/helper/os/folder_cache.py (`_lock_filename`).
const CACHE_LOCK_FILE: &str = ".clearml.lock";
/// Prefix of half-written cache entries; mirrors folder_cache.py (`_temp_entry_prefix`).
const CACHE_TEMP_PREFIX: &str = "_temp.";

/// Finds the entry whose name holds one of `keys` and copies it into `venv` (keeping the venv's
/// `task_repository` and `code`). Mirrors clearml_agent/helper/os/folder_cache.py:
/// FolderCache.copy_cached_entry / get_entry. The Python agent always rebuilds the venv in the
/// same `<venvs_dir>/<X.Y>` folder, so the absolute paths in the entry's scripts stay valid.
pub(super) fn cache_lookup(
    cache: &VenvCacheOptions,
    keys: &[String],
    venv: &Path,
    log: &dyn Fn(&str),
) -> Result<Option<PathBuf>, EnvError> {
    if !cache.path.is_dir() {
        return Ok(None);
    }
    log(&format!(
        "INFO: acquiring lock [timeout={}s] for cache folder: {}",
        cache.lock_timeout.as_secs(),
        cache.path.display()
    ));
    let lock = lock::with_timeout(&cache.path.join(CACHE_LOCK_FILE), cache.lock_timeout, true);
    let Ok(Some(_lock)) = lock else {
        log(&format!(
            "WARNING: Could not lock cache folder {}",
            cache.path.display()
        ));
        return Ok(None);
    };
    let Some(entry) = find_entry(&cache.path, keys) else {
        return Ok(None);
    };
    touch(&entry);
    if VenvState::current(venv).is_some_and(|s| s.entry.as_deref() == Some(entry.as_path())) {
        log(&format!(
            "the virtual environment {} is cache entry {} unchanged, not copied again",
            venv.display(),
            entry.display()
        ));
        return Ok(Some(entry));
    }
    venv_state::forget(venv);
    if let Err(e) = replace_venv_from(&entry, venv) {
        log(&format!(
            "WARNING: Could not copy cache folder {} to {}: {e}",
            entry.display(),
            venv.display()
        ));
        return Ok(None);
    }
    Ok(Some(entry))
}

/// Whether `entry` is a live cache entry whose name carries every one of `keys`.
pub(super) fn entry_holds_keys(entry: &Path, keys: &[String]) -> bool {
    entry.is_dir()
        && entry.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            let names: Vec<&str> = n.split('.').collect();
            keys.iter().all(|k| names.contains(&k.as_str()))
        })
}

fn find_entry(cache: &Path, keys: &[String]) -> Option<PathBuf> {
    let rd = fs::read_dir(cache).ok()?;
    rd.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.is_dir()
            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.starts_with(CACHE_TEMP_PREFIX)
                    && n.split('.').any(|k| keys.iter().any(|x| x == k))
            })
    })
}

fn touch(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Empties `venv` (except the code folders) and copies `entry` into it.
fn replace_venv_from(entry: &Path, venv: &Path) -> io::Result<()> {
    if venv.is_dir() {
        for e in fs::read_dir(venv)? {
            let e = e?;
            let name = e.file_name();
            if name == WORKING_REPOSITORY_DIR || name == WORKING_STANDALONE_DIR {
                continue;
            }
            if e.file_type()?.is_dir() {
                fs::remove_dir_all(e.path())?;
            } else {
                fs::remove_file(e.path())?;
            }
        }
    }
    copy_tree_except(entry, venv, &[])
}

/// Stores `venv` (without the code folders) under `keys`; an existing entry for one of the keys
/// gets the union of the keys instead. Keeps at most `max_entries` (LRU by mtime) and clears the
/// cache when free space is below the threshold. Mirrors folder_cache.py: FolderCache.add_entry.
pub(super) fn cache_store(
    cache: &VenvCacheOptions,
    keys: &[String],
    venv: &Path,
    log: &dyn Fn(&str),
) -> Result<Option<PathBuf>, EnvError> {
    log(&format!("Adding venv into cache: {}", venv.display()));
    fs::create_dir_all(&cache.path)
        .map_err(io_err(format!("creating {}", cache.path.display())))?;
    let Ok(Some(_lock)) =
        lock::with_timeout(&cache.path.join(CACHE_LOCK_FILE), cache.lock_timeout, false)
    else {
        log(&format!(
            "WARNING: Could not lock cache folder {}",
            cache.path.display()
        ));
        return Ok(None);
    };
    if let Some(existing) = find_entry(&cache.path, keys) {
        let name = existing
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let mut all: Vec<String> = name
            .split('.')
            .map(str::to_string)
            .chain(keys.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        let target = cache.path.join(all.join("."));
        if target != existing
            && let Err(e) = fs::rename(&existing, &target)
        {
            log(&format!(
                "WARNING: Could not rename cache entry {}: {e}",
                existing.display()
            ));
            return Ok(Some(existing));
        }
        return Ok(Some(target));
    }
    remove_old_entries(&cache.path, cache.max_entries.saturating_sub(1));
    if !enough_free_space(&cache.path, cache.free_space_threshold_gb) {
        log(&format!(
            "WARNING: Could not add cache entry, not enough free space on drive, free space threshold {} GB. Clearing all cache entries!",
            cache.free_space_threshold_gb
        ));
        remove_old_entries(&cache.path, 0);
        return Ok(None);
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let temp = cache.path.join(format!(
        "{CACHE_TEMP_PREFIX}{nanos}_{:016x}",
        rand::random::<u64>()
    ));
    let target = cache.path.join(keys.join("."));
    let stored = copy_tree_except(
        venv,
        &temp,
        &[WORKING_REPOSITORY_DIR, WORKING_STANDALONE_DIR],
    )
    .and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = stored {
        log(&format!(
            "WARNING: Failed adding venv into cache {}: {e}",
            cache.path.display()
        ));
        let _ = fs::remove_dir_all(&temp);
        return Ok(None);
    }
    Ok(Some(target))
}

/// Keeps the `keep` most recently used entries.
fn remove_old_entries(cache: &Path, keep: usize) {
    let Ok(rd) = fs::read_dir(cache) else { return };
    let mut entries: Vec<(PathBuf, SystemTime)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with(CACHE_TEMP_PREFIX)
        })
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (e.path(), t)
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (p, _) in entries.into_iter().skip(keep) {
        let _ = fs::remove_dir_all(p);
    }
}

fn enough_free_space(path: &Path, threshold_gb: f64) -> bool {
    if threshold_gb <= 0.0 {
        return true;
    }
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            (s.blocks_available() as f64 * s.fragment_size() as f64) / (1u64 << 30) as f64
                > threshold_gb
        }
        Err(_) => true,
    }
}
