//! Shipping task output to the server as log events, with no line lost.
//!
//! Raw output bytes become lines (split on `\n`, UTF-8 with replacement, carriage returns and
//! backspaces handled as the Python agent does), lines become events of at most 64 KiB, events go
//! out in packets of at most 1 MiB through a [`LogSink`]. One background task ships: it sends as
//! soon as the previous send completed and lines are pending, retries with exponential backoff while
//! the server is down, and spills the backlog to a file (see [`super::spill`]) beyond a memory limit.
//! How events travel over HTTP is the sink's business, not this module's.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::spill::Spill;

/// Largest `msg` of one event, in bytes (clearml_agent/commands/events.py: Events.max_event_size,
/// which counts characters; bytes is the stricter bound).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Largest `events.add_batch` body, in bytes of JSON lines (Events.max_packet_size).
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// How long a pipeline dropped without [`LogPipeline::finish`] keeps trying to deliver its backlog.
const DROP_DRAIN: Duration = Duration::from_secs(60);

/// Raw task output handed to the pipeline and not yet split into lines, in bytes at most: a task
/// printing faster than the pipeline splits waits for it (its pipe, or the Docker log, holds the
/// rest) instead of growing the daemon's memory.
pub const MAX_UNSPLIT_BYTES: usize = 4 * 1024 * 1024;

/// One log event as `events.add_batch` takes it (`type: "log"` is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub task: String,
    pub level: String,
    pub worker: String,
    pub msg: String,
    pub timestamp_ms: i64,
}

impl LogEvent {
    /// An upper bound of this event's size as one JSON line, whatever the encoder escapes.
    pub fn encoded_len_bound(&self) -> usize {
        // {"type":"log","level":"","task":"","worker":"","msg":"","timestamp":} plus 20 digits.
        const OVERHEAD: usize = 96;
        OVERHEAD
            + escaped_len_bound(&self.level)
            + escaped_len_bound(&self.task)
            + escaped_len_bound(&self.worker)
            + escaped_len_bound(&self.msg)
    }
}

/// JSON string length bound: `\uXXXX` for controls and (ASCII-only encoders) every UTF-16 unit.
fn escaped_len_bound(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            ' '..='~' => 1,
            c if c.is_ascii() => 6,
            c => 6 * c.len_utf16(),
        })
        .sum()
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The server is unreachable or answered 5xx: the same events are sent again later.
    #[error("log server unavailable: {0}")]
    Retryable(String),
    /// The server refused these events: retrying cannot help, they are dropped.
    #[error("log events rejected: {0}")]
    Rejected(String),
}

/// Where log events go (the API client, or a test collector).
pub trait LogSink: Send + Sync + 'static {
    /// Delivers `events` in one request (at most [`MAX_PACKET_BYTES`] as JSON lines). Implement it
    /// as `async fn send(&self, events: &[LogEvent]) -> Result<(), SinkError>`.
    fn send(&self, events: &[LogEvent]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Log levels the agent uses for task logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warning => 2,
            LogLevel::Error => 3,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Self {
        match byte {
            1 => LogLevel::Info,
            2 => LogLevel::Warning,
            3 => LogLevel::Error,
            _ => LogLevel::Debug,
        }
    }
}

/// One processed line waiting to be shipped. `text` ends with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) timestamp_ms: i64,
    pub(crate) level: LogLevel,
    pub(crate) text: String,
}

/// Settings of one task's log pipeline.
pub struct LogConfig {
    pub task: String,
    pub worker: String,
    /// `agent.suppress_carriage_return`: keep only the last segment of a `\r`-rewritten line;
    /// false turns each `\r` into a line break.
    pub suppress_carriage_return: bool,
    /// A trailing partial line is shipped after it has been pending this long.
    pub flush_interval: Duration,
    /// Backlog held in memory before the rest goes to the spill file.
    pub memory_limit_bytes: usize,
    /// Backlog held in memory at most when no spill file can be written (a full disk): newer
    /// lines are dropped and counted, and a line saying how many takes their place.
    pub memory_cap_bytes: usize,
    /// Directory for the spill file.
    pub spill_dir: PathBuf,
    /// First retry delay after a failed send; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Processed lines are also written here (the daemon's stdout in `--foreground`).
    pub echo: Option<Box<dyn Write + Send>>,
    /// The largest request (`api.http.max_req_size`, at most [`MAX_PACKET_BYTES`]); an event
    /// bigger than that still goes alone.
    pub max_packet_bytes: usize,
    /// Put before every line of the task's output (a multi-node rank's `RANK n: `).
    pub output_prefix: Option<String>,
}

impl LogConfig {
    pub fn new(task: impl Into<String>, worker: impl Into<String>, spill_dir: PathBuf) -> Self {
        Self {
            task: task.into(),
            worker: worker.into(),
            suppress_carriage_return: true,
            flush_interval: Duration::from_secs(2),
            memory_limit_bytes: 8 * 1024 * 1024,
            memory_cap_bytes: 32 * 1024 * 1024,
            spill_dir,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            echo: None,
            max_packet_bytes: MAX_PACKET_BYTES,
            output_prefix: None,
        }
    }
}

/// What happened to the task's log lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Lines accepted into the pipeline.
    pub lines: u64,
    /// Lines the sink accepted.
    pub delivered_lines: u64,
    /// Lines in events the server rejected.
    pub rejected_lines: u64,
    /// Lines still pending when `finish` timed out.
    pub undelivered_lines: u64,
    /// Lines that went through the spill file.
    pub spilled_lines: u64,
    /// Lines dropped because neither memory (up to its cap) nor the spill file could hold them.
    pub dropped_lines: u64,
    /// Successful sends.
    pub requests: u64,
    /// Failed sends that were retried.
    pub retries: u64,
}

enum Input {
    /// Output bytes, with the budget they hold until they are split.
    Output(Vec<u8>, Option<OwnedSemaphorePermit>),
    Line(LogLevel, String),
    Finish(Duration, oneshot::Sender<()>),
}

/// The log pipeline of one task. Feed it with [`LogPipeline::push_output`], end it with
/// [`LogPipeline::finish`].
pub struct LogPipeline {
    tx: mpsc::UnboundedSender<Input>,
    task: JoinHandle<LogReport>,
    /// Bytes of task output that may wait unsplit (see [`MAX_UNSPLIT_BYTES`]).
    unsplit: Arc<Semaphore>,
}

impl LogPipeline {
    /// Starts the shipper task on the current tokio runtime.
    pub fn start<S: LogSink>(config: LogConfig, sink: Arc<S>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(Shipper::new(config, sink).run(rx));
        Self {
            tx,
            task,
            unsplit: Arc::new(Semaphore::new(MAX_UNSPLIT_BYTES)),
        }
    }

    /// Raw bytes of output the agent produced itself, small and bounded (DEBUG level).
    pub fn push_output(&self, bytes: Vec<u8>) {
        // The shipper only ends after `finish`, which consumes `self`.
        let _ = self.tx.send(Input::Output(bytes, None));
    }

    /// Raw bytes of the task's output (DEBUG level). Waits while [`MAX_UNSPLIT_BYTES`] of earlier
    /// output are not split yet, so a task printing without pause cannot grow the daemon's memory.
    pub async fn push_task_output(&self, bytes: Vec<u8>) {
        let want = u32::try_from(bytes.len().clamp(1, MAX_UNSPLIT_BYTES)).unwrap_or(u32::MAX);
        // The semaphore is never closed; without a permit the bytes still go, unbounded.
        let permit = Arc::clone(&self.unsplit)
            .acquire_many_owned(want)
            .await
            .ok();
        let _ = self.tx.send(Input::Output(bytes, permit));
    }

    /// An agent notice, shipped in order with the output (e.g. ERROR `User aborted: ...`). A
    /// pending partial output line is flushed first.
    pub fn push_line(&self, level: LogLevel, text: impl Into<String>) {
        let _ = self.tx.send(Input::Line(level, text.into()));
    }

    /// Flushes everything and waits up to `timeout` for the backlog to reach the server.
    pub async fn finish(self, timeout: Duration) -> LogReport {
        let (done_tx, done_rx) = oneshot::channel();
        let _ = self.tx.send(Input::Finish(timeout, done_tx));
        let _ = done_rx.await;
        drop(self.tx);
        match self.task.await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!("log shipper failed: {error}");
                LogReport::default()
            }
        }
    }
}

/// Splits raw bytes into processed lines (mirrors clearml_agent/commands/worker.py:
/// Worker._log_command_output._print_file, helper/console.py: decode_binary_lines and
/// Worker.send_logs).
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    suppress_cr: bool,
}

impl LineSplitter {
    pub(crate) fn new(suppress_cr: bool) -> Self {
        Self {
            pending: Vec::new(),
            suppress_cr,
        }
    }

    pub(crate) fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Adds bytes; returns the complete lines. A line longer than [`MAX_EVENT_BYTES`] is cut.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            while end - start > MAX_EVENT_BYTES {
                let cut = utf8_cut(&self.pending[start..start + MAX_EVENT_BYTES]);
                self.emit(start, start + cut, false, out);
                start += cut;
            }
            self.emit(start, end, true, out);
            start = end + 1;
        }
        while self.pending.len() - start > MAX_EVENT_BYTES {
            let cut = utf8_cut(&self.pending[start..start + MAX_EVENT_BYTES]);
            self.emit(start, start + cut, false, out);
            start += cut;
        }
        self.pending.drain(..start);
    }

    /// Emits the pending partial line (as the Python agent does for a trailing partial line, with
    /// `\n` appended), keeping an incomplete UTF-8 sequence at its end for the next bytes.
    pub(crate) fn flush(&mut self, out: &mut Vec<String>, keep_incomplete_utf8: bool) {
        if self.pending.is_empty() {
            return;
        }
        let end = if keep_incomplete_utf8 {
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.len(),
                Err(error) if error.error_len().is_none() => error.valid_up_to(),
                Err(_) => self.pending.len(),
            }
        } else {
            self.pending.len()
        };
        if end == 0 {
            return;
        }
        self.emit(0, end, true, out);
        self.pending.drain(..end);
    }

    fn emit(&self, start: usize, end: usize, line_end: bool, out: &mut Vec<String>) {
        if let Some(line) = process_line(&self.pending[start..end], self.suppress_cr, line_end) {
            out.push(line);
        }
    }
}

/// Largest prefix length not splitting a UTF-8 character (falls back to the whole slice).
fn utf8_cut(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(error) if error.error_len().is_none() && error.valid_up_to() > 0 => error.valid_up_to(),
        _ => bytes.len(),
    }
}

/// One raw line (without its `\n`) to its shipped text, ending with `\n` when `line_end` (a piece
/// of an over-long line gets none, so the pieces join back into the line); `None` to skip it.
pub(crate) fn process_line(raw: &[u8], suppress_cr: bool, line_end: bool) -> Option<String> {
    let decoded = String::from_utf8_lossy(raw);
    let mut line = if suppress_cr {
        // helper/console.py: decode_binary_lines(overwrite_cr=True): the last segment, or the one
        // before it when the line ends with '\r'.
        let segments: Vec<&str> = decoded.split('\r').collect();
        let last = segments.last().copied().unwrap_or_default();
        if !last.is_empty() || segments.len() < 2 {
            last.to_string()
        } else {
            segments[segments.len() - 2].to_string()
        }
    } else {
        decoded.replace('\r', "\n")
    };
    // Worker.send_logs: backspaces look bad in the UI.
    line.retain(|c| c != '\u{8}');
    // Events.send_log_events skips a terminal reset; the Python check compares the line with its
    // '\n' already appended and so never matches: we compare the content, as intended there.
    if line == "\u{1b}[0m" {
        return None;
    }
    if line_end && !line.ends_with('\n') {
        line.push('\n');
    }
    (!line.is_empty()).then_some(line)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

type SendFuture = Pin<Box<dyn Future<Output = (Packet, Result<(), SinkError>)> + Send>>;

/// Events of one send, and how many lines they carry.
struct Packet {
    events: Vec<LogEvent>,
    lines: u64,
}

/// Text read back from the spill file at a time: small, since a flood of short lines holds many
/// times its text in memory once split into records.
const REFILL_BYTES: usize = 256 * 1024;

/// Memory one queued line holds: its text and its record (a flood of 2-byte lines would hold
/// 30 times its text if only the text were counted against the memory limit).
fn held(line: &Line) -> usize {
    line.text.len() + std::mem::size_of::<Line>() + 16
}

struct Shipper<S: LogSink> {
    sink: Arc<S>,
    task: String,
    worker: String,
    splitter: LineSplitter,
    flush_interval: Duration,
    memory_limit: usize,
    memory_cap: usize,
    spill_dir: PathBuf,
    initial_backoff: Duration,
    max_backoff: Duration,
    echo: Option<Box<dyn Write + Send>>,
    /// Largest packet, in encoded bytes.
    packet_limit: usize,
    output_prefix: Option<String>,
    /// Oldest lines, in memory.
    queue: VecDeque<Line>,
    queue_bytes: usize,
    /// Newer lines once the memory limit was hit; everything after the queue is here, in order.
    spill: Option<Spill>,
    spill_serial: u32,
    /// The spill file could not be created or written (a full disk): nothing more goes to it,
    /// and until the backlog has drained new lines beyond the memory cap are dropped.
    spill_failed: bool,
    /// Lines dropped since the last accepted one; a line saying how many is queued before the
    /// next accepted line (or after everything else, at the end).
    dropped_gap: u64,
    /// The "lines dropped" line of a gap at the end, sent after the whole backlog.
    trailer: Option<Line>,
    /// A packet that failed and is sent again, unchanged.
    retry: Option<Packet>,
    last_timestamp: i64,
    report: LogReport,
}

impl<S: LogSink> Shipper<S> {
    fn new(config: LogConfig, sink: Arc<S>) -> Self {
        Self {
            sink,
            task: config.task,
            worker: config.worker,
            splitter: LineSplitter::new(config.suppress_carriage_return),
            flush_interval: config.flush_interval,
            memory_limit: config.memory_limit_bytes.max(1),
            memory_cap: config
                .memory_cap_bytes
                .max(config.memory_limit_bytes)
                .max(1),
            spill_dir: config.spill_dir,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff.max(config.initial_backoff),
            echo: config.echo,
            packet_limit: config.max_packet_bytes.max(1),
            output_prefix: config.output_prefix,
            queue: VecDeque::new(),
            queue_bytes: 0,
            spill: None,
            spill_serial: 0,
            spill_failed: false,
            dropped_gap: 0,
            trailer: None,
            retry: None,
            last_timestamp: 0,
            report: LogReport::default(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) -> LogReport {
        let mut in_flight: Option<SendFuture> = None;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = self.initial_backoff;
        let mut partial_since: Option<Instant> = None;
        let mut finishing: Option<(Instant, Option<oneshot::Sender<()>>)> = None;
        let mut input_open = true;
        let send_notice = super::notice::FailureNotice::default();
        loop {
            if in_flight.is_none() && retry_at.is_none() {
                let packet = match self.retry.take() {
                    Some(packet) => Some(packet),
                    None => self.next_packet(),
                };
                if let Some(packet) = packet {
                    let sink = Arc::clone(&self.sink);
                    in_flight = Some(Box::pin(async move {
                        let result = sink.send(&packet.events).await;
                        (packet, result)
                    }));
                }
            }
            if in_flight.is_none() && (finishing.is_some() || !input_open) && self.is_empty() {
                break;
            }
            let partial_deadline = partial_since.map(|since| since + self.flush_interval);
            let finish_deadline = finishing.as_ref().map(|(deadline, _)| *deadline);
            tokio::select! {
                biased;
                (packet, result) = poll_opt(&mut in_flight) => {
                    in_flight = None;
                    match result {
                        Ok(()) => {
                            if send_notice.recovered() {
                                tracing::info!("task log lines are delivered again");
                            }
                            backoff = self.initial_backoff;
                            self.report.requests += 1;
                            self.report.delivered_lines += packet.lines;
                        }
                        Err(SinkError::Retryable(reason)) => {
                            if send_notice.first_failure() {
                                tracing::warn!("sending task log lines failed, kept and retried (said once until it works again): {reason}");
                            } else {
                                tracing::debug!("log send failed, retrying in {backoff:?}: {reason}");
                            }
                            self.report.retries += 1;
                            self.retry = Some(packet);
                            retry_at = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(self.max_backoff);
                        }
                        Err(SinkError::Rejected(reason)) => {
                            tracing::warn!("{} log lines dropped: {reason}", packet.lines);
                            self.report.rejected_lines += packet.lines;
                        }
                    }
                }
                input = rx.recv(), if input_open => match input {
                    Some(Input::Output(bytes, permit)) => {
                        let mut lines = Vec::new();
                        self.splitter.push(&bytes, &mut lines);
                        let lines = self.prefixed(lines);
                        self.accept(LogLevel::Debug, lines);
                        drop(permit);
                        partial_since = match (self.splitter.has_partial(), partial_since) {
                            (false, _) => None,
                            (true, None) => Some(Instant::now()),
                            (true, since) => since,
                        };
                    }
                    Some(Input::Line(level, text)) => {
                        self.flush_partial(false);
                        partial_since = None;
                        let line = if text.ends_with('\n') { text } else { text + "\n" };
                        self.accept(level, vec![line]);
                    }
                    Some(Input::Finish(timeout, done)) => {
                        self.flush_partial(false);
                        self.close_gap();
                        partial_since = None;
                        finishing = Some((Instant::now() + timeout, Some(done)));
                        // A failing server gets tried again right away once the task is done.
                        retry_at = retry_at.map(|at| at.min(Instant::now()));
                    }
                    None => {
                        // Dropped without `finish`: deliver what is left, within a bound.
                        input_open = false;
                        self.flush_partial(false);
                        self.close_gap();
                        partial_since = None;
                        if finishing.is_none() {
                            finishing = Some((Instant::now() + DROP_DRAIN, None));
                        }
                    }
                },
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => retry_at = None,
                () = tokio::time::sleep_until(partial_deadline.unwrap_or_else(Instant::now)), if partial_deadline.is_some() => {
                    self.flush_partial(true);
                    partial_since = self.splitter.has_partial().then(Instant::now);
                }
                () = tokio::time::sleep_until(finish_deadline.unwrap_or_else(Instant::now)), if finish_deadline.is_some() => {
                    if let Some(packet) = self.retry.take() {
                        self.report.undelivered_lines += packet.lines;
                    }
                    break;
                }
            }
        }
        drop(in_flight);
        self.report.undelivered_lines += self.pending_lines();
        if let Some(spill) = self.spill.take() {
            spill.remove();
        }
        if let Some((_, Some(done))) = finishing {
            let _ = done.send(());
        }
        self.report
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
            && self.spill.is_none()
            && self.retry.is_none()
            && self.trailer.is_none()
    }

    fn pending_lines(&self) -> u64 {
        self.queue.len() as u64
            + self.spill.as_ref().map_or(0, Spill::pending)
            + u64::from(self.trailer.is_some())
    }

    fn flush_partial(&mut self, keep_incomplete_utf8: bool) {
        let mut lines = Vec::new();
        self.splitter.flush(&mut lines, keep_incomplete_utf8);
        let lines = self.prefixed(lines);
        self.accept(LogLevel::Debug, lines);
    }

    /// The task's output lines with [`LogConfig::output_prefix`].
    fn prefixed(&self, lines: Vec<String>) -> Vec<String> {
        match &self.output_prefix {
            Some(prefix) => lines.into_iter().map(|l| format!("{prefix}{l}")).collect(),
            None => lines,
        }
    }

    /// Timestamps, echoes and queues processed lines (in memory, or in the spill file).
    fn accept(&mut self, level: LogLevel, texts: Vec<String>) {
        if texts.is_empty() {
            return;
        }
        let now = now_ms();
        if let Some(echo) = self.echo.as_mut() {
            for text in &texts {
                if let Err(error) = echo.write_all(text.as_bytes()) {
                    tracing::debug!("cannot echo task output: {error}");
                }
            }
            let _ = echo.flush();
        }
        for text in texts {
            self.report.lines += 1;
            let line = Line {
                timestamp_ms: now,
                level,
                text,
            };
            if self.spill.is_none()
                && !self.spill_failed
                && self.queue_bytes + held(&line) > self.memory_limit
            {
                self.spill_serial += 1;
                match Spill::create(&self.spill_dir, &self.task, self.spill_serial) {
                    Ok(spill) => self.spill = Some(spill),
                    Err(error) => {
                        tracing::warn!(
                            "cannot spill the log backlog to {}: {error}; keeping up to {} MiB in memory, newer lines are dropped and counted",
                            self.spill_dir.display(),
                            self.memory_cap >> 20
                        );
                        self.spill_failed = true;
                    }
                }
            }
            let kept = match self.spill.as_mut() {
                // Behind a spill file that can no longer be written nothing can be queued in
                // order until the file has drained.
                Some(_) if self.spill_failed => false,
                Some(spill) => match spill.append(&line) {
                    Ok(()) => {
                        self.report.spilled_lines += 1;
                        true
                    }
                    Err(error) => {
                        tracing::warn!(
                            "cannot write the log spill file: {error}; newer lines are dropped and counted until the backlog has drained"
                        );
                        self.spill_failed = true;
                        false
                    }
                },
                None if self.queue_bytes + held(&line) > self.memory_cap => false,
                None => {
                    self.push_gap_notice(now);
                    self.queue_bytes += held(&line);
                    self.queue.push_back(line);
                    true
                }
            };
            if !kept {
                self.dropped_gap += 1;
                self.report.dropped_lines += 1;
            }
        }
    }

    /// The line that stands for the lines dropped since the last kept one.
    fn gap_notice(&mut self, now: i64) -> Option<Line> {
        let n = std::mem::take(&mut self.dropped_gap);
        (n > 0).then(|| Line {
            timestamp_ms: now,
            level: LogLevel::Warning,
            text: format!(
                "clearml-agent: {n} log lines dropped: the server was away and the backlog could not be kept (no room for the spill file in {})\n",
                self.spill_dir.display()
            ),
        })
    }

    /// Queues the gap's notice before the next kept line.
    fn push_gap_notice(&mut self, now: i64) {
        if let Some(notice) = self.gap_notice(now) {
            self.queue_bytes += held(&notice);
            self.queue.push_back(notice);
        }
    }

    /// At the end: a gap not followed by any kept line is said after the whole backlog.
    fn close_gap(&mut self) {
        if let Some(notice) = self.gap_notice(now_ms()) {
            self.trailer = Some(notice);
        }
    }

    /// Moves spilled lines back into memory once the queue is empty.
    fn refill(&mut self) {
        if !self.queue.is_empty() {
            return;
        }
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        match spill.read_up_to(REFILL_BYTES) {
            Ok(lines) => {
                for line in lines {
                    self.queue_bytes += held(&line);
                    self.queue.push_back(line);
                }
            }
            Err(error) => {
                tracing::error!("cannot read the log spill file: {error}; its lines are lost");
                self.report.undelivered_lines += spill.pending();
                spill.discard();
            }
        }
        if spill.pending() == 0
            && let Some(spill) = self.spill.take()
        {
            spill.remove();
            // Drained: the next overflow tries a spill file again.
            self.spill_failed = false;
        }
    }

    /// Builds the next packet from the oldest lines: lines of one level concatenated into events
    /// of at most [`MAX_EVENT_BYTES`], events up to [`MAX_PACKET_BYTES`] (mirrors
    /// clearml_agent/commands/events.py: Events.send_log_events and Events.send_events).
    fn next_packet(&mut self) -> Option<Packet> {
        self.refill();
        if self.queue.is_empty()
            && self.spill.is_none()
            && let Some(trailer) = self.trailer.take()
        {
            self.queue_bytes += held(&trailer);
            self.queue.push_back(trailer);
        }
        let mut events: Vec<LogEvent> = Vec::new();
        let mut packet_bytes = 0usize;
        let mut lines = 0u64;
        // The event being filled, and its encoded size bound (kept incrementally: recomputing it
        // per line is quadratic).
        let mut current: Option<(LogEvent, usize)> = None;
        while let Some(front) = self.queue.front() {
            let level = front.level.as_str();
            let fits_current = current.as_ref().is_some_and(|(e, _)| {
                e.level == level && e.msg.len() + front.text.len() <= MAX_EVENT_BYTES
            });
            if fits_current {
                let text_bound = escaped_len_bound(&front.text);
                let grown = current.as_ref().map_or(0, |(_, bound)| bound + text_bound);
                if packet_bytes + grown + 1 > self.packet_limit {
                    break;
                }
                let Some(line) = self.queue.pop_front() else {
                    break;
                };
                self.queue_bytes -= held(&line);
                lines += 1;
                if let Some((event, bound)) = current.as_mut() {
                    event.msg.push_str(&line.text);
                    *bound += text_bound;
                }
                continue;
            }
            // The line starts a new event (several when it is over-long); it goes into this packet
            // only whole.
            let needed: usize = split_chars(&front.text, MAX_EVENT_BYTES)
                .iter()
                .map(|piece| self.event(level, piece, 0).encoded_len_bound() + 1)
                .sum();
            if let Some((event, bound)) = current.take() {
                packet_bytes += bound + 1;
                events.push(event);
            }
            if !events.is_empty() && packet_bytes + needed > self.packet_limit {
                break;
            }
            let Some(line) = self.queue.pop_front() else {
                break;
            };
            self.queue_bytes -= held(&line);
            lines += 1;
            let pieces = split_chars(&line.text, MAX_EVENT_BYTES);
            let count = pieces.len();
            for (index, piece) in pieces.into_iter().enumerate() {
                let timestamp = self.next_timestamp(line.timestamp_ms);
                let event = self.event(level, piece, timestamp);
                let bound = event.encoded_len_bound();
                if index + 1 < count {
                    packet_bytes += bound + 1;
                    events.push(event);
                } else {
                    current = Some((event, bound));
                }
            }
        }
        if let Some((event, _)) = current.take() {
            events.push(event);
        }
        (!events.is_empty()).then_some(Packet { events, lines })
    }

    fn event(&self, level: &str, msg: &str, timestamp_ms: i64) -> LogEvent {
        LogEvent {
            task: self.task.clone(),
            level: level.to_string(),
            worker: self.worker.clone(),
            msg: msg.to_string(),
            timestamp_ms,
        }
    }

    /// Capture time, kept strictly increasing so the server orders events as they were written.
    fn next_timestamp(&mut self, captured: i64) -> i64 {
        self.last_timestamp = captured.max(self.last_timestamp + 1);
        self.last_timestamp
    }
}

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
fn split_chars(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            break;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

async fn poll_opt(future: &mut Option<SendFuture>) -> (Packet, Result<(), SinkError>) {
    match future.as_mut() {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8], suppress_cr: bool) -> Vec<String> {
        let mut splitter = LineSplitter::new(suppress_cr);
        let mut out = Vec::new();
        splitter.push(bytes, &mut out);
        splitter.flush(&mut out, false);
        out
    }

    #[test]
    fn carriage_returns_follow_the_python_agent() {
        assert_eq!(lines(b"progress\r10%\r50%\r100%\n", true), vec!["100%\n"]);
        assert_eq!(lines(b"a\rb\r\n", true), vec!["b\n"]);
        assert_eq!(
            lines(b"progress\r10%\r100%\n", false),
            vec!["progress\n10%\n100%\n"]
        );
    }

    #[test]
    fn backspaces_and_terminal_resets_are_dropped() {
        assert_eq!(
            lines(b"ab\x08c\n\x1b[0m\nend", true),
            vec!["abc\n", "end\n"]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_and_split_characters_wait() {
        let mut splitter = LineSplitter::new(true);
        let mut out = Vec::new();
        splitter.push("é".as_bytes().get(..1).unwrap_or_default(), &mut out);
        splitter.flush(&mut out, true);
        assert!(out.is_empty());
        splitter.push(&"é\n".as_bytes()[1..], &mut out);
        assert_eq!(out, vec!["é\n"]);
        assert_eq!(lines(b"a\xffb\n", true), vec!["a\u{fffd}b\n"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(MAX_EVENT_BYTES * 2 + 10);
        let out = lines(format!("{long}\n").as_bytes(), true);
        assert_eq!(out.len(), 3);
        assert_eq!(out.concat(), format!("{long}\n"));
    }
}
