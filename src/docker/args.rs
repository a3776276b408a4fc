//! Free-form `docker run` arguments (as users write them in `container.arguments`,
//! `agent.extra_docker_arguments` and `--docker image args`) translated into the Engine API's
//! container-create body. It does not talk to Docker; `docker/mod.rs` does.
//!
//! The Python agent passes these strings to the `docker run` CLI (commands/worker.py:
//! Worker._get_docker_cmd); we speak the Engine API, so each flag is mapped to its field here.
//! A flag we cannot translate is an error naming it, never silently dropped.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, Mount, MountType, PortBinding,
    ResourcesUlimits,
};

/// An argument that cannot be translated to the Engine API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error(
        "docker argument `{0}` is not supported by this agent (it talks to the Docker Engine API, not the docker CLI); remove it from the task's container arguments or agent.extra_docker_arguments"
    )]
    Unsupported(String),
    #[error("docker argument `{0}` needs a value")]
    MissingValue(String),
    #[error("docker argument `{flag}`: invalid value `{value}`: {why}")]
    BadValue {
        flag: String,
        value: String,
        why: String,
    },
}

/// The parts of a container that come from `docker run` arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub binds: Vec<String>,
    pub mounts: Vec<Mount>,
    pub tmpfs: HashMap<String, String>,
    pub ipc_mode: Option<String>,
    pub network_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub shm_size: Option<i64>,
    pub privileged: bool,
    pub devices: Vec<DeviceMapping>,
    pub device_requests: Vec<DeviceRequest>,
    pub port_bindings: HashMap<String, Vec<PortBinding>>,
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<ResourcesUlimits>,
    pub runtime: Option<String>,
    pub name: Option<String>,
    /// `--rm` (the agent removes every container itself; kept for the printed command).
    pub auto_remove: bool,
    pub extra_hosts: Vec<String>,
    pub group_add: Vec<String>,
    /// The names of the variables read from `--env-file`s: their values are never printed.
    pub env_file_keys: Vec<String>,
}

/// Flags that take no value (a `--flag=true|false` value is parsed as a boolean).
const SWITCHES: &[&str] = &[
    "--privileged",
    "--rm",
    "-t",
    "--tty",
    "-i",
    "--interactive",
    "-d",
];

/// Short flags and long aliases, with the long name they stand for (as the docker CLI defines
/// them). Checks (filters, protected and forbidden switches, the untrusted-tasks policy) look at
/// this name, so `--net=host` is `--network` and `-e` is `--env`.
const ALIASES: &[(&str, &str)] = &[
    ("-e", "--env"),
    ("-v", "--volume"),
    ("--net", "--network"),
    ("-l", "--label"),
    ("-p", "--publish"),
    ("-u", "--user"),
    ("-w", "--workdir"),
    ("-t", "--tty"),
    ("-i", "--interactive"),
    ("-d", "--detach"),
    ("-h", "--hostname"),
    ("-m", "--memory"),
    ("-c", "--cpu-shares"),
    ("-a", "--attach"),
    ("-P", "--publish-all"),
];

/// The long name of a flag as written (`-e` → `--env`, `--net` → `--network`, `--x=1` → `--x`,
/// `-eA=1` → `--env`); a word that is not a flag is returned as it is.
pub fn canonical(flag: &str) -> String {
    let flag = flag.trim();
    if !flag.starts_with('-') {
        return flag.to_string();
    }
    let name = if flag.starts_with("--") {
        flag.split_once('=').map_or(flag, |(name, _)| name)
    } else if flag.len() > 2 && flag.is_char_boundary(2) {
        // `-eFOO=1`, `-v/a:/b`: a short flag glued to its value.
        &flag[..2]
    } else {
        flag
    };
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, long)| long)
        .to_string()
}

/// A boolean flag's value: none (the flag alone) is true; otherwise docker's `true`/`false`
/// spellings (Go's strconv.ParseBool).
fn flag_bool(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None => Ok(true),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(_) => Err("expected true or false".into()),
    }
}

/// Splits `--flag=value` / `-fvalue` forms and pairs each flag with its value.
pub fn pairs(args: &[String]) -> Result<Vec<(String, Option<String>)>, ArgError> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            return Err(ArgError::Unsupported(arg.clone()));
        }
        if let Some((flag, value)) = arg.split_once('=')
            && flag.starts_with("--")
        {
            out.push((flag.to_string(), Some(value.to_string())));
            continue;
        }
        if SWITCHES.contains(&arg.as_str()) || arg == "-it" || arg == "-ti" {
            out.push((arg.clone(), None));
            continue;
        }
        // `-eFOO=1`, `-v/a:/b`: a short flag glued to its value.
        if !arg.starts_with("--") && arg.len() > 2 && arg.is_char_boundary(2) {
            out.push((arg[..2].to_string(), Some(arg[2..].to_string())));
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| ArgError::MissingValue(arg.clone()))?;
        out.push((arg.clone(), Some(value.clone())));
    }
    Ok(out)
}

/// Translates `docker run` arguments. `env_file` reads an `--env-file` (injected for tests; the
/// agent's reader is `docker::env_file::read`).
pub fn translate(
    args: &[String],
    env_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<RunArgs, ArgError> {
    let mut run = RunArgs::default();
    for (flag, value) in pairs(args)? {
        let v = || value.clone().unwrap_or_default();
        let bad = |why: &str| ArgError::BadValue {
            flag: flag.clone(),
            value: value.clone().unwrap_or_default(),
            why: why.to_string(),
        };
        match flag.as_str() {
            "-e" | "--env" => run.env.push(v()),
            "--env-file" => {
                let text = env_file(&v()).map_err(|e| bad(&e.to_string()))?;
                for entry in parse_env_file(&text).map_err(|w| bad(&w))? {
                    if let Some((key, _)) = entry.split_once('=') {
                        run.env_file_keys.push(key.to_string());
                    }
                    run.env.push(entry);
                }
            }
            "-v" | "--volume" => {
                let value = v();
                if !value.contains(':') {
                    // An anonymous volume: no host side.
                    run.mounts.push(Mount {
                        target: Some(value),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    });
                } else {
                    run.binds.push(value);
                }
            }
            "--mount" => run.mounts.push(parse_mount(&v()).map_err(|w| bad(&w))?),
            "--tmpfs" => {
                let value = v();
                let (path, opts) = value.split_once(':').unwrap_or((&value, ""));
                run.tmpfs.insert(path.to_string(), opts.to_string());
            }
            "--ipc" => run.ipc_mode = Some(v()),
            "--network" | "--net" => run.network_mode = Some(v()),
            "--pid" => run.pid_mode = Some(v()),
            "--shm-size" => run.shm_size = Some(parse_bytes(&v()).map_err(|w| bad(&w))?),
            "--privileged" => run.privileged = flag_bool(value.as_deref()).map_err(|w| bad(&w))?,
            "--rm" => run.auto_remove = flag_bool(value.as_deref()).map_err(|w| bad(&w))?,
            "-t" | "--tty" | "-i" | "--interactive" | "-it" | "-ti" => {
                // The agent reads the output through the log stream; a tty is not needed.
                flag_bool(value.as_deref()).map_err(|w| bad(&w))?;
            }
            "--device" => run.devices.push(parse_device(&v())),
            "--gpus" => run.device_requests = vec![gpu_request(&v()).map_err(|w| bad(&w))?],
            "-p" | "--publish" => {
                for (key, binding) in parse_port(&v()).map_err(|w| bad(&w))? {
                    run.port_bindings.entry(key).or_default().push(binding);
                }
            }
            "--entrypoint" => run.entrypoint = Some(vec![v()]),
            "-u" | "--user" => run.user = Some(v()),
            "-w" | "--workdir" => run.working_dir = Some(v()),
            "--cap-add" => run.cap_add.push(v()),
            "--cap-drop" => run.cap_drop.push(v()),
            "--security-opt" => run.security_opt.push(v()),
            "--ulimit" => run.ulimits.push(parse_ulimit(&v()).map_err(|w| bad(&w))?),
            "-l" | "--label" => {
                let value = v();
                let (k, val) = value.split_once('=').unwrap_or((&value, ""));
                run.labels.insert(k.to_string(), val.to_string());
            }
            "--runtime" => run.runtime = Some(v()),
            "--name" => run.name = Some(v()),
            "--add-host" => run.extra_hosts.push(v()),
            "--group-add" => run.group_add.push(v()),
            _ => return Err(ArgError::Unsupported(flag)),
        }
    }
    Ok(run)
}

/// The `KEY=VALUE` lines of an env file, as the docker CLI reads them (blank lines and `#`
/// comments skipped, the key trimmed on the left). Stricter than the CLI: a line without `=`
/// (which the CLI fills from the host's environment, here the agent's) and a key with
/// whitespace or none are refused. The error names the line number, never its text.
pub fn parse_env_file(text: &str) -> Result<Vec<String>, String> {
    if text.contains('\0') {
        return Err("the env file holds a NUL byte (not a text file of KEY=VALUE lines)".into());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Err(format!("line {} of the env file {why}", n + 1));
        let Some((key, value)) = line.split_once('=') else {
            return bad("is not KEY=VALUE");
        };
        if key.is_empty() {
            return bad("has no variable name");
        }
        if key.contains(char::is_whitespace) {
            return bad("has whitespace in its variable name");
        }
        out.push(format!("{key}={value}"));
    }
    Ok(out)
}

/// `--gpus` value → the device request `docker run --gpus` sends: `all` (or a count), or a list
/// of device ids (`0`, `0,1`, `"device=0,1"`).
pub fn gpu_request(value: &str) -> Result<DeviceRequest, String> {
    let value = value.trim().trim_matches('"').trim_matches('\'');
    let gpu = Some(vec![vec!["gpu".to_string()]]);
    if value == "all" {
        return Ok(DeviceRequest {
            driver: Some(String::new()),
            count: Some(-1),
            capabilities: gpu,
            ..Default::default()
        });
    }
    let list = value.strip_prefix("device=").unwrap_or(value);
    if let Some(count) = value.strip_prefix("count=") {
        let n: i64 = count
            .parse()
            .map_err(|_| "expected `all`, `count=N` or a device list like `0,1`".to_string())?;
        return Ok(DeviceRequest {
            driver: Some(String::new()),
            count: Some(n),
            capabilities: gpu,
            ..Default::default()
        });
    }
    let ids: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err("expected `all` or a device list like `0,1`".into());
    }
    Ok(DeviceRequest {
        driver: Some(String::new()),
        device_ids: Some(ids),
        capabilities: gpu,
        ..Default::default()
    })
}

/// `8g`, `512m`, `1024` → bytes (docker's units are powers of 1024).
fn parse_bytes(value: &str) -> Result<i64, String> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (num, mult) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1i64 << 10),
        Some('m') => (&v[..v.len() - 1], 1 << 20),
        Some('g') => (&v[..v.len() - 1], 1 << 30),
        Some('t') => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| "expected a size like 8g, 512m or 1024".to_string())?;
    Ok((n * mult as f64) as i64)
}

/// `--device /dev/a[:/dev/b[:rwm]]`.
fn parse_device(value: &str) -> DeviceMapping {
    let parts: Vec<&str> = value.split(':').collect();
    let host = parts[0].to_string();
    let (inside, perms) = match parts.as_slice() {
        [_, p] if p.chars().all(|c| "rwm".contains(c)) => (host.clone(), p.to_string()),
        [_, inside] => (inside.to_string(), "rwm".to_string()),
        [_, inside, perms, ..] => (inside.to_string(), perms.to_string()),
        _ => (host.clone(), "rwm".to_string()),
    };
    DeviceMapping {
        path_on_host: Some(host),
        path_in_container: Some(inside),
        cgroup_permissions: Some(perms),
    }
}

/// `-p [ip:][host:]container[/proto]` → (`container/proto`, binding).
fn parse_port(value: &str) -> Result<Vec<(String, PortBinding)>, String> {
    const FORM: &str = "expected [ip:][host:]container[/proto], ports or ranges a-b";
    let (spec, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (container, host_port, host_ip) = match parts.as_slice() {
        [c] => (*c, "", ""),
        [c, h] => (*c, *h, ""),
        [c, h, ip] => (*c, *h, *ip),
        _ => return Err(FORM.into()),
    };
    let range = |text: &str| -> Option<(u16, u16)> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
        (a <= b).then_some((a, b))
    };
    let (c0, c1) = range(container).ok_or(FORM)?;
    // Like the docker CLI, a range publishes each port: host ports pair with container ports
    // one to one (a single host port with a container range is refused).
    let host = match host_port {
        "" => None,
        h => Some(range(h).ok_or(FORM)?),
    };
    if let Some((h0, h1)) = host
        && h1 - h0 != c1 - c0
    {
        return Err("the host and container port ranges differ in length".into());
    }
    let ip = (!host_ip.is_empty()).then(|| host_ip.to_string());
    Ok((0..=(c1 - c0))
        .map(|k| {
            (
                format!("{}/{proto}", c0 + k),
                PortBinding {
                    host_ip: ip.clone(),
                    host_port: Some(host.map(|(h0, _)| (h0 + k).to_string()).unwrap_or_default()),
                },
            )
        })
        .collect())
}

/// `--ulimit nofile=1024[:2048]`.
fn parse_ulimit(value: &str) -> Result<ResourcesUlimits, String> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| "expected name=soft[:hard]".to_string())?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let n = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| "expected name=soft[:hard]".to_string())
    };
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(n(soft)?),
        hard: Some(n(hard)?),
    })
}

/// `--mount type=bind,source=/a,target=/b[,readonly]`.
fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut mount = Mount::default();
    for field in value.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => {
                mount.typ = Some(match v {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => return Err(format!("unsupported mount type `{other}`")),
                })
            }
            "source" | "src" => mount.source = Some(v.to_string()),
            "target" | "destination" | "dst" => mount.target = Some(v.to_string()),
            "readonly" | "ro" => mount.read_only = Some(v.is_empty() || v == "true" || v == "1"),
            other => return Err(format!("unsupported mount option `{other}`")),
        }
    }
    if mount.target.is_none() {
        return Err("a mount needs target=".into());
    }
    mount.typ.get_or_insert(MountType::VOLUME);
    Ok(mount)
}

impl RunArgs {
    /// Writes these arguments into a create body (fields already set by the caller win for the
    /// single-valued ones; lists and maps are extended). The caller's variables and labels are
    /// the agent's own: an argument naming one of them is ignored (Docker keeps the last of two
    /// equal variables, so `-e NVIDIA_VISIBLE_DEVICES=all` would escape the GPU assignment and
    /// `-l clearml-parent-worker-id=x` the clean-up). Returns the ignored `-e KEY` / `-l KEY`.
    pub fn apply(&self, body: &mut ContainerCreateBody) -> Vec<String> {
        let mut ignored = Vec::new();
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        let env = body.env.get_or_insert_with(Vec::new);
        let owned: Vec<String> = env.iter().map(|e| env_key(e).to_string()).collect();
        for entry in &self.env {
            if owned.iter().any(|k| k == env_key(entry)) {
                ignored.push(format!("-e {}", env_key(entry)));
            } else {
                env.push(entry.clone());
            }
        }
        let labels = body.labels.get_or_insert_with(HashMap::new);
        for (k, v) in &self.labels {
            if labels.contains_key(k) {
                ignored.push(format!("-l {k}"));
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        extend(&mut host.binds, &self.binds);
        extend(&mut host.mounts, &self.mounts);
        if !self.tmpfs.is_empty() {
            host.tmpfs
                .get_or_insert_with(HashMap::new)
                .extend(self.tmpfs.clone());
        }
        set(&mut host.ipc_mode, &self.ipc_mode);
        set(&mut host.network_mode, &self.network_mode);
        set(&mut host.pid_mode, &self.pid_mode);
        set(&mut host.shm_size, &self.shm_size);
        set(&mut host.runtime, &self.runtime);
        if self.privileged {
            host.privileged = Some(true);
        }
        extend(&mut host.devices, &self.devices);
        if !self.device_requests.is_empty() {
            host.device_requests = Some(self.device_requests.clone());
        }
        if !self.port_bindings.is_empty() {
            let ports = host.port_bindings.get_or_insert_with(HashMap::new);
            let exposed = body.exposed_ports.get_or_insert_with(Vec::new);
            for (k, v) in &self.port_bindings {
                ports.insert(k.clone(), Some(v.clone()));
                exposed.push(k.clone());
            }
        }
        set(&mut body.entrypoint, &self.entrypoint);
        set(&mut body.user, &self.user);
        set(&mut body.working_dir, &self.working_dir);
        extend(&mut host.cap_add, &self.cap_add);
        extend(&mut host.cap_drop, &self.cap_drop);
        extend(&mut host.security_opt, &self.security_opt);
        extend(&mut host.ulimits, &self.ulimits);
        extend(&mut host.extra_hosts, &self.extra_hosts);
        extend(&mut host.group_add, &self.group_add);
        ignored.sort();
        ignored.dedup();
        ignored
    }
}

/// The name of a `KEY=VALUE` (or bare `KEY`) variable entry.
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

fn extend<T: Clone>(field: &mut Option<Vec<T>>, items: &[T]) {
    if !items.is_empty() {
        field.get_or_insert_with(Vec::new).extend_from_slice(items);
    }
}

fn set<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
    if field.is_none() {
        field.clone_from(value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Result<RunArgs, ArgError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        translate(&args, &|path| match path {
            "/env.list" => Ok("# comment\nA=1\n\nB=two\n".into()),
            _ => Err(std::io::Error::other("no such file")),
        })
    }

    #[test]
    fn translation_table() {
        let r = t(&[
            "-v",
            "/a:/b:ro",
            "--volume=/c:/d",
            "-e",
            "K=V",
            "--env=X=Y",
            "-eZ=1",
            "--env-file",
            "/env.list",
            "--ipc=host",
            "--network",
            "host",
            "--shm-size",
            "8g",
            "--privileged",
            "--device",
            "/dev/fuse",
            "-p",
            "8080:80",
            "--entrypoint",
            "/bin/sh",
            "-u",
            "1000",
            "-w",
            "/work",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-drop=NET_RAW",
            "--security-opt",
            "seccomp=unconfined",
            "--ulimit",
            "nofile=1024:2048",
            "-l",
            "team=ml",
            "--runtime",
            "nvidia",
            "--name",
            "job",
            "--rm",
            "--add-host",
            "db:10.0.0.1",
            "--pid",
            "host",
            "--tmpfs",
            "/scratch:size=64m",
            "--mount",
            "type=bind,source=/s,target=/t,readonly",
            "--net=bridge",
        ])
        .unwrap();
        assert_eq!(r.binds, vec!["/a:/b:ro", "/c:/d"]);
        assert_eq!(r.env, vec!["K=V", "X=Y", "Z=1", "A=1", "B=two"]);
        assert_eq!(r.ipc_mode.as_deref(), Some("host"));
        assert_eq!(r.network_mode.as_deref(), Some("bridge"));
        assert_eq!(r.shm_size, Some(8 << 30));
        assert!(r.privileged);
        assert_eq!(r.devices[0].path_on_host.as_deref(), Some("/dev/fuse"));
        assert_eq!(r.devices[0].path_in_container.as_deref(), Some("/dev/fuse"));
        let p = &r.port_bindings["80/tcp"][0];
        assert_eq!(p.host_port.as_deref(), Some("8080"));
        // Ranges publish each port, host and container ports paired in order.
        let ranges = |spec: &str| {
            translate(
                &["-p".to_string(), spec.to_string()],
                &|_| Ok(String::new()),
            )
            .map(|r| r.port_bindings)
        };
        let pr = ranges("127.0.0.1:9000-9001:90-91/udp").unwrap();
        assert_eq!(pr["91/udp"][0].host_port.as_deref(), Some("9001"));
        assert_eq!(pr["90/udp"][0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            ranges("90-91").unwrap()["91/tcp"][0].host_port.as_deref(),
            Some("")
        );
        assert!(ranges("9000:90-91").is_err());
        assert!(ranges("x:90").is_err());
        assert_eq!(r.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(r.user.as_deref(), Some("1000"));
        assert_eq!(r.working_dir.as_deref(), Some("/work"));
        assert_eq!(r.cap_add, vec!["SYS_ADMIN"]);
        assert_eq!(r.cap_drop, vec!["NET_RAW"]);
        assert_eq!(r.security_opt, vec!["seccomp=unconfined"]);
        assert_eq!(r.ulimits[0].name.as_deref(), Some("nofile"));
        assert_eq!(
            (r.ulimits[0].soft, r.ulimits[0].hard),
            (Some(1024), Some(2048))
        );
        assert_eq!(r.labels["team"], "ml");
        assert_eq!(r.runtime.as_deref(), Some("nvidia"));
        assert_eq!(r.name.as_deref(), Some("job"));
        assert!(r.auto_remove);
        assert_eq!(r.extra_hosts, vec!["db:10.0.0.1"]);
        assert_eq!(r.pid_mode.as_deref(), Some("host"));
        assert_eq!(r.tmpfs["/scratch"], "size=64m");
        assert_eq!(r.mounts[0].source.as_deref(), Some("/s"));
        assert_eq!(r.mounts[0].target.as_deref(), Some("/t"));
        assert_eq!(r.mounts[0].read_only, Some(true));
        assert_eq!(r.mounts[0].typ, Some(MountType::BIND));
    }

    #[test]
    fn gpus_become_device_requests() {
        let r = t(&["--gpus", "all"]).unwrap();
        assert_eq!(r.device_requests[0].count, Some(-1));
        assert_eq!(r.device_requests[0].device_ids, None);
        let r = t(&["--gpus", "\"device=0,1\""]).unwrap();
        assert_eq!(
            r.device_requests[0].device_ids,
            Some(vec!["0".to_string(), "1".to_string()])
        );
        let r = t(&["--gpus=2"]).unwrap();
        assert_eq!(r.device_requests[0].device_ids, Some(vec!["2".to_string()]));
        assert_eq!(
            r.device_requests[0].capabilities,
            Some(vec![vec!["gpu".to_string()]])
        );
    }

    #[test]
    fn unknown_flags_are_errors_naming_them() {
        let e = t(&["--cpuset-cpus", "0-3"]).unwrap_err();
        assert_eq!(e, ArgError::Unsupported("--cpuset-cpus".into()));
        assert!(e.to_string().contains("--cpuset-cpus"));
        assert_eq!(
            t(&["stray"]).unwrap_err(),
            ArgError::Unsupported("stray".into())
        );
        assert_eq!(t(&["-v"]).unwrap_err(), ArgError::MissingValue("-v".into()));
        assert!(t(&["-é"]).is_err());
        assert!(matches!(
            t(&["--shm-size", "lots"]).unwrap_err(),
            ArgError::BadValue { .. }
        ));
        assert!(matches!(
            t(&["--env-file", "/missing"]).unwrap_err(),
            ArgError::BadValue { .. }
        ));
    }

    #[test]
    fn apply_fills_the_create_body() {
        let r = t(&["-v", "/a:/b", "--ipc=host", "--gpus", "0", "-p", "80"]).unwrap();
        let mut body = ContainerCreateBody::default();
        r.apply(&mut body);
        let host = body.host_config.unwrap();
        assert_eq!(host.binds, Some(vec!["/a:/b".to_string()]));
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(host.device_requests.unwrap().len(), 1);
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
    }
}
