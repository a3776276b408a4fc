//! Parser for the pyhocon dialect of HOCON used by `clearml.conf` files: the public entry points,
//! the error type and `merge`. The grammar lives in `parse`, the intermediate tree and its
//! assignment/merge/concatenation rules in `tree`, substitution resolution in `resolve`. Settings
//! resolution (layering defaults, `CLEARML_*` overrides, typed structs) is not here.
//!
//! Ground truth is the pyhocon copy vendored by the Python agent
//! (`clearml_agent/external/pyhocon/config_parser.py`, `config_tree.py`); the golden fixtures in
//! `tests/fixtures/hocon` come from it (`scripts/hocon-goldens.py`). Known differences, all in
//! corners a real `clearml.conf` does not reach:
//! * a period such as `10 seconds` stays the text as written. pyhocon makes a `relativedelta` only
//!   when the period ends the whole input (its regex anchors on `$`), which JSON cannot carry;
//! * `include url(...)` / `include "http://..."` is refused (no network fetches); `file://` is read;
//! * objects, lists and includes nest at most 100 deep (pyhocon: Python's recursion limit);
//! * where pyhocon prints a Python object repr into a string (`null` or an `include` inside a
//!   concatenation) we write `null` / the include's words; where pyhocon crashes (`a.b += x`, some
//!   self-referencing `${?a}`) we give the natural result;
//! * a reference to an enclosing key that an earlier line gave a scalar (`a: x` then
//!   `a.b: ${a}`) does not see that old scalar; it falls through to the environment;
//! * integers beyond 64 bits become floats.

mod parse;
mod resolve;
mod tree;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where in which file something went wrong (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// Why a config file could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file (or a required include) could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid pyhocon syntax.
    #[error("{at}: {what}")]
    Syntax { at: Location, what: String },
    /// A `${X}` names neither a config path nor an environment variable, or the references form a cycle.
    #[error("{at}: {what}")]
    Substitution { at: Location, what: String },
    /// Values that cannot be combined (e.g. a string concatenated with an object).
    #[error("{at}: {what}")]
    Type { at: Location, what: String },
}

/// Parse one file (includes resolved relative to it, as pyhocon does). `env` looks up environment
/// variables for `${X}`/`${?X}` substitutions.
pub fn parse_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path, env)
}

/// Parse `text`; `origin` names it in errors and anchors relative includes (its directory).
pub fn parse_str(
    text: &str,
    origin: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, Error> {
    let tree = parse::parse_document(text, origin, 0)?;
    let resolved = resolve::resolve(tree, env)?;
    Ok(resolved.into_json())
}

/// pyhocon `ConfigTree.merge_configs` semantics: objects merge recursively, anything else replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}
