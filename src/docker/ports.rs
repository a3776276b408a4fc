//! Published ports of a task's container (`-p/--publish HOST:CONTAINER`): a host port that is
//! taken (or outside `agent.docker_args_allowed_port_range`) moves to a free consecutive range,
//! the container learns the host's address (`CLEARML_AGENT_HOST_IP`) and the task records the
//! mapping (runtime `_external_host_tcp_port_mapping`, read by tools such as clearml-session).
//!
//! mirrors clearml_agent/helper/docker_args.py: DockerArgsSanitizer.resolve_port_mapping, and
//! clearml_agent/helper/os/networking.py: TcpPorts.

use std::collections::BTreeSet;

/// Where remapped ports go when no allowed range is configured (TcpPorts' defaults).
const REMAP_MIN: u16 = 10000;
const REMAP_MAX: u16 = 60000;

/// The arguments with remapped ports and the host address variable, and the mapping to record.
#[derive(Debug, PartialEq)]
pub struct PortPlan {
    pub args: Vec<String>,
    /// `host:container` pairs (ranges as `a-b`), comma-separated.
    pub mapping: String,
}

/// Plans the published ports of `args`; `None` when nothing is published, or the container
/// uses the host's network (published ports mean nothing there). `used` gives the host ports in
/// use and `host_ip` the address the container is told; both are asked only when ports are
/// published.
pub fn resolve(
    args: &[String],
    allowed: Option<(u16, u16)>,
    used: &dyn Fn() -> BTreeSet<u16>,
    host_ip: &dyn Fn() -> Option<String>,
) -> Result<Option<PortPlan>, String> {
    let published = values_of(args, &["-p", "--publish"]);
    if published.is_empty() {
        return Ok(None);
    }
    let host_network = values_of(args, &["--network", "--net"])
        .iter()
        .any(|(_, _, v)| v == "host");
    if host_network {
        return Ok(None);
    }
    let mut out = args.to_vec();
    let mut taken: BTreeSet<u16> = used();
    let available = |port: u16, taken: &BTreeSet<u16>| {
        allowed.is_none_or(|(lo, hi)| (lo..=hi).contains(&port)) && !taken.contains(&port)
    };
    let mut pairs = Vec::new();
    for (index, prefix, value) in &published {
        let (spec, proto) = match value.split_once('/') {
            Some((spec, proto)) => (spec, Some(proto)),
            None => (value.as_str(), None),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        if parts.len() < 2 {
            return Err(format!(
                "'{value}' has no host port (docker picks one), so no mapping is recorded; \
                 publish HOST:CONTAINER to have it recorded"
            ));
        }
        let (host, inside) = (parts[parts.len() - 2], parts[parts.len() - 1]);
        if proto == Some("udp") {
            continue;
        }
        let (first, last) = port_range(host).ok_or_else(|| format!("bad host port '{host}'"))?;
        let wanted: Vec<u16> = (first..=last).collect();
        let mut host_ports = host.to_string();
        if wanted.iter().all(|p| available(*p, &taken)) {
            taken.extend(&wanted);
        } else if let Some(new) = find_range(wanted.len(), allowed, &taken) {
            taken.extend(&new);
            host_ports = match (new.first(), new.last()) {
                (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
                (Some(a), _) => a.to_string(),
                _ => host_ports,
            };
            let mut rebuilt: Vec<&str> = parts[..parts.len() - 2].to_vec();
            rebuilt.push(&host_ports);
            rebuilt.push(inside);
            let mut text = rebuilt.join(":");
            if let Some(proto) = proto {
                text = format!("{text}/{proto}");
            }
            out[*index] = format!("{prefix}{text}");
        } else {
            // No free range: the rest stays as requested (mirrors the Python agent's `break`).
            pairs.push(format!("{host}:{inside}"));
            break;
        }
        pairs.push(format!("{host_ports}:{inside}"));
    }
    if let Some(ip) = host_ip() {
        out.push("-e".into());
        out.push(format!("CLEARML_AGENT_HOST_IP={ip}"));
    }
    Ok(Some(PortPlan {
        args: out,
        mapping: pairs.join(","),
    }))
}

/// `(index, prefix, value)` of each of `flags` in `args`: the word that holds the value, what
/// comes before the value in that word (`--flag=` or nothing), and the value.
fn values_of(args: &[String], flags: &[&str]) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].trim();
        if flags.contains(&arg) && i + 1 < args.len() {
            out.push((i + 1, String::new(), args[i + 1].trim().to_string()));
            i += 2;
            continue;
        }
        if let Some((flag, value)) = arg.split_once('=')
            && flags.contains(&flag)
        {
            out.push((i, format!("{flag}="), value.to_string()));
        }
        i += 1;
    }
    out
}

/// `8080` or `8080-8090`.
fn port_range(host: &str) -> Option<(u16, u16)> {
    let (a, b) = host.split_once('-').unwrap_or((host, host));
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// The first `n` consecutive free ports of the allowed range (or 10000-60000).
fn find_range(n: usize, allowed: Option<(u16, u16)>, taken: &BTreeSet<u16>) -> Option<Vec<u16>> {
    let (lo, hi) = allowed.unwrap_or((REMAP_MIN, REMAP_MAX));
    let mut run: Vec<u16> = Vec::new();
    for p in lo..=hi {
        if taken.contains(&p) {
            run.clear();
            continue;
        }
        run.push(p);
        if run.len() == n {
            return Some(run);
        }
    }
    None
}

/// Local ports of every TCP and UDP socket of the machine (`/proc/net/{tcp,tcp6,udp,udp6}`),
/// as psutil.net_connections() lists them for TcpPorts.
pub fn used_ports() -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let local = line.split_whitespace().nth(1).unwrap_or_default();
            if let Some(port) = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// This machine's address on its default route: the local end of a UDP "connection" (no packet
/// is sent). mirrors get_private_ip (_get_private_ip_from_socket, towards 8.8.8.8).
pub fn private_ip() -> Option<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("8.8.8.8:1").ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn free_ports_are_kept_and_recorded() {
        let plan = resolve(
            &v("-e A=1 -p 8080:80 --publish 9000-9001:90-91"),
            None,
            &BTreeSet::new,
            &|| Some("10.0.0.5".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            plan.args,
            v("-e A=1 -p 8080:80 --publish 9000-9001:90-91 -e CLEARML_AGENT_HOST_IP=10.0.0.5")
        );
        assert_eq!(plan.mapping, "8080:80,9000-9001:90-91");
    }

    #[test]
    fn taken_or_disallowed_ports_move_to_a_free_range() {
        let used: BTreeSet<u16> = [8080, 10000, 7001].into_iter().collect();
        let plan = resolve(
            &v("-p 8080:80 -p 127.0.0.1:7000-7001:70-71/tcp"),
            None,
            &|| used.clone(),
            &|| None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            plan.args,
            v("-p 10001:80 -p 127.0.0.1:10002-10003:70-71/tcp")
        );
        assert_eq!(plan.mapping, "10001:80,10002-10003:70-71");
        // With an allowed range, a free port outside it moves in.
        let plan = resolve(
            &v("--publish=5000:50"),
            Some((9000, 9005)),
            &BTreeSet::new,
            &|| None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(plan.args, v("--publish=9000:50"));
    }

    #[test]
    fn nothing_to_do_without_ports_or_on_the_host_network() {
        assert_eq!(
            resolve(&v("-e A=1"), None, &|| panic!("no ports asked"), &|| None),
            Ok(None)
        );
        assert_eq!(
            resolve(&v("--network host -p 80:80"), None, &BTreeSet::new, &|| {
                None
            }),
            Ok(None)
        );
        assert!(resolve(&v("-p 80"), None, &BTreeSet::new, &|| None).is_err());
    }

    #[test]
    fn proc_net_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(used_ports().contains(&port));
    }
}
