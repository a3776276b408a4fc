//! The test context: a real test server, a temp HOME with a `clearml.conf` pointing at it, and
//! helpers to run the real `clearml-agent` binary against them and watch tasks on the server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clearml_test_server::{Options, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const AGENT: &str = env!("CARGO_BIN_EXE_clearml-agent");

/// Upper bound for waiting on a task; generous so a loaded CI machine does not flake.
pub(crate) const TASK_TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) struct AgentContext {
    pub server: TestServer,
    pub home: TempDir,
    extra_env: Vec<(String, String)>,
}

pub(crate) struct Builder {
    conf_extra: String,
    env: Vec<(String, String)>,
    db: bool,
    skip_env: bool,
}

impl Builder {
    /// Extra `clearml.conf` text appended after the generated sections.
    pub(crate) fn conf(mut self, text: &str) -> Self {
        self.conf_extra.push_str(text);
        self.conf_extra.push('\n');
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Keep the server state in a SQLite file (so `restart` keeps it).
    pub(crate) fn persistent(mut self) -> Self {
        self.db = true;
        self
    }

    /// Build real venvs for tasks (default: tasks run on the system python, no venv).
    pub(crate) fn with_venvs(mut self) -> Self {
        self.skip_env = false;
        self
    }

    pub(crate) fn build(self) -> AgentContext {
        let home = tempfile::tempdir().expect("temp home");
        let db = self.db.then(|| home.path().join("server.db"));
        let server = TestServer::start(Options {
            db,
            ..Options::default()
        })
        .expect("test server starts");
        let root = home.path();
        std::fs::create_dir_all(root.join("tmp")).expect("tmp dir");
        let conf = format!(
            "api {{\n  api_server: {url}\n  web_server: http://127.0.0.1:1\n  files_server: http://127.0.0.1:1\n  \
             credentials {{ access_key: {key}, secret_key: {secret} }}\n}}\n\
             agent {{\n  venvs_dir: {root}/venvs\n  vcs_cache.path: {root}/vcs\n  venvs_cache.path: {root}/venvs-cache\n  \
             pip_download_cache.path: {root}/pip-download\n  package_manager.pip_version: \"\"\n}}\n{extra}",
            url = server.url(),
            key = server.access_key(),
            secret = server.secret_key(),
            root = root.display(),
            extra = self.conf_extra,
        );
        std::fs::write(root.join("clearml.conf"), conf).expect("write clearml.conf");
        let mut extra_env = self.env;
        if self.skip_env {
            extra_env.push(("CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL".into(), "1".into()));
        }
        AgentContext {
            server,
            home,
            extra_env,
        }
    }
}

impl AgentContext {
    pub(crate) fn builder() -> Builder {
        Builder {
            conf_extra: String::new(),
            env: Vec::new(),
            db: false,
            skip_env: true,
        }
    }

    pub(crate) fn new() -> AgentContext {
        Self::builder().build()
    }

    pub(crate) fn root(&self) -> &Path {
        self.home.path()
    }

    /// The agent binary with this context's HOME, temp dir and a fast poll interval.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(AGENT), args)
    }

    /// As `command`, for another build of the agent (e.g. the one a pip wheel installed).
    pub(crate) fn command_of(&self, binary: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .env("HOME", self.root())
            .env("TMPDIR", self.root().join("tmp"))
            .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "0.5")
            .env_remove("CLEARML_CONFIG_FILE")
            .env_remove("CLEARML_API_HOST")
            .env_remove("CLEARML_WORKER_ID")
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `clearml-agent daemon <args>`; its output goes to a file shown on failure.
    pub(crate) fn daemon(&self, args: &[&str]) -> Daemon {
        self.daemon_of(Path::new(AGENT), args)
    }

    /// As `daemon`, for another build of the agent.
    pub(crate) fn daemon_of(&self, binary: &Path, args: &[&str]) -> Daemon {
        let log = self.root().join(format!("daemon-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).expect("daemon log");
        let mut full = vec!["daemon"];
        full.extend_from_slice(args);
        let child = self
            .command_of(binary, &full)
            .stdout(Stdio::from(file.try_clone().expect("dup")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("agent starts");
        Daemon { child, log }
    }

    /// Starts `clearml-agent slurm <args>` (the Slurm glue); its output goes to a file.
    pub(crate) fn slurm_glue(&self, args: &[&str]) -> Daemon {
        let log = self.root().join(format!("slurm-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).expect("glue log");
        let mut full = vec!["slurm"];
        full.extend_from_slice(args);
        let child = self
            .command(&full)
            .stdout(Stdio::from(file.try_clone().expect("dup")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("glue starts");
        Daemon { child, log }
    }

    /// A task whose code is the literal script `script` (as `clearml-task --script` makes).
    pub(crate) fn script_task(&self, name: &str, script: &str) -> String {
        self.server
            .create_task(json!({
                "name": name,
                "script": {
                    "binary": "python3",
                    "entry_point": "task.py",
                    "working_dir": ".",
                    "diff": script,
                }
            }))
            .expect("create task")
    }

    /// Waits until the task reaches one of `statuses`; panics with the agent log otherwise.
    pub(crate) fn wait_status(
        &self,
        task: &str,
        statuses: &[&str],
        daemon: Option<&Daemon>,
    ) -> Value {
        let deadline = Instant::now() + TASK_TIMEOUT;
        loop {
            let t = self.server.task(task).expect("task");
            if statuses.contains(&t["status"].as_str().unwrap_or_default()) {
                return t;
            }
            if Instant::now() > deadline {
                panic!(
                    "task {task} stayed {} (wanted {statuses:?}); agent log:\n{}",
                    t["status"],
                    daemon.map(Daemon::output).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `pred` holds for the task's log text.
    pub(crate) fn wait_log(
        &self,
        task: &str,
        pred: impl Fn(&str) -> bool,
        daemon: &Daemon,
    ) -> String {
        let deadline = Instant::now() + TASK_TIMEOUT;
        loop {
            let text = self.server.log_text(task).unwrap_or_default();
            if pred(&text) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "log of {task} never matched:\n{text}\nagent log:\n{}",
                    daemon.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A running daemon; stopped with SIGTERM (then SIGKILL) when dropped.
pub(crate) struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM and wait (bounded); returns the exit status code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// True when a process with this pid exists.
pub(crate) fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// Runs git in `dir` with a fixed identity; returns trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A real git repository made by the test: `main` has c1 (`task.py` prints "v1") then c2
/// (prints "v2"); the uncommitted `diff` turns v2's line into "patched".
pub(crate) struct GitRepo {
    _tmp: TempDir,
    pub path: PathBuf,
    pub c1: String,
    pub c2: String,
    /// A diff against c2 as `git diff` prints it.
    pub diff: String,
}

impl GitRepo {
    pub(crate) fn new() -> GitRepo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("origin");
        std::fs::create_dir(&path).expect("mkdir");
        git(&path, &["init", "-q", "-b", "main"]);
        let commit = |text: &str, msg: &str| {
            std::fs::write(path.join("task.py"), text).expect("write");
            git(&path, &["add", "task.py"]);
            git(&path, &["commit", "-q", "-m", msg]);
            git(&path, &["rev-parse", "HEAD"])
        };
        let c1 = commit("print('v1')\n", "one");
        let c2 = commit("print('v2')\n", "two");
        std::fs::write(path.join("task.py"), "print('patched')\n").expect("write");
        let diff = git(&path, &["diff"]) + "\n";
        git(&path, &["checkout", "-q", "--", "task.py"]);
        GitRepo {
            _tmp: tmp,
            path,
            c1,
            c2,
            diff,
        }
    }

    /// The repository URL as a task records it (a `file://` URL).
    pub(crate) fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
}

impl AgentContext {
    /// A task running `task.py` of `repo` at `branch`/`version_num` with `diff` applied.
    pub(crate) fn repo_task(
        &self,
        name: &str,
        repo: &str,
        version_num: &str,
        diff: &str,
    ) -> String {
        self.server
            .create_task(json!({
                "name": name,
                "script": {
                    "binary": "python3",
                    "repository": repo,
                    "branch": "main",
                    "version_num": version_num,
                    "entry_point": "task.py",
                    "working_dir": ".",
                    "diff": diff,
                }
            }))
            .expect("create task")
    }
}
