//! The machine's NVIDIA GPUs as NVML sees them: which exist, and each visible one's utilization,
//! memory and temperature for the status reports. NVML is loaded at run time
//! (`libnvidia-ml.so.1`); without it, or when it fails, the machine simply has no GPU. It owns
//! NVML only; choosing GPUs for tasks is the settings' job (`config::gpus`).
//!
//! mirrors clearml_agent/helper/resource_monitor.py: ResourceMonitor._machine_stats (the `gpu_*`
//! figures, visible GPUs matched by index or uuid) and helper/gpu/gpustat.py (units: %, MiB, °C)

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;

const MIB: f64 = 1024.0 * 1024.0;

/// One GPU's figures at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuStats {
    /// Percent; NVML gives none on some MIG slices (then `default_gpu_utilization` is reported).
    pub usage: Option<f64>,
    /// °C.
    pub temperature: Option<f64>,
    /// MiB.
    pub memory_used: f64,
    /// MiB.
    pub memory_free: f64,
}

/// Reads the GPUs' figures; one call per status report.
pub trait GpuProbe: Send {
    fn sample(&mut self) -> Vec<GpuStats>;
}

/// A machine without NVML (or with GPU reporting off): never any GPU.
pub struct NoGpu;

impl GpuProbe for NoGpu {
    fn sample(&mut self) -> Vec<GpuStats> {
        Vec::new()
    }
}

/// Which GPUs are reported, from `NVIDIA_VISIBLE_DEVICES` after `--gpus`/`--cpu-only`.
#[derive(Debug, Clone, PartialEq)]
pub enum Visible {
    /// Unset, empty or `all`.
    All,
    /// `none` (`--cpu-only`): no GPU reporting at all.
    Nothing,
    /// Indices (`0`, `1`), MIG or GPU uuids.
    Only(Vec<String>),
}

impl Visible {
    pub fn parse(value: Option<&str>) -> Visible {
        match value.map(str::trim) {
            None | Some("") | Some("all") => Visible::All,
            Some(v) if v.eq_ignore_ascii_case("none") => Visible::Nothing,
            Some(v) => Visible::Only(v.split(',').map(|s| s.trim().to_string()).collect()),
        }
    }

    fn shows(&self, index: u32, uuid: Option<&str>) -> bool {
        match self {
            Visible::All => true,
            Visible::Nothing => false,
            Visible::Only(list) => list
                .iter()
                .any(|g| *g == index.to_string() || uuid.is_some_and(|u| u == g)),
        }
    }
}

/// NVML, loaded.
pub struct NvmlProbe {
    nvml: Nvml,
    visible: Visible,
}

impl GpuProbe for NvmlProbe {
    fn sample(&mut self) -> Vec<GpuStats> {
        let count = self.nvml.device_count().unwrap_or(0);
        let mut out = Vec::new();
        for index in 0..count {
            let Ok(dev) = self.nvml.device_by_index(index) else {
                continue;
            };
            let uuid = dev.uuid().ok();
            if !self.visible.shows(index, uuid.as_deref()) {
                continue;
            }
            // Every per-device failure (NotSupported and the like) is a missing figure.
            let Ok(mem) = dev.memory_info() else { continue };
            out.push(GpuStats {
                usage: dev.utilization_rates().ok().map(|u| f64::from(u.gpu)),
                temperature: dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
                memory_used: mem.used as f64 / MIB,
                memory_free: mem.free as f64 / MIB,
            });
        }
        out
    }
}

/// The probe for the GPUs `visible` names: NVML when it loads, else [`NoGpu`]. Never fails.
pub fn probe(visible: Option<&str>) -> Box<dyn GpuProbe> {
    let visible = Visible::parse(visible);
    if visible == Visible::Nothing {
        return Box::new(NoGpu);
    }
    match Nvml::init() {
        Ok(nvml) => Box::new(NvmlProbe { nvml, visible }),
        Err(e) => {
            tracing::debug!("GPU monitoring is not available (NVML: {e})");
            Box::new(NoGpu)
        }
    }
}

/// The CUDA version the driver supports, as NVML gives it (`12020` for 12.2); `None` without
/// NVML. mirrors clearml_agent/helper/gpu/gpustat.py: get_driver_cuda_version.
pub fn driver_cuda_version() -> Option<i32> {
    Nvml::init().ok()?.sys_cuda_driver_version().ok()
}

/// The GPUs NVML reports on this machine: `(index, uuid)`; `None` without NVML.
pub fn devices() -> Option<Vec<(u32, String)>> {
    let nvml = Nvml::init().ok()?;
    let count = nvml.device_count().ok()?;
    Some(
        (0..count)
            .map(|i| {
                let uuid = nvml
                    .device_by_index(i)
                    .and_then(|d| d.uuid())
                    .unwrap_or_default();
                (i, uuid)
            })
            .collect(),
    )
}

/// Checks that every GPU `--gpus` named exists among `devices`: an index below the count, a GPU
/// uuid, or a MIG id (`<gpu>:<slice>` or `MIG-...`, checked by their GPU part only). The Python
/// agent does not check; this agent does when NVML is present, as a named GPU that does not
/// exist would only fail inside the task.
pub fn check_requested(requested: &str, devices: &[(u32, String)]) -> Result<(), String> {
    let Visible::Only(list) = Visible::parse(Some(requested)) else {
        return Ok(());
    };
    for g in &list {
        let base = g.split(':').next().unwrap_or(g);
        let known = match base.parse::<u32>() {
            Ok(i) => devices.iter().any(|(idx, _)| *idx == i),
            Err(_) => base.starts_with("MIG-") || devices.iter().any(|(_, uuid)| uuid == base),
        };
        if !known {
            let have: Vec<String> = devices.iter().map(|(i, _)| i.to_string()).collect();
            return Err(format!(
                "--gpus names GPU {g}, which this machine does not have (NVML sees {}: {}); pick among those or use --cpu-only",
                devices.len(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn visibility_by_index_uuid_or_none() {
        assert_eq!(Visible::parse(None), Visible::All);
        assert_eq!(Visible::parse(Some("all")), Visible::All);
        assert_eq!(Visible::parse(Some("none")), Visible::Nothing);
        let v = Visible::parse(Some("1,GPU-abc"));
        assert!(v.shows(1, Some("GPU-x")));
        assert!(v.shows(0, Some("GPU-abc")));
        assert!(!v.shows(0, Some("GPU-x")));
        assert!(!v.shows(2, None));
    }

    #[test]
    fn requested_gpus_must_exist() {
        let devs = vec![(0, "GPU-aaa".to_string()), (1, "GPU-bbb".to_string())];
        assert!(check_requested("0,1", &devs).is_ok());
        assert!(check_requested("GPU-bbb", &devs).is_ok());
        assert!(check_requested("1:0", &devs).is_ok());
        assert!(check_requested("all", &devs).is_ok());
        let e = check_requested("0,2", &devs).unwrap_err();
        assert!(e.contains("GPU 2") && e.contains("0, 1"), "{e}");
        assert!(check_requested("GPU-zzz", &devs).is_err());
    }

    #[test]
    fn without_nvml_there_is_no_gpu_and_no_crash() {
        // This holds on machines without libnvidia-ml (the project's CI); with it, the probe
        // must still return one entry per visible GPU at most.
        let mut p = probe(None);
        let n = devices().map(|d| d.len()).unwrap_or(0);
        assert!(p.sample().len() <= n);
        assert!(probe(Some("none")).sample().is_empty());
    }
}
