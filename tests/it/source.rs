//! Integration tests: source (git clone, vcs cache, checkout, diffs, literal scripts, credentials)
//! against real repositories made by the tests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clearml_agent::exec::git::{GitOptions, ScriptInfo, SourceError, SourceLayout, prepare_source};

use crate::context::git;

fn env() -> HashMap<String, String> {
    std::env::vars().collect()
}

struct Origin {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    /// main: c1 (a.py v1, tag v1) -> c2 (a.py v2); feature: c1 -> c3 (b.py)
    c1: String,
    c2: String,
    c3: String,
}

fn commit_file(repo: &Path, name: &str, text: &str, msg: &str) -> String {
    fs::write(repo.join(name), text).expect("write");
    git(repo, &["add", name]);
    git(repo, &["commit", "-q", "-m", msg]);
    git(repo, &["rev-parse", "HEAD"])
}

fn origin() -> Origin {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("origin");
    fs::create_dir(&path).expect("mkdir");
    git(&path, &["init", "-q", "-b", "main"]);
    let c1 = commit_file(&path, "a.py", "print('v1')\n", "one");
    git(&path, &["tag", "v1"]);
    let c2 = commit_file(&path, "a.py", "print('v2')\n", "two");
    git(&path, &["checkout", "-q", "-b", "feature", &c1]);
    let c3 = commit_file(&path, "b.py", "print('feature')\n", "three");
    git(&path, &["checkout", "-q", "main"]);
    Origin {
        _tmp: tmp,
        path,
        c1,
        c2,
        c3,
    }
}

struct Run {
    result: Result<SourceLayout, SourceError>,
    log: Vec<String>,
}

fn run(script: &ScriptInfo, venv: &Path, opts: &GitOptions) -> Run {
    let lines = RefCell::new(Vec::new());
    let log = |l: &str| lines.borrow_mut().push(l.to_string());
    let result = prepare_source(
        script,
        &venv.join("task_repository"),
        &venv.join("code"),
        opts,
        &env(),
        &log,
    );
    Run {
        result,
        log: lines.into_inner(),
    }
}

fn script(repo: &Path) -> ScriptInfo {
    ScriptInfo {
        repository: repo.to_string_lossy().into_owned(),
        entry_point: "a.py".into(),
        binary: "python3".into(),
        ..ScriptInfo::default()
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn clone_without_branch_checks_out_origin_main() {
    let o = origin();
    let venv = tempfile::tempdir().expect("tempdir");
    let r = run(&script(&o.path), venv.path(), &GitOptions::default());
    let layout = r.result.expect("prepare_source");
    let root = layout.repo_root.clone().expect("repo root");
    assert_eq!(root, venv.path().join("task_repository").join("origin"));
    assert_eq!(layout.commit.as_deref(), Some(o.c2.as_str()));
    assert_eq!(read(&root.join("a.py")), "print('v2')\n");
    assert_eq!(layout.script_dir, root.join("."));
    assert_eq!(layout.working_dir, ".");
    assert!(r.log.iter().any(|l| l == "type: git"), "{:?}", r.log);
    // origin/master does not exist, so the fallback to origin/main is what worked
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("checkout --force origin/main --")),
        "{:?}",
        r.log
    );
}

#[test]
fn clone_at_branch_tag_and_commit() {
    let o = origin();
    let venv = tempfile::tempdir().expect("tempdir");

    let mut s = script(&o.path);
    s.branch = "feature".into();
    s.entry_point = "b.py".into();
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("branch");
    assert_eq!(layout.commit.as_deref(), Some(o.c3.as_str()));
    assert!(layout.script_file.as_deref().is_some_and(Path::is_file));

    let mut s = script(&o.path);
    s.tag = "v1".into();
    s.branch = "feature".into(); // the tag wins over the branch
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("tag");
    assert_eq!(layout.commit.as_deref(), Some(o.c1.as_str()));
    assert_eq!(
        read(&layout.repo_root.expect("root").join("a.py")),
        "print('v1')\n"
    );

    let mut s = script(&o.path);
    s.version_num = o.c1.clone();
    s.tag = "does-not-exist".into(); // the commit wins over the tag
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("commit");
    assert_eq!(layout.commit.as_deref(), Some(o.c1.as_str()));
}

#[test]
fn entry_point_with_working_dir_suffix() {
    let o = origin();
    fs::create_dir(o.path.join("sub")).expect("mkdir");
    commit_file(&o.path, "sub/c.py", "print('c')\n", "sub");
    let venv = tempfile::tempdir().expect("tempdir");
    let mut s = script(&o.path);
    s.entry_point = "c.py --x 1:sub".into();
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("prepare");
    let root = layout.repo_root.expect("root");
    assert_eq!(layout.working_dir, "sub");
    assert_eq!(layout.entry_point, "c.py --x 1");
    assert_eq!(layout.script_dir, root.join("sub"));
    assert_eq!(layout.script_file, Some(root.join("sub").join("c.py")));
}

#[test]
fn vcs_cache_is_fetched_not_recloned() {
    let o = origin();
    let cache = tempfile::tempdir().expect("tempdir");
    let venv = tempfile::tempdir().expect("tempdir");
    let opts = GitOptions {
        vcs_cache: Some(cache.path().to_path_buf()),
        ..GitOptions::default()
    };
    let first = run(&script(&o.path), venv.path(), &opts);
    first.result.expect("first");
    assert!(
        first.log.iter().any(|l| l.starts_with("cloning: ")),
        "{:?}",
        first.log
    );

    // <vcs_cache>/<name>.<md5(url)>/<name>
    let entries: Vec<PathBuf> = fs::read_dir(cache.path())
        .expect("read cache")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("origin.") && name.len() == "origin.".len() + 32,
        "{name}"
    );
    let cached = entries[0].join("origin");
    let marker = cached.join(".git").join("clearml-test-marker");
    fs::write(&marker, "kept").expect("marker");

    let c4 = commit_file(&o.path, "a.py", "print('v3')\n", "four");
    let second = run(&script(&o.path), venv.path(), &opts);
    let layout = second.result.expect("second");
    assert!(marker.exists(), "the cache was re-cloned");
    assert!(
        second
            .log
            .iter()
            .any(|l| l.starts_with("Using cached repository")),
        "{:?}",
        second.log
    );
    assert!(
        !second.log.iter().any(|l| l.starts_with("cloning: ")),
        "{:?}",
        second.log
    );
    // the fetch brought the new commit
    assert_eq!(layout.commit.as_deref(), Some(c4.as_str()));
    assert_eq!(
        read(&layout.repo_root.expect("root").join("a.py")),
        "print('v3')\n"
    );
}

#[test]
fn cached_pinned_commit_is_not_fetched_again() {
    let o = origin();
    let cache = tempfile::tempdir().expect("tempdir");
    let venv = tempfile::tempdir().expect("tempdir");
    let opts = GitOptions {
        vcs_cache: Some(cache.path().to_path_buf()),
        ..GitOptions::default()
    };
    let pinned = ScriptInfo {
        version_num: o.c1.clone(),
        ..script(&o.path)
    };
    let first = run(&pinned, venv.path(), &opts);
    first.result.expect("first");

    // the remote goes away: a task pinned to a commit the cache holds still runs, without fetch
    let away = o.path.with_file_name("origin-git-away");
    fs::rename(o.path.join(".git"), &away).expect("hide the remote");
    let second = run(&pinned, venv.path(), &opts);
    let layout = second
        .result
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log.join("\n")));
    assert_eq!(layout.commit.as_deref(), Some(o.c1.as_str()));
    assert_eq!(
        read(&layout.repo_root.expect("root").join("a.py")),
        "print('v1')\n"
    );
    assert!(
        !second.log.iter().any(|l| l.starts_with("git fetch")),
        "{:?}",
        second.log
    );
    assert!(
        second
            .log
            .iter()
            .any(|l| l.contains("found in the vcs cache, skipping git fetch")),
        "{:?}",
        second.log
    );
    // no .gitmodules in the repository: no submodule update spawned
    assert!(
        !second.log.iter().any(|l| l.starts_with("git submodule")),
        "{:?}",
        second.log
    );

    // a branch (no pinned commit) still asks the remote, which now fails
    let by_branch = ScriptInfo {
        branch: "main".into(),
        ..script(&o.path)
    };
    let third = run(&by_branch, venv.path(), &opts);
    assert!(
        matches!(third.result, Err(SourceError::Fetch { .. })),
        "{:?}",
        third.log
    );
    assert!(third.log.iter().any(|l| l.starts_with("git fetch")));

    // a pinned commit the cache lacks is fetched: the remote is back with a new commit
    fs::rename(&away, o.path.join(".git")).expect("restore the remote");
    let c4 = commit_file(&o.path, "a.py", "print('v4')\n", "four");
    let fourth = run(
        &ScriptInfo {
            version_num: c4.clone(),
            ..script(&o.path)
        },
        venv.path(),
        &opts,
    );
    let layout = fourth.result.expect("fourth");
    assert_eq!(layout.commit.as_deref(), Some(c4.as_str()));
    assert!(fourth.log.iter().any(|l| l.starts_with("git fetch")));
}

#[test]
fn diff_is_applied() {
    let o = origin();
    let scratch = tempfile::tempdir().expect("tempdir");
    git(
        scratch.path(),
        &["clone", "-q", &o.path.to_string_lossy(), "w"],
    );
    let work = scratch.path().join("w");
    fs::write(work.join("a.py"), "print('v2')\nprint('local change')\n").expect("write");
    fs::write(work.join("new.py"), "print('new')\n").expect("write");
    git(&work, &["add", "-N", "new.py"]);
    let diff = git(&work, &["diff"]);
    assert!(diff.starts_with("diff "));

    let venv = tempfile::tempdir().expect("tempdir");
    let mut s = script(&o.path);
    s.diff = diff;
    let r = run(&s, venv.path(), &GitOptions::default());
    let root = r.result.expect("prepare").repo_root.expect("root");
    assert_eq!(
        read(&root.join("a.py")),
        "print('v2')\nprint('local change')\n"
    );
    assert_eq!(read(&root.join("new.py")), "print('new')\n");
    assert!(
        r.log
            .iter()
            .any(|l| l == "successfully applied uncommitted changes"),
        "{:?}",
        r.log
    );
}

#[test]
fn diff_that_does_not_apply_is_an_apply_error() {
    let o = origin();
    let venv = tempfile::tempdir().expect("tempdir");
    let mut s = script(&o.path);
    s.diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-print('not there')\n+print('x')\n".into();
    let err = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect_err("must fail");
    assert!(matches!(err, SourceError::ApplyDiff { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("failed applying git diff: "), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn unknown_commit_is_a_checkout_error() {
    let o = origin();
    let venv = tempfile::tempdir().expect("tempdir");
    let mut s = script(&o.path);
    s.version_num = "0123456789abcdef0123456789abcdef01234567".into();
    let err = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect_err("must fail");
    match &err {
        SourceError::Checkout { rev, .. } => {
            assert_eq!(rev, "0123456789abcdef0123456789abcdef01234567")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_repository_is_a_clone_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let venv = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    for cache in [None, Some(tmp.path().join("cache"))] {
        let opts = GitOptions {
            vcs_cache: cache,
            ..GitOptions::default()
        };
        let err = run(&script(&missing), venv.path(), &opts)
            .result
            .expect_err("must fail");
        assert!(matches!(err, SourceError::Clone { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}

#[test]
fn literal_script_without_repository_goes_to_code_dir() {
    let venv = tempfile::tempdir().expect("tempdir");
    let s = ScriptInfo {
        diff: "print('literal')\n".into(),
        binary: "python3".into(),
        ..ScriptInfo::default()
    };
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("literal");
    let code = venv.path().join("code");
    assert_eq!(layout.script_dir, code);
    assert!(layout.repo_root.is_none());
    let file = code.join("untitled.py");
    assert_eq!(read(&file), "print('literal')\n");
    assert_eq!(layout.entry_point, file.to_string_lossy());

    let bash = ScriptInfo {
        diff: "echo hi\n".into(),
        binary: "bash".into(),
        ..ScriptInfo::default()
    };
    let layout = run(&bash, venv.path(), &GitOptions::default())
        .result
        .expect("bash literal");
    assert_eq!(layout.script_file, Some(code.join("untitled.sh")));
}

#[test]
fn literal_script_with_repository_goes_to_working_dir() {
    let o = origin();
    let venv = tempfile::tempdir().expect("tempdir");
    let mut s = script(&o.path);
    s.entry_point = "run.py".into();
    s.working_dir = "tools".into();
    s.diff = "print('in repo')\n".into();
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("literal");
    let root = layout.repo_root.expect("root");
    assert_eq!(layout.script_dir, root.join("tools"));
    assert_eq!(
        read(&root.join("tools").join("run.py")),
        "print('in repo')\n"
    );
}

/// The SDK's `Task.init` two-liner moves below `__future__` imports (read and rewritten beneath
/// the task's folder, without following links).
#[test]
fn task_init_lines_move_below_future_imports() {
    let venv = tempfile::tempdir().expect("tempdir");
    let s = ScriptInfo {
        diff:
            "from clearml import Task\nTask.init()\nfrom __future__ import annotations\nprint(1)\n"
                .into(),
        entry_point: "x.py".into(),
        binary: "python3".into(),
        ..ScriptInfo::default()
    };
    let layout = run(&s, venv.path(), &GitOptions::default())
        .result
        .expect("literal");
    assert_eq!(
        read(&layout.script_file.expect("file")),
        "from __future__ import annotations\nfrom clearml import Task\nTask.init()\nprint(1)\n"
    );
}

#[test]
fn nothing_to_run_warns_and_uses_code_dir() {
    let venv = tempfile::tempdir().expect("tempdir");
    let r = run(&ScriptInfo::default(), venv.path(), &GitOptions::default());
    let layout = r.result.expect("prepare");
    assert_eq!(layout.script_dir, venv.path().join("code"));
    assert!(layout.script_dir.is_dir());
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("without repository or literal script")),
        "{:?}",
        r.log
    );
}

/// A tiny HTTP endpoint that always asks for Basic auth and records the Authorization headers.
fn auth_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.trim().is_empty() {
                    break;
                }
                if line.to_lowercase().starts_with("authorization:") {
                    record.lock().expect("lock").push(line.trim().to_string());
                }
                line.clear();
            }
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

#[test]
fn credentials_go_through_askpass_and_never_reach_the_log() {
    use base64::Engine;
    let (port, seen) = auth_server();
    let venv = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = GitOptions {
        git_user: Some("alice".into()),
        git_pass: Some("s3cr3t-Pa55".into()),
        vcs_cache: Some(cache.path().to_path_buf()),
        ..GitOptions::default()
    };
    let mut s = script(Path::new("/unused"));
    s.repository = format!("http://127.0.0.1:{port}/org/repo.git");
    let r = run(&s, venv.path(), &opts);
    let err = r.result.expect_err("the server refuses everyone");
    assert!(matches!(err, SourceError::Clone { .. }), "{err:?}");

    // git asked our askpass script and sent exactly the configured credentials
    let expected = base64::engine::general_purpose::STANDARD.encode("alice:s3cr3t-Pa55");
    let headers = seen.lock().expect("lock").clone();
    assert!(
        headers.iter().any(|h| h.ends_with(&expected)),
        "{headers:?}"
    );

    let all = format!("{}\n{err}", r.log.join("\n"));
    assert!(!all.contains("s3cr3t-Pa55"), "{all}");
    assert!(
        all.contains(&format!("http://127.0.0.1:{port}/org/repo.git")),
        "{all}"
    );

    // a password embedded in the task's URL is scrubbed too
    s.repository = format!("http://bob:in-url-pw@127.0.0.1:{port}/org/repo.git");
    let r = run(&s, venv.path(), &GitOptions::default());
    let err = r.result.expect_err("refused");
    let all = format!("{}\n{err}", r.log.join("\n"));
    assert!(!all.contains("in-url-pw"), "{all}");
    let expected = base64::engine::general_purpose::STANDARD.encode("bob:in-url-pw");
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .any(|h| h.ends_with(&expected))
    );
}
