//! Task source code: git clone through the vcs cache, checkout, diffs, literal scripts.
//!
//! Owns everything from `script.repository`/`script.diff` to a directory with the task's code in it
//! (the [`SourceLayout`]). It does not build the task command line nor its environment; the
//! integrator does that from the layout. Every git command line and its output goes to the caller's
//! log callback, with passwords scrubbed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exec::command::run_streamed;
use crate::exec::confined::{self, Beneath, ConfineError};
use crate::exec::git_url::{
    GitUrl, config_creds, md5_hex, percent_encode, user_is_token, without_credentials,
};
pub use crate::exec::git_url::{is_host_repository, repo_folder_name, rewrite_url, scrub_url};
use crate::exec::lock;
use crate::exec::tree::copy_tree;

/// How long to wait for the per-repository vcs-cache lock before falling back to a private cache
/// entry. Mirrors clearml_agent/helper/repo.py: clone_repository_cached (repo_lock_timeout_sec).
const REPO_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// Folder (inside the venv) holding clones; mirrors clearml_agent/definitions.py WORKING_REPOSITORY_DIR.
pub const WORKING_REPOSITORY_DIR: &str = "task_repository";
/// Folder (inside the venv) holding literal scripts; mirrors WORKING_STANDALONE_DIR.
pub const WORKING_STANDALONE_DIR: &str = "code";

/// One extra credential entry (`agent.git.extra_credentials`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitCredential {
    pub user: String,
    pub pass: String,
    pub host: String,
}

/// The git settings of the `agent` section, already resolved (env over config) by the settings layer.
#[derive(Debug, Clone, PartialEq)]
pub struct GitOptions {
    /// `agent.git_user` / `CLEARML_AGENT_GIT_USER`.
    pub git_user: Option<String>,
    /// `agent.git_pass` / `CLEARML_AGENT_GIT_PASS`.
    pub git_pass: Option<String>,
    /// `agent.git_host`: only send the credentials to this host.
    pub git_host: Option<String>,
    /// `agent.git_host_match_prefix`: match `git_host` as a prefix of the full URL.
    pub git_host_match_prefix: bool,
    /// `agent.git.extra_credentials`; the first host match wins.
    pub extra_credentials: Vec<GitCredential>,
    /// `agent.enable_git_ask_pass` (default true): credentials through a temporary `GIT_ASKPASS`
    /// script instead of inside the URL.
    pub enable_git_ask_pass: bool,
    /// `agent.force_git_ssh_protocol`: rewrite `https://` URLs to `ssh://git@`.
    pub force_git_ssh_protocol: bool,
    pub force_git_ssh_port: Option<u16>,
    pub force_git_ssh_user: Option<String>,
    /// `agent.translate_ssh` (default true): with credentials, rewrite ssh URLs to https.
    pub translate_ssh: bool,
    /// `agent.translate_ssl_replacement_scheme` (default "https").
    pub translate_ssh_replacement_scheme: String,
    /// `agent.git_fetch_args` (default `--all --tags --recurse-submodules`).
    pub git_fetch_args: Vec<String>,
    /// `agent.vcs_cache.path` when `agent.vcs_cache.enabled`; `None` clones straight into the target.
    pub vcs_cache: Option<PathBuf>,
    /// `agent.vcs_cache.clone_on_pull_fail`.
    pub clone_on_pull_fail: bool,
    /// `CLEARML_AGENT_GIT_CLONE_VERBOSE`: `--verbose` instead of `--quiet` on clone.
    pub clone_verbose: bool,
    /// `--standalone-mode`: no clone, the code is expected in `<target_root>/<repo name>`.
    pub standalone: bool,
    /// `agent.git_use_ms_entra_token` / `git_use_azure_pat`: Azure DevOps authentication.
    pub header_auth: HeaderAuth,
}

/// Azure DevOps authentication: the credential's password sent as an HTTP header instead of
/// through askpass. mirrors clearml_agent/helper/repo.py: Git._git_pass_auth_wrapper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderAuth {
    #[default]
    Off,
    /// `Authorization: Bearer <password>` (a Microsoft Entra token).
    EntraToken,
    /// `Authorization: Basic base64(":" + password)` (an Azure DevOps personal access token).
    AzurePat,
}

/// The variable the header travels in (`git --config-env`), never on the command line.
const HEADER_VARIABLE: &str = crate::env::EnvVars::CLEARML_AGENT_GIT_AUTH_HEADER;

impl Default for GitOptions {
    fn default() -> Self {
        Self {
            git_user: None,
            git_pass: None,
            git_host: None,
            git_host_match_prefix: false,
            extra_credentials: Vec::new(),
            enable_git_ask_pass: true,
            force_git_ssh_protocol: false,
            force_git_ssh_port: None,
            force_git_ssh_user: None,
            translate_ssh: true,
            translate_ssh_replacement_scheme: "https".to_string(),
            git_fetch_args: vec![
                "--all".into(),
                "--tags".into(),
                "--recurse-submodules".into(),
            ],
            vcs_cache: None,
            clone_on_pull_fail: false,
            clone_verbose: false,
            standalone: false,
            header_auth: HeaderAuth::Off,
        }
    }
}

/// The `script` section of a task, as plain strings (empty = not set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptInfo {
    pub repository: String,
    pub branch: String,
    pub tag: String,
    pub version_num: String,
    pub entry_point: String,
    pub working_dir: String,
    pub diff: String,
    pub binary: String,
}

impl ScriptInfo {
    /// The task's `script` section, run with `binary`.
    pub fn of(script: &crate::api::Script, binary: String) -> ScriptInfo {
        ScriptInfo {
            repository: script.repository.clone(),
            branch: script.branch.clone(),
            tag: script.tag.clone(),
            version_num: script.version_num.clone(),
            entry_point: script.entry_point.clone(),
            working_dir: script.working_dir.clone(),
            diff: script.diff.clone(),
            binary,
        }
    }
}

/// What `git` says about the checked-out copy (printed as `type: git`, `url: ...` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// The origin URL without password.
    pub url: String,
    pub branch: String,
    pub commit: String,
    pub root: PathBuf,
}

/// Where the task's code ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLayout {
    /// Root of the checked-out copy, when the task has a repository.
    pub repo_root: Option<PathBuf>,
    /// The directory the task runs in (`<repo>/<working_dir>` or `<venv>/code`).
    pub script_dir: PathBuf,
    /// The entry point to run (may carry arguments, `-m module`, or be an absolute literal-script path).
    pub entry_point: String,
    /// The working dir after normalisation (`"."` when a repository has none).
    pub working_dir: String,
    /// The script file, when one could be located.
    pub script_file: Option<PathBuf>,
    /// Commit of the checked-out copy (for writing `version_num` back when the task had none).
    pub commit: Option<String>,
    pub repo: Option<RepoInfo>,
}

/// Why getting the task's code failed; each variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot run `git`: {cause}; install git (e.g. `apt-get install git`)")]
    GitMissing { cause: String },
    #[error(
        "failed cloning repository {url}: {cause} (make sure the commit is pushed and the worker has valid git credentials)"
    )]
    Clone { url: String, cause: String },
    #[error(
        "git fetch failed in the vcs cache of {url}: {cause} (set agent.vcs_cache.clone_on_pull_fail to re-clone)"
    )]
    Fetch { url: String, cause: String },
    #[error("failed checking out {rev}: {cause} (make sure the commit/tag/branch is pushed)")]
    Checkout { rev: String, cause: String },
    #[error("failed applying git diff: {cause}")]
    ApplyDiff { cause: String },
    #[error("failed copying the cached repository {from} to {to}: {cause}")]
    CopyCache {
        from: PathBuf,
        to: PathBuf,
        cause: io::Error,
    },
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
    #[error(
        "refused {what} {value:?}: not a commit id nor a valid git ref name (it may not start with `-`); fix the task's {what}"
    )]
    BadRef { what: &'static str, value: String },
    #[error("refused the task's repository {url:?}: {why}")]
    BadRepository { url: String, why: String },
    #[error(transparent)]
    Confined(#[from] ConfineError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SourceError {
    let context = context.into();
    move |cause| SourceError::Io { context, cause }
}

/// Whether `script.diff` is the script itself rather than a git diff.
/// Mirrors clearml_agent/commands/worker.py: LiteralScriptManager.is_literal_script.
pub fn is_literal_script(diff: &str) -> bool {
    if diff.is_empty() {
        return false;
    }
    let lower = diff.trim_start().to_lowercase();
    if lower.starts_with("diff ") {
        return false;
    }
    if lower.starts_with("submodule ")
        && diff
            .lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().to_lowercase().starts_with("diff "))
    {
        return false;
    }
    true
}

/// Splits the `entry:working_dir` form used when `working_dir` is empty.
/// Mirrors clearml_agent/helper/base.py: ExecutionInfo.from_task.
pub fn split_entry_point(entry_point: &str, working_dir: &str) -> (String, String) {
    if !working_dir.is_empty() {
        return (entry_point.to_string(), working_dir.to_string());
    }
    match entry_point.split_once(':') {
        Some((e, w)) => (e.to_string(), w.to_string()),
        None => (entry_point.to_string(), String::new()),
    }
}

/// Gets the task's code: clone (through the vcs cache) and checkout, apply the diff, or write the
/// literal script. `target_root` is `<venv>/task_repository`, `code_dir` is `<venv>/code`; both
/// are wiped first. Every command runs with exactly `env` (plus the git variables below).
/// Mirrors clearml_agent/commands/worker.py: Worker.get_repo_info.
pub fn prepare_source(
    script: &ScriptInfo,
    target_root: &Path,
    code_dir: &Path,
    opts: &GitOptions,
    env: &HashMap<String, String>,
    log: &dyn Fn(&str),
) -> Result<SourceLayout, SourceError> {
    let (entry_point, working_dir) = split_entry_point(&script.entry_point, &script.working_dir);
    let has_repository = !script.repository.trim().is_empty();
    let literal = is_literal_script(&script.diff);

    // mirrors worker.py: Worker.install_virtualenv (rm_tree of both folders before each run)
    if !opts.standalone {
        remove_dir_if_exists(target_root)?;
        remove_dir_if_exists(code_dir)?;
    }

    if !has_repository && !literal {
        log("WARNING: running a task without repository or literal script in `script.diff`");
        fs::create_dir_all(code_dir).map_err(io_err(format!("creating {}", code_dir.display())))?;
        return Ok(SourceLayout {
            repo_root: None,
            script_dir: code_dir.to_path_buf(),
            entry_point,
            working_dir,
            script_file: None,
            commit: None,
            repo: None,
        });
    }

    // Every path the task names stays beneath its folder (docker mode prepares the code on the
    // host): checked before anything is cloned or written.
    let working_rel = if has_repository {
        confined::relative("script.working_dir", &working_dir)?
    } else {
        PathBuf::new()
    };
    // (a literal script without repository only takes its file name from the entry point)
    let entry_rel = if has_repository {
        entry_file(&entry_point)?
    } else {
        None
    };

    let mut repo = None;
    let mut script_file = None;
    let mut script_dir = None;
    if has_repository {
        let url = script.repository.trim();
        // refused before anything is cloned
        revisions(script)?;
        if url.starts_with('-') {
            return Err(SourceError::BadRepository {
                url: scrub_url(url),
                why: "a repository URL may not start with `-`; fix the task's script.repository"
                    .into(),
            });
        }
        let git = Git::new(url, opts, env, log);
        let info = git.clone_cached(script, target_root)?;
        log("type: git");
        log(&format!("url: {}", info.url));
        log(&format!("branch: {}", info.branch));
        log(&format!("commit: {}", info.commit));
        log(&format!("root: {}", info.root.display()));
        let root = Beneath::open("the repository", &info.root)?;
        if !working_rel.as_os_str().is_empty()
            && !root.is_dir(&working_rel)
            && fs::symlink_metadata(info.root.join(&working_rel)).is_ok()
        {
            return Err(ConfineError::Link {
                what: "script.working_dir",
                path: info.root.join(&working_rel),
            }
            .into());
        }
        let dir = info.root.join(if working_rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &working_rel
        });
        if !literal && !script.diff.is_empty() {
            git.apply_diff(&root, &script.diff)?;
        }
        let file_rel = working_rel.join(
            entry_rel
                .as_deref()
                .unwrap_or(Path::new(first_word(&entry_point).unwrap_or_default())),
        );
        if entry_rel.is_some() && root.is_file(&file_rel) {
            fix_future_import_patch_beneath(&root, &file_rel);
        }
        script_file = Some(info.root.join(&file_rel));
        script_dir = Some(dir);
        repo = Some(info);
    }

    if literal {
        log("found literal script in `script.diff`");
        let written = write_literal_script(
            script,
            &entry_point,
            &working_dir,
            repo.as_ref(),
            code_dir,
            log,
        )?;
        if let Ok(dir) = Beneath::open("the script folder", &written.dir)
            && let Some(name) = written.file.file_name()
            && dir.is_file(Path::new(name))
        {
            fix_future_import_patch_beneath(&dir, Path::new(name));
        }
        return Ok(SourceLayout {
            repo_root: repo.as_ref().map(|r| r.root.clone()),
            script_dir: written.dir,
            entry_point: written.entry_point,
            working_dir: written.working_dir,
            script_file: Some(written.file),
            commit: repo.as_ref().map(|r| r.commit.clone()),
            repo,
        });
    }

    let dir = script_dir.unwrap_or_else(|| code_dir.to_path_buf());
    Ok(SourceLayout {
        repo_root: repo.as_ref().map(|r| r.root.clone()),
        script_dir: dir,
        entry_point,
        working_dir: if working_dir.is_empty() {
            ".".into()
        } else {
            working_dir
        },
        script_file,
        commit: repo.as_ref().map(|r| r.commit.clone()),
        repo,
    })
}

/// The revisions to try, in order: version_num > tag > origin/<branch> (origin/master, then
/// origin/main without one); the one used is refused when git could read it as an option.
/// Mirrors repo.py: VcsFactory.create and Git.checkout.
fn revisions(script: &ScriptInfo) -> Result<Vec<String>, SourceError> {
    let (version, tag, branch) = (
        script.version_num.trim(),
        script.tag.trim(),
        script.branch.trim(),
    );
    Ok(if !version.is_empty() {
        check_ref("script.version_num", version)?;
        vec![version.to_string()]
    } else if !tag.is_empty() {
        check_ref("script.tag", tag)?;
        vec![tag.to_string()]
    } else if !branch.is_empty() {
        check_ref("script.branch", branch)?;
        vec![format!("origin/{branch}")]
    } else {
        vec!["origin/master".into(), "origin/main".into()]
    })
}

/// The script file an entry point names (its first word), confined to the task's folder;
/// `None` for `-m module` / `-c code` forms.
fn entry_file(entry_point: &str) -> Result<Option<PathBuf>, SourceError> {
    match first_word(entry_point) {
        None => Ok(None),
        Some(w) if w.starts_with('-') => Ok(None),
        Some(w) => Ok(Some(confined::relative("script.entry_point", w)?)),
    }
}

/// Moves the `from clearml import Task` / `Task.init(...)` two-liner that the SDK prepends to a
/// script below the script's `__future__` imports (which must stay first), in a file beneath
/// `dir`, read and written without following links. Best effort: any read or write problem
/// leaves the file as it is.
/// Mirrors clearml_agent/helper/repo.py: fix_package_import_diff_patch.
fn fix_future_import_patch_beneath(dir: &Beneath, rel: &Path) {
    let Some(text) = dir.read_to_string(rel) else {
        return;
    };
    if let Some(fixed) = move_task_init_below_future(&text) {
        let _ = dir.rewrite(rel, fixed.as_bytes());
    }
}

fn move_task_init_below_future(text: &str) -> Option<String> {
    let original: Vec<&str> = text.split_inclusive('\n').collect();
    if original.len() < 2
        || !original[0].trim().starts_with("from clearml ")
        || !original[1].contains("Task.init")
    {
        return None;
    }
    let code: Vec<(usize, String)> = original
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            *i >= 2
                && !l.trim_matches(['\r', '\n', '\t', ' ']).is_empty()
                && !l.trim().starts_with('#')
        })
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim_end().to_string()))
        .collect();
    // drop lines inside triple-quoted strings
    let mut open: Option<usize> = None;
    let mut skip = std::collections::HashSet::new();
    for (k, (_, line)) in code.iter().enumerate() {
        for _ in 1..line.split("\"\"\"").count() {
            match open.take() {
                Some(start) => skip.extend(start..=k),
                None => open = Some(k),
            }
        }
    }
    let lines: Vec<&(usize, String)> = code
        .iter()
        .enumerate()
        .filter(|(k, _)| !skip.contains(k))
        .map(|(_, p)| p)
        .collect();
    let is_future = |l: &str| {
        ["from", "import"].iter().any(|kw| {
            l.strip_prefix(kw)
                .is_some_and(|r| r.trim_start().starts_with("__future__"))
        })
    };
    let mut found: Option<usize> = None;
    for a in 0..lines.len() {
        if found.is_some_and(|f| f >= a) {
            continue;
        }
        if !is_future(&lines[a].1) {
            break;
        }
        let mut f = a;
        let mut line = lines[f].1.as_str();
        let parenthesized = line.contains('(') && !line.contains(')');
        while line.ends_with('\\') || parenthesized {
            f += 1;
            let next = lines.get(f)?;
            line = next.1.as_str();
            if line.contains(')') {
                break;
            }
        }
        found = Some(f);
    }
    let entry = lines[found?].0;
    let mut out = String::new();
    for l in original[2..=entry]
        .iter()
        .chain(&original[..2])
        .chain(&original[entry + 1..])
    {
        out.push_str(l);
    }
    Some(out)
}

struct WrittenScript {
    dir: PathBuf,
    entry_point: String,
    working_dir: String,
    file: PathBuf,
}

/// Writes `script.diff` as the script file.
/// Mirrors clearml_agent/commands/worker.py: LiteralScriptManager.create_notebook_file / write.
fn write_literal_script(
    script: &ScriptInfo,
    entry_point: &str,
    working_dir: &str,
    repo: Option<&RepoInfo>,
    code_dir: &Path,
    log: &dyn Fn(&str),
) -> Result<WrittenScript, SourceError> {
    let (is_python, is_bash) = binary_kind(&script.binary);
    let mut working_dir = working_dir.to_string();
    let mut entry_point = entry_point.to_string();
    let trimmed = entry_point.trim();
    let mut target: Option<String> = None;
    if trimmed.starts_with("-m ") || trimmed.starts_with("-c ") {
        let mut name = if is_bash && trimmed.starts_with("-c ") {
            "untitled.sh"
        } else {
            "untitled.py"
        }
        .to_string();
        if let Some((w, n)) = working_dir.clone().split_once(':') {
            working_dir = w.to_string();
            name = n.to_string();
        }
        log(&format!(
            "found task with `script.entry_point` using a module defaulting to: {name}"
        ));
        target = Some(name);
    }

    let dir = match repo {
        Some(r) => {
            let rel = confined::relative("script.working_dir", &working_dir)?;
            Beneath::open("the repository", &r.root)?.create_dir_all("script.working_dir", &rel)?
        }
        None => {
            if !working_dir.trim().is_empty() && working_dir.trim() != "." {
                log(&format!(
                    "WARNING: found task with `script.working_dir` (`{working_dir}`) but without `script.repository`, ignoring"
                ));
            }
            code_dir.to_path_buf()
        }
    };
    if repo.is_none() {
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }

    if entry_point.is_empty() {
        entry_point = if is_bash {
            "untitled.sh"
        } else {
            "untitled.py"
        }
        .to_string();
    } else if target.is_none()
        && let Some(first) = first_word(&entry_point)
    {
        let file_name = first.rsplit('/').next().unwrap_or(first).to_string();
        if (is_bash && (file_name.ends_with(".sh") || file_name.ends_with(".bash")))
            || (is_python && file_name.ends_with(".py"))
        {
            target = Some(file_name);
        }
    }

    // One plain file name in the script folder: never a path (docker mode writes it on the host).
    let name = confined::file_name(
        "the literal script name (script.entry_point)",
        &target.clone().unwrap_or_else(|| entry_point.clone()),
    )?;
    let path = dir.join(&name);
    let beneath = Beneath::open("the script folder", &dir)?;
    // an existing file wins over the literal script (mirrors LiteralScriptManager.write); it is
    // looked up and created without following links
    let (written_entry, file) = if beneath.exists(Path::new(&name)) {
        (name.clone(), path)
    } else {
        beneath.create_file(
            "the literal script",
            Path::new(&name),
            script.diff.as_bytes(),
            0o644,
        )?;
        (path.to_string_lossy().into_owned(), path)
    };
    let entry_point = if target.is_some() {
        entry_point
    } else {
        written_entry
    };
    Ok(WrittenScript {
        dir,
        entry_point,
        working_dir,
        file,
    })
}

/// `(is_python, is_bash)` of `script.binary`.
/// Mirrors clearml_agent/helper/base.py: check_is_binary_python_or_bash (loosely).
fn binary_kind(binary: &str) -> (bool, bool) {
    let name = binary
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_lowercase();
    let is_bash = ["bash", "zsh", "sh"]
        .iter()
        .any(|s| name == *s || name.starts_with(&format!("{s} ")));
    let is_python = !is_bash;
    (is_python, is_bash)
}

/// First shell word of an entry point (quotes stripped), for `script.py --arg` entry points.
fn first_word(entry: &str) -> Option<&str> {
    let word = entry.split_whitespace().next()?;
    Some(word.trim_matches(|c| c == '"' || c == '\''))
}

fn remove_dir_if_exists(path: &Path) -> Result<(), SourceError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SourceError::Io {
            context: format!("removing {}", path.display()),
            cause: e,
        }),
    }
}

/// One repository URL plus what is needed to run git against it.
struct Git<'a> {
    /// The original URL (cache key, printed without password).
    original: String,
    /// The URL after ssh/https rewriting, without credentials when they go through askpass.
    url: String,
    /// Username and password for askpass (when used).
    creds: Option<(String, String)>,
    /// The `http.extraheader` value of Azure DevOps authentication (when used).
    header: Option<String>,
    /// Secrets to scrub from every logged line.
    secrets: Vec<String>,
    opts: &'a GitOptions,
    env: &'a HashMap<String, String>,
    log: &'a dyn Fn(&str),
}

impl<'a> Git<'a> {
    fn new(
        url: &str,
        opts: &'a GitOptions,
        env: &'a HashMap<String, String>,
        log: &'a dyn Fn(&str),
    ) -> Self {
        let rewritten = rewrite_url(url, opts, log);
        let mut creds = None;
        let mut header = None;
        let mut final_url = rewritten.clone();
        let mut secrets = Vec::new();
        // mirrors repo.py: VCS.add_auth (only http(s)-like schemes get credentials)
        if let Some(p) = GitUrl::parse(&rewritten)
            && !(p.scheme == "ssh" || p.scheme.starts_with("git") || p.scheme == "file")
        {
            let found = match (&p.user, &p.pass) {
                (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
                _ => config_creds(opts, &rewritten, &p.host),
            };
            if opts.header_auth != HeaderAuth::Off
                && found.as_ref().is_none_or(|(_, pw)| pw.is_empty())
            {
                log(
                    "WARNING: cannot use MS Entra Token or Azure PAT since no password was found, skipping",
                );
            }
            if let Some((u, pw)) = found {
                secrets.push(pw.clone());
                let mut with = p.clone();
                let value = match opts.header_auth {
                    _ if pw.is_empty() => None,
                    HeaderAuth::Off => None,
                    HeaderAuth::EntraToken => Some(format!("Authorization: Bearer {pw}")),
                    HeaderAuth::AzurePat => {
                        use base64::Engine as _;
                        let encoded =
                            base64::engine::general_purpose::STANDARD.encode(format!(":{pw}"));
                        secrets.push(encoded.clone());
                        Some(format!("Authorization: Basic {encoded}"))
                    }
                };
                if value.is_some() {
                    with.user = None;
                    with.pass = None;
                    header = value;
                } else if opts.enable_git_ask_pass {
                    with.user = None;
                    with.pass = None;
                    creds = Some((u, pw));
                } else {
                    with.user = Some(percent_encode(&u));
                    with.pass = Some(percent_encode(&pw));
                    secrets.push(percent_encode(&pw));
                }
                final_url = with.render();
            }
        }
        for u in [GitUrl::parse(url), GitUrl::parse(&final_url)]
            .into_iter()
            .flatten()
        {
            if user_is_token(&u)
                && let Some(user) = &u.user
            {
                secrets.push(user.clone());
            }
            if let Some(p) = u.pass {
                secrets.push(p);
            }
        }
        secrets.retain(|s| !s.is_empty());
        Self {
            original: url.to_string(),
            url: final_url,
            creds,
            header,
            secrets,
            opts,
            env,
            log,
        }
    }

    fn scrub(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "********");
        }
        out
    }

    fn printable_url(&self) -> String {
        self.scrub(&scrub_url(&self.url))
    }

    /// Runs one git command with its output streamed to the log; `Err(cause)` is git's last line.
    fn run(
        &self,
        args: &[&str],
        cwd: Option<&Path>,
        stdin: Option<&[u8]>,
    ) -> Result<Result<(), String>, SourceError> {
        let askpass = match &self.creds {
            Some((u, p)) => Some(AskPass::create(u, p, self.env)?),
            None => None,
        };
        let mut cmd = hardened_git(cwd);
        if self.header.is_some() {
            cmd.arg(format!("--config-env=http.extraheader={HEADER_VARIABLE}"));
        }
        cmd.args(args);
        cmd.env_clear().envs(self.env);
        if let Some(header) = &self.header {
            cmd.env(HEADER_VARIABLE, header);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -oBatchMode=yes");
        if let Some(a) = &askpass {
            cmd.env("GIT_ASKPASS", &*a.path);
        }
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let shown = format!("git {}", args.join(" "));
        (self.log)(&self.scrub(&shown));
        let scrub = |l: &str| self.scrub(&l.replace(&self.url, &scrub_url(&self.url)));
        let outcome = run_streamed(cmd, stdin, &|l| (self.log)(&scrub(l))).map_err(|e| {
            SourceError::GitMissing {
                cause: e.to_string(),
            }
        })?;
        drop(askpass);
        if outcome.success {
            Ok(Ok(()))
        } else {
            Ok(Err(scrub(&outcome.failure_summary())))
        }
    }

    /// `git <args>` returning trimmed stdout, or `None` when it fails.
    fn query(&self, args: &[&str], cwd: &Path) -> Option<String> {
        let out = hardened_git(Some(cwd))
            .args(args)
            .env_clear()
            .envs(self.env)
            .env("GIT_TERMINAL_PROMPT", "0")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn clone_into(&self, dir: &Path) -> Result<(), SourceError> {
        remove_dir_if_exists(dir)?;
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        let d = dir.to_string_lossy();
        let quiet = if self.opts.clone_verbose {
            "--verbose"
        } else {
            "--quiet"
        };
        self.run(
            &["clone", "--recursive", quiet, "--", &self.url, &d],
            None,
            None,
        )?
        .map_err(|cause| SourceError::Clone {
            url: self.printable_url(),
            cause,
        })
    }

    fn fetch(&self, dir: &Path) -> Result<Result<(), String>, SourceError> {
        let mut args = vec!["fetch"];
        args.extend(self.opts.git_fetch_args.iter().map(String::as_str));
        self.run(&args, Some(dir), None)
    }

    /// `git fetch` in the vcs cache entry, re-cloning it on failure when the settings allow.
    fn pull_cached(&self, cached: &Path, printable: &str) -> Result<(), SourceError> {
        let printable = printable.to_string();
        (self.log)("pulling git");
        if let Err(cause) = self.fetch(cached)? {
            (self.log)(&format!("git pull failed: {cause}"));
            if !self.opts.clone_on_pull_fail {
                return Err(SourceError::Fetch {
                    url: printable,
                    cause,
                });
            }
            (self.log)(&format!("pulling git failed, re-cloning: {printable}"));
            self.clone_into(cached)?;
            if let Err(cause) = self.fetch(cached)? {
                return Err(SourceError::Fetch {
                    url: printable,
                    cause,
                });
            }
        }
        (self.log)("pulling git completed");
        Ok(())
    }

    /// The task's pinned commit (`script.version_num` as a commit id) when the vcs cache entry
    /// already holds it (`git cat-file -e <sha>^{commit}`); a branch or tag is never trusted.
    fn pinned_commit_cached(&self, script: &ScriptInfo, cached: &Path) -> Option<String> {
        let version = script.version_num.trim();
        let is_commit_id =
            (7..=64).contains(&version.len()) && version.chars().all(|c| c.is_ascii_hexdigit());
        if !is_commit_id {
            return None;
        }
        self.query(
            &["cat-file", "-e", &format!("{version}^{{commit}}")],
            cached,
        )
        .map(|_| version.to_string())
    }

    /// Mirrors repo.py: clone_repository_cached.
    fn clone_cached(
        &self,
        script: &ScriptInfo,
        target_root: &Path,
    ) -> Result<RepoInfo, SourceError> {
        let name = confined::file_name(
            "the repository folder name",
            &repo_folder_name(&self.original),
        )
        .map_err(|_| SourceError::BadRepository {
            url: scrub_url(&self.original),
            why: format!(
                "its folder name {:?} is not a plain name; fix the task's script.repository",
                repo_folder_name(&self.original)
            ),
        })?;
        let target = target_root.join(&name);
        let printable = scrub_url(&self.original);
        if self.opts.standalone {
            (self.log)(&format!(
                "standalone mode: using the code in {}",
                target.display()
            ));
        } else if let Some(cache_root) = &self.opts.vcs_cache {
            fs::create_dir_all(cache_root)
                .map_err(io_err(format!("creating {}", cache_root.display())))?;
            let mut key = md5_hex(&self.original);
            (self.log)(&format!(
                "INFO: acquiring [timeout={}s] lock for repo cache folder",
                REPO_LOCK_TIMEOUT.as_secs()
            ));
            let lock_path = cache_root.join(format!("{key}.lock"));
            let _lock = match lock::with_timeout(&lock_path, REPO_LOCK_TIMEOUT, false).map_err(
                |cause| SourceError::Io {
                    context: "the vcs cache lock".into(),
                    cause,
                },
            )? {
                Some(l) => Some(l),
                None => {
                    (self.log)(&format!(
                        "Could not lock cache folder \"{name}\" (timeout {} sec), using temp vcs cache.",
                        REPO_LOCK_TIMEOUT.as_secs()
                    ));
                    key = format!("{key}_{}", rand::random::<u64>());
                    None
                }
            };
            let cached = cache_root.join(format!("{name}.{key}")).join(&name);
            if cached.exists() {
                (self.log)(&format!(
                    "Using cached repository in \"{}\"",
                    cached.display()
                ));
            } else {
                (self.log)(&format!("cloning: {printable}"));
                self.clone_into(&cached)?;
            }
            if let Some(commit) = self.pinned_commit_cached(script, &cached) {
                // Beyond the Python agent (repo.py: clone_repository_cached always pulls): a
                // task pinned to a commit the cache already holds needs nothing from the remote.
                (self.log)(&format!(
                    "commit {commit} found in the vcs cache, skipping git fetch"
                ));
            } else {
                self.pull_cached(&cached, &printable)?;
            }
            remove_dir_if_exists(target_root)?;
            copy_tree(&cached, &target).map_err(|cause| SourceError::CopyCache {
                from: cached.clone(),
                to: target.clone(),
                cause,
            })?;
            self.checkout(script, &target)?;
        } else {
            (self.log)(&format!("cloning: {printable}"));
            self.clone_into(&target)?;
            self.checkout(script, &target)?;
        }
        self.forget_credentials(&target)?;
        // one `git rev-parse` for the three facts (a spawn each is the warm path's cost)
        let facts = self
            .query(
                &[
                    "rev-parse",
                    "--show-toplevel",
                    "HEAD",
                    "--abbrev-ref",
                    "HEAD",
                ],
                &target,
            )
            .unwrap_or_default();
        let mut facts = facts.lines().map(str::trim);
        let root = facts
            .next()
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| target.clone());
        let commit = facts.next().unwrap_or_default().to_string();
        let branch = facts.next().unwrap_or_default().to_string();
        Ok(RepoInfo {
            url: printable,
            branch,
            commit,
            root,
        })
    }

    /// Removes credentials that went into the URL from the checkout's `.git/config` (the
    /// checkout is the task's, mounted into its container). The vcs cache keeps them: it is the
    /// agent's and is fetched again.
    fn forget_credentials(&self, dir: &Path) -> Result<(), SourceError> {
        if self.opts.standalone {
            return Ok(());
        }
        let clean = without_credentials(&self.url);
        if clean == self.url {
            return Ok(());
        }
        if let Err(cause) = self.run(
            &["remote", "set-url", "origin", "--", &clean],
            Some(dir),
            None,
        )? {
            return Err(SourceError::Io {
                context: "removing the credentials from the checkout's .git/config".into(),
                cause: io::Error::other(cause),
            });
        }
        Ok(())
    }

    /// Revision order: version_num > tag > origin/<branch> (origin/master, origin/main without one).
    /// Mirrors repo.py: VcsFactory.create and Git.checkout.
    fn checkout(&self, script: &ScriptInfo, dir: &Path) -> Result<(), SourceError> {
        let revisions = revisions(script)?;
        let mut last = String::new();
        let mut done = false;
        for rev in &revisions {
            match self.run(&["checkout", "--force", rev, "--"], Some(dir), None)? {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(cause) => last = cause,
            }
        }
        if !done {
            return Err(SourceError::Checkout {
                rev: revisions.join(" or "),
                cause: last,
            });
        }
        // without a `.gitmodules` there is nothing to update: no git spawned (the warm path)
        if fs::symlink_metadata(dir.join(".gitmodules")).is_err() {
            return Ok(());
        }
        // failures are ignored, as in Git.checkout
        if let Err(cause) = self.run(&["submodule", "update", "--recursive"], Some(dir), None)? {
            (self.log)(&format!("WARNING: git submodule update failed: {cause}"));
        }
        Ok(())
    }

    /// `git apply --unidiff-zero` with the diff on stdin; files named by `--- a/<path>` are created first.
    /// Mirrors repo.py: VCS.patch and worker.py: Worker.apply_diff.
    fn apply_diff(&self, root: &Beneath, diff: &str) -> Result<(), SourceError> {
        (self.log)("Applying uncommitted changes");
        for line in diff.lines() {
            if let Some(rel) = line.strip_prefix("--- a/") {
                // created beneath the checkout, never through a link (git apply itself refuses
                // to go past links)
                let Ok(rel) = confined::relative("a file the diff names", rel.trim_end()) else {
                    continue;
                };
                if rel.as_os_str().is_empty() || root.exists(&rel) {
                    continue;
                }
                if let Err(e) = root.create_file("a file the diff names", &rel, b"", 0o644) {
                    (self.log)(&format!("WARNING: failed creating file for git diff ({e})"));
                }
            }
        }
        let input = format!("{diff}\n");
        match self.run(
            &["apply", "--unidiff-zero"],
            Some(root.root()),
            Some(input.as_bytes()),
        )? {
            Ok(()) => {
                (self.log)("successfully applied uncommitted changes");
                Ok(())
            }
            Err(cause) => {
                (self.log)("Failed applying diff");
                if cause.to_lowercase().contains("no such file or directory") {
                    (self.log)(
                        "NOTE: files were not found when applying diff, perhaps you forgot to push your changes?",
                    );
                }
                Err(SourceError::ApplyDiff { cause })
            }
        }
    }
}

/// `git` with the settings that keep a task's repository from running anything on this host:
/// no hooks, no fsmonitor, no `ext::` transport, `file://` only when the user (the task's own
/// URL) asks for it, never for submodules. `safe.directory` is scoped to the one folder git
/// works in. The Python agent instead runs `git config --global --replace-all safe.directory '*'`
/// (clearml_agent/helper/repo.py: Git.__init__), which is safe only inside its container.
fn hardened_git(cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    for setting in [
        "protocol.ext.allow=never",
        "protocol.file.allow=user",
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
    ] {
        cmd.arg("-c").arg(setting);
    }
    if let Some(dir) = cwd {
        let mut scoped = OsString::from("safe.directory=");
        scoped.push(dir.as_os_str());
        cmd.arg("-c").arg(scoped);
    }
    cmd
}

/// A revision the task names (`version_num`, `tag`, `branch`): a commit id or a name that
/// `git check-ref-format --allow-onelevel` accepts, never one that git could read as an option.
pub fn check_ref(what: &'static str, value: &str) -> Result<(), SourceError> {
    let bad = value.is_empty()
        || value.starts_with('-')
        || value == "@"
        || value.contains("..")
        || value.contains("@{")
        || value.contains("//")
        || value.ends_with('/')
        || value.ends_with('.')
        || value.ends_with(".lock")
        || value.starts_with('/')
        || value.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        })
        || value
            .split('/')
            .any(|part| part.starts_with('.') || part.ends_with(".lock"));
    if bad {
        return Err(SourceError::BadRef {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// A temporary `GIT_ASKPASS` script answering the username for "Username" prompts and the password
/// otherwise; removed on drop. Mirrors repo.py: Git._git_pass_auth_wrapper.
struct AskPass {
    /// Removed when dropped.
    path: tempfile::TempPath,
}

impl AskPass {
    fn create(user: &str, pass: &str, env: &HashMap<String, String>) -> Result<Self, SourceError> {
        let dir = env
            .get("TMPDIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let quote = |s: &str| {
            shlex::try_quote(s)
                .map(|q| q.into_owned())
                .unwrap_or_else(|_| "''".into())
        };
        let body = format!(
            "#!/bin/sh\ncase \"$1\" in\n  [Uu]*) printf '%s\\n' {} ;;\n  *) printf '%s\\n' {} ;;\nesac\n",
            quote(user),
            quote(pass)
        );
        // Created exclusively, private to this user, executable; closed before git runs it.
        let mut file = tempfile::Builder::new()
            .prefix("clearml_git_")
            .suffix(".sh")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempfile_in(&dir)
            .map_err(io_err(format!(
                "creating the git askpass script in {}",
                dir.display()
            )))?;
        file.write_all(body.as_bytes())
            .map_err(io_err("writing the git askpass script"))?;
        Ok(Self {
            path: file.into_temp_path(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: &str) {}

    #[test]
    fn task_init_moves_below_future_imports() {
        let src = "from clearml import Task\nTask.init()\n# c\nfrom __future__ import (a,\n  b)\nimport os\n";
        assert_eq!(
            move_task_init_below_future(src).as_deref(),
            Some(
                "# c\nfrom __future__ import (a,\n  b)\nfrom clearml import Task\nTask.init()\nimport os\n"
            )
        );
        let doc = "from clearml import Task\nTask.init()\n\"\"\"doc\nstring\"\"\"\nfrom __future__ import x\nprint(1)\n";
        assert_eq!(
            move_task_init_below_future(doc).as_deref(),
            Some(
                "\"\"\"doc\nstring\"\"\"\nfrom __future__ import x\nfrom clearml import Task\nTask.init()\nprint(1)\n"
            )
        );
        assert_eq!(
            move_task_init_below_future("from clearml import Task\nTask.init()\nimport os\n"),
            None
        );
        assert_eq!(
            move_task_init_below_future("from __future__ import x\n"),
            None
        );
    }

    #[test]
    fn literal_script_detection() {
        assert!(!is_literal_script(""));
        assert!(!is_literal_script("diff --git a/x b/x"));
        assert!(!is_literal_script("submodule x\ndiff --git a/x b/x"));
        assert!(is_literal_script("print('hi')\n"));
    }

    #[test]
    fn entry_working_dir_split() {
        assert_eq!(
            split_entry_point("a.py:sub", ""),
            ("a.py".into(), "sub".into())
        );
        assert_eq!(split_entry_point("a.py", "w"), ("a.py".into(), "w".into()));
    }

    #[test]
    fn folder_names() {
        assert_eq!(
            repo_folder_name("https://github.com/org/repo.git"),
            "repo.git"
        );
        assert_eq!(repo_folder_name("git@github.com:org/repo.git"), "repo.git");
        assert_eq!(repo_folder_name("/tmp/x/origin"), "origin");
        assert_eq!(repo_folder_name("file:///tmp/x/origin/"), "origin");
    }

    #[test]
    fn scrubbing() {
        assert_eq!(
            scrub_url("https://u:secret@h.com/a.git"),
            "https://u@h.com/a.git"
        );
        assert_eq!(scrub_url("git@h.com:a.git"), "git@h.com:a.git");
        assert_eq!(
            scrub_url("https://ghp_tok@github.com/o/r.git"),
            "https://********@github.com/o/r.git"
        );
        assert_eq!(scrub_url("ssh://git@h.com/a.git"), "ssh://git@h.com/a.git");
        assert_eq!(
            without_credentials("https://ghp_tok@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            without_credentials("https://u:p@h.com/a.git"),
            "https://h.com/a.git"
        );
    }

    #[test]
    fn refs_that_git_could_read_as_options_are_refused() {
        for good in [
            "main",
            "origin/feature/x",
            "v1.2.3",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_ref("r", good).is_ok(), "{good}");
        }
        for bad in [
            "-x",
            "--pathspec-from-file=/etc/shadow",
            "a..b",
            "HEAD~1",
            "a b",
            "x.lock",
            "a/.hidden",
            "@",
            "a@{1}",
            "/abs",
            "a\nb",
            "",
        ] {
            assert!(check_ref("r", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_repositories() {
        for local in [
            "/srv/repo",
            "./r",
            "../r",
            "file:///srv/r",
            "FILE:/x",
            "ext::sh -c x",
        ] {
            assert!(is_host_repository(local), "{local}");
        }
        for remote in [
            "https://github.com/o/r.git",
            "git@github.com:o/r.git",
            "ssh://git@h/r.git",
            "",
        ] {
            assert!(!is_host_repository(remote), "{remote}");
        }
    }

    #[test]
    fn md5_matches_python() {
        // python3 -c "import hashlib;print(hashlib.md5(b'https://github.com/a/b.git').hexdigest())"
        assert_eq!(
            md5_hex("https://github.com/a/b.git"),
            "8211a74fe1fb6f5e32b89346e362f8c5"
        );
    }

    #[test]
    fn ssh_to_https_with_credentials() {
        let opts = GitOptions {
            git_user: Some("u".into()),
            git_pass: Some("p".into()),
            ..GitOptions::default()
        };
        assert_eq!(
            rewrite_url("git@github.com:org/repo.git", &opts, &quiet),
            "https://github.com/org/repo.git"
        );
        assert_eq!(
            rewrite_url("ssh://git@github.com/org/repo.git", &opts, &quiet),
            "https://github.com/org/repo.git"
        );
        let no_creds = GitOptions::default();
        assert_eq!(
            rewrite_url("git@github.com:org/repo.git", &no_creds, &quiet),
            "git@github.com:org/repo.git"
        );
        let host_only = GitOptions {
            git_host: Some("gitlab.com".into()),
            ..opts.clone()
        };
        assert_eq!(
            rewrite_url("git@github.com:org/repo.git", &host_only, &quiet),
            "git@github.com:org/repo.git"
        );
    }

    #[test]
    fn https_to_ssh_forced() {
        let opts = GitOptions {
            force_git_ssh_protocol: true,
            force_git_ssh_port: Some(2222),
            ..GitOptions::default()
        };
        assert_eq!(
            rewrite_url("https://github.com/org/repo.git", &opts, &quiet),
            "ssh://git@github.com:2222/org/repo.git"
        );
        assert_eq!(
            rewrite_url("ssh://me@github.com/org/repo.git", &opts, &quiet),
            "ssh://git@github.com:2222/org/repo.git"
        );
    }
}
