//! Integration tests: cli. Every command line from the ClearML "Manual Deployment" page and the
//! inventory parses to the intended options; `--docker` forms, `-d` placement, abbreviations, argument
//! files; the real binary's exit codes and error lines.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command as Proc, Output};

use clearml_agent::cli::{Cli, Command, LogLevel};
use clearml_agent::config::{
    self, CommandOptions, DaemonOptions, DockerSpec, ExecuteOptions, GpuSpec, Resolved,
};

const DEFAULT_IMAGE: &str = "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu20.04";

fn words(line: &str) -> Vec<String> {
    std::iter::once("clearml-agent".to_string())
        .chain(clearml_agent::config::settings::shell_split(line))
        .collect()
}

fn parse(line: &str) -> Cli {
    match Cli::parse_from_args(words(line)) {
        Ok(cli) => cli,
        Err(e) => panic!("`{line}` did not parse: {e}"),
    }
}

fn parse_err(line: &str) -> String {
    match Cli::parse_from_args(words(line)) {
        Ok(cli) => panic!("`{line}` parsed but should not: {cli:?}"),
        Err(e) => e.to_string(),
    }
}

/// Resolve with no environment and an empty temp home (built-in defaults only).
fn resolve_line(line: &str) -> Resolved {
    let home = tempfile::tempdir().expect("tempdir");
    let env: HashMap<&str, &str> = HashMap::from([("CLEARML_WORKER_NAME", "testhost")]);
    let lookup = |k: &str| env.get(k).map(|v| v.to_string());
    match config::resolve(&parse(line), &lookup, Some(home.path())) {
        Ok(r) => r,
        Err(e) => panic!("`{line}` did not resolve: {e}"),
    }
}

fn daemon(line: &str) -> DaemonOptions {
    match resolve_line(line).settings.command {
        CommandOptions::Daemon(d) => d,
        other => panic!("`{line}` is not a daemon command: {other:?}"),
    }
}

fn execute(line: &str) -> ExecuteOptions {
    match resolve_line(line).settings.command {
        CommandOptions::Execute(e) => e,
        other => panic!("`{line}` is not an execute command: {other:?}"),
    }
}

fn default_docker() -> Option<DockerSpec> {
    Some(DockerSpec {
        image: DEFAULT_IMAGE.into(),
        args: vec![],
    })
}

#[test]
fn manual_deployment_daemon_lines() {
    let d = daemon("daemon --queue my_queue");
    assert_eq!(d.queues, ["my_queue"]);
    assert!(!d.detached && !d.foreground && d.docker.is_none() && d.stop.is_none());
    assert_eq!(d.worker.gpus, GpuSpec::Unset);
    assert_eq!(d.polling_interval.as_secs(), 5);

    let d = daemon("daemon --queue exec_q --detached");
    assert!(d.detached);

    let d = daemon("daemon --queue exec_q --stop");
    assert_eq!(d.stop, Some(vec![]));

    let d = daemon("daemon --gpus 0 --queue default --docker");
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["0".into()]));
    assert_eq!(d.queues, ["default"]);
    assert_eq!(d.docker, default_docker());

    let d = daemon("daemon --gpus 1 --queue default --docker");
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["1".into()]));

    let d = daemon("daemon --gpus 0,1 --queue dual_gpu --docker");
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["0".into(), "1".into()]));
    assert_eq!(d.worker.gpus.visible_devices().as_deref(), Some("0,1"));

    let d = daemon("daemon --queue high_q low_q");
    assert_eq!(d.queues, ["high_q", "low_q"]);
    assert!(!d.order_fairness);

    let d = daemon("daemon --queue group_a group_b --order-fairness");
    assert_eq!(d.queues, ["group_a", "group_b"]);
    assert!(d.order_fairness);

    let d = daemon("daemon --gpus all --queue q --docker");
    assert_eq!(d.worker.gpus, GpuSpec::All);
    assert!(d.worker.gpus.removes_cuda_visible_devices());

    let d = daemon("daemon --queue default --foreground");
    assert!(d.foreground);
}

#[test]
fn manual_deployment_execute_lines() {
    let e = execute("execute --id abc123");
    assert_eq!(e.task_id, "abc123");
    assert!(!e.clone && e.docker.is_none());

    let e = execute("execute --id abc123 --clone");
    assert!(e.clone);

    let e = execute("execute --id abc123 --docker");
    assert_eq!(e.docker, default_docker());
}

#[test]
fn docker_forms() {
    // one quoted string: split on spaces
    let d = daemon("daemon --queue q --docker 'python:3.11 --ipc=host -e A=1'");
    assert_eq!(
        d.docker,
        Some(DockerSpec {
            image: "python:3.11".into(),
            args: vec!["--ipc=host".into(), "-e".into(), "A=1".into()]
        })
    );
    // several words, flag-like ones included, ended by a known option
    let d = daemon("daemon --docker python:3.11 --ipc=host -v /a:/b --queue q --gpus 0");
    assert_eq!(
        d.docker,
        Some(DockerSpec {
            image: "python:3.11".into(),
            args: vec!["--ipc=host".into(), "-v".into(), "/a:/b".into()]
        })
    );
    assert_eq!(d.queues, ["q"]);
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["0".into()]));
    // image only: arguments come from agent.default_docker.arguments (none by default)
    let d = daemon("daemon --docker python:3.11 --queue q");
    assert_eq!(
        d.docker,
        Some(DockerSpec {
            image: "python:3.11".into(),
            args: vec![]
        })
    );
    // bare --docker followed by options
    let e = execute("execute --docker --id t1 --full-monitoring");
    assert_eq!(e.docker, default_docker());
    assert_eq!(e.task_id, "t1");
    assert!(e.full_monitoring);
    // `--docker=img` takes exactly one word, as argparse does
    let e = execute("execute --docker=img --id t1");
    assert_eq!(e.docker.map(|d| d.image), Some("img".to_string()));
}

#[test]
fn podman_turns_docker_mode_on_and_conflicts_with_a_different_docker() {
    let cli = parse("daemon --podman img --queue q");
    assert_eq!(cli.unsupported_flags(), ["--podman"]);
    let home = tempfile::tempdir().expect("tempdir");
    let err = config::resolve(
        &parse("daemon --docker a --podman b --queue q"),
        &|_| None,
        Some(home.path()),
    )
    .expect_err("conflicting containers");
    assert!(err.to_string().contains("--podman"), "{err}");
}

#[test]
fn dash_d_placement_decides() {
    let cli = parse("-d daemon --queue q");
    assert!(cli.debug);
    let Some(Command::Daemon(d)) = &cli.command else {
        panic!("daemon")
    };
    assert!(!d.detached);

    let cli = parse("daemon -d --queue q");
    assert!(!cli.debug);
    let Some(Command::Daemon(d)) = &cli.command else {
        panic!("daemon")
    };
    assert!(d.detached);

    let cli = parse("--debug daemon -d --queue q");
    assert!(cli.debug);
    // execute has no -d of its own
    assert!(parse_err("execute --id x -d").contains("-d"));
}

#[test]
fn optional_value_flags() {
    let d = daemon("daemon --services-mode --queue q");
    assert_eq!(d.services_mode, Some(-1));
    let d = daemon("daemon --services-mode 3 --queue q");
    assert_eq!(d.services_mode, Some(3));
    let d = daemon("daemon --stop host:gpu0 host:gpu1");
    assert_eq!(d.stop, Some(vec!["host:gpu0".into(), "host:gpu1".into()]));
    let d = daemon("daemon --queue q --child-report-tags a b");
    assert_eq!(d.child_report_tags, Some(vec!["a".into(), "b".into()]));
    let d = daemon("daemon --queue q --uptime '17-20 TUE' --create-queue --status");
    assert_eq!(d.uptime, Some(vec!["17-20 TUE".into()]));
    assert!(d.create_queue && d.status);
    let d = daemon("daemon --queue q --polling-interval 1");
    assert_eq!(d.polling_interval.as_secs(), 5, "minimum is 5");
    let d =
        daemon("daemon --queue q --polling-interval 12 --standalone-mode --force-current-version");
    assert_eq!(d.polling_interval.as_secs(), 12);
    assert!(d.standalone_mode && d.force_current_version);
    let d = daemon("daemon --queue q -OO --log-level debug --cpu-only");
    assert_eq!(d.worker.optimization, 2);
    assert_eq!(d.worker.log_level, LogLevel::Debug);
    assert_eq!(d.worker.gpus, GpuSpec::CpuOnly);
    assert!(d.worker.cpu_only);
    let d = daemon("daemon --queue q --gpus 0:1,1");
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["0:1".into(), "1".into()]));
    let d = daemon("daemon --queue q=2 --gpus 0-3 --dynamic-gpus");
    assert_eq!(d.worker.gpus, GpuSpec::Range { first: 0, last: 3 });
    assert!(d.dynamic_gpus);
    // without --dynamic-gpus a range is the literal string, as the Python agent exports it
    let d = daemon("daemon --queue q --gpus 0-3");
    assert_eq!(d.worker.gpus, GpuSpec::List(vec!["0-3".into()]));
}

#[test]
fn execute_and_build_flags() {
    let e = execute(
        "execute --id t --log-file /tmp/x.log --require-queue --disable-monitoring --standalone-mode -O",
    );
    assert_eq!(e.log_file.as_deref(), Some(Path::new("/tmp/x.log")));
    assert!(e.require_queue && e.disable_monitoring && e.standalone_mode);
    assert_eq!(e.worker.optimization, 1);

    let r = resolve_line(
        "build --id t --target /tmp/venv --python-version 3.10 --install-globally --force-docker",
    );
    let CommandOptions::Build(b) = r.settings.command else {
        panic!("build")
    };
    assert_eq!(b.target.as_deref(), Some("/tmp/venv"));
    assert_eq!(b.python_version.as_deref(), Some("3.10"));
    assert!(b.install_globally && b.force_docker && b.docker.is_none());
    assert!(parse_err("build --id t --entry-point nope").contains("entry-point"));
    assert!(parse_err("execute --clone").contains("--id"));
}

#[test]
fn abbreviated_long_options_as_argparse() {
    let d = daemon("daemon --que q1 q2 --order");
    assert_eq!(d.queues, ["q1", "q2"]);
    assert!(d.order_fairness);
}

#[test]
fn argument_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("args.txt");
    std::fs::write(&file, "--queue\nfrom_file\n--foreground\n").expect("write");
    let d = daemon(&format!("daemon @{}", file.display()));
    assert_eq!(d.queues, ["from_file"]);
    assert!(d.foreground);
    let err = parse_err("daemon @/nonexistent/args.txt");
    assert!(err.contains("/nonexistent/args.txt"), "{err}");
}

#[test]
fn unsupported_flags_are_listed() {
    for (line, flag) in [
        ("daemon --queue q --use-owner-token", "--use-owner-token"),
        ("daemon --queue q --check-bootstrap", "--check-bootstrap"),
        (
            "build --id t --docker --entry-point reuse_task",
            "build --entry-point",
        ),
        ("install-bootstrap --force", "install-bootstrap"),
    ] {
        assert_eq!(parse(line).unsupported_flags(), [flag], "{line}");
    }
    assert!(
        parse("daemon --queue q --docker --detached")
            .unsupported_flags()
            .is_empty()
    );
    assert!(
        parse("build --id t --docker img --target out")
            .unsupported_flags()
            .is_empty()
    );
}

// ---- the real binary ------------------------------------------------------------------------------

fn agent(args: &[&str], home: &Path) -> Output {
    Proc::new(env!("CARGO_BIN_EXE_clearml-agent"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run clearml-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn binary_version_help_and_usage_errors() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = agent(&["--version"], home.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("CLEARML-AGENT version "));

    let out = agent(&[], home.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("daemon"));

    let out = agent(&["daemon", "--no-such-flag"], home.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn binary_refuses_unsupported_flags_with_one_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = agent(
        &["daemon", "--queue", "q", "--use-owner-token"],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "clearml_agent: ERROR: `--use-owner-token` is not supported yet by this agent\n"
    );
    let out = agent(&["install-bootstrap"], home.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("`install-bootstrap` is not supported"));
}

#[test]
fn binary_reports_missing_config_file_without_backtrace() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("nope.conf");
    let out = agent(
        &["--config-file", missing.to_str().expect("utf8"), "config"],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err,
        format!(
            "clearml_agent: ERROR: Could not open configuration file: {}\n",
            missing.display()
        )
    );
}
