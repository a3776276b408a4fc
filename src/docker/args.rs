//! Free-form `docker run` arguments (as users write them in `container.arguments`,
//! `agent.extra_docker_arguments` and `--docker image args`) translated into the Engine API's
//! container-create body. It does not talk to Docker; `docker/mod.rs` does.
//!
//! The Python agent passes these strings to the `docker run` CLI (commands/worker.py:
//! Worker._get_docker_cmd); we speak the Engine API, so each flag is mapped to the field the
//! docker CLI itself sets (tests/it/docker_cli.rs checks that against the real CLI). Which flags
//! take a value comes from one table ([`FLAGS`], docker's own), so an unknown flag is an error
//! naming it and never swallows the next word; a flag we cannot translate is an error naming it,
//! never silently dropped.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HostConfig, HostConfigCgroupnsModeEnum, HostConfigIsolationEnum,
    HostConfigLogConfig, Mount, MountType, NetworkingConfig, PortBinding,
    ResourcesBlkioWeightDevice, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
    ThrottleDevice,
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
    /// Everything else the flags set (resources, identity, health, restart, logging, extra
    /// networking), in the create body's own shape: merged into the body by [`RunArgs::apply`].
    pub extra: ContainerCreateBody,
    /// `--platform`: a query parameter of the create call, not a body field.
    pub platform: Option<String>,
    /// The flags (with their values) that the printed `docker run` line does not rebuild from
    /// the body's common fields, as given.
    pub shown: Vec<String>,
}

/// Flags the printed `docker run` line rebuilds from the body itself, or that change nothing.
const PRINTED_FROM_BODY: &[&str] = &[
    "--env",
    "--env-file",
    "--volume",
    "--ipc",
    "--network",
    "--pid",
    "--runtime",
    "--user",
    "--workdir",
    "--shm-size",
    "--privileged",
    "--label",
    "--publish",
    "--gpus",
    "--name",
    "--rm",
    "--tty",
    "--interactive",
    "--detach",
    "--sig-proxy",
    "--disable-content-trust",
    "--quiet",
    "--help",
    "--attach",
    "--detach-keys",
    "--pull",
];

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// A switch: alone, or `--flag=true|false`.
    Nothing,
    /// The next word, or `--flag=value` / `-fvalue`.
    Value,
}

/// Every flag of `docker run --help` (docker CLI 28 on Linux; tests/it/docker_cli.rs checks the
/// list against the CLI of the machine): long name, short name, what it takes.
pub const FLAGS: &[(&str, Option<&str>, Takes)] = &[
    ("--add-host", None, Takes::Value),
    ("--attach", Some("-a"), Takes::Value),
    ("--blkio-weight", None, Takes::Value),
    ("--blkio-weight-device", None, Takes::Value),
    ("--cap-add", None, Takes::Value),
    ("--cap-drop", None, Takes::Value),
    ("--cgroup-parent", None, Takes::Value),
    ("--cgroupns", None, Takes::Value),
    ("--cidfile", None, Takes::Value),
    ("--cpu-period", None, Takes::Value),
    ("--cpu-quota", None, Takes::Value),
    ("--cpu-rt-period", None, Takes::Value),
    ("--cpu-rt-runtime", None, Takes::Value),
    ("--cpu-shares", Some("-c"), Takes::Value),
    ("--cpus", None, Takes::Value),
    ("--cpuset-cpus", None, Takes::Value),
    ("--cpuset-mems", None, Takes::Value),
    ("--detach", Some("-d"), Takes::Nothing),
    ("--detach-keys", None, Takes::Value),
    ("--device", None, Takes::Value),
    ("--device-cgroup-rule", None, Takes::Value),
    ("--device-read-bps", None, Takes::Value),
    ("--device-read-iops", None, Takes::Value),
    ("--device-write-bps", None, Takes::Value),
    ("--device-write-iops", None, Takes::Value),
    ("--disable-content-trust", None, Takes::Nothing),
    ("--dns", None, Takes::Value),
    ("--dns-option", None, Takes::Value),
    ("--dns-search", None, Takes::Value),
    ("--domainname", None, Takes::Value),
    ("--entrypoint", None, Takes::Value),
    ("--env", Some("-e"), Takes::Value),
    ("--env-file", None, Takes::Value),
    ("--expose", None, Takes::Value),
    ("--gpus", None, Takes::Value),
    ("--group-add", None, Takes::Value),
    ("--health-cmd", None, Takes::Value),
    ("--health-interval", None, Takes::Value),
    ("--health-retries", None, Takes::Value),
    ("--health-start-period", None, Takes::Value),
    ("--health-timeout", None, Takes::Value),
    ("--help", None, Takes::Nothing),
    ("--hostname", Some("-h"), Takes::Value),
    ("--init", None, Takes::Nothing),
    ("--interactive", Some("-i"), Takes::Nothing),
    ("--ip", None, Takes::Value),
    ("--ip6", None, Takes::Value),
    ("--ipc", None, Takes::Value),
    ("--isolation", None, Takes::Value),
    ("--kernel-memory", None, Takes::Value),
    ("--label", Some("-l"), Takes::Value),
    ("--label-file", None, Takes::Value),
    ("--link", None, Takes::Value),
    ("--link-local-ip", None, Takes::Value),
    ("--log-driver", None, Takes::Value),
    ("--log-opt", None, Takes::Value),
    ("--mac-address", None, Takes::Value),
    ("--memory", Some("-m"), Takes::Value),
    ("--memory-reservation", None, Takes::Value),
    ("--memory-swap", None, Takes::Value),
    ("--memory-swappiness", None, Takes::Value),
    ("--mount", None, Takes::Value),
    ("--name", None, Takes::Value),
    ("--network", None, Takes::Value),
    ("--network-alias", None, Takes::Value),
    ("--no-healthcheck", None, Takes::Nothing),
    ("--oom-kill-disable", None, Takes::Nothing),
    ("--oom-score-adj", None, Takes::Value),
    ("--pid", None, Takes::Value),
    ("--pids-limit", None, Takes::Value),
    ("--platform", None, Takes::Value),
    ("--privileged", None, Takes::Nothing),
    ("--publish", Some("-p"), Takes::Value),
    ("--publish-all", Some("-P"), Takes::Nothing),
    ("--pull", None, Takes::Value),
    ("--quiet", Some("-q"), Takes::Nothing),
    ("--read-only", None, Takes::Nothing),
    ("--restart", None, Takes::Value),
    ("--rm", None, Takes::Nothing),
    ("--runtime", None, Takes::Value),
    ("--security-opt", None, Takes::Value),
    ("--shm-size", None, Takes::Value),
    ("--sig-proxy", None, Takes::Nothing),
    ("--stop-signal", None, Takes::Value),
    ("--stop-timeout", None, Takes::Value),
    ("--storage-opt", None, Takes::Value),
    ("--sysctl", None, Takes::Value),
    ("--tmpfs", None, Takes::Value),
    ("--tty", Some("-t"), Takes::Nothing),
    ("--ulimit", None, Takes::Value),
    ("--use-api-socket", None, Takes::Nothing),
    ("--user", Some("-u"), Takes::Value),
    ("--userns", None, Takes::Value),
    ("--uts", None, Takes::Value),
    ("--volume", Some("-v"), Takes::Value),
    ("--volume-driver", None, Takes::Value),
    ("--volumes-from", None, Takes::Value),
    ("--workdir", Some("-w"), Takes::Value),
];

/// Other spellings the docker CLI accepts for a long flag.
const ALIASES: &[(&str, &str)] = &[("--net", "--network"), ("--net-alias", "--network-alias")];

/// The table entry of a flag's name as written (`-e`, `--env`, `--net`), if docker has it.
fn lookup(name: &str) -> Option<(&'static str, Takes)> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, long)| long);
    FLAGS
        .iter()
        .find(|(long, short, _)| *long == name || *short == Some(name))
        .map(|(long, _, takes)| (*long, *takes))
}

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
    lookup(name).map_or(name, |(long, _)| long).to_string()
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

/// Splits `--flag=value` / `-fvalue` forms and pairs each flag, by its long name, with its
/// value. Which flags take a value comes from [`FLAGS`]: an unknown flag is an error naming it
/// (it never takes the next word with it). Bundled short switches (`-it`) are split.
pub fn pairs(args: &[String]) -> Result<Vec<(String, Option<String>)>, ArgError> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') || arg == "-" || arg == "--" {
            return Err(ArgError::Unsupported(arg.clone()));
        }
        let (name, glued) = if let Some((name, value)) = arg.split_once('=')
            && arg.starts_with("--")
        {
            (name.to_string(), Some(value.to_string()))
        } else if !arg.starts_with("--") && arg.len() > 2 && arg.is_char_boundary(2) {
            // `-eFOO=1`, `-v/a:/b`, or bundled switches `-it`.
            let bundled: Option<Vec<&str>> = arg[1..]
                .char_indices()
                .map(|(i, _)| arg.get(1 + i..2 + i))
                .map(|c| c.map(|c| format!("-{c}")))
                .map(|c| {
                    c.and_then(|c| match lookup(&c) {
                        Some((long, Takes::Nothing)) => Some(long),
                        _ => None,
                    })
                })
                .collect();
            if let Some(switches) = bundled {
                out.extend(switches.into_iter().map(|s| (s.to_string(), None)));
                continue;
            }
            (arg[..2].to_string(), Some(arg[2..].to_string()))
        } else {
            (arg.clone(), None)
        };
        let Some((long, takes)) = lookup(&name) else {
            return Err(ArgError::Unsupported(name));
        };
        let value = match (takes, glued) {
            (_, Some(v)) => Some(v),
            (Takes::Nothing, None) => None,
            (Takes::Value, None) => Some(
                it.next()
                    .cloned()
                    .ok_or_else(|| ArgError::MissingValue(arg.clone()))?,
            ),
        };
        out.push((long.to_string(), value));
    }
    Ok(out)
}

/// Translates `docker run` arguments. `env_file` reads an `--env-file` or `--label-file`
/// (injected for tests; the agent's reader is `docker::env_file::read`).
pub fn translate(
    args: &[String],
    env_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<RunArgs, ArgError> {
    let mut run = RunArgs::default();
    for (flag, value) in pairs(args)? {
        if !PRINTED_FROM_BODY.contains(&flag.as_str()) {
            run.shown.push(flag.clone());
            run.shown.extend(value.clone());
        }
        let v = || value.clone().unwrap_or_default();
        let bad = |why: &str| ArgError::BadValue {
            flag: flag.clone(),
            value: value.clone().unwrap_or_default(),
            why: why.to_string(),
        };
        let switch = || flag_bool(value.as_deref()).map_err(|w| bad(&w));
        let int = || -> Result<i64, ArgError> {
            v().trim()
                .parse::<i64>()
                .map_err(|_| bad("expected a whole number"))
        };
        let bytes = || parse_bytes(&v()).map_err(|w| bad(&w));
        let duration = || parse_duration(&v()).map_err(|w| bad(&w));
        let extra = &mut run.extra;
        let host = extra.host_config.get_or_insert_with(HostConfig::default);
        match flag.as_str() {
            "--env" => run.env.push(v()),
            "--env-file" => {
                let text = env_file(&v()).map_err(|e| bad(&e.to_string()))?;
                for entry in parse_env_file(&text).map_err(|w| bad(&w))? {
                    if let Some((key, _)) = entry.split_once('=') {
                        run.env_file_keys.push(key.to_string());
                    }
                    run.env.push(entry);
                }
            }
            "--volume" => {
                let value = v();
                if !value.contains(':') {
                    // An anonymous volume: no host side (`Volumes`, as the docker CLI sends it).
                    extra.volumes.get_or_insert_with(Vec::new).push(value);
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
            "--network" => run.network_mode = Some(v()),
            "--pid" => run.pid_mode = Some(v()),
            "--shm-size" => run.shm_size = Some(bytes()?),
            "--privileged" => run.privileged = switch()?,
            "--rm" => run.auto_remove = switch()?,
            // The agent attaches to the container's output itself, removes every container, and
            // pulls as configured: these only concern the docker CLI's own terminal and cache.
            "--tty"
            | "--interactive"
            | "--detach"
            | "--sig-proxy"
            | "--disable-content-trust"
            | "--quiet"
            | "--help" => {
                switch()?;
            }
            "--attach" | "--detach-keys" | "--pull" => {}
            "--device" => run.devices.push(parse_device(&v())),
            "--gpus" => run.device_requests = vec![gpus_flag(&v()).map_err(|w| bad(&w))?],
            "--publish" => {
                for (key, binding) in parse_port(&v()).map_err(|w| bad(&w))? {
                    run.port_bindings.entry(key).or_default().push(binding);
                }
            }
            "--publish-all" => host.publish_all_ports = Some(switch()?),
            "--expose" => {
                let ports = parse_expose(&v()).map_err(|w| bad(&w))?;
                extra
                    .exposed_ports
                    .get_or_insert_with(Vec::new)
                    .extend(ports);
            }
            "--entrypoint" => run.entrypoint = Some(vec![v()]),
            "--user" => run.user = Some(v()),
            "--workdir" => run.working_dir = Some(v()),
            "--cap-add" => run.cap_add.push(capability(&v())),
            "--cap-drop" => run.cap_drop.push(capability(&v())),
            "--security-opt" => run.security_opt.push(v()),
            "--ulimit" => run.ulimits.push(parse_ulimit(&v()).map_err(|w| bad(&w))?),
            "--label" => {
                let value = v();
                let (k, val) = value.split_once('=').unwrap_or((&value, ""));
                run.labels.insert(k.to_string(), val.to_string());
            }
            "--label-file" => {
                let text = env_file(&v()).map_err(|e| bad(&e.to_string()))?;
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (k, val) = line.split_once('=').unwrap_or((line, ""));
                    run.labels.insert(k.to_string(), val.to_string());
                }
            }
            "--runtime" => run.runtime = Some(v()),
            "--name" => run.name = Some(v()),
            "--add-host" => run.extra_hosts.push(v()),
            "--group-add" => run.group_add.push(v()),
            // Resources.
            "--memory" => host.memory = Some(bytes()?),
            "--memory-swap" => {
                host.memory_swap = Some(if v().trim() == "-1" { -1 } else { bytes()? })
            }
            "--memory-reservation" => host.memory_reservation = Some(bytes()?),
            "--memory-swappiness" => host.memory_swappiness = Some(int()?),
            "--cpus" => {
                let cpus: f64 = v()
                    .trim()
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite() && *c >= 0.0 && *c < 1e6)
                    .ok_or_else(|| bad("expected a number of CPUs like 1.5"))?;
                host.nano_cpus = Some((cpus * 1e9).round() as i64);
            }
            "--cpu-shares" => host.cpu_shares = Some(int()?),
            "--cpu-period" => host.cpu_period = Some(int()?),
            "--cpu-quota" => host.cpu_quota = Some(int()?),
            "--cpu-rt-period" => host.cpu_realtime_period = Some(int()?),
            "--cpu-rt-runtime" => host.cpu_realtime_runtime = Some(int()?),
            "--cpuset-cpus" => host.cpuset_cpus = Some(v()),
            "--cpuset-mems" => host.cpuset_mems = Some(v()),
            "--pids-limit" => host.pids_limit = Some(int()?),
            "--blkio-weight" => {
                host.blkio_weight = Some(
                    v().trim()
                        .parse::<u16>()
                        .map_err(|_| bad("expected a weight from 10 to 1000"))?,
                )
            }
            "--blkio-weight-device" => {
                let (path, weight) = device_value(&v(), &|w| {
                    w.parse::<usize>()
                        .map_err(|_| "expected PATH:WEIGHT".to_string())
                })
                .map_err(|w| bad(&w))?;
                host.blkio_weight_device.get_or_insert_with(Vec::new).push(
                    ResourcesBlkioWeightDevice {
                        path: Some(path),
                        weight: Some(weight),
                    },
                );
            }
            "--device-read-bps"
            | "--device-write-bps"
            | "--device-read-iops"
            | "--device-write-iops" => {
                let rate = |r: &str| -> Result<i64, String> {
                    if flag.ends_with("-bps") {
                        parse_bytes(r)
                    } else {
                        r.parse::<i64>()
                            .map_err(|_| "expected PATH:RATE".to_string())
                    }
                };
                let (path, rate) = device_value(&v(), &rate).map_err(|w| bad(&w))?;
                let device = ThrottleDevice {
                    path: Some(path),
                    rate: Some(rate),
                };
                let list = match flag.as_str() {
                    "--device-read-bps" => &mut host.blkio_device_read_bps,
                    "--device-write-bps" => &mut host.blkio_device_write_bps,
                    "--device-read-iops" => &mut host.blkio_device_read_iops,
                    _ => &mut host.blkio_device_write_iops,
                };
                list.get_or_insert_with(Vec::new).push(device);
            }
            "--oom-kill-disable" => host.oom_kill_disable = Some(switch()?),
            "--oom-score-adj" => host.oom_score_adj = Some(int()?),
            // Identity and runtime.
            "--hostname" => extra.hostname = Some(v()),
            "--domainname" => extra.domainname = Some(v()),
            "--dns" => host.dns.get_or_insert_with(Vec::new).push(v()),
            "--dns-search" => host.dns_search.get_or_insert_with(Vec::new).push(v()),
            "--dns-option" => host.dns_options.get_or_insert_with(Vec::new).push(v()),
            "--init" => host.init = Some(switch()?),
            "--restart" => host.restart_policy = Some(restart_policy(&v()).map_err(|w| bad(&w))?),
            "--sysctl" => {
                let (k, val) = key_value(&v()).map_err(|w| bad(&w))?;
                host.sysctls.get_or_insert_with(HashMap::new).insert(k, val);
            }
            "--storage-opt" => {
                let (k, val) = key_value(&v()).map_err(|w| bad(&w))?;
                host.storage_opt
                    .get_or_insert_with(HashMap::new)
                    .insert(k, val);
            }
            "--log-driver" => {
                host.log_config
                    .get_or_insert_with(HostConfigLogConfig::default)
                    .typ = Some(v())
            }
            "--log-opt" => {
                let (k, val) = key_value(&v()).map_err(|w| bad(&w))?;
                host.log_config
                    .get_or_insert_with(HostConfigLogConfig::default)
                    .config
                    .get_or_insert_with(HashMap::new)
                    .insert(k, val);
            }
            "--platform" => run.platform = Some(v()),
            "--stop-signal" => extra.stop_signal = Some(v()),
            "--stop-timeout" => extra.stop_timeout = Some(int()?),
            "--volumes-from" => host.volumes_from.get_or_insert_with(Vec::new).push(v()),
            "--volume-driver" => host.volume_driver = Some(v()),
            "--device-cgroup-rule" => host
                .device_cgroup_rules
                .get_or_insert_with(Vec::new)
                .push(v()),
            "--read-only" => host.readonly_rootfs = Some(switch()?),
            "--userns" => host.userns_mode = Some(v()),
            "--uts" => host.uts_mode = Some(v()),
            "--cgroupns" => {
                host.cgroupns_mode = Some(match v().trim() {
                    "host" => HostConfigCgroupnsModeEnum::HOST,
                    "private" => HostConfigCgroupnsModeEnum::PRIVATE,
                    _ => return Err(bad("expected host or private")),
                })
            }
            "--cgroup-parent" => host.cgroup_parent = Some(v()),
            "--isolation" => {
                host.isolation = Some(match v().trim() {
                    "default" => HostConfigIsolationEnum::DEFAULT,
                    "process" => HostConfigIsolationEnum::PROCESS,
                    "hyperv" => HostConfigIsolationEnum::HYPERV,
                    _ => return Err(bad("expected default, process or hyperv")),
                })
            }
            "--link" => host.links.get_or_insert_with(Vec::new).push(v()),
            // Health.
            "--health-cmd" => {
                health(extra).test = Some(vec!["CMD-SHELL".into(), v()]);
            }
            "--no-healthcheck" => {
                if switch()? {
                    health(extra).test = Some(vec!["NONE".into()]);
                }
            }
            "--health-interval" => health(extra).interval = Some(duration()?),
            "--health-timeout" => health(extra).timeout = Some(duration()?),
            "--health-start-period" => health(extra).start_period = Some(duration()?),
            "--health-retries" => health(extra).retries = Some(int()?),
            // The container's endpoint on its network (the docker CLI's "default" unless
            // `--network` names one; the network is known once every flag is read).
            "--ip" => endpoint_ipam(extra).ipv4_address = Some(v()),
            "--ip6" => endpoint_ipam(extra).ipv6_address = Some(v()),
            "--link-local-ip" => endpoint_ipam(extra)
                .link_local_ips
                .get_or_insert_with(Vec::new)
                .push(v()),
            "--network-alias" => endpoint(extra)
                .aliases
                .get_or_insert_with(Vec::new)
                .push(v()),
            "--mac-address" => endpoint(extra).mac_address = Some(v()),
            // Not expressible, or not the agent's to do.
            "--kernel-memory" => {
                return Err(bad(
                    "kernel memory limits were removed from the Docker Engine API; use --memory",
                ));
            }
            "--cidfile" => {
                return Err(bad(
                    "the docker CLI writes that host file itself; the agent does not write host files named by a task",
                ));
            }
            "--use-api-socket" => {
                return Err(bad(
                    "mounting the Docker API socket into a task's container is not supported",
                ));
            }
            _ => return Err(ArgError::Unsupported(flag)),
        }
    }
    // The endpoint settings belong to the container's network, as the docker CLI files them.
    if let Some(endpoints) = run
        .extra
        .networking_config
        .as_mut()
        .and_then(|n| n.endpoints_config.as_mut())
        && let Some(settings) = endpoints.remove(PENDING_NETWORK)
    {
        let network = run.network_mode.clone().unwrap_or_else(|| "default".into());
        endpoints.insert(network, settings);
    }
    Ok(run)
}

/// The endpoint key used while the flags are read, before the network is known.
const PENDING_NETWORK: &str = "\0pending";

fn endpoint(extra: &mut ContainerCreateBody) -> &mut EndpointSettings {
    extra
        .networking_config
        .get_or_insert_with(NetworkingConfig::default)
        .endpoints_config
        .get_or_insert_with(HashMap::new)
        .entry(PENDING_NETWORK.to_string())
        .or_default()
}

fn endpoint_ipam(extra: &mut ContainerCreateBody) -> &mut EndpointIpamConfig {
    endpoint(extra)
        .ipam_config
        .get_or_insert_with(EndpointIpamConfig::default)
}

fn health(extra: &mut ContainerCreateBody) -> &mut HealthConfig {
    extra.healthcheck.get_or_insert_with(HealthConfig::default)
}

/// `NET_ADMIN` → `CAP_NET_ADMIN`, as the docker CLI normalises capabilities (`ALL` stays).
fn capability(value: &str) -> String {
    let upper = value.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// `key=value` (`--sysctl`, `--log-opt`, `--storage-opt`).
fn key_value(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected key=value".into()),
    }
}

/// `PATH:VALUE` of the block-IO flags.
fn device_value<T>(
    value: &str,
    parse: &dyn Fn(&str) -> Result<T, String>,
) -> Result<(String, T), String> {
    let (path, rest) = value
        .rsplit_once(':')
        .ok_or_else(|| "expected /dev/PATH:VALUE".to_string())?;
    if !path.starts_with("/dev/") {
        return Err("expected a device path under /dev/".into());
    }
    Ok((path.to_string(), parse(rest.trim())?))
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
fn restart_policy(value: &str) -> Result<RestartPolicy, String> {
    let (name, count) = value.trim().split_once(':').unwrap_or((value.trim(), ""));
    let name = match name {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => return Err("expected no, always, unless-stopped or on-failure[:N]".into()),
    };
    let count = match count {
        "" => None,
        n if name == RestartPolicyNameEnum::ON_FAILURE => Some(
            n.parse::<i64>()
                .map_err(|_| "expected on-failure:N with a whole number".to_string())?,
        ),
        _ => return Err("only on-failure takes a retry count".into()),
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// `80`, `7000-7001/udp` → `80/tcp`, `7000/udp`, `7001/udp`.
fn parse_expose(value: &str) -> Result<Vec<String>, String> {
    const FORM: &str = "expected PORT[-PORT][/PROTO]";
    let (ports, proto) = value
        .trim()
        .split_once('/')
        .unwrap_or((value.trim(), "tcp"));
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let (a, b) = (
        a.parse::<u16>().map_err(|_| FORM.to_string())?,
        b.parse::<u16>().map_err(|_| FORM.to_string())?,
    );
    if a > b {
        return Err(FORM.into());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// A Go duration (`1m30s`, `500ms`, `2h`) → nanoseconds, as the docker CLI reads the health
/// flags.
fn parse_duration(value: &str) -> Result<i64, String> {
    const FORM: &str = "expected a duration like 30s, 1m30s or 500ms";
    let mut rest = value.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(FORM.into());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| FORM.to_string())?;
        let number: f64 = rest[..end].parse().map_err(|_| FORM.to_string())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(FORM.into()),
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(FORM.into());
    }
    Ok(total as i64)
}

/// A `--gpus` value as the docker CLI reads it (a CSV list: `all`, a count, `count=N|all`,
/// `device=ID[,ID]` (quoted for several), `driver=NAME`, `capabilities=CAP[,CAP]`; the `gpu`
/// capability is always added).
fn gpus_flag(value: &str) -> Result<DeviceRequest, String> {
    let mut request = DeviceRequest {
        driver: Some(String::new()),
        count: Some(0),
        ..Default::default()
    };
    let mut caps: Vec<String> = Vec::new();
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.to_string()),
            None if field.trim() == "all" => ("count".into(), "all".into()),
            None => ("count".into(), field.clone()),
        };
        match key.as_str() {
            "count" => {
                request.count = Some(if val.trim() == "all" {
                    -1
                } else {
                    val.trim()
                        .parse::<i64>()
                        .map_err(|_| "expected all, a count, or device=ID".to_string())?
                })
            }
            "device" => {
                request.device_ids = Some(
                    val.split(',')
                        .map(|d| d.trim().to_string())
                        .filter(|d| !d.is_empty())
                        .collect(),
                )
            }
            "driver" => request.driver = Some(val.trim().to_string()),
            "capabilities" => caps.extend(
                val.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            ),
            other => return Err(format!("unknown GPU option `{other}`")),
        }
    }
    if request.count.is_some_and(|c| c != 0) && request.device_ids.is_some() {
        return Err("count and device cannot be used together".into());
    }
    if !caps.iter().any(|c| c == "gpu") {
        caps.push("gpu".into());
    }
    request.capabilities = Some(vec![caps]);
    request.options = Some(HashMap::new());
    Ok(request)
}

/// The fields of one CSV record (double quotes group commas, as Go's encoding/csv reads them).
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = value.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if quoted {
        return Err("unbalanced quotes".into());
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
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
        merge_extra(body, &self.extra);
        ignored.sort();
        ignored.dedup();
        ignored
    }
}

/// Fills the body with `extra`: a field the body already sets keeps its value, lists are
/// extended and maps completed (the create body's own JSON shape, so every field merges alike).
fn merge_extra(body: &mut ContainerCreateBody, extra: &ContainerCreateBody) {
    use serde_json::Value;
    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) if !slot.is_null() => merge(slot, v),
                        _ => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => a.extend(b),
            _ => {}
        }
    }
    let (Ok(mut into), Ok(from)) = (serde_json::to_value(&*body), serde_json::to_value(extra))
    else {
        return;
    };
    merge(&mut into, from);
    if let Ok(merged) = serde_json::from_value(into) {
        *body = merged;
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
        // Normalised as the docker CLI sends them.
        assert_eq!(r.cap_add, vec!["CAP_SYS_ADMIN"]);
        assert_eq!(r.cap_drop, vec!["CAP_NET_RAW"]);
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
        // As the docker CLI reads it: a bare number is a count.
        let r = t(&["--gpus=2"]).unwrap();
        assert_eq!(r.device_requests[0].count, Some(2));
        assert_eq!(r.device_requests[0].device_ids, None);
        assert_eq!(
            r.device_requests[0].capabilities,
            Some(vec![vec!["gpu".to_string()]])
        );
        let r = t(&[
            "--gpus",
            "\"capabilities=compute,utility\",driver=nvidia,count=1",
        ])
        .unwrap();
        assert_eq!(r.device_requests[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(
            r.device_requests[0].capabilities,
            Some(vec![vec!["compute".into(), "utility".into(), "gpu".into()]])
        );
        assert!(t(&["--gpus", "count=1,device=0"]).is_err());
        assert!(t(&["--gpus", "\"device=0"]).is_err());
    }

    #[test]
    fn unknown_flags_are_errors_naming_them() {
        // An unknown flag is named, and never takes the next word with it.
        let e = t(&["--init", "--frobnicate", "--shm-size", "64m"]).unwrap_err();
        assert_eq!(e, ArgError::Unsupported("--frobnicate".into()));
        assert!(e.to_string().contains("--frobnicate"));
        // The user's report: every word of it translates.
        let r = t(&[
            "--memory",
            "256m",
            "--cpus",
            "1",
            "--hostname",
            "h",
            "--init",
            "--shm-size",
            "64m",
        ])
        .unwrap();
        assert_eq!(r.shm_size, Some(64 << 20));
        let host = r.extra.host_config.as_ref().unwrap();
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.init, Some(true));
        assert_eq!(r.extra.hostname.as_deref(), Some("h"));
        // Bundled switches, and flags the engine cannot express.
        assert!(t(&["-it", "--rm"]).is_ok());
        for flag in ["--kernel-memory", "--cidfile"] {
            assert!(matches!(
                t(&[flag, "1"]).unwrap_err(),
                ArgError::BadValue { .. }
            ));
        }
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
