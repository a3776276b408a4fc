//! How the agent's `extra_docker_arguments` and the task's container arguments become one
//! `docker run` list: the task's are filtered by `docker_args_filters`, `$VAR`s in `-e` values
//! are expanded from the agent's environment (the admin's always, the task's only with
//! `docker_allow_host_environ`), forbidden switches are dropped from both, and a protected
//! switch of the side that comes first wins over the other side's.
//!
//! mirrors clearml_agent/helper/docker_args.py (DockerArgsSanitizer.merge_docker_args and
//! filter_switches) and clearml_agent/commands/worker.py (Worker._filter_docker_args,
//! Worker._resolve_docker_env_args, the merge step of Worker._get_docker_cmd).

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
    /// `docker_allow_host_environ`: expand `$VAR` in the task's `-e` values too.
    pub allow_host_environ: bool,
}

impl Default for ArgRules {
    fn default() -> Self {
        ArgRules {
            filters: Vec::new(),
            forbidden: vec!["entrypoint".into()],
            protected: ["privileged", "security-opt", "network", "ipc"]
                .map(String::from)
                .to_vec(),
            extra_precedes_task: true,
            allow_host_environ: false,
        }
    }
}

/// The merged list, and the forbidden switches that were dropped (for a warning).
#[derive(Debug, PartialEq)]
pub struct Merged {
    pub args: Vec<String>,
    pub stripped: Vec<String>,
}

/// Merges the task's and the agent's arguments; `env` reads the agent's environment.
pub fn merge(
    rules: &ArgRules,
    task: &[String],
    extra: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Merged {
    let mut task = filter_by_patterns(task, &rules.filters);
    if rules.allow_host_environ {
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

    let (first, second) = if rules.extra_precedes_task {
        (extra, task)
    } else {
        (task, extra)
    };
    let protected: Vec<String> = switches(&first)
        .into_iter()
        .filter(|s| rules.protected.contains(s))
        .collect();
    let mut args: Vec<String> = first.into_iter().filter(|a| !a.is_empty()).collect();
    args.extend(
        exclude_switches(&second, &protected)
            .into_iter()
            .filter(|a| !a.is_empty()),
    );
    Merged { args, stripped }
}

/// The switch names in `args` (`--network=host` and `--network` give `network`).
fn switches(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|t| t.trim())
        .filter(|t| t.starts_with('-'))
        .map(|t| {
            t.split('=')
                .next()
                .unwrap_or_default()
                .trim_start_matches('-')
                .to_string()
        })
        .collect()
}

/// Drops the switches named in `exclude` with their values. mirrors filter_switches (exclude
/// mode), quirks included: after a kept `--flag=value`, bare words are taken for a dropped
/// switch's values.
fn exclude_switches(args: &[String], exclude: &[String]) -> Vec<String> {
    let joined = args.join(" ");
    if exclude.is_empty() || !exclude.iter().any(|s| joined.contains(&format!("-{s}"))) {
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
            if exclude.iter().any(|e| e == switch.trim_start_matches('-')) {
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

/// Keeps the arguments that match a filter at their start, with the value that follows a
/// matching flag. mirrors Worker._filter_docker_args.
fn filter_by_patterns(args: &[String], filters: &[String]) -> Vec<String> {
    let patterns: Vec<regex::Regex> = filters
        .iter()
        .filter_map(|f| regex::Regex::new(&format!("^(?:{f})")).ok())
        .collect();
    if args.is_empty() || patterns.is_empty() {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = args.iter().map(|a| a.trim().to_string()).peekable();
    while let Some(cmd) = rest.next() {
        if patterns.iter().any(|p| p.is_match(&cmd)) {
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
        );
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
        );
        assert_eq!(m.args, v("--network none -e A=1 -e B=2"));
    }

    #[test]
    fn forbidden_switches_are_dropped_from_both_sides() {
        let m = merge(
            &ArgRules::default(),
            &v("--entrypoint /bin/bash -e A=1"),
            &v("--entrypoint=/x --shm-size 1g"),
            &no_env,
        );
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
        );
        // The agent's own arguments are never filtered.
        assert_eq!(m.args, v("--shm-size 1g -e A=1 --env B=2"));
    }

    #[test]
    fn variables_are_expanded_in_env_values() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cr3t".to_string());
        let task = v("-e T=$TOKEN -v $TOKEN:/x");
        let extra = v("-e A=${TOKEN}/x -e B=$MISSING --rm -e C=$TOKEN");
        let m = merge(&ArgRules::default(), &task, &extra, &env);
        assert_eq!(
            m.args,
            v("-e A=s3cr3t/x -e B=$MISSING --rm -e C=s3cr3t -e T=$TOKEN -v $TOKEN:/x")
        );
        let rules = ArgRules {
            allow_host_environ: true,
            ..ArgRules::default()
        };
        let m = merge(&rules, &task, &[], &env);
        assert_eq!(m.args, v("-e T=s3cr3t -v $TOKEN:/x"));
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
