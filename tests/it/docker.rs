//! Docker mode against the real Docker Engine of the machine: the real binary runs tasks in
//! containers of a test image built locally (no registry), and containers are checked through
//! the engine. These tests fail, not skip, when there is no engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::{AgentContext, Daemon, TASK_TIMEOUT};

/// The test image: Debian bookworm with python3, venv, pip and git (scripts/build-test-image.sh).
pub(crate) const IMAGE: &str = "clearml-agent-test:py3-git";

/// Builds the test image once per machine (cached by tag); panics when Docker is missing.
pub(crate) fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-image.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(IMAGE)
            .output()
            .expect("run scripts/build-test-image.sh");
        assert!(
            out.status.success(),
            "building the docker test image failed (is the Docker Engine running?):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

/// A context whose agents have a worker name of their own: tests run in parallel, and an agent
/// removes the leftover containers of its worker id when it starts.
pub(crate) fn context() -> crate::context::Builder {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "docker-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    // The OpenCV libraries (on by default, as in the Python agent) would make every container
    // run apt-get, which cannot reach a mirror here; the test that checks them turns them on.
    AgentContext::builder()
        .env("CLEARML_WORKER_NAME", &name)
        .conf("agent.docker_install_opencv_libs: false")
}

/// An image without python, made from the test image: its python3 is hidden and a stand-in
/// `apt-get` prints its arguments and, on `install`, puts python3 back (containers here reach
/// no Debian mirror). Built once per machine with the docker CLI; no registry needed.
fn no_python_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    const TAG: &str = "clearml-agent-test:no-python";
    BUILT.get_or_init(|| {
        let apt_get = "#!/bin/sh\necho \"fake apt-get $*\"\n\
                       if [ \"$1\" = install ]; then mv /opt/hidden/python3* /usr/bin/; fi\n";
        derived_image(
            TAG,
            &format!(
                "RUN mkdir -p /opt/hidden && mv /usr/bin/python3* /opt/hidden/ && \
                 printf '{}' > /usr/local/bin/apt-get && chmod +x /usr/local/bin/apt-get\n",
                apt_get.replace('\n', "\\n")
            ),
        );
    });
    TAG
}

/// Builds `tag` from the test image with the Dockerfile lines `body` (after its `FROM`), with
/// the docker CLI; no registry needed.
pub(crate) fn derived_image(tag: &str, body: &str) {
    let dockerfile = format!("FROM {}\n{body}", image());
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build of {tag} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Enqueues `task` on "default" and runs a docker-mode daemon on `image` until the task is
/// completed or failed; returns the task, its log and the daemon, still running.
pub(crate) fn run_to_end(ctx: &AgentContext, task: &str, image: &str) -> (Value, String, Daemon) {
    ctx.server.enqueue(task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", image]);
    let t = ctx.wait_status(task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(task).unwrap();
    (t, log, d)
}

pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ids of all containers (running or not) with `label=value`.
pub(crate) fn containers(label: &str, value: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label={label}={value}"),
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

pub(crate) fn inspect(id: &str) -> Value {
    let v: Value = serde_json::from_str(&docker(&["inspect", id])).unwrap();
    v[0].clone()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TASK_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn docker_task(
    ctx: &AgentContext,
    name: &str,
    script: &str,
    container: Value,
) -> String {
    ctx.server
        .create_task(json!({
            "name": name,
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": script,
            },
            "container": container,
        }))
        .expect("create task")
}

#[test]
fn completed_task_runs_inside_the_image() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "in docker",
        "import os, sys\n\
         print('os:', open('/etc/os-release').read().split()[0])\n\
         print('task id', os.environ['CLEARML_TASK_ID'])\n\
         print('config', os.environ['CLEARML_CONFIG_FILE'], os.path.isfile('/tmp/clearml.conf'))\n\
         print('python', sys.prefix)\n",
        json!({}),
    );
    let (t, log, d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("os: PRETTY_NAME=\"Debian"), "{log}");
    assert!(log.contains(&format!("task id {task}")), "{log}");
    assert!(log.contains("config /tmp/clearml.conf True"), "{log}");
    assert!(
        log.contains("python /root/.clearml/venvs-builds/task"),
        "{log}"
    );
    assert!(log.contains("Executing: docker run"), "{log}");
    assert!(log.contains("Process completed successfully"), "{log}");
    // The default image is written back to the task, and the freeze recorded.
    assert_eq!(t["container"]["image"], img);
    // In the Python agent's shape (as venv mode records it): `pip` a list of lines.
    assert!(t["script"]["requirements"]["pip"].is_array(), "{t}");
    assert!(containers("clearml-task-id", &task).is_empty());
}

/// The agent reads the container's output attached, not from the engine's log: a task that prints
/// faster than the agent ships loses no line even where the engine's log driver rotates its files
/// (this machine's `json-file` keeps 3 x 10 MiB; the task prints ~60 MiB). Each line is 1 KiB of
/// padding, `\r`, then its number: the task log gets just the numbers
/// (`agent.suppress_carriage_return`), all of them, in order.
#[test]
fn fast_output_loses_no_line_past_the_engines_log_rotation() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "fast printer",
        "import sys\n\
         pad = b'x' * 1000 + b'\\r'\n\
         w = sys.stdout.buffer.write\n\
         for i in range(60000):\n    w(pad + b'n%d\\n' % i)\n\
         sys.stdout.flush()\n\
         print('printed all')\n",
        json!({}),
    );
    let (t, log, d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{}", d.output());
    let numbers: Vec<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix('n').and_then(|n| n.parse().ok()))
        .collect();
    let first_gap = numbers
        .iter()
        .enumerate()
        .find(|(i, n)| **n as usize != *i)
        .map(|(i, n)| format!("line {i} is n{n}"));
    assert_eq!(numbers.len(), 60000, "first gap: {first_gap:?}");
    assert_eq!(first_gap, None);
    assert!(log.contains("printed all"), "{}", d.output());
}

#[test]
fn exit_code_fails_the_task_and_removes_the_container() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "exit three",
        "import sys\nprint('about to fail')\nsys.exit(3)\n",
        json!({}),
    );
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "failed");
    assert_eq!(t["status_reason"], "worker execution exit code 3");
    assert!(log.contains("about to fail"), "{log}");
    assert!(containers("clearml-task-id", &task).is_empty());
}

#[test]
fn stop_request_stops_and_removes_the_container() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "long",
        "import time\nprint('running', flush=True)\ntime.sleep(300)\n",
        json!({}),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    ctx.wait_log(&task, |l| l.contains("running"), &d);
    let ids = containers("clearml-task-id", &task);
    assert_eq!(ids.len(), 1);
    assert_eq!(inspect(&ids[0])["State"]["Running"], true);
    ctx.server
        .call("tasks.stop", json!({"task": task}))
        .unwrap();
    let t = ctx.wait_status(&task, &["stopped"], Some(&d));
    assert_eq!(t["status_reason"], "task was stopped by tasks.stop");
    wait_until("the container to be removed", || {
        containers("clearml-task-id", &task).is_empty()
    });
    assert!(ctx.server.log_text(&task).unwrap().contains("User aborted"));
}

#[test]
fn task_container_settings_override_the_agent_default() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "own container",
        "import os\nprint('from task:', os.environ.get('FROM_TASK'))\n",
        json!({
            "image": img,
            "arguments": "-e FROM_TASK=yes --label team=ml",
            "setup_shell_script": "echo setup-script-ran\n",
        }),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    // The agent's default image does not exist: only the task's image can run it.
    let d = ctx.daemon(&[
        "--queue",
        "default",
        "--cpu-only",
        "--docker",
        "clearml-agent-test:does-not-exist",
    ]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("from task: yes"), "{log}");
    assert!(log.contains("setup-script-ran"), "{log}");
    assert!(log.contains(&format!("inside docker: {img}")), "{log}");
    // The task's own container is left as it was.
    assert_eq!(
        t["container"]["arguments"],
        "-e FROM_TASK=yes --label team=ml"
    );
}

#[test]
fn agent_rules_merge_the_task_arguments_with_its_own() {
    // docker_args_filters keep only the task's listed switches, the forbidden --entrypoint is
    // dropped with a warning, the agent's protected --network wins over the task's, and $VARs
    // in the agent's -e values come from the agent's environment.
    let img = image();
    let ctx = context()
        .env("IT_AGENT_VAR", "from-the-agent")
        .conf(
            "agent.extra_docker_arguments: [\"--network\", \"host\", \"-e\", \"FROM_AGENT=$IT_AGENT_VAR\"]",
        )
        .conf("agent.docker_args_filters: [\"^-e$\", \"^--network$\", \"^--entrypoint$\"]")
        .build();
    let task = docker_task(
        &ctx,
        "merged arguments",
        "import os\nprint('A =', os.environ.get('A'), '; FROM_AGENT =', os.environ.get('FROM_AGENT'))\n",
        json!({
            "image": img,
            "arguments": "--network none -e A=1 --entrypoint /bin/false --privileged",
        }),
    );
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("A = 1 ; FROM_AGENT = from-the-agent"), "{log}");
    assert!(
        log.contains("clearml-agent: ignoring docker argument(s) --entrypoint"),
        "{log}"
    );
    let run_line = log
        .lines()
        .find(|l| l.contains("docker run"))
        .unwrap_or_default();
    assert!(run_line.contains("--network host"), "{run_line}");
    assert!(!run_line.contains("--network none"), "{run_line}");
    assert!(!run_line.contains("--privileged"), "{run_line}");

    // A filter that is not a regular expression stops the agent at start, naming the key.
    let bad = context().conf("agent.docker_args_filters: [\"(\"]").build();
    let out = bad
        .command(&["daemon", "--queue", "default", "--docker", img])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("agent.docker_args_filters"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn published_ports_move_into_the_allowed_range_and_are_recorded() {
    // mirrors DockerArgsSanitizer.resolve_port_mapping: a host port outside
    // docker_args_allowed_port_range moves to the first free one inside, the container learns
    // the host's address and the task records the mapping in its runtime properties.
    let img = image();
    let free = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = context()
        .env("CLEARML_AGENT_FORCE_HOST_MACHINE_IP", "10.1.2.3")
        .conf(&format!(
            "agent.docker_args_allowed_port_range: [{free}, {}]",
            free + 20
        ))
        .build();
    let task = docker_task(
        &ctx,
        "ports",
        "import os\nprint('host ip', os.environ.get('CLEARML_AGENT_HOST_IP'))\n",
        json!({"image": img, "arguments": "-p 80:8000"}),
    );
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("host ip 10.1.2.3"), "{log}");
    let mapping = t["runtime"]["_external_host_tcp_port_mapping"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let host: u16 = mapping
        .strip_suffix(":8000")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("mapping {mapping:?}"));
    assert!((free..=free + 20).contains(&host), "{mapping}");
    let run_line = log
        .lines()
        .find(|l| l.contains("docker run"))
        .unwrap_or_default();
    assert!(run_line.contains(&format!("{host}:8000")), "{run_line}");
}

#[test]
fn untranslatable_argument_fails_the_task_naming_it() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "bad args",
        "print('never')\n",
        json!({"image": img, "arguments": "--init --frobnicate --shm-size 64m"}),
    );
    let (t, _log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "failed");
    // The unknown flag is named, not the word after it.
    assert!(
        t["status_reason"]
            .as_str()
            .unwrap()
            .contains("--frobnicate"),
        "{t}"
    );
    assert!(containers("clearml-task-id", &task).is_empty());
}

#[test]
fn missing_image_that_cannot_be_pulled_fails_the_task() {
    image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "no image",
        "print('never')\n",
        json!({"image": "127.0.0.1:9/clearml-agent-test/none:1"}),
    );
    let (t, _log, _d) = run_to_end(&ctx, &task, IMAGE);
    assert_eq!(t["status"], "failed");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot pull the image 127.0.0.1:9/clearml-agent-test/none:1"),
        "{reason}"
    );
}

#[test]
fn ssh_folder_is_copied_into_the_container() {
    let img = image();
    // An empty SSH_AUTH_SOCK counts as unset: the ~/.ssh copy is used.
    let ctx = context().env("SSH_AUTH_SOCK", "").build();
    let ssh = ctx.root().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("config"), "Host example\n").unwrap();
    let task = docker_task(
        &ctx,
        "ssh",
        "import os\nprint('ssh files:', sorted(os.listdir(os.path.expanduser('~/.ssh'))))\n",
        json!({}),
    );
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("ssh files: ['config']"), "{log}");
    assert!(
        log.contains(&format!("{}:/.ssh:ro", ssh.display())),
        "{log}"
    );
}

#[test]
fn ssh_auth_socket_is_mounted_and_set() {
    let img = image();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ctx = context()
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .build();
    let task = docker_task(
        &ctx,
        "agent socket",
        "import os, stat\ns = os.environ['SSH_AUTH_SOCK']\n\
         print('sock', s, stat.S_ISSOCK(os.stat(s).st_mode))\n",
        json!({}),
    );
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}");
    assert!(
        log.contains(&format!("sock {} True", sock.display())),
        "{log}"
    );
}

#[test]
fn leftover_containers_of_a_crashed_agent_are_removed_at_start() {
    let img = image();
    let worker = format!("docker-reap-{}", std::process::id());
    let leftover = docker(&[
        "create",
        "-l",
        &format!("clearml-parent-worker-id={worker}"),
        img,
        "sleep",
        "1000",
    ])
    .trim()
    .to_string();
    docker(&["start", &leftover]);
    let other = docker(&[
        "create",
        "-l",
        "clearml-parent-worker-id=someone-else",
        img,
        "true",
    ])
    .trim()
    .to_string();
    let ctx = context().env("CLEARML_WORKER_ID", &worker).build();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    wait_until("the leftover container to be removed", || {
        containers("clearml-parent-worker-id", &worker).is_empty()
    });
    // Another worker's container is not touched.
    assert_eq!(inspect(&other)["Id"], other.as_str());
    docker(&["rm", "-f", &other]);
    wait_until("the agent to report the removal", || {
        d.output().contains("Removed 1 leftover container")
    });
}

#[test]
fn no_engine_is_a_clear_error_at_start() {
    let ctx = context()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .build();
    let out = ctx
        .command(&[
            "daemon",
            "--queue",
            "default",
            "--cpu-only",
            "--docker",
            IMAGE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the Docker Engine"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Two agents on one machine with `--gpus 0` and `--gpus 1` at once: distinct worker ids and
/// distinct device requests. There is no GPU (nor NVIDIA runtime) here, so the engine refuses to
/// start the containers: each task fails with the engine's reason and no container is left.
#[test]
fn two_agents_with_different_gpus_run_side_by_side() {
    let img = image();
    let ctx = context().build();
    let t0 = docker_task(&ctx, "gpu0", "print('gpu task')\n", json!({}));
    let t1 = docker_task(&ctx, "gpu1", "print('gpu task')\n", json!({}));
    ctx.server.enqueue(&t0, "q0").unwrap();
    ctx.server.enqueue(&t1, "q1").unwrap();
    let d0 = ctx.daemon(&["--queue", "q0", "--gpus", "0", "--docker", img]);
    let d1 = ctx.daemon(&["--queue", "q1", "--gpus", "1", "--docker", img]);
    let a = ctx.wait_status(&t0, &["failed", "completed"], Some(&d0));
    let b = ctx.wait_status(&t1, &["failed", "completed"], Some(&d1));
    let log0 = ctx.server.log_text(&t0).unwrap();
    let log1 = ctx.server.log_text(&t1).unwrap();
    assert!(log0.contains("--gpus '\"device=0\"'"), "{log0}");
    assert!(log0.contains("NVIDIA_VISIBLE_DEVICES=0"), "{log0}");
    assert!(log1.contains("--gpus '\"device=1\"'"), "{log1}");
    assert!(log1.contains("NVIDIA_VISIBLE_DEVICES=1"), "{log1}");
    assert!(log1.contains("CUDA_VISIBLE_DEVICES=0"), "{log1}");
    assert!(log0.contains(":gpu0"), "{log0}");
    assert!(log1.contains(":gpu1"), "{log1}");
    for (t, log) in [(&a, &log0), (&b, &log1)] {
        assert_eq!(t["status"], "failed", "{log}");
        assert!(
            t["status_reason"]
                .as_str()
                .unwrap()
                .contains("cannot start the container"),
            "{t}"
        );
    }
    assert!(containers("clearml-task-id", &t0).is_empty());
    assert!(containers("clearml-task-id", &t1).is_empty());
}

/// The create body of a GPU agent, created (not started: there is no GPU here) on the real
/// engine and read back: device requests, GPU variables, SSH mount, labels.
#[test]
fn gpu_requests_and_mounts_on_the_created_container() {
    use clearml_agent::docker::run::{ContainerJob, container_body};
    use clearml_agent::docker::{Engine, args};
    let img = image();
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let cfg_file = home.path().join("clearml.conf");
    std::fs::write(&cfg_file, "{}").unwrap();
    let task_id = format!("gpu-inspect-{}", std::process::id());
    let mut cfg = test_config(home.path());
    cfg.visible_gpus = Some("2,3".into());
    cfg.ssh_dir = Some(ssh.clone());
    let job = ContainerJob {
        task_id: task_id.clone(),
        worker_id: "host:gpu2,3".into(),
        parent_worker_id: "host:gpu2,3".into(),
        config_file: cfg_file.clone(),
        pulled_from: None,
        worker_tags: vec![],
        host_env: BTreeMap::new(),
        build: false,
    };
    // The task asks for all GPUs: the agent's assignment wins.
    let run_args = args::translate(
        &[
            "--gpus".to_string(),
            "all".to_string(),
            "--ipc=host".to_string(),
        ],
        &|p| std::fs::read_to_string(p),
    )
    .unwrap();
    let body = container_body(&cfg, &job, img, &run_args, "true".into(), home.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let engine = Engine::connect().await.unwrap();
        engine.create(None, body).await.unwrap()
    });
    let c = inspect(&id);
    docker(&["rm", "-f", &id]);
    let reqs = &c["HostConfig"]["DeviceRequests"];
    assert_eq!(reqs.as_array().unwrap().len(), 1, "{reqs}");
    assert_eq!(reqs[0]["DeviceIDs"], json!(["2", "3"]));
    assert_eq!(reqs[0]["Capabilities"], json!([["gpu"]]));
    assert_eq!(c["HostConfig"]["IpcMode"], "host");
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"NVIDIA_VISIBLE_DEVICES=2,3"), "{env:?}");
    assert!(env.contains(&"CUDA_VISIBLE_DEVICES=0,1"), "{env:?}");
    assert!(env.contains(&format!("CLEARML_TASK_ID={task_id}").as_str()));
    let binds: Vec<&str> = c["HostConfig"]["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        binds.contains(&format!("{}:/.ssh:ro", ssh.display()).as_str()),
        "{binds:?}"
    );
    assert!(
        binds.contains(&format!("{}:/tmp/clearml.conf:ro", cfg_file.display()).as_str()),
        "{binds:?}"
    );
    assert_eq!(c["Config"]["Labels"]["clearml-task-id"], task_id.as_str());
    assert_eq!(c["Config"]["Labels"]["clearml-worker-id"], "host:gpu2,3");
    assert_eq!(c["Config"]["Labels"]["team"], "vision");

    // `all` → a count of -1; the auth socket replaces the ~/.ssh copy.
    cfg.visible_gpus = None;
    cfg.ssh_auth_sock = Some("/run/agent.sock".into());
    let body = container_body(
        &cfg,
        &job,
        img,
        &args::RunArgs::default(),
        "true".into(),
        home.path(),
    );
    let id = rt.block_on(async {
        let engine = Engine::connect().await.unwrap();
        engine.create(None, body).await.unwrap()
    });
    let c = inspect(&id);
    docker(&["rm", "-f", &id]);
    assert_eq!(c["HostConfig"]["DeviceRequests"][0]["Count"], -1);
    let binds = c["HostConfig"]["Binds"].to_string();
    assert!(binds.contains("/run/agent.sock:/run/agent.sock"), "{binds}");
    assert!(!binds.contains("/.ssh"), "{binds}");
    assert!(
        c["Config"]["Env"]
            .to_string()
            .contains("SSH_AUTH_SOCK=/run/agent.sock")
    );
}

fn test_config(root: &Path) -> clearml_agent::docker::DockerConfig {
    clearml_agent::docker::DockerConfig {
        default_image: IMAGE.into(),
        update_back_task: false,
        work_dir: root.join("work"),
        extra_labels: vec!["team=vision".into()],
        ..Default::default()
    }
}

#[test]
fn execute_with_docker_runs_one_task_in_a_container() {
    let img = image();
    let ctx = context().build();
    let script =
        "import os\nprint('worker', os.environ['CLEARML_WORKER_ID'])\nraise SystemExit(4)\n";
    // A queued task is taken out of its queue before it runs (mirrors Worker.execute).
    let task = docker_task(&ctx, "execute docker", script, json!({}));
    ctx.server.enqueue(&task, "default").unwrap();
    let out = ctx
        .command(&["execute", "--id", &task, "--cpu-only", "--docker", img])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // mirrors Worker.execute: --docker ends like --full-monitoring, exit status 0 by default.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("worker "), "{text}");
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "failed");
    assert_eq!(t["status_reason"], "worker execution exit code 4");
    assert!(ctx.server.queue_entries("default").unwrap().is_empty());
    assert!(
        ctx.server
            .log_text(&task)
            .unwrap()
            .contains("Executing: docker run")
    );
    assert!(containers("clearml-task-id", &task).is_empty());

    // CLEARML_AGENT_PROPAGATE_EXITCODE makes the task's code the exit status.
    let task = docker_task(&ctx, "execute docker, propagated", script, json!({}));
    let out = ctx
        .command(&["execute", "--id", &task, "--cpu-only", "--docker", img])
        .env("CLEARML_AGENT_PROPAGATE_EXITCODE", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // --require-queue refuses a task that waits in no queue, and leaves it as it was.
    let task = docker_task(&ctx, "execute docker, not queued", script, json!({}));
    let out = ctx
        .command(&[
            "execute",
            "--id",
            &task,
            "--cpu-only",
            "--require-queue",
            "--docker",
            img,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Execution required enqueued task, but task id={task} is not queued."
        )),
        "{stderr}"
    );
    assert_eq!(ctx.server.task(&task).unwrap()["status"], "created");
    assert!(containers("clearml-task-id", &task).is_empty());
}

#[test]
fn second_task_with_the_same_requirements_reuses_the_cached_venv() {
    let img = image();
    let ctx = context().build();
    let first = docker_task(&ctx, "first", "print('first done')\n", json!({}));
    let second = docker_task(&ctx, "second", "print('second done')\n", json!({}));
    ctx.server.enqueue(&first, "default").unwrap();
    ctx.server.enqueue(&second, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    for t in [&first, &second] {
        let status = ctx.wait_status(t, &["completed", "failed"], Some(&d));
        assert_eq!(status["status"], "completed", "{}", d.output());
    }
    let log1 = ctx.server.log_text(&first).unwrap();
    let log2 = ctx.server.log_text(&second).unwrap();
    // The printed command holds the script's text; the output names the path.
    let reused = "clearml-agent: reusing the venv /root/.clearml/venvs-builds/task";
    assert!(!log1.contains(reused), "{log1}");
    assert!(log2.contains(reused), "{log2}");
    assert!(log2.contains("second done"), "{log2}");
    let cached: Vec<_> = std::fs::read_dir(ctx.root().join("venvs-cache"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(cached.len(), 1);
}

#[test]
fn agent_shutdown_stops_the_task_and_removes_its_container() {
    let img = image();
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "long",
        "import time\nprint('running', flush=True)\ntime.sleep(300)\n",
        json!({}),
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    ctx.wait_log(&task, |l| l.contains("running"), &d);
    assert_eq!(containers("clearml-task-id", &task).len(), 1);
    assert_eq!(d.stop(), Some(0), "{}", d.output());
    assert!(containers("clearml-task-id", &task).is_empty());
    let t = ctx.server.task(&task).unwrap();
    assert_eq!(t["status"], "stopped", "{}", d.output());
}

/// A task from a git repository: cloned on the host, mounted, run from its working dir.
#[test]
fn repository_task_is_cloned_on_the_host_and_runs_inside() {
    let img = image();
    // a host path as the repository: refused in docker mode unless the admin allows it
    // force_git_root_python_path: the repository root is on the task's PYTHONPATH.
    let ctx = context()
        .conf("agent.docker_allow_host_repositories: true\nagent.force_git_root_python_path: true")
        .build();
    let origin = ctx.root().join("origin");
    std::fs::create_dir_all(origin.join("scripts")).unwrap();
    std::fs::write(origin.join("scripts/data.txt"), "from the repo\n").unwrap();
    std::fs::write(origin.join("rootmod.py"), "VALUE = 'root module'\n").unwrap();
    std::fs::write(
        origin.join("scripts/run.py"),
        "import os, rootmod\nprint('cwd', os.path.basename(os.getcwd()), open('data.txt').read().strip(), rootmod.VALUE)\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(&origin)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let task = ctx
        .server
        .create_task(json!({
            "name": "repo task",
            "script": {
                "binary": "python3",
                "repository": origin.display().to_string(),
                "branch": "main",
                "entry_point": "run.py",
                "working_dir": "scripts",
            },
        }))
        .unwrap();
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}");
    assert!(
        log.contains("cwd scripts from the repo root module"),
        "{log}"
    );
    assert_eq!(t["script"]["version_num"], commit.as_str());
}

#[test]
fn task_requirements_are_installed_inside_the_container() {
    // Containers here reach no package index, so the wheel is fetched on the host and offered to
    // pip inside through the task's own container arguments.
    let img = image();
    let ctx = context().build();
    let wheels = ctx.root().join("wheels");
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
        .arg(&wheels)
        .arg("six==1.16.0")
        .output()
        .expect("pip download");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = ctx
        .server
        .create_task(json!({
            "name": "requirements in docker",
            "script": {
                "binary": "python3",
                "entry_point": "task.py",
                "working_dir": ".",
                "diff": "import six\nprint('six', six.__version__)\n",
                "requirements": {"pip": "six==1.16.0"},
            },
            "container": {
                "image": img,
                "arguments": format!(
                    "-v {}:/wheels -e PIP_FIND_LINKS=/wheels -e PIP_NO_INDEX=1",
                    wheels.display()
                ),
            },
        }))
        .expect("create task");
    let (t, log, d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("six 1.16.0"), "{log}");
    let pip = &t["script"]["requirements"]["pip"];
    assert!(
        pip.as_array()
            .is_some_and(|lines| lines.iter().any(|l| l == "six==1.16.0")),
        "frozen requirements not recorded as lines: {pip}"
    );
    assert_eq!(t["script"]["requirements"]["org_pip"], "six==1.16.0");
}

#[test]
fn image_without_python_gets_it_and_the_opencv_libraries_from_apt() {
    // mirrors the default bash_script of Worker._get_docker_cmd: no python3 with pip means
    // `apt-get install python3-pip`, and docker_install_opencv_libs (default true) adds the
    // OpenCV libraries; the apt cache of the host is mounted.
    let img = no_python_image();
    let ctx = context()
        .conf("agent.docker_install_opencv_libs: true")
        .build();
    let task = docker_task(
        &ctx,
        "no python",
        "import sys\nprint('python', sys.version_info[0])\n",
        json!({}),
    );
    let (t, log, d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("fake apt-get update -y"), "{log}");
    assert!(
        log.contains(
            "fake apt-get install -y libsm6 libxext6 libxrender-dev libglib2.0-0 python3-pip python3-venv"
        ),
        "{log}"
    );
    assert!(log.contains("python 3"), "{log}");
    let apt_cache = ctx.root().join(".clearml/apt-cache");
    assert!(apt_cache.is_dir(), "the host apt cache folder is made");
    assert!(
        log.contains(&format!("{}:/var/cache/apt/archives", apt_cache.display())),
        "{log}"
    );

    // docker_init_bash_script replaces that setup: nothing is installed, and without python
    // the task fails naming the cause and the fix.
    let ctx = context()
        .conf("agent.docker_init_bash_script: [\"echo custom init {python_single_digit}\"]")
        .build();
    let task = docker_task(&ctx, "custom init", "print('unreachable')\n", json!({}));
    let (t, log, _d) = run_to_end(&ctx, &task, img);
    assert_eq!(t["status"], "failed", "{log}");
    assert!(log.contains("custom init python3"), "{log}");
    assert!(!log.contains("fake apt-get"), "{log}");
    assert!(
        log.contains("the image has no python3 on PATH and installing it failed"),
        "{log}"
    );
}
