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

#[test]
fn root_forms_and_separators() {
    let want = json!({"a": 1, "b": 2, "c": {"d": 3}, "e": {"f": 4}});
    assert_eq!(parse_ok("a: 1\nb = 2\nc { d: 3 }\ne\n{\n f: 4\n}"), want);
    assert_eq!(parse_ok("{ a: 1, b = 2, c { d: 3 }, e: { f: 4 } }"), want);
    assert_eq!(parse_ok("[1, two]"), json!([1, "two"]));
    assert_eq!(parse_ok(""), json!({}));
    assert_eq!(parse_ok("# only a comment\n// and another"), json!({}));
    // A key, then a comment and a newline, then the separator (pyhocon allows it).
    assert_eq!(parse_ok("k # note\n  : v"), json!({"k": "v"}));
}

#[test]
fn dotted_and_quoted_keys() {
    assert_eq!(
        parse_ok("a.b.c: 1\na.b.d: 2"),
        json!({"a": {"b": {"c": 1, "d": 2}}})
    );
    assert_eq!(parse_ok("\"a.b\": 1"), json!({"a.b": 1}));
    assert_eq!(parse_ok("\"plain\": 1"), json!({"plain": 1}));
    assert_eq!(parse_ok("two words: 1"), json!({"two words": 1}));
    // A scalar on the way is replaced by an object.
    assert_eq!(parse_ok("a: 1\na.b: 2"), json!({"a": {"b": 2}}));
}

#[test]
fn repeated_blocks_merge_and_keep_first_position() {
    let got = parse_ok("agent { x: 1, y: 1 }\nother: 0\nagent { y: 2, z: 3 }");
    assert_eq!(got, json!({"agent": {"x": 1, "y": 2, "z": 3}, "other": 0}));
    let keys: Vec<&String> = got.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["agent", "other"]);
    // A later non-object value replaces; a list then an object replaces too.
    assert_eq!(parse_ok("a { x: 1 }\na: s"), json!({"a": "s"}));
    assert_eq!(parse_ok("a: [1]\na { x: 1 }"), json!({"a": {"x": 1}}));
}

#[test]
fn scalar_then_object_is_a_type_error() {
    // pyhocon: ConfigWrongTypeException "Cannot concatenate ...".
    let err = parse_err("a: 5\na { b: 1 }");
    assert!(err.starts_with("test.conf:2:1: "), "{err}");
}

#[test]
fn arrays() {
    assert_eq!(parse_ok("a: [1, 2, 3,]"), json!({"a": [1, 2, 3]}));
    assert_eq!(
        parse_ok("a: [\n  x\n  y,\n\n  z\n]"),
        json!({"a": ["x", "y", "z"]})
    );
    assert_eq!(parse_ok("a: [ # c\n 1 // d\n]"), json!({"a": [1]}));
    assert_eq!(parse_ok("a: [\"\", x]"), json!({"a": ["x"]}));
    assert_eq!(parse_ok("a: [1] [2, 3]"), json!({"a": [1, 2, 3]}));
    assert_eq!(
        parse_ok("a: [{b: 1} {c: 2}]"),
        json!({"a": [{"b": 1, "c": 2}]})
    );
}

#[test]
fn plus_equals_appends() {
    assert_eq!(
        parse_ok("a: [1]\na += [2]\na += [3]"),
        json!({"a": [1, 2, 3]})
    );
    assert_eq!(parse_ok("a += [1]"), json!({"a": [1]}));
    assert_eq!(parse_ok("a: x\na += y"), json!({"a": "x y"}));
    // pyhocon quirk: appending text to nothing keeps the joining blank.
    assert_eq!(parse_ok("a += y"), json!({"a": " y"}));
}

#[test]
fn substitutions_config_paths_then_environment() {
    let env = |name: &str| match name {
        "HOME" => Some("/home/me".to_string()),
        "a" => Some("from-env".to_string()),
        _ => None,
    };
    let got = hocon::parse_str(
        "a: 1\nb: ${a}\nc: ${HOME}/.clearml\nd: ${?NOPE}\ne: x${?NOPE}\nf { g: ${a} }\nh: ${f.g} items",
        Path::new("t.conf"),
        &env,
    )
    .expect("parses");
    assert_eq!(
        got,
        json!({"a": 1, "b": 1, "c": "/home/me/.clearml", "e": "x", "f": {"g": 1}, "h": "1 items"})
    );
    // Forward references resolve too; a self reference sees the earlier value.
    assert_eq!(parse_ok("x: ${y}\ny: 2"), json!({"x": 2, "y": 2}));
    assert_eq!(parse_ok("p: a\np: ${p}b"), json!({"p": "ab"}));
    // `${?X}` that finds nothing keeps the value it overrode.
    assert_eq!(parse_ok("p: a\np: ${?NOPE}"), json!({"p": "a"}));
    // A missing optional list element is null, unless pyhocon's `index in list` test finds the
    // index among the elements (Python `==`, so `true == 1`): then it is removed.
    assert_eq!(parse_ok("l: [5, ${?NOPE}]"), json!({"l": [5, null]}));
    assert_eq!(parse_ok("l: [1, ${?NOPE}]"), json!({"l": [1]}));
    assert_eq!(parse_ok("l: [true, ${?NOPE}, 3]"), json!({"l": [true, 3]}));
    // A reference to an enclosing key can only be the environment; optional and absent is null.
    assert_eq!(parse_ok("a.b: ${?a}"), json!({"a": {"b": null}}));
    assert_eq!(parse_ok("a.b: x${?a}"), json!({"a": {"b": "x"}}));
}

#[test]
fn unresolved_substitution_names_place_and_fix() {
    let err = parse_err("a: 1\nb: x ${MISSING_VAR}");
    assert!(
        err.starts_with("test.conf:2:6: cannot resolve ${MISSING_VAR}"),
        "{err}"
    );
    assert!(err.contains("${?MISSING_VAR}"), "{err}");
    let err = parse_err("a: ${b}\nb: ${a}");
    assert!(
        err.starts_with("test.conf:1:4: ") && err.contains("cycle"),
        "{err}"
    );
}

#[test]
fn concatenation_and_strings() {
    assert_eq!(parse_ok("a: \"x\" \"y\"  z"), json!({"a": "x y  z"}));
    assert_eq!(parse_ok("a: foo   bar  "), json!({"a": "foo   bar"}));
    assert_eq!(
        parse_ok("a: \"q\\\"\\\\\\n\\t\\u0041\""),
        json!({"a": "q\"\\\n\t\\u0041"})
    );
    assert_eq!(
        parse_ok("a: \"\"\"one\n\"two\"\n\"\"\"\""),
        json!({"a": "one\n\"two\"\n\""})
    );
    assert_eq!(parse_ok("a: one \\\n  two"), json!({"a": "one two"}));
    assert_eq!(
        parse_ok("a: x\t\"y\""),
        json!({"a": "x    y"}),
        "tabs expand as pyparsing does"
    );
    let err = parse_err("a: {x: 1} oops");
    assert!(
        err.starts_with("test.conf:1:4: cannot concatenate"),
        "{err}"
    );
}

#[test]
fn unquoted_urls_paths_and_comments() {
    let got = parse_ok(
        "api_server: http://localhost:8008\nvenvs: ~/.clearml/venvs\nimage: nvidia/cuda:11.0.3-cudnn8\n\
         c1: http://h:1 // note\nc2: v#note\nc3: a//b\nc4: x # note",
    );
    assert_eq!(
        got,
        json!({"api_server": "http://localhost:8008", "venvs": "~/.clearml/venvs",
               "image": "nvidia/cuda:11.0.3-cudnn8", "c1": "http://h:1", "c2": "v", "c3": "a//b", "c4": "x"})
    );
    // pyhocon's unquoted class excludes these characters: they are errors, not silently cut values.
    for bad in ["a: x@y", "a: c++", "a: what?", "a: x=y"] {
        let err = parse_err(bad);
        assert!(err.starts_with("test.conf:1:"), "{bad}: {err}");
    }
}

#[test]
fn caseless_keywords_and_numbers() {
    let got = parse_ok(
        "t: True\nf: FALSE\nn: Null\nword: trueish\ni: 42\nneg: -7\nf1: 1.0\ne: 1e3\nd: .5\nv: 1.2.3\np: 5 apples\nbig: 99999999999999999999",
    );
    assert_eq!(got["t"], json!(true));
    assert_eq!(got["f"], json!(false));
    assert_eq!(got["n"], Value::Null);
    assert_eq!(got["word"], json!("trueish"));
    assert!(got["i"].is_i64() && got["neg"] == json!(-7));
    assert!(
        got["f1"].is_f64() && got["e"].is_f64(),
        "floats stay floats: {got}"
    );
    assert_eq!(got["e"], json!(1000.0));
    assert_eq!(got["d"], json!(0.5));
    assert_eq!(got["v"], json!("1.2.3"));
    assert_eq!(got["p"], json!("5 apples"));
    assert_eq!(got["big"], json!(99999999999999999999.0_f64));
    // Python's str() of numbers when they join text.
    assert_eq!(parse_ok("x: 1e20 up")["x"], json!("1e20 up"));
    assert_eq!(parse_ok("n: 1e20\nx: ${n} up")["x"], json!("1e+20 up"));
    assert_eq!(parse_ok("n: 2.0\nx: ${n} up")["x"], json!("2.0 up"));
    assert_eq!(parse_ok("n: true\nx: ${n} up")["x"], json!("True up"));
}

#[test]
fn periods_stay_text() {
    // pyhocon makes a relativedelta only when the period ends the whole input; JSON gets the text.
    assert_eq!(
        parse_ok("a: 10 seconds\nb: 1"),
        json!({"a": "10 seconds", "b": 1})
    );
    assert_eq!(parse_ok("a: 10 seconds"), json!({"a": "10 seconds"}));
}

#[test]
fn includes_resolve_relative_to_the_including_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(
        sub.join("inner.conf"),
        "inner: 1\nshared { b: 2 }\ninclude \"leaf.conf\"",
    )
    .expect("write");
    std::fs::write(sub.join("leaf.conf"), "leaf: ${top}").expect("write");
    let main = dir.path().join("main.conf");
    std::fs::write(
        &main,
        "top: t\nshared { a: 1 }\ninclude \"sub/inner.conf\"\ninclude file(\"missing.conf\")\nsection { include required(file(\"sub/leaf.conf\")) }",
    )
    .expect("write");
    let got = hocon::parse_file(&main, &no_env).expect("parses");
    assert_eq!(
        got,
        json!({"top": "t", "shared": {"a": 1, "b": 2}, "inner": 1, "leaf": "t", "section": {"leaf": "t"}})
    );
    std::fs::write(&main, "include required(\"nope.conf\")").expect("write");
    let err = hocon::parse_file(&main, &no_env).expect_err("required include");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.conf"), "{err}");
    // An include cycle is an error, not a stack overflow.
    std::fs::write(&main, "include \"main.conf\"").expect("write");
    let err = hocon::parse_file(&main, &no_env).expect_err("cycle");
    assert!(
        err.to_string().contains("main.conf:1:1: includes nested"),
        "{err}"
    );
}

#[test]
fn errors_name_file_line_and_column() {
    let cases = [
        ("a: 1\nb: foo@bar", "test.conf:2:7: "),
        ("a {\n  b: 1\n", "test.conf:3:1: expected '}'"),
        (
            "a: \"unterminated\nb: 1",
            "test.conf:1:4: unterminated string",
        ),
        (
            "a: [1, 2\nb: 1",
            "test.conf:2:5: expected ',', a newline or ']'",
        ),
        (
            "a: 1\n  stray\n}",
            "test.conf:3:1: expected ':', '=', '+=' or '{' after the key \"stray\"",
        ),
        ("\"\": 1", "test.conf:1:1: empty quoted key"),
        ("a: ${}", "test.conf:1:4: empty substitution"),
        ("a: ${x", "test.conf:1:4: unterminated substitution"),
        ("a: \"\"\"open", "test.conf:1:4: unterminated"),
        (
            "include url(\"http://example.com/x.conf\")",
            "test.conf:1:1: include of URL",
        ),
    ];
    for (text, want) in cases {
        let err = parse_err(text);
        assert!(
            err.starts_with(want),
            "{text:?}: got {err:?}, want prefix {want:?}"
        );
    }
    let missing = Path::new("/nonexistent/clearml.conf");
    let err = hocon::parse_file(missing, &no_env).expect_err("missing file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/clearml.conf: cannot read"),
        "{err}"
    );
}

#[test]
fn merge_follows_pyhocon_merge_configs() {
    let mut base = json!({"agent": {"a": 1, "nested": {"x": 1}, "list": [1]}, "keep": true});
    hocon::merge(
        &mut base,
        json!({"agent": {"nested": {"y": 2}, "list": [2], "a": {"now": "object"}}, "new": null}),
    );
    assert_eq!(
        base,
        json!({"agent": {"a": {"now": "object"}, "nested": {"x": 1, "y": 2}, "list": [2]}, "keep": true, "new": null})
    );
    let keys: Vec<&String> = base["agent"].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["a", "nested", "list"]);
    let mut scalar = json!(1);
    hocon::merge(&mut scalar, json!({"b": 2}));
    assert_eq!(scalar, json!({"b": 2}));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let err = parse_err(&"[".repeat(100_000));
    assert!(err.contains("nested more than"), "{err}");
    let err = parse_err(&"a {".repeat(100_000));
    assert!(err.contains("nested more than"), "{err}");
    let fine = format!("{}1{}", "[".repeat(50), "]".repeat(50));
    assert!(parse(&fine).is_ok());
}

fn fixture_texts() -> Vec<String> {
    conf_fixtures()
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("fixture"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n\u{e9}]{0,80}") {
        let _ = parse(&text);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..64,
        cut in 0usize..4096,
        len in 0usize..16,
        insert in "[\\[\\]{}\"$?:=+#/,\n\\\\ a.]{0,6}",
    ) {
        let texts = fixture_texts();
        let text = &texts[which % texts.len()];
        let chars: Vec<char> = text.chars().collect();
        let at = cut % (chars.len() + 1);
        let end = (at + len).min(chars.len());
        let mutated: String = chars[..at].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        let _ = parse(&mutated);
    }
}
