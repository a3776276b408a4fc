//! Masking secrets in printed configuration and docker command lines (mirrors
//! `clearml_agent/session.py: Session.print_configuration` and `helper/docker_args.py:
//! DockerArgsSanitizer.sanitize_docker_command` / `sanitize_urls`).
//!
//! Pure functions over values; printing itself is `commands/config.rs`.

use regex::Regex;
use serde_json::Value;

use super::{HideDockerEnvVars, get_path};
use crate::env::EnvVars;

/// Mask passwords in `scheme://user:pass@host` URLs, and tokens given as the user of
/// `http(s)://token@host` URLs, found in whitespace-separated words.
/// Returns the new text and whether anything changed.
pub fn sanitize_urls(s: &str) -> (String, bool) {
    let mut changed = false;
    let words: Vec<String> = s
        .split(char::is_whitespace)
        .map(|word| {
            if !word.contains('@') {
                return word.to_string();
            }
            let Some(scheme_end) = word.find("://") else {
                return word.to_string();
            };
            let netloc_start = scheme_end + 3;
            let netloc_end = word[netloc_start..]
                .find(['/', '?', '#'])
                .map_or(word.len(), |i| netloc_start + i);
            let netloc = &word[netloc_start..netloc_end];
            // user:pass@host -> user:********@host (the password runs from the first ':' to the last '@')
            match (netloc.find(':'), netloc.rfind('@')) {
                (Some(colon), Some(at)) if colon < at && at > colon + 1 => {
                    changed = true;
                    format!(
                        "{}{}********{}{}",
                        &word[..netloc_start],
                        &netloc[..=colon],
                        &netloc[at..],
                        &word[netloc_end..]
                    )
                }
                // https://TOKEN@host (a token as the user, no password) -> https://********@host
                (None, Some(at))
                    if at > 0
                        && word[..scheme_end].to_lowercase().starts_with("http")
                        && !matches!(netloc[..at].to_lowercase().as_str(), "git" | "hg") =>
                {
                    changed = true;
                    format!(
                        "{}********{}{}",
                        &word[..netloc_start],
                        &netloc[at..],
                        &word[netloc_end..]
                    )
                }
                _ => word.to_string(),
            }
        })
        .collect();
    if changed {
        (words.join(" "), true)
    } else {
        (s.to_string(), false)
    }
}

/// Names whose `-e NAME=value` is always masked in printed docker commands.
const SECRET_ENV_NAMES: &[&str] = &[
    EnvVars::CLEARML_AGENT_GIT_PASS,
    EnvVars::TRAINS_AGENT_GIT_PASS,
    EnvVars::CLEARML_API_SECRET_KEY,
    EnvVars::TRAINS_API_SECRET_KEY,
    EnvVars::AWS_SECRET_ACCESS_KEY,
    EnvVars::AZURE_STORAGE_KEY,
    EnvVars::CLEARML_AUTH_TOKEN,
];

/// Whether a variable name looks secret: it holds TOKEN, SECRET, PASS or KEY (any case).
pub fn secret_looking_key(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASS", "KEY"]
        .iter()
        .any(|word| upper.contains(word))
}

/// Mask secret values in a docker argument list (`-e KEY=VAL`, `--env KEY=VAL`, `--env=KEY=VAL`,
/// `-eKEY=VAL`): the listed names, names that look secret (`secret_looking_key`; the Python
/// agent masks only its list) and, with `parse_embedded_urls`, URL passwords in the values.
pub fn sanitize_docker_args(args: &[String], hide: &HideDockerEnvVars) -> Vec<String> {
    if !hide.enabled {
        return args.to_vec();
    }
    let mask = |item: &str| -> Option<String> {
        let (key, val) = item.split_once('=')?;
        let val = if key == EnvVars::CLEARML_DOCKER_IMAGE || key == EnvVars::TRAINS_DOCKER_IMAGE {
            let words: Vec<String> = val.split(char::is_whitespace).map(str::to_string).collect();
            sanitize_docker_args(&words, hide).join(" ")
        } else if SECRET_ENV_NAMES.contains(&key)
            || hide.extra_keys.iter().any(|k| k == key)
            || secret_looking_key(key)
        {
            "********".to_string()
        } else if hide.parse_embedded_urls {
            sanitize_urls(val).0
        } else {
            val.to_string()
        };
        Some(format!("{key}={val}"))
    };
    let mut out = args.to_vec();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if (arg == "-e" || arg == "--env") && i + 1 < args.len() {
            if let Some(masked) = mask(&args[i + 1]) {
                out[i + 1] = masked;
                i += 2;
                continue;
            }
        } else if let Some(item) = arg.strip_prefix("--env=") {
            if let Some(masked) = mask(item) {
                out[i] = format!("--env={masked}");
            }
        } else if let Some(item) = arg.strip_prefix("-e").filter(|rest| !rest.is_empty())
            && !arg.starts_with("--")
            && let Some(masked) = mask(item)
        {
            out[i] = format!("-e{masked}");
        }
        i += 1;
    }
    out
}

/// The `agent.sanitize_config_printout.*` rules.
struct Rules {
    dont_hide: Vec<Regex>,
    hide: Vec<Regex>,
    hide_recursive: Vec<Regex>,
    docker_commands: Vec<Regex>,
    urls: Vec<Regex>,
}

fn rules(tree: &Value, key: &str, default: &[&str]) -> Vec<Regex> {
    let patterns: Vec<String> =
        match get_path(tree, &format!("agent.sanitize_config_printout.{key}")) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        };
    // An invalid user pattern is matched literally rather than aborting the printout.
    patterns
        .iter()
        .filter_map(|p| {
            Regex::new(p)
                .or_else(|_| Regex::new(&regex::escape(p)))
                .ok()
        })
        .collect()
}

/// A copy of `tree` with secrets masked and the printout-irrelevant logging keys removed.
pub fn masked_tree(tree: &Value, hide: &HideDockerEnvVars) -> Value {
    let rules = Rules {
        dont_hide: rules(tree, "dont_hide_secrets", &["^enable_git_ask_pass$"]),
        hide: rules(
            tree,
            "hide_secrets",
            &["secret", "pass", "token", "account_key", "contents"],
        ),
        hide_recursive: rules(tree, "hide_secrets_recursive", &["^environment$"]),
        docker_commands: rules(tree, "docker_commands", &["^extra_docker_arguments$"]),
        urls: rules(tree, "urls", &["^extra_index_url$"]),
    };
    let mut copy = tree.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("env");
        if let Some(Value::Object(logging)) = map.get_mut("logging") {
            logging.remove("version");
            if let Some(Value::Object(loggers)) = logging.get_mut("loggers")
                && let Some(Value::Object(urllib3)) = loggers.get_mut("urllib3")
            {
                urllib3.remove("level");
            }
        }
    }
    mask(&mut copy, &rules, hide);
    copy
}

fn mask(value: &mut Value, rules: &Rules, hide: &HideDockerEnvVars) {
    let Value::Object(map) = value else { return };
    let stars = || Value::String("****".into());
    for (k, v) in map.iter_mut() {
        if !rules.dont_hide.iter().any(|r| r.is_match(k)) {
            if rules.hide.iter().any(|r| r.is_match(k)) {
                *v = stars();
                continue;
            }
            if rules.hide_recursive.iter().any(|r| r.is_match(k)) {
                *v = match v {
                    Value::Object(inner) => {
                        Value::Object(inner.keys().map(|key| (key.clone(), stars())).collect())
                    }
                    _ => stars(),
                };
                continue;
            }
        }
        if rules.urls.iter().any(|r| r.is_match(k)) {
            match v {
                Value::String(s) => *s = sanitize_urls(s).0,
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::String(s) = item {
                            *s = sanitize_urls(s).0;
                        }
                    }
                }
                Value::Object(inner) => {
                    for item in inner.values_mut() {
                        if let Value::String(s) = item {
                            *s = sanitize_urls(s).0;
                        }
                    }
                }
                _ => {}
            }
        }
        match v {
            Value::Object(_) => mask(v, rules, hide),
            Value::Array(items) => {
                // `re.match`: anchored at the start of the key
                if rules
                    .docker_commands
                    .iter()
                    .any(|r| r.find(k).is_some_and(|m| m.start() == 0))
                {
                    let words: Vec<String> = items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect();
                    *items = sanitize_docker_args(&words, hide)
                        .into_iter()
                        .map(Value::String)
                        .collect();
                }
                for item in items.iter_mut() {
                    if item.is_object() {
                        mask(item, rules, hide);
                    }
                }
            }
            _ => {}
        }
    }
}

/// pyhocon "properties" rendering: `a.b.0 = value`, `=`/`!`/`#` escaped, nulls and empty containers
/// print nothing.
pub fn to_properties(tree: &Value) -> String {
    let mut lines = Vec::new();
    walk(tree, &mut Vec::new(), &mut lines);
    lines.join("\n")
}

fn walk(value: &Value, stack: &mut Vec<String>, lines: &mut Vec<String>) {
    let key = || stack.join(".");
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                stack.push(k.trim_matches('"').to_string());
                walk(v, stack, lines);
                stack.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                stack.push(i.to_string());
                walk(v, stack, lines);
                stack.pop();
            }
        }
        Value::String(s) => lines.push(format!("{} = {}", key(), escape(s))),
        Value::Bool(b) => lines.push(format!("{} = {}", key(), b)),
        Value::Number(n) => lines.push(format!("{} = {}", key(), python_number(n))),
        Value::Null => {}
    }
}

fn escape(s: &str) -> String {
    s.replace('=', "\\=")
        .replace('!', "\\!")
        .replace('#', "\\#")
        .replace('\n', "\\\n")
}

/// Python's `str()` of a number: floats always show a fraction (`2.0`).
fn python_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        if f.fract() == 0.0 && f.abs() < 1e16 {
            return format!("{f:.1}");
        }
        return f.to_string();
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_args_mask_secret_looking_names_in_every_form() {
        let hide = HideDockerEnvVars {
            enabled: true,
            extra_keys: vec!["LISTED".into()],
            parse_embedded_urls: true,
        };
        let args: Vec<String> = [
            "-e",
            "MY_TOKEN=t1",
            "--env",
            "db_password=t2",
            "--env=Api_Key=t3",
            "-eSECRET=t4",
            "-e",
            "LISTED=t5",
            "-e",
            "URL=https://u:t6@h/x",
            "-e",
            "PLAIN=ok",
            "-e",
            "ORPHAN",
        ]
        .map(String::from)
        .to_vec();
        let out = sanitize_docker_args(&args, &hide).join(" ");
        for secret in ["t1", "t2", "t3", "t4", "t5", "t6"] {
            assert!(!out.contains(&format!("={secret}")), "{out}");
            assert!(!out.contains(&format!(":{secret}@")), "{out}");
        }
        assert!(
            out.contains("PLAIN=ok") && out.contains("-eSECRET=********"),
            "{out}"
        );
        let off = HideDockerEnvVars {
            enabled: false,
            ..hide
        };
        assert_eq!(sanitize_docker_args(&args, &off), args);
    }

    #[test]
    fn url_password_masked() {
        assert_eq!(
            sanitize_urls("https://user:pw@idx.example/simple").0,
            "https://user:********@idx.example/simple"
        );
        assert!(!sanitize_urls("https://idx.example/simple").1);
        assert_eq!(
            sanitize_urls("clone https://ghp_abc123@github.com/o/r.git now").0,
            "clone https://********@github.com/o/r.git now"
        );
        assert!(!sanitize_urls("ssh://git@github.com/o/r.git").1);
    }
}
