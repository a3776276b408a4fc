//! PyTorch requirements as the Python agent resolves them: the machine's CUDA (or ROCm)
//! version, the PyTorch wheel index that matches it, and `torch==X+cuYZ` pins rewritten so that
//! index (or a preinstalled torch) satisfies them.
//!
//! mirrors clearml_agent/helper/package/pytorch.py: PytorchRequirement (`pytorch_resolve: pip`,
//! the default: `replace`, `get_torch_index_url`, `get_rocm_torch_index_url`,
//! `_detect_rocm_version`, `post_scan_add_req`) and helper/package/requirements.py:
//! RequirementsManager.get_cuda_version.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The packages whose lines are resolved (`PytorchRequirement.packages`).
pub const PACKAGES: &[&str] = &[
    "torch",
    "torchvision",
    "torchaudio",
    "torchcsprng",
    "torchtext",
];

/// `agent.package_manager.pytorch_resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolve {
    /// Add the matching PyTorch index and loosen `==` pins to it (the default).
    #[default]
    Pip,
    /// The Python agent looks up direct wheel links on the `torch_stable.html` pages, falling
    /// back to `pip`; this agent always resolves as `pip` (said at start).
    Direct,
    /// The lines are installed as written.
    None,
}

impl Resolve {
    /// The mode a configured value names; an unknown one is `pip` (as the Python agent, which
    /// warns "reverting to 'pip'").
    pub fn parse(value: &str) -> Resolve {
        match value.trim().to_lowercase().as_str() {
            "direct" => Resolve::Direct,
            "none" => Resolve::None,
            _ => Resolve::Pip,
        }
    }
}

/// The settings the resolution reads, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchOptions {
    pub resolve: Resolve,
    /// `agent.package_manager.torch_nightly`: the nightly index templates.
    pub nightly: bool,
    /// `agent.cpu_only` / `CLEARML_CPU_ONLY`: no requirement is rewritten.
    pub cpu_only: bool,
    /// `--cpu-only` of this worker: the CUDA version is 0 (mirrors Session: `('0', '0')`).
    pub worker_cpu_only: bool,
    /// `agent.cuda_version` / `CLEARML_CUDA_VERSION` / `CUDA_VERSION` as configured.
    pub cuda_version: Option<String>,
    /// `ROCM_PATH` (where the ROCm version files are; default `/opt/rocm`).
    pub rocm_path: Option<PathBuf>,
    /// `agent.package_manager.extra_index_url_template` (`{}` is the CUDA version, `118`).
    pub index_template: String,
    /// `agent.package_manager.nightly_extra_index_url_template`.
    pub nightly_index_template: String,
    /// `agent.package_manager.rocm_extra_index_url_template` (`{}.{}` is the ROCm version).
    pub rocm_index_template: String,
    /// `agent.package_manager.nightly_rocm_extra_index_url_template`.
    pub nightly_rocm_index_template: String,
}

impl Default for TorchOptions {
    fn default() -> Self {
        TorchOptions {
            resolve: Resolve::Pip,
            nightly: false,
            cpu_only: false,
            worker_cpu_only: false,
            cuda_version: None,
            rocm_path: None,
            index_template: "https://download.pytorch.org/whl/cu{}/".into(),
            nightly_index_template: "https://download.pytorch.org/whl/nightly/cu{}/".into(),
            rocm_index_template: "https://download.pytorch.org/whl/rocm{}.{}/".into(),
            nightly_rocm_index_template: "https://download.pytorch.org/whl/nightly/rocm{}.{}/"
                .into(),
        }
    }
}

/// What the resolution decided for one task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorchPlan {
    /// The index to add (`--extra-index-url`), when one was found.
    pub index: Option<String>,
    /// The task's requirement lines with the PyTorch ones rewritten (and `setuptools < 59` at
    /// the end for a torch older than 1.11).
    pub lines: Vec<String>,
    /// What to say in the task's log.
    pub messages: Vec<String>,
}

/// The GPU platform the wheels are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// NVIDIA (or none): the CUDA version times ten (`118`); 0 without CUDA.
    Cuda(u32),
    /// An AMD host (mirrors detect_rocm_env): the ROCm version found, if any.
    Rocm(Option<(u32, u32)>),
}

/// Whether `lines` (a task's own lines, or a repository requirements file's) name a PyTorch
/// package the resolution acts on.
pub fn wanted(opts: &TorchOptions, lines: &[String]) -> bool {
    opts.resolve != Resolve::None && !opts.cpu_only && lines.iter().any(|l| is_torch_line(l))
}

fn is_torch_line(line: &str) -> bool {
    parse_line(line).is_some_and(|r| PACKAGES.contains(&r.name.to_lowercase().as_str()))
}

/// The platform of this machine: ROCm on an AMD host without NVIDIA, else the configured CUDA
/// version, else NVML's driver version, `nvcc --version`, `nvidia-smi`, else 0.
pub fn host_platform(opts: &TorchOptions) -> Platform {
    let amd = Path::new("/dev/kfd").exists();
    let nvidia = Path::new("/dev/nvidia0").exists() || Path::new("/proc/driver/nvidia").exists();
    if amd && !nvidia {
        let root = opts
            .rocm_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/opt/rocm"));
        return Platform::Rocm(rocm_version(&root, Path::new("/opt")));
    }
    Platform::Cuda(cuda_version(opts, &|| {
        crate::gpu::driver_cuda_version()
            .map(|v| driver_to_cuda(v as i64))
            .or_else(|| command_output("nvcc", &["--version"]).and_then(|o| nvcc_cuda(&o)))
            .or_else(|| command_output("nvidia-smi", &[]).and_then(|o| smi_cuda(&o)))
    }))
}

/// The CUDA version: configured, else 0 for a `--cpu-only` worker, else `detect()`, else 0.
pub fn cuda_version(opts: &TorchOptions, detect: &dyn Fn() -> Option<u32>) -> u32 {
    if let Some(v) = opts
        .cuda_version
        .as_deref()
        .filter(|v| !v.trim().is_empty())
    {
        return normalize_cuda(v).unwrap_or(0);
    }
    if opts.worker_cpu_only {
        return 0;
    }
    detect().unwrap_or(0)
}

/// `11.8` / `11.8.0` / `118` → 118. mirrors session.py: normalize_cuda_version.
pub fn normalize_cuda(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.contains('.') {
        let mut parts = value.split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts
            .next()
            .and_then(|m| m.chars().next())
            .and_then(|c| c.to_digit(10))
            .unwrap_or(0);
        return Some(major * 10 + minor);
    }
    value.parse().ok()
}

/// NVML's `12020` → 122, `11080` → 118, `12000` → 120. mirrors gpustat.py: get_driver_cuda_version.
pub fn driver_to_cuda(driver: i64) -> u32 {
    let text = driver.to_string();
    let b = text.as_bytes();
    let short = if b.len() >= 4 && b[2] == b'0' && b[3] != b'0' {
        format!("{}{}", &text[..2], &text[3..4])
    } else {
        text.chars().take(3).collect()
    };
    short.parse().unwrap_or(0)
}

/// `Cuda compilation tools, release 11.8, V11.8.89` → 118. (The Python agent reads three
/// characters, `11.`, and so takes CUDA 11.8 for 11.0; the whole version is read here.)
fn nvcc_cuda(output: &str) -> Option<u32> {
    let rest = &output[output.find("release ")? + "release ".len()..];
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    normalize_cuda(&version)
}

/// `CUDA Version: 12.2` → 122.
fn smi_cuda(output: &str) -> Option<u32> {
    let rest = &output[output.find("CUDA Version: ")? + "CUDA Version: ".len()..];
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    normalize_cuda(&version)
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The ROCm version from `<root>/.info/version*`, else the newest `<opt>/rocm-X.Y` folder.
/// mirrors PytorchRequirement._detect_rocm_version.
pub fn rocm_version(root: &Path, opt: &Path) -> Option<(u32, u32)> {
    let major_minor = |text: &str| -> Option<(u32, u32)> {
        let mut parts = text.trim().splitn(3, |c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    };
    for name in ["version", "version-dev", "version-utils"] {
        if let Ok(text) = std::fs::read_to_string(root.join(".info").join(name))
            && let Some(v) = major_minor(&text)
        {
            return Some(v);
        }
    }
    std::fs::read_dir(opt)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| {
            let rest = n.strip_prefix("rocm")?;
            major_minor(rest.strip_prefix('-').unwrap_or(rest))
        })
        .max()
}

/// `template` with each `{}` (or `{0}`, `{1}`) replaced by the next (or that) of `values`.
fn format_template(template: &str, values: &[u32]) -> String {
    let mut out = template.to_string();
    for (i, v) in values.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), &v.to_string());
    }
    for v in values {
        if let Some(at) = out.find("{}") {
            out.replace_range(at..at + 2, &v.to_string());
        }
    }
    out
}

/// The PyTorch index for `platform`: the first of the CUDA versions from the machine's down to
/// 14 below it (or, on ROCm, of the ROCm versions from the machine's, default 6.4, down to 4.0)
/// whose index page `exists`. mirrors PytorchRequirement.get_torch_index_url and
/// get_rocm_torch_index_url (on ROCm without a ROCm index it goes on with CUDA 0).
pub async fn find_index<P, F>(opts: &TorchOptions, platform: Platform, exists: P) -> Option<String>
where
    P: Fn(String) -> F,
    F: Future<Output = bool>,
{
    let cuda = match platform {
        Platform::Rocm(version) => {
            let template = if opts.nightly {
                &opts.nightly_rocm_index_template
            } else {
                &opts.rocm_index_template
            };
            let (mut major, mut minor) = version.unwrap_or((6, 4));
            for _ in 0..30 {
                if major < 4 {
                    break;
                }
                let url = format_template(template, &[major, minor]);
                if exists(url.clone()).await {
                    return Some(url);
                }
                if minor > 0 {
                    minor -= 1;
                } else {
                    major -= 1;
                    minor = 9;
                }
            }
            0
        }
        Platform::Cuda(c) => c,
    };
    let template = if opts.nightly {
        &opts.nightly_index_template
    } else {
        &opts.index_template
    };
    let lowest = cuda.saturating_sub(14);
    for c in (lowest..=cuda).rev() {
        let url = format_template(template, &[c]);
        if exists(url.clone()).await {
            return Some(url);
        }
    }
    None
}

/// Whether an index page answers (a GET with a 2xx status within 10 s, as the Python agent's
/// `requests.get(url, timeout=10).ok`).
pub async fn page_exists(http: &reqwest::Client, url: String) -> bool {
    http.get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The resolution for a task whose own requirement lines are `task_lines` (when it has none,
/// `repo_lines` are its repository's requirements files, installed as written): `None` when no
/// line names a PyTorch package (or the resolution is off); else the index `exists` finds for
/// `platform` and the rewritten lines.
pub async fn plan<P, F>(
    opts: &TorchOptions,
    platform: Platform,
    task_lines: &[String],
    repo_lines: &[String],
    exists: P,
) -> Option<TorchPlan>
where
    P: Fn(String) -> F,
    F: Future<Output = bool>,
{
    let from_task = wanted(opts, task_lines);
    let from_repo = task_lines.is_empty() && wanted(opts, repo_lines);
    if !from_task && !from_repo {
        return None;
    }
    let index = find_index(opts, platform, exists).await;
    if from_task {
        return Some(rewrite(task_lines, index.as_deref(), platform));
    }
    Some(TorchPlan {
        messages: vec![match &index {
            Some(url) => format!("PyTorch: Adding index `{url}` for the repository's requirements"),
            None => "PyTorch: no wheel index found for this machine; the repository's requirements are installed as written".into(),
        }],
        index,
        lines: Vec::new(),
    })
}

/// [`plan`] for this machine ([`host_platform`]), probing over HTTP; for the blocking setup
/// stage (it runs the probes on the runtime it is called beside, or on one of its own).
pub fn plan_for_host_blocking(
    opts: &TorchOptions,
    task_lines: &[String],
    repo_lines: &[String],
) -> Option<TorchPlan> {
    if !wanted(opts, task_lines) && !wanted(opts, repo_lines) {
        return None;
    }
    let http = crate::api::plain_http();
    let work = async {
        plan(opts, host_platform(opts), task_lines, repo_lines, |url| {
            page_exists(&http, url)
        })
        .await
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(work),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(work),
    }
}

/// The task's `lines` with each PyTorch `==` pin loosened to the index: the local label goes
/// (`+cu118`), and a three-part version becomes a prefix (`torch ==2.1.0.*`), so the index's
/// build or a preinstalled torch (`2.1.0a0+936e930` in NVIDIA's images) matches. Without an
/// index the pins are loosened the same way and installed from the configured indexes (the
/// Python agent then looks for a direct wheel link on the `torch_stable.html` pages).
/// mirrors PytorchRequirement.replace and post_scan_add_req.
pub fn rewrite(lines: &[String], index: Option<&str>, platform: Platform) -> TorchPlan {
    let mut plan = TorchPlan {
        index: index.map(str::to_string),
        ..TorchPlan::default()
    };
    let mut old_torch = false;
    for line in lines {
        let Some(req) = parse_line(line).filter(|r| PACKAGES.contains(&r.name.as_str())) else {
            plan.lines.push(line.clone());
            continue;
        };
        if req.name == "torch" && index.is_some() && older_than_1_11(&req.specs) {
            old_torch = true;
        }
        let new = match req.specs.as_slice() {
            [(op, version)] if op == "==" => {
                let parts = release_parts(version);
                let spec = parts.iter().take(3).cloned().collect::<Vec<_>>().join(".");
                let mut text = if parts.len() >= 3 && !spec.ends_with('*') {
                    format!("{}{} =={spec}.*", req.name, req.extras)
                } else {
                    format!("{}{} =={spec}", req.name, req.extras)
                };
                if let Some(marker) = &req.marker {
                    text.push_str(&format!(" ; {marker}"));
                }
                text
            }
            _ => line.clone(),
        };
        plan.messages.push(match index {
            Some(url) => format!("PyTorch: Adding index `{url}` and installing `{new}`"),
            None => format!(
                "PyTorch: no wheel index found for {}; installing `{new}` from the configured indexes",
                match platform {
                    Platform::Cuda(0) => "a machine without CUDA".to_string(),
                    Platform::Cuda(c) => format!("CUDA {c} (nor the 14 versions below it)"),
                    Platform::Rocm(_) => "ROCm".to_string(),
                }
            ),
        });
        plan.lines.push(new);
    }
    if old_torch {
        plan.lines.push("setuptools < 59".into());
    }
    plan
}

/// One parsed requirement line: `name[extras] specs ; marker`.
#[derive(Debug, PartialEq)]
struct Line {
    name: String,
    extras: String,
    specs: Vec<(String, String)>,
    marker: Option<String>,
}

/// `torch[x]==2.1.0+cu118 ; python_version>"3" # c` → its parts; `None` for options, URLs,
/// paths and direct references (`torch @ https://...`), which stay as written.
fn parse_line(line: &str) -> Option<Line> {
    let line = match line.find(" #") {
        Some(at) => &line[..at],
        None => line,
    }
    .trim();
    if line.is_empty() || line.starts_with(['-', '#', '.', '/']) || line.contains('@') {
        return None;
    }
    let (req, marker) = match line.split_once(';') {
        Some((r, m)) => (
            r.trim(),
            Some(m.trim().to_string()).filter(|m| !m.is_empty()),
        ),
        None => (line, None),
    };
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let name = req[..end].to_lowercase();
    if name.is_empty() {
        return None;
    }
    let mut rest = req[end..].trim_start();
    let mut extras = String::new();
    if rest.starts_with('[') {
        let close = rest.find(']')?;
        extras = rest[..=close].to_string();
        rest = rest[close + 1..].trim_start();
    }
    let mut specs = Vec::new();
    for spec in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let op_len = spec
            .find(|c: char| !matches!(c, '=' | '<' | '>' | '!' | '~'))
            .unwrap_or(spec.len());
        if op_len == 0 {
            return None;
        }
        specs.push((
            spec[..op_len].to_string(),
            spec[op_len..].trim().to_string(),
        ));
    }
    Some(Line {
        name,
        extras,
        specs,
        marker,
    })
}

/// The dotted parts of a version without its local label, pre/post/dev markers as separators:
/// `2.1.0+cu118` → [2, 1, 0], `1.13.1.post2` → [1, 13, 1, 2]. mirrors
/// MarkerRequirement.format_specs (which keeps a local label after a two-part version,
/// `2.1+cu118` → `2.1.cu118`, a line pip refuses; the label is dropped here).
fn release_parts(version: &str) -> Vec<String> {
    let mut v = version.split('+').next().unwrap_or(version).to_string();
    for marker in [".post", ".dev", "rc", "a", "b"] {
        v = v.replace(marker, ".");
    }
    v.trim_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `specs` leave no torch at or above 1.11 (then `setuptools < 59` is added).
fn older_than_1_11(specs: &[(String, String)]) -> bool {
    let number = |v: &str| -> (u32, u32) {
        let parts = release_parts(v);
        let at = |i: usize| -> u32 { parts.get(i).and_then(|p| p.parse().ok()).unwrap_or(0) };
        (at(0), at(1))
    };
    specs.iter().any(|(op, v)| match op.as_str() {
        "==" | "===" | "~=" => number(v) < (1, 11),
        "<" => number(v) <= (1, 11),
        "<=" => number(v) < (1, 11),
        _ => false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pins_are_loosened_like_the_python_agent() {
        let plan = rewrite(
            &lines(&[
                "torch==2.1.0+cu118",
                "torchvision == 0.16.0+cu118 ; python_version > \"3\"",
                "torch>=2.0",
                "torchaudio==2.1",
                "torch==1.13.1.post2",
                "numpy==1.26.0",
                "torch @ https://example.com/torch.whl",
            ]),
            Some("http://idx/cu118/"),
            Platform::Cuda(118),
        );
        assert_eq!(
            plan.lines,
            lines(&[
                "torch ==2.1.0.*",
                "torchvision ==0.16.0.* ; python_version > \"3\"",
                "torch>=2.0",
                "torchaudio ==2.1",
                "torch ==1.13.1.*",
                "numpy==1.26.0",
                "torch @ https://example.com/torch.whl",
            ])
        );
        assert_eq!(
            plan.messages[0],
            "PyTorch: Adding index `http://idx/cu118/` and installing `torch ==2.1.0.*`"
        );
        assert_eq!(plan.messages.len(), 5);
    }

    #[test]
    fn an_old_torch_gets_an_old_setuptools_only_with_an_index() {
        let old = lines(&["torch==1.10.2+cu113"]);
        let with = rewrite(&old, Some("u"), Platform::Cuda(113));
        assert_eq!(with.lines, lines(&["torch ==1.10.2.*", "setuptools < 59"]));
        let without = rewrite(&old, None, Platform::Cuda(0));
        assert_eq!(without.lines, lines(&["torch ==1.10.2.*"]));
        assert!(without.messages[0].contains("without CUDA"));
        assert!(!older_than_1_11(&[(">=".into(), "1.8".into())]));
        assert!(older_than_1_11(&[("<".into(), "1.11".into())]));
    }

    #[test]
    fn only_torch_lines_are_wanted_and_not_when_cpu_only_or_none() {
        let opts = TorchOptions::default();
        assert!(wanted(&opts, &lines(&["TorchVision==0.1"])));
        assert!(!wanted(
            &opts,
            &lines(&["torchmetrics==1.0", "-r torch.txt"])
        ));
        let cpu = TorchOptions {
            cpu_only: true,
            ..TorchOptions::default()
        };
        assert!(!wanted(&cpu, &lines(&["torch"])));
        let none = TorchOptions {
            resolve: Resolve::parse("None"),
            ..TorchOptions::default()
        };
        assert!(!wanted(&none, &lines(&["torch"])));
        assert_eq!(Resolve::parse("bogus"), Resolve::Pip);
    }

    #[test]
    fn cuda_versions_read_like_the_python_agent() {
        assert_eq!(normalize_cuda("11.8"), Some(118));
        assert_eq!(normalize_cuda("12.6.3"), Some(126));
        assert_eq!(normalize_cuda("121"), Some(121));
        assert_eq!(driver_to_cuda(12020), 122);
        assert_eq!(driver_to_cuda(11080), 118);
        assert_eq!(driver_to_cuda(12000), 120);
        assert_eq!(
            nvcc_cuda("Cuda compilation tools, release 11.8, V11.8.89"),
            Some(118)
        );
        assert_eq!(
            smi_cuda("| NVIDIA-SMI 535.1  Driver Version: 535.1  CUDA Version: 12.2  |"),
            Some(122)
        );
        let configured = TorchOptions {
            cuda_version: Some("11.7".into()),
            worker_cpu_only: true,
            ..TorchOptions::default()
        };
        assert_eq!(cuda_version(&configured, &|| Some(122)), 117);
        let cpu = TorchOptions {
            worker_cpu_only: true,
            ..TorchOptions::default()
        };
        assert_eq!(cuda_version(&cpu, &|| Some(122)), 0);
        assert_eq!(cuda_version(&TorchOptions::default(), &|| Some(122)), 122);
        assert_eq!(cuda_version(&TorchOptions::default(), &|| None), 0);
    }

    #[test]
    fn rocm_version_from_the_info_file_else_the_newest_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rocm");
        std::fs::create_dir_all(root.join(".info")).unwrap();
        std::fs::create_dir_all(dir.path().join("rocm-5.7.1")).unwrap();
        std::fs::create_dir_all(dir.path().join("rocm-6.1")).unwrap();
        assert_eq!(rocm_version(&root, dir.path()), Some((6, 1)));
        std::fs::write(root.join(".info/version"), "6.2.4-120\n").unwrap();
        assert_eq!(rocm_version(&root, dir.path()), Some((6, 2)));
    }

    fn probe_of(found: &'static [&'static str]) -> impl Fn(String) -> std::future::Ready<bool> {
        move |url: String| std::future::ready(found.contains(&url.as_str()))
    }

    #[tokio::test]
    async fn the_index_is_the_newest_cuda_at_or_below_the_machines() {
        let opts = TorchOptions {
            index_template: "http://i/cu{}/".into(),
            ..TorchOptions::default()
        };
        let found = probe_of(&["http://i/cu118/", "http://i/cu121/"]);
        assert_eq!(
            find_index(&opts, Platform::Cuda(122), &found).await,
            Some("http://i/cu121/".into())
        );
        assert_eq!(
            find_index(&opts, Platform::Cuda(120), &found).await,
            Some("http://i/cu118/".into())
        );
        // 14 below at most: 132 reaches down to 118.
        assert_eq!(
            find_index(&opts, Platform::Cuda(133), &found).await,
            Some("http://i/cu121/".into())
        );
        assert_eq!(find_index(&opts, Platform::Cuda(117), &found).await, None);
        assert_eq!(find_index(&opts, Platform::Cuda(0), &found).await, None);
        let nightly = TorchOptions {
            nightly: true,
            nightly_index_template: "http://i/n/cu{0}/".into(),
            ..opts.clone()
        };
        let found = probe_of(&["http://i/n/cu118/"]);
        assert_eq!(
            find_index(&nightly, Platform::Cuda(118), &found).await,
            Some("http://i/n/cu118/".into())
        );
    }

    #[tokio::test]
    async fn rocm_walks_down_its_versions_then_falls_back_to_cuda_zero() {
        let opts = TorchOptions {
            rocm_index_template: "http://i/rocm{}.{}/".into(),
            index_template: "http://i/cu{}/".into(),
            ..TorchOptions::default()
        };
        let found = probe_of(&["http://i/rocm5.7/", "http://i/cu0/"]);
        assert_eq!(
            find_index(&opts, Platform::Rocm(Some((6, 0))), &found).await,
            Some("http://i/rocm5.7/".into())
        );
        assert_eq!(
            find_index(&opts, Platform::Rocm(Some((5, 6))), &found).await,
            Some("http://i/cu0/".into())
        );
    }
}
