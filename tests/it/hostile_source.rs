//! Hostile task sources: task fields the agent acts on when it prepares the code (paths, git refs,
//! repository URLs, the diff, the literal script) can touch nothing on the host outside the
//! task's folder and leak no secret, in docker mode (real Docker Engine, failing without one)
//! and in venv mode; the daemon goes on with the next task.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::context::{AgentContext, Daemon, git};
use crate::docker::{context as docker_context, image};

const SECRET: &str = "CANARY-SECRET-7f3c9a51e2";
const TOKEN: &str = "ghp_CANARYTOKEN0123456789abcdef";
const PASSWORD: &str = "CANARYPASS-5b1e";

/// Host files a hostile task must leave alone: a folder outside HOME with a secret file, a
/// victim file and folder, and a Python file the agent's `__future__` fix would rewrite.
struct Canary {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Canary {
    fn new() -> Canary {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("canary");
        std::fs::create_dir_all(dir.join("victim_dir")).unwrap();
        std::fs::write(dir.join("secret.txt"), format!("{SECRET}\n")).unwrap();
        std::fs::write(dir.join("victim.txt"), "untouched\n").unwrap();
        std::fs::write(dir.join("victim_dir/keep.txt"), "untouched\n").unwrap();
        std::fs::write(
            dir.join("victim.py"),
            "from clearml import Task\nTask.init()\nfrom __future__ import annotations\nprint(1)\n",
        )
        .unwrap();
        Canary { _tmp: tmp, dir }
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    /// Every entry below the canary folder with its kind and contents (links not followed).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let what = if meta.file_type().is_symlink() {
                    format!("link {:?}", std::fs::read_link(&p).unwrap())
                } else if meta.is_dir() {
                    walk(&p, out);
                    format!("dir {:o}", meta.permissions().mode())
                } else {
                    format!("file {:?}", std::fs::read(&p).unwrap())
                };
                out.insert(p, what);
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.dir, &mut out);
        out
    }
}

/// Paths in the agent's HOME that a task must never create (the classic persistence targets).
fn home_targets(ctx: &AgentContext) -> Vec<PathBuf> {
    [".ssh", ".gitconfig", ".bashrc", "pwned", "tmp/pwned"]
        .iter()
        .map(|p| ctx.root().join(p))
        .collect()
}

/// A repository with traps: a link to the canary folder, a dangling link to a canary path, a
/// requirements file that is a link to the secret, a script that prints its `.git/config`.
struct HostileRepo {
    _tmp: TempDir,
    path: PathBuf,
    /// A bare copy served over dumb HTTP.
    bare: PathBuf,
}

impl HostileRepo {
    fn new(canary: &Canary) -> HostileRepo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hostile");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("task.py"), "print('normal repo task ran')\n").unwrap();
        // prints its .git/config, and names every file of its task folder (and the mounted
        // config) that holds the URL token (split here so this file does not)
        let (head, tail) = TOKEN.split_at(8);
        std::fs::write(
            path.join("show_config.py"),
            format!(
                "import os\ntok = ('{head}' + '{tail}').encode()\n\
                 print(open('.git/config').read())\n\
                 root = os.path.dirname(os.path.dirname(os.getcwd()))\n\
                 paths = ['/tmp/clearml.conf']\n\
                 for d, _, files in os.walk(root):\n    paths += [os.path.join(d, f) for f in files]\n\
                 for p in paths:\n    try:\n        data = open(p, 'rb').read()\n    except OSError:\n        continue\n\
                 \x20   if tok in data:\n        print('LEAK in', p)\n\
                 print('config shown', len(paths))\n"
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink(&canary.dir, path.join("link_out")).unwrap();
        std::os::unix::fs::symlink(
            canary.dir.join("created_by_link.py"),
            path.join("dangling.py"),
        )
        .unwrap();
        std::os::unix::fs::symlink(canary.dir.join("secret.txt"), path.join("requirements.txt"))
            .unwrap();
        git(&path, &["init", "-q", "-b", "main"]);
        git(&path, &["add", "."]);
        git(&path, &["commit", "-q", "-m", "traps"]);
        let bare = tmp.path().join("hostile.git");
        git(
            tmp.path(),
            &["clone", "-q", "--bare", "hostile", "hostile.git"],
        );
        git(&bare, &["update-server-info"]);
        HostileRepo {
            _tmp: tmp,
            path,
            bare,
        }
    }
}

/// A minimal static HTTP server (git's dumb protocol) for `root`; returns its port.
fn serve_dumb_http(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("/");
                let target = target.split('?').next().unwrap_or("/");
                let rel = target.trim_start_matches('/');
                let body = (!rel.contains(".."))
                    .then(|| std::fs::read(root.join(rel)).ok())
                    .flatten();
                let _ = match body {
                    Some(b) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&b)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            });
        }
    });
    port
}

/// One hostile task definition: its `script` section, and a piece of text its log must hold
/// (the refusal), or "" when the task may run.
struct Hostile {
    name: &'static str,
    script: Value,
    expect: &'static str,
}

fn literal(entry_point: &str, working_dir: &str, binary: &str) -> Value {
    json!({
        "binary": binary,
        "entry_point": entry_point,
        "working_dir": working_dir,
        "diff": "print('literal ran')\n",
    })
}

fn repo(url: &str, extra: Value) -> Value {
    let mut script = json!({
        "binary": "python3",
        "repository": url,
        "branch": "main",
        "entry_point": "task.py",
        "working_dir": ".",
    });
    for (k, v) in extra.as_object().unwrap() {
        script[k] = v.clone();
    }
    script
}

/// The table of hostile definitions; `url` is the hostile repository as the mode can clone it.
fn hostile_table(c: &Canary, url: &str, http_port: u16) -> Vec<Hostile> {
    let secret = c.path("secret.txt");
    let up = format!("../../../../../../../../..{}", c.dir.display());
    vec![
        Hostile {
            name: "literal script named by an absolute host path (reduced to the file name)",
            script: literal(&c.path("dropped.sh"), ".", "bash"),
            expect: "",
        },
        Hostile {
            name: "literal script overwriting an existing host file",
            script: literal(&c.path("victim.txt"), ".", "python3"),
            expect: "literal script name",
        },
        Hostile {
            name: "literal script with ../ in its .py name (reduced to the file name)",
            script: literal(&format!("{up}/dropped.py"), ".", "python3"),
            expect: "",
        },
        Hostile {
            name: "module entry point with a ../ script name in working_dir",
            script: literal("-m x", &format!(".:{up}/module.py"), "python3"),
            expect: "literal script name",
        },
        Hostile {
            name: "bash -c entry point with an absolute script name in working_dir",
            script: literal("-c echo", &format!(".:{}", c.path("abs.sh")), "bash"),
            expect: "literal script name",
        },
        Hostile {
            name: "literal script into ~/.ssh/authorized_keys",
            script: literal("~/.ssh/authorized_keys", ".", "bash"),
            expect: "literal script name",
        },
        Hostile {
            name: "version_num read as --pathspec-from-file",
            script: repo(
                url,
                json!({"version_num": format!("--pathspec-from-file={secret}")}),
            ),
            expect: "script.version_num",
        },
        Hostile {
            name: "tag read as --pathspec-from-file",
            script: repo(
                url,
                json!({"tag": format!("--pathspec-from-file={secret}")}),
            ),
            expect: "script.tag",
        },
        Hostile {
            name: "branch that is an option",
            script: repo(
                url,
                json!({"branch": format!("--pathspec-from-file={secret}")}),
            ),
            expect: "script.branch",
        },
        Hostile {
            name: "version_num with shell syntax",
            script: repo(
                url,
                json!({"version_num": format!("HEAD~1; touch {}", c.path("pwned"))}),
            ),
            expect: "script.version_num",
        },
        Hostile {
            name: "repository that is an --upload-pack option",
            script: repo(
                &format!("--upload-pack=touch {}", c.path("pwned")),
                json!({}),
            ),
            expect: "may not start with `-`",
        },
        Hostile {
            name: "ext:: command transport",
            script: repo(&format!("ext::sh -c touch% {}", c.path("pwned")), json!({})),
            expect: "failed cloning",
        },
        Hostile {
            name: "repository whose folder name is ..",
            script: repo("http://127.0.0.1:1/..", json!({})),
            expect: "folder name",
        },
        Hostile {
            name: "working_dir escaping with ../",
            script: repo(url, json!({"working_dir": up})),
            expect: "leaves the task's folder",
        },
        Hostile {
            name: "working_dir that is an absolute host path",
            script: repo(url, json!({"working_dir": c.dir.display().to_string()})),
            expect: "leaves the task's folder",
        },
        Hostile {
            name: "entry point escaping to a host python file (the __future__ fix would rewrite it)",
            script: repo(url, json!({"entry_point": format!("{up}/victim.py")})),
            expect: "leaves the task's folder",
        },
        Hostile {
            name: "entry point through a link planted in the repository",
            script: repo(url, json!({"entry_point": "link_out/victim.py"})),
            expect: "",
        },
        Hostile {
            name: "literal script into a working_dir that is a link out of the repository",
            script: repo(
                url,
                json!({"working_dir": "link_out", "entry_point": "evil.py",
                       "diff": "print('evil')\n"}),
            ),
            expect: "symbolic link",
        },
        Hostile {
            name: "working_dir that is a link out of the repository",
            script: repo(url, json!({"working_dir": "link_out"})),
            expect: "symbolic link",
        },
        Hostile {
            name: "literal script onto a dangling link planted in the repository",
            script: repo(
                url,
                json!({"entry_point": "dangling.py", "diff": "print('through the link')\n"}),
            ),
            expect: "",
        },
        Hostile {
            name: "diff creating a file through a link planted in the repository",
            script: repo(
                url,
                json!({"diff": "diff --git a/link_out/new.py b/link_out/new.py\n--- a/link_out/new.py\n+++ b/link_out/new.py\n@@ -0,0 +1 @@\n+print('x')\n"}),
            ),
            expect: "failed applying git diff",
        },
        Hostile {
            name: "diff adding a link out of the repository and a file through it",
            script: repo(
                url,
                json!({"diff": format!(
                    "diff --git a/out b/out\nnew file mode 120000\n--- /dev/null\n+++ b/out\n@@ -0,0 +1 @@\n+{}\n\\ No newline at end of file\n\
                     diff --git a/out/x.py b/out/x.py\nnew file mode 100644\n--- /dev/null\n+++ b/out/x.py\n@@ -0,0 +1 @@\n+print('x')\n",
                    c.dir.display()
                )}),
            ),
            expect: "failed applying git diff",
        },
        Hostile {
            name: "token as the user of the repository URL (kept out of .git/config)",
            script: repo(
                &format!("http://{TOKEN}@127.0.0.1:{http_port}/hostile.git"),
                json!({"entry_point": "show_config.py"}),
            ),
            expect: "config shown",
        },
        Hostile {
            name: "user and password in an unreachable repository URL",
            script: repo(
                &format!("https://agent:{PASSWORD}@127.0.0.1:1/r.git"),
                json!({}),
            ),
            expect: "failed cloning",
        },
    ]
}

/// Runs every hostile definition through one daemon, in turn, then a normal task; checks the
/// canaries, the logs and the daemon's output.
fn run_table(ctx: &AgentContext, canary: &Canary, table: Vec<Hostile>, daemon_args: &[&str]) {
    let before = canary.snapshot();
    let tasks: Vec<(String, &Hostile)> = table
        .iter()
        .map(|h| {
            let id = ctx
                .server
                .create_task(json!({"name": h.name, "script": h.script}))
                .unwrap();
            ctx.server.enqueue(&id, "default").unwrap();
            (id, h)
        })
        .collect();
    let normal = ctx.script_task("normal after hostile", "print('normal task ran')\n");
    ctx.server.enqueue(&normal, "default").unwrap();
    let d: Daemon = ctx.daemon(daemon_args);
    for (id, h) in &tasks {
        let t = ctx.wait_status(id, &["completed", "failed"], Some(&d));
        // the child may set the status before the daemon has shipped its last line
        let log = ctx.wait_log(id, |l| l.contains(h.expect), &d);
        for secret in [SECRET, TOKEN, PASSWORD] {
            assert!(
                !log.contains(secret),
                "{}: secret {secret} in the task log:\n{log}",
                h.name
            );
        }
        assert!(!log.contains("LEAK in"), "{}: {log}", h.name);
        if let Some(line) = log.lines().find(|l| l.starts_with("config shown ")) {
            // the task looked at its whole folder (the checkout's .git files included)
            let files: usize = line["config shown ".len()..].trim().parse().unwrap();
            assert!(files > 10, "{line}");
            assert!(log.contains("[remote \"origin\"]"), "{log}");
        }
        assert!(
            log.contains(h.expect),
            "{} ({}): missing {:?} in:\n{log}",
            h.name,
            t["status"],
            h.expect
        );
    }
    let t = ctx.wait_status(&normal, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&normal).unwrap();
    assert_eq!(t["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("normal task ran"), "{log}");
    let out = d.output();
    for secret in [SECRET, TOKEN, PASSWORD] {
        assert!(
            !out.contains(secret),
            "secret {secret} in the agent output:\n{out}"
        );
        // every line has been shipped by now
        for (id, h) in &tasks {
            let log = ctx.server.log_text(id).unwrap();
            assert!(
                !log.contains(secret),
                "{}: secret {secret} in:\n{log}",
                h.name
            );
            assert!(!log.contains("LEAK in"), "{}: {log}", h.name);
        }
    }
    assert_eq!(canary.snapshot(), before, "a host file changed:\n{out}");
    for p in home_targets(ctx) {
        assert!(!p.exists(), "{} was created", p.display());
    }
}

#[test]
fn hostile_sources_in_docker_mode_touch_nothing_on_the_host() {
    let img = image();
    let canary = Canary::new();
    let hostile = HostileRepo::new(&canary);
    let port = serve_dumb_http(hostile.bare.parent().unwrap().to_path_buf());
    // the admin allows host repositories here, so the other protections are what is tested
    let ctx = docker_context()
        .conf("agent.docker_allow_host_repositories: true")
        .build();
    let url = hostile.path.display().to_string();
    run_table(
        &ctx,
        &canary,
        hostile_table(&canary, &url, port),
        &["--queue", "default", "--cpu-only", "--docker", img],
    );
    // every task's folder is gone, and nothing of the secrets stayed in the temp folder
    let leftovers: Vec<_> = std::fs::read_dir(ctx.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("clearml-agent-docker"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn hostile_sources_in_venv_mode_stay_in_the_task_folder() {
    let canary = Canary::new();
    let hostile = HostileRepo::new(&canary);
    let port = serve_dumb_http(hostile.bare.parent().unwrap().to_path_buf());
    let ctx = AgentContext::new();
    let url = format!("file://{}", hostile.path.display());
    run_table(
        &ctx,
        &canary,
        hostile_table(&canary, &url, port),
        &["--queue", "default", "--cpu-only"],
    );
}

/// The Python agent clones inside the container, where host paths do not exist: a host path
/// or `file://` repository is refused in docker mode unless the admin allows it.
#[test]
fn host_repositories_are_refused_in_docker_mode() {
    let img = image();
    let canary = Canary::new();
    let hostile = HostileRepo::new(&canary);
    let ctx = docker_context().build();
    let table = vec![
        Hostile {
            name: "host path repository",
            script: repo(&hostile.path.display().to_string(), json!({})),
            expect: "agent.docker_allow_host_repositories",
        },
        Hostile {
            name: "file:// repository",
            script: repo(&format!("file://{}", hostile.path.display()), json!({})),
            expect: "agent.docker_allow_host_repositories",
        },
        Hostile {
            name: "relative host path repository",
            script: repo("../../../etc", json!({})),
            expect: "agent.docker_allow_host_repositories",
        },
    ];
    run_table(
        &ctx,
        &canary,
        table,
        &["--queue", "default", "--cpu-only", "--docker", img],
    );
    assert!(
        !ctx.root().join("vcs").exists()
            || std::fs::read_dir(ctx.root().join("vcs")).unwrap().count() == 0,
        "a host repository was cloned"
    );
}

/// A docker task's folder on the host: a fresh random name, mode 0700, even with a folder of
/// the old fixed name planted world-writable by another user.
#[test]
fn docker_work_folder_is_private_and_unpredictable() {
    let img = image();
    let ctx = docker_context().build();
    let planted = ctx.root().join("tmp/clearml-agent-docker");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(planted.join("planted.txt"), "x").unwrap();
    let script = "import os\nparent = os.path.dirname(os.getcwd())\n\
                  print('folder', os.path.basename(parent), oct(os.stat(parent).st_mode & 0o777))\n";
    let task = ctx.script_task("private folder", script);
    ctx.server.enqueue(&task, "default").unwrap();
    let d = ctx.daemon(&["--queue", "default", "--cpu-only", "--docker", img]);
    let t = ctx.wait_status(&task, &["completed", "failed"], Some(&d));
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(t["status"], "completed", "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("folder "))
        .unwrap_or_else(|| panic!("no folder line in:\n{log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words[1].starts_with("clearml-agent-docker-") && words[1].len() > 25,
        "{line}"
    );
    assert_eq!(words[2], "0o700", "{line}");
    let entries: Vec<_> = std::fs::read_dir(&planted).unwrap().collect();
    assert_eq!(entries.len(), 1, "the planted folder was used");
}

/// With `agent.enable_git_ask_pass: false` the agent's credentials go into the clone URL (as in
/// the Python agent); they are removed from the checkout's `.git/config` before the task runs,
/// and never logged.
#[test]
fn agent_credentials_put_in_the_url_do_not_stay_in_the_checkout() {
    let img = image();
    let canary = Canary::new();
    let hostile = HostileRepo::new(&canary);
    let port = serve_dumb_http(hostile.bare.parent().unwrap().to_path_buf());
    let conf = format!(
        "agent.enable_git_ask_pass: false\nagent.git_user: alice\nagent.git_pass: \"{PASSWORD}\""
    );
    let table = || {
        vec![Hostile {
            name: "agent credentials in the clone URL",
            script: repo(
                &format!("http://127.0.0.1:{port}/hostile.git"),
                json!({"entry_point": "show_config.py"}),
            ),
            expect: "config shown",
        }]
    };
    let ctx = docker_context().conf(&conf).build();
    run_table(
        &ctx,
        &canary,
        table(),
        &["--queue", "default", "--cpu-only", "--docker", img],
    );
    let ctx = AgentContext::builder().conf(&conf).build();
    run_table(
        &ctx,
        &canary,
        table(),
        &["--queue", "default", "--cpu-only"],
    );
}
