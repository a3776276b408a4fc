//! Integration tests: settings. Layering (defaults < file < env < CLI) with temp homes, temp config files
//! and injected environments; legacy TRAINS_* names; one-line errors for bad values; the real binary's
//! `config` printout (masking) and `init` writing a file that resolves back to the same values.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};
use std::time::Duration;

use clearml_agent::cli::{Cli, InitArgs};
use clearml_agent::commands::init::{self, InitOutcome};
use clearml_agent::config::{
    self, CommandOptions, Error, HttpMethod, PackageManagerType, Resolved,
};

/// A temp home with an optional `clearml.conf`, and an environment map.
struct Ctx {
    home: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Ctx {
    fn new() -> Ctx {
        let mut env = HashMap::new();
        env.insert("CLEARML_WORKER_NAME".to_string(), "testhost".to_string());
        Ctx {
            home: tempfile::tempdir().expect("tempdir"),
            env,
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn conf(self, text: &str) -> Ctx {
        self.file("clearml.conf", text);
        self
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home().join(name);
        std::fs::write(&path, text).expect("write conf");
        path
    }

    fn env(mut self, k: &str, v: &str) -> Ctx {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    fn try_resolve(&self, line: &str) -> Result<Resolved, Error> {
        let words: Vec<String> = std::iter::once("clearml-agent".to_string())
            .chain(config::settings::shell_split(line))
            .collect();
        let cli = Cli::parse_from_args(words).expect("parse");
        let lookup = |k: &str| self.env.get(k).cloned();
        let injected: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        config::resolve_with_injected(&cli, &lookup, &injected, Some(self.home()))
    }

    fn resolve(&self, line: &str) -> Resolved {
        match self.try_resolve(line) {
            Ok(r) => r,
            Err(e) => panic!("`{line}` did not resolve: {e}"),
        }
    }

    fn error(&self, line: &str) -> String {
        match self.try_resolve(line) {
            Ok(_) => panic!("`{line}` resolved but should fail"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn built_in_defaults() {
    let ctx = Ctx::new();
    let r = ctx.resolve("config");
    let s = &r.settings;
    assert!(r.file.is_none());
    assert_eq!(s.api.api_server, None);
    assert!(s.api.verify_certificate);
    assert_eq!(s.api.default_method, HttpMethod::Get);
    assert_eq!(s.api.retries.total, 240);
    assert_eq!(s.api.retries.backoff_max, 120.0);
    assert_eq!(s.api.max_req_size, 15_728_640);
    assert_eq!(s.api.initial_connect_retries, 4);
    assert_eq!(s.agent.worker_name, "testhost");
    assert_eq!(s.agent.worker_id, None);
    assert_eq!(s.agent.package_manager.type_, PackageManagerType::Pip);
    assert_eq!(s.agent.package_manager.pip_version.len(), 3);
    assert_eq!(
        s.agent.package_manager.priority_packages,
        ["cython", "numpy", "setuptools", "pip", "uv"]
    );
    assert_eq!(s.agent.venvs_dir, ctx.home().join(".clearml/venvs-builds"));
    assert_eq!(
        s.agent.venvs_cache.path,
        Some(ctx.home().join(".clearml/venvs-cache"))
    );
    assert_eq!(s.agent.venvs_cache.max_entries, 10);
    assert_eq!(s.agent.venvs_cache.free_space_threshold_gb, 2.0);
    assert!(s.agent.vcs_cache.enabled);
    assert_eq!(
        s.agent.vcs_cache.path,
        ctx.home().join(".clearml/vcs-cache")
    );
    assert!(s.agent.pip_download_cache.enabled);
    assert_eq!(
        s.agent.git_fetch_args,
        ["--all", "--tags", "--recurse-submodules"]
    );
    assert!(
        s.agent.translate_ssh && s.agent.enable_git_ask_pass && !s.agent.force_git_ssh_protocol
    );
    assert_eq!(
        s.agent.default_docker.image,
        "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu20.04"
    );
    assert!(s.agent.default_docker.arguments.is_empty());
    assert_eq!(s.agent.forbidden_docker_args, ["entrypoint"]);
    assert_eq!(s.agent.task_ping_interval, Duration::from_secs(60));
    assert_eq!(s.agent.status_report_interval, Duration::from_secs(30));
    assert!(s.agent.suppress_carriage_return);
    assert_eq!(
        s.agent.abort_callback_max_timeout,
        Duration::from_secs(1800)
    );
    assert!(s.agent.apply_environment && s.agent.apply_files);
    assert_eq!(s.agent.docker_internal_mounts.pip_cache, "/root/.cache/pip");
    assert_eq!(s.sdk.cache_dir, ctx.home().join(".clearml/cache"));
    assert!(!s.debug);
    assert!(matches!(s.command, CommandOptions::Config));
}

#[test]
fn file_values_and_derived_hosts() {
    let ctx = Ctx::new().conf(
        r#"
        api {
            api_server: "http://srv:8008/"
            credentials { access_key: "AK", secret_key: "SK" }
        }
        agent {
            package_manager.type: uv
            venvs_dir: "$HOME/venvs"
            git_user: fileuser
            vcs_cache.enabled: "yes"
            default_docker { image: "python:3.11", arguments: "--ipc=host" }
        }
        environment { FOO: bar, FLAG: true, N: 3 }
        "#,
    );
    let home = ctx.home().display().to_string();
    let ctx = ctx.env("HOME", &home);
    let r = ctx.resolve("config");
    let s = &r.settings;
    assert_eq!(
        r.file.as_deref(),
        Some(ctx.home().join("clearml.conf").as_path())
    );
    assert_eq!(s.config_file, r.file);
    assert_eq!(s.api.api_server.as_deref(), Some("http://srv:8008"));
    assert_eq!(s.api.web_server.as_deref(), Some("http://srv:8080"));
    assert_eq!(s.api.files_server.as_deref(), Some("http://srv:8081"));
    assert_eq!(s.api.access_key.as_deref(), Some("AK"));
    assert_eq!(s.api.secret_key.as_deref(), Some("SK"));
    assert_eq!(s.agent.package_manager.type_, PackageManagerType::Uv);
    assert_eq!(s.agent.venvs_dir, ctx.home().join("venvs"));
    assert_eq!(s.agent.git_user.as_deref(), Some("fileuser"));
    assert!(s.agent.vcs_cache.enabled, "caseless string bool");
    assert_eq!(s.agent.default_docker.image, "python:3.11");
    assert_eq!(s.agent.default_docker.arguments, ["--ipc=host"]);
    assert_eq!(
        s.environment,
        [
            ("FOO".to_string(), "bar".to_string()),
            ("FLAG".to_string(), "True".to_string()),
            ("N".to_string(), "3".to_string())
        ]
    );
    // api.host mirrors api_server in the tree, as the Python agent does
    assert_eq!(
        config::get_path(&r.tree, "api.host").and_then(|v| v.as_str()),
        Some("http://srv:8008/")
    );
}

#[test]
fn precedence_defaults_file_env_cli() {
    let ctx = Ctx::new().conf(
        r#"api.api_server: "http://file:8008"
           agent { worker_id: "file-id", git_user: "fileuser", git_pass: "filepass" }"#,
    );
    // file
    let r = ctx.resolve("daemon --queue q");
    assert_eq!(
        r.settings.api.api_server.as_deref(),
        Some("http://file:8008")
    );
    assert_eq!(r.settings.agent.worker_id.as_deref(), Some("file-id"));

    // env beats file
    let ctx = ctx
        .env("CLEARML_API_HOST", "http://env:8008")
        .env("CLEARML_WORKER_ID", "env-id")
        .env("CLEARML_AGENT_GIT_USER", "envuser");
    let r = ctx.resolve("daemon --queue q");
    assert_eq!(
        r.settings.api.api_server.as_deref(),
        Some("http://env:8008")
    );
    assert_eq!(r.settings.agent.worker_id.as_deref(), Some("env-id"));
    assert_eq!(r.settings.agent.git_user.as_deref(), Some("envuser"));
    assert_eq!(r.settings.agent.git_pass.as_deref(), Some("filepass"));

    // CLI beats env
    let r = ctx.resolve("daemon --queue q --git-user cliuser --git-pass clipass");
    assert_eq!(r.settings.agent.git_user.as_deref(), Some("cliuser"));
    assert_eq!(r.settings.agent.git_pass.as_deref(), Some("clipass"));
    let r = ctx.resolve("-d config");
    assert!(r.settings.debug);
}

#[test]
fn legacy_trains_names() {
    let ctx = Ctx::new()
        .env("TRAINS_API_HOST", "http://trains:8008")
        .env("TRAINS_API_ACCESS_KEY", "TAK")
        .env("TRAINS_API_SECRET_KEY", "TSK")
        .env("TRAINS_WORKER_NAME", "ignored-because-clearml-set")
        .env("TRAINS_AGENT_GIT_PASS", "tpass")
        .env("TRAINS_DOCKER_IMAGE", "ubuntu:22.04 -e X=1");
    let s = ctx.resolve("config").settings;
    assert_eq!(s.api.api_server.as_deref(), Some("http://trains:8008"));
    assert_eq!(s.api.access_key.as_deref(), Some("TAK"));
    assert_eq!(s.api.secret_key.as_deref(), Some("TSK"));
    assert_eq!(
        s.agent.worker_name, "testhost",
        "CLEARML_* wins over TRAINS_*"
    );
    assert_eq!(s.agent.git_pass.as_deref(), Some("tpass"));
    assert_eq!(s.agent.default_docker.image, "ubuntu:22.04");
    assert_eq!(s.agent.default_docker.arguments, ["-e", "X=1"]);

    // ~/trains.conf is read before ~/clearml.conf (later wins)
    let ctx = Ctx::new();
    ctx.file(
        "trains.conf",
        "api.api_server: \"http://t:8008\"\nagent.worker_id: tid",
    );
    ctx.file("clearml.conf", "api.api_server: \"http://c:8008\"");
    let r = ctx.resolve("config");
    assert_eq!(r.settings.api.api_server.as_deref(), Some("http://c:8008"));
    assert_eq!(r.settings.agent.worker_id.as_deref(), Some("tid"));
    assert_eq!(
        r.file.as_deref(),
        Some(ctx.home().join("clearml.conf").as_path())
    );
}

#[test]
fn config_file_selection() {
    let ctx = Ctx::new().conf("api.api_server: \"http://home:8008\"");
    let other = ctx.file("other.conf", "api.api_server: \"http://other:8008\"");
    let third = ctx.file("third.conf", "api.api_server: \"http://third:8008\"");

    // CLEARML_CONFIG_FILE: only that file
    let ctx = ctx.env("CLEARML_CONFIG_FILE", &other.display().to_string());
    let r = ctx.resolve("config");
    assert_eq!(
        r.settings.api.api_server.as_deref(),
        Some("http://other:8008")
    );
    assert_eq!(r.file.as_deref(), Some(other.as_path()));

    // --config-file beats the variable
    let r = ctx.resolve(&format!("--config-file {} config", third.display()));
    assert_eq!(
        r.settings.api.api_server.as_deref(),
        Some("http://third:8008")
    );

    // a missing --config-file is an error naming it
    let missing = ctx.home().join("missing.conf");
    let err = ctx.error(&format!("--config-file {} config", missing.display()));
    assert_eq!(
        err,
        format!("Could not open configuration file: {}", missing.display())
    );
}

#[test]
fn injected_config_values() {
    let ctx = Ctx::new()
        .env("CLEARML_AGENT__AGENT__WORKER_ID", "injected")
        .env(
            "CLEARML_AGENT__AGENT__PACKAGE_MANAGER__EXTRA_INDEX_URL",
            "[\"https://a/simple\", \"https://b/simple\"]",
        )
        .env("CLEARML_AGENT__AGENT__DOCKER_FORCE_PULL", "true");
    let s = ctx.resolve("config").settings;
    assert_eq!(s.agent.worker_id.as_deref(), Some("injected"));
    assert_eq!(
        s.agent.package_manager.extra_index_url,
        ["https://a/simple", "https://b/simple"]
    );
    assert!(s.agent.docker_force_pull);
}

#[test]
fn env_only_settings() {
    let ctx = Ctx::new()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "0.5")
        .env("CLEARML_AGENT_STATUS_REPORT_FREQ_SEC", "7")
        .env("CLEARML_AGENT_EXTRA_DOCKER_ARGS", "--ipc=host -e 'A=b c'")
        .env("CLEARML_AGENT_FORCE_UV", "1")
        .env("CLEARML_API_HOST_VERIFY_CERT", "false")
        .env("CLEARML_API_DEFAULT_REQ_METHOD", "POST")
        .env("CLEARML_AUTH_TOKEN", "tok")
        .env("CLEARML_AGENT_INITIAL_CONNECT_RETRY_OVERRIDE", "false");
    let r = ctx.resolve("daemon --queue q --polling-interval 30");
    let s = &r.settings;
    let CommandOptions::Daemon(d) = &s.command else {
        panic!("daemon")
    };
    assert_eq!(
        d.polling_interval,
        Duration::from_millis(500),
        "env wins, even under 5 s"
    );
    assert_eq!(s.agent.status_report_interval, Duration::from_secs(7));
    assert_eq!(
        s.agent.extra_docker_arguments,
        ["--ipc=host", "-e", "A=b c"]
    );
    assert_eq!(s.agent.package_manager.type_, PackageManagerType::Uv);
    assert!(!s.api.verify_certificate);
    assert_eq!(s.api.default_method, HttpMethod::Post);
    assert_eq!(s.api.auth_token.as_deref(), Some("tok"));
    assert_eq!(s.api.initial_connect_retries, 0);
}

#[test]
fn invalid_values_give_one_line_errors() {
    let ctx = Ctx::new().conf("agent.package_manager.type: foo");
    let conf = ctx.home().join("clearml.conf").display().to_string();
    let err = ctx.error("config");
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("agent.package_manager.type"), "{err}");
    assert!(err.contains(&conf), "{err}");
    assert!(err.contains("pip, uv, conda, poetry"), "{err}");

    let err = Ctx::new()
        .conf("agent.docker_force_pull: maybe")
        .error("config");
    assert!(
        err.contains("agent.docker_force_pull") && err.contains("true or false"),
        "{err}"
    );

    let err = Ctx::new()
        .conf("agent.venvs_cache.max_entries: lots")
        .error("config");
    assert!(err.contains("agent.venvs_cache.max_entries"), "{err}");

    let err = Ctx::new().error("daemon --queue q --gpus zero");
    assert!(err.contains("--gpus") && err.contains("zero"), "{err}");

    let err = Ctx::new()
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "soon")
        .error("config");
    assert!(err.contains("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC"), "{err}");

    let err = Ctx::new()
        .env("CLEARML_CPU_ONLY", "perhaps")
        .error("config");
    assert!(err.contains("CLEARML_CPU_ONLY"), "{err}");

    let err = Ctx::new().conf("api { api_server: ").error("config");
    assert!(err.contains("clearml.conf"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn gpus_are_ignored_inside_kubernetes() {
    let ctx = Ctx::new().env("KUBERNETES_SERVICE_HOST", "10.0.0.1");
    let CommandOptions::Daemon(d) = ctx.resolve("daemon --queue q --gpus 0").settings.command
    else {
        panic!("daemon")
    };
    assert_eq!(d.worker.gpus, config::GpuSpec::Unset);
    let CommandOptions::Daemon(d) = Ctx::new()
        .resolve("daemon --queue q --gpus 0")
        .settings
        .command
    else {
        panic!("daemon")
    };
    assert_eq!(d.worker.gpus, config::GpuSpec::List(vec!["0".into()]));
}

#[test]
fn docker_spec_from_config_defaults() {
    let ctx = Ctx::new().conf(
        r#"agent.default_docker { image: "python:3.10", arguments: ["--ipc=host", "-e", "A=1"] }"#,
    );
    let CommandOptions::Daemon(d) = ctx.resolve("daemon --queue q --docker").settings.command
    else {
        panic!("daemon")
    };
    let docker = d.docker.expect("docker mode");
    assert_eq!(docker.image, "python:3.10");
    assert_eq!(docker.args, ["--ipc=host", "-e", "A=1"]);
}

// ---- the real binary ------------------------------------------------------------------------------

fn agent(args: &[&str], home: &Path) -> Output {
    Proc::new(env!("CARGO_BIN_EXE_clearml-agent"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("CLEARML_WORKER_NAME", "testhost")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run clearml-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_command_prints_masked_properties() {
    let ctx = Ctx::new().conf(
        r#"
        api { api_server: "http://localhost:8008", credentials { access_key: "AK", secret_key: "SK" } }
        agent {
            git_user: "u"
            git_pass: "p=x"
            enable_git_ask_pass: true
            package_manager.extra_index_url: ["https://user:pw@idx.example/simple"]
            extra_docker_arguments: ["-e", "CLEARML_API_SECRET_KEY=abc", "-e", "URL=https://a:b@h/x", "--ipc=host"]
        }
        environment { FOO: bar }
        "#,
    );
    let out = agent(&["config"], ctx.home());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let conf = ctx.home().join("clearml.conf");
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("Current configuration (clearml_agent v"),
        "{header}"
    );
    assert!(
        header.ends_with(&format!("location: {}):", conf.display())),
        "{header}"
    );
    assert_eq!(lines.next(), Some("----------------------"));
    for expected in [
        "api.api_server = http://localhost:8008",
        "api.host = http://localhost:8008",
        "api.credentials.access_key = AK",
        "api.credentials.secret_key = ****",
        "api.auth.token_expiration_threshold_sec = ****",
        "agent.git_user = u",
        "agent.git_pass = ****",
        "agent.enable_git_ask_pass = true",
        "agent.worker_name = testhost",
        "agent.package_manager.extra_index_url.0 = https://user:********@idx.example/simple",
        "agent.package_manager.pip_version.1 = <22.3 ; python_version >\\= '3.10' and python_version <\\= '3.11'",
        "agent.extra_docker_arguments.1 = CLEARML_API_SECRET_KEY\\=********",
        "agent.extra_docker_arguments.3 = URL\\=https://a:********@h/x",
        "agent.extra_docker_arguments.4 = --ipc\\=host",
        "agent.sanitize_config_printout = ****",
        "agent.venvs_cache.free_space_threshold_gb = 2.0",
        "sdk.storage.cache.size.min_free_bytes = 10GB",
        "environment.FOO = ****",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("SK\n") && !stdout.contains("p=x") && !stdout.contains(":pw@"));
    assert!(!stdout.contains("logging."), "logging keys are not printed");

    // no file at all: location None, still exit 0 and no server contact
    let empty = tempfile::tempdir().expect("tempdir");
    let out = agent(&["config"], empty.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("location: None):"));
}

#[test]
fn init_non_interactive_writes_a_file_that_resolves_back() {
    let ctx = Ctx::new();
    let out = agent(
        &[
            "init",
            "--api-host",
            "http://localhost:8008",
            "--access-key",
            "AK\"1",
            "--secret-key",
            "S K 2",
            "--git-user",
            "gu",
            "--git-pass",
            "gp",
        ],
        ctx.home(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("CLEARML-AGENT setup completed successfully."));
    let conf = ctx.home().join("clearml.conf");
    assert!(conf.is_file());

    let s = ctx.resolve("config").settings;
    assert_eq!(s.api.api_server.as_deref(), Some("http://localhost:8008"));
    assert_eq!(s.api.web_server.as_deref(), Some("http://localhost:8080"));
    assert_eq!(s.api.files_server.as_deref(), Some("http://localhost:8081"));
    assert_eq!(s.api.access_key.as_deref(), Some("AK\"1"));
    assert_eq!(s.api.secret_key.as_deref(), Some("S K 2"));
    assert_eq!(s.agent.git_user.as_deref(), Some("gu"));
    assert_eq!(s.agent.git_pass.as_deref(), Some("gp"));
    assert!(s.agent.package_manager.extra_index_url.is_empty());

    // never overwrites a non-empty file
    let before = std::fs::read(&conf).expect("read");
    let out = agent(
        &[
            "init",
            "--non-interactive",
            "--api-host",
            "http://x:8008",
            "--access-key",
            "a",
            "--secret-key",
            "b",
        ],
        ctx.home(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&conf).expect("read"), before);

    // --non-interactive with a missing value names the flag
    let other = tempfile::tempdir().expect("tempdir");
    let out = agent(
        &["init", "--non-interactive", "--api-host", "http://x:8008"],
        other.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--access-key, --secret-key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_interactive_flow_from_pasted_block() {
    let ctx = Ctx::new();
    let target = ctx.home().join("clearml.conf");
    let answers = "api {\n  web_server: http://localhost:8080\n  api_server: http://localhost:8008\n  credentials {\n    \"access_key\" = \"PASTEDAK\"\n    \"secret_key\" = \"PASTEDSK\"\n  }\n}\n\
        \n\
        \n\
        \n\
        S\n\
        gituser\n\
        gittoken\n\
        https://u:p@pkgs.example/simple\n\
        \n";
    let mut input = Cursor::new(answers.as_bytes().to_vec());
    let mut out = Vec::new();
    let checked = std::cell::RefCell::new(Vec::new());
    let verify = |api: &str, key: &str, secret: &str| {
        checked
            .borrow_mut()
            .push((api.to_string(), key.to_string(), secret.to_string()));
        Ok(())
    };
    let outcome =
        init::run(&InitArgs::default(), &target, &mut input, &mut out, &verify).expect("init");
    assert_eq!(
        outcome,
        InitOutcome::Written(target.clone()),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        checked.borrow().as_slice(),
        [(
            "http://localhost:8008".to_string(),
            "PASTEDAK".to_string(),
            "PASTEDSK".to_string()
        )]
    );
    let s = ctx.resolve("config").settings;
    assert_eq!(s.api.api_server.as_deref(), Some("http://localhost:8008"));
    assert_eq!(s.api.web_server.as_deref(), Some("http://localhost:8080"));
    assert_eq!(s.api.files_server.as_deref(), Some("http://localhost:8081"));
    assert_eq!(s.api.access_key.as_deref(), Some("PASTEDAK"));
    assert_eq!(s.agent.git_user.as_deref(), Some("gituser"));
    assert_eq!(s.agent.git_pass.as_deref(), Some("gittoken"));
    assert_eq!(
        s.agent.package_manager.extra_index_url,
        ["https://u:p@pkgs.example/simple"]
    );
    assert_eq!(
        s.sdk.default_output_uri.as_deref(),
        Some("http://localhost:8081")
    );

    // failed verification twice: nothing written
    let other = tempfile::tempdir().expect("tempdir");
    let target = other.path().join("clearml.conf");
    let answers =
        "{\"access_key\": \"A\", \"secret_key\": \"B\"}\n}\nhttp://localhost:8008\n\n\nA2\nB2\n";
    let mut input = Cursor::new(answers.as_bytes().to_vec());
    let mut out = Vec::new();
    let refuse = |_: &str, _: &str, _: &str| Err("HTTP 401".to_string());
    let outcome =
        init::run(&InitArgs::default(), &target, &mut input, &mut out, &refuse).expect("init");
    assert_eq!(
        outcome,
        InitOutcome::Aborted,
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!target.exists());
}

#[test]
fn init_verifies_credentials_against_a_real_server_and_the_file_it_writes_works() {
    let server = clearml_test_server::TestServer::start_default().expect("server");
    // The real check the interactive flow runs: good keys pass, bad keys give a clear error.
    init::verify_with_server(&server.url(), server.access_key(), server.secret_key())
        .expect("valid credentials are accepted");
    let err = init::verify_with_server(&server.url(), "wrong", "keys").unwrap_err();
    assert!(!err.is_empty());

    let home = tempfile::tempdir().expect("home");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clearml-agent"))
        .args([
            "init",
            "--non-interactive",
            "--api-host",
            &server.url(),
            "--access-key",
            server.access_key(),
            "--secret-key",
            server.secret_key(),
        ])
        .env("HOME", home.path())
        .env_remove("CLEARML_CONFIG_FILE")
        .env_remove("CLEARML_API_HOST")
        .output()
        .expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The written file is enough for `list` to talk to the server.
    server
        .call(
            "workers.register",
            serde_json::json!({"worker": "host:gpu0", "queues": []}),
        )
        .expect("register");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clearml-agent"))
        .arg("list")
        .env("HOME", home.path())
        .env_remove("CLEARML_CONFIG_FILE")
        .env_remove("CLEARML_API_HOST")
        .output()
        .expect("list runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("workers:") && stdout.contains("host:gpu0"),
        "{stdout}"
    );
}

#[test]
fn non_finite_negative_and_huge_numbers_are_one_line_errors_naming_the_key() {
    for value in ["inf", "-inf", "nan", "1e30", "infinity", "1e10"] {
        let e = Ctx::new()
            .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", value)
            .error("daemon --queue q");
        assert!(
            e.contains("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC"),
            "{value}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = Ctx::new()
            .conf(&format!("agent.task_ping_interval_sec: \"{value}\"\n"))
            .error("daemon --queue q");
        assert!(e.contains("agent.task_ping_interval_sec"), "{value}: {e}");
    }
    let e = Ctx::new()
        .conf("agent.venvs_cache.free_space_threshold_gb: \"nan\"\n")
        .error("config");
    assert!(
        e.contains("free_space_threshold_gb") && e.contains("finite"),
        "{e}"
    );
    let e = Ctx::new().error("daemon --queue q --polling-interval 99999999999");
    assert!(e.contains("--polling-interval"), "{e}");
    // Negative seconds clamp to zero, as the Python agent's max(0, ...) does.
    let r = Ctx::new()
        .conf("agent.task_ping_interval_sec: -5\n")
        .resolve("daemon --queue q");
    assert_eq!(r.settings.agent.task_ping_interval, Duration::ZERO);

    // The real binary: a one-line error and exit code 1, never a panic.
    let home = tempfile::tempdir().unwrap();
    let out = Proc::new(env!("CARGO_BIN_EXE_clearml-agent"))
        .args(["daemon", "--queue", "q", "--foreground"])
        .env("HOME", home.path())
        .env("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "inf")
        .env_remove("CLEARML_CONFIG_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("CLEARML_AGENT_QUEUE_POLL_FREQ_SEC") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

mod fuzz {
    //! Arbitrary command lines, `clearml.conf` numbers and environment values never panic the
    //! settings resolution: each either resolves or is a one-line error.
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "daemon",
        "execute",
        "build",
        "list",
        "config",
        "--queue",
        "q",
        "--gpus",
        "0,1",
        "0",
        "--polling-interval",
        "--services-mode",
        "--docker",
        "img",
        "--id",
        "abc",
        "--detached",
        "--stop",
        "--status",
        "--cpu-only",
        "--order-fairness",
        "--uptime",
        "--downtime",
        "17-20",
        "--dynamic-gpus",
        "--log-level",
        "--child-report-tags",
        "-O",
        "--full-monitoring",
        "--git-user",
        "--foreground",
        "--clone",
        "--target",
        "-d",
        "--",
        "=",
    ];
    const NUMBERS: &[&str] = &[
        "inf",
        "-inf",
        "nan",
        "NaN",
        "1e308",
        "-1e308",
        "1e9",
        "1e10",
        "18446744073709551616",
        "-1",
        "0",
        "0.5",
        "3",
        "abc",
        "",
        "9223372036854775807",
        "-9223372036854775808",
        "1e-320",
    ];
    const KEYS: &[&str] = &[
        "agent.task_ping_interval_sec",
        "agent.abort_callback_max_timeout",
        "agent.venvs_cache.max_entries",
        "agent.venvs_cache.free_space_threshold_gb",
        "agent.log_files_buffering",
        "agent.resource_monitoring.default_gpu_utilization",
        "api.http.retries.total",
        "api.http.retries.backoff_factor",
        "api.http.retries.backoff_max",
        "agent.docker_pull_timeout",
        "agent.reload_config",
    ];
    const ENVS: &[&str] = &[
        "CLEARML_AGENT_QUEUE_POLL_FREQ_SEC",
        "CLEARML_AGENT_STATUS_REPORT_FREQ_SEC",
        "CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT",
        "CLEARML_AGENT__agent__task_ping_interval_sec",
        "CLEARML_CPU_ONLY",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn settings_never_panic(
            words in proptest::collection::vec((0..WORDS.len(), 0..NUMBERS.len(), any::<bool>()), 0..8),
            keys in proptest::collection::vec((0..KEYS.len(), 0..NUMBERS.len()), 0..4),
            envs in proptest::collection::vec((0..ENVS.len(), 0..NUMBERS.len()), 0..3),
        ) {
            let argv: Vec<String> = std::iter::once("clearml-agent".to_string())
                .chain(words.iter().map(|&(w, n, num)| {
                    if num { NUMBERS[n].to_string() } else { WORDS[w].to_string() }
                }))
                .collect();
            let conf: String = keys
                .iter()
                .map(|&(k, n)| format!("{}: \"{}\"\n", KEYS[k], NUMBERS[n]))
                .collect();
            let mut ctx = Ctx::new().conf(&conf);
            for &(e, n) in &envs {
                ctx = ctx.env(ENVS[e], NUMBERS[n]);
            }
            if let Ok(cli) = Cli::parse_from_args(argv) {
                let lookup = |k: &str| ctx.env.get(k).cloned();
                let injected: Vec<(String, String)> =
                    ctx.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                if let Err(e) = config::resolve_with_injected(&cli, &lookup, &injected, Some(ctx.home())) {
                    prop_assert!(!e.to_string().contains('\n'), "{}", e);
                }
            }
        }
    }
}
