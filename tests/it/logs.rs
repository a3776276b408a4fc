//! Integration tests: logs.
//!
//! The log pipeline against a collecting sink (a fake server: the end-to-end path through the API
//! client is tested where both meet). Output comes from real processes where the volume matters.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clearml_agent::exec::logs::{
    LogConfig, LogEvent, LogLevel, LogPipeline, LogSink, MAX_EVENT_BYTES, MAX_PACKET_BYTES,
    SinkError,
};
use clearml_agent::exec::process::{ProcessSpec, TaskProcess};
use tokio::sync::Notify;

const FINISH: Duration = Duration::from_secs(120);

/// Collects what it is sent; can be down until it has seen the spill file, or reject its first call.
#[derive(Default)]
struct Collector {
    packets: Mutex<Vec<Vec<LogEvent>>>,
    calls: AtomicUsize,
    sent: Notify,
    /// When set: fail (retryable) until a non-empty file shows up in this directory.
    down_until_spill_in: Option<PathBuf>,
    spill_seen: AtomicBool,
    max_spill_bytes: AtomicU64,
    failures: AtomicUsize,
    reject_first: bool,
    /// When set: fail (retryable) while it holds true.
    down: Option<Arc<AtomicBool>>,
}

/// Bytes of the files under `dir` (the spill files live in a private folder inside it).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some(if meta.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        meta.len()
                    })
                })
                .sum()
        })
        .unwrap_or(0)
}

impl LogSink for Collector {
    async fn send(&self, events: &[LogEvent]) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.as_ref().is_some_and(|d| d.load(Ordering::SeqCst)) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::Retryable("server down".into()));
        }
        if let Some(dir) = &self.down_until_spill_in
            && !self.spill_seen.load(Ordering::SeqCst)
        {
            let bytes = dir_bytes(dir);
            self.max_spill_bytes.fetch_max(bytes, Ordering::SeqCst);
            if bytes > 0 {
                self.spill_seen.store(true, Ordering::SeqCst);
            }
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::Retryable("server down".into()));
        }
        let result = if self.reject_first && call == 0 {
            Err(SinkError::Rejected("bad request".into()))
        } else {
            self.packets.lock().expect("lock").push(events.to_vec());
            Ok(())
        };
        self.sent.notify_one();
        result
    }
}

impl Collector {
    fn events(&self) -> Vec<LogEvent> {
        self.packets.lock().expect("lock").concat()
    }

    fn text(&self) -> String {
        self.events().iter().map(|e| e.msg.as_str()).collect()
    }
}

fn config(dir: &Path) -> LogConfig {
    LogConfig::new("task-1", "worker-1", dir.to_path_buf())
}

/// Runs `program args` as a task and feeds its output to the pipeline.
async fn run_into(pipeline: &LogPipeline, program: &str, args: &[&str]) -> i32 {
    let mut spec = ProcessSpec::new(program, std::env::temp_dir());
    for arg in args {
        spec = spec.arg(*arg);
    }
    let mut process = TaskProcess::spawn(&spec).expect("spawn");
    let mut output = process.take_output().expect("output");
    while let Some(chunk) = output.next_chunk().await {
        pipeline.push_output(chunk);
    }
    process.wait().await.expect("wait")
}

/// Compares long texts, reporting where they first differ (not the whole texts).
fn assert_same_text(actual: &str, expected: &str) {
    if actual != expected {
        let at = actual
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(expected.len()));
        let context = |text: &str| {
            let start = at.saturating_sub(40);
            String::from_utf8_lossy(&text.as_bytes()[start..(at + 40).min(text.len())]).into_owned()
        };
        panic!(
            "texts differ at byte {at} (lengths {} vs {}): {:?} vs {:?}",
            actual.len(),
            expected.len(),
            context(actual),
            context(expected)
        );
    }
}

fn numbers(count: u32) -> String {
    (1..=count).map(|i| format!("{i}\n")).collect()
}

/// Each event as the JSON line `events.add_batch` carries.
fn json_line(event: &LogEvent) -> String {
    serde_json::json!({
        "type": "log",
        "level": event.level,
        "task": event.task,
        "worker": event.worker,
        "msg": event.msg,
        "timestamp": event.timestamp_ms,
    })
    .to_string()
}

#[tokio::test]
async fn a_hundred_thousand_lines_arrive_once_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let pipeline = LogPipeline::start(config(dir.path()), Arc::clone(&sink));
    assert_eq!(run_into(&pipeline, "seq", &["1", "100000"]).await, 0);
    let report = pipeline.finish(FINISH).await;

    assert_same_text(&sink.text(), &numbers(100_000));
    assert_eq!(report.lines, 100_000);
    assert_eq!(report.delivered_lines, 100_000);
    assert_eq!(report.undelivered_lines, 0);
    let events = sink.events();
    assert!(
        events
            .iter()
            .all(|e| e.level == "DEBUG" && e.task == "task-1" && e.worker == "worker-1")
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].timestamp_ms < w[1].timestamp_ms),
        "timestamps must increase"
    );
}

#[tokio::test]
async fn carriage_returns_collapse_to_the_last_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let pipeline = LogPipeline::start(config(dir.path()), Arc::clone(&sink));
    pipeline.push_output(b"progress\r10%\r50%\r100%\nnext\n".to_vec());
    pipeline.finish(FINISH).await;
    assert_eq!(sink.text(), "100%\nnext\n");

    let sink = Arc::new(Collector::default());
    let mut config = config(dir.path());
    config.suppress_carriage_return = false;
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    pipeline.push_output(b"progress\r10%\r50%\r100%\n".to_vec());
    pipeline.finish(FINISH).await;
    assert_eq!(sink.text(), "progress\n10%\n50%\n100%\n");
}

#[tokio::test]
async fn a_server_outage_spills_to_disk_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill_dir = dir.path().join("spill");
    let sink = Arc::new(Collector {
        down_until_spill_in: Some(spill_dir.clone()),
        ..Collector::default()
    });
    let mut config = config(&spill_dir);
    config.memory_limit_bytes = 16 * 1024;
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(20);
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    assert_eq!(run_into(&pipeline, "seq", &["1", "50000"]).await, 0);
    let report = pipeline.finish(FINISH).await;

    assert!(sink.failures.load(Ordering::SeqCst) > 0);
    assert!(sink.max_spill_bytes.load(Ordering::SeqCst) > 0);
    assert!(report.spilled_lines > 0, "{report:?}");
    assert!(report.retries > 0, "{report:?}");
    assert_same_text(&sink.text(), &numbers(50_000));
    assert_eq!(report.delivered_lines, 50_000);
    // The spill file is gone once its lines are delivered.
    assert_eq!(dir_bytes(&spill_dir), 0);
}

/// A tmpfs of `size` mounted on `dir` (root only: CI runs as root), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

/// The server is away and the disk under the spill file fills up: the task's output is still
/// read, memory stays bounded, the lines that fit nowhere are dropped and counted, and once the
/// server is back it gets every kept line in order followed by "N log lines dropped".
#[tokio::test]
async fn a_full_disk_during_an_outage_drops_lines_counted_and_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill_dir = dir.path().join("spill");
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let _disk = SmallDisk::mount(&spill_dir, "256k");
    let down = Arc::new(AtomicBool::new(true));
    let sink = Arc::new(Collector {
        down: Some(down.clone()),
        ..Collector::default()
    });
    let mut config = config(&spill_dir);
    config.memory_limit_bytes = 16 * 1024;
    config.memory_cap_bytes = 64 * 1024;
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(20);
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    let n = 200_000;
    assert_eq!(run_into(&pipeline, "seq", &["1", &n.to_string()]).await, 0);
    down.store(false, Ordering::SeqCst);
    let report = pipeline.finish(FINISH).await;

    assert!(report.spilled_lines > 0, "{report:?}");
    assert!(report.dropped_lines > 0, "{report:?}");
    let text = sink.text();
    let lines: Vec<&str> = text.lines().collect();
    let (notice, kept) = lines.split_last().expect("lines");
    let kept_n = kept.len();
    assert_eq!(
        kept.iter()
            .map(|l| l.parse::<usize>().unwrap())
            .collect::<Vec<_>>(),
        (1..=kept_n).collect::<Vec<_>>(),
        "the kept lines are the first ones, in order"
    );
    assert_eq!(report.dropped_lines as usize, n - kept_n, "{report:?}");
    assert!(
        notice.starts_with(&format!("clearml-agent: {} log lines dropped", n - kept_n)),
        "{notice}"
    );
    assert_eq!(report.undelivered_lines, 0, "{report:?}");
    assert_eq!(dir_bytes(&spill_dir), 0);
}

#[tokio::test]
async fn events_and_packets_respect_the_size_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let pipeline = LogPipeline::start(config(dir.path()), Arc::clone(&sink));
    let mut input = String::new();
    // Over-long lines, quote-heavy lines (twice as long in JSON) and non-ASCII lines.
    for i in 0..3 {
        input.push_str(&format!("{i}{}\n", "L".repeat(200 * 1024)));
    }
    for _ in 0..3000 {
        input.push_str(&format!("{}\n", "\"".repeat(1000)));
    }
    for _ in 0..2000 {
        input.push_str(&format!("{}\n", "é€".repeat(200)));
    }
    // Pushed in one go so that the pipeline has far more than one packet pending.
    pipeline.push_output(input.clone().into_bytes());
    let report = pipeline.finish(FINISH).await;

    assert_same_text(&sink.text(), &input);
    let packets = sink.packets.lock().expect("lock").clone();
    assert!(packets.len() > 3, "{} packets", packets.len());
    for packet in &packets {
        let body: usize = packet.iter().map(|e| json_line(e).len() + 1).sum();
        assert!(body <= MAX_PACKET_BYTES, "packet of {body} bytes");
        for event in packet {
            assert!(
                event.msg.len() <= MAX_EVENT_BYTES,
                "msg of {}",
                event.msg.len()
            );
        }
    }
    assert!(
        packets
            .iter()
            .flatten()
            .any(|e| e.msg.len() == MAX_EVENT_BYTES),
        "long lines fill whole events"
    );
    assert_eq!(report.undelivered_lines, 0);
}

#[tokio::test]
async fn a_partial_line_is_shipped_after_the_flush_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let mut config = config(dir.path());
    config.flush_interval = Duration::from_millis(50);
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    pipeline.push_output(b"50% ".to_vec());
    sink.sent.notified().await;
    assert_eq!(sink.text(), "50% \n");
    pipeline.push_output(b"done\nno newline".to_vec());
    let report = pipeline.finish(FINISH).await;
    assert_eq!(sink.text(), "50% \ndone\nno newline\n");
    assert_eq!(report.lines, 3);
}

#[tokio::test]
async fn notices_keep_their_place_and_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let pipeline = LogPipeline::start(config(dir.path()), Arc::clone(&sink));
    pipeline.push_output(b"working\nhalf a li".to_vec());
    pipeline.push_line(LogLevel::Error, "User aborted: stopping task (1) stopped");
    pipeline.push_output(b"\x1b[0m\nback\x08\x08ck\n".to_vec());
    pipeline.finish(FINISH).await;
    let events: Vec<(String, String)> = sink
        .events()
        .into_iter()
        .map(|e| (e.level, e.msg))
        .collect();
    let debug_before: String = events
        .iter()
        .take_while(|(level, _)| level == "DEBUG")
        .map(|(_, msg)| msg.as_str())
        .collect();
    assert_eq!(debug_before, "working\nhalf a li\n");
    let rest: Vec<&(String, String)> = events
        .iter()
        .skip_while(|(level, _)| level == "DEBUG")
        .collect();
    assert_eq!(
        rest[0],
        &(
            "ERROR".to_string(),
            "User aborted: stopping task (1) stopped\n".to_string()
        )
    );
    let debug_after: String = rest[1..].iter().map(|(_, msg)| msg.as_str()).collect();
    // The terminal reset line is skipped; backspaces are removed, not applied.
    assert_eq!(debug_after, "backck\n");
}

#[tokio::test]
async fn rejected_events_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector {
        reject_first: true,
        ..Collector::default()
    });
    let pipeline = LogPipeline::start(config(dir.path()), Arc::clone(&sink));
    pipeline.push_output(b"one\n".to_vec());
    sink.sent.notified().await;
    pipeline.push_output(b"two\n".to_vec());
    let report = pipeline.finish(FINISH).await;
    assert_eq!(sink.text(), "two\n");
    assert_eq!(report.rejected_lines, 1);
    assert_eq!(report.delivered_lines, 1);
}

#[tokio::test]
async fn finish_gives_up_after_its_timeout_when_the_server_stays_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The spill directory never gets a file (memory limit not reached): the server stays down.
    let sink = Arc::new(Collector {
        down_until_spill_in: Some(dir.path().join("never")),
        ..Collector::default()
    });
    let mut config = config(dir.path());
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    pipeline.push_output(b"a\nb\nc\n".to_vec());
    let report = pipeline.finish(Duration::from_millis(100)).await;
    assert_eq!(report.lines, 3);
    assert_eq!(report.delivered_lines, 0);
    assert_eq!(report.undelivered_lines, 3);
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn processed_lines_are_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let echo = SharedBuf::default();
    let mut config = config(dir.path());
    config.echo = Some(Box::new(echo.clone()));
    let pipeline = LogPipeline::start(config, Arc::clone(&sink));
    pipeline.push_output(b"first\nsecond\r2nd\n".to_vec());
    pipeline.finish(FINISH).await;
    let echoed = String::from_utf8(echo.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(echoed, "first\n2nd\n");
    assert_eq!(sink.text(), echoed);
}

/// `api.http.max_req_size` below the built-in packet size: every request holds at most that
/// many bytes (an event bigger than it still goes, alone).
#[tokio::test]
async fn packets_respect_a_smaller_max_request_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(Collector::default());
    let mut cfg = config(dir.path());
    cfg.max_packet_bytes = 4096;
    let pipeline = LogPipeline::start(cfg, Arc::clone(&sink));
    let mut input = String::new();
    for i in 0..400 {
        input.push_str(&format!("line {i} {}\n", "x".repeat(100)));
    }
    pipeline.push_output(input.clone().into_bytes());
    let report = pipeline.finish(FINISH).await;
    assert_same_text(&sink.text(), &input);
    let packets = sink.packets.lock().expect("lock").clone();
    assert!(packets.len() >= 10, "{} packets", packets.len());
    for packet in &packets {
        let body: usize = packet.iter().map(|e| json_line(e).len() + 1).sum();
        assert!(body <= 4096, "packet of {body} bytes");
    }
    assert_eq!(report.undelivered_lines, 0);
}
