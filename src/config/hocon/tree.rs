//! The intermediate config tree of the pyhocon dialect: values that may still hold unresolved
//! substitutions, key-path splitting, assignment/merge rules and value concatenation. Mirrors
//! `clearml_agent/external/pyhocon/config_tree.py` (ConfigTree._put, merge_configs, ConfigValues).

use serde_json::{Number, Value};

use super::{Error, Location};

/// One config value during parsing and resolution.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// Ordered keys; keys holding a special character keep their quotes, as pyhocon stores them.
    Obj(Vec<(String, Node)>),
    Arr(Vec<Node>),
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
    /// A concatenation that still holds substitutions (pyhocon `ConfigValues`).
    Unres(Box<Concat>),
}

/// A value made of several pieces, at least one of them a substitution.
#[derive(Debug, Clone)]
pub(super) struct Concat {
    pub toks: Vec<Tok>,
    /// The value this one overrode (pyhocon `overriden_value`), for self references.
    pub prev: Option<Node>,
    pub at: Location,
}

/// One piece of a concatenation.
#[derive(Debug, Clone)]
pub(super) enum Tok {
    /// Unquoted or triple-quoted text, trailing blanks included (except on the last piece).
    Text(String),
    /// A quoted string and the blanks that followed it.
    Quoted { value: String, ws: String },
    /// A number, boolean, null, object or array.
    Val(Node),
    /// `${path}` / `${?path}` and the blanks that followed it.
    Sub {
        var: String,
        optional: bool,
        ws: String,
        at: Location,
    },
    /// A substitution that resolved to nothing (pyhocon's `None` token).
    Gone,
}

impl Node {
    pub(super) fn into_json(self) -> Value {
        match self {
            Node::Obj(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.trim_matches('"').to_string(), v.into_json()))
                    .collect(),
            ),
            Node::Arr(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Str(s) => Value::String(s),
            Node::Num(n) => Value::Number(n),
            Node::Bool(b) => Value::Bool(b),
            // Unresolved values never survive resolution; null is the harmless fallback.
            Node::Null | Node::Unres(_) => Value::Null,
        }
    }

    pub(super) fn get<'a>(entries: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
        entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn has_unresolved(&self) -> bool {
        match self {
            Node::Unres(_) => true,
            Node::Obj(entries) => entries.iter().any(|(_, v)| v.has_unresolved()),
            Node::Arr(items) => items.iter().any(Node::has_unresolved),
            _ => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Obj(_) => "object",
            Node::Arr(_) => "list",
            Node::Str(_) => "string",
            Node::Num(_) => "number",
            Node::Bool(_) => "boolean",
            Node::Null => "null",
            Node::Unres(_) => "unresolved value",
        }
    }
}

/// Set `key` in ordered `entries`, keeping the position of an existing key.
pub(super) fn set(entries: &mut Vec<(String, Node)>, key: &str, value: Node) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some((_, slot)) => *slot = value,
        None => entries.push((key.to_string(), value)),
    }
}

/// Python's `str()` of a float (`repr` since Python 3): `1.0`, `1e+16`, `1.5e-07`.
pub(super) fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Python `str()` of a scalar, as pyhocon uses when it joins pieces into a string.
pub(super) fn py_str(node: &Node) -> String {
    match node {
        Node::Str(s) => s.clone(),
        Node::Num(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Node::Bool(true) => "True".into(),
        Node::Bool(false) => "False".into(),
        Node::Null => "null".into(),
        Node::Obj(_) | Node::Arr(_) | Node::Unres(_) => String::new(),
    }
}

/// Split a key or substitution path into its segments.
/// Mirrors config_tree.py: ConfigTree.parse_key (`"[^"]+"|[^special]+`, quotes dropped unless the
/// segment holds a special character).
pub(super) fn parse_key(key: &str) -> Vec<String> {
    const SPECIAL: &str = "$}[]:=+#`^?!@*&.";
    let chars: Vec<char> = key.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"'
            && let Some(len) = chars[i + 1..].iter().position(|&c| c == '"')
            && len > 0
        {
            let token: String = chars[i..i + len + 2].iter().collect();
            i += len + 2;
            out.push(finish_segment(token, SPECIAL));
            continue;
        }
        if SPECIAL.contains(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !SPECIAL.contains(chars[i]) {
            i += 1;
        }
        out.push(finish_segment(chars[start..i].iter().collect(), SPECIAL));
    }
    out
}

fn finish_segment(token: String, special: &str) -> String {
    if token.chars().any(|c| special.contains(c)) {
        token
    } else {
        token.trim_matches('"').to_string()
    }
}

/// A key as written: a path to split on dots, or a number (pyhocon keeps a number key whole, as
/// Python's `str()` of the number).
#[derive(Debug, Clone)]
pub(super) enum Key {
    Path(String),
    Number(String),
}

impl Key {
    pub(super) fn describe(&self) -> String {
        match self {
            Key::Path(key) | Key::Number(key) => format!("{:?}", key.trim()),
        }
    }
}

/// How a value was attached to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Set,
    Append,
}

/// Assign `value` to `key` in `entries`, as a parsed `key: value` / `key += value` / `key { }` does.
/// Mirrors config_parser.py: ConfigTreeParser.postParse.
pub(super) fn assign(
    entries: &mut Vec<(String, Node)>,
    key: &Key,
    op: Op,
    value: Node,
    at: &Location,
) -> Result<(), Error> {
    let (key, path) = match key {
        Key::Path(key) => (key.trim(), parse_key(key.trim())),
        Key::Number(key) => (key.as_str(), vec![key.clone()]),
    };
    if path.is_empty() {
        return Err(Error::Syntax {
            at: at.clone(),
            what: format!("key {key:?} names no path"),
        });
    }
    let self_ref = |tail: Tok| {
        Node::Unres(Box::new(Concat {
            toks: vec![
                Tok::Sub {
                    var: key.to_string(),
                    optional: true,
                    ws: String::new(),
                    at: at.clone(),
                },
                tail,
            ],
            prev: None,
            at: at.clone(),
        }))
    };
    match (op, value) {
        (Op::Append, Node::Arr(items)) => put(
            entries,
            &path,
            self_ref(Tok::Val(Node::Arr(items))),
            false,
            at,
        ),
        (Op::Append, Node::Str(s)) => put(
            entries,
            &path,
            self_ref(Tok::Text(format!(" {s}"))),
            false,
            at,
        ),
        (_, value @ Node::Arr(_)) => put(entries, &path, value, false, at),
        (_, value) => {
            let existing = lookup(entries, &path);
            let append = match (&value, existing) {
                (Node::Obj(_), Some(Node::Arr(_))) => false,
                (Node::Obj(_), _) => true,
                (Node::Unres(_), Some(Node::Arr(_) | Node::Obj(_))) => true,
                _ => false,
            };
            put(entries, &path, value, append, at)
        }
    }
}

/// `ConfigTree.get(key, None)`: a missing path (or one through a non-object) gives `None`.
fn lookup<'a>(entries: &'a [(String, Node)], path: &[String]) -> Option<&'a Node> {
    let (first, rest) = path.split_first()?;
    let node = Node::get(entries, first)?;
    if rest.is_empty() {
        return Some(node);
    }
    match node {
        Node::Obj(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// Mirrors config_tree.py: ConfigTree._put.
fn put(
    entries: &mut Vec<(String, Node)>,
    path: &[String],
    value: Node,
    append: bool,
    at: &Location,
) -> Result<(), Error> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    if !rest.is_empty() {
        if !matches!(Node::get(entries, first), Some(Node::Obj(_))) {
            set(entries, first, Node::Obj(Vec::new()));
        }
        return match entries.iter_mut().find(|(k, _)| k == first) {
            Some((_, Node::Obj(inner))) => put(inner, rest, value, append, at),
            _ => Ok(()),
        };
    }
    let slot = entries.iter_mut().find(|(k, _)| k == first).map(|(_, v)| v);
    match (slot, value) {
        (Some(Node::Obj(existing)), Node::Obj(new)) => {
            merge_entries(existing, new);
            Ok(())
        }
        (slot, value) if append => {
            match (slot, value) {
                (None | Some(Node::Null), value) => set(entries, first, value),
                (Some(Node::Unres(concat)), value) => concat.toks.push(Tok::Val(value)),
                (Some(old @ Node::Obj(_)), Node::Unres(mut concat)) => {
                    concat.toks.insert(0, Tok::Val(old.clone()));
                    concat.prev = Some(old.clone());
                    *old = Node::Unres(concat);
                }
                (Some(old @ Node::Arr(_)), Node::Unres(mut concat)) => {
                    concat.prev = Some(std::mem::replace(old, Node::Null));
                    *old = Node::Unres(concat);
                }
                (Some(Node::Arr(old)), Node::Arr(new)) => old.extend(new),
                (Some(old), value) => {
                    return Err(Error::Type {
                        at: at.clone(),
                        what: format!(
                            "cannot combine {} {} with the earlier {} value of {}",
                            value.kind(),
                            path_text(path),
                            old.kind(),
                            path_text(path)
                        ),
                    });
                }
            }
            Ok(())
        }
        (slot, value) => {
            let value = match value {
                Node::Unres(mut concat) => {
                    concat.prev = match slot {
                        Some(Node::Null) | None => None,
                        Some(old) => Some(old.clone()),
                    };
                    Node::Unres(concat)
                }
                other => other,
            };
            set(entries, first, value);
            Ok(())
        }
    }
}

fn path_text(path: &[String]) -> String {
    path.join(".")
}

/// Mirrors config_tree.py: ConfigTree.merge_configs (b into a).
pub(super) fn merge_entries(a: &mut Vec<(String, Node)>, b: Vec<(String, Node)>) {
    for (key, value) in b {
        match (a.iter_mut().find(|(k, _)| *k == key), value) {
            (Some((_, Node::Obj(inner))), Node::Obj(new)) => merge_entries(inner, new),
            (Some((_, slot)), Node::Unres(mut concat)) => {
                concat.prev = Some(slot.clone());
                *slot = Node::Unres(concat);
            }
            (Some((_, slot)), value) => *slot = value,
            (None, value) => a.push((key, value)),
        }
    }
}

/// Join fully substituted pieces into one value; `None` when every piece vanished.
/// Mirrors config_tree.py: ConfigValues.transform.
pub(super) fn transform(
    toks: Vec<Tok>,
    prev: Option<&Node>,
    at: &Location,
) -> Result<Option<Node>, Error> {
    let toks: Vec<Tok> = toks
        .into_iter()
        .filter(|t| !matches!(t, Tok::Gone))
        .collect();
    let class = |t: &Tok| match t {
        Tok::Val(Node::Obj(_)) => 0,
        Tok::Val(Node::Arr(_)) => 1,
        _ => 2,
    };
    let Some(first) = toks.first() else {
        return Ok(None);
    };
    let first_class = class(first);
    if let Some(bad) = toks.iter().find(|t| class(t) != first_class) {
        let names = ["object", "list", "string"];
        return Err(Error::Type {
            at: at.clone(),
            what: format!(
                "cannot concatenate a {} with a {}",
                names[first_class],
                names[class(bad)]
            ),
        });
    }
    match first_class {
        0 => {
            let mut result = Vec::new();
            if let Some(Node::Obj(old)) = prev {
                merge_entries(&mut result, old.clone());
            }
            for tok in toks {
                if let Tok::Val(Node::Obj(entries)) = tok {
                    merge_entries(&mut result, entries);
                }
            }
            Ok(Some(Node::Obj(result)))
        }
        1 => {
            let mut result = Vec::new();
            for tok in toks {
                if let Tok::Val(Node::Arr(items)) = tok {
                    result.extend(items);
                }
            }
            Ok(Some(Node::Arr(result)))
        }
        _ => {
            if toks.len() == 1 {
                return Ok(toks.into_iter().next().map(|tok| match tok {
                    Tok::Quoted { value, .. } | Tok::Text(value) => Node::Str(value),
                    Tok::Val(node) => node,
                    Tok::Sub { .. } | Tok::Gone => Node::Null,
                }));
            }
            let last = toks.len() - 1;
            let mut out = String::new();
            for (i, tok) in toks.iter().enumerate() {
                match tok {
                    Tok::Quoted { value, ws } => {
                        out.push_str(value);
                        if i != last {
                            out.push_str(ws);
                        }
                    }
                    Tok::Text(s) => out.push_str(s),
                    Tok::Val(node) => out.push_str(&py_str(node)),
                    Tok::Sub { .. } | Tok::Gone => {}
                }
            }
            Ok(Some(Node::Str(out)))
        }
    }
}
