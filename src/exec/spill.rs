//! The log backlog's overflow file: an append-only file of lines, read back in order.
//!
//! Record: timestamp (i64 LE), level (u8), text length (u32 LE), text (UTF-8). The file lives only
//! while it has unsent lines; nothing reads it across agent restarts.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::logs::{Line, LogLevel};

pub(crate) struct Spill {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Lines written and not yet read back.
    pending: u64,
    /// Whether the writer holds bytes the reader cannot see yet.
    dirty: bool,
}

impl Spill {
    /// Creates a new spill file in `dir` (named after the task, unique per `serial`).
    pub(crate) fn create(dir: &Path, task: &str, serial: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let safe: String = task
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!(
            "clearml-log-spill-{safe}-{}-{serial}.bin",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let reader = File::open(&path)?;
        Ok(Self {
            path,
            writer: BufWriter::new(file),
            reader: BufReader::new(reader),
            pending: 0,
            dirty: false,
        })
    }

    pub(crate) fn append(&mut self, line: &Line) -> std::io::Result<()> {
        let len = u32::try_from(line.text.len()).map_err(std::io::Error::other)?;
        self.writer.write_all(&line.timestamp_ms.to_le_bytes())?;
        self.writer.write_all(&[line.level.to_byte()])?;
        self.writer.write_all(&len.to_le_bytes())?;
        self.writer.write_all(line.text.as_bytes())?;
        self.pending += 1;
        self.dirty = true;
        Ok(())
    }

    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    /// Reads the oldest lines, about `max_bytes` of text at most (always at least one line).
    pub(crate) fn read_up_to(&mut self, max_bytes: usize) -> std::io::Result<Vec<Line>> {
        if self.dirty {
            self.writer.flush()?;
            self.dirty = false;
        }
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        while self.pending > 0 && (lines.is_empty() || bytes < max_bytes) {
            let mut head = [0u8; 13];
            self.reader.read_exact(&mut head)?;
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&head[..8]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&head[9..13]);
            let len = u32::from_le_bytes(len) as usize;
            let mut text = vec![0u8; len];
            self.reader.read_exact(&mut text)?;
            let text = String::from_utf8(text).map_err(std::io::Error::other)?;
            bytes += len;
            self.pending -= 1;
            lines.push(Line {
                timestamp_ms: i64::from_le_bytes(ts),
                level: LogLevel::from_byte(head[8]),
                text,
            });
        }
        Ok(lines)
    }

    /// Forgets the unread lines (after a read error).
    pub(crate) fn discard(&mut self) {
        self.pending = 0;
    }

    pub(crate) fn remove(self) {
        let path = self.path.clone();
        drop(self);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::debug!(
                "cannot remove the log spill file {}: {error}",
                path.display()
            );
        }
    }
}
