//! AMD ROCm GPUs in containers: on a host with `/dev/kfd` and no NVIDIA driver, a task's GPUs
//! are passed as devices (`/dev/kfd` and the render nodes) with the `video` group, instead of
//! an NVIDIA device request.
//!
//! mirrors clearml_agent/helper/gpu/util.py: detect_rocm_env and commands/worker.py:
//! Worker._amd_gpu_docker_args (GPU N is `/dev/dri/renderD{128+N}`; `HIP_VISIBLE_DEVICES` and
//! `ROCR_VISIBLE_DEVICES` name the host indices; all render nodes without a GPU choice).

use std::path::Path;

use bollard::models::DeviceMapping;

/// The render nodes of a ROCm host (`renderD128`, ...), `None` when it is not one: `/dev/kfd`
/// exists and neither `/dev/nvidia0` nor `/proc/driver/nvidia` does.
pub fn detect() -> Option<Vec<String>> {
    let amd = Path::new("/dev/kfd").exists();
    let nvidia = Path::new("/dev/nvidia0").exists() || Path::new("/proc/driver/nvidia").exists();
    if !amd || nvidia {
        return None;
    }
    let mut nodes: Vec<String> = std::fs::read_dir("/dev/dri")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("renderD"))
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    Some(nodes)
}

/// The container's part of a ROCm GPU assignment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RocmSetup {
    pub devices: Vec<DeviceMapping>,
    pub env: Vec<String>,
    pub groups: Vec<String>,
}

/// The devices, variables and groups for `visible` (a list of GPU indices, `all` or none for
/// every render node in `render_nodes`); `None` for `none` (CPU-only).
pub fn setup(visible: Option<&str>, render_nodes: &[String]) -> Option<RocmSetup> {
    let device = |path: String| DeviceMapping {
        path_on_host: Some(path.clone()),
        path_in_container: Some(path),
        cgroup_permissions: Some("rwm".into()),
    };
    let mut out = RocmSetup {
        devices: vec![device("/dev/kfd".into())],
        env: Vec::new(),
        groups: vec!["video".into()],
    };
    match visible.map(str::trim) {
        Some("none") | Some("") => return None,
        None | Some("all") => {
            out.devices
                .extend(render_nodes.iter().map(|n| device(format!("/dev/dri/{n}"))));
        }
        Some(list) => {
            let indices: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for idx in &indices {
                if let Ok(n) = idx.parse::<u32>() {
                    out.devices
                        .push(device(format!("/dev/dri/renderD{}", 128 + n)));
                }
            }
            let joined = indices.join(",");
            out.env = vec![
                format!("HIP_VISIBLE_DEVICES={joined}"),
                format!("ROCR_VISIBLE_DEVICES={joined}"),
            ];
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn paths(s: &RocmSetup) -> Vec<&str> {
        s.devices
            .iter()
            .map(|d| d.path_on_host.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn chosen_gpus_become_their_render_nodes() {
        let s = setup(Some("0,2"), &[]).unwrap();
        assert_eq!(
            paths(&s),
            ["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/renderD130"]
        );
        assert_eq!(
            s.env,
            ["HIP_VISIBLE_DEVICES=0,2", "ROCR_VISIBLE_DEVICES=0,2"]
        );
        assert_eq!(s.groups, ["video"]);
    }

    #[test]
    fn no_choice_passes_every_render_node_and_none_passes_nothing() {
        let nodes = vec!["renderD128".to_string(), "renderD129".to_string()];
        let s = setup(None, &nodes).unwrap();
        assert_eq!(
            paths(&s),
            ["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/renderD129"]
        );
        assert!(s.env.is_empty());
        assert_eq!(setup(Some("all"), &nodes).unwrap(), s);
        assert!(setup(Some("none"), &nodes).is_none());
    }
}
