//! Acting on agents from the command line and the signals a running one obeys: `--stop`,
//! `--status`, the duplicate check before `--detached`, and SIGINT/SIGTERM/SIGUSR1.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.daemon (`--stop`, `--status`), Worker._kill_daemon

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::registry::{Registry, RegistryError, worker_identity};
use super::stop;
use super::{DaemonConfig, queues};
use crate::api::Client;

/// `daemon --stop [WORKER_ID ...]`: exit 1 when any of them was not found (mirrors Worker.daemon).
pub fn stop_daemon(cfg: &DaemonConfig, ids: &[String], dynamic_gpus: bool) -> anyhow::Result<u8> {
    let registry = Registry::new(&cfg.registry_dir);
    if !ids.is_empty() {
        return stop_listed(&registry, ids);
    }
    // The agent started with the same arguments: its configured or GPU-derived id, else the
    // first `<worker_name>:<slot>` (mirrors Worker._kill_daemon).
    let (id, name) = worker_identity(
        cfg.worker_id.as_deref(),
        &cfg.worker_name,
        cfg.visible_gpus.as_deref(),
        dynamic_gpus,
    );
    let timeout = match &id {
        Some(id) if id.starts_with(&format!("{name}:dgpu")) => stop::STOP_TIMEOUT_DYNAMIC_GPUS,
        _ => stop::STOP_TIMEOUT,
    };
    Ok(u8::from(!stop::stop_one(
        &registry,
        id.as_deref(),
        &name,
        timeout,
    )?))
}

/// `slurm --stop [WORKER_ID ...]`, as `daemon --stop` (no GPUs in its identity).
pub fn stop_slurm(
    registry: &Registry,
    worker_id: Option<&str>,
    worker_name: &str,
    ids: &[String],
) -> anyhow::Result<u8> {
    if !ids.is_empty() {
        return stop_listed(registry, ids);
    }
    let (id, name) = worker_identity(worker_id, worker_name, None, false);
    Ok(u8::from(!stop::stop_one(
        registry,
        id.as_deref(),
        &name,
        stop::STOP_TIMEOUT,
    )?))
}

/// Stops each listed worker; 1 when any of them was not found.
fn stop_listed(registry: &Registry, ids: &[String]) -> anyhow::Result<u8> {
    let mut code = 0;
    for id in ids {
        if !stop::stop_one(registry, Some(id), id, stop::STOP_TIMEOUT)? {
            code = 1;
        }
    }
    Ok(code)
}

/// `daemon --status`: the schedule, the listened queues and the agents running on this machine.
/// Exits 1, as the Python agent does.
pub async fn daemon_status(client: &Client, cfg: &DaemonConfig) -> anyhow::Result<u8> {
    let registry = Registry::new(&cfg.registry_dir);
    client
        .login()
        .await
        .context("cannot log in to the ClearML server")?;
    let queues = queues::resolve(client, &cfg.queues, false).await?;
    let mut out = String::new();
    match &cfg.schedule {
        Some(schedule) => out.push_str(&schedule.describe()),
        None => out.push_str("No uptime/downtime configurations found\n"),
    }
    for q in &queues {
        out.push_str(&format!("  - Listening to queue '{}'\n", q.name));
    }
    let agents: Vec<_> = registry
        .entries()?
        .into_iter()
        .filter(|e| e.pid.is_some())
        .collect();
    if agents.is_empty() {
        out.push_str("No clearml-agent is running on this machine\n");
    } else {
        out.push_str("Agents running on this machine:\n");
        for a in agents {
            out.push_str(&format!(
                "  - worker_id={} pid={} slot={}\n",
                a.worker_id.as_deref().unwrap_or("?"),
                a.pid.unwrap_or_default(),
                a.slot.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
            ));
        }
    }
    print!("{out}");
    Ok(1)
}

/// Before `--detached`: a fixed worker id already held by a running agent is refused here, on
/// the terminal. (The Python agent registers before it forks, so a duplicate shows there; this
/// agent registers after the fork, for the final pid.)
pub fn refuse_duplicate(cfg: &DaemonConfig) -> Result<(), RegistryError> {
    let (fixed, _) = worker_identity(
        cfg.worker_id.as_deref(),
        &cfg.worker_name,
        cfg.visible_gpus.as_deref(),
        cfg.dynamic_gpus,
    );
    let Some(id) = fixed else {
        return Ok(());
    };
    let taken = Registry::new(&cfg.registry_dir)
        .entries()
        .unwrap_or_default()
        .iter()
        .any(|e| e.pid.is_some() && e.worker_id.as_deref() == Some(id.as_str()));
    if taken {
        return Err(RegistryError::AlreadyRunning(id));
    }
    Ok(())
}

/// The first login of an agent (daemon or Slurm glue): a few retries only
/// (`CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE`), and its failure is fatal; a signal during it
/// ends the agent at once (it has registered nothing yet). False when `shutdown` came first.
/// mirrors Session: the first connection's retry count.
pub async fn first_login(
    client: &Client,
    retries: u32,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let login = async {
        client.with_retries(retries).login().await?;
        client.login().await
    };
    tokio::select! {
        login = login => {
            login.with_context(|| {
                format!(
                    "Connection Error: it seems *api_server* is misconfigured. Is this the ClearML API server {} ?",
                    client.config().api_server
                )
            })?;
            Ok(true)
        }
        _ = shutdown.cancelled() => Ok(false),
    }
}

/// SIGINT or SIGTERM cancel the returned token (mirrors the Python agent's handlers: the
/// running task is stopped and the worker unregistered). A second one exits at once with 130,
/// as a second Ctrl-C does in most tools: what the orderly shutdown did not finish (a task's
/// processes, its container, its final status) the next start of the same worker cleans up.
pub fn shutdown_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        token.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("clearml_agent: second signal: exiting now without waiting for the shutdown");
        std::process::exit(130);
    });
    Ok(shutdown)
}

/// A child of `shutdown` that SIGUSR1 cancels too: once it is cancelled the agent takes no more
/// tasks (a drain: the running task finishes, the worker unregisters, exit 0; the Python agent
/// has none). It is cancelled by a shutdown as well, so "stop polling" is this one token.
/// See docs/deployment.md.
pub fn drain_signal(shutdown: &CancellationToken) -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let drain = shutdown.child_token();
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot listen for SIGUSR1")?;
    let token = drain.clone();
    tokio::spawn(async move {
        if usr1.recv().await.is_some() {
            println!("Drain requested (SIGUSR1): finishing the running task, then exiting");
            token.cancel();
        }
    });
    Ok(drain)
}
