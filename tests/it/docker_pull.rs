//! Image pulls against a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on 127.0.0.1 with basic authentication, the test image pushed to it by the docker
//! CLI. The agent finds credentials as the docker CLI does (a `docker-credential-*` helper from
//! `credsStore`/`credHelpers`), pulls with them, shows the pull in the task log, and pulls again
//! with `agent.docker_force_pull`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::docker::{context, docker, docker_task, image};

const USER: &str = "puller";
const PASSWORD: &str = "pass-word";
/// bcrypt of PASSWORD (cost 4), for the registry's htpasswd file.
const PASSWORD_BCRYPT: &str = "$2b$04$I/qLxfWaD747SlsYh9fSHe0buS9b6M/tZTydv7JZSocJKqy1V9E3a";

/// A registry on a free local port, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("{USER}:{PASSWORD_BCRYPT}\n"),
        )
        .unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: {addr}\n\
                 auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n",
                root = dir.path().join("data").display(),
                htpasswd = dir.path().join("htpasswd").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve"])
            .arg(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(Stdio::from(out))
            .spawn()
            .expect(
                "docker-registry (Debian package docker-registry; scripts/test.sh installs it)",
            );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            addr,
            _dir: dir,
            log,
        }
    }

    /// Pushes the test image as `<addr>/clearml/test:<tag>` with the docker CLI (a login of its
    /// own, in a config folder of its own); returns the name.
    fn push(&self, tag: &str) -> String {
        let name = format!("{}/clearml/test:{tag}", self.addr);
        let cli = tempfile::tempdir().unwrap();
        let config = cli.path().to_str().unwrap();
        docker(&["tag", image(), &name]);
        docker(&[
            "--config", config, "login", "-u", USER, "-p", PASSWORD, &self.addr,
        ]);
        docker(&["--config", config, "push", &name]);
        name
    }

    /// The requests the registry logged for manifests of `repo`.
    fn manifest_requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("/manifests/")
                    && (l.contains("\"GET ") || l.contains("\"HEAD "))
                    && l.contains(" 200 ")
            })
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A credential helper `docker-credential-<name>` in `dir` that answers with the registry's
/// credentials and writes the address it was asked for to `dir/asked`.
fn credential_helper(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\nprintf '%s' \"$server\" > {asked:?}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked = dir.join("asked").display().to_string(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn pull_takes_credentials_from_the_store_helper_and_shows_in_the_task_log() {
    let registry = Registry::start();
    let name = registry.push("store");
    // Not on the engine: the agent must pull it.
    docker(&["rmi", &name]);
    let bin = tempfile::tempdir().unwrap();
    credential_helper(bin.path(), "clearmltest");
    let ctx = context().env("PATH", &path_with(bin.path())).build();
    let docker_dir = ctx.root().join(".docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        json!({"credsStore": "clearmltest"}).to_string(),
    )
    .unwrap();
    let task = docker_task(
        &ctx,
        "pulled image",
        "print('ran in the pulled image')\n",
        json!({"image": name}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, image());
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains(&format!("Pulling image {name}")), "{log}");
    assert!(
        log.contains("store: Pulling from clearml/test")
            && log.contains(&format!("Status: Downloaded newer image for {name}")),
        "no pull progress: {log}"
    );
    assert!(
        !log.contains("Downloading ["),
        "byte counts reached the log: {log}"
    );
    assert!(log.contains("ran in the pulled image"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    assert_eq!(
        std::fs::read_to_string(bin.path().join("asked")).unwrap(),
        registry.addr
    );
    let _ = Command::new("docker").args(["rmi", &name]).output();
}

#[test]
fn force_pull_pulls_a_present_image_again_with_the_registry_helper() {
    let registry = Registry::start();
    let name = registry.push("force");
    let bin = tempfile::tempdir().unwrap();
    credential_helper(bin.path(), "perregistry");
    let ctx = context()
        .env("PATH", &path_with(bin.path()))
        .conf("agent.docker_force_pull: true")
        .build();
    let docker_dir = ctx.root().join(".docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        json!({"credsStore": "missing-helper", "credHelpers": {registry.addr.clone(): "perregistry"}})
            .to_string(),
    )
    .unwrap();
    let before = registry.manifest_requests();
    let task = docker_task(
        &ctx,
        "force pulled",
        "print('ok')\n",
        json!({"image": name}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, image());
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains(&format!("Pulling image {name}")), "{log}");
    assert!(
        registry.manifest_requests() > before,
        "the registry saw no pull:\n{}",
        std::fs::read_to_string(&registry.log).unwrap_or_default()
    );
    let _ = Command::new("docker").args(["rmi", &name]).output();
}

#[test]
fn a_pull_without_credentials_fails_the_task_naming_the_image() {
    let registry = Registry::start();
    let name = registry.push("denied");
    docker(&["rmi", &name]);
    let ctx = context().build();
    let task = docker_task(
        &ctx,
        "denied pull",
        "print('never')\n",
        json!({"image": name}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, image());
    assert_eq!(done["status"], "failed", "{log}\n{}", d.output());
    assert!(
        done["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&name)
            || log.contains(&name),
        "{done}\n{log}"
    );
    assert!(!log.contains("never"), "{log}");
}
