//! `--gpus` / `--cpu-only`: the GPU selection of a worker, parsed once (mirrors `clearml_agent/session.py:
//! Session.__init__` and `commands/worker.py: Worker._dynamic_gpu_get_available`).
//!
//! This module only parses and exports the visibility values; probing real GPUs is the monitor's job.

/// Which GPUs a worker may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GpuSpec {
    /// Neither `--gpus` nor `--cpu-only`: leave `NVIDIA_VISIBLE_DEVICES`/`CUDA_VISIBLE_DEVICES` as inherited.
    #[default]
    Unset,
    /// `--cpu-only`: hide every GPU (`NVIDIA_VISIBLE_DEVICES=none`).
    CpuOnly,
    /// `--gpus all`.
    All,
    /// `--gpus 0`, `--gpus 0,1`, MIG slices `0:1`, or GPU UUIDs. Entries keep the user's spelling.
    /// Without `--dynamic-gpus` a range like `0-3` is kept as the single literal entry `"0-3"`,
    /// exactly as the Python agent exports it.
    List(Vec<String>),
    /// `--gpus 0-3` together with `--dynamic-gpus`: the inclusive index range to allocate from.
    Range { first: u32, last: u32 },
}

impl GpuSpec {
    /// Parse a `--gpus` value. `dynamic` is `--dynamic-gpus` (only then is `a-b` a range).
    pub fn parse(value: &str, dynamic: bool) -> Result<GpuSpec, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("it is empty".into());
        }
        if value == "all" {
            return Ok(GpuSpec::All);
        }
        if dynamic && let Some((a, b)) = value.split_once('-') {
            let (first, last) = match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                (Ok(first), Ok(last)) => (first, last),
                _ => return Err("a range must look like 0-3".into()),
            };
            if first > last {
                return Err(format!("range start {first} is after its end {last}"));
            }
            return Ok(GpuSpec::Range { first, last });
        }
        let mut list = Vec::new();
        for entry in value.split(',') {
            let entry = entry.trim();
            if !valid_entry(entry) {
                return Err(format!(
                    "`{entry}` is not a GPU index (0), MIG slice (0:1), GPU UUID (GPU-...) or range (0-3)"
                ));
            }
            list.push(entry.to_string());
        }
        Ok(GpuSpec::List(list))
    }

    /// Value for `NVIDIA_VISIBLE_DEVICES` and `CUDA_VISIBLE_DEVICES`, or `None` to leave them alone.
    /// For [`GpuSpec::All`] only `NVIDIA_VISIBLE_DEVICES` gets `all` and `CUDA_VISIBLE_DEVICES` must be
    /// removed (CUDA does not understand `all`); see [`GpuSpec::removes_cuda_visible_devices`].
    pub fn visible_devices(&self) -> Option<String> {
        match self {
            GpuSpec::Unset => None,
            GpuSpec::CpuOnly => Some("none".into()),
            GpuSpec::All => Some("all".into()),
            GpuSpec::List(list) => Some(list.join(",")),
            GpuSpec::Range { first, last } => Some(
                (*first..=*last)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// True for `--gpus all`: `CUDA_VISIBLE_DEVICES` is removed from the environment.
    pub fn removes_cuda_visible_devices(&self) -> bool {
        matches!(self, GpuSpec::All)
    }
}

fn valid_entry(entry: &str) -> bool {
    if entry.is_empty() {
        return false;
    }
    if entry.starts_with("GPU-") || entry.starts_with("MIG-") {
        return entry.len() > 4;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(entry) {
        return true;
    }
    // MIG slice `0:1` (or the internal spelling `0.1`), or a literal range `0-3`.
    for sep in [':', '.', '-'] {
        if let Some((a, b)) = entry.split_once(sep) {
            return digits(a) && digits(b);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(GpuSpec::parse("all", false), Ok(GpuSpec::All));
        assert_eq!(
            GpuSpec::parse("0", false),
            Ok(GpuSpec::List(vec!["0".into()]))
        );
        assert_eq!(
            GpuSpec::parse("0,1", false),
            Ok(GpuSpec::List(vec!["0".into(), "1".into()]))
        );
        assert_eq!(
            GpuSpec::parse("0:1", false),
            Ok(GpuSpec::List(vec!["0:1".into()]))
        );
        assert_eq!(
            GpuSpec::parse("0-3", false),
            Ok(GpuSpec::List(vec!["0-3".into()]))
        );
        assert_eq!(
            GpuSpec::parse("0-3", true),
            Ok(GpuSpec::Range { first: 0, last: 3 })
        );
        assert!(GpuSpec::parse("x", false).is_err());
        assert!(GpuSpec::parse("3-1", true).is_err());
    }
}
