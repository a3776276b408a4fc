//! The shared parts of `get_all` queries: id/name/list filters, tag filters with `-`
//! exclusion, hidden objects, `only_fields` projection with dotted paths, `order_by` and paging.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::request::{opt_bool, opt_i64, opt_str, opt_str_list};

/// The value at a dotted path.
pub(crate) fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

/// Keeps docs matching the common filters: `id`, `name` (regex search), `tags`, `system_tags`,
/// hidden objects (unless `search_hidden` or `id`), and one list filter per name in `list_fields`
/// (for example `status`, `project`, `type`).
pub(crate) fn filter(
    docs: Vec<Value>,
    body: &Value,
    list_fields: &[&str],
) -> Result<Vec<Value>, ApiError> {
    let ids = opt_str_list(body, "id")?;
    let name = match opt_str(body, "name")? {
        Some(n) => Some(Regex::new(&n).map_err(|e| {
            ApiError::new(400, 21, "Malformed regular expression").extra(e.to_string())
        })?),
        None => None,
    };
    let tags = opt_str_list(body, "tags")?;
    let system_tags = opt_str_list(body, "system_tags")?;
    let search_hidden = opt_bool(body, "search_hidden", false)? || ids.is_some();
    let mut lists = Vec::new();
    for field in list_fields {
        if let Some(values) = opt_str_list(body, field)? {
            lists.push((*field, values));
        }
    }
    Ok(docs
        .into_iter()
        .filter(|d| {
            if let Some(ids) = &ids
                && !ids
                    .iter()
                    .any(|i| d.get("id").and_then(Value::as_str) == Some(i))
            {
                return false;
            }
            if let Some(re) = &name
                && !re.is_match(d.get("name").and_then(Value::as_str).unwrap_or(""))
            {
                return false;
            }
            let doc_system_tags = string_list(d.get("system_tags"));
            if !search_hidden && doc_system_tags.iter().any(|t| t == "hidden") {
                return false;
            }
            if let Some(t) = &tags
                && !tags_match(&string_list(d.get("tags")), t)
            {
                return false;
            }
            if let Some(t) = &system_tags
                && !tags_match(&doc_system_tags, t)
            {
                return false;
            }
            lists.iter().all(|(field, values)| {
                let v = lookup(d, field);
                let text = match v {
                    Some(Value::String(s)) => Some(s.as_str()),
                    _ => None,
                };
                values.iter().any(|want| match text {
                    Some(s) => s == want,
                    None => want.is_empty() || want == "null",
                })
            })
        })
        .collect())
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Tag filter: plain entries match when any is present (all of them after `__$all`), `-x` and
/// `__$not x` entries exclude.
fn tags_match(have: &[String], filter: &[String]) -> bool {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    let mut all = false;
    let mut negate_next = false;
    for f in filter {
        match f.as_str() {
            "__$all" => all = true,
            "__$any" => all = false,
            "__$not" => negate_next = true,
            other => {
                if negate_next {
                    exclude.push(other);
                    negate_next = false;
                } else if let Some(x) = other.strip_prefix('-') {
                    exclude.push(x);
                } else {
                    include.push(other);
                }
            }
        }
    }
    if exclude.iter().any(|x| have.iter().any(|h| h == x)) {
        return false;
    }
    if include.is_empty() {
        return true;
    }
    if all {
        include.iter().all(|x| have.iter().any(|h| h == x))
    } else {
        include.iter().any(|x| have.iter().any(|h| h == x))
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Sorts by `order_by` (a list of dotted fields, `-` prefix for descending), then pages with
/// `page`/`page_size` (a page without a page size is 400/11).
pub(crate) fn order_and_page(mut docs: Vec<Value>, body: &Value) -> Result<Vec<Value>, ApiError> {
    if let Some(order) = opt_str_list(body, "order_by")? {
        let keys: Vec<(String, bool)> = order
            .iter()
            .filter(|o| !o.is_empty())
            .map(|o| match o.strip_prefix('-') {
                Some(f) => (f.to_string(), true),
                None => (o.trim_start_matches('+').to_string(), false),
            })
            .collect();
        docs.sort_by(|a, b| {
            for (field, desc) in &keys {
                let ord = compare(lookup(a, field), lookup(b, field));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let page = opt_i64(body, "page")?;
    let page_size = opt_i64(body, "page_size")?.or(opt_i64(body, "size")?);
    match (page, page_size) {
        (Some(_), None) => {
            Err(ApiError::missing_field("page_size")
                .extra("page_size is required when page is given"))
        }
        (page, Some(size)) => {
            if size < 1 {
                return Err(ApiError::validation("page_size must be a positive integer"));
            }
            let size = size.min(500) as usize;
            let page = page.unwrap_or(0).max(0) as usize;
            Ok(docs.into_iter().skip(page * size).take(size).collect())
        }
        (None, None) => Ok(docs),
    }
}

/// Keeps only the `only_fields` paths of a doc (plus `id`); no projection when absent or empty.
pub(crate) fn project(doc: Value, only_fields: Option<&[String]>) -> Value {
    let Some(fields) = only_fields.filter(|f| !f.is_empty()) else {
        return doc;
    };
    let mut out = Value::Object(Map::new());
    if let Some(id) = doc.get("id") {
        set_path(&mut out, "id", id.clone());
    }
    for f in fields {
        if let Some(v) = lookup(&doc, f) {
            set_path(&mut out, f, v.clone());
        }
    }
    out
}

/// Sets a dotted path, creating intermediate objects.
pub(crate) fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i == parts.len() - 1 {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
