//! Reading typed values from the configuration tree: every error names the key, the file and
//! what is expected; numbers of seconds are bounded (no panic on `inf`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::config::{Error, expand_path, get_path, parse_bool};

/// Reads typed values from the tree; errors name the key and the file.
pub(super) struct Reader<'a> {
    pub(super) tree: &'a Value,
    pub(super) origin: &'a str,
    pub(super) home: Option<&'a Path>,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl Reader<'_> {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        get_path(self.tree, key)
    }

    pub(super) fn err(&self, key: &str, found: &Value, expected: &str) -> Error {
        Error::Value {
            key: key.to_string(),
            found: describe(found),
            origin: self.origin.to_string(),
            expected: expected.to_string(),
        }
    }

    /// A string; numbers and bools are accepted as their text. Empty means absent.
    pub(super) fn opt_string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.err(key, other, "expected a string")),
        }
    }

    pub(super) fn string(&self, key: &str, default: &str) -> Result<String, Error> {
        Ok(self.opt_string(key)?.unwrap_or_else(|| default.to_string()))
    }

    /// A bool: true/false, or a caseless yes/no/on/off/1/0 string.
    pub(super) fn opt_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(v @ Value::String(s)) => parse_bool(s)
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected true or false (write e.g. `key: true`)")),
            Some(v @ Value::Number(n)) => match n.as_i64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(self.err(key, v, "expected true or false")),
            },
            Some(other) => Err(self.err(key, other, "expected true or false")),
        }
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, Error> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    /// A finite number (`inf`, `nan` and the like are refused: no later arithmetic can blow up).
    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v @ Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected a finite number")),
            Some(other) => Err(self.err(key, other, "expected a number")),
        }
    }

    pub(super) fn f64(&self, key: &str, default: f64) -> Result<f64, Error> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }

    pub(super) fn opt_u64(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.opt_f64(key)? {
            None => Ok(None),
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
            Some(_) => Err(self.err(
                key,
                self.get(key).unwrap_or(&Value::Null),
                "expected a whole number >= 0",
            )),
        }
    }

    pub(super) fn u64(&self, key: &str, default: u64) -> Result<u64, Error> {
        Ok(self.opt_u64(key)?.unwrap_or(default))
    }

    pub(super) fn u32(&self, key: &str, default: u32) -> Result<u32, Error> {
        let v = self.u64(key, u64::from(default))?;
        u32::try_from(v).map_err(|_| {
            self.err(
                key,
                self.get(key).unwrap_or(&Value::Null),
                "number is too large",
            )
        })
    }

    /// Seconds as a duration (fractions allowed, negatives clamp to 0 as Python's `max(0, ...)`).
    pub(super) fn seconds(&self, key: &str, default: f64) -> Result<Duration, Error> {
        let s = self.f64(key, default)?;
        seconds_duration(s)
            .ok_or_else(|| self.err(key, self.get(key).unwrap_or(&Value::Null), SECONDS_EXPECTED))
    }

    /// A list of strings; a single string becomes a one-element list (Python does this for
    /// `default_docker.arguments` and friends).
    pub(super) fn string_list(&self, key: &str) -> Result<Vec<String>, Error> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(self.err(key, other, "expected a list of strings")),
                })
                .collect(),
            Some(other) => Err(self.err(key, other, "expected a list of strings")),
        }
    }

    pub(super) fn opt_string_list(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.string_list(key).map(Some)
    }

    pub(super) fn path(&self, key: &str, default: &str) -> Result<PathBuf, Error> {
        let s = self.string(key, default)?;
        Ok(expand_path(&s, self.home, self.env))
    }
}

pub(super) fn env_bool(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Result<Option<bool>, Error> {
    for name in names {
        if let Some(value) = env(name).filter(|v| !v.is_empty()) {
            return parse_bool(&value).map(Some).ok_or(Error::Env {
                name,
                value,
                expected: "expected a boolean such as true/false, yes/no, 1/0".into(),
            });
        }
    }
    Ok(None)
}

/// The most seconds any interval or timeout may be set to (about 31 years): beyond it, adding the
/// value to a clock reading could overflow.
pub(super) const MAX_SECONDS: f64 = 1e9;

pub(super) const SECONDS_EXPECTED: &str = "expected a number of seconds from 0 to 1000000000";

/// `secs` as a duration: negatives clamp to 0; non-finite or above [`MAX_SECONDS`] is `None`.
pub(super) fn seconds_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs <= MAX_SECONDS).then(|| Duration::from_secs_f64(secs.max(0.0)))
}

/// A number of seconds from the environment: finite and at most [`MAX_SECONDS`].
pub(super) fn env_f64(
    env: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<f64>, Error> {
    match env(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(value) => match value.trim().parse::<f64>() {
            Ok(f) if seconds_duration(f).is_some() => Ok(Some(f)),
            _ => Err(Error::Env {
                name,
                value,
                expected: SECONDS_EXPECTED.into(),
            }),
        },
    }
}

/// Shell words (POSIX rules, as Python's `shlex.split`), for `*_ARGS` variables; unbalanced
/// quotes split at whitespace instead of failing.
pub fn shell_split(s: &str) -> Vec<String> {
    shlex::split(s).unwrap_or_else(|| s.split_whitespace().map(str::to_string).collect())
}
