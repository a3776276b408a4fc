//! The `files {}` section of clearml.conf: each entry's bytes (decoded and encoded as its
//! `format` and `target_format` say) and writing them on this host. Docker mode writes the same
//! bytes inside each task's container (`docker/run.rs`).
//!
//! mirrors clearml_agent/backend_config/utils.py: apply_files (a directory or, without
//! `overwrite`, an existing file is skipped; every problem skips that entry with a line saying
//! why). `target_format: yaml` is written as JSON, which YAML reads as is.

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use super::settings::ConfigFileSpec;

/// The bytes of one entry; `Err` says why it is skipped.
pub fn content(spec: &ConfigFileSpec) -> Result<Vec<u8>, String> {
    let contents = spec
        .contents
        .clone()
        .unwrap_or(Value::String(String::new()));
    let contents = match (&contents, spec.format.as_str()) {
        (Value::String(text), "base64") => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("failed decoding base64 ({e})"))?;
            if spec.target_format == "bytes" {
                return Ok(bytes);
            }
            Value::String(
                String::from_utf8(bytes).map_err(|_| "failed decoding base64 (not UTF-8)")?,
            )
        }
        _ => contents,
    };
    let text = match spec.target_format.as_str() {
        "json" | "yaml" | "yml" => serde_json::to_string_pretty(&contents)
            .map_err(|e| format!("failed encoding to {} ({e})", spec.target_format))?,
        "bytes" => match contents {
            Value::String(s) => s,
            _ => return Err("a bytes-like object is required".into()),
        },
        _ => match contents {
            Value::String(s) => s,
            other => other.to_string(),
        },
    };
    Ok(text.into_bytes())
}

/// Writes every entry on this host; returns one line per entry (saved or skipped, and why).
pub fn apply(specs: &[ConfigFileSpec]) -> Vec<String> {
    let mut out = Vec::new();
    if specs.is_empty() {
        return out;
    }
    out.push("Creating files from configuration".to_string());
    for spec in specs {
        out.push(match write_one(spec, &spec.path) {
            Ok(()) => format!("Saved [{}]: {}", spec.name, spec.path.display()),
            Err(why) => format!("Skipped [{}]: {why}", spec.name),
        });
    }
    out
}

fn write_one(spec: &ConfigFileSpec, target: &Path) -> Result<(), String> {
    if target.is_dir() {
        return Err(format!("is a directory {}", target.display()));
    }
    if !spec.overwrite && target.is_file() {
        return Err(format!("file exists {}", target.display()));
    }
    let bytes = content(spec)?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("failed creating path {} ({e})", parent.display()))?;
    }
    std::fs::write(target, bytes)
        .map_err(|e| format!("failed saving file {} ({e})", target.display()))?;
    if let Some(mode) = spec.mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("failed setting mode of {} ({e})", target.display()))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(contents: Value, format: &str, target: &str) -> ConfigFileSpec {
        ConfigFileSpec {
            name: "f".into(),
            path: "/tmp/x".into(),
            raw_path: "/tmp/x".into(),
            contents: Some(contents),
            format: format.into(),
            target_format: target.into(),
            overwrite: true,
            mode: None,
        }
    }

    #[test]
    fn contents_are_decoded_and_encoded_as_asked() {
        assert_eq!(
            content(&spec(json!("hi"), "string", "string")).unwrap(),
            b"hi"
        );
        assert_eq!(
            content(&spec(json!("aGk="), "base64", "string")).unwrap(),
            b"hi"
        );
        assert_eq!(
            content(&spec(json!("AP8="), "base64", "bytes")).unwrap(),
            vec![0, 255]
        );
        let j = content(&spec(json!({"a": 1}), "string", "json")).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&j).unwrap(),
            json!({"a": 1})
        );
        assert!(content(&spec(json!("%%"), "base64", "string")).is_err());
    }

    #[test]
    fn entries_are_written_and_existing_files_kept_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(json!("one"), "string", "string");
        s.path = dir.path().join("sub/conf.txt");
        s.mode = Some(0o600);
        let lines = apply(std::slice::from_ref(&s));
        assert!(lines[1].starts_with("Saved [f]"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(&s.path).unwrap(), "one");
        s.contents = Some(json!("two"));
        s.overwrite = false;
        assert!(apply(std::slice::from_ref(&s))[1].contains("file exists"));
        assert_eq!(std::fs::read_to_string(&s.path).unwrap(), "one");
    }
}
