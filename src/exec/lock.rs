//! File locks with a bounded wait: the venv cache's and the vcs cache's (shared with the Python
//! agent, which locks the same files).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Takes a lock (shared or exclusive) on `path`, waiting at most `timeout`; `None` on timeout.
/// The wait happens on a helper thread that is woken by the lock itself (no polling).
pub(crate) fn with_timeout(
    path: &Path,
    timeout: Duration,
    shared: bool,
) -> io::Result<Option<fs::File>> {
    let named = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| named("opening lock", e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let res = if shared {
            file.lock_shared()
        } else {
            file.lock()
        }
        .map(|()| file);
        // if nobody waits any more the file (and its lock) is dropped here
        let _ = tx.send(res);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(f)) => Ok(Some(f)),
        Ok(Err(e)) => Err(named("locking", e)),
        Err(_) => Ok(None),
    }
}
