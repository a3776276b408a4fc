//! Substitution resolution for the pyhocon dialect: replaces every `${path}` / `${?VAR}` with a
//! config value or an environment variable, then joins the pieces. Mirrors
//! `clearml_agent/external/pyhocon/config_parser.py: ConfigParser.resolve_substitutions` and
//! `_resolve_variable` (config paths first, then the environment; self references see the value
//! the key had before).

use super::Error;
use super::tree::{self, Concat, Node, Tok};

/// A step along the tree: an object key or a list index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What a substitution found.
enum Found {
    Value(Node),
    /// The target still waits on other substitutions.
    NotReady,
    Missing,
    /// Resolves to nothing, but a value left empty by it stays as null.
    KeepNull,
}

/// Resolve all substitutions in `root`.
pub(super) fn resolve(mut root: Node, env: &dyn Fn(&str) -> Option<String>) -> Result<Node, Error> {
    loop {
        let mut pending = Vec::new();
        collect(&root, &mut Vec::new(), &mut pending);
        let Some(_) = pending.first() else {
            return Ok(root);
        };
        let mut progressed = false;
        for path in &pending {
            let Some(Node::Unres(concat)) = get(&root, path) else {
                continue;
            };
            if let Some(result) = try_resolve(&root, concat, path, env, 0)? {
                replace(&mut root, path, result);
                progressed = true;
                // Removing a list element shifts the paths after it: start over.
                break;
            }
        }
        if !progressed {
            return Err(cycle_error(&root, &pending));
        }
    }
}

fn cycle_error(root: &Node, pending: &[Vec<Step>]) -> Error {
    for path in pending {
        if let Some(Node::Unres(concat)) = get(root, path) {
            for tok in &concat.toks {
                if let Tok::Sub { var, at, .. } = tok {
                    return Error::Substitution {
                        at: at.clone(),
                        what: format!(
                            "cannot resolve ${{{var}}}: its value depends on itself (a cycle)"
                        ),
                    };
                }
            }
        }
    }
    Error::Substitution {
        at: super::Location {
            file: Default::default(),
            line: 0,
            col: 0,
        },
        what: "unresolvable substitutions".into(),
    }
}

/// Paths to every unresolved value, in document order.
fn collect(node: &Node, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match node {
        Node::Unres(_) => out.push(path.clone()),
        Node::Obj(entries) => {
            for (k, v) in entries {
                path.push(Step::Key(k.clone()));
                collect(v, path, out);
                path.pop();
            }
        }
        Node::Arr(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                collect(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn get<'a>(node: &'a Node, path: &[Step]) -> Option<&'a Node> {
    let Some((first, rest)) = path.split_first() else {
        return Some(node);
    };
    let child = match (node, first) {
        (Node::Obj(entries), Step::Key(k)) => Node::get(entries, k)?,
        (Node::Arr(items), Step::Index(i)) => items.get(*i)?,
        _ => return None,
    };
    get(child, rest)
}

/// Put `value` at `path`, or remove the entry when it is `None` (pyhocon deletes the key).
fn replace(root: &mut Node, path: &[Step], value: Option<Node>) {
    let Some((last, parent_path)) = path.split_last() else {
        *root = value.unwrap_or(Node::Null);
        return;
    };
    let mut parent = root;
    for step in parent_path {
        let next = match (parent, step) {
            (Node::Obj(entries), Step::Key(k)) => {
                entries.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)
            }
            (Node::Arr(items), Step::Index(i)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(node) => parent = node,
            None => return,
        }
    }
    match (parent, last, value) {
        (Node::Obj(entries), Step::Key(k), Some(v)) => tree::set(entries, k, v),
        (Node::Obj(entries), Step::Key(k), None) => entries.retain(|(key, _)| key != k),
        (Node::Arr(items), Step::Index(i), Some(v)) => {
            if let Some(slot) = items.get_mut(*i) {
                *slot = v;
            }
        }
        // pyhocon's `if key in parent: del parent[key]` tests whether the index *value* is an
        // element of the list (Python `==`, so True == 1): only then is the element removed,
        // otherwise it is left as null.
        (Node::Arr(items), Step::Index(i), None) if *i < items.len() => {
            if items.iter().any(|item| equals_python_int(item, *i)) {
                items.remove(*i);
            } else {
                items[*i] = Node::Null;
            }
        }
        _ => {}
    }
}

/// Python `item == i` for an int `i`.
fn equals_python_int(item: &Node, i: usize) -> bool {
    match item {
        Node::Num(n) => n.as_f64() == Some(i as f64),
        Node::Bool(b) => usize::from(*b) == i,
        _ => false,
    }
}

/// Substitute every piece of `concat` (at `self_path`) and join; `None` inside `Some` means the
/// value vanished, outer `None` means some target is not resolved yet.
fn try_resolve(
    root: &Node,
    concat: &Concat,
    self_path: &[Step],
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<Option<Option<Node>>, Error> {
    let mut toks = concat.toks.clone();
    let mut optional_missing = false;
    let mut keep_null = false;
    let last = toks.len().saturating_sub(1);
    for (i, tok) in toks.iter_mut().enumerate() {
        let Tok::Sub {
            var,
            optional,
            ws,
            at,
        } = &*tok
        else {
            continue;
        };
        let found = lookup(
            root,
            var,
            *optional,
            at,
            self_path,
            concat.prev.as_ref(),
            env,
            depth,
        )?;
        let value = match found {
            Found::NotReady => return Ok(None),
            Found::KeepNull => {
                keep_null = true;
                None
            }
            Found::Missing if *optional => {
                optional_missing = true;
                None
            }
            Found::Missing => {
                return Err(Error::Substitution {
                    at: at.clone(),
                    what: format!(
                        "cannot resolve ${{{var}}}: no such config key and no environment variable {var}; \
                         define it or write ${{?{var}}} to make it optional"
                    ),
                });
            }
            Found::Value(node) => Some(node),
        };
        // _do_substitute: a scalar that is not the last piece becomes text plus the blanks after it.
        *tok = match value {
            None | Some(Node::Null) => Tok::Gone,
            Some(node @ (Node::Obj(_) | Node::Arr(_))) => Tok::Val(node),
            Some(node) if i == last => Tok::Val(node),
            Some(node) => Tok::Text(format!("{}{ws}", tree::py_str(&node))),
        };
    }
    let joined = tree::transform(toks, concat.prev.as_ref(), &concat.at)?;
    // _do_substitute: a value that vanished through `${?X}` keeps the value it overrode.
    match (joined, &concat.prev) {
        (None, Some(prev)) if optional_missing => match prev {
            Node::Unres(inner) if depth < 64 => try_resolve(root, inner, self_path, env, depth + 1),
            Node::Unres(_) => Ok(None),
            node => Ok(Some(Some(node.clone()))),
        },
        (None, _) if keep_null => Ok(Some(Some(Node::Null))),
        (joined, _) => Ok(Some(joined)),
    }
}

/// Mirrors config_parser.py: ConfigParser._resolve_variable (config path, then environment).
#[allow(clippy::too_many_arguments)]
fn lookup(
    root: &Node,
    var: &str,
    optional: bool,
    at: &super::Location,
    self_path: &[Step],
    prev: Option<&Node>,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<Found, Error> {
    let path: Vec<Step> = tree::parse_key(var).into_iter().map(Step::Key).collect();
    // A reference to a key that holds this value can only be the environment (pyhocon's
    // _fixup_self_references looks up the variable, then gives up).
    // An optional one that finds nothing leaves null behind (what pyhocon's fixup ends with).
    if path.len() < self_path.len() && self_path[..path.len()] == *path {
        return Ok(match env(var) {
            Some(value) => Found::Value(Node::Str(value)),
            None if optional => Found::KeepNull,
            None => Found::Missing,
        });
    }
    // A reference to the key being defined (or below it) sees the value it had before.
    if !self_path.is_empty()
        && path.len() >= self_path.len()
        && path[..self_path.len()] == *self_path
    {
        let Some(prev) = prev else {
            return Ok(match env(var) {
                Some(value) => Found::Value(Node::Str(value)),
                None => Found::Missing,
            });
        };
        let base = match prev {
            Node::Unres(inner) => {
                if depth > 64 {
                    return Ok(Found::NotReady);
                }
                match try_resolve(root, inner, self_path, env, depth + 1)? {
                    None => return Ok(Found::NotReady),
                    Some(None) => return Ok(Found::Missing),
                    Some(Some(node)) => node,
                }
            }
            node => node.clone(),
        };
        return Ok(match get(&base, &path[self_path.len()..]) {
            Some(node) if node.has_unresolved() => Found::NotReady,
            Some(node) => Found::Value(node.clone()),
            None => Found::Missing,
        });
    }
    let mut node = root;
    for (i, step) in path.iter().enumerate() {
        let Step::Key(key) = step else { break };
        node = match node {
            Node::Obj(entries) => match Node::get(entries, key) {
                Some(child) => child,
                None => {
                    return Ok(match env(var) {
                        Some(value) => Found::Value(Node::Str(value)),
                        None => Found::Missing,
                    });
                }
            },
            Node::Unres(_) => return Ok(Found::NotReady),
            _ => {
                let through: Vec<&str> = path[..i]
                    .iter()
                    .filter_map(|s| {
                        if let Step::Key(k) = s {
                            Some(k.as_str())
                        } else {
                            None
                        }
                    })
                    .collect();
                return Err(Error::Substitution {
                    at: at.clone(),
                    what: format!(
                        "cannot resolve ${{{var}}}: {} is not an object",
                        through.join(".")
                    ),
                });
            }
        };
    }
    if node.has_unresolved() {
        Ok(Found::NotReady)
    } else {
        Ok(Found::Value(node.clone()))
    }
}
