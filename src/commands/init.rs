//! `clearml-agent init`: write a working `~/clearml.conf`, interactively (the Python wizard's flow,
//! `clearml_agent/commands/config.py: main`) or from flags for scripts.
//!
//! Non-interactive use: `clearml-agent init --api-host URL --access-key K --secret-key S [--web-host URL]
//! [--files-host URL] [--git-user U --git-pass P]`. Nothing is asked when the three required flags are
//! given; `--non-interactive` makes a missing one an error instead of a prompt. Credentials are checked
//! against the server only in interactive mode (a plain `auth.login` call), as the Python wizard does.
//!
//! Like the Python agent, it never overwrites a non-empty existing configuration file.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::InitArgs;
use crate::config::settings::{derive_files_host, derive_web_host};

/// What the wizard collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InitValues {
    pub api_host: String,
    pub web_host: String,
    pub files_host: String,
    pub access_key: String,
    pub secret_key: String,
    pub git_user: Option<String>,
    pub git_pass: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub default_output_uri: Option<String>,
}

/// Checks credentials against a server: `(api_host, access_key, secret_key)`.
pub type Verifier<'a> = &'a dyn Fn(&str, &str, &str) -> Result<(), String>;

/// Outcome of `init`.
#[derive(Debug, Clone, PartialEq)]
pub enum InitOutcome {
    /// The file was written.
    Written(PathBuf),
    /// A non-empty configuration file exists; nothing was changed.
    AlreadyExists(PathBuf),
    /// The user gave up (credentials could not be verified).
    Aborted,
}

/// Which file `init` writes: `--config-file` if given, else the first of `~/trains.conf`, `~/clearml.conf`
/// that exists, else `~/clearml.conf` (mirrors commands/config.py: main).
pub fn target_file(config_file: Option<&Path>, home: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = config_file {
        return Ok(p.to_path_buf());
    }
    let home =
        home.context("cannot find the home directory (HOME is not set); use --config-file")?;
    let trains = home.join("trains.conf");
    if trains.exists() {
        return Ok(trains);
    }
    Ok(home.join("clearml.conf"))
}

/// Run `init`. `input`/`out` are the terminal (or pipes) for the interactive flow.
pub fn run(
    args: &InitArgs,
    target: &Path,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    verify: Verifier<'_>,
) -> anyhow::Result<InitOutcome> {
    writeln!(out, "CLEARML-AGENT setup process")?;
    if target.is_file() && target.metadata().map(|m| m.len() > 0).unwrap_or(false) {
        writeln!(
            out,
            "Configuration file already exists: {}",
            target.display()
        )?;
        writeln!(
            out,
            "Leaving setup. To use it with the agent, add an 'agent' section to this file by hand."
        )?;
        return Ok(InitOutcome::AlreadyExists(target.to_path_buf()));
    }

    let complete =
        args.api_host.is_some() && args.access_key.is_some() && args.secret_key.is_some();
    let values = if complete {
        from_flags(args)
    } else if args.non_interactive {
        let mut missing = Vec::new();
        for (flag, v) in [
            ("--api-host", &args.api_host),
            ("--access-key", &args.access_key),
            ("--secret-key", &args.secret_key),
        ] {
            if v.is_none() {
                missing.push(flag);
            }
        }
        bail!(
            "init --non-interactive needs {}; pass them or run `clearml-agent init` without --non-interactive",
            missing.join(", ")
        );
    } else {
        match interactive(args, input, out, verify)? {
            Some(v) => v,
            None => {
                writeln!(out, "Exiting setup without creating configuration file")?;
                return Ok(InitOutcome::Aborted);
            }
        }
    };

    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(target, render(&values))
        .with_context(|| format!("could not write configuration file at {}", target.display()))?;
    writeln!(out, "\nNew configuration stored in {}", target.display())?;
    writeln!(out, "CLEARML-AGENT setup completed successfully.")?;
    Ok(InitOutcome::Written(target.to_path_buf()))
}

fn from_flags(args: &InitArgs) -> InitValues {
    let api_host = args.api_host.clone().unwrap_or_default();
    let api_host = api_host.trim_end_matches('/').to_string();
    let web_host = args
        .web_host
        .clone()
        .unwrap_or_else(|| derive_web_host(&api_host));
    let files_host = args
        .files_host
        .clone()
        .unwrap_or_else(|| derive_files_host(&web_host));
    InitValues {
        api_host,
        web_host,
        files_host,
        access_key: args.access_key.clone().unwrap_or_default(),
        secret_key: args.secret_key.clone().unwrap_or_default(),
        git_user: args.git_user.clone().filter(|s| !s.is_empty()),
        git_pass: args.git_pass.clone().filter(|s| !s.is_empty()),
        extra_index_urls: Vec::new(),
        default_output_uri: None,
    }
}

/// Quote a value as a HOCON/JSON string.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The file text. Only what differs from the built-in defaults is written; every other key keeps the
/// agent's default (see docs/configuration.md).
pub fn render(v: &InitValues) -> String {
    let mut s = String::new();
    s.push_str("# ClearML agent configuration, written by `clearml-agent init`.\n");
    s.push_str(
        "# Every key not set here keeps its built-in default (see `clearml-agent config`).\n",
    );
    s.push_str("api {\n");
    s.push_str("    # The API server (default port 8008), not the web application.\n");
    s.push_str(&format!("    api_server: {}\n", q(&v.api_host)));
    s.push_str(&format!("    web_server: {}\n", q(&v.web_host)));
    s.push_str(&format!("    files_server: {}\n", q(&v.files_host)));
    s.push_str("    # Environment variables CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY override these.\n");
    s.push_str(&format!(
        "    credentials {{ \"access_key\": {}, \"secret_key\": {} }}\n",
        q(&v.access_key),
        q(&v.secret_key)
    ));
    s.push_str("}\n\n");
    s.push_str("agent {\n");
    s.push_str("    # Git credentials for HTTPS clones; leave empty to use SSH keys.\n");
    s.push_str(&format!(
        "    git_user: {}\n",
        q(v.git_user.as_deref().unwrap_or(""))
    ));
    s.push_str(&format!(
        "    git_pass: {}\n",
        q(v.git_pass.as_deref().unwrap_or(""))
    ));
    let urls: Vec<String> = v.extra_index_urls.iter().map(|u| q(u)).collect();
    s.push_str("    package_manager {\n");
    s.push_str("        # Extra package indexes for pip, e.g. [\"https://my.index/simple\"]\n");
    s.push_str(&format!("        extra_index_url: [{}]\n", urls.join(", ")));
    s.push_str("    }\n");
    s.push_str("}\n");
    if let Some(uri) = &v.default_output_uri {
        s.push_str("\nsdk {\n    development {\n");
        s.push_str("        # Where tasks store models and artifacts when Task.init gives no output_uri.\n");
        s.push_str(&format!(
            "        default_output_uri: {}\n",
            q(uri.trim_matches('"'))
        ));
        s.push_str("    }\n}\n");
    }
    s
}

fn read_line(input: &mut dyn BufRead) -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    let n = input
        .read_line(&mut line)
        .context("cannot read from standard input")?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

fn ask(out: &mut dyn Write, input: &mut dyn BufRead, prompt: &str) -> anyhow::Result<String> {
    write!(out, "{prompt}")?;
    out.flush()?;
    match read_line(input)? {
        Some(line) => Ok(line.trim().to_string()),
        None => bail!(
            "standard input ended while answering `init`; use the --api-host/--access-key/--secret-key flags for scripted setups"
        ),
    }
}

/// Pull `key`/`secret`/hosts out of the block the web UI copies ("api { ... credentials {...} }" or the
/// older bare form), without needing a full parser: `"name": "value"` or `name: value` pairs.
fn field(block: &str, name: &str) -> Option<String> {
    let mut rest = block;
    while let Some(pos) = rest.find(name) {
        let before_ok = pos == 0
            || !rest[..pos]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[pos + name.len()..];
        let after_trim = after.trim_start_matches('"').trim_start();
        if before_ok && let Some(value) = after_trim.strip_prefix([':', '=']) {
            let value = value.trim_start();
            let parsed = if let Some(v) = value.strip_prefix('"') {
                v.split('"').next().unwrap_or("").to_string()
            } else {
                value
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '}')
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            if !parsed.is_empty() {
                return Some(parsed);
            }
        }
        rest = &rest[pos + name.len()..];
    }
    None
}

/// Split `host` into api/web/files hosts (mirrors commands/config.py: parse_host).
fn split_hosts(url: &str) -> (String, String, String) {
    let url = url.trim_end_matches('/');
    let swap = |from: &str, to: &str| url.replacen(&format!("://{from}"), &format!("://{to}"), 1);
    if url.contains("://demoapp.") {
        return (
            swap("demoapp.", "demoapi."),
            url.to_string(),
            swap("demoapp.", "demofiles."),
        );
    }
    if url.contains("://app.") {
        return (
            swap("app.", "api."),
            url.to_string(),
            swap("app.", "files."),
        );
    }
    if url.contains("://demoapi.") {
        return (
            url.to_string(),
            swap("demoapi.", "demoapp."),
            swap("demoapi.", "demofiles."),
        );
    }
    if url.contains("://api.") {
        return (
            url.to_string(),
            swap("api.", "app."),
            swap("api.", "files."),
        );
    }
    if let Some(base) = url.strip_suffix(":8008") {
        return (
            url.to_string(),
            format!("{base}:8080"),
            format!("{base}:8081"),
        );
    }
    if let Some(base) = url.strip_suffix(":8080") {
        return (
            format!("{base}:8008"),
            url.to_string(),
            format!("{base}:8081"),
        );
    }
    (url.to_string(), url.to_string(), url.to_string())
}

/// `host` → `http(s)://host` as the wizard does: an explicit port means http, otherwise https.
fn normalize_url(s: &str) -> String {
    let s = s.trim();
    if s.starts_with("http://") || s.starts_with("https://") {
        return s.to_string();
    }
    if s.contains(':') {
        format!("http://{s}")
    } else {
        format!("https://{s}")
    }
}

fn confirm_url(
    out: &mut dyn Write,
    input: &mut dyn BufRead,
    label: &str,
    current: &str,
) -> anyhow::Result<String> {
    let answer = ask(out, input, &format!("{label} configured to: [{current}] "))?;
    if answer.is_empty() || answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
        Ok(current.to_string())
    } else {
        Ok(normalize_url(&answer))
    }
}

fn interactive(
    args: &InitArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    verify: Verifier<'_>,
) -> anyhow::Result<Option<InitValues>> {
    let mut access_key = args.access_key.clone();
    let mut secret_key = args.secret_key.clone();
    let mut api_from_block = None;
    let mut web_from_block = None;
    if access_key.is_none() || secret_key.is_none() {
        writeln!(
            out,
            "\nCreate credentials in your ClearML web app (Settings > Workspace > Create new credentials),\n\
             copy them, and paste the block here (end with the closing '}}' line):"
        )?;
        let mut block = String::new();
        while let Some(line) = read_line(input)? {
            if line.is_empty() && block.trim().is_empty() {
                break;
            }
            block.push_str(&line);
            block.push('\n');
            if line.trim_end() == "}" || line.is_empty() {
                break;
            }
        }
        access_key = access_key.or_else(|| field(&block, "access_key"));
        secret_key = secret_key.or_else(|| field(&block, "secret_key"));
        api_from_block = field(&block, "api_server").or_else(|| field(&block, "host"));
        web_from_block = field(&block, "web_server");
    }
    let (mut access_key, mut secret_key) = match (access_key, secret_key) {
        (Some(a), Some(s)) => (a, s),
        _ => {
            writeln!(
                out,
                "Could not parse credentials, please enter them manually."
            )?;
            (
                ask(out, input, "Enter user access key: ")?,
                ask(out, input, "Enter user secret: ")?,
            )
        }
    };
    let shown: String = secret_key.chars().take(4).collect();
    writeln!(
        out,
        "Detected credentials key=\"{access_key}\" secret=\"{shown}***\""
    )?;

    let (api_host, web_host, files_host) = if let Some(api) = args.api_host.clone() {
        let api = normalize_url(&api);
        let web = args
            .web_host
            .clone()
            .unwrap_or_else(|| derive_web_host(&api));
        let files = args
            .files_host
            .clone()
            .unwrap_or_else(|| derive_files_host(&web));
        (api, web, files)
    } else {
        let (seed, seed_is_web) = match (web_from_block, api_from_block) {
            (Some(web), _) => (web, true),
            (None, Some(api)) => (api, false),
            (None, None) => {
                writeln!(
                    out,
                    "Enter the URL of the ClearML web application, e.g. http://localhost:8080 or https://app.clear.ml"
                )?;
                (String::from("https://app.clear.ml"), true)
            }
        };
        let first = confirm_url(
            out,
            input,
            if seed_is_web { "WEB Host" } else { "API Host" },
            &normalize_url(&seed),
        )?;
        let (mut api, mut web, files) = split_hosts(&first);
        if seed_is_web {
            api = confirm_url(out, input, "API Host", &api)?;
        } else {
            web = confirm_url(out, input, "Web Application Host", &web)?;
        }
        let files = confirm_url(out, input, "File Store Host", &files)?;
        (api, web, files)
    };
    writeln!(
        out,
        "\nClearML Hosts configuration:\nWeb App: {web_host}\nAPI: {api_host}\nFile Store: {files_host}\n"
    )?;

    // mirrors commands/config.py: up to two tries to verify the credentials
    let mut verified = false;
    for attempt in 1..=2 {
        writeln!(out, "Verifying credentials ...")?;
        match verify(&api_host, &access_key, &secret_key) {
            Ok(()) => {
                writeln!(out, "Credentials verified!")?;
                verified = true;
                break;
            }
            Err(e) => {
                writeln!(out, "Error: could not verify credentials: {e}")?;
                if attempt < 2 {
                    access_key = ask(out, input, "Enter user access key: ")?;
                    secret_key = ask(out, input, "Enter user secret: ")?;
                }
            }
        }
    }
    if !verified {
        return Ok(None);
    }

    let selection = ask(
        out,
        input,
        "Default Output URI (used to automatically store models and artifacts): (N)one/ClearML (S)erver/(C)ustom [None] ",
    )?;
    let default_output_uri = match selection.to_ascii_lowercase().as_str() {
        "s" => Some(files_host.clone()),
        "c" => Some(ask(out, input, "Custom Default Output URI: ")?).filter(|s| !s.is_empty()),
        _ => None,
    };
    writeln!(
        out,
        "\nDefault Output URI: {}",
        default_output_uri.as_deref().unwrap_or("not set")
    )?;

    let git_user = match &args.git_user {
        Some(u) => Some(u.clone()),
        None => Some(ask(
            out,
            input,
            "Enter git username for repository cloning (leave blank for SSH key authentication): [] ",
        )?)
        .filter(|s| !s.is_empty()),
    };
    let git_pass = match (&git_user, &args.git_pass) {
        (_, Some(p)) => Some(p.clone()),
        (Some(user), None) => Some(ask(
            out,
            input,
            &format!("Enter git personal access token for user '{user}': "),
        )?),
        (None, None) => None,
    };

    let mut extra_index_urls = Vec::new();
    let mut prompt =
        "\nEnter an additional package index (extra-index-url) for pip, or leave blank: ";
    loop {
        let url = ask(out, input, prompt)?;
        if url.is_empty() {
            break;
        }
        extra_index_urls.push(url);
        prompt = "Another package index? (enter a URL or leave blank if done): ";
    }

    Ok(Some(InitValues {
        api_host,
        web_host,
        files_host,
        access_key,
        secret_key,
        git_user,
        git_pass,
        extra_index_urls,
        default_output_uri,
    }))
}

/// Verify credentials with one `auth.login` through the API client (key and secret, no retries,
/// 15 s timeouts), on a throwaway runtime.
pub fn verify_with_server(
    api_host: &str,
    access_key: &str,
    secret_key: &str,
) -> Result<(), String> {
    let mut config = crate::api::ClientConfig::new(api_host);
    config.access_key = Some(access_key.to_string());
    config.secret_key = Some(secret_key.to_string());
    config.retries.total = 0;
    config.timeouts = crate::api::Timeouts {
        connect: std::time::Duration::from_secs(15),
        read: std::time::Duration::from_secs(15),
    };
    let client = crate::api::Client::new(config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(client.login())
        .map(|_| ())
        .map_err(|e| format!("{}/auth.login: {e}", api_host.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_web_ui_block() {
        let block = "api {\n  web_server: https://app.clear.ml/\n  api_server: https://api.clear.ml\n  credentials {\n    \"access_key\" = \"AK1\"\n    \"secret_key\" = \"SK1\"\n  }\n}\n";
        assert_eq!(field(block, "access_key").as_deref(), Some("AK1"));
        assert_eq!(field(block, "secret_key").as_deref(), Some("SK1"));
        assert_eq!(
            field(block, "api_server").as_deref(),
            Some("https://api.clear.ml")
        );
    }

    #[test]
    fn hosts_split() {
        assert_eq!(
            split_hosts("http://localhost:8080"),
            (
                "http://localhost:8008".into(),
                "http://localhost:8080".into(),
                "http://localhost:8081".into()
            )
        );
    }
}
