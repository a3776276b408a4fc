//! The untrusted-tasks policy (`agent.docker_untrusted_tasks`): the `docker run` arguments a
//! task may not ask for, because each one reaches past the container to the host (privileges,
//! host mounts, devices, capabilities, host namespaces, another runtime or security profile,
//! host files read by the agent). The admin's own arguments are not checked.
//!
//! The Python agent has no such policy (its `docker_args_filters` only drop what is not listed);
//! here a refused argument fails the task with a one-line reason naming it and the setting.

use super::args::{ArgError, canonical, pairs};

/// The setting named in every refusal.
pub const SETTING: &str = "agent.docker_untrusted_tasks";

/// A task argument the policy refuses, or task arguments it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "docker argument `{arg}` is not allowed in a task while {SETTING} is on ({why}); remove it from the task's container arguments, or have the admin add it to agent.extra_docker_arguments"
    )]
    Refused { arg: String, why: &'static str },
    #[error("cannot check the task's docker arguments against {SETTING}: {0}")]
    Unreadable(ArgError),
    #[error(
        "agent.extra_docker_arguments must be complete flags and values while {SETTING} is on: {0}"
    )]
    AgentArgs(ArgError),
}

/// Checks the task's part of the merged arguments.
pub fn check_task_args(task: &[String]) -> Result<(), PolicyError> {
    for (flag, value) in pairs(task).map_err(PolicyError::Unreadable)? {
        if let Some(why) = refusal(&canonical(&flag), value.as_deref()) {
            let arg = match &value {
                Some(v) => format!("{flag} {v}"),
                None => flag,
            };
            return Err(PolicyError::Refused { arg, why });
        }
    }
    Ok(())
}

/// The agent's part that comes before the task's must read as whole flags and values.
pub fn check_boundary(agent: &[String]) -> Result<(), PolicyError> {
    pairs(agent).map(|_| ()).map_err(PolicyError::AgentArgs)
}

/// Why `flag` (its long name) with `value` is refused, if it is.
fn refusal(flag: &str, value: Option<&str>) -> Option<&'static str> {
    let value = value.map(str::trim);
    let host_namespace = |v: Option<&str>| {
        v.is_some_and(|v| v == "host" || v.starts_with("container:") || v.starts_with("ns:"))
    };
    match flag {
        "--privileged" => {
            // `--privileged=false` is not privileged.
            let on = !matches!(value, Some("0" | "f" | "F" | "false" | "FALSE" | "False"));
            on.then_some("privileged containers reach the host")
        }
        "--volume" => value
            .and_then(|v| v.split_once(':'))
            .is_some_and(|(source, _)| is_host_path(source))
            .then_some("host folders may not be mounted"),
        "--mount" => value
            .is_some_and(|v| {
                v.split(',').any(|field| {
                    matches!(field.trim(), "type=bind" | "type=npipe" | "type=cluster")
                })
            })
            .then_some("host folders may not be mounted"),
        "--volumes-from" => Some("another container's mounts may not be taken"),
        "--device"
        | "--device-cgroup-rule"
        | "--device-read-bps"
        | "--device-write-bps"
        | "--device-read-iops"
        | "--device-write-iops"
        | "--blkio-weight-device" => Some("host devices may not be used"),
        "--volume-driver" => Some("volume plugins may not be chosen"),
        "--label-file" => Some("host files may not be read into the container"),
        "--log-driver" | "--log-opt" => {
            Some("the logging driver may not be changed (it writes on the host or the network)")
        }
        "--oom-kill-disable" => {
            (!matches!(value, Some("0" | "f" | "F" | "false" | "FALSE" | "False")))
                .then_some("the OOM killer may not be disabled (the host would run out of memory)")
        }
        "--oom-score-adj" => value
            .and_then(|v| v.parse::<i64>().ok())
            .is_none_or(|n| n < 0)
            .then_some("the host's processes may not be made the OOM killer's first choice"),
        "--cap-add" => Some("capabilities may not be added"),
        "--pid" | "--ipc" | "--uts" | "--network" | "--cgroupns" => host_namespace(value)
            .then_some("the host's or another container's namespaces may not be joined"),
        "--userns" => Some("the user namespace may not be changed"),
        "--runtime" => Some("the container runtime may not be changed"),
        "--security-opt" => Some("security profiles may not be changed"),
        "--env-file" => Some("host files may not be read into the container"),
        "--cgroup-parent" => Some("the cgroup may not be changed"),
        "--sysctl" => Some("kernel parameters may not be changed"),
        _ => None,
    }
}

/// A `-v` source that names a host path (a named volume has no `/`, `.` or `~`).
fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~']) || source.contains('/') || source.contains('\\')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(args: &str) -> Result<(), PolicyError> {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        check_task_args(&args)
    }

    #[test]
    fn each_host_reaching_argument_is_refused_naming_it() {
        for args in [
            "--privileged",
            "--privileged=true",
            "-v /:/host",
            "--volume=./x:/x",
            "-v/etc:/e",
            "--mount type=bind,source=/,target=/host",
            "--volumes-from other",
            "--device /dev/fuse",
            "--cap-add SYS_ADMIN",
            "--pid host",
            "--pid=container:abc",
            "--ipc=host",
            "--uts host",
            "--net=host",
            "--network container:x",
            "--userns host",
            "--runtime runc",
            "--security-opt seccomp=unconfined",
            "--env-file /root/.env",
            "--cgroupns=host",
            "--device-read-iops /dev/sda:10",
            "--blkio-weight-device /dev/sda:100",
            "--volume-driver plugin",
            "--label-file /root/labels",
            "--sysctl kernel.x=1",
            "--cgroup-parent /",
            "--log-driver syslog",
            "--log-opt syslog-address=udp://1.2.3.4:1111",
            "--oom-kill-disable",
            "--oom-score-adj=-500",
        ] {
            let e = check(&format!("-e A=1 {args}")).unwrap_err();
            let first = args.split([' ', '=']).next().unwrap();
            let text = e.to_string();
            assert!(
                text.contains(first) || text.contains(&first[..2]),
                "{args}: {text}"
            );
            assert!(text.contains(SETTING), "{text}");
            assert_eq!(text.lines().count(), 1);
        }
    }

    #[test]
    fn contained_arguments_are_allowed() {
        for args in [
            "--privileged=false",
            "-e A=1 --env=B=2",
            "-v data:/data -v /anon",
            "--mount type=volume,source=v,target=/v",
            "--mount type=tmpfs,target=/t",
            "--network bridge --ipc=private --shm-size 1g",
            "--cap-drop ALL -l team=ml -p 8080:80 --gpus all",
        ] {
            assert_eq!(check(args), Ok(()), "{args}");
        }
        assert!(matches!(
            check("-e").unwrap_err(),
            PolicyError::Unreadable(_)
        ));
    }
}
