//! Integration tests: hocon (the pyhocon-dialect parser behind `clearml.conf`).
//!
//! Golden files in tests/fixtures/hocon/*.json come from the vendored pyhocon via
//! scripts/hocon-goldens.py. With `CLEARML_AGENT_SITE` pointing at a site-packages holding
//! clearml-agent 3.0.3, the Python agent's own default configs (and a file laid out as
//! `clearml-agent init` writes it) are compared live against pyhocon too (`HOCON_PYTHON`, default
//! `python3`, runs the script).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clearml_agent::config::hocon::{self, Error};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hocon")
}

fn fixture_env() -> HashMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join("env.json")).expect("env.json");
    serde_json::from_str(&text).expect("env.json is a string map")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Value, Error> {
    hocon::parse_str(text, Path::new("test.conf"), &no_env)
}

fn parse_ok(text: &str) -> Value {
    match parse(text) {
        Ok(v) => v,
        Err(e) => panic!("parse failed for {text:?}: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(v) => panic!("expected an error for {text:?}, got {v}"),
        Err(e) => e.to_string(),
    }
}

/// First difference between two JSON values (numbers compared numerically, key order checked).
fn diff(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            (a.as_f64() != b.as_f64()).then(|| format!("{path}: got {a}, want {b}"))
        }
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            if ka != kb {
                return Some(format!("{path}: keys {ka:?}, want {kb:?}"));
            }
            a.iter()
                .find_map(|(k, v)| diff(&format!("{path}.{k}"), v, &b[k]))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: {} items, want {}", a.len(), b.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| diff(&format!("{path}[{i}]"), x, y))
        }
        _ => (got != want).then(|| format!("{path}: got {got}, want {want}")),
    }
}

fn conf_fixtures() -> Vec<PathBuf> {
    let mut confs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    confs.sort();
    confs
}

#[test]
fn fixtures_match_pyhocon_goldens() {
    let env = fixture_env();
    let lookup = |name: &str| env.get(name).cloned();
    let confs = conf_fixtures();
    assert!(confs.len() >= 8, "fixtures missing: {confs:?}");
    let mut failures = Vec::new();
    for conf in &confs {
        let golden_text =
            std::fs::read_to_string(conf.with_extension("json")).unwrap_or_else(|e| {
                panic!(
                    "{}: no golden ({e}); run scripts/hocon-goldens.py",
                    conf.display()
                )
            });
        let golden: Value = serde_json::from_str(&golden_text).expect("golden is JSON");
        match hocon::parse_file(conf, &lookup) {
            Ok(got) => {
                if let Some(d) = diff("$", &got, &golden) {
                    failures.push(format!("{}: {d}", conf.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", conf.display())),
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// The Python agent's own files, compared live against pyhocon when its site-packages is given.
#[test]
fn vendor_configs_match_pyhocon() {
    let Ok(site) = std::env::var("CLEARML_AGENT_SITE") else {
        eprintln!("CLEARML_AGENT_SITE not set: skipping the Python agent's default configs");
        return;
    };
    let site = PathBuf::from(site);
    let defaults = site.join("clearml_agent/backend_api/config/default");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Laid out as clearml_agent/commands/config.py: main writes it.
    let mut init = String::from(
        "# CLEARML-AGENT configuration file\napi {\n    # Notice: 'host' is the api server (default port 8008), not the web server.\n    api_server: http://localhost:8008\n    web_server: http://localhost:8080\n    files_server: http://localhost:8081\n    # Credentials are generated using the webapp, http://localhost:8080/settings\n    credentials {\"access_key\": \"AK\", \"secret_key\": \"SK\"}\n}\n\n# leave blank for GIT SSH credentials\nagent.git_user=\"\"\nagent.git_pass=\"\"\n\nagent.package_manager.extra_index_url= [\n\"https://example.com/simple\"\n]\n\n",
    );
    for section in ["agent", "sdk"] {
        let text = std::fs::read_to_string(defaults.join(format!("{section}.conf")))
            .expect("default conf");
        init.push_str(&format!("{section} {text}\n"));
    }
    let init_path = tmp.path().join("clearml.conf");
    std::fs::write(&init_path, init).expect("write init layout");
    let python = std::env::var("HOCON_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hocon-goldens.py");
    let env = fixture_env();
    let lookup = |name: &str| env.get(name).cloned();
    let mut files: Vec<PathBuf> = ["agent", "api", "sdk", "logging"]
        .iter()
        .map(|s| defaults.join(format!("{s}.conf")))
        .collect();
    files.push(init_path);
    for file in files {
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg("--print")
            .arg(&file)
            .env("PYTHONPATH", &site)
            .output()
            .expect("run the golden script");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
        let got = hocon::parse_file(&file, &lookup).unwrap_or_else(|e| panic!("{e}"));
        if let Some(d) = diff("$", &got, &want) {
            panic!("{}: {d}", file.display());
        }
    }
}
