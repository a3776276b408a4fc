//! The documentation is true and no setting is a silent no-op, checked mechanically on the
//! sources: every key of docs/configuration.md and every variable of docs/environment.md is read
//! by the code (or listed as not supported, which warns at start), and every setting the code
//! reads into `config::settings` is used outside it, or warned about when set, or named here as
//! passive with the reason.

use std::collections::BTreeSet;
use std::path::Path;

use clearml_agent::config::unsupported;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `.rs` file under `src/`, comment lines left out, except `skip` (a file, or every file
/// of a folder when it ends with `/`).
fn sources_except(skip: &[&str]) -> String {
    let mut out = String::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !skip.iter().any(|s| match s.strip_suffix('/') {
                    Some(folder) => path.parent().is_some_and(|p| p.ends_with(folder)),
                    None => path.ends_with(s),
                })
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    if !line.trim_start().starts_with("//") {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
        }
    }
    out
}

/// Settings fields the code reads and rightly does not act on, with the reason.
const PASSIVE: &[(&str, &str)] = &[
    (
        "web_server",
        "shown by `config` and passed on in the configuration the task's SDK reads",
    ),
    (
        "files_server",
        "shown by `config` and passed on in the configuration the task's SDK reads",
    ),
    (
        "wait_on_maintenance_forever",
        "retries are always bounded by api.http.retries.total (docs/differences.md)",
    ),
    (
        "disable_vault_support",
        "there is no vault support to disable: its effect is this agent's default",
    ),
    (
        "disable_agent_update_check",
        "there is no update check to disable",
    ),
    (
        "cudnn_version",
        "no effect on pip/uv/poetry environments, as in the Python agent (only its conda manager uses it)",
    ),
    (
        "docker_agent_repo",
        "warned about through its variables (FORCE_CLEARML_AGENT_REPO, CLEARML_AGENT_DOCKER_AGENT_REPO)",
    ),
    (
        "force_current_version",
        "nothing of the agent is installed in containers, so there is no version to force",
    ),
];

/// Settings fields that are not acted on and are warned about when set: the field and its key or
/// variable, which must be in `config::unsupported`.
const WARNED: &[(&str, &str)] = &[
    ("verbose", "CLEARML_API_VERBOSE"),
    (
        "force_max_api_version",
        "CLEARML_AGENT_FORCE_MAX_API_VERSION",
    ),
    ("redirect", "api.http.retries.redirect"),
    ("crash_on_exception", "agent.crash_on_exception"),
    ("reload_config", "agent.reload_config"),
    (
        "truncate_task_output_files",
        "agent.truncate_task_output_files",
    ),
    ("log_files_buffering", "agent.log_files_buffering"),
    ("debug_get_next_task", "CLEARML_AGENT_DEBUG_GET_NEXT_TASK"),
    ("exec_user", "CLEARML_AGENT_EXEC_USER"),
    ("force_task_init", "CLEARML_AGENT_FORCE_TASK_INIT"),
    (
        "force_system_site_packages",
        "CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES",
    ),
    ("abort_callback_cmd", "CLEARML_AGENT_ABORT_CALLBACK_CMD"),
    (
        "abort_callback_timeout",
        "CLEARML_AGENT_ABORT_CALLBACK_TIMEOUT",
    ),
];

fn warned_about(name: &str) -> bool {
    unsupported::KEYS.iter().any(|(k, _)| *k == name)
        || unsupported::VARIABLES.iter().any(|(v, _)| *v == name)
}

#[test]
fn every_setting_read_is_acted_on_or_warned_about() {
    let settings: String = ["mod", "api", "agent", "command", "overrides", "reader"]
        .iter()
        .map(|f| read(&format!("src/config/settings/{f}.rs")))
        .collect();
    let elsewhere = sources_except(&["config/settings/"]);
    let mut fields = Vec::new();
    let mut rest = settings.as_str();
    while let Some(at) = rest.find("pub struct ") {
        rest = &rest[at..];
        let Some(end) = rest.find("\n}") else { break };
        for line in rest[..end].lines().skip(1) {
            if let Some(field) = line
                .trim_start()
                .strip_prefix("pub ")
                .and_then(|l| l.split_once(':'))
                .map(|(f, _)| f.trim())
            {
                fields.push(field.to_string());
            }
        }
        rest = &rest[end..];
    }
    assert!(fields.len() > 100, "{} fields found", fields.len());
    let mut idle = Vec::new();
    for field in &fields {
        let used = elsewhere.match_indices(&format!(".{field}")).any(|(i, m)| {
            !elsewhere[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if used || PASSIVE.iter().any(|(f, _)| f == field) {
            continue;
        }
        match WARNED.iter().find(|(f, _)| f == field) {
            Some((_, name)) => assert!(
                warned_about(name),
                "{field}: {name} is not in config::unsupported"
            ),
            None => idle.push(field.clone()),
        }
    }
    assert!(
        idle.is_empty(),
        "settings read and never used (act on them, warn about them in config::unsupported, or list them as passive here with the reason): {idle:?}"
    );
}

/// The architecture's invariants that a search can check: the process environment is read in
/// `src/config/` and `src/env.rs` only (captured once into the settings), and seconds become a
/// `Duration` there only, validated (`Duration::from_secs_f64` panics on a negative, NaN or huge
/// value; elsewhere `try_from_secs_f64`).
#[test]
fn the_process_environment_and_raw_seconds_stay_in_the_settings_layer() {
    let needles = [
        "std::env::var",
        "env::vars()",
        "env::var_os",
        "temp_dir()",
        "try_from_default_env",
        "Duration::from_secs_f64(",
    ];
    let offenders = offending_lines(&["src/config", "src/env.rs"], false, |line| {
        needles.iter().any(|n| line.contains(n))
    });
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Only `src/api/` knows the wire format: no endpoint name, no field of the task's requirements,
/// status or runtime map is spelled anywhere else in the agent's code (its unit tests aside).
#[test]
fn wire_names_stay_in_the_api_module() {
    let endpoint = regex::Regex::new(
        r#""(auth|tasks|queues|workers|events|projects|users|models|server|debug)\.[a-z_]+""#,
    )
    .unwrap();
    // Names that mean the wire only (`pip`, `conda` or `runtime` are also programs, package
    // managers and docker flags; the freeze that writes them lives beside `org_pip`).
    let fields = [
        "\"org_pip\"",
        "\"org_conda\"",
        "\"status_message\"",
        "\"status_reason\"",
        "\"version_num\"",
        "\"docker_cmd\"",
        "\"last_worker\"",
        "\"_exec_agent_hostname\"",
        "\"_external_host_tcp_port_mapping\"",
        "\"_abort_callback",
        "\"_abort_poll_freq\"",
    ];
    let offenders = offending_lines(&["src/api"], true, |line| {
        fields.iter().any(|f| line.contains(f)) || endpoint.is_match(line)
    });
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Every variable name of the agent's own (`CLEARML_*`, `TRAINS_*`) is spelled once, in
/// `src/env.rs`; the code uses its constants (prefixes such as `"CLEARML_"` aside).
#[test]
fn variable_names_come_from_the_env_table() {
    let literal = regex::Regex::new(r#""(CLEARML|TRAINS)_[A-Z0-9_]*[A-Z0-9]""#).unwrap();
    let offenders = offending_lines(&["src/env.rs"], true, |line| literal.is_match(line));
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// `file:line: text` of every non-comment line of `src/` that `bad` flags, leaving out the files
/// and folders in `skip` (paths from the crate root) and, with `code_only`, each file's unit
/// tests (everything from its `#[cfg(test)]` on).
fn offending_lines(skip: &[&str], code_only: bool, bad: impl Fn(&str) -> bool) -> Vec<String> {
    let mut offenders = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .display()
                .to_string();
            if skip.contains(&rel.as_str()) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if code_only && line.trim() == "#[cfg(test)]" {
                    break;
                }
                if !line.trim_start().starts_with("//") && bad(line) {
                    offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    offenders
}

/// The first-column names of the tables of a markdown page, with their section and meaning.
fn table_names(page: &str) -> Vec<(String, String, String)> {
    // (section, name, the row's last cell)
    let mut out = Vec::new();
    let mut section = String::new();
    for line in page.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim_matches('`').to_string();
        }
        let Some(row) = line.strip_prefix("| ") else {
            continue;
        };
        let first = row.split(" | ").next().unwrap_or("");
        for part in first.split(", ") {
            let name = part.trim().trim_matches('`');
            if !name.is_empty()
                && name != "key"
                && name != "variable"
                && !name.starts_with('-')
                && !name.starts_with('—')
                && !name.contains('<')
            {
                let meaning = row
                    .rsplit(" | ")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('|')
                    .trim();
                out.push((section.clone(), name.to_string(), meaning.to_string()));
            }
        }
    }
    out
}

/// `a.{b,c}.d` → `a.b.d`, `a.c.d`; `x / y` → both.
fn expand(name: &str) -> Vec<String> {
    if let Some((a, b)) = name.split_once("` / `") {
        return [expand(a), expand(b)].concat();
    }
    match (name.find('{'), name.find('}')) {
        (Some(open), Some(close)) if open < close => name[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{}{}", &name[..open], alt, &name[close + 1..])))
            .collect(),
        _ => vec![name.to_string()],
    }
}

#[test]
fn every_documented_key_is_read_or_warned_about() {
    let page = read("docs/configuration.md");
    let config = sources_except(&[]);
    let mut unread = Vec::new();
    for (section, name, row) in table_names(&page) {
        let prefix = match section.as_str() {
            "api" => "api.",
            "agent" => "agent.",
            _ => continue,
        };
        for key in expand(name.trim_end_matches(".*")) {
            let full = format!("{prefix}{key}");
            if row.starts_with("Not supported") {
                assert!(
                    warned_about(&full),
                    "{full} is documented as not supported but not warned about"
                );
                continue;
            }
            let last = key.rsplit('.').next().unwrap_or(&key);
            let read = config.contains(&format!("\"{full}"))
                || config.contains(&format!("\"{key}\""))
                || config.contains(&format!("\"{last}\""));
            if !read {
                unread.push(full);
            }
        }
    }
    assert!(
        unread.is_empty(),
        "documented keys nothing reads: {unread:?}"
    );
}

#[test]
fn every_documented_variable_is_read_or_set_or_warned_about() {
    let page = read("docs/environment.md");
    let env_rs = read("src/env.rs");
    let users = sources_except(&["src/env.rs", "config/unsupported.rs"]);
    let mut problems = BTreeSet::new();
    for (_, name, row) in table_names(&page) {
        if !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        if row.starts_with("Not supported") {
            if !warned_about(&name) {
                problems.insert(format!(
                    "{name}: documented as not supported, not warned about"
                ));
            }
            continue;
        }
        // The constant that names it, and someone who uses that constant (or the literal).
        let constant = env_rs
            .lines()
            .zip(env_rs.lines().skip(1).chain(std::iter::once("")))
            .find_map(|(a, b)| {
                if !(a.contains(&format!("\"{name}\"")) || b.trim() == format!("\"{name}\";")) {
                    return None;
                }
                let decl = a;
                decl.split("pub const ")
                    .nth(1)
                    .and_then(|r| r.split(':').next())
                    .map(str::to_string)
            });
        let used = match &constant {
            Some(c) => users.contains(&format!("EnvVars::{c}")),
            None => false,
        } || users.contains(&format!("\"{name}\""));
        if !used {
            problems.insert(format!(
                "{name}: nothing reads or sets it (constant {constant:?})"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
