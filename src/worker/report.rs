//! The worker's `workers.status_report` loop: machine stats every report period, and an
//! immediate report whenever the current task changes. It owns what the server sees of the
//! worker between `register` and `unregister`.
//!
//! mirrors clearml_agent/helper/resource_monitor.py: ResourceMonitor (period, immediate reports)

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Client;
use crate::exec::notice::FailureNotice;
use crate::worker::stats::Sampler;

/// What the worker is doing now; every change triggers an immediate report without stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    pub task: Option<String>,
    pub queue: Option<String>,
}

/// The running report loop; dropping `Reporter` does not stop it, `stop` does.
pub struct Reporter {
    current: watch::Sender<Current>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

pub struct ReportConfig {
    pub worker_id: String,
    pub queues: Vec<String>,
    pub tags: Vec<String>,
    pub period: Duration,
    pub disk_path: PathBuf,
    /// `NVIDIA_VISIBLE_DEVICES` of the worker: the GPUs reported (`None`: all NVML sees).
    pub gpus: Option<String>,
    /// `is_daemon` in the report: true for the daemon, false for `execute`.
    pub is_daemon: bool,
    /// `agent.resource_monitoring.default_gpu_utilization`: reported for a GPU that gives no
    /// utilization (`None`: nothing reported for it).
    pub default_gpu_utilization: Option<f64>,
}

impl Reporter {
    pub fn spawn(client: Client, cfg: ReportConfig) -> Reporter {
        let (current_tx, mut current_rx) = watch::channel(Current::default());
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let notice = FailureNotice::default();
            let mut sampler = Sampler::new(cfg.disk_path.clone())
                .with_gpus(crate::gpu::probe(cfg.gpus.as_deref()));
            // mirrors ResourceMonitor: the first report with stats comes shortly after start.
            let mut next = tokio::time::Instant::now() + Duration::from_secs(3).min(cfg.period);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {
                        next = tokio::time::Instant::now() + cfg.period;
                        let cur = current_rx.borrow().clone();
                        let stats = sampler.sample();
                        send(&client, &cfg, &cur, Some(stats), &notice).await;
                    }
                    changed = current_rx.changed() => {
                        if changed.is_err() { break; }
                        let cur = current_rx.borrow_and_update().clone();
                        send(&client, &cfg, &cur, None, &notice).await;
                    }
                    _ = stop_rx.changed() => break,
                }
            }
        });
        Reporter {
            current: current_tx,
            stop: stop_tx,
            handle,
        }
    }

    /// Sets the current task (and queue); reported at once.
    pub fn set_current(&self, current: Current) {
        self.current.send_replace(current);
    }

    /// Ends the reports at once, a report in flight (or waiting to retry) included: they are
    /// best effort, and an agent that stops must not wait for a server that is away.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.abort();
        let _ = self.handle.await;
    }
}

async fn send(
    client: &Client,
    cfg: &ReportConfig,
    cur: &Current,
    stats: Option<crate::worker::stats::MachineStats>,
    notice: &FailureNotice,
) {
    let report = crate::api::StatusReport {
        worker: cfg.worker_id.clone(),
        // mirrors ResourceMonitor: epoch milliseconds of whole seconds.
        timestamp: (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            * 1000) as i64,
        task: cur.task.clone(),
        queue: cur.queue.clone(),
        queues: Some(cfg.queues.clone()),
        tags: if cfg.tags.is_empty() {
            None
        } else {
            Some(cfg.tags.clone())
        },
        machine_stats: stats.map(|s| to_wire(s, cfg.default_gpu_utilization)),
        is_daemon: cfg.is_daemon,
    };
    match client.workers().status_report(&report).await {
        Ok(_) if notice.recovered() => tracing::info!("status reports work again"),
        Ok(_) => {}
        Err(e) if notice.first_failure() => {
            tracing::warn!("status report failed (said once until reports work again): {e}")
        }
        Err(e) => tracing::debug!("status report failed: {e}"),
    }
}

/// mirrors ResourceMonitor._machine_stats: a GPU without a utilization figure reports
/// `default_gpu_utilization` (when it is not null).
fn to_wire(
    s: crate::worker::stats::MachineStats,
    default_gpu_utilization: Option<f64>,
) -> crate::api::MachineStats {
    let list = |f: &dyn Fn(&crate::worker::stats::GpuStats) -> Option<f64>| -> Option<Vec<f64>> {
        if s.gpus.is_empty() {
            None
        } else {
            Some(s.gpus.iter().filter_map(f).collect())
        }
    };
    crate::api::MachineStats {
        cpu_usage: s.cpu_usage.map(|v| vec![v]),
        memory_used: s.memory_used,
        memory_free: s.memory_free,
        disk_free_home: s.disk_free_home,
        disk_read: s.disk_read,
        disk_write: s.disk_write,
        network_rx: s.network_rx,
        network_tx: s.network_tx,
        gpu_usage: list(&|g| g.usage.or(default_gpu_utilization)),
        gpu_temperature: list(&|g| g.temperature),
        gpu_memory_used: list(&|g| Some(g.memory_used)),
        gpu_memory_free: list(&|g| Some(g.memory_free)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::stats::{GpuStats, MachineStats};

    #[test]
    fn a_gpu_without_utilization_reports_the_configured_default() {
        let stats = || MachineStats {
            gpus: vec![
                GpuStats {
                    usage: Some(42.0),
                    ..GpuStats::default()
                },
                GpuStats {
                    usage: None,
                    ..GpuStats::default()
                },
            ],
            ..MachineStats::default()
        };
        assert_eq!(
            to_wire(stats(), Some(100.0)).gpu_usage,
            Some(vec![42.0, 100.0])
        );
        // `default_gpu_utilization: null`: nothing is made up for it.
        assert_eq!(to_wire(stats(), None).gpu_usage, Some(vec![42.0]));
    }
}
