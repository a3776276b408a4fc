//! Reading an `--env-file` on the host (the docker CLI reads it on the host too): only a plain
//! regular file, reached without symbolic links, not a kernel pseudo-file (`/proc/self/environ`
//! would hand over the agent's environment), a FIFO or a device (which could block the daemon),
//! and of a sane size. Its lines are parsed by `args::parse_env_file`; its values are never
//! printed (`RunArgs::env_file_keys`).

use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest env file read.
const MAX_BYTES: u64 = 1 << 20;

/// The text of the env file at `path`, or an error saying why it is refused (never its text).
pub fn read(path: &str) -> std::io::Result<String> {
    let refuse = |why: &str| Error::new(ErrorKind::InvalidInput, why.to_string());
    let given = Path::new(path);
    // Symbolic links anywhere on the way are refused: the file is the one named.
    let absolute = std::path::absolute(given)?;
    match std::fs::canonicalize(given) {
        Ok(real) if real == absolute => {}
        Ok(_) => return Err(refuse("the path goes through a symbolic link or `..`")),
        Err(e) => return Err(e),
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(given)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => refuse("it is a symbolic link"),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.len() > MAX_BYTES {
        return Err(refuse("larger than 1 MiB"));
    }
    use nix::sys::statfs;
    let fs = statfs::fstatfs(&file).map_err(Error::from)?;
    let pseudo = [
        statfs::PROC_SUPER_MAGIC,
        statfs::SYSFS_MAGIC,
        statfs::DEBUGFS_MAGIC,
        statfs::CGROUP_SUPER_MAGIC,
        statfs::CGROUP2_SUPER_MAGIC,
    ];
    if pseudo.contains(&fs.filesystem_type()) {
        return Err(refuse("a kernel pseudo-file, not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(refuse("larger than 1 MiB"));
    }
    String::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("env.list");
        std::fs::write(&plain, "A=1\n").unwrap();
        assert_eq!(read(plain.to_str().unwrap()).unwrap(), "A=1\n");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        let e = read(link.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read(fifo.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        for pseudo in [
            "/proc/self/environ",
            "/dev/null",
            "/sys/kernel/uevent_seqnum",
        ] {
            if Path::new(pseudo).exists() {
                let e = read(pseudo).unwrap_err();
                assert!(!e.to_string().contains('='), "{pseudo}: {e}");
            }
        }
        assert!(read(dir.path().to_str().unwrap()).is_err());
        assert!(read("/does/not/exist").is_err());
    }
}
