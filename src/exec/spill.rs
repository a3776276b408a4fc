//! The log backlog's overflow file: an append-only file of lines, read back in order.
//!
//! Record: timestamp (i64 LE), level (u8), text length (u32 LE), text (UTF-8). The file lives only
//! while it has unsent lines; nothing reads it across agent restarts. It is private: a random name
//! (created exclusively, 0600) in the agent's own folder `<dir>/clearml-agent-spill.<uid>` (0700,
//! owned by the agent, never a link), and one descriptor both writes and reads it (positional
//! I/O), so nothing is ever reopened by name.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::logs::{Line, LogLevel};

/// Bytes of records gathered before they are written.
const WRITE_BUFFER: usize = 64 * 1024;
/// The longest text a record may claim: a damaged file cannot make the reader allocate more.
const MAX_RECORD_TEXT: usize = 16 << 20;

pub(crate) struct Spill {
    path: PathBuf,
    file: File,
    /// Encoded records not written yet.
    buffer: Vec<u8>,
    /// Where the next write goes, and where the next read starts.
    write_at: u64,
    read_at: u64,
    /// Lines written and not yet read back.
    pending: u64,
}

/// The agent's private spill folder under `dir`, created when missing; refused when it is not a
/// plain directory of ours with mode 0700 (someone else made it, or put a link there).
fn private_folder(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let uid = nix::unistd::getuid().as_raw();
    let folder = dir.join(format!("clearml-agent-spill.{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = folder.symlink_metadata()?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a private folder of this user (a link, another owner, or open to others); remove it",
            folder.display()
        )));
    }
    Ok(folder)
}

impl Spill {
    /// Creates a new spill file in the agent's private folder under `dir`.
    pub(crate) fn create(dir: &Path, task: &str, _serial: u32) -> std::io::Result<Self> {
        let folder = private_folder(dir)?;
        let safe: String = task
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        let named = tempfile::Builder::new()
            .prefix(&format!("log-{safe}-"))
            .suffix(".bin")
            .tempfile_in(&folder)?;
        let (file, path) = named.keep().map_err(|e| e.error)?;
        Ok(Self {
            path,
            file,
            buffer: Vec::new(),
            write_at: 0,
            read_at: 0,
            pending: 0,
        })
    }

    /// Appends one line. On an error (a full disk) nothing of the line is kept: the caller
    /// decides what happens to it; the lines appended before stay readable.
    pub(crate) fn append(&mut self, line: &Line) -> std::io::Result<()> {
        let len = u32::try_from(line.text.len()).map_err(std::io::Error::other)?;
        let mark = self.buffer.len();
        self.buffer
            .extend_from_slice(&line.timestamp_ms.to_le_bytes());
        self.buffer.push(line.level.to_byte());
        self.buffer.extend_from_slice(&len.to_le_bytes());
        self.buffer.extend_from_slice(line.text.as_bytes());
        if self.buffer.len() >= WRITE_BUFFER
            && let Err(e) = self.flush()
        {
            self.buffer.truncate(mark);
            return Err(e);
        }
        self.pending += 1;
        Ok(())
    }

    /// Writes the gathered records; on an error they stay gathered (and counted as pending).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buffer, self.write_at)?;
        self.write_at += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    /// Reads the oldest lines, about `max_bytes` of text at most (always at least one line).
    pub(crate) fn read_up_to(&mut self, max_bytes: usize) -> std::io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        while self.pending > 0 && (lines.is_empty() || bytes < max_bytes) {
            let line = if self.read_at < self.write_at {
                self.read_file_record()?
            } else {
                self.read_buffer_record()?
            };
            bytes += line.text.len();
            self.pending -= 1;
            lines.push(line);
        }
        Ok(lines)
    }

    fn decode_head(head: &[u8; 13]) -> std::io::Result<(i64, LogLevel, usize)> {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[..8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[9..13]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD_TEXT {
            return Err(std::io::Error::other("damaged spill record"));
        }
        Ok((i64::from_le_bytes(ts), LogLevel::from_byte(head[8]), len))
    }

    fn read_file_record(&mut self) -> std::io::Result<Line> {
        let mut head = [0u8; 13];
        self.file.read_exact_at(&mut head, self.read_at)?;
        let (timestamp_ms, level, len) = Self::decode_head(&head)?;
        let mut text = vec![0u8; len];
        self.file.read_exact_at(&mut text, self.read_at + 13)?;
        self.read_at += 13 + len as u64;
        let text = String::from_utf8(text).map_err(std::io::Error::other)?;
        Ok(Line {
            timestamp_ms,
            level,
            text,
        })
    }

    /// The oldest record still in the write buffer (all the file's records were read).
    fn read_buffer_record(&mut self) -> std::io::Result<Line> {
        let short = || std::io::Error::other("spill buffer ends inside a record");
        let head: [u8; 13] = self
            .buffer
            .get(..13)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(short)?;
        let (timestamp_ms, level, len) = Self::decode_head(&head)?;
        let text = self.buffer.get(13..13 + len).ok_or_else(short)?.to_vec();
        self.buffer.drain(..13 + len);
        let text = String::from_utf8(text).map_err(std::io::Error::other)?;
        Ok(Line {
            timestamp_ms,
            level,
            text,
        })
    }

    /// Forgets the unread lines (after a read error).
    pub(crate) fn discard(&mut self) {
        self.pending = 0;
        self.buffer.clear();
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(i: usize) -> Line {
        Line {
            timestamp_ms: i as i64,
            level: LogLevel::Info,
            text: format!("line {i} {}\n", "x".repeat(i % 700)),
        }
    }

    #[test]
    fn lines_come_back_in_order_across_file_and_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::create(dir.path(), "t1", 1).unwrap();
        let mut next = 0;
        let mut read = Vec::new();
        for round in 0..5 {
            for _ in 0..(400 + round * 37) {
                spill.append(&line(next)).unwrap();
                next += 1;
            }
            read.extend(spill.read_up_to(10_000).unwrap());
        }
        while spill.pending() > 0 {
            read.extend(spill.read_up_to(100_000).unwrap());
        }
        assert_eq!(read.len(), next);
        for (i, l) in read.iter().enumerate() {
            assert_eq!(l.text, line(i).text);
            assert_eq!(l.timestamp_ms, i as i64);
        }
    }

    #[test]
    fn the_file_is_private_and_a_planted_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(dir.path(), "t1", 1).unwrap();
        let folder = spill.path.parent().unwrap().to_path_buf();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&spill.path), 0o600);
        spill.remove();

        // Someone else's folder in its place (here: a link to an open folder) is refused.
        let other = tempfile::tempdir().unwrap();
        let planted = tempfile::tempdir().unwrap();
        std::fs::set_permissions(planted.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        std::os::unix::fs::symlink(
            planted.path(),
            other.path().join(format!("clearml-agent-spill.{uid}")),
        )
        .unwrap();
        assert!(Spill::create(other.path(), "t1", 1).is_err());
        let open = other.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::DirBuilder::new()
            .mode(0o777)
            .create(open.join(format!("clearml-agent-spill.{uid}")))
            .unwrap();
        std::fs::set_permissions(
            open.join(format!("clearml-agent-spill.{uid}")),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(Spill::create(&open, "t1", 1).is_err());
    }
}
