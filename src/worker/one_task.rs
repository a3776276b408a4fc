//! A monitored `execute` (`--full-monitoring`, or a daemon's service): one task claimed, run as
//! the daemon runs each of its tasks (a supervised process or container), reported as a worker
//! while it runs, unregistered at the end. The venv and the docker path share this.
//!
//! mirrors clearml_agent/commands/worker.py: Worker.execute (--full-monitoring, --docker)

use std::future::Future;

use anyhow::Context;

use super::UNREGISTER_RETRIES;
use super::report::{Current, ReportConfig, Reporter};
use crate::api::Client;
use crate::exec::ending::Ending;
use crate::exec::task::{self, ExecuteConfig};

/// Logs in, claims the task `cfg` names (a clone of `--id`, or `--id` taken out of its queue),
/// then runs it with `run` (given the claimed id) while reporting as `cfg.worker_id` when
/// `report` is given; the last report and the unregistration follow whatever `run` returns. The
/// claim comes before any child runs, so a refused task is left as it was (mirrors
/// Worker.execute: the clone or the dequeue comes first).
pub async fn run_one<F, Fut>(
    client: &Client,
    cfg: &ExecuteConfig,
    report: Option<ReportConfig>,
    run: F,
) -> anyhow::Result<Ending>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<Ending>>,
{
    client
        .login()
        .await
        .context("cannot log in to the ClearML server")?;
    let task_id = claim(client, cfg).await?;
    // mirrors Worker.execute: report_monitor(task=...) while it runs, _unregister at the end.
    let reporter = report.map(|report_cfg| {
        let reporter = Reporter::spawn(client.clone(), report_cfg);
        reporter.set_current(Current {
            task: Some(task_id.clone()),
            queue: None,
        });
        reporter
    });
    let ending = run(task_id).await;
    if let Some(reporter) = reporter {
        reporter.stop().await;
        if let Err(e) = client
            .with_retries(UNREGISTER_RETRIES)
            .workers()
            .unregister(&cfg.worker_id, &[])
            .await
        {
            tracing::warn!("cannot unregister worker {}: {e}", cfg.worker_id);
        }
    }
    ending
}

/// The id of the task `execute` runs: a clone of `--id`, or `--id` taken out of its queue.
async fn claim(client: &Client, cfg: &ExecuteConfig) -> anyhow::Result<String> {
    let task_id = task::resolve_task_id(client, &cfg.task_id).await?;
    let found = client
        .tasks()
        .get_by_id(&task_id)
        .await
        .with_context(|| format!("Could not find task id={task_id}"))?;
    Ok(task::claim(client, cfg, found).await?.id)
}
