//! The POSIX shell script that runs inside a task's container: the user's setup lines, a venv
//! made with the image's own python3, the task's requirements, a `pip freeze` between markers
//! (read back by the host), then `exec` of the task's entry point. It only writes text; the
//! code is prepared on the host and mounted (see ARCHITECTURE.md, "Docker mode").
//!
//! mirrors clearml_agent/commands/worker.py: Worker._get_docker_cmd (the bash -c bootstrap) and,
//! for what happens after it, Worker.execute (venv, install, freeze, exec).

/// Start of the begin marker line (the per-run token and ` ===` follow).
const FREEZE_BEGIN: &str = "=== clearml-agent: pip freeze begin";
/// Start of the end marker line.
const FREEZE_END: &str = "=== clearml-agent: pip freeze end";

/// Longest line the freeze capture holds while it waits for its end: no requirement line is
/// this long, so a longer one (inside the markers) abandons the capture.
pub const FREEZE_MAX_LINE: usize = 64 * 1024;
/// Most bytes of frozen requirements kept: past that the capture is abandoned.
pub const FREEZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The marker lines around the `pip freeze` output, with a random token chosen for each run:
/// output of the task that does not know the token cannot start or end the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeMarkers {
    token: String,
}

impl FreezeMarkers {
    /// A fresh random token (128 bits, hex).
    pub fn random() -> Self {
        use rand::Rng;
        let token: u128 = rand::rng().random();
        FreezeMarkers {
            token: format!("{token:032x}"),
        }
    }

    /// The token (to mask it where the script is printed).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn begin(&self) -> String {
        format!("{FREEZE_BEGIN} {} ===", self.token)
    }

    pub fn end(&self) -> String {
        format!("{FREEZE_END} {} ===", self.token)
    }
}

impl Default for FreezeMarkers {
    fn default() -> Self {
        Self::random()
    }
}

/// What the in-container script does.
#[derive(Debug, Clone, Default)]
pub struct ScriptSpec {
    /// `agent.docker_preprocess_bash_script` lines, run first.
    pub preprocess: Vec<String>,
    /// `agent.docker_init_bash_script` lines: replace the built-in system setup when set.
    pub init: Option<Vec<String>>,
    /// `agent.docker_install_opencv_libs`: the built-in setup apt-installs the OpenCV libraries.
    pub opencv_libs: bool,
    /// `(mounted read-only copy, destination)` of the ssh folder, e.g. (`/.ssh`, `~/.ssh`).
    pub ssh_copy: Option<(String, String)>,
    /// `agent.extra_docker_shell_script` lines.
    pub extra_shell_script: Vec<String>,
    /// The task's `container.setup_shell_script` (non-empty, non-comment lines).
    pub setup_shell_script: Vec<String>,
    /// Where the venv is made inside the container (a cached venv is mounted there).
    pub venv_dir: String,
    /// `agent.docker_use_activated_venv`: an image whose `VIRTUAL_ENV` is set runs in that venv.
    pub use_activated_venv: bool,
    /// What a new venv installs, decided as in venv mode (`exec::requirements`).
    pub install: ScriptInstall,
    /// `files {}` of clearml.conf, placed inside the container before the setup scripts run.
    pub files: Vec<ScriptFile>,
    /// The folder where the agent user's `~/.git-credentials` / `~/.gitconfig` are mounted
    /// read-only; copied into the container's home (mirrors `cp -Rf {mount_git_ro} -T ~/`).
    pub git_credentials_copy: Option<String>,
    /// Folder the task starts in.
    pub script_dir: String,
    /// `PYTHONPATH` of the task.
    pub python_path: String,
    /// The entry point's arguments after the interpreter (e.g. `["-u", "train.py"]`).
    pub python_args: Vec<String>,
    /// A shell task (`script.binary` bash/sh): the entry point's argv, run as is.
    pub shell_command: Option<Vec<String>>,
    /// The lines printed around the `pip freeze` output.
    pub freeze_markers: FreezeMarkers,
    /// `build --docker`: the script ends once the venv is ready (the image's command runs the
    /// task, see [`run_lines`]).
    pub build_only: bool,
    /// A notebook entry point (`x.ipynb`), converted to `x.py` with nbconvert before it runs.
    pub notebook: Option<String>,
}

/// The package installs of a new venv: pip pins first (pip only), then the steps of
/// `exec::requirements::install_steps`, every one with the same flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptInstall {
    /// `agent.package_manager.type: uv`: the uv requirement (`uv`, `uv==0.5.0`) installed into the
    /// venv, then `uv pip install` instead of pip.
    pub uv: Option<String>,
    /// `pip<spec>` pins of `agent.package_manager.pip_version` (or the task's own pip line).
    pub pip_pins: Vec<String>,
    /// `--extra-index-url`, `extra_pip_install_flags`, `--upgrade`.
    pub flags: Vec<String>,
    /// Folder the installs run in (the repository, so `-e .` resolves).
    pub cwd: Option<String>,
    pub steps: Vec<ScriptStep>,
    /// The repository's own project install, tried before the steps (which then run only when
    /// it did not install).
    pub project: Option<ScriptProject>,
}

/// A repository's own environment, installed into the container's venv. mirrors
/// Worker._install_uv_requirements / _install_poetry_requirements, run inside the container as
/// the Python agent runs them there.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptProject {
    /// `uv sync` in `dir` (`--locked` with `locked`); `lock_file`: the project has `uv.lock`, so
    /// a failure is retried without `--locked` and then fails the task (else the steps run).
    Uv {
        dir: String,
        locked: bool,
        lock_file: bool,
        extra_args: Vec<String>,
        index_urls: Vec<String>,
    },
    /// `poetry install -n` in `dir` with the venv active; poetry from the image's `PATH` (when no
    /// `spec` is pinned) or installed with pip into `<venv>_poetry`. A failure runs the steps.
    Poetry {
        dir: String,
        spec: Option<String>,
        extra_args: Vec<String>,
    },
}

/// One install: its arguments (`["numpy==1.26"]`, `["-r", "<file>"]`), whether a failure is
/// only a warning, and the main-set file an optional line is then taken out of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptStep {
    pub args: Vec<String>,
    pub optional: bool,
    pub drop_from: Option<String>,
}

/// One `files {}` entry: its bytes in a file of the task folder, copied to `target` (as
/// written in clearml.conf; `~/` is the container's home).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptFile {
    pub source: String,
    pub target: String,
    pub mode: Option<u32>,
    pub overwrite: bool,
}

/// The container's command: the script runs under bash when the image has it, else under sh
/// (mirrors the Python agent, whose container command is `bash -c`). `sh -c LAUNCHER SCRIPT`
/// makes the script `$0` of the launcher.
pub const LAUNCHER: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -c \"$0\"; else exec sh -c \"$0\"; fi";

/// One shell word. A NUL cannot be passed in an argument at all, so it is dropped before quoting
/// (quoting the rest as is keeps every `'` escaped).
fn q(s: &str) -> String {
    let s = s.replace('\0', "");
    match shlex::try_quote(&s) {
        Ok(quoted) => quoted.into_owned(),
        // Unreachable without a NUL; an empty word is still a safe word.
        Err(_) => "''".into(),
    }
}

/// A path that may start with `~/` (as `docker_internal_mounts` values do), for a shell word.
fn home_path(p: &str) -> String {
    match p.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", q(rest)),
        None => q(p),
    }
}

/// Packages of `agent.docker_install_opencv_libs`.
const OPENCV_LIBS: &str = "libsm6 libxext6 libxrender-dev libglib2.0-0";

/// The built-in system setup: make apt keep what it downloads (the host's apt cache is mounted),
/// pick the newest `python3.N` that has pip, and apt-get (else dnf) install what is missing:
/// `python3-pip` and `python3-venv` when no python has pip, the OpenCV libraries when asked.
/// Every line runs whatever the previous one returned. mirrors the default `bash_script` of
/// Worker._get_docker_cmd (git is not needed here: the code is cloned on the host).
fn system_setup(opencv_libs: bool) -> Vec<String> {
    let versions: Vec<String> = (5..=20).rev().map(|v| v.to_string()).collect();
    vec![
        "if [ -d /etc/apt/apt.conf.d ]; then echo 'Binary::apt::APT::Keep-Downloaded-Packages \"true\";' > /etc/apt/apt.conf.d/docker-clean 2>/dev/null; fi".into(),
        "export DEBIAN_FRONTEND=noninteractive".into(),
        format!(
            "CLEARML_APT_INSTALL=\"${{CLEARML_APT_INSTALL:-}}{}\"",
            if opencv_libs { format!(" {OPENCV_LIBS}") } else { String::new() }
        ),
        format!(
            "for i in {}; do if command -v python3.$i >/dev/null 2>&1 && python3.$i -m pip --version >/dev/null 2>&1; then CLEARML_PY=python3.$i; break; fi; done",
            versions.join(" ")
        ),
        "if [ -z \"$CLEARML_PY\" ]; then CLEARML_APT_INSTALL=\"$CLEARML_APT_INSTALL python3-pip python3-venv\"; fi".into(),
        "if [ -n \"$CLEARML_APT_INSTALL\" ]; then echo \"clearml-agent: installing$CLEARML_APT_INSTALL\"; (apt-get update -y && apt-get install -y $CLEARML_APT_INSTALL) || dnf install -y $CLEARML_APT_INSTALL; fi".into(),
        // PEP 668: the image's python may refuse pip installs outside a venv.
        "rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED 2>/dev/null".into(),
    ]
}

/// A user's `docker_init_bash_script` / `docker_preprocess_bash_script` line: the Python agent
/// formats these with `str.format`, so `{python_single_digit}` and `{python}` name the
/// interpreter and doubled braces stand for one.
fn user_line(line: &str) -> String {
    line.replace("{python_single_digit}", "python3")
        .replace("{python}", "python3")
        .replace("{{", "{")
        .replace("}}", "}")
}

/// The shell lines of the installs (each failing one ends the script, an optional one warns).
fn install_lines(install: &ScriptInstall) -> Vec<String> {
    let mut out = Vec::new();
    if install.pip_pins.is_empty()
        && install.steps.is_empty()
        && install.uv.is_none()
        && install.project.is_none()
    {
        return out;
    }
    let flags: Vec<String> = install.flags.iter().map(|f| q(f)).collect();
    let pip = |args: &[String]| {
        format!(
            "\"$CLEARML_VENV\"/bin/python -m pip install --disable-pip-version-check {}{}",
            args.iter().map(|a| q(a)).collect::<Vec<_>>().join(" "),
            flags.iter().map(|f| format!(" {f}")).collect::<String>()
        )
    };
    let fail = |what: &str| {
        format!(
            "{{ echo {} >&2; exit 1; }}",
            q(&format!("clearml-agent: installing {what} failed"))
        )
    };
    if let Some(dir) = &install.cwd {
        out.push(format!("cd {} || exit 1", q(dir)));
    }
    if !install.pip_pins.is_empty() {
        // The venv shares the image's pip; the pin installs another only when that one does
        // not satisfy it.
        out.push(format!("{} || {}", pip(&install.pip_pins), fail("pip")));
    }
    type Render<'a> = Box<dyn Fn(&[String]) -> String + 'a>;
    let run: Render<'_> = match &install.uv {
        Some(uv) => {
            out.push(format!(
                "{} || {}",
                pip(std::slice::from_ref(uv)),
                fail("uv")
            ));
            let flags = flags.clone();
            Box::new(move |args: &[String]| {
                format!(
                    "\"$CLEARML_VENV\"/bin/uv pip install --python \"$CLEARML_VENV\"/bin/python {}{}",
                    args.iter().map(|a| q(a)).collect::<Vec<_>>().join(" "),
                    flags.iter().map(|f| format!(" {f}")).collect::<String>()
                )
            })
        }
        None => Box::new(pip),
    };
    // With a project the steps run only when it did not install.
    let guard = |line: String| -> String {
        if install.project.is_some() {
            format!("if [ \"$CLEARML_PROJECT\" != 1 ]; then {line}; fi")
        } else {
            line
        }
    };
    if let Some(project) = &install.project {
        out.extend(project_lines(project, &fail));
    }
    for step in &install.steps {
        let what = step.args.join(" ");
        let on_failure = match (&step.optional, &step.drop_from) {
            (true, Some(main)) => format!(
                "{{ echo {}; grep -vxF -- {} {main} > {main}.kept; mv {main}.kept {main}; }}",
                q(&format!(
                    "WARNING: optional package {what} was not installed"
                )),
                q(&what),
                main = q(main)
            ),
            (true, None) => format!(
                "echo {}",
                q(&format!(
                    "WARNING: optional package {what} was not installed"
                ))
            ),
            (false, _) => fail(&what),
        };
        out.push(guard(format!("{} || {on_failure}", run(&step.args))));
    }
    out
}

/// The shell lines of a project install; they set `CLEARML_PROJECT=1` when it installed.
fn project_lines(project: &ScriptProject, fail: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = vec!["CLEARML_PROJECT=0".to_string()];
    match project {
        ScriptProject::Uv {
            dir,
            locked,
            lock_file,
            extra_args,
            index_urls,
        } => {
            let sync = |locked: bool| {
                let mut words = vec!["sync".to_string()];
                if locked {
                    words.push("--locked".into());
                }
                words.extend(extra_args.iter().cloned());
                for url in index_urls {
                    words.extend(["--extra-index-url".to_string(), url.clone()]);
                }
                format!(
                    "(cd {} && UV_PROJECT_ENVIRONMENT=\"$CLEARML_VENV\" \"$CLEARML_VENV\"/bin/uv {})",
                    q(dir),
                    words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ")
                )
            };
            out.push(
                "echo 'UV Enabled: Ignoring requested python packages, using repository uv lock file!'"
                    .into(),
            );
            let otherwise = if *lock_file {
                format!(
                    "echo 'INFO: failed installing using lock file, trying without'; {} && CLEARML_PROJECT=1 || {}",
                    sync(false),
                    fail("the uv project")
                )
            } else {
                "echo 'Reverting to UV as pip replacement - installing from Task requirements or git requirements.txt'".to_string()
            };
            out.push(format!(
                "if {}; then CLEARML_PROJECT=1; else {otherwise}; fi",
                sync(*locked && *lock_file)
            ));
        }
        ScriptProject::Poetry {
            dir,
            spec,
            extra_args,
        } => {
            let side = "\"$CLEARML_VENV\"_poetry";
            let install = format!(
                "{{ echo {}; \"$CLEARML_PY\" -m venv {side} && {side}/bin/python -m pip install --disable-pip-version-check {} --upgrade && CLEARML_POETRY={side}/bin/poetry; }}",
                q(&format!(
                    "Installing / Upgrading Poetry package to {}",
                    spec.as_deref()
                        .and_then(|s| s.strip_prefix("poetry"))
                        .filter(|v| !v.is_empty())
                        .unwrap_or("latest")
                )),
                q(spec.as_deref().unwrap_or("poetry"))
            );
            if spec.is_none() {
                out.push("CLEARML_POETRY=$(command -v poetry 2>/dev/null)".into());
                out.push(format!(
                    "if [ -n \"$CLEARML_POETRY\" ]; then echo 'Notice: Poetry was found, no specific version required, skipping poetry installation'; else {install}; fi"
                ));
            } else {
                out.push(format!("CLEARML_POETRY=''; {install}"));
            }
            let mut words = vec!["install".to_string(), "-n".to_string()];
            words.extend(extra_args.iter().cloned());
            out.push(format!(
                "if [ -n \"$CLEARML_POETRY\" ]; then echo 'Poetry Enabled: Ignoring requested python packages, using repository poetry lock file!'; \
                 if (cd {} && VIRTUAL_ENV=\"$CLEARML_VENV\" PATH=\"$CLEARML_VENV/bin:$PATH\" \"$CLEARML_POETRY\" {}); then CLEARML_PROJECT=1; \
                 else echo 'failed installing poetry requirements'; fi; \
                 else echo 'failed installing poetry requirements: poetry could not be installed'; fi",
                q(dir),
                words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ")
            ));
        }
    }
    out
}

/// The script, for `sh -c`.
pub fn render(spec: &ScriptSpec) -> String {
    let mut s: Vec<String> = Vec::new();
    s.push("echo 'clearml-agent: setting up the task inside the container'".into());
    s.push("CLEARML_PY=''".into());
    s.extend(
        spec.preprocess
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(user_line),
    );
    match &spec.init {
        Some(lines) => s.extend(
            lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .map(user_line),
        ),
        None => s.extend(system_setup(spec.opencv_libs)),
    }
    if let Some((ro, dst)) = &spec.ssh_copy {
        // mirrors the bootstrap's `cp -Rf /.ssh -T ~/.ssh` (without GNU-only flags).
        s.push(format!(
            "mkdir -p {dst} && cp -Rf {ro}/. {dst}/ && chmod 700 {dst}",
            dst = home_path(dst),
            ro = q(ro)
        ));
    }
    if let Some(ro) = &spec.git_credentials_copy {
        // mirrors `cp -Rf {mount_git_ro} -T ~/` of Worker._get_docker_cmd.
        s.push(format!("cp -Rf {}/. \"$HOME\"/ 2>/dev/null || true", q(ro)));
    }
    for file in &spec.files {
        let target = home_path(&file.target);
        let mut line = format!(
            "mkdir -p \"$(dirname {target})\" && cp {} {target}",
            q(&file.source)
        );
        if let Some(mode) = file.mode {
            line.push_str(&format!(" && chmod {mode:o} {target}"));
        }
        if !file.overwrite {
            line = format!("[ -e {target} ] || {{ {line}; }}");
        }
        s.push(format!(
            "{line} || echo {}",
            q(&format!("clearml-agent: could not create {}", file.target))
        ));
    }
    for line in spec
        .extra_shell_script
        .iter()
        .chain(&spec.setup_shell_script)
    {
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            s.push(line.to_string());
        }
    }
    s.push(format!(
        "CLEARML_VENV={}; CLEARML_OWN_VENV=1",
        q(&spec.venv_dir)
    ));
    s.push(
        "if [ -z \"$CLEARML_PY\" ]; then for p in python3 python; do if command -v \"$p\" >/dev/null 2>&1; then CLEARML_PY=\"$p\"; break; fi; done; fi".into(),
    );
    s.push(
        "if [ -z \"$CLEARML_PY\" ]; then echo 'clearml-agent: the image has no python3 on PATH and installing it failed; use an image with python3, or install it with agent.docker_init_bash_script' >&2; exit 1; fi".into(),
    );
    if spec.use_activated_venv {
        // mirrors agent.docker_use_activated_venv: an image's own activated venv is used as is.
        s.push(
            "if [ -n \"$VIRTUAL_ENV\" ] && [ -x \"$VIRTUAL_ENV/bin/python\" ]; then CLEARML_VENV=\"$VIRTUAL_ENV\"; CLEARML_OWN_VENV=0; echo \"clearml-agent: using the image's venv $VIRTUAL_ENV\"; fi".into(),
        );
    }
    let mut build: Vec<String> = vec![
        // The image's pip (if any) serves the venv through its system site-packages, which
        // saves bootstrapping pip into every venv.
        "if [ \"$CLEARML_OWN_VENV\" = 1 ]; then if \"$CLEARML_PY\" -m pip --version >/dev/null 2>&1; then \"$CLEARML_PY\" -m venv --system-site-packages --without-pip \"$CLEARML_VENV\"; \
         else \"$CLEARML_PY\" -m venv --system-site-packages \"$CLEARML_VENV\"; fi || { echo \"clearml-agent: cannot create the venv $CLEARML_VENV\" >&2; exit 1; }; fi".to_string(),
    ];
    build.extend(install_lines(&spec.install));
    build.push(
        "if [ \"$CLEARML_OWN_VENV\" = 1 ]; then touch \"$CLEARML_VENV/.clearml-agent-ready\"; fi"
            .into(),
    );
    // A venv from the cache (mounted by the host, keyed by image and requirements) is reused.
    s.push(format!(
        "if [ -f \"$CLEARML_VENV/.clearml-agent-ready\" ]; then echo \"clearml-agent: reusing the venv $CLEARML_VENV\"; else\n{}\nfi",
        build.join("\n")
    ));
    s.push(format!(
        "echo {}; \"$CLEARML_VENV\"/bin/python -m pip freeze --disable-pip-version-check 2>/dev/null; echo {}",
        q(&spec.freeze_markers.begin()),
        q(&spec.freeze_markers.end())
    ));
    if spec.build_only {
        s.push("echo 'clearml-agent: the environment is built'".into());
        s.push("exit 0".into());
    } else {
        s.extend(run_lines(spec));
    }
    s.join("\n")
}

/// The command of an image `build --docker` made: the venv chosen as the build chose it, then
/// [`run_lines`].
pub fn image_command(spec: &ScriptSpec) -> String {
    let mut s = vec![format!("CLEARML_VENV={}", q(&spec.venv_dir))];
    if spec.use_activated_venv {
        s.push(
            "if [ -n \"$VIRTUAL_ENV\" ] && [ -x \"$VIRTUAL_ENV/bin/python\" ]; then CLEARML_VENV=\"$VIRTUAL_ENV\"; fi"
                .into(),
        );
    }
    s.extend(run_lines(spec));
    s.join("\n")
}

/// The lines that start the task once its venv (`$CLEARML_VENV`) is ready: the image command of
/// `build --docker` (with `CLEARML_VENV` set before them) and the end of the task's script.
pub fn run_lines(spec: &ScriptSpec) -> Vec<String> {
    let mut s = vec![
        format!(
            "cd {} || {{ echo 'clearml-agent: the task folder is missing' >&2; exit 1; }}",
            q(&spec.script_dir)
        ),
        format!("export PYTHONPATH={}", q(&spec.python_path)),
        ". \"$CLEARML_VENV\"/bin/activate".into(),
    ];
    if let Some(notebook) = &spec.notebook {
        s.push(format!(
            "\"$CLEARML_VENV\"/bin/python -m nbconvert --to python {nb} || {{ echo {} >&2; exit 1; }}",
            q(&format!("Failed converting jupyter notebook: {notebook}")),
            nb = q(notebook)
        ));
    }
    s.push("echo 'Starting Task Execution:'".into());
    let argv: Vec<String> = match &spec.shell_command {
        Some(cmd) => cmd.iter().map(|a| q(a)).collect(),
        None => std::iter::once("\"$CLEARML_VENV\"/bin/python".to_string())
            .chain(spec.python_args.iter().map(|a| q(a)))
            .collect(),
    };
    s.push(format!("exec {}", argv.join(" ")));
    s
}

/// What the freeze capture found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freeze {
    /// The frozen requirements, between the markers.
    Captured(String),
    /// The capture was given up (the reason, for one warning line in the task log).
    Abandoned(String),
}

/// Collects the frozen requirements from the container's output, line by line, in bounded
/// memory whatever the container prints: a partial line is held up to [`FREEZE_MAX_LINE`] (longer
/// ones are skipped outside the markers and abandon the capture inside them), the captured lines
/// up to [`FREEZE_MAX_BYTES`]. Each byte is looked at once. The begin marker is taken once; after
/// the end marker (or once abandoned) the capture ignores everything.
#[derive(Debug)]
pub struct FreezeCapture {
    begin: Vec<u8>,
    end: Vec<u8>,
    partial: Vec<u8>,
    /// The current line is over-long and not kept: skip to its end.
    skipping: bool,
    inside: bool,
    /// The captured lines, joined with `\n` (one buffer: a line costs its bytes, not an
    /// allocation of its own).
    captured: String,
    done: bool,
}

impl FreezeCapture {
    pub fn new(markers: &FreezeMarkers) -> Self {
        FreezeCapture {
            begin: markers.begin().into_bytes(),
            end: markers.end().into_bytes(),
            partial: Vec::new(),
            skipping: false,
            inside: false,
            captured: String::new(),
            done: false,
        }
    }

    /// Feeds output; returns the outcome once (the frozen requirements at the end marker, or why
    /// the capture was given up), then `None` for ever.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Freeze> {
        let mut rest = bytes;
        while !self.done && !rest.is_empty() {
            let (piece, line_end) = match rest.iter().position(|b| *b == b'\n') {
                Some(pos) => (&rest[..pos], true),
                None => (rest, false),
            };
            rest = &rest[(piece.len() + usize::from(line_end)).min(rest.len())..];
            if !self.skipping && self.partial.len() + piece.len() > FREEZE_MAX_LINE {
                if self.inside {
                    return Some(self.abandon(format!(
                        "a line of over {} KiB between the pip freeze markers",
                        FREEZE_MAX_LINE / 1024
                    )));
                }
                self.skipping = true;
                self.partial = Vec::new();
            }
            if !self.skipping {
                self.partial.extend_from_slice(piece);
            }
            if line_end {
                if self.skipping {
                    self.skipping = false;
                } else if let Some(outcome) = self.line() {
                    return Some(outcome);
                }
                self.partial.clear();
            }
        }
        None
    }

    /// One complete line is in `partial`.
    fn line(&mut self) -> Option<Freeze> {
        let mut raw: &[u8] = &self.partial;
        while let [head @ .., last] = raw
            && last.is_ascii_whitespace()
        {
            raw = head;
        }
        if !self.inside {
            if raw == self.begin.as_slice() {
                self.inside = true;
            }
            return None;
        }
        if raw == self.end.as_slice() {
            self.done = true;
            self.partial = Vec::new();
            return Some(Freeze::Captured(std::mem::take(&mut self.captured)));
        }
        if self.captured.len() + raw.len() + 1 > FREEZE_MAX_BYTES {
            return Some(self.abandon(format!(
                "over {} MiB between the pip freeze markers",
                FREEZE_MAX_BYTES / (1024 * 1024)
            )));
        }
        if !self.captured.is_empty() {
            self.captured.push('\n');
        }
        self.captured.push_str(&String::from_utf8_lossy(raw));
        None
    }

    fn abandon(&mut self, why: String) -> Freeze {
        self.done = true;
        self.partial = Vec::new();
        self.captured = String::new();
        Freeze::Abandoned(format!(
            "clearml-agent: the frozen requirements are not recorded: {why}"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_setup_then_venv_then_task() {
        let s = render(&ScriptSpec {
            preprocess: vec!["echo pre".into()],
            init: None,
            opencv_libs: true,
            ssh_copy: Some(("/.ssh".into(), "~/.ssh".into())),
            extra_shell_script: vec!["echo extra".into()],
            setup_shell_script: vec!["# comment".into(), "echo setup".into()],
            venv_dir: "/root/.clearml/venvs-builds/task".into(),
            use_activated_venv: true,
            install: ScriptInstall {
                uv: None,
                pip_pins: vec!["pip<22.3".into()],
                flags: vec!["--extra-index-url".into(), "http://idx/simple".into()],
                cwd: Some("/w/repo".into()),
                steps: vec![
                    ScriptStep {
                        args: vec!["numpy".into()],
                        ..ScriptStep::default()
                    },
                    ScriptStep {
                        args: vec!["pygobject".into()],
                        optional: true,
                        drop_from: Some("/w/req.txt".into()),
                    },
                    ScriptStep {
                        args: vec!["-r".into(), "/w/req.txt".into()],
                        ..ScriptStep::default()
                    },
                ],
                project: None,
            },
            files: vec![ScriptFile {
                source: "/w/files/0".into(),
                target: "~/.config/x.json".into(),
                mode: Some(0o600),
                overwrite: false,
            }],
            git_credentials_copy: Some("/.ssh.git".into()),
            script_dir: "/w/code".into(),
            python_path: "/w/code:".into(),
            python_args: vec!["-u".into(), "my task.py".into()],
            shell_command: None,
            freeze_markers: FreezeMarkers::random(),
            build_only: false,
            notebook: Some("my nb.ipynb".into()),
        });
        let pos = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        assert!(pos("echo pre") < pos("python3.$i -m pip --version"));
        assert!(pos("python3.$i -m pip --version") < pos("apt-get install -y"));
        assert!(s.contains(OPENCV_LIBS));
        assert!(pos("apt-get install -y") < pos("cp -Rf /.ssh"));
        assert!(pos("cp -Rf /.ssh/. \"$HOME\"/.ssh/") < pos("echo extra"));
        assert!(pos("echo extra") < pos("echo setup"));
        assert!(!s.contains("# comment"));
        assert!(pos("echo setup") < pos("-m venv"));
        assert!(pos("-m venv") < pos("cd /w/repo"));
        assert!(
            pos("cd /w/repo")
                < pos(
                    "install --disable-pip-version-check 'pip<22.3' --extra-index-url http://idx/simple"
                )
        );
        assert!(pos("'pip<22.3'") < pos("check numpy --extra-index-url"));
        assert!(pos("check numpy") < pos("check pygobject"));
        assert!(s.contains("grep -vxF -- pygobject /w/req.txt"), "{s}");
        assert!(pos("check pygobject") < pos("-r /w/req.txt"));
        assert!(pos("-r /w/req.txt") < pos(FREEZE_BEGIN));
        assert!(pos("cp -Rf /.ssh.git/. \"$HOME\"/") < pos("echo extra"));
        assert!(
            s.contains("[ -e \"$HOME\"/.config/x.json ] || { mkdir -p"),
            "{s}"
        );
        assert!(s.contains("chmod 600 \"$HOME\"/.config/x.json"), "{s}");
        assert!(pos(FREEZE_BEGIN) < pos(FREEZE_END));
        assert!(pos("VIRTUAL_ENV") < pos("-m venv"));
        assert!(s.ends_with("exec \"$CLEARML_VENV\"/bin/python -u 'my task.py'"));
        assert!(
            pos("-m nbconvert --to python 'my nb.ipynb' || ") < pos("Starting Task Execution"),
            "{s}"
        );
    }

    /// The project lines under bash with stand-in `poetry` and `uv` that record their
    /// arguments and environment: poetry from PATH installs with the venv active; a failing
    /// locked uv sync is retried without `--locked`; a failing unlocked one lets the steps run.
    #[test]
    fn project_installs_run_as_the_python_agent_runs_them() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let record = dir.path().join("record");
        let fake = |path: &std::path::Path, fail_locked: bool| {
            let body = format!(
                "#!/bin/sh\necho \"$(basename \"$0\") $* | $VIRTUAL_ENV | $UV_PROJECT_ENVIRONMENT | $(pwd)\" >> {}\n{}exit 0\n",
                record.display(),
                if fail_locked {
                    "case \"$*\" in *--locked*) exit 1;; esac\n"
                } else {
                    ""
                }
            );
            std::fs::write(path, body).unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(path)
                .status()
                .unwrap();
        };
        fake(&bin.join("poetry"), false);
        fake(&venv.join("bin/uv"), true);
        let fail = |what: &str| format!("{{ echo failed {what}; exit 1; }}");
        let run = |project: ScriptProject| -> String {
            let script = format!(
                "CLEARML_VENV={}; CLEARML_PY=python3\n{}\necho PROJECT=$CLEARML_PROJECT",
                venv.display(),
                project_lines(&project, &fail).join("\n")
            );
            let out = std::process::Command::new("bash")
                .args(["-c", &script])
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let work = dir.path().display().to_string();
        let out = run(ScriptProject::Poetry {
            dir: work.clone(),
            spec: None,
            extra_args: vec!["--only".into(), "main".into()],
        });
        assert!(out.contains("PROJECT=1"), "{out}");
        assert!(out.contains("Notice: Poetry was found"), "{out}");
        let rec = std::fs::read_to_string(&record).unwrap();
        assert_eq!(
            rec.trim(),
            format!(
                "poetry install -n --only main | {} |  | {work}",
                venv.display()
            )
        );
        std::fs::remove_file(&record).unwrap();

        let uv = |lock_file: bool| ScriptProject::Uv {
            dir: work.clone(),
            locked: true,
            lock_file,
            extra_args: vec![],
            index_urls: vec!["http://idx/simple".into()],
        };
        let out = run(uv(true));
        assert!(
            out.contains("INFO: failed installing using lock file, trying without"),
            "{out}"
        );
        assert!(out.contains("PROJECT=1"), "{out}");
        let rec = std::fs::read_to_string(&record).unwrap();
        let v = venv.display();
        assert_eq!(
            rec.lines().collect::<Vec<_>>(),
            [
                format!("uv sync --locked --extra-index-url http://idx/simple |  | {v} | {work}"),
                format!("uv sync --extra-index-url http://idx/simple |  | {v} | {work}"),
            ]
        );
        fake(&venv.join("bin/uv"), false);
        std::fs::write(venv.join("bin/uv"), "#!/bin/sh\nexit 1\n").unwrap();
        let out = run(uv(false));
        assert!(out.contains("Reverting to UV as pip replacement"), "{out}");
        assert!(out.contains("PROJECT=0"), "{out}");
    }

    #[test]
    fn init_script_replaces_the_system_setup() {
        let s = render(&ScriptSpec {
            preprocess: vec!["echo first".into()],
            init: Some(vec![
                "".into(),
                "{python_single_digit} -m pip --version || apt-get install -y {python_single_digit}-pip".into(),
                "echo {{x}}".into(),
            ]),
            opencv_libs: true,
            venv_dir: "/v".into(),
            script_dir: "/w".into(),
            ..ScriptSpec::default()
        });
        assert!(!s.contains("apt-get update"), "{s}");
        assert!(!s.contains(OPENCV_LIBS), "{s}");
        let init = s
            .find("python3 -m pip --version || apt-get install -y python3-pip")
            .unwrap();
        assert!(s.find("echo first").unwrap() < init);
        assert!(s.contains("echo {x}"));
        // Without OpenCV, the built-in setup installs only what a missing python needs.
        let s = render(&ScriptSpec {
            venv_dir: "/v".into(),
            script_dir: "/w".into(),
            ..ScriptSpec::default()
        });
        assert!(!s.contains(OPENCV_LIBS), "{s}");
        assert!(s.contains("python3-pip python3-venv"), "{s}");
    }

    fn markers() -> FreezeMarkers {
        FreezeMarkers {
            token: "t0k".into(),
        }
    }

    #[test]
    fn freeze_is_read_back_across_chunks() {
        let mut c = FreezeCapture::new(&markers());
        assert_eq!(c.feed(b"noise\n=== clearml-agent: pip fr"), None);
        assert_eq!(c.feed(b"eeze begin t0k ===\nsix==1.16\nattrs"), None);
        assert_eq!(
            c.feed(b"==23.1\r\n=== clearml-agent: pip freeze end t0k ===\nlater\n"),
            Some(Freeze::Captured("six==1.16\nattrs==23.1".to_string()))
        );
        assert_eq!(c.feed(b"=== clearml-agent: pip freeze end t0k ===\n"), None);
    }

    #[test]
    fn markers_without_the_token_are_plain_output() {
        let mut c = FreezeCapture::new(&markers());
        let forged = b"=== clearml-agent: pip freeze begin ===\nevil==1\n=== clearml-agent: pip freeze end ===\n";
        assert_eq!(c.feed(forged), None);
        assert_eq!(
            c.feed(b"=== clearml-agent: pip freeze begin other ===\n"),
            None
        );
        assert!(!c.inside);
        // Random tokens differ from run to run.
        assert_ne!(FreezeMarkers::random(), FreezeMarkers::random());
    }

    #[test]
    fn flood_inside_the_markers_abandons_the_capture_once() {
        let mut c = FreezeCapture::new(&markers());
        assert_eq!(
            c.feed(b"=== clearml-agent: pip freeze begin t0k ===\n"),
            None
        );
        let chunk = b"y\n".repeat(32 * 1024);
        let mut outcome = None;
        for _ in 0..200 {
            if let Some(o) = c.feed(&chunk) {
                assert!(outcome.is_none(), "reported twice");
                outcome = Some(o);
            }
            assert!(c.captured.capacity() <= 2 * FREEZE_MAX_BYTES);
        }
        match outcome {
            Some(Freeze::Abandoned(why)) => assert!(why.contains("MiB"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(c.captured.capacity() == 0 && c.partial.capacity() == 0);
    }

    #[test]
    fn long_unterminated_line_is_bounded() {
        // Outside the markers: skipped, and the next real marker still counts.
        let mut c = FreezeCapture::new(&markers());
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..50 {
            assert_eq!(c.feed(&chunk), None);
            assert!(c.partial.len() <= FREEZE_MAX_LINE);
        }
        // The tail of the long line is not a marker even if it looks like one.
        assert_eq!(
            c.feed(b"=== clearml-agent: pip freeze begin t0k ===\n"),
            None
        );
        assert!(!c.inside);
        assert_eq!(
            c.feed(b"=== clearml-agent: pip freeze begin t0k ===\na==1\n=== clearml-agent: pip freeze end t0k ===\n"),
            Some(Freeze::Captured("a==1".into()))
        );
        // Inside: abandoned.
        let mut c = FreezeCapture::new(&markers());
        c.feed(b"=== clearml-agent: pip freeze begin t0k ===\n");
        let mut outcome = None;
        for _ in 0..4 {
            outcome = outcome.or(c.feed(&chunk[..32 * 1024]));
        }
        assert!(matches!(outcome, Some(Freeze::Abandoned(_))), "{outcome:?}");
    }
}
