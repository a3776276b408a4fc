//! The `clearml-test-server` command: first stdout line is the URL, it serves, and SIGTERM
//! stops it cleanly. (Kept in this crate: only here is the binary's path known to cargo.)

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(url: &str, path: &str) -> String {
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn prints_the_url_first_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("clearml-test-server-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clearml-test-server"))
        .args(["--port", "0", "--db"])
        .arg(dir.join("db.sqlite"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim_end().to_string();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    let reply = get(&url, "/debug.ping");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("server: clearml"),
        "{reply}"
    );
    assert!(reply.contains("\"msg\":\"ClearML server\""), "{reply}");
    let unauthorized = get(&url, "/tasks.get_all");
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "a clean stop exits 0");
    assert!(dir.join("db.sqlite").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_documents_the_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_clearml-test-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for text in [
        "8008",
        "127.0.0.1",
        "test-access-key",
        "test-secret-key",
        "--db",
    ] {
        assert!(help.contains(text), "--help lacks {text}:\n{help}");
    }
}
