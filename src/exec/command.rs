//! Setup commands whose output belongs in the task's log: run with each line streamed to the
//! log as it comes, the last lines kept for the error message, and shown as one quoted line.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// What a streamed setup command did.
#[derive(Debug, Clone)]
pub(crate) struct StreamOutcome {
    pub success: bool,
    pub code: Option<i32>,
    /// The last lines of stdout+stderr in arrival order, for error messages.
    pub tail: Vec<String>,
}

impl StreamOutcome {
    /// One line describing the failure: the last non-empty output line (preferring `error`/`fatal`).
    pub(crate) fn failure_summary(&self) -> String {
        let lines: Vec<&String> = self.tail.iter().filter(|l| !l.trim().is_empty()).collect();
        let pick = lines
            .iter()
            .rev()
            .find(|l| {
                let l = l.to_lowercase();
                l.starts_with("error") || l.starts_with("fatal")
            })
            .or(lines.last())
            .map(|l| l.trim().to_string());
        match (pick, self.code) {
            (Some(l), _) => l,
            (None, Some(c)) => format!("exit code {c}"),
            (None, None) => "killed by a signal".into(),
        }
    }
}

const TAIL_LINES: usize = 30;

/// Runs `cmd`, sending each output line (stdout and stderr, as they arrive) to `log`.
/// `stdin` is written to the child when given, else the child's stdin is `/dev/null`.
pub(crate) fn run_streamed(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    log: &dyn Fn(&str),
) -> io::Result<StreamOutcome> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn()?;
    // Bounded: readers wait while the log callback is behind.
    let (tx, rx) = mpsc::sync_channel::<String>(64);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, tx.clone()));
    }
    drop(tx);
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let mut tail: Vec<String> = Vec::new();
    for line in rx {
        log(&line);
        tail.push(line);
        if tail.len() > TAIL_LINES {
            tail.remove(0);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let status = child.wait()?;
    Ok(StreamOutcome {
        success: status.success(),
        code: status.code(),
        tail,
    })
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    tx: mpsc::SyncSender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // A line is cut every MAX_EVENT_BYTES, as the task log cuts it: a program printing one
        // endless line (a package's build in a pip install) cannot grow the agent's memory.
        let mut reader = BufReader::new(pipe).take(0);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            reader.set_limit(super::logs::MAX_EVENT_BYTES as u64);
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']);
                    // keep only the last carriage-return segment (progress bars)
                    let line = line.rsplit('\r').next().unwrap_or(line).to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Joins a program and its arguments for display, single-quoting words that need it.
pub(crate) fn display_command(program: &Path, args: &[OsString]) -> String {
    let quote = |w: &str| {
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            w.to_string()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    let mut s = quote(&program.to_string_lossy());
    for a in args {
        s.push(' ');
        s.push_str(&quote(&a.to_string_lossy()));
    }
    s
}
