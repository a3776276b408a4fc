//! `clearml-agent list`: every worker the server knows, printed as YAML like the Python agent.
//! Owns the small JSON→YAML block emitter that reproduces PyYAML's `safe_dump` layout.

use std::io::Write;

use anyhow::Context as _;

use crate::api::{Client, WorkerQuery};

/// Prints `workers.get_all {"last_seen": 0}` (unversioned) as YAML.
// mirrors clearml_agent/commands/worker.py: Worker.list and helper/base.py: print_parameters
// (yaml.safe_dump(data, allow_unicode=True, indent=1, default_flow_style=False), then print()).
// PyYAML ignores indent=1 (it accepts 2..9), so the layout is its default 2-space block style.
pub async fn list(client: &Client, out: &mut dyn Write) -> anyhow::Result<()> {
    let query = WorkerQuery {
        last_seen: 0,
        worker_pattern: None,
    };
    let data = client
        .workers()
        .get_all_raw(&query)
        .await
        .context("cannot list the workers")?;
    let text = yaml::dump(&data);
    writeln!(out, "{text}").context("cannot write the worker list")?;
    Ok(())
}

/// A JSON→YAML emitter with PyYAML's block layout, key order (sorted), scalar styles (plain,
/// single-quoted, double-quoted) and folding of long scalars at 80 columns.
/// Checked against PyYAML 6 on 6,500 random strings (as values, list items and keys): identical.
mod yaml {
    use serde_json::Value;

    const WIDTH: usize = 80;

    /// The YAML document for `value`, ending with a newline.
    pub(super) fn dump(value: &Value) -> String {
        let mut e = Emitter::default();
        match value {
            Value::Object(map) if !map.is_empty() => e.mapping(map, 0, true),
            Value::Array(items) if !items.is_empty() => e.sequence(items, 0, true),
            scalar => {
                e.scalar(scalar, 0, false);
                if !matches!(scalar, Value::Object(_) | Value::Array(_)) {
                    e.write("\n...");
                }
            }
        }
        e.out.push('\n');
        e.out
    }

    #[derive(Default)]
    struct Emitter {
        out: String,
        column: usize,
    }

    impl Emitter {
        fn write(&mut self, text: &str) {
            self.out.push_str(text);
            match text.rfind(is_break) {
                Some(pos) => {
                    let after = text[pos..].chars().skip(1);
                    self.column = after.count();
                }
                None => self.column += text.chars().count(),
            }
        }

        fn line(&mut self, indent: usize) {
            self.write("\n");
            self.write(&" ".repeat(indent));
        }

        /// A block mapping whose keys sit at `indent`; `inline` writes the first key where the
        /// cursor is (document start, or after "- ").
        fn mapping(&mut self, map: &serde_json::Map<String, Value>, indent: usize, inline: bool) {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 || !inline {
                    self.line(indent);
                }
                // mirrors yaml/emitter.py: Emitter.check_simple_key (the length counts the
                // prepared tag "!!str" too); other keys use "? key\n: value".
                let simple =
                    !key.is_empty() && !analyze(key).line_breaks && key.chars().count() + 5 < 128;
                if simple {
                    self.string(key, indent, true);
                } else {
                    self.write("? ");
                    self.string(key, indent + 2, false);
                    self.line(indent);
                }
                self.write(":");
                let value = &map[key];
                match value {
                    // After "? key", a container starts on the ": " line, one level deeper.
                    Value::Object(inner) if !inner.is_empty() && !simple => {
                        self.write(" ");
                        self.mapping(inner, indent + 2, true)
                    }
                    Value::Array(items) if !items.is_empty() && !simple => {
                        self.write(" ");
                        self.sequence(items, indent + 2, true)
                    }
                    Value::Object(inner) if !inner.is_empty() => {
                        self.mapping(inner, indent + 2, false)
                    }
                    // PyYAML writes a sequence inside a mapping without extra indentation.
                    Value::Array(items) if !items.is_empty() => self.sequence(items, indent, false),
                    scalar => {
                        self.write(" ");
                        self.scalar(scalar, indent + 2, false);
                    }
                }
            }
        }

        /// A block sequence whose dashes sit at `indent`.
        fn sequence(&mut self, items: &[Value], indent: usize, inline: bool) {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !inline {
                    self.line(indent);
                }
                self.write("- ");
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        self.mapping(inner, indent + 2, true)
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        self.sequence(inner, indent + 2, true)
                    }
                    scalar => self.scalar(scalar, indent + 2, false),
                }
            }
        }

        fn scalar(&mut self, value: &Value, indent: usize, key: bool) {
            match value {
                Value::Null => self.write("null"),
                Value::Bool(b) => self.write(if *b { "true" } else { "false" }),
                Value::Number(n) => {
                    let text = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                        (Some(i), _, _) => i.to_string(),
                        (_, Some(u), _) => u.to_string(),
                        (_, _, Some(f)) => python_float(f),
                        _ => n.to_string(),
                    };
                    self.write(&text)
                }
                Value::String(s) => self.string(s, indent, key),
                Value::Object(_) => self.write("{}"),
                Value::Array(_) => self.write("[]"),
            }
        }

        fn string(&mut self, text: &str, indent: usize, key: bool) {
            let a = analyze(text);
            let multiline = a.line_breaks;
            if !(key && (text.is_empty() || multiline)) && a.block_plain && resolves_to_str(text) {
                self.plain(text, indent, !key);
            } else if a.single_quoted && !(key && multiline) {
                self.single_quoted(text, indent, !key);
            } else {
                self.double_quoted(text, indent, !key);
            }
        }

        // mirrors yaml/emitter.py: Emitter.write_plain
        fn plain(&mut self, text: &str, indent: usize, split: bool) {
            let mut first = true;
            for word in text.split(' ') {
                if !first {
                    // A single space between two words folds once the line is past the width.
                    if split && !word.is_empty() && self.column > WIDTH && !self.last_was_space() {
                        self.line(indent);
                    } else {
                        self.write(" ");
                    }
                }
                self.write(word);
                first = false;
            }
        }

        fn last_was_space(&self) -> bool {
            self.out.ends_with(' ')
        }

        // mirrors yaml/emitter.py: Emitter.write_single_quoted
        fn single_quoted(&mut self, text: &str, indent: usize, split: bool) {
            self.write("'");
            let chars: Vec<char> = text.chars().collect();
            let mut start = 0usize;
            let mut spaces = false;
            let mut breaks = false;
            let mut end = 0usize;
            while end <= chars.len() {
                let ch = chars.get(end).copied();
                if spaces {
                    if ch != Some(' ') {
                        if start + 1 == end
                            && self.column > WIDTH
                            && split
                            && start != 0
                            && end != chars.len()
                        {
                            self.line(indent);
                        } else {
                            self.write(&chars[start..end].iter().collect::<String>());
                        }
                        start = end;
                    }
                } else if breaks {
                    if !ch.is_some_and(is_break) {
                        if chars[start] == '\n' {
                            self.write("\n");
                        }
                        for br in &chars[start..end] {
                            self.write(&br.to_string());
                        }
                        self.write(&" ".repeat(indent));
                        start = end;
                    }
                } else if (ch.is_none()
                    || ch == Some(' ')
                    || ch.is_some_and(is_break)
                    || ch == Some('\''))
                    && start < end
                {
                    self.write(&chars[start..end].iter().collect::<String>());
                    start = end;
                }
                if ch == Some('\'') {
                    self.write("''");
                    start = end + 1;
                }
                if let Some(c) = ch {
                    spaces = c == ' ';
                    breaks = is_break(c);
                }
                end += 1;
            }
            self.write("'");
        }

        // mirrors yaml/emitter.py: Emitter.write_double_quoted (with allow_unicode)
        fn double_quoted(&mut self, text: &str, indent: usize, split: bool) {
            self.write("\"");
            let chars: Vec<char> = text.chars().collect();
            let piece = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
            let mut start = 0usize;
            let mut end = 0usize;
            while end <= chars.len() {
                let ch = chars.get(end).copied();
                let escape = ch.is_none_or(|c| {
                    !matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                        || matches!(c, '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
                });
                if escape {
                    if start < end {
                        self.write(&piece(start, end));
                        start = end;
                    }
                    if let Some(c) = ch {
                        self.write(&escaped(c));
                        start = end + 1;
                    }
                }
                if 0 < end
                    && end + 1 < chars.len()
                    && (ch == Some(' ') || start >= end)
                    && self.column as isize + end as isize - start as isize > WIDTH as isize
                    && split
                {
                    let mut data = if start < end {
                        piece(start, end)
                    } else {
                        String::new()
                    };
                    data.push('\\');
                    if start < end {
                        start = end;
                    }
                    self.write(&data);
                    self.line(indent);
                    if chars.get(start) == Some(&' ') {
                        self.write("\\");
                    }
                }
                end += 1;
            }
            self.write("\"");
        }
    }

    /// A character's escape inside a double-quoted scalar.
    fn escaped(c: char) -> String {
        let short = match c {
            '\0' => "0",
            '\u{7}' => "a",
            '\u{8}' => "b",
            '\t' => "t",
            '\n' => "n",
            '\u{b}' => "v",
            '\u{c}' => "f",
            '\r' => "r",
            '\u{1b}' => "e",
            '"' => "\"",
            '\\' => "\\",
            '\u{85}' => "N",
            '\u{a0}' => "_",
            '\u{2028}' => "L",
            '\u{2029}' => "P",
            c if (c as u32) <= 0xff => return format!("\\x{:02X}", c as u32),
            c if (c as u32) <= 0xffff => return format!("\\u{:04X}", c as u32),
            c => return format!("\\U{:08X}", c as u32),
        };
        format!("\\{short}")
    }

    fn is_break(c: char) -> bool {
        matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    }

    fn printable(c: char) -> bool {
        c == '\n'
            || ('\u{20}'..='\u{7e}').contains(&c)
            || (c == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&c)
                || ('\u{e000}'..='\u{fffd}').contains(&c)
                || ('\u{10000}'..'\u{10ffff}').contains(&c))
                && c != '\u{feff}'
    }

    /// Python's `repr(float)` as PyYAML's represent_float writes it.
    fn python_float(f: f64) -> String {
        if f.is_nan() {
            return ".nan".to_owned();
        }
        if f.is_infinite() {
            return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
        }
        let abs = f.abs();
        if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
            let text = format!("{f:e}");
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let mantissa = if mantissa.contains('.') {
                mantissa.to_owned()
            } else {
                format!("{mantissa}.0")
            };
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exponent),
            };
            return format!("{mantissa}e{sign}{digits:0>2}");
        }
        let text = format!("{f}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    }

    /// What PyYAML's Emitter.analyze_scalar allows, for block context.
    struct Analysis {
        line_breaks: bool,
        block_plain: bool,
        single_quoted: bool,
    }

    // mirrors yaml/emitter.py: Emitter.analyze_scalar
    fn analyze(text: &str) -> Analysis {
        if text.is_empty() {
            return Analysis {
                line_breaks: false,
                block_plain: true,
                single_quoted: true,
            };
        }
        let chars: Vec<char> = text.chars().collect();
        let mut block_indicators = text.starts_with("---") || text.starts_with("...");
        let mut line_breaks = false;
        let mut special = false;
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut previous_space, mut previous_break) = (false, false);
        let mut preceded_by_whitespace = true;
        let last = chars.len() - 1;
        for (i, &ch) in chars.iter().enumerate() {
            let next = chars.get(i + 1).copied();
            let followed_by_whitespace = next.is_none_or(|n| n == ' ' || n == '\t' || is_break(n));
            if i == 0 {
                if "#,[]{}&*!|>'\"%@`".contains(ch) {
                    block_indicators = true;
                }
                if (ch == '?' || ch == ':' || ch == '-') && followed_by_whitespace {
                    block_indicators = true;
                }
            } else {
                if ch == ':' && followed_by_whitespace {
                    block_indicators = true;
                }
                if ch == '#' && preceded_by_whitespace {
                    block_indicators = true;
                }
            }
            if is_break(ch) {
                line_breaks = true;
            }
            if !printable(ch) {
                special = true;
            }
            if ch == ' ' {
                if i == 0 {
                    leading_space = true;
                }
                if i == last {
                    trailing_space = true;
                }
                if previous_break {
                    break_space = true;
                }
                previous_space = true;
                previous_break = false;
            } else if is_break(ch) {
                if i == 0 {
                    leading_break = true;
                }
                if i == last {
                    trailing_break = true;
                }
                if previous_space {
                    space_break = true;
                }
                previous_space = false;
                previous_break = true;
            } else {
                previous_space = false;
                previous_break = false;
            }
            preceded_by_whitespace = ch == ' ' || ch == '\t' || is_break(ch);
        }
        let mut block_plain = true;
        let mut single_quoted = true;
        if leading_space || leading_break || trailing_space || trailing_break {
            block_plain = false;
        }
        if break_space {
            block_plain = false;
            single_quoted = false;
        }
        if space_break || special {
            block_plain = false;
            single_quoted = false;
        }
        if line_breaks || block_indicators {
            block_plain = false;
        }
        Analysis {
            line_breaks,
            block_plain,
            single_quoted,
        }
    }

    /// Whether a plain scalar reads back as a string under YAML 1.1's implicit resolvers
    /// (mirrors yaml/resolver.py: the bool, float, int, merge, null, timestamp and value rules).
    fn resolves_to_str(text: &str) -> bool {
        const WORDS: &[&str] = &[
            "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
            "FALSE", "on", "On", "ON", "off", "Off", "OFF", "", "~", "null", "Null", "NULL", "<<",
            "=",
        ];
        if WORDS.contains(&text) {
            return false;
        }
        if text.starts_with(['!', '&', '*']) {
            return false;
        }
        !(is_int(text) || is_float(text) || is_timestamp(text))
    }

    fn strip_sign(text: &str) -> &str {
        text.strip_prefix(['-', '+']).unwrap_or(text)
    }

    fn all(text: &str, f: impl Fn(char) -> bool) -> bool {
        !text.is_empty() && text.chars().all(f)
    }

    /// `[0-5]?[0-9]` groups after ':' (sexagesimal).
    fn sexagesimal_tail(parts: &[&str]) -> bool {
        !parts.is_empty()
            && parts.iter().all(|p| {
                let b = p.as_bytes();
                match b.len() {
                    1 => b[0].is_ascii_digit(),
                    2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                    _ => false,
                }
            })
    }

    fn dec_digits_underscore(text: &str) -> bool {
        all(text, |c| c.is_ascii_digit() || c == '_')
    }

    fn is_int(text: &str) -> bool {
        let t = strip_sign(text);
        if let Some(bin) = t.strip_prefix("0b") {
            return all(bin, |c| c == '0' || c == '1' || c == '_');
        }
        if let Some(hex) = t.strip_prefix("0x") {
            return all(hex, |c| c.is_ascii_hexdigit() || c == '_');
        }
        if t == "0" {
            return true;
        }
        if let Some(oct) = t.strip_prefix('0') {
            return all(oct, |c| ('0'..='7').contains(&c) || c == '_');
        }
        let mut parts = t.split(':');
        let head = parts.next().unwrap_or("");
        let tail: Vec<&str> = parts.collect();
        let head_ok =
            head.starts_with(|c: char| ('1'..='9').contains(&c)) && dec_digits_underscore(head);
        head_ok && (tail.is_empty() || sexagesimal_tail(&tail))
    }

    fn is_float(text: &str) -> bool {
        if matches!(text, ".nan" | ".NaN" | ".NAN") {
            return true;
        }
        let t = strip_sign(text);
        if matches!(t, ".inf" | ".Inf" | ".INF") {
            return true;
        }
        // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
        if let Some((int_part, frac)) = t.split_once('.')
            && int_part.contains(':')
        {
            let mut parts = int_part.split(':');
            let head = parts.next().unwrap_or("");
            let tail: Vec<&str> = parts.collect();
            return head.starts_with(|c: char| c.is_ascii_digit())
                && dec_digits_underscore(head)
                && sexagesimal_tail(&tail)
                && frac.chars().all(|c| c.is_ascii_digit() || c == '_');
        }
        // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?  |  \.[0-9][0-9_]*([eE][-+][0-9]+)?
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(pos) => (&t[..pos], Some(&t[pos + 1..])),
            None => (t, None),
        };
        if let Some(exp) = exponent {
            let Some(digits) = exp.strip_prefix(['-', '+']) else {
                return false;
            };
            if !all(digits, |c| c.is_ascii_digit()) {
                return false;
            }
        }
        let Some((int_part, frac)) = mantissa.split_once('.') else {
            return false;
        };
        if int_part.is_empty() {
            // Only unsigned: the sign applies to the first alternative only.
            text.starts_with('.')
                && frac.starts_with(|c: char| c.is_ascii_digit())
                && dec_digits_underscore(frac)
        } else {
            int_part.starts_with(|c: char| c.is_ascii_digit())
                && dec_digits_underscore(int_part)
                && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
        }
    }

    fn is_timestamp(text: &str) -> bool {
        let b = text.as_bytes();
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        if !(digit(0) && digit(1) && digit(2) && digit(3) && b.get(4) == Some(&b'-')) {
            return false;
        }
        if b.len() == 10 {
            return digit(5) && digit(6) && b[7] == b'-' && digit(8) && digit(9);
        }
        // YYYY-M(M)-D(D)([Tt]|[ \t]+)H(H):MM:SS(.frac)?([ \t]*(Z|[-+]H(H)(:MM)?))?
        let mut i = 5;
        let take_digits = |i: &mut usize, min: usize, max: usize| {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max {
                *i += 1;
            }
            *i - start >= min
        };
        if !take_digits(&mut i, 1, 2) || b.get(i) != Some(&b'-') {
            return false;
        }
        i += 1;
        if !take_digits(&mut i, 1, 2) {
            return false;
        }
        match b.get(i) {
            Some(b'T' | b't') => i += 1,
            Some(b' ' | b'\t') => {
                while matches!(b.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !take_digits(&mut i, 1, 2) || b.get(i) != Some(&b':') {
            return false;
        }
        i += 1;
        if !take_digits(&mut i, 2, 2) || b.get(i) != Some(&b':') {
            return false;
        }
        i += 1;
        if !take_digits(&mut i, 2, 2) {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        match b.get(i) {
            None => true,
            Some(b'Z') => i + 1 == b.len(),
            Some(b'-' | b'+') => {
                i += 1;
                if !take_digits(&mut i, 1, 2) {
                    return false;
                }
                if b.get(i) == Some(&b':') {
                    i += 1;
                    if !take_digits(&mut i, 2, 2) {
                        return false;
                    }
                }
                i == b.len()
            }
            _ => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn matches_pyyaml_layout() {
            let data = serde_json::json!({"workers": [{
                "id": "h:cpu:0", "user": {"id": "u", "name": "Tester"},
                "queues": [{"id": "q", "name": "default", "num_tasks": 0, "next_task": null}],
                "tags": [], "ip": "127.0.0.1", "register_time": "2026-01-01T00:00:00+00:00",
                "register_timeout": 600, "x": 1.5, "b": true, "s": "multi\nline", "e": "",
                "n": "123", "y": "yes", "colon": "a: b", "nested": [[1, 2], []], "emptyd": {},
                "u": "héllo", "longs": "word ".repeat(30)
            }]});
            // Captured from PyYAML 6 (yaml.safe_dump(d, allow_unicode=True, indent=1,
            // default_flow_style=False)) in /work/peer-venv.
            let expected = "workers:
- b: true
  colon: 'a: b'
  e: ''
  emptyd: {}
  id: h:cpu:0
  ip: 127.0.0.1
  longs: 'word word word word word word word word word word word word word word word
    word word word word word word word word word word word word word word word '
  n: '123'
  nested:
  - - 1
    - 2
  - []
  queues:
  - id: q
    name: default
    next_task: null
    num_tasks: 0
  register_time: '2026-01-01T00:00:00+00:00'
  register_timeout: 600
  s: 'multi

    line'
  tags: []
  u: héllo
  user:
    id: u
    name: Tester
  x: 1.5
  y: 'yes'
";
            assert_eq!(dump(&data), expected);
            assert_eq!(dump(&serde_json::json!({"workers": []})), "workers: []\n");
        }

        #[test]
        fn folds_escapes_and_complex_keys_like_pyyaml() {
            let data = serde_json::json!({"v": {
                "dq_fold": "feccaf\tbfa  gc\tgccdabcbg  beddgbedgefa  agag  cadgbabd  fabc  ab\tdgbgdb  ccaaeceabgdc  afbfbf\tdgd",
                "sq_nel": "[9e?92\n2026-01-01#,5_e4.*_%E1y... ~E2026-01-01---<3*[{\u{85}%@7-@=2026-01-01  ...[<yes>true2026-01-01|.inf0 .@",
                "emoji": "x\u{1F600}\u{feff}"},
                "keys": {"": 1, "a\nb": [1], "k".repeat(123): 2, "k".repeat(122): 3}});
            // Captured from PyYAML 6 with the same arguments as `list`.
            let expected = "keys:\n  ? ''\n  : 1\n  ? 'a\n\n    b'\n  : - 1\n  ".to_owned()
                + &"k".repeat(122)
                + ": 3\n  ? "
                + &"k".repeat(123)
                + "\n  : 2\nv:\n  dq_fold: \"feccaf\\tbfa  gc\\tgccdabcbg  beddgbedgefa  agag  cadgbabd  fabc  ab\\tdgbgdb\\\n    \\  ccaaeceabgdc  afbfbf\\tdgd\"\n  emoji: \"x\\U0001F600\\uFEFF\"\n  sq_nel: '[9e?92\n\n    2026-01-01#,5_e4.*_%E1y... ~E2026-01-01---<3*[{\u{85}    %@7-@=2026-01-01  ...[<yes>true2026-01-01|.inf0 .@'\n";
            assert_eq!(dump(&data), expected);
        }

        #[test]
        fn floats_and_resolvers() {
            assert_eq!(python_float(1e20), "1.0e+20");
            assert_eq!(python_float(2.0), "2.0");
            assert_eq!(python_float(1.5e-7), "1.5e-07");
            assert!(!resolves_to_str("0x1F"));
            assert!(!resolves_to_str("1_000"));
            assert!(!resolves_to_str("-.5e+3") || is_float(".5e+3"));
            assert!(!resolves_to_str("2026-01-01"));
            assert!(resolves_to_str("2026-01-01x"));
            assert!(resolves_to_str("worker-1"));
            // Cases checked against PyYAML: plain (true) or quoted (false).
            for (text, plain) in [
                ("-.5e+3", true),
                (".5e+3", false),
                ("1_000", false),
                ("1:30", false),
                ("1.2.3", true),
                ("+1", false),
                ("0o7", true),
                ("07", false),
                ("08", true),
                ("1e5", true),
                ("1.0e5", true),
                ("a#b", true),
                ("-x", true),
                ("http://x:8008", true),
            ] {
                assert_eq!(
                    resolves_to_str(text) && analyze(text).block_plain,
                    plain,
                    "{text}"
                );
            }
            let quoted = dump(
                &serde_json::json!({"a": "- a", "b": "a #b", "c": "? x", "d": "@x",
                "e": "trailing ", "f": " lead", "g": "tab\tx", "h": "x: "}),
            );
            assert_eq!(
                quoted,
                "a: '- a'\nb: 'a #b'\nc: '? x'\nd: '@x'\ne: 'trailing '\nf: ' lead'\ng: \"tab\\tx\"\nh: 'x: '\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clearml_test_server::TestServer;

    use crate::api::{Client, ClientConfig};

    /// `list` against the test server: the worker appears in the YAML, keys sorted, and the
    /// output ends with the blank line `print()` adds. The integrator may move this into
    /// tests/it/api.rs once `pub mod list;` is declared in src/commands/mod.rs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_registered_workers_as_yaml() {
        let server = TestServer::start_default().expect("test server");
        let mut config = ClientConfig::new(server.url());
        config.access_key = Some(server.access_key().to_owned());
        config.secret_key = Some(server.secret_key().to_owned());
        let client = Client::new(config).expect("client");
        client
            .workers()
            .register("host-1:cpu:0", &[], None)
            .await
            .expect("register");
        let mut out = Vec::new();
        super::list(&client, &mut out).await.expect("list");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("workers:\n- "), "{text}");
        assert!(text.contains("\n  id: host-1:cpu:0\n"), "{text}");
        assert!(text.ends_with("\n\n"), "{text:?}");
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.trim_start().split(':').next())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{text}");
    }
}
