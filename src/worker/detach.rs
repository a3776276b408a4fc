//! `daemon --detached`: leave the terminal and keep running in the background, with stdout and
//! stderr in the log file the Python agent uses. It owns the fork only; it must run while the
//! process has one thread, before the tokio runtime exists. Registering in the local registry
//! happens after it, so the pid file carries the daemon's final pid.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.daemon (`safe_mkstemp(prefix=".clearml_agent_daemon_out")`,
//! `daemonize_process`) and clearml_agent/helper/os/daemonize.py

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Creates the log file in `dir`, prints where it is, double-forks (fork, setsid, fork) and
/// returns in the daemon process with stdout/stderr on that file and stdin on `/dev/null`. The
/// calling process and the intermediate child exit 0. The working directory and umask are kept.
pub fn detach(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = tempfile::Builder::new()
        .prefix(".clearml_agent_daemon_out")
        .suffix(".txt")
        .append(true)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create the daemon log file in {}", dir.display()))?;
    let (file, path): (File, PathBuf) = file.keep().context("cannot keep the daemon log file")?;
    let err = file
        .try_clone()
        .context("cannot duplicate the daemon log file handle")?;
    println!(
        "Running CLEARML-AGENT daemon in background mode, writing stdout/stderr to {}",
        path.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // daemonize sets a umask of its own; keep the caller's instead (reading it means setting it).
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(mask);
    daemonize::Daemonize::new()
        .working_directory(&cwd)
        .umask(mask.bits())
        .stdout(file)
        .stderr(err)
        .start()
        .map_err(|e| anyhow::anyhow!("cannot detach from the terminal: {e}"))?;
    Ok(path)
}
