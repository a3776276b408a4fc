//! The pip wheel of the binary: scripts/build-wheel.sh builds it, a fresh venv installs it, and the
//! `clearml-agent` it puts on that venv's PATH serves a queue against the test server.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::context::AgentContext;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest `GLIBC_x.y` version named in the binary's dynamic symbol table, as (x, y).
fn newest_glibc(binary: &Path) -> (u32, u32) {
    let table = run(Command::new("objdump").arg("-T").arg(binary), "objdump -T");
    table
        .split_whitespace()
        .filter_map(|word| {
            word.trim_matches(|c| c == '(' || c == ')')
                .strip_prefix("GLIBC_")
        })
        .filter_map(|v| {
            let mut parts = v.split('.').map(str::parse::<u32>);
            Some((
                parts.next()?.ok()?,
                parts.next().and_then(Result::ok).unwrap_or(0),
            ))
        })
        .max()
        .expect("the binary names glibc symbol versions")
}

#[test]
fn pip_wheel_installs_an_agent_that_runs_a_task() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    // A cache hit when scripts/test.sh built the wheel already: only the packaging runs again.
    let printed = run(
        Command::new("bash")
            .arg(root.join("scripts/build-wheel.sh"))
            .arg(work.path().join("wheels")),
        "scripts/build-wheel.sh",
    );
    let wheel = printed
        .lines()
        .last()
        .expect("build-wheel prints the wheel")
        .trim();
    let name = Path::new(wheel).file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("clearml_agent_rs-"), "{name}");
    assert!(name.contains("manylinux_2_17_x86_64"), "{name}");

    let venv = work.path().join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--disable-pip-version-check",
            ])
            .arg(wheel),
        "pip install of the wheel",
    );
    let agent = venv.join("bin/clearml-agent");
    assert!(
        agent.is_file(),
        "pip put no clearml-agent into {}",
        venv.display()
    );
    assert!(
        newest_glibc(&agent) <= (2, 17),
        "{:?}",
        newest_glibc(&agent)
    );
    let version = run(
        Command::new(&agent).arg("--version"),
        "clearml-agent --version",
    );
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    let ctx = AgentContext::new();
    let task = ctx.script_task(
        "from the wheel",
        "print('hello from the pip-installed agent')\n",
    );
    ctx.server.enqueue(&task, "default").unwrap();
    let mut daemon = ctx.daemon_of(
        &agent,
        &["--queue", "default", "--foreground", "--cpu-only"],
    );
    let t = ctx.wait_status(&task, &["completed", "failed", "stopped"], Some(&daemon));
    assert_eq!(t["status"], "completed", "{}", daemon.output());
    let log = ctx.server.log_text(&task).unwrap();
    assert!(log.contains("hello from the pip-installed agent"), "{log}");
    daemon.stop();
}
