//! Integration tests: venv (interpreter search, real venvs, pip and uv installs from PyPI, the
//! venv cache).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clearml_agent::exec::requirements::{Requirements, find_repo_requirements};
use clearml_agent::exec::venv::{
    BuiltEnv, EnvError, EnvOptions, PackageManagerKind, PythonInfo, PythonOptions,
    VenvCacheOptions, build_env, find_python, venv_dir,
};

fn env() -> HashMap<String, String> {
    std::env::vars().collect()
}

fn python() -> PythonInfo {
    find_python(None, &PythonOptions::default(), &env(), &|_| {}).expect("a python3 on PATH")
}

fn pip_reqs(text: &str) -> Requirements {
    Requirements {
        pip: Some(text.to_string()),
        ..Requirements::default()
    }
}

fn build(
    reqs: &Requirements,
    files: &[PathBuf],
    opts: &EnvOptions,
) -> (Result<BuiltEnv, EnvError>, Vec<String>) {
    let lines = RefCell::new(Vec::new());
    let log = |l: &str| lines.borrow_mut().push(l.to_string());
    let res = build_env(&python(), reqs, files, opts, &env(), &log);
    (res, lines.into_inner())
}

fn install_lines(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| {
            l.contains(" -m pip --disable-pip-version-check install") || l.contains(" pip install ")
        })
        .collect()
}

fn run_python(python: &Path, code: &str) -> String {
    let out = Command::new(python)
        .args(["-c", code])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn find_python_by_version_and_fallback() {
    let log = RefCell::new(Vec::<String>::new());
    let logf = |l: &str| log.borrow_mut().push(l.to_string());
    let p = find_python(Some("3"), &PythonOptions::default(), &env(), &logf).expect("python3");
    assert_eq!(p.version.0, 3);
    let exact = p.major_minor();
    let again = find_python(Some(&exact), &PythonOptions::default(), &env(), &logf).expect("exact");
    assert_eq!(again.major_minor(), exact);
    assert_eq!(again.name, format!("python{exact}"));

    // a version that does not exist falls back to the configured default, with a warning
    log.borrow_mut().clear();
    let opts = PythonOptions {
        default_python: Some(exact.clone()),
        ..PythonOptions::default()
    };
    let p = find_python(Some("2.1"), &opts, &env(), &logf).expect("fallback");
    assert_eq!(p.major_minor(), exact);
    assert!(
        log.borrow()
            .iter()
            .any(|l| l.to_lowercase().contains("warning")),
        "{:?}",
        log.borrow()
    );

    // ignoring the task's version goes straight to the default
    let opts = PythonOptions {
        default_python: Some(exact.clone()),
        ignore_requested_python_version: true,
        ..PythonOptions::default()
    };
    assert_eq!(
        find_python(Some("2.1"), &opts, &env(), &logf)
            .expect("ignored")
            .major_minor(),
        exact
    );

    // an explicit interpreter path that does not exist is a clear error
    let opts = PythonOptions {
        python_binary: Some("/nonexistent/bin/python3.99".into()),
        ..PythonOptions::default()
    };
    let err = find_python(None, &opts, &env(), &logf).expect_err("missing");
    assert!(matches!(err, EnvError::PythonNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/bin/python3.99"),
        "{err}"
    );
}

#[test]
fn repo_requirements_are_found_root_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fs::create_dir_all(root.join("a/b")).expect("mkdir");
    fs::write(root.join("requirements.txt"), "six\n").expect("write");
    fs::write(root.join("a/b/requirements.txt"), "six\n").expect("write");
    let found = find_repo_requirements(root, "a", "b/train.py --epochs 3");
    assert_eq!(
        found,
        vec![
            root.join("requirements.txt"),
            root.join("a/b/requirements.txt")
        ]
    );
    assert!(find_repo_requirements(&root.join("a"), "", "x.py").is_empty());
}

#[test]
fn pip_env_is_installed_frozen_and_then_taken_from_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: tmp.path().join("venvs-cache"),
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(30),
        }),
        ..EnvOptions::default()
    };
    let reqs = pip_reqs("six==1.16.0\nsetuptools\n");

    let (first, log) = build(&reqs, &[], &opts);
    let first = first.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    // setuptools is a priority package: installed on its own before the main set
    let installs = install_lines(&log);
    let priority = installs
        .iter()
        .position(|l| l.contains(" install setuptools"));
    let main = installs.iter().position(|l| l.contains(" install -r "));
    assert!(priority.is_some() && priority < main, "{installs:?}");
    assert!(!first.cache_hit);
    assert_eq!(first.venv, opts.venvs_dir.join(python().major_minor()));
    assert!(
        first
            .frozen
            .as_deref()
            .is_some_and(|f| f.lines().any(|l| l == "six==1.16.0")),
        "{:?}",
        first.frozen
    );
    assert!(!install_lines(&log).is_empty(), "{log:?}");
    let entry = first.cache_entry.clone().expect("stored in the cache");
    assert!(entry.join("bin").is_dir());
    assert_eq!(
        run_python(&first.python, "import six; print(six.__version__)"),
        "1.16.0"
    );

    // the venv is gone, the same requirements come back from the cache without any install
    fs::remove_dir_all(&first.venv).expect("remove venv");
    let (second, log) = build(&reqs, &[], &opts);
    let second = second.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(second.cache_hit, "{log:?}");
    assert_eq!(second.cache_entry.as_deref(), Some(entry.as_path()));
    assert!(
        install_lines(&log).is_empty(),
        "pip install ran on a cache hit: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("::: Using Cached environment")),
        "{log:?}"
    );
    assert_eq!(
        run_python(&second.python, "import six; print(six.__version__)"),
        "1.16.0"
    );
    assert_eq!(second.frozen, first.frozen);
}

#[test]
fn unknown_requirement_fails_with_pips_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        ..EnvOptions::default()
    };
    let (res, log) = build(
        &pip_reqs("clearml-agent-rs-no-such-package-4242==0.0.1\n"),
        &[],
        &opts,
    );
    let err = res.expect_err("must fail");
    assert!(
        matches!(err, EnvError::InstallRequirements { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("clearml-agent-rs-no-such-package-4242"),
        "{text}"
    );
    assert!(
        text.contains("No matching distribution") || text.contains("Could not find a version"),
        "{text}\n{}",
        log.join("\n")
    );
}

/// uv from `CLEARML_TEST_UV` when set; otherwise the agent's own lookup (PATH, then a pip
/// install into the side venv) is exercised.
fn uv_binary() -> Option<PathBuf> {
    std::env::var("CLEARML_TEST_UV").ok().map(PathBuf::from)
}

#[test]
fn uv_env_installs_repo_requirements() {
    let uv = uv_binary();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    fs::write(repo.join("requirements.txt"), "six==1.16.0\n").expect("write");
    let files = find_repo_requirements(&repo, "", "main.py");
    let opts = EnvOptions {
        manager: PackageManagerKind::Uv,
        uv_binary: uv,
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: tmp.path().join("venvs-cache"),
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(30),
        }),
        ..EnvOptions::default()
    };
    let (res, log) = build(&Requirements::default(), &files, &opts);
    let built = res.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(
        log.iter()
            .any(|l| l.contains(" venv --allow-existing --python ")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains(" pip install --python ")),
        "{log:?}"
    );
    assert!(
        built
            .frozen
            .as_deref()
            .is_some_and(|f| f.lines().any(|l| l == "six==1.16.0")),
        "{:?}",
        built.frozen
    );
    assert_eq!(
        run_python(&built.python, "import six; print(six.__version__)"),
        "1.16.0"
    );
    // like the Python agent, uv environments are not put in the venv cache
    assert!(built.cache_entry.is_none());
}

#[test]
fn cache_hit_reinstalls_local_packages_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = tmp.path().join("localpkg");
    fs::create_dir_all(&pkg).expect("mkdir");
    fs::write(
        pkg.join("setup.py"),
        "from setuptools import setup\nsetup(name='localpkg', version='0.1', py_modules=['localmod'])\n",
    )
    .expect("write");
    fs::write(pkg.join("localmod.py"), "VALUE = 1\n").expect("write");
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: tmp.path().join("venvs-cache"),
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(30),
        }),
        install_cwd: Some(tmp.path().to_path_buf()),
        ..EnvOptions::default()
    };
    // a path relative to the install directory (the repository copy in real runs)
    let reqs = pip_reqs("./localpkg\n");
    let (first, log) = build(&reqs, &[], &opts);
    let first = first.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(
        run_python(&first.python, "import localmod; print(localmod.VALUE)"),
        "1"
    );

    fs::write(pkg.join("localmod.py"), "VALUE = 2\n").expect("write");
    fs::remove_dir_all(&first.venv).expect("remove venv");
    let (second, log) = build(&reqs, &[], &opts);
    let second = second.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(second.cache_hit, "{log:?}");
    assert!(
        log.iter().any(|l| l == "reinstalling git / local packages"),
        "{log:?}"
    );
    // only the local package was installed again, not pip nor the rest of the set
    let installs = install_lines(&log);
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert_eq!(
        run_python(&second.python, "import localmod; print(localmod.VALUE)"),
        "2"
    );
}

#[test]
fn uv_is_installed_into_a_side_venv_when_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // a PATH without any `uv`, so the agent has to bootstrap it from PyPI
    let mut env = env();
    let path = env.get("PATH").cloned().unwrap_or_default();
    let stripped: Vec<&str> = path
        .split(':')
        .filter(|d| !Path::new(d).join("uv").exists())
        .collect();
    env.insert("PATH".into(), stripped.join(":"));
    let opts = EnvOptions {
        manager: PackageManagerKind::Uv,
        venvs_dir: tmp.path().join("venvs-builds"),
        ..EnvOptions::default()
    };
    // The task's repository is cloned into the venv folder before the venv exists.
    let py = python();
    fs::create_dir_all(
        venv_dir(&opts.venvs_dir, &py)
            .join("task_repository")
            .join("repo"),
    )
    .expect("mkdir");
    let lines = RefCell::new(Vec::new());
    let log = |l: &str| lines.borrow_mut().push(l.to_string());
    let res = build_env(&py, &pip_reqs("six==1.16.0\n"), &[], &opts, &env, &log);
    let log = lines.into_inner();
    let built = res.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    let side_uv = PathBuf::from(format!("{}_uv", built.venv.display()))
        .join("bin")
        .join("uv");
    assert!(side_uv.is_file(), "{log:?}");
    // uv itself went in with the interpreter's pip, into a venv without a pip of its own
    assert!(
        log.iter()
            .any(|l| l.contains(" -m venv --without-pip ") && l.ends_with("_uv")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains(" -m pip --python ")),
        "{log:?}"
    );
    // and uv created the task's venv beside the cloned repository (no fallback to venv)
    let uv_venv = format!("{} venv --allow-existing --python ", side_uv.display());
    assert!(log.iter().any(|l| l.starts_with(&uv_venv)), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains("reverting to VirtualEnv")),
        "{log:?}"
    );
    assert_eq!(
        run_python(&built.python, "import six; print(six.__version__)"),
        "1.16.0"
    );
}

fn freeze_lines(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| l.ends_with(" freeze") || l.contains(" pip freeze "))
        .collect()
}

#[test]
fn warm_cache_hit_neither_copies_nor_freezes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: tmp.path().join("venvs-cache"),
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(30),
        }),
        ..EnvOptions::default()
    };
    let reqs = pip_reqs("six==1.16.0\n");
    let (first, log) = build(&reqs, &[], &opts);
    let first = first.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(freeze_lines(&log).len(), 1, "{log:?}");

    // the venv stays as the cache entry left it: the second task takes it as it is
    let marker = first.venv.join("clearml-test-marker");
    fs::write(&marker, "kept").expect("marker");
    let (second, log) = build(&reqs, &[], &opts);
    let second = second.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(second.cache_hit, "{log:?}");
    assert!(marker.exists(), "the cache entry was copied again: {log:?}");
    assert!(
        freeze_lines(&log).is_empty(),
        "froze on a warm hit: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("Adding venv into cache")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("not copied again")),
        "{log:?}"
    );
    assert_eq!(second.frozen, first.frozen);
    assert_eq!(
        run_python(&second.python, "import six; print(six.__version__)"),
        "1.16.0"
    );

    // a package appears in the venv (the task installed one): the next task gets the entry back
    let site = run_python(
        &second.python,
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    );
    fs::create_dir(Path::new(&site).join("extra-1.0.dist-info")).expect("fake package");
    let (third, log) = build(&reqs, &[], &opts);
    let third = third.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(third.cache_hit, "{log:?}");
    assert!(!marker.exists(), "a changed venv was not restored: {log:?}");
    assert!(!Path::new(&site).join("extra-1.0.dist-info").exists());
}

#[test]
fn unchanged_repository_venv_is_not_frozen_or_stored_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("repo");
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: tmp.path().join("venvs-cache"),
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(30),
        }),
        install_cwd: Some(repo.clone()),
        ..EnvOptions::default()
    };
    // a repository task with no task requirements: no cache key to look up, the repository's
    // requirements.txt installed (already satisfied the second time), a freeze to record
    let none = Requirements::default();
    let files = vec![repo.join("requirements.txt")];
    fs::write(&files[0], "six==1.16.0\n").expect("requirements.txt");
    let (first, log) = build(&none, &files, &opts);
    let first = first.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(freeze_lines(&log).len(), 1, "{log:?}");
    let entry = first.cache_entry.clone().expect("stored");

    let (second, log) = build(&none, &files, &opts);
    let second = second.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(
        freeze_lines(&log).is_empty(),
        "froze an unchanged venv: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("Adding venv into cache")),
        "{log:?}"
    );
    assert_eq!(second.cache_entry.as_deref(), Some(entry.as_path()));
    assert_eq!(second.frozen, first.frozen);

    // a new package in the venv: frozen again
    let site = run_python(
        &second.python,
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    );
    fs::create_dir(Path::new(&site).join("extra-1.0.dist-info")).expect("fake package");
    let (_third, log) = build(&none, &files, &opts);
    assert_eq!(freeze_lines(&log).len(), 1, "{log:?}");
}

/// `agent.venvs_cache.lock_timeout`: a cache another agent holds locked is given up after that
/// long (the venv is built without it), as FolderCache does.
#[test]
fn a_locked_cache_is_given_up_after_the_lock_timeout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("venvs-cache");
    fs::create_dir_all(&cache).unwrap();
    // Another holder: an exclusive lock on the cache's lock file.
    let held = fs::File::create(cache.join(".clearml.lock")).unwrap();
    held.lock().unwrap();
    let opts = EnvOptions {
        venvs_dir: tmp.path().join("venvs-builds"),
        venvs_cache: Some(VenvCacheOptions {
            path: cache,
            max_entries: 10,
            free_space_threshold_gb: 0.0,
            lock_timeout: std::time::Duration::from_secs(1),
        }),
        ..EnvOptions::default()
    };
    let (built, log) = build(&pip_reqs("six==1.16.0\n"), &[], &opts);
    built.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(
        log.iter()
            .any(|l| l.contains("acquiring lock [timeout=1s]")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("WARNING: Could not lock cache folder")),
        "{log:?}"
    );
}

/// `agent.package_manager.pip_legacy_resolver`: the venv's pip matching a rule installs with the
/// legacy resolver; no rule, no flag.
#[test]
fn the_legacy_resolver_follows_the_configured_pip_versions() {
    for (rules, expected) in [(vec![">=1".to_string()], true), (Vec::new(), false)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = EnvOptions {
            venvs_dir: tmp.path().join("venvs-builds"),
            pip_legacy_resolver: rules.clone(),
            ..EnvOptions::default()
        };
        let (built, log) = build(&pip_reqs("six==1.16.0\n"), &[], &opts);
        built.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
        let flagged = install_lines(&log)
            .iter()
            .any(|l| l.contains("--use-deprecated=legacy-resolver"));
        assert_eq!(flagged, expected, "{rules:?}: {log:?}");
    }
}
