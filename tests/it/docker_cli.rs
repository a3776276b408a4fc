//! Conformance of the `docker run` flag translation with the docker CLI itself: for every flag,
//! the container-create request the real docker CLI of this machine sends to the Engine (seen
//! through a recording proxy in front of the real socket) equals ours on the fields that flag
//! sets. The same data renders the flag table of docs/docker.md (`UPDATE_DOCS=1` rewrites it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use clearml_agent::docker::args::{self, FLAGS};
use serde_json::{Value, json};

use crate::docker::image;

/// How our translation relates to the CLI's request for a case.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Ours sets exactly the fields the CLI sets, to the same values.
    Same,
    /// The CLI sets fields ours leaves alone on purpose (the note says why).
    Ignored,
    /// Ours refuses the flag, naming it (the note says why).
    Refused,
    /// The CLI cannot send it here (`docker create` has no such flag, or this engine's API is
    /// too old): ours is checked against `expected` instead.
    NotByCli,
}

struct Case {
    words: &'static [&'static str],
    kind: Kind,
    /// The Engine API field(s), for the docs table.
    field: &'static str,
    note: &'static str,
    /// Paths the CLI changes as a side effect of the flag that ours need not.
    skip: &'static [&'static str],
}

const fn case(words: &'static [&'static str], field: &'static str) -> Case {
    Case {
        words,
        kind: Kind::Same,
        field,
        note: "",
        skip: &[],
    }
}

const fn with(
    words: &'static [&'static str],
    kind: Kind,
    field: &'static str,
    note: &'static str,
) -> Case {
    Case {
        words,
        kind,
        field,
        note,
        skip: &[],
    }
}

/// One case (or more) for every flag of [`FLAGS`].
const CASES: &[Case] = &[
    case(&["--add-host", "h:1.2.3.4"], "HostConfig.ExtraHosts"),
    with(
        &["--attach", "stdout"],
        Kind::Ignored,
        "AttachStdout/AttachStderr",
        "the agent attaches to the container's output itself",
    ),
    case(&["--blkio-weight", "300"], "HostConfig.BlkioWeight"),
    case(
        &["--blkio-weight-device", "/dev/sda:200"],
        "HostConfig.BlkioWeightDevice",
    ),
    case(
        &["--cap-add", "NET_ADMIN"],
        "HostConfig.CapAdd (normalised to `CAP_NET_ADMIN`)",
    ),
    case(&["--cap-drop", "ALL"], "HostConfig.CapDrop"),
    case(&["--cgroup-parent", "my.slice"], "HostConfig.CgroupParent"),
    case(&["--cgroupns", "host"], "HostConfig.CgroupnsMode"),
    with(
        &["--cidfile", "/tmp/cid"],
        Kind::Refused,
        "",
        "the docker CLI writes that host file itself; the agent writes no host file a task names",
    ),
    case(&["--cpu-period", "100000"], "HostConfig.CpuPeriod"),
    case(&["--cpu-quota", "50000"], "HostConfig.CpuQuota"),
    case(&["--cpu-rt-period", "1000"], "HostConfig.CpuRealtimePeriod"),
    case(
        &["--cpu-rt-runtime", "950"],
        "HostConfig.CpuRealtimeRuntime",
    ),
    case(&["--cpu-shares", "512"], "HostConfig.CpuShares"),
    case(&["-c", "256"], "HostConfig.CpuShares"),
    case(&["--cpus", "1.5"], "HostConfig.NanoCpus"),
    case(&["--cpuset-cpus", "0-1"], "HostConfig.CpusetCpus"),
    case(&["--cpuset-mems", "0"], "HostConfig.CpusetMems"),
    with(
        &["--detach"],
        Kind::NotByCli,
        "",
        "ignored: the agent runs and watches the container itself",
    ),
    with(
        &["--detach-keys", "ctrl-x"],
        Kind::NotByCli,
        "",
        "ignored: no terminal is attached",
    ),
    case(
        &["--device", "/dev/null:/dev/xnull:r"],
        "HostConfig.Devices",
    ),
    case(
        &["--device-cgroup-rule", "c 1:3 mr"],
        "HostConfig.DeviceCgroupRules",
    ),
    case(
        &["--device-read-bps", "/dev/sda:1mb"],
        "HostConfig.BlkioDeviceReadBps",
    ),
    case(
        &["--device-read-iops", "/dev/sda:100"],
        "HostConfig.BlkioDeviceReadIOps",
    ),
    case(
        &["--device-write-bps", "/dev/sda:2mb"],
        "HostConfig.BlkioDeviceWriteBps",
    ),
    case(
        &["--device-write-iops", "/dev/sda:200"],
        "HostConfig.BlkioDeviceWriteIOps",
    ),
    case(
        &["--disable-content-trust"],
        "(none: an image-trust option of the CLI)",
    ),
    case(&["--dns", "1.1.1.1"], "HostConfig.Dns"),
    case(&["--dns-option", "ndots:2"], "HostConfig.DnsOptions"),
    case(&["--dns-search", "example.com"], "HostConfig.DnsSearch"),
    case(&["--domainname", "example.com"], "Domainname"),
    case(
        &["--entrypoint", "/bin/sh"],
        "Entrypoint (dropped by the default `agent.forbidden_docker_args`)",
    ),
    case(&["--env", "A=1"], "Env (the agent's own variables win)"),
    case(&["-e", "B=2"], "Env"),
    case(&["--env-file", "ENV_FILE"], "Env (values never printed)"),
    case(&["--expose", "80"], "ExposedPorts"),
    case(&["--expose", "7000-7001/udp"], "ExposedPorts"),
    case(
        &["--gpus", "all"],
        "HostConfig.DeviceRequests (the agent's GPU assignment wins)",
    ),
    case(&["--gpus", "2"], "HostConfig.DeviceRequests"),
    case(&["--gpus", "\"device=0,1\""], "HostConfig.DeviceRequests"),
    case(&["--gpus", "device=1"], "HostConfig.DeviceRequests"),
    case(
        &["--gpus", "\"capabilities=compute,utility\",count=1"],
        "HostConfig.DeviceRequests",
    ),
    case(
        &["--gpus", "driver=nvidia,count=1"],
        "HostConfig.DeviceRequests",
    ),
    case(&["--group-add", "video"], "HostConfig.GroupAdd"),
    case(&["--health-cmd", "curl -f localhost"], "Healthcheck.Test"),
    case(&["--health-interval", "1m30s"], "Healthcheck.Interval"),
    case(&["--health-retries", "3"], "Healthcheck.Retries"),
    case(&["--health-start-period", "10s"], "Healthcheck.StartPeriod"),
    case(&["--health-timeout", "5s"], "Healthcheck.Timeout"),
    with(&["--help"], Kind::NotByCli, "", "ignored"),
    case(&["--hostname", "h1"], "Hostname"),
    case(&["-h", "h2"], "Hostname"),
    case(&["--init"], "HostConfig.Init"),
    with(
        &["--interactive"],
        Kind::Ignored,
        "OpenStdin/AttachStdin/StdinOnce",
        "a task gets no input",
    ),
    with(
        &["-i"],
        Kind::Ignored,
        "OpenStdin/AttachStdin/StdinOnce",
        "a task gets no input",
    ),
    case(
        &["--ip", "10.0.0.5"],
        "NetworkingConfig.EndpointsConfig.<network>.IPAMConfig.IPv4Address",
    ),
    case(
        &["--ip6", "2001:db8::33"],
        "NetworkingConfig.EndpointsConfig.<network>.IPAMConfig.IPv6Address",
    ),
    case(&["--ipc", "host"], "HostConfig.IpcMode"),
    case(&["--isolation", "default"], "HostConfig.Isolation"),
    with(
        &["--kernel-memory", "50m"],
        Kind::Refused,
        "",
        "removed from the Engine API; use --memory",
    ),
    case(&["--label", "a=b"], "Labels (the agent's own labels win)"),
    case(&["-l", "c=d"], "Labels"),
    case(&["--label-file", "LABEL_FILE"], "Labels"),
    case(&["--link", "other:alias"], "HostConfig.Links"),
    case(
        &["--link-local-ip", "169.254.1.1"],
        "NetworkingConfig.EndpointsConfig.<network>.IPAMConfig.LinkLocalIPs",
    ),
    case(&["--log-driver", "json-file"], "HostConfig.LogConfig.Type"),
    case(&["--log-opt", "max-size=1m"], "HostConfig.LogConfig.Config"),
    with(
        &["--mac-address", "02:42:ac:11:00:02"],
        Kind::NotByCli,
        "NetworkingConfig.EndpointsConfig.<network>.MacAddress",
        "Engine API 1.44 and newer; this machine's engine speaks 1.41, where the CLI refuses it",
    ),
    case(&["--memory", "256m"], "HostConfig.Memory"),
    case(&["-m", "1g"], "HostConfig.Memory"),
    case(
        &["--memory-reservation", "100m"],
        "HostConfig.MemoryReservation",
    ),
    case(&["--memory-swap", "-1"], "HostConfig.MemorySwap"),
    case(
        &["--memory-swappiness", "10"],
        "HostConfig.MemorySwappiness",
    ),
    case(
        &["--mount", "type=tmpfs,destination=/cache"],
        "HostConfig.Mounts",
    ),
    case(
        &["--name", "conformance-name"],
        "the create call's `name` query parameter",
    ),
    Case {
        words: &["--network", "host"],
        kind: Kind::Same,
        field: "HostConfig.NetworkMode",
        note: "",
        skip: &["/NetworkingConfig"],
    },
    case(
        &["--network", "mynet", "--network-alias", "web"],
        "NetworkingConfig.EndpointsConfig.<network>.Aliases",
    ),
    case(&["--no-healthcheck"], "Healthcheck.Test = [\"NONE\"]"),
    case(&["--oom-kill-disable"], "HostConfig.OomKillDisable"),
    case(&["--oom-score-adj", "100"], "HostConfig.OomScoreAdj"),
    case(&["--pid", "host"], "HostConfig.PidMode"),
    case(&["--pids-limit", "100"], "HostConfig.PidsLimit"),
    case(
        &["--platform", "linux/amd64"],
        "the create call's `platform` query parameter",
    ),
    case(&["--privileged"], "HostConfig.Privileged"),
    case(
        &["--publish", "8080:80"],
        "HostConfig.PortBindings, ExposedPorts (taken ports move, see below)",
    ),
    case(
        &["-p", "127.0.0.1:9000-9001:90-91/udp"],
        "HostConfig.PortBindings, ExposedPorts",
    ),
    case(&["--publish-all"], "HostConfig.PublishAllPorts"),
    case(&["-P"], "HostConfig.PublishAllPorts"),
    case(
        &["--pull", "never"],
        "(none: the agent pulls as `agent.docker_force_pull` says)",
    ),
    case(&["--quiet"], "(none)"),
    case(&["--read-only"], "HostConfig.ReadonlyRootfs"),
    case(&["--restart", "on-failure:3"], "HostConfig.RestartPolicy"),
    case(&["--restart", "always"], "HostConfig.RestartPolicy"),
    with(
        &["--rm"],
        Kind::Ignored,
        "HostConfig.AutoRemove",
        "the agent removes every container itself, after reading its exit code",
    ),
    case(&["--runtime", "runc"], "HostConfig.Runtime"),
    case(
        &["--security-opt", "no-new-privileges"],
        "HostConfig.SecurityOpt",
    ),
    case(&["--shm-size", "64m"], "HostConfig.ShmSize"),
    with(
        &["--sig-proxy"],
        Kind::NotByCli,
        "",
        "ignored: the agent stops the container itself",
    ),
    case(&["--stop-signal", "SIGINT"], "StopSignal"),
    case(&["--stop-timeout", "20"], "StopTimeout"),
    case(&["--storage-opt", "size=10G"], "HostConfig.StorageOpt"),
    case(
        &["--sysctl", "net.core.somaxconn=1024"],
        "HostConfig.Sysctls",
    ),
    case(&["--tmpfs", "/run:rw,size=1m"], "HostConfig.Tmpfs"),
    with(
        &["--tty"],
        Kind::Ignored,
        "Tty",
        "the output is read without a terminal",
    ),
    with(
        &["-t"],
        Kind::Ignored,
        "Tty",
        "the output is read without a terminal",
    ),
    case(&["--ulimit", "nofile=1024:2048"], "HostConfig.Ulimits"),
    with(
        &["--use-api-socket"],
        Kind::Refused,
        "",
        "the Docker API socket is not handed to a task",
    ),
    case(&["--user", "1000:1000"], "User"),
    case(&["-u", "nobody"], "User"),
    case(&["--userns", "host"], "HostConfig.UsernsMode"),
    case(&["--uts", "host"], "HostConfig.UTSMode"),
    case(&["--volume", "/tmp:/data:ro"], "HostConfig.Binds"),
    case(&["-v", "named:/named"], "HostConfig.Binds"),
    case(&["-v", "/anonymous"], "Volumes"),
    case(&["--volume-driver", "local"], "HostConfig.VolumeDriver"),
    case(&["--volumes-from", "other"], "HostConfig.VolumesFrom"),
    case(&["--workdir", "/w"], "WorkingDir"),
    case(&["-w", "/w2"], "WorkingDir"),
];

/// A recording proxy in front of the engine's socket: every byte the client sends is kept.
struct Proxy {
    socket: PathBuf,
    seen: Arc<Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start() -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let (mut c_in, mut e_out) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                let (mut e_in, mut c_out) = (engine, client);
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || e_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = e_out.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut e_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            socket,
            seen,
            _dir: dir,
        }
    }

    /// Runs `docker create <words> IMAGE true` through the proxy; returns the query and body of
    /// its create request (`None` when the CLI sent none), and removes what it created.
    fn create(&self, words: &[String]) -> (Option<(String, Value)>, String) {
        self.seen.lock().unwrap().clear();
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("create")
            .args(words)
            .args([image(), "true"])
            .output()
            .expect("docker CLI");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !id.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let seen = self.seen.lock().unwrap().clone();
        (create_request(&seen), stderr)
    }
}

/// The query string and JSON body of the first `POST /v*/containers/create` in `bytes`.
fn create_request(bytes: &[u8]) -> Option<(String, Value)> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("POST /v").and_then(|_| {
        text.match_indices("POST /v").map(|(i, _)| i).find(|i| {
            text[*i..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("/containers/create"))
        })
    })?;
    let request = &text[start..];
    let line = request.lines().next()?;
    let target = line.split_whitespace().nth(1)?;
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let (head, rest) = request.split_once("\r\n\r\n")?;
    let length: usize = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    let body = rest.as_bytes().get(..length)?;
    Some((query, serde_json::from_slice(body).ok()?))
}

/// Drops what carries no setting (null, "", 0, false, []), so that a field left unset and a
/// field sent as its zero compare equal.
fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Bool(false) => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| normalize(x).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, x)| normalize(x).map(|x| (k.clone(), x)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The leaves of a body by their `/`-joined paths (arrays are leaves).
fn leaves(v: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(x, &format!("{path}/{k}"), out);
            }
        }
        // An empty object is no setting, except as a member of the port and volume sets.
        Value::Object(_) if !(path.contains("/ExposedPorts/") || path.contains("/Volumes/")) => {}
        other => {
            out.insert(path.to_string(), other.clone());
        }
    }
}

fn flat(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(v) = normalize(v) {
        leaves(&v, "", &mut out);
    }
    out
}

/// The files the `ENV_FILE` / `LABEL_FILE` words stand for.
fn files(dir: &Path, words: &[&str]) -> Vec<String> {
    let env = dir.join("env.list");
    let labels = dir.join("labels.list");
    std::fs::write(&env, "A=1\nB=two\n").unwrap();
    std::fs::write(&labels, "team=ml\nowner=bob\n").unwrap();
    words
        .iter()
        .map(|w| match *w {
            "ENV_FILE" => env.display().to_string(),
            "LABEL_FILE" => labels.display().to_string(),
            w => w.to_string(),
        })
        .collect()
}

/// Our request for `words`: the body `translate` + `apply` make of an empty one, and the query.
fn ours(words: &[String]) -> Result<(String, Value), args::ArgError> {
    let run = args::translate(words, &|p| std::fs::read_to_string(p))?;
    let mut body = bollard::models::ContainerCreateBody::default();
    run.apply(&mut body);
    let mut query = Vec::new();
    if let Some(name) = &run.name {
        query.push(format!("name={name}"));
    }
    if let Some(platform) = &run.platform {
        query.push(format!("platform={}", platform.replace('/', "%2F")));
    }
    Ok((query.join("&"), serde_json::to_value(&body).unwrap()))
}

#[test]
fn every_flag_translates_as_the_docker_cli_sends_it() {
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let (base, why) = proxy.create(&[]);
    let (_, base) =
        base.unwrap_or_else(|| panic!("no create request seen through the proxy: {why}"));
    let base = flat(&base);
    let mut failures = Vec::new();
    for case in CASES {
        let words = files(dir.path(), case.words);
        let shown = case.words.join(" ");
        match case.kind {
            Kind::Refused => {
                match ours(&words) {
                    Err(e) => assert!(
                        e.to_string().contains(case.words[0]),
                        "{shown}: the refusal does not name the flag: {e}"
                    ),
                    Ok(_) => failures.push(format!("{shown}: translated, expected a refusal")),
                }
                continue;
            }
            Kind::NotByCli | Kind::Ignored => {
                let (_, body) = ours(&words).unwrap_or_else(|e| panic!("{shown}: {e}"));
                let set = flat(&body);
                let expected = if case.words[0] == "--mac-address" {
                    let mut m = BTreeMap::new();
                    m.insert(
                        "/NetworkingConfig/EndpointsConfig/default/MacAddress".to_string(),
                        json!(case.words[1]),
                    );
                    m
                } else {
                    BTreeMap::new()
                };
                if set != expected {
                    failures.push(format!("{shown}: ours sets {set:?}, expected {expected:?}"));
                }
                if case.kind == Kind::NotByCli {
                    let (cli, _) = proxy.create(&words);
                    if cli.is_some() && case.words[0] != "--pull" {
                        failures.push(format!(
                            "{shown}: the CLI sends it here after all; make it a compared case"
                        ));
                    }
                }
                continue;
            }
            Kind::Same => {}
        }
        let (cli, stderr) = proxy.create(&words);
        let Some((cli_query, cli_body)) = cli else {
            failures.push(format!("{shown}: the CLI sent no create request: {stderr}"));
            continue;
        };
        let (our_query, our_body) = match ours(&words) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{shown}: ours refuses it: {e}"));
                continue;
            }
        };
        if cli_query != our_query {
            failures.push(format!(
                "{shown}: query `{cli_query}` from the CLI, `{our_query}` from ours"
            ));
        }
        let cli = flat(&cli_body);
        let ours = flat(&our_body);
        let skipped = |path: &str| case.skip.iter().any(|s| path.starts_with(s));
        // Every field the flag changes in the CLI's request has the same value in ours...
        for (path, value) in &cli {
            if base.get(path) == Some(value) || skipped(path) {
                continue;
            }
            if ours.get(path) != Some(value) {
                failures.push(format!(
                    "{shown}: {path} is {value} from the CLI, {:?} from ours",
                    ours.get(path)
                ));
            }
        }
        // ...and ours sets nothing the CLI does not.
        for (path, value) in &ours {
            if cli.get(path) != Some(value) && !skipped(path) {
                failures.push(format!(
                    "{shown}: ours sets {path} = {value}, the CLI {:?}",
                    cli.get(path)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every flag of the table has a case, and the table is `docker run --help` of this machine.
#[test]
fn the_flag_table_is_the_clis_and_every_flag_has_a_case() {
    let out = Command::new("docker")
        .args(["run", "--help"])
        .output()
        .expect("docker CLI");
    let help = String::from_utf8_lossy(&out.stdout);
    let mut cli: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.starts_with('-').then(|| {
                l.split_whitespace()
                    .find(|w| w.starts_with("--"))
                    .map(|w| w.trim_end_matches(',').to_string())
            })?
        })
        .collect();
    cli.sort();
    let mut ours: Vec<String> = FLAGS.iter().map(|(long, _, _)| long.to_string()).collect();
    ours.sort();
    assert_eq!(ours, cli, "FLAGS differs from `docker run --help`");
    for (long, short, _) in FLAGS {
        assert!(
            CASES.iter().any(|c| c.words[0] == *long
                || Some(c.words[0]) == *short
                || c.words.contains(long)),
            "no conformance case for {long}"
        );
    }
}

/// The flag table of docs/docker.md, rendered from [`CASES`].
fn flag_table() -> String {
    let mut rows: BTreeMap<&str, (Vec<String>, String)> = BTreeMap::new();
    for (long, short, _) in FLAGS {
        let cases: Vec<&Case> = CASES
            .iter()
            .filter(|c| c.words[0] == *long || Some(c.words[0]) == *short)
            .collect();
        let Some(first) = cases
            .first()
            .copied()
            .or_else(|| CASES.iter().find(|c| c.words.contains(long)))
        else {
            continue;
        };
        let name = match short {
            Some(s) => format!("`{long}`, `{s}`"),
            None => format!("`{long}`"),
        };
        let what = match first.kind {
            Kind::Same => first.field.to_string(),
            Kind::Ignored => format!("ignored ({})", first.note),
            Kind::Refused => format!("**refused**: {}", first.note),
            Kind::NotByCli if first.field.is_empty() => first.note.to_string(),
            Kind::NotByCli => format!("{} ({})", first.field, first.note),
        };
        let examples: Vec<String> = cases
            .iter()
            .map(|c| format!("`{}`", c.words.join(" ")))
            .collect();
        rows.insert(
            long,
            (vec![name], format!("{what} | {}", examples.join(", "))),
        );
    }
    let mut out = String::from("| flag | Engine API field | checked with |\n|---|---|---|\n");
    for (names, rest) in rows.values() {
        out.push_str(&format!("| {} | {rest} |\n", names.join(", ")));
    }
    out
}

#[test]
fn the_docs_flag_table_is_generated_from_the_conformance_cases() {
    const BEGIN: &str = "<!-- flag table: generated by tests/it/docker_cli.rs -->\n";
    const END: &str = "<!-- end of flag table -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/docker.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let table = flag_table();
    let (head, rest) = doc
        .split_once(BEGIN)
        .expect("flag table markers in docs/docker.md");
    let (current, tail) = rest.split_once(END).expect("flag table end marker");
    if current != table {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{BEGIN}{table}{END}{tail}")).unwrap();
        } else {
            panic!(
                "docs/docker.md's flag table is stale: run `UPDATE_DOCS=1 cargo test --test it docker_cli`"
            );
        }
    }
}

/// The user's report end to end: a task whose container arguments are
/// `--memory 256m --cpus 1 --hostname h --init --shm-size 64m` runs with each of them.
#[test]
fn resource_and_identity_flags_reach_the_running_container() {
    let img = image();
    let ctx = crate::docker::context().build();
    let task = crate::docker::docker_task(
        &ctx,
        "limited",
        "import os, socket\n\
         st = os.statvfs('/dev/shm')\n\
         print('host', socket.gethostname())\n\
         print('shm', st.f_blocks * st.f_frsize // (1024 * 1024))\n\
         print('init', open('/proc/1/cmdline').read().split('\\0')[0])\n",
        json!({"image": img, "arguments": "--memory 256m --cpus 1 --hostname h --init --shm-size 64m"}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("host h\n"), "{log}");
    assert!(log.contains("shm 64\n"), "{log}");
    assert!(log.contains("init /sbin/docker-init"), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("Executing: docker run"))
        .unwrap_or_default();
    for shown in ["--memory 256m", "--cpus 1", "--hostname h", "--init"] {
        assert!(line.contains(shown), "{shown} missing from: {line}");
    }
}
