//! An agent under test: its binary, a private HOME with a `clearml.conf` pointing at the test
//! server, and a running `daemon` whose whole process tree is stopped on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::docker_mode::DockerSetup;
use crate::proctree;

/// Which agent, and where its files live.
pub(crate) struct Agent {
    /// "rust" or "python": also the queue name suffix.
    pub name: &'static str,
    pub binary: PathBuf,
    pub home: tempfile::TempDir,
    pub poll_sec: String,
    /// The clearml-agent wheel offered to the Python agent's containers (docker line only).
    pub agent_wheel: Option<PathBuf>,
    /// `PATH` for the agent, when not the bench's own (`hide_tool`).
    pub path: Option<String>,
}

impl Agent {
    /// A fresh HOME (so every cache starts cold) with a `clearml.conf` for `server_url`. With
    /// `docker`, containers get the host network (the Python agent runs its `execute` inside the
    /// container, which must reach the test server on 127.0.0.1) and pip there is pointed at a
    /// local wheel folder, since containers here reach no package index; both agents get the
    /// same arguments.
    pub(crate) fn new(
        name: &'static str,
        binary: &Path,
        server_url: &str,
        poll_sec: &str,
        docker: Option<&DockerSetup>,
    ) -> anyhow::Result<Agent> {
        let home = tempfile::Builder::new()
            .prefix(&format!("clearml-bench-{name}-"))
            .tempdir()
            .context("temp HOME")?;
        let root = home.path().display().to_string();
        fs::create_dir_all(home.path().join("tmp"))?;
        let conf = format!(
            "api {{\n  api_server: \"{server_url}\"\n  web_server: \"{server_url}\"\n  files_server: \"{server_url}\"\n  \
             credentials {{ access_key: \"test-access-key\", secret_key: \"test-secret-key\" }}\n}}\n\
             agent {{\n  worker_name: \"bench-{name}\"\n  package_manager {{ type: pip, pip_version: \"\" }}\n  \
             venvs_dir: \"{root}/venvs-builds\"\n  vcs_cache.path: \"{root}/vcs-cache\"\n  \
             venvs_cache {{ max_entries: 10, free_space_threshold_gb: 0.5, path: \"{root}/venvs-cache\" }}\n  \
             pip_download_cache.path: \"{root}/pip-download-cache\"\n}}\n\
             sdk {{ development {{ report_use_subprocess: false }} }}\n"
        );
        let conf = match docker {
            Some(d) => format!(
                "{conf}agent.extra_docker_arguments: [\"--network\", \"host\", \"-v\", \"{}:/wheels:ro\", \
                 \"-e\", \"PIP_FIND_LINKS=/wheels\", \"-e\", \"PIP_NO_INDEX=1\"]\n\
                 agent.docker_install_opencv_libs: false\n",
                d.wheels.display()
            ),
            None => conf,
        };
        fs::write(home.path().join("clearml.conf"), conf)?;
        Ok(Agent {
            name,
            binary: binary.to_path_buf(),
            home,
            poll_sec: poll_sec.to_string(),
            agent_wheel: docker.map(|d| d.agent_wheel.clone()),
            path: None,
        })
    }

    /// Runs the agent with a `PATH` that holds no `tool` (so it has to install its own).
    pub(crate) fn hide_tool(&mut self, tool: &str) {
        let path = std::env::var("PATH").unwrap_or_default();
        let kept: Vec<&str> = path
            .split(':')
            .filter(|d| !Path::new(d).join(tool).exists())
            .collect();
        self.path = Some(kept.join(":"));
    }

    /// Appends `text` to this agent's `clearml.conf`.
    pub(crate) fn add_conf(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.root().join("clearml.conf"))?;
        f.write_all(text.as_bytes())?;
        Ok(())
    }

    pub(crate) fn queue(&self) -> String {
        format!("bench-{}", self.name)
    }

    pub(crate) fn root(&self) -> &Path {
        self.home.path()
    }

    /// The agent binary with this agent's HOME, temp dir and poll interval.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .env("HOME", self.root())
            .env("TMPDIR", self.root().join("tmp"))
            .env_remove("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC")
            .env_remove("CLEARML_CONFIG_FILE")
            .env_remove("CLEARML_API_HOST")
            .env_remove("CLEARML_API_ACCESS_KEY")
            .env_remove("CLEARML_API_SECRET_KEY")
            .env_remove("CLEARML_WORKER_ID")
            .env_remove("CLEARML_WORKER_NAME")
            .env_remove("VIRTUAL_ENV")
            .stdin(Stdio::null());
        // An empty interval leaves the agent at its shipped default poll.
        if !self.poll_sec.is_empty() {
            cmd.env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", &self.poll_sec);
        }
        // Read by the Python agent only: install this wheel in its containers instead of PyPI's.
        if let Some(w) = &self.agent_wheel {
            cmd.env("FORCE_LOCAL_CLEARML_AGENT_WHEEL", w);
        }
        if let Some(p) = &self.path {
            cmd.env("PATH", p);
        }
        cmd
    }

    /// Starts `daemon --queue <q> --cpu-only [extra...]`; output goes to `<log_name>` in its HOME.
    pub(crate) fn daemon(&self, extra: &[&str], log_name: &str) -> anyhow::Result<Daemon> {
        let log = self.root().join(log_name);
        let file = fs::File::create(&log)?;
        let queue = self.queue();
        let mut args = vec!["daemon", "--queue", &queue, "--cpu-only"];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        Ok(Daemon { child, log })
    }
}

/// A running daemon.
pub(crate) struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, wait up to 20 s, then SIGKILL whatever is left of the tree.
    pub(crate) fn stop(&mut self) {
        let tree = proctree::tree(self.pid());
        signal("-TERM", &[self.pid()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && self.running() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<i32> = tree.into_iter().filter(|p| proctree::alive(*p)).collect();
        signal("-KILL", &left);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.running() {
            self.stop();
        }
    }
}

/// Sends a signal with kill(1) (keeps this crate free of unsafe and extra dependencies).
pub(crate) fn signal(sig: &str, pids: &[i32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(i32::to_string))
        .stderr(Stdio::null())
        .status();
}
