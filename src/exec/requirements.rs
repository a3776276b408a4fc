//! A task's Python requirements: the `script.requirements` sections as text, the repository's
//! `requirements.txt` files, the pip pin they carry, the venv-cache keys derived from them, and
//! the decisions both modes share: which set is installed ([`choose`]), in which steps
//! ([`install_steps`]) and with which pip flags ([`pip_flags`]). Running the steps is
//! `venv.rs`'s job on the host and the container script's (`docker/script.rs`) in docker mode.

use std::path::{Path, PathBuf};

use super::git_url::md5_hex;
use crate::api::ScriptRequirements;

/// The `script.requirements` of a task, each section normalised to newline-separated text
/// (the server may hold a string or a list of lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// `pip`: `None` when the section is missing; `Some("")` when present but empty (which makes
    /// the repository's requirements.txt files count, as in the Python agent).
    pub pip: Option<String>,
    /// `org_pip`: the original (pre-freeze) requirements.
    pub org_pip: Option<String>,
    /// `conda`: kept for the cache key only (conda is not supported).
    pub conda: Option<String>,
    /// Lines for the task log about what [`choose`] changed.
    pub warnings: Vec<String>,
}

impl Requirements {
    /// From the task's `script.requirements`.
    pub fn from_script(script: &ScriptRequirements) -> Self {
        Self {
            pip: script.pip(),
            org_pip: script.org_pip(),
            conda: script.conda(),
            warnings: Vec::new(),
        }
    }

    /// The `pip` lines that matter (trimmed, no blanks, no comments).
    pub fn pip_lines(&self) -> Vec<String> {
        self.pip
            .as_deref()
            .map(meaningful_lines)
            .unwrap_or_default()
    }

    /// True when `pip` (or `conda`) has something to install.
    pub fn has_task_requirements(&self) -> bool {
        !self.pip_lines().is_empty()
            || self
                .conda
                .as_deref()
                .is_some_and(|c| !meaningful_lines(c).is_empty())
    }
}

/// The requirement set a task installs: its own `pip` section (or `org_pip` with
/// `force_original_requirements`; `pkg @ file://` lines whose file `exists` does not find
/// reduced to `pkg`, said in `warnings`), else — with `force_repo_requirements_txt`, or when the task
/// has none — the repository's requirements files. `repo` is (repository root, working dir,
/// entry point). Mirrors clearml_agent/commands/worker.py: Worker.install_requirements.
pub fn choose(
    task: &Requirements,
    force_repo_requirements_txt: bool,
    force_original_requirements: bool,
    repo: Option<(&Path, &str, &str)>,
    exists: &dyn Fn(&Path) -> bool,
) -> (Requirements, Vec<PathBuf>) {
    let mut requirements = task.clone();
    if force_repo_requirements_txt {
        requirements = Requirements::default();
    } else if force_original_requirements && requirements.org_pip.is_some() {
        requirements.pip = requirements.org_pip.clone();
    }
    requirements.warnings.clear();
    if let Some(pip) = &requirements.pip {
        let lines: Vec<String> = pip.lines().map(str::to_string).collect();
        let (kept, warnings) = drop_missing_local_refs(&lines, exists);
        if !warnings.is_empty() {
            requirements.pip = Some(kept.join("\n"));
            requirements.warnings = warnings;
        }
    }
    let files = match (repo, requirements.has_task_requirements()) {
        (Some((root, working_dir, entry_point)), false) => {
            find_repo_requirements(root, working_dir, entry_point)
        }
        _ => Vec::new(),
    };
    (requirements, files)
}

/// `pkg @ file:///path` lines whose file does not exist become `pkg` (a conda freeze names
/// wheels of the machine it ran on), each with a warning line; `exists` checks a path.
/// Mirrors clearml_agent/helper/package/requirements.py: MarkerRequirement.validate_local_file_ref.
pub fn drop_missing_local_refs(
    lines: &[String],
    exists: &dyn Fn(&Path) -> bool,
) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let out = lines
        .iter()
        .map(|line| {
            let Some((name, rest)) = line.split_once('@') else {
                return line.clone();
            };
            let uri = rest.trim();
            let Some(path) = uri.strip_prefix("file://") else {
                return line.clone();
            };
            let name = name.trim();
            if name.is_empty() || name.starts_with('-') || name.contains("://") {
                return line.clone();
            }
            // The path ends where the URL does (a marker or a comment may follow).
            let path = path.split([' ', ';', '#']).next().unwrap_or(path);
            if exists(Path::new(path)) || exists(Path::new(&percent_decode(path))) {
                return line.clone();
            }
            warnings.push(format!("Local file not found [{line}], references removed"));
            name.to_string()
        })
        .collect();
    (out, warnings)
}

/// `%20` → ` ` (Python's `unquote` for the file URLs of requirement lines).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pip flags of every install: `--extra-index-url` per `extra_index_url`, the
/// `extra_pip_install_flags`, and `--upgrade` with `force_upgrade`. Mirrors
/// clearml_agent/helper/package/pip_api/venv.py (install flags) and base.py.
pub fn pip_flags(
    extra_index_urls: &[String],
    extra_pip_install_flags: &[String],
    force_upgrade: bool,
) -> Vec<String> {
    let mut flags = Vec::new();
    for url in extra_index_urls {
        flags.push("--extra-index-url".to_string());
        flags.push(url.clone());
    }
    flags.extend(extra_pip_install_flags.iter().cloned());
    if force_upgrade {
        flags.push("--upgrade".into());
    }
    flags
}

/// What one install step installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallUnit {
    /// One requirement line.
    Line(String),
    /// The main set, together, from one `-r` file.
    File(Vec<String>),
}

/// One `pip install` of the task's requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallStep {
    pub unit: InstallUnit,
    /// A failure is a warning, not the task's failure; a failed optional priority package is
    /// also taken out of the main set that follows.
    pub optional: bool,
}

/// The install steps of requirement lines, in order: priority packages one by one (optional
/// ones too), the main set from one file, then the post packages one by one. Mirrors
/// clearml_agent/helper/package/priority_req.py and post_req.py as driven by
/// RequirementsManager.replace / post_install.
pub fn install_steps(lines: &[String], order: &InstallOrder) -> Vec<InstallStep> {
    let plan = plan_install(lines, order);
    let one = |line: &String, optional| InstallStep {
        unit: InstallUnit::Line(line.clone()),
        optional,
    };
    let mut steps: Vec<InstallStep> = plan.priority.iter().map(|l| one(l, false)).collect();
    steps.extend(plan.priority_optional.iter().map(|l| one(l, true)));
    if !plan.main.is_empty() {
        steps.push(InstallStep {
            unit: InstallUnit::File(plan.main.clone()),
            optional: false,
        });
    }
    steps.extend(plan.post.iter().map(|l| one(l, false)));
    steps.extend(plan.post_optional.iter().map(|l| one(l, true)));
    steps
}

/// The freeze as the Python agent records it: one entry per line, without the agent itself
/// (mirrors helper/package/pip_api/system.py: SystemPip.freeze, PROGRAM_NAME).
pub fn frozen_lines(frozen: &str) -> Vec<String> {
    frozen
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("clearml-agent"))
        .map(str::to_string)
        .collect()
}

/// Trimmed, non-empty, non-comment lines.
pub fn meaningful_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_matches(['\n', '\r', '\t', ' ']))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The `requirements.txt` files on the path from the repository root down to the entry point's
/// folder, root first. Mirrors clearml_agent/commands/worker.py:
/// Worker.install_requirements_for_package_api (the `parents` loop).
pub fn find_repo_requirements(
    repo_root: &Path,
    working_dir: &str,
    entry_point: &str,
) -> Vec<PathBuf> {
    let script = first_word(entry_point);
    let rel = Path::new(working_dir).join(script);
    let mut dirs: Vec<PathBuf> = rel.ancestors().skip(1).map(Path::to_path_buf).collect();
    dirs.reverse();
    let mut found = Vec::new();
    for d in dirs {
        let candidate = repo_root.join(&d).join("requirements.txt");
        // a link out of the repository (to a host file) is not a requirements file of it
        let inside = match (candidate.canonicalize(), repo_root.canonicalize()) {
            (Ok(c), Ok(r)) => c.starts_with(r),
            _ => false,
        };
        if inside
            && candidate.is_file()
            && !found.iter().any(|f: &PathBuf| same_file(f, &candidate))
        {
            found.push(candidate);
        }
    }
    found
}

fn first_word(entry: &str) -> &str {
    entry.split_whitespace().next().unwrap_or("")
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// A `pip` pin from the task's own requirements (`pip==23.1` → `==23.1`), which overrides
/// `agent.package_manager.pip_version`. Mirrors clearml_agent/helper/package/requirements.py:
/// get_specific_package_version.
pub fn requested_pip_version(requirements: &Requirements) -> Option<String> {
    requirements.pip_lines().into_iter().find_map(|line| {
        let rest = line.strip_prefix("pip")?;
        let rest = rest.trim_start();
        let starts_with_op = rest.starts_with(['=', '<', '>', '~', '!']);
        starts_with_op.then(|| {
            rest.split([';', '#'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    })
}

/// `pip<spec>` install arguments for the pip pin; specs without an operator get `==`.
/// Mirrors clearml_agent/helper/package/base.py: PackageManager.set_pip_version.
pub fn pip_pin_args(specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains(['=', '~', '<', '>']) {
                format!("pip{s}")
            } else {
                format!("pip=={s}")
            }
        })
        .collect()
}

/// Whether `version` (`23.1.2`) matches one of `rules`, each a comma-separated list of
/// comparisons that must all hold (`>=20.3,<24.3`). mirrors helper/package/base.py:
/// PackageManager._add_legacy_resolver_flag with SimpleVersion.compare_versions (numeric parts;
/// `~=X.Y` is `>=X.Y` within `X`).
pub fn version_matches_rules(version: &str, rules: &[String]) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.trim()
            .split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let cmp = |a: &[u64], b: &[u64]| -> std::cmp::Ordering {
        let n = a.len().max(b.len());
        let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        (0..n)
            .map(|i| at(a, i).cmp(&at(b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let have = parts(version);
    rules.iter().any(|rule| {
        rule.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .all(|c| {
                let op_len = c
                    .find(|ch: char| !matches!(ch, '=' | '<' | '>' | '!' | '~'))
                    .unwrap_or(c.len());
                let (op, v) = c.split_at(op_len);
                let want = parts(v);
                let o = cmp(&have, &want);
                use std::cmp::Ordering::*;
                match op {
                    "==" | "" => o == Equal,
                    "!=" => o != Equal,
                    ">=" => o != Less,
                    "<=" => o != Greater,
                    ">" => o == Greater,
                    "<" => o == Less,
                    "~=" => o != Less && have.first() == want.first(),
                    _ => false,
                }
            })
    })
}

/// The meaningful lines of requirements files (unreadable ones add nothing).
pub fn lines_of_files(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| meaningful_lines(&text))
        .collect()
}

/// The package name of a requirement line (`Numpy>=1.2 ; python_version>"3"` → `numpy`), or
/// `None` for options, URLs and local paths.
pub fn package_name(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with(['-', '#', '.', '/']) || line.contains("://") {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    (!name.is_empty()).then(|| name.to_lowercase())
}

/// The VCS, editable and local-path lines of a requirement set: what a cached venv still has to
/// (re)install. Mirrors clearml_agent/helper/package/external_req.py: OnlyExternalRequirements.
pub fn external_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            let l = l.trim();
            let lower = l.to_lowercase();
            l.starts_with("-e ")
                || l.starts_with("--editable")
                || l.starts_with(['.', '/'])
                || lower.contains("@ file://")
                || lower.starts_with("file://")
                || ["git+", "hg+", "svn+", "bzr+"]
                    .iter()
                    .any(|p| lower.starts_with(p) || lower.contains(&format!("@ {p}")))
        })
        .cloned()
        .collect()
}

/// Which packages are installed before and after the main set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOrder {
    /// `agent.package_manager.priority_packages`: installed first, one by one (and kept in the set).
    pub priority: Vec<String>,
    /// `agent.package_manager.priority_optional_packages`: like `priority`, failures ignored
    /// (the line is then dropped from the set).
    pub priority_optional: Vec<String>,
    /// `agent.package_manager.post_packages`: taken out of the set, installed after it.
    pub post: Vec<String>,
    /// `agent.package_manager.post_optional_packages`: like `post`, failures ignored.
    pub post_optional: Vec<String>,
    /// Packages listed more than once keep only their last line.
    pub collapse: Vec<String>,
}

impl Default for InstallOrder {
    /// Mirrors clearml_agent/helper/package/priority_req.py (PriorityPackageRequirement),
    /// post_req.py (PostRequirement) and the PackageCollectorRequirement set of worker.py.
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        Self {
            priority: v(&["cython", "numpy", "setuptools", "pip", "uv"]),
            priority_optional: v(&["pygobject"]),
            post: v(&["horovod"]),
            post_optional: Vec::new(),
            collapse: v(&["clearml", "trains", "nbconvert", "ipython"]),
        }
    }
}

/// Task requirement lines split by install stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPlan {
    /// Installed one by one before `main`.
    pub priority: Vec<String>,
    /// Like `priority`; a failure drops the line from `main` and is only a warning.
    pub priority_optional: Vec<String>,
    /// Installed together with one `-r` file.
    pub main: Vec<String>,
    /// Installed one by one after `main`.
    pub post: Vec<String>,
    /// Like `post`, failures are warnings.
    pub post_optional: Vec<String>,
}

/// Splits requirement lines into install stages.
pub fn plan_install(lines: &[String], order: &InstallOrder) -> InstallPlan {
    let has = |list: &[String], name: &str| list.iter().any(|p| p.eq_ignore_ascii_case(name));
    let mut plan = InstallPlan::default();
    for (i, line) in lines.iter().enumerate() {
        let name = package_name(line);
        if let Some(n) = &name
            && has(&order.collapse, n)
            && lines[i + 1..]
                .iter()
                .any(|l| package_name(l).as_deref() == Some(n.as_str()))
        {
            continue;
        }
        match name {
            Some(n) if has(&order.post, &n) => plan.post.push(line.clone()),
            Some(n) if has(&order.post_optional, &n) => plan.post_optional.push(line.clone()),
            Some(n) if has(&order.priority, &n) => {
                plan.priority.push(line.clone());
                plan.main.push(line.clone());
            }
            Some(n) if has(&order.priority_optional, &n) => {
                plan.priority_optional.push(line.clone());
                plan.main.push(line.clone());
            }
            _ => plan.main.push(line.clone()),
        }
    }
    plan
}

/// The inputs of a venv-cache key besides the requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheKeyContext {
    /// The package manager class name the Python agent hashes
    /// (`<class 'clearml_agent.helper.package.pip_api.venv.VirtualenvPip'>`), so entries are shared.
    pub manager_class: String,
    /// The docker image (first word of `docker_cmd`), when running in docker.
    pub docker_image: Option<String>,
    /// `agent.cuda_version` as configured/detected.
    pub cuda_version: Option<String>,
    /// The interpreter name as found (`python3.11`).
    pub python: String,
}

/// The Python agent's class string for the pip/venv manager.
pub const PIP_MANAGER_CLASS: &str =
    "<class 'clearml_agent.helper.package.pip_api.venv.VirtualenvPip'>";

/// One venv-cache key for a requirement set; `None` when there is nothing to key on or the set
/// uses `-r` (whose content lives in the repository). Mirrors clearml_agent/helper/package/base.py:
/// PackageManager._generate_reqs_hash_keys (same text, same md5, so the caches are interchangeable).
pub fn cache_key(ctx: &CacheKeyContext, pip: &str, conda: &str) -> Option<String> {
    let mut pip_reqs = meaningful_lines(pip);
    let mut conda_reqs = meaningful_lines(conda);
    pip_reqs.sort();
    conda_reqs.sort();
    if pip_reqs.is_empty() && conda_reqs.is_empty() {
        return None;
    }
    if pip_reqs
        .iter()
        .any(|r| r.starts_with("-r ") || r.starts_with("--requirement "))
    {
        return None;
    }
    let docker = match &ctx.docker_image {
        Some(img) if !img.trim().is_empty() => {
            let image = img
                .trim_matches(['\r', '\n', '\t', ' '])
                .split(' ')
                .next()
                .unwrap_or("");
            format!("OrderedDict([('docker_cmd', {})])", py_repr(image))
        }
        _ => String::new(),
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(
                "[{}]",
                v.iter().map(|s| py_repr(s)).collect::<Vec<_>>().join(", ")
            )
        }
    };
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        ctx.manager_class,
        docker,
        ctx.cuda_version.as_deref().unwrap_or(""),
        ctx.python,
        list(&pip_reqs),
        list(&conda_reqs),
    );
    Some(md5_hex(&text))
}

/// Python's `repr()` of a str (enough for requirement lines).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn legacy_resolver_rules_match_like_the_python_agent() {
        let rules = vec![">=20.3,<24.3".to_string()];
        assert!(version_matches_rules("20.3", &rules));
        assert!(version_matches_rules("23.1.2", &rules));
        assert!(!version_matches_rules("24.3", &rules));
        assert!(!version_matches_rules("20.2.4", &rules));
        let two = vec!["==19.3.1".to_string(), "~=25.0".to_string()];
        assert!(version_matches_rules("19.3.1", &two));
        assert!(version_matches_rules("25.2", &two));
        assert!(!version_matches_rules("26.0", &two));
        assert!(!version_matches_rules("23.0", &[]));
    }
    use super::*;

    #[test]
    fn missing_local_file_references_are_removed() {
        let lines: Vec<String> = [
            "numpy @ file:///home/conda/feedstock/numpy-1.26-py3.whl",
            "here @ file:///opt/wheels/here%20it.whl",
            "tqdm==4.66",
            "pkg @ git+https://example.com/pkg.git",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (out, warnings) =
            drop_missing_local_refs(&lines, &|p| p == Path::new("/opt/wheels/here it.whl"));
        assert_eq!(
            out,
            [
                "numpy",
                "here @ file:///opt/wheels/here%20it.whl",
                "tqdm==4.66",
                "pkg @ git+https://example.com/pkg.git"
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("Local file not found [numpy @ file://"));
        let task = Requirements::from_script(&serde_json::json!({"pip": lines}).into());
        let (chosen, _) = choose(&task, false, false, None, &|_| false);
        assert_eq!(chosen.pip_lines()[1], "here");
    }

    #[test]
    fn list_or_string_sections() {
        let r = Requirements::from_script(
            &serde_json::json!({"pip": ["six==1.16.0", "# c", ""], "org_pip": "a\nb"}).into(),
        );
        assert_eq!(r.pip_lines(), vec!["six==1.16.0"]);
        assert_eq!(r.org_pip.as_deref(), Some("a\nb"));
        assert!(r.conda.is_none());
    }

    #[test]
    fn pip_pin() {
        let r = Requirements {
            pip: Some("six\npip==23.1\n".into()),
            ..Default::default()
        };
        assert_eq!(requested_pip_version(&r).as_deref(), Some("==23.1"));
        assert_eq!(
            pip_pin_args(&["<22.3".into(), "23".into()]),
            vec!["pip<22.3", "pip==23"]
        );
    }

    fn lines_of(s: &str) -> Vec<String> {
        meaningful_lines(s)
    }

    #[test]
    fn install_stages() {
        let lines: Vec<String> = [
            "Cython==3.0",
            "six",
            "clearml==1.0",
            "horovod",
            "PyGObject",
            "clearml==2.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let plan = plan_install(&lines, &InstallOrder::default());
        assert_eq!(plan.priority, vec!["Cython==3.0"]);
        assert_eq!(plan.priority_optional, vec!["PyGObject"]);
        assert_eq!(plan.post, vec!["horovod"]);
        assert_eq!(
            plan.main,
            vec!["Cython==3.0", "six", "PyGObject", "clearml==2.0"]
        );
        assert_eq!(package_name("git+https://x/y.git"), None);
        let ext = external_lines(&lines_of(
            "six\ngit+https://h/r.git@abc\nx @ git+https://h/x.git\n-e ./pkg\n",
        ));
        assert_eq!(
            ext,
            lines_of("git+https://h/r.git@abc\nx @ git+https://h/x.git\n-e ./pkg")
        );
        assert_eq!(
            package_name("Numpy>=1 ; python_version > '3'").as_deref(),
            Some("numpy")
        );
    }

    #[test]
    fn cache_key_matches_python_agent() {
        // python3 -c "from hashlib import md5; print(md5((\"<class 'clearml_agent.helper.package.pip_api.venv.VirtualenvPip'>\"
        //   + '\n\n\npython3.11\n' + str(['six==1.16.0']) + '\n').encode()).hexdigest())"
        let ctx = CacheKeyContext {
            manager_class: PIP_MANAGER_CLASS.into(),
            python: "python3.11".into(),
            ..Default::default()
        };
        let key = cache_key(&ctx, "six==1.16.0\n", "");
        assert_eq!(key.as_deref(), Some("18bf902a504453dae93fe0c670c1f405"));
        assert_eq!(cache_key(&ctx, "-r requirements.txt", ""), None);
        assert_eq!(cache_key(&ctx, "# only a comment", ""), None);
    }
}
