//! Machine statistics for `workers.status_report`: CPU, memory, disk and network, averaged over
//! the report period. It owns sampling only; the report loop and the wire shape live elsewhere.
//!
//! The Python agent samples every 0.5 s and averages the samples (mirrors
//! clearml_agent/helper/resource_monitor.py: ResourceMonitor._machine_stats). The kernel counters
//! that sysinfo reads are cumulative, so one refresh per report gives the exact average over the
//! whole period at a fraction of the cost: the idle daemon wakes once per report, not twice a second.
//! GPU figures are instantaneous NVML readings taken at the report (see `crate::gpu`).

use std::path::PathBuf;
use std::time::Instant;

use sysinfo::{Disks, Networks, System};

use crate::gpu::{GpuProbe, NoGpu};

const MIB: f64 = 1024.0 * 1024.0;

/// One report's figures, in the Python agent's units. `None` where the machine gives no value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineStats {
    /// Mean CPU usage over all cores in percent (sent as a one-element list).
    pub cpu_usage: Option<f64>,
    /// MiB.
    pub memory_used: Option<f64>,
    /// MiB ("available" memory).
    pub memory_free: Option<f64>,
    /// Percent free of the disk holding `disk_path`.
    pub disk_free_home: Option<f64>,
    /// MiB/s over the period.
    pub disk_read: Option<f64>,
    pub disk_write: Option<f64>,
    pub network_rx: Option<f64>,
    pub network_tx: Option<f64>,
    /// Per visible GPU, in NVML's order.
    pub gpus: Vec<GpuStats>,
}

pub use crate::gpu::GpuStats;

/// Keeps the sysinfo handles alive between reports so deltas cover the whole period.
pub struct Sampler {
    system: Option<System>,
    disks: Option<Disks>,
    networks: Option<Networks>,
    disk_path: PathBuf,
    gpus: Box<dyn GpuProbe>,
    last: Instant,
}

impl Sampler {
    /// `disk_path` is `resource_monitoring.disk_use_path` or the home folder.
    pub fn new(disk_path: PathBuf) -> Sampler {
        let mut system = System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_cpu_usage();
        }
        Sampler {
            system,
            disks: Disks::new_with_refreshed_list().ok(),
            networks: Networks::new_with_refreshed_list().ok(),
            disk_path,
            gpus: Box::new(NoGpu),
            last: Instant::now(),
        }
    }

    /// Also report the GPUs this probe reads (sampled once per report).
    pub fn with_gpus(mut self, gpus: Box<dyn GpuProbe>) -> Sampler {
        self.gpus = gpus;
        self
    }

    /// The figures since the previous call (or since `new`).
    pub fn sample(&mut self) -> MachineStats {
        let secs = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
        let mut out = MachineStats::default();
        if let Some(sys) = self.system.as_mut() {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            let cpus = sys.cpus();
            if !cpus.is_empty() {
                let sum: f64 = cpus.iter().map(|c| f64::from(c.usage())).sum();
                out.cpu_usage = Some(round3(sum / cpus.len() as f64));
            }
            let total = sys.total_memory();
            if total > 0 {
                out.memory_used = Some(round3(sys.used_memory() as f64 / MIB));
                out.memory_free = Some(round3(sys.available_memory() as f64 / MIB));
            }
        }
        if let Some(disks) = self.disks.as_mut() {
            disks.refresh(false);
            let (mut read, mut written) = (0u64, 0u64);
            let mut best: Option<(usize, f64)> = None;
            for disk in disks.iter() {
                let usage = disk.usage();
                read += usage.read_bytes;
                written += usage.written_bytes;
                // The disk holding the path is the one with the longest matching mount point.
                let mount = disk.mount_point();
                if self.disk_path.starts_with(mount) && disk.total_space() > 0 {
                    let len = mount.as_os_str().len();
                    let free = disk.available_space() as f64 * 100.0 / disk.total_space() as f64;
                    if best.is_none_or(|(l, _)| len > l) {
                        best = Some((len, free));
                    }
                }
            }
            out.disk_free_home = best.map(|(_, f)| round3(f));
            out.disk_read = Some(round3(read as f64 / MIB / secs));
            out.disk_write = Some(round3(written as f64 / MIB / secs));
        }
        if let Some(nets) = self.networks.as_mut() {
            nets.refresh(true);
            let (mut rx, mut tx) = (0u64, 0u64);
            for data in nets.values() {
                rx += data.received();
                tx += data.transmitted();
            }
            out.network_rx = Some(round3(rx as f64 / MIB / secs));
            out.network_tx = Some(round3(tx as f64 / MIB / secs));
        }
        out.gpus = self.gpus.sample();
        out
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
