//! How the agent's `extra_docker_arguments` and the task's container arguments become one
//! `docker run` list: the task's are filtered by `docker_args_filters`, `$VAR`s in `-e` values
//! are expanded from the agent's environment (the admin's always, the task's only with
//! `docker_allow_host_environ`), forbidden switches are dropped from both, and a protected
//! switch of the side that comes first wins over the other side's.
//!
//! mirrors clearml_agent/helper/docker_args.py (DockerArgsSanitizer.merge_docker_args and
//! filter_switches) and clearml_agent/commands/worker.py (Worker._filter_docker_args,
//! Worker._resolve_docker_env_args, the merge step of Worker._get_docker_cmd).
//!
//! Stricter than the Python agent where its checks could be bypassed: switches are compared by
//! their long name (`--net` is `--network`, `-e` is `--env`), a filter must match the whole
//! switch (`--env` does not let `--env-file` through), and with `agent.docker_untrusted_tasks`
//! the task's part is checked by `docker::policy`.

use super::args::canonical;
use super::policy::{self, PolicyError};

/// The rules, from `agent.*` settings.
#[derive(Debug, Clone)]
pub struct ArgRules {
    /// `docker_args_filters` / `CLEARML_AGENT_DOCKER_ARGS_FILTERS`: regular expressions a task
    /// argument must match at its start to be kept (none: all are kept).
    pub filters: Vec<String>,
    /// `forbidden_docker_args` (default `entrypoint`): dropped from both sides.
    pub forbidden: Vec<String>,
    /// `protected_docker_extra_args` (privileged, security-opt, network, ipc).
    pub protected: Vec<String>,
    /// `docker_args_extra_precedes_task` (default true).
    pub extra_precedes_task: bool,
    /// `docker_allow_host_environ`: expand `$VAR` in the task's `-e` values too (never under
    /// `untrusted_tasks`).
    pub allow_host_environ: bool,
    /// `agent.docker_untrusted_tasks`: the task's arguments are checked by `docker::policy`.
    pub untrusted_tasks: bool,
}

/// `protected_docker_extra_args` when not configured: the Python agent's list plus `runtime` and
/// `pid` (an admin's `--runtime=runsc` or `--pid` must not be undone by a task).
pub const PROTECTED_DEFAULT: [&str; 6] = [
    "privileged",
    "security-opt",
    "network",
    "ipc",
    "runtime",
    "pid",
];

impl Default for ArgRules {
    fn default() -> Self {
        ArgRules {
            filters: Vec::new(),
            forbidden: vec!["entrypoint".into()],
            protected: PROTECTED_DEFAULT.map(String::from).to_vec(),
            extra_precedes_task: true,
            allow_host_environ: false,
            untrusted_tasks: false,
        }
    }
}

/// The merged list, and the forbidden switches that were dropped (for a warning).
#[derive(Debug, PartialEq)]
pub struct Merged {
    pub args: Vec<String>,
    pub stripped: Vec<String>,
}

/// Merges the task's and the agent's arguments; `env` reads the agent's environment. Fails only
/// under `untrusted_tasks`, when the task asks for something the policy refuses.
pub fn merge(
    rules: &ArgRules,
    task: &[String],
    extra: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Merged, PolicyError> {
    let mut task = filter_by_patterns(task, &rules.filters);
    if rules.untrusted_tasks {
        // As the task wrote them (a refused switch is refused even where the admin's protected
        // one would replace it), and below as they run.
        policy::check_task_args(&task)?;
    }
    if rules.allow_host_environ && !rules.untrusted_tasks {
        task = expand_env_values(&task, env);
    }
    // The admin set these, so their variables are always expanded.
    let mut extra = expand_env_values(extra, env);

    let mut stripped: Vec<String> = switches(&task)
        .into_iter()
        .chain(switches(&extra))
        .filter(|s| rules.forbidden.contains(s))
        .collect();
    stripped.sort();
    stripped.dedup();
    if !stripped.is_empty() {
        task = exclude_switches(&task, &stripped);
        extra = exclude_switches(&extra, &stripped);
    }

    let task_first = !rules.extra_precedes_task;
    let (first, second) = if task_first {
        (task, extra)
    } else {
        (extra, task)
    };
    let protected: Vec<String> = switches(&first)
        .into_iter()
        .filter(|s| rules.protected.contains(s))
        .collect();
    let first: Vec<String> = first.into_iter().filter(|a| !a.is_empty()).collect();
    let second: Vec<String> = exclude_switches(&second, &protected)
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    if rules.untrusted_tasks {
        // The task's part as it runs; the part before it must end where the task's begins, so
        // that no task word is read as the value of an agent flag or the other way round.
        let (task, other) = if task_first {
            (&first, &second)
        } else {
            (&second, &first)
        };
        policy::check_task_args(task)?;
        if !task_first {
            policy::check_boundary(other)?;
        }
    }
    let mut args = first;
    args.extend(second);
    Ok(Merged { args, stripped })
}

/// The switch names in `args`, by their long name (`--network=host`, `--net host` and
/// `--network` give `network`; `-e` gives `env`).
fn switches(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|t| t.trim())
        .filter(|t| t.starts_with('-'))
        .map(switch_name)
        .collect()
}

/// `--net=host` → `network`, `-eA=1` → `env`.
fn switch_name(token: &str) -> String {
    canonical(token).trim_start_matches('-').to_string()
}

/// Drops the switches named in `exclude` with their values. mirrors filter_switches (exclude
/// mode), quirks included: after a kept `--flag=value`, bare words are taken for a dropped
/// switch's values.
fn exclude_switches(args: &[String], exclude: &[String]) -> Vec<String> {
    let named = |t: &String| {
        let t = t.trim();
        t.starts_with('-') && exclude.contains(&switch_name(t))
    };
    if exclude.is_empty() || !args.iter().any(named) {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut in_switch_args = true;
    for token in args {
        let trimmed = token.trim();
        if trimmed.starts_with('-') {
            let switch = match trimmed.split_once('=') {
                Some((name, _)) => {
                    in_switch_args = false;
                    name
                }
                None => {
                    in_switch_args = true;
                    token.as_str()
                }
            };
            if exclude.contains(&switch_name(switch)) {
                in_switch_args = false;
            } else {
                out.push(token.clone());
            }
        } else if in_switch_args {
            out.push(token.clone());
        }
    }
    out
}

/// Keeps the arguments that a filter matches, with the value that follows a matching flag.
/// mirrors Worker._filter_docker_args, but a filter must match a whole word: the switch as
/// written (`--env` of `--env=A=1`, `-e` of `-eA=1`), its long name (`--network` of `--net`),
/// or the whole argument. The Python agent matches at the start only, so its example filter
/// `--env` also passed `--env-file`.
fn filter_by_patterns(args: &[String], filters: &[String]) -> Vec<String> {
    let patterns: Vec<regex::Regex> = filters
        .iter()
        .filter_map(|f| regex::Regex::new(&format!("^(?:{f})$")).ok())
        .collect();
    if args.is_empty() || patterns.is_empty() {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = args.iter().map(|a| a.trim().to_string()).peekable();
    while let Some(cmd) = rest.next() {
        let written = if cmd.starts_with("--") {
            cmd.split_once('=').map_or(cmd.as_str(), |(name, _)| name)
        } else if cmd.starts_with('-') && cmd.len() > 2 && cmd.is_char_boundary(2) {
            &cmd[..2]
        } else {
            cmd.as_str()
        };
        let long = canonical(&cmd);
        let words = [written, long.as_str(), cmd.as_str()];
        if patterns.iter().any(|p| words.iter().any(|w| p.is_match(w))) {
            let takes_value =
                !cmd.contains('=') && rest.peek().is_some_and(|next| !next.starts_with('-'));
            out.push(cmd);
            if takes_value && let Some(value) = rest.next() {
                out.push(value);
            }
        }
    }
    out
}

/// Flags without a value, long and short. mirrors _resolve_docker_env_args.
const NO_VALUE_LONG: [&str; 10] = [
    "rm",
    "read-only",
    "sig-proxy",
    "tty",
    "privileged",
    "publish-all",
    "interactive",
    "init",
    "help",
    "detach",
];
const NO_VALUE_SHORT: [&str; 4] = ["t", "P", "i", "d"];

/// Expands `$VAR` and `${VAR}` in the values of `-e`/`--env` (`KEY=value` words after the
/// flag). mirrors Worker._resolve_docker_env_args.
fn expand_env_values(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = args.to_vec();
    let mut skip_arg = false;
    for (i, cmd) in args.iter().enumerate() {
        if skip_arg && !cmd.starts_with('-') {
            continue;
        }
        skip_arg = false;
        if let Some(long) = cmd.strip_prefix("--") {
            if NO_VALUE_LONG.contains(&long) {
                continue;
            }
        } else if let Some(short) = cmd.strip_prefix('-')
            && NO_VALUE_SHORT.contains(&short)
        {
            continue;
        }
        if cmd == "-e" || cmd == "--env" {
            skip_arg = true;
            for j in i + 1..args.len() {
                if args[j].starts_with('-') {
                    break;
                }
                if let Some((key, value)) = args[j].split_once('=') {
                    out[j] = format!("{key}={}", expand_vars(value, env));
                }
            }
        } else if cmd.starts_with('-') {
            skip_arg = true;
        }
    }
    out
}

/// `$NAME` and `${NAME}` replaced by the variable's value; unknown ones stay as written.
/// mirrors Python's os.path.expandvars.
fn expand_vars(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, written) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        match (!name.is_empty()).then(|| env(name)).flatten() {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[pos..pos + 1 + written]),
        }
        rest = &rest[pos + 1 + written..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn protected_switch_of_the_agent_wins() {
        let m = merge(
            &ArgRules::default(),
            &v("--network none -e A=1 --ipc=private"),
            &v("--network host --ipc=host"),
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--network host --ipc=host -e A=1"));
        assert!(m.stripped.is_empty());
        // With the task first, the task's protected switches win instead.
        let rules = ArgRules {
            extra_precedes_task: false,
            ..ArgRules::default()
        };
        let m = merge(
            &rules,
            &v("--network none -e A=1"),
            &v("--network host -e B=2"),
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--network none -e A=1 -e B=2"));
    }

    #[test]
    fn forbidden_switches_are_dropped_from_both_sides() {
        let m = merge(
            &ArgRules::default(),
            &v("--entrypoint /bin/bash -e A=1"),
            &v("--entrypoint=/x --shm-size 1g"),
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--shm-size 1g -e A=1"));
        assert_eq!(m.stripped, vec!["entrypoint".to_string()]);
    }

    #[test]
    fn filters_keep_only_matching_task_arguments() {
        let rules = ArgRules {
            filters: vec!["--env$".into(), "-e$".into()],
            ..ArgRules::default()
        };
        let m = merge(
            &rules,
            &v("-e A=1 --privileged -v /:/host --env B=2"),
            &v("--shm-size 1g"),
            &no_env,
        )
        .unwrap();
        // The agent's own arguments are never filtered.
        assert_eq!(m.args, v("--shm-size 1g -e A=1 --env B=2"));
    }

    #[test]
    fn variables_are_expanded_in_env_values() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cr3t".to_string());
        let task = v("-e T=$TOKEN -v $TOKEN:/x");
        let extra = v("-e A=${TOKEN}/x -e B=$MISSING --rm -e C=$TOKEN");
        let m = merge(&ArgRules::default(), &task, &extra, &env).unwrap();
        assert_eq!(
            m.args,
            v("-e A=s3cr3t/x -e B=$MISSING --rm -e C=s3cr3t -e T=$TOKEN -v $TOKEN:/x")
        );
        let rules = ArgRules {
            allow_host_environ: true,
            ..ArgRules::default()
        };
        let m = merge(&rules, &task, &[], &env).unwrap();
        assert_eq!(m.args, v("-e T=s3cr3t -v $TOKEN:/x"));
    }

    #[test]
    fn aliases_do_not_escape_protected_switches() {
        // `--net=host` is `--network`, `--runtime`/`--pid` are protected by default.
        let m = merge(
            &ArgRules::default(),
            &v("--net=host --runtime=runc --pid host -e A=1"),
            &v("--network bridge --runtime=runsc --pid="),
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--network bridge --runtime=runsc --pid= -e A=1"));
        // `-e` and `--env` are one switch for the forbidden list too.
        let rules = ArgRules {
            forbidden: vec!["env".into()],
            ..ArgRules::default()
        };
        let m = merge(
            &rules,
            &v("-e A=1 -eB=2 --env=C=3 --shm-size 1g"),
            &[],
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--shm-size 1g"));
    }

    #[test]
    fn filters_match_the_whole_switch() {
        // The Python agent's own example without `$`: `--env` must not pass `--env-file`.
        let rules = ArgRules {
            filters: vec!["--env".into(), "-e".into(), "--network".into()],
            ..ArgRules::default()
        };
        let m = merge(
            &rules,
            &v("--env-file /root/secret --env=A=1 -eB=2 -e C=3 --net=host --envx 1"),
            &[],
            &no_env,
        )
        .unwrap();
        assert_eq!(m.args, v("--env=A=1 -eB=2 -e C=3 --net=host"));
    }

    #[test]
    fn untrusted_policy_checks_the_task_part_only() {
        let rules = ArgRules {
            untrusted_tasks: true,
            allow_host_environ: true,
            ..ArgRules::default()
        };
        let env = |k: &str| (k == "TOKEN").then(|| "s3cr3t".to_string());
        // The admin's own arguments are trusted; the task's $VARs are not expanded.
        let m = merge(
            &rules,
            &v("-e T=$TOKEN"),
            &v("--privileged -v /data:/data"),
            &env,
        )
        .unwrap();
        assert_eq!(m.args, v("--privileged -v /data:/data -e T=$TOKEN"));
        let e = merge(&rules, &v("--net=host"), &[], &env).unwrap_err();
        assert!(e.to_string().contains("--net"), "{e}");
        // A task word taken as the value of an excluded protected switch is still checked.
        let e = merge(
            &rules,
            &v("--network --privileged"),
            &v("--network bridge"),
            &env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--privileged"), "{e}");
    }

    #[test]
    fn expand_vars_reads_like_python() {
        let env = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(
            expand_vars("$A-${A}-$B-${B}-$-${", &env),
            "1-1-$B-${B}-$-${"
        );
        assert_eq!(expand_vars("x$A_y", &env), "x$A_y");
    }
}
