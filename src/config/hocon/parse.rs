//! The grammar of the pyhocon dialect: turns text into a `tree::Node` with substitutions still
//! unresolved, reading includes as it goes. Mirrors the pyparsing grammar in
//! `clearml_agent/external/pyhocon/config_parser.py: ConfigParser.parse` (token order, character
//! classes and where newlines matter).

use std::path::{Path, PathBuf};

use serde_json::Number;

use super::tree::{self, Concat, Key, Node, Op, Tok};
use super::{Error, Location};

/// Objects, lists and includes nested deeper than this are refused (an include cycle, or input
/// that would exhaust the stack; pyhocon stops at Python's recursion limit).
const MAX_NESTING: usize = 100;

/// Parse a whole document (root object with or without braces, or a root list).
pub(super) fn parse_document(text: &str, origin: &Path, depth: usize) -> Result<Node, Error> {
    let text = expand_tabs(text);
    let mut p = Parser {
        src: &text,
        pos: 0,
        origin: origin.to_path_buf(),
        depth,
    };
    // config_expr = ZeroOrMore(comment_eol | eol) + (list | root dict | root without braces) + ...
    loop {
        p.skip_blanks();
        if p.comment_eol() || p.eol() {
            continue;
        }
        break;
    }
    p.skip_blanks();
    let root = match p.peek() {
        Some('[') => p.list()?,
        Some('{') => p.braced_object()?,
        _ => {
            let mut entries = Vec::new();
            p.object_body(&mut entries)?;
            Node::Obj(entries)
        }
    };
    loop {
        p.skip_blanks();
        if p.comment_eol() || p.eol_comma() {
            continue;
        }
        break;
    }
    p.skip_blanks();
    match p.peek() {
        None => Ok(root),
        Some(c) => Err(p.syntax(format!(
            "unexpected {c:?}; expected a key, a comment or the end of the file"
        ))),
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    origin: PathBuf,
    /// Objects, lists and includes open around the current position (includes count across files).
    depth: usize,
}

/// pyhocon's unquoted-string class excludes these (plus whitespace).
const UNQUOTED_STOP: &str = "^`+?!@*&\"[{]}#,=$\\";

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// pyparsing `alphanums + alphas8bit + '._- /'`: the characters of an unquoted key.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || ('\u{c0}'..='\u{d6}').contains(&c)
        || ('\u{d8}'..='\u{f6}').contains(&c)
        || ('\u{f8}'..='\u{ff}').contains(&c)
        || "._- /".contains(c)
}

/// pyparsing `Keyword` identifier characters (`alphanums + "_$"`).
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn location(&self, pos: usize) -> Location {
        let before = &self.src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            file: self.origin.clone(),
            line,
            col: before[line_start..].chars().count() + 1,
        }
    }

    fn syntax(&self, what: String) -> Error {
        Error::Syntax {
            at: self.location(self.pos),
            what,
        }
    }

    /// Default pyparsing whitespace in this grammar is only space and tab.
    fn skip_blanks(&mut self) {
        let n = self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
        self.pos += n;
    }

    fn take_run(&mut self, set: &str) -> bool {
        let n = self.rest().len() - self.rest().trim_start_matches(|c| set.contains(c)).len();
        self.pos += n;
        n > 0
    }

    /// `Word('\n\r')`
    fn eol(&mut self) -> bool {
        self.take_run("\n\r")
    }

    /// `Word('\n\r,')`
    fn eol_comma(&mut self) -> bool {
        self.take_run("\n\r,")
    }

    fn at_comment(&self) -> bool {
        self.rest().starts_with('#') || self.rest().starts_with("//")
    }

    /// `#` or `//` up to (not including) the end of the line.
    fn skip_comment(&mut self) {
        let n = self.rest().find(['\n', '\r']).unwrap_or(self.rest().len());
        self.pos += n;
    }

    /// `comment_eol = Optional(eol_comma) + comment`
    fn comment_eol(&mut self) -> bool {
        let start = self.pos;
        self.skip_blanks();
        self.eol_comma();
        self.skip_blanks();
        if self.at_comment() {
            self.skip_comment();
            true
        } else {
            self.pos = start;
            false
        }
    }

    fn keyword(&self, word: &str) -> bool {
        let rest = self.rest();
        rest.len() >= word.len()
            && rest.is_char_boundary(word.len())
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..].chars().next().is_some_and(is_ident_char)
    }

    /// `{ ... }` as a value or root.
    fn braced_object(&mut self) -> Result<Node, Error> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut entries = Vec::new();
        self.object_body(&mut entries)?;
        self.depth -= 1;
        self.skip_blanks();
        if self.peek() == Some('}') {
            self.pos += 1;
            Ok(Node::Obj(entries))
        } else {
            Err(self.syntax(self.expected("'}' to close the object")))
        }
    }

    fn expected(&self, what: &str) -> String {
        match self.peek() {
            Some(c) => format!("expected {what}, found {c:?}"),
            None => format!("expected {what}, found the end of the file"),
        }
    }

    /// `ZeroOrMore(comment_eol | include_expr | assign_expr | eol_comma)`
    fn object_body(&mut self, entries: &mut Vec<(String, Node)>) -> Result<(), Error> {
        loop {
            self.skip_blanks();
            if self.comment_eol()
                || self.include(entries)?
                || self.assignment(entries)?
                || self.eol_comma()
            {
                continue;
            }
            return Ok(());
        }
    }

    /// `include "f"`, `include file("f")`, `include url("u")`, `include required(...)`.
    /// Mirrors config_parser.py: include_config.
    fn include(&mut self, entries: &mut Vec<(String, Node)>) -> Result<bool, Error> {
        if !self.keyword("include") {
            return Ok(false);
        }
        let start = self.pos;
        let at = self.location(start);
        self.pos += "include".len();
        self.skip_blanks();
        let required = self.rest().starts_with("required") && self.keyword("required");
        if required {
            self.pos += "required".len();
            self.skip_blanks();
            self.expect_char('(')?;
            self.skip_blanks();
        }
        let target = if self.peek() == Some('"') {
            let (value, _) = self.quoted_string()?;
            if ["http://", "https://", "file://"]
                .iter()
                .any(|p| value.starts_with(p))
            {
                IncludeTarget::Url(value)
            } else {
                IncludeTarget::File(value)
            }
        } else if self.rest().starts_with("url") && self.keyword("url")
            || self.rest().starts_with("file") && self.keyword("file")
        {
            let is_url = self.rest().starts_with("url");
            self.pos += if is_url { 3 } else { 4 };
            self.skip_blanks();
            self.expect_char('(')?;
            self.skip_blanks();
            if self.peek() != Some('"') {
                return Err(self.syntax(self.expected("a quoted path")));
            }
            let (value, _) = self.quoted_string()?;
            self.skip_blanks();
            self.expect_char(')')?;
            if is_url {
                IncludeTarget::Url(value)
            } else {
                IncludeTarget::File(value)
            }
        } else if required {
            return Err(self.syntax(self.expected("a quoted path, file(...) or url(...)")));
        } else {
            // Not an include after all: `include` is an ordinary key here.
            self.pos = start;
            return Ok(false);
        };
        if required {
            self.skip_blanks();
            self.expect_char(')')?;
        }
        let path = match target {
            IncludeTarget::File(file) => {
                let base = self.origin.parent().unwrap_or(Path::new(""));
                base.join(file)
            }
            IncludeTarget::Url(url) => match url.strip_prefix("file://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(Error::Syntax {
                        at,
                        what: format!(
                            "include of URL {url:?} is not supported; download it and include the file"
                        ),
                    });
                }
            },
        };
        if self.depth >= MAX_NESTING {
            return Err(Error::Syntax {
                at,
                what: format!("includes nested more than {MAX_NESTING} deep (an include cycle?)"),
            });
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // pyhocon logs and ignores an optional include it cannot read.
            Err(_) if !required => return Ok(true),
            Err(source) => return Err(Error::Io { path, source }),
        };
        match parse_document(&text, &path, self.depth + 1)? {
            Node::Obj(included) => {
                for (key, value) in included {
                    tree::assign(entries, &Key::Path(key), Op::Set, value, &at)?;
                }
                Ok(true)
            }
            _ => Err(Error::Syntax {
                at,
                what: format!("included file {} is a list, not an object", path.display()),
            }),
        }
    }

    fn expect_char(&mut self, c: char) -> Result<(), Error> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.syntax(self.expected(&format!("{c:?}"))))
        }
    }

    /// `key (comment|eol)* ( {dict} | (=|:|+=) (comment|eol)* value )`
    fn assignment(&mut self, entries: &mut Vec<(String, Node)>) -> Result<bool, Error> {
        self.skip_blanks();
        let key_at = self.location(self.pos);
        // key = QuotedString | number | Word(...)
        let key = if self.peek() == Some('"') {
            Key::Path(self.quoted_key()?)
        } else if let Some(number) = self.number() {
            Key::Number(tree::py_str(&Node::Num(number)))
        } else {
            let n = self.rest().len() - self.rest().trim_start_matches(is_key_char).len();
            if n == 0 {
                return Ok(false);
            }
            let key = self.rest()[..n].to_string();
            self.pos += n;
            Key::Path(key)
        };
        self.skip_comments_and_eols();
        let (op, value) = if self.peek() == Some('{') {
            (Op::Set, self.braced_object()?)
        } else {
            let op = if self.rest().starts_with("+=") {
                self.pos += 2;
                Op::Append
            } else if self.peek() == Some('=') || self.peek() == Some(':') {
                self.pos += 1;
                Op::Set
            } else {
                return Err(self.syntax(self.expected(&format!(
                    "':', '=', '+=' or '{{' after the key {}",
                    key.describe()
                ))));
            };
            self.skip_comments_and_eols();
            (op, self.value()?)
        };
        tree::assign(entries, &key, op, value, &key_at)?;
        Ok(true)
    }

    /// `ZeroOrMore(comment | eol)` between a key and its value.
    fn skip_comments_and_eols(&mut self) {
        loop {
            self.skip_blanks();
            if self.at_comment() {
                self.skip_comment();
            } else if !self.eol() {
                return;
            }
        }
    }

    /// `QuotedString('"', escChar='\\', unquoteResults=False)`: the raw text, quotes included.
    fn quoted_key(&mut self) -> Result<String, Error> {
        let start = self.pos;
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' if i == 1 => {
                    return Err(self.syntax("empty quoted key \"\"; give the key a name".into()));
                }
                '"' => {
                    self.pos += i + 1;
                    return Ok(self.src[start..self.pos].to_string());
                }
                '\\' => {
                    chars.next();
                }
                '\n' | '\r' => break,
                _ => {}
            }
        }
        Err(self.syntax("unterminated quoted key; close it with '\"' on the same line".into()))
    }

    /// `"..."` followed by blanks: the unescaped value and the blanks.
    fn quoted_string(&mut self) -> Result<(String, String), Error> {
        let start = self.pos;
        let mut chars = self.rest().char_indices().skip(1);
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, '\n')) | None => break,
                    Some(_) => {}
                },
                '\n' => break,
                _ => {}
            }
        }
        let Some(end) = end else {
            return Err(
                self.syntax("unterminated string; close it with '\"' on the same line".into())
            );
        };
        let raw = &self.src[start + 1..start + end];
        self.pos = start + end + 1;
        let ws_start = self.pos;
        self.skip_blanks();
        Ok((unescape(raw), self.src[ws_start..self.pos].to_string()))
    }

    /// A value: `ZeroOrMore(comment_eol | substitution | dict | list | value | '\\' eol)`, joined.
    fn value(&mut self) -> Result<Node, Error> {
        let at = self.location(self.pos);
        let mut toks = Vec::new();
        loop {
            self.skip_blanks();
            if self.comment_eol() {
                continue;
            }
            let Some(c) = self.peek() else { break };
            let triple_quote = self.rest().starts_with("\"\"\"");
            if self.rest().starts_with("${") {
                toks.push(self.substitution()?);
            } else if c == '{' {
                toks.push(Tok::Val(self.braced_object()?));
            } else if c == '[' {
                toks.push(Tok::Val(self.list()?));
            } else if let Some(num) = self.number() {
                toks.push(Tok::Val(Node::Num(num)));
            } else if self.keyword("true") {
                self.pos += 4;
                toks.push(Tok::Val(Node::Bool(true)));
            } else if self.keyword("false") {
                self.pos += 5;
                toks.push(Tok::Val(Node::Bool(false)));
            } else if self.keyword("null") {
                self.pos += 4;
                toks.push(Tok::Val(Node::Null));
            } else if triple_quote {
                // A plain str in pyhocon: never right-stripped, joined as is.
                let value = self.multiline_string()?;
                toks.push(Tok::Quoted {
                    value,
                    ws: String::new(),
                });
            } else if c == '"' {
                let (value, ws) = self.quoted_string()?;
                toks.push(Tok::Quoted { value, ws });
            } else if let Some(text) = self.unquoted() {
                toks.push(Tok::Text(text));
            } else if c == '\\' {
                // `.properties`-style continuation: a backslash before the end of the line.
                self.pos += 1;
                if !self.eol() {
                    return Err(self.syntax(self.expected("a newline after '\\'")));
                }
            } else {
                break;
            }
        }
        // ConfigValues.recompute: no pieces is the empty string; the last unquoted piece is rstripped.
        if toks.is_empty() {
            toks.push(Tok::Text(String::new()));
        }
        if let Some(Tok::Text(last)) = toks.last_mut() {
            let trimmed = last.trim_end_matches([' ', '\t']).len();
            last.truncate(trimmed);
        }
        if toks.iter().any(|t| matches!(t, Tok::Sub { .. })) {
            Ok(Node::Unres(Box::new(Concat {
                toks,
                prev: None,
                at,
            })))
        } else {
            Ok(tree::transform(toks, None, &at)?.unwrap_or(Node::Null))
        }
    }

    /// `[ entry ((eol|,)+ entry)* ]`; entries that are the empty string are dropped (ListParser).
    fn list(&mut self) -> Result<Node, Error> {
        self.enter()?;
        let node = self.list_body();
        self.depth -= 1;
        node
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= MAX_NESTING {
            return Err(self.syntax(format!(
                "objects and lists nested more than {MAX_NESTING} deep"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn list_body(&mut self) -> Result<Node, Error> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        loop {
            let item = self.value()?;
            if !matches!(&item, Node::Str(s) if s.is_empty()) {
                items.push(item);
            }
            self.skip_blanks();
            if !self.eol_comma() {
                break;
            }
        }
        self.skip_blanks();
        if self.peek() == Some(']') {
            self.pos += 1;
            Ok(Node::Arr(items))
        } else {
            Err(self.syntax(self.expected("',', a newline or ']' in the list")))
        }
    }

    /// `${path}` / `${?path}` and the blanks after it.
    fn substitution(&mut self) -> Result<Tok, Error> {
        let at = self.location(self.pos);
        let body_start = self.pos + 2;
        let Some(len) = self.src[body_start..].find('}') else {
            return Err(self.syntax("unterminated substitution; close it with '}'".into()));
        };
        if len == 0 {
            return Err(
                self.syntax("empty substitution '${}'; name a config path or variable".into())
            );
        }
        let body = &self.src[body_start..body_start + len];
        let (optional, var) = match body.strip_prefix('?') {
            Some(var) if !var.is_empty() => (true, var),
            _ => (false, body),
        };
        let var = var.to_string();
        self.pos = body_start + len + 1;
        let ws_start = self.pos;
        self.skip_blanks();
        Ok(Tok::Sub {
            var,
            optional,
            ws: self.src[ws_start..self.pos].to_string(),
            at,
        })
    }

    /// `[+-]?(\d*\.\d+|\d+(\.\d+)?)([eE][+\-]?\d+)?` followed by the end or a value terminator.
    fn number(&mut self) -> Option<Number> {
        let b = self.rest().as_bytes();
        let mut i = 0;
        if matches!(b.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let int_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let int_digits = i - int_start;
        let mut is_float = false;
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            is_float = true;
        } else if int_digits == 0 {
            return None;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            let exp_start = j;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j > exp_start {
                i = j;
                is_float = true;
            }
        }
        if !number_ends(&b[i..]) {
            return None;
        }
        let text = &self.rest()[..i];
        let number = if is_float {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        } else {
            let digits = text.strip_prefix('+').unwrap_or(text);
            digits
                .parse::<i64>()
                .ok()
                .map(Number::from)
                .or_else(|| digits.parse::<u64>().ok().map(Number::from))
                .or_else(|| digits.parse::<f64>().ok().and_then(Number::from_f64))
        }?;
        self.pos += i;
        Some(number)
    }

    /// `""".*?"*"""`: the text between the opening quotes and the last three of the closing run.
    fn multiline_string(&mut self) -> Result<String, Error> {
        let body_start = self.pos + 3;
        let Some(first) = self.src[body_start..].find("\"\"\"") else {
            return Err(self.syntax("unterminated '\"\"\"' string".into()));
        };
        let close = body_start + first;
        let run = self.src[close..].len() - self.src[close..].trim_start_matches('"').len();
        let end = close + run;
        let text = self.src[body_start..end - 3].to_string();
        self.pos = end;
        Ok(text)
    }

    /// `(?:[^^`+?!@*&"\[\{\s\]\}#,=\$\\]|\\.)+[ \t]*`, unescaped.
    fn unquoted(&mut self) -> Option<String> {
        let rest = self.rest();
        let mut chars = rest.char_indices().peekable();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                match chars.peek() {
                    Some(&(j, n)) if n != '\n' => {
                        chars.next();
                        end = j + n.len_utf8();
                        continue;
                    }
                    _ => break,
                }
            }
            if is_py_space(c) || UNQUOTED_STOP.contains(c) {
                break;
            }
            end = i + c.len_utf8();
        }
        if end == 0 {
            return None;
        }
        let raw = &rest[..end];
        let ws = rest[end..].len() - rest[end..].trim_start_matches([' ', '\t']).len();
        let text = format!("{}{}", unescape(raw), &rest[end..end + ws]);
        self.pos += end + ws;
        Some(text)
    }
}

enum IncludeTarget {
    File(String),
    Url(String),
}

/// pyparsing's `parseString` runs `str.expandtabs()` (tab stops every 8 columns) over the whole
/// input first, so tabs inside values become spaces and error columns count expanded text.
fn expand_tabs(text: &str) -> String {
    if !text.contains('\t') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut col = 0;
    for c in text.chars() {
        match c {
            '\t' => {
                let pad = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', pad));
                col += pad;
            }
            '\n' | '\r' => {
                out.push(c);
                col = 0;
            }
            _ => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// The number regex's lookahead: `(?=$|[ \t]*([\$\}\],#\n\r]|//))`.
fn number_ends(after: &[u8]) -> bool {
    if after.is_empty() || after == b"\n" {
        return true;
    }
    let blanks = after
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let after = &after[blanks..];
    matches!(
        after.first(),
        Some(b'$' | b'}' | b']' | b',' | b'#' | b'\n' | b'\r')
    ) || after.starts_with(b"//")
}

/// Mirrors config_parser.py: ConfigParser.REPLACEMENTS; unknown escapes stay as written.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(c @ ('=' | '#' | '!' | '"')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
