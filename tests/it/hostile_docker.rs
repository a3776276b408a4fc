//! Hostile task definitions in docker mode (issue #11): what a task author writes in
//! `container.arguments` cannot reach the host, get past the admin's filters and protected
//! switches, read host secrets or print them. One daemon per agent setup runs a table of
//! hostile tasks in turn, then a normal one. Real test server, real Docker Engine: these fail,
//! not skip, without it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::context::{AgentContext, Daemon};
use crate::docker::{containers, context, docker_task, image, inspect};

const GIT_CANARY: &str = "canary-git-pass-5d1f";
const EXTRA_CANARY: &str = "canary-extra-cred-77a2";
const FILE_CANARY: &str = "canary-env-file-c0ffee";
const TOKEN_CANARY: &str = "canary-token-e91b";
const URL_CANARY: &str = "canary-urlpw-4242";
const ENV_CANARY: &str = "canary-agent-env-3b7c";
const ALL_CANARIES: [&str; 6] = [
    GIT_CANARY,
    EXTRA_CANARY,
    FILE_CANARY,
    TOKEN_CANARY,
    URL_CANARY,
    ENV_CANARY,
];

/// What a hostile task must end as.
enum Expect {
    /// Failed before any container, the reason naming each of these.
    Refused(&'static [&'static str]),
    /// Ran to completion; the check gets `docker inspect` of its container and its log.
    Runs(fn(&Value, &str)),
}

struct Case {
    name: &'static str,
    args: String,
    expect: Expect,
}

fn case(name: &'static str, args: &str, expect: Expect) -> Case {
    Case {
        name,
        args: args.to_string(),
        expect,
    }
}

/// A task that says it is ready, waits for the test to look at its container, then prints what
/// it sees (its variables and the configuration it was given).
const PROBE: &str = r#"import os, time
d = os.path.dirname(os.path.abspath(__file__))
print('READY', d, flush=True)
for _ in range(1200):
    if os.path.exists(os.path.join(d, 'go')):
        break
    time.sleep(0.1)
print('NVIDIA', os.environ.get('NVIDIA_VISIBLE_DEVICES'), 'CFG', os.environ.get('CLEARML_CONFIG_FILE'))
print('FROM_FILE', os.environ.get('IT_FROM_FILE') is not None)
print('CONF', open('/tmp/clearml.conf').read())
"#;

/// Host files a mount would let a task change.
struct Canaries {
    files: Vec<(PathBuf, String)>,
}

impl Canaries {
    fn plant(root: &Path) -> Canaries {
        let files = ["host-canary.txt", ".ssh/authorized_keys"]
            .iter()
            .map(|name| {
                let path = root.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let text = format!("untouched {name}\n");
                std::fs::write(&path, &text).unwrap();
                (path, text)
            })
            .collect();
        Canaries { files }
    }

    fn assert_untouched(&self) {
        for (path, text) in &self.files {
            assert_eq!(&std::fs::read_to_string(path).unwrap(), text, "{path:?}");
        }
    }
}

/// No canary in `text`.
fn assert_clean(what: &str, text: &str) {
    for c in ALL_CANARIES {
        assert!(!text.contains(c), "{what} holds the secret {c}:\n{text}");
    }
}

/// Every bind-mounted file of the container (folders walked, a few levels), read on the host.
fn assert_mounts_clean(container: &Value) {
    fn walk(path: &Path, depth: u32) {
        if depth > 4 {
            return;
        }
        if path.is_file() {
            if let Ok(bytes) = std::fs::read(path) {
                assert_clean(
                    &format!("mounted {path:?}"),
                    &String::from_utf8_lossy(&bytes),
                );
            }
        } else if path.is_dir()
            && let Ok(entries) = std::fs::read_dir(path)
        {
            for e in entries.flatten() {
                walk(&e.path(), depth + 1);
            }
        }
    }
    for m in container["Mounts"].as_array().unwrap() {
        if m["Type"] == "bind" {
            walk(Path::new(m["Source"].as_str().unwrap()), 0);
        }
    }
}

/// The host path of `inside` in a running container.
fn host_path(container: &Value, inside: &str) -> PathBuf {
    for m in container["Mounts"].as_array().unwrap() {
        let dest = m["Destination"].as_str().unwrap();
        if let Some(rest) = inside.strip_prefix(dest) {
            return PathBuf::from(format!("{}{rest}", m["Source"].as_str().unwrap()));
        }
    }
    panic!("{inside} is not under a mount: {}", container["Mounts"]);
}

/// Runs each case in turn on one daemon, then a normal task, checking every case.
fn run_table(ctx: &AgentContext, d: &Daemon, cases: &[Case], canaries: &Canaries) {
    let img = image();
    for c in cases {
        let task = docker_task(
            ctx,
            c.name,
            PROBE,
            json!({"image": img, "arguments": c.args}),
        );
        ctx.server.enqueue(&task, "default").unwrap();
        match &c.expect {
            Expect::Refused(words) => {
                let t = ctx.wait_status(&task, &["completed", "failed"], Some(d));
                let reason = t["status_reason"].as_str().unwrap_or_default().to_string();
                assert_eq!(t["status"], "failed", "{}: {reason}", c.name);
                for w in *words {
                    assert!(reason.contains(w), "{}: {reason}", c.name);
                }
                assert!(!reason.contains('\n'), "{reason}");
                let log = ctx.server.log_text(&task).unwrap();
                assert!(!log.contains("READY"), "{}: the task ran:\n{log}", c.name);
                assert_clean(c.name, &log);
            }
            Expect::Runs(check) => {
                let log = ctx.wait_log(&task, |l| l.contains("READY "), d);
                let ids = containers("clearml-task-id", &task);
                assert_eq!(ids.len(), 1, "{}", c.name);
                let container = inspect(&ids[0]);
                assert_mounts_clean(&container);
                let dir = log
                    .lines()
                    .find_map(|l| l.strip_prefix("READY "))
                    .unwrap()
                    .trim()
                    .to_string();
                std::fs::write(host_path(&container, &dir).join("go"), "").unwrap();
                let t = ctx.wait_status(&task, &["completed", "failed"], Some(d));
                let log = ctx.server.log_text(&task).unwrap();
                assert_eq!(t["status"], "completed", "{}:\n{log}", c.name);
                assert!(log.contains("CONF {"), "{log}");
                assert_clean(c.name, &log);
                check(&container, &log);
            }
        }
        canaries.assert_untouched();
        assert_clean("the agent's output", &d.output());
    }
    let normal = docker_task(ctx, "normal", "print('normal task ran')\n", json!({}));
    ctx.server.enqueue(&normal, "default").unwrap();
    let t = ctx.wait_status(&normal, &["completed", "failed"], Some(d));
    let log = ctx.server.log_text(&normal).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    assert!(log.contains("normal task ran"), "{log}");
    assert_clean("the normal task", &log);
    assert_clean("the agent's output", &d.output());
}

fn host_config(c: &Value) -> &Value {
    &c["HostConfig"]
}

fn env_of(c: &Value) -> Vec<String> {
    c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The agent's canary secrets in its configuration, an admin token in its extra arguments and a
/// URL password in its extra shell script; one secret in its environment.
fn secret_context(extra_conf: &str) -> (AgentContext, Canaries, PathBuf) {
    let ctx = context()
        .env("IT_HOST_SECRET", ENV_CANARY)
        .conf(&format!("agent.git_user: \"it-user\"\nagent.git_pass: \"{GIT_CANARY}\""))
        .conf(&format!(
            "agent.git.extra_credentials: [{{host: \"git.example\", user: \"u\", pass: \"{EXTRA_CANARY}\"}}]"
        ))
        .conf(&format!(
            "agent.extra_docker_shell_script: [\"echo https://bot:{URL_CANARY}@example.invalid/x >/dev/null\"]"
        ))
        .conf(extra_conf)
        .build();
    let canaries = Canaries::plant(ctx.root());
    let secret = ctx.root().join("secret.env");
    std::fs::write(&secret, format!("IT_FROM_FILE={FILE_CANARY}\n")).unwrap();
    (ctx, canaries, secret)
}

fn daemon(ctx: &AgentContext) -> Daemon {
    ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", image()])
}

#[test]
fn untrusted_policy_refuses_each_hostile_argument() {
    let (ctx, canaries, secret) = secret_context(
        "agent.docker_untrusted_tasks: true\n\
         agent.extra_docker_arguments: [\"--runtime=runc\", \"-e\", \"ADMIN_TOKEN=admin-side\"]",
    );
    let root = ctx.root().display().to_string();
    let refused = |args: &str, flag: &'static str| {
        let words: &'static [&'static str] =
            Box::leak(vec![flag, "agent.docker_untrusted_tasks"].into_boxed_slice());
        case("refused", args, Expect::Refused(words))
    };
    let cases = vec![
        refused("--privileged", "--privileged"),
        refused("--privileged=true", "--privileged"),
        refused(&format!("-v {root}:/host"), "-v"),
        refused("-v /:/host", "-v"),
        refused(
            &format!("--mount type=bind,source={root},target=/host"),
            "--mount",
        ),
        refused("--volumes-from other", "--volumes-from"),
        refused("--device /dev/fuse", "--device"),
        refused("--cap-add SYS_ADMIN", "--cap-add"),
        refused("--pid host", "--pid"),
        refused("--ipc=host", "--ipc"),
        refused("--uts host", "--uts"),
        refused("--net=host", "--net"),
        refused("--network host", "--network"),
        refused("--runtime runc", "--runtime"),
        refused("--security-opt seccomp=unconfined", "--security-opt"),
        refused("--userns host", "--userns"),
        refused(&format!("--env-file {}", secret.display()), "--env-file"),
        // A task word read as the value of the admin's protected --runtime is checked too.
        refused("--runtime --privileged", "--privileged"),
        case(
            "privileged=false is not privileged; agent variables and labels win",
            &format!(
                "--privileged=false -e NVIDIA_VISIBLE_DEVICES=all -e CLEARML_CONFIG_FILE=/etc/passwd \
                 -l clearml-parent-worker-id=evil -e MY_TOKEN={TOKEN_CANARY} \
                 -e DB_URL=https://u:{URL_CANARY}@db.invalid/x"
            ),
            Expect::Runs(|c, log| {
                let host = host_config(c);
                assert_eq!(host["Privileged"], false);
                assert_eq!(host["Runtime"], "runc");
                assert_ne!(host["PidMode"], "host");
                assert_ne!(host["NetworkMode"], "host");
                let env = env_of(c);
                let nvidia: Vec<_> = env
                    .iter()
                    .filter(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES="))
                    .collect();
                assert_eq!(nvidia.len(), 1, "{env:?}");
                assert_ne!(nvidia[0], "NVIDIA_VISIBLE_DEVICES=all", "{env:?}");
                assert!(
                    !env.iter().any(|e| e == "CLEARML_CONFIG_FILE=/etc/passwd"),
                    "{env:?}"
                );
                assert_ne!(c["Config"]["Labels"]["clearml-parent-worker-id"], "evil");
                assert!(log.contains("CFG /tmp/clearml.conf"), "{log}");
                assert!(log.contains("ignoring docker argument(s)"), "{log}");
                // No host SSH keys under the policy.
                let binds = host["Binds"].to_string();
                assert!(!binds.contains(".ssh"), "{binds}");
                assert!(!binds.contains("ssh-agent"), "{binds}");
            }),
        ),
    ];
    let d = daemon(&ctx);
    run_table(&ctx, &d, &cases, &canaries);
}

#[test]
fn admin_filters_and_protections_hold() {
    // The Python agent's example filter written without `$`, and protected switches set by the
    // admin: aliases, boolean values and look-alike switches do not get past them.
    let (ctx, canaries, secret) = secret_context(
        "agent.docker_args_filters: [\"--env\", \"-e\", \"--net\", \"--network\", \"--privileged\", \"--runtime\", \"--pid\", \"-l\"]\n\
         agent.extra_docker_arguments: [\"--network\", \"bridge\", \"--runtime=runc\"]",
    );
    let cases = vec![
        case(
            "--env filter does not pass --env-file",
            &format!("--env-file {} -e A=1", secret.display()),
            Expect::Runs(|c, log| {
                assert!(log.contains("FROM_FILE False"), "{log}");
                assert!(!env_of(c).iter().any(|e| e.starts_with("IT_FROM_FILE")));
            }),
        ),
        case(
            "--net=host against the protected --network",
            "--net=host",
            Expect::Runs(|c, _| assert_eq!(host_config(c)["NetworkMode"], "bridge")),
        ),
        case(
            "--runtime against the protected --runtime",
            "--runtime=bogus-runtime",
            Expect::Runs(|c, _| assert_eq!(host_config(c)["Runtime"], "runc")),
        ),
        case(
            "--privileged=false",
            "--privileged=false",
            Expect::Runs(|c, _| assert_eq!(host_config(c)["Privileged"], false)),
        ),
        case(
            "agent's label",
            "-l clearml-parent-worker-id=evil -e NVIDIA_VISIBLE_DEVICES=all",
            Expect::Runs(|c, _| {
                assert_ne!(c["Config"]["Labels"]["clearml-parent-worker-id"], "evil");
                assert!(!env_of(c).contains(&"NVIDIA_VISIBLE_DEVICES=all".to_string()));
            }),
        ),
    ];
    let d = daemon(&ctx);
    run_table(&ctx, &d, &cases, &canaries);
}

#[test]
fn env_files_are_read_safely_and_never_printed() {
    let (ctx, canaries, secret) = secret_context("agent.docker_install_opencv_libs: false");
    let root = ctx.root();
    let fifo = root.join("env.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let link = root.join("env.link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let malformed = root.join("malformed.env");
    std::fs::write(&malformed, format!("OK=1\n{FILE_CANARY}\n")).unwrap();
    let refused = |path: &Path, why: &'static str| {
        let words: &'static [&'static str] = Box::leak(vec!["--env-file", why].into_boxed_slice());
        case(
            "refused env file",
            &format!("--env-file {}", path.display()),
            Expect::Refused(words),
        )
    };
    let d = daemon(&ctx);
    let agent_environ = PathBuf::from(format!("/proc/{}/environ", d.pid()));
    let cases = vec![
        refused(Path::new("/proc/self/environ"), "symbolic link"),
        refused(&agent_environ, "pseudo-file"),
        refused(&fifo, "not a regular file"),
        refused(&link, "symbolic link"),
        refused(&malformed, "line 2"),
        case(
            "a regular env file: passed in, its value never printed",
            &format!(
                "--env-file {} -e SOME_SECRET=x{TOKEN_CANARY}",
                secret.display()
            ),
            Expect::Runs(|c, log| {
                assert!(log.contains("FROM_FILE True"), "{log}");
                assert!(env_of(c).iter().any(|e| e.starts_with("IT_FROM_FILE=")));
                let run_line = log.lines().find(|l| l.contains("docker run")).unwrap();
                assert!(run_line.contains("IT_FROM_FILE=********"), "{run_line}");
            }),
        ),
    ];
    run_table(&ctx, &d, &cases, &canaries);
}
