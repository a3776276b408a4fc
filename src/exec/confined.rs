//! Paths a task names, confined beneath the task's own folder: never absolute, never `..`, never
//! through a symbolic link, files created exclusively.
//!
//! Every path that comes from a task (working dir, entry point, literal-script name, the files a
//! diff names, the requirements file) is first reduced lexically by [`relative`] (absolute paths
//! and `..` are refused), then opened component by component from a descriptor of the root with
//! `openat(O_NOFOLLOW|O_DIRECTORY)` (nix, already a dependency; no `unsafe`). A symlink anywhere
//! on the way fails with `ELOOP`/`ENOTDIR` instead of being followed, so a link planted in a
//! repository or a swapped folder cannot redirect a write out of the folder. New files are created
//! with `O_CREAT|O_EXCL|O_NOFOLLOW`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};

/// Why a task's path was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error(
        "{what} {value:?} leaves the task's folder (an absolute path or `..`); use a path relative to the repository"
    )]
    Escapes { what: &'static str, value: String },
    #[error(
        "{what} {path} goes through a symbolic link or a file where a folder is expected; the agent never follows links there (fix the path in the task)"
    )]
    Link { what: &'static str, path: PathBuf },
    #[error("{what} {path} already exists; it is created fresh for every task")]
    Exists { what: &'static str, path: PathBuf },
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
}

/// `value` as a path of plain components (`.` dropped); absolute paths, `..` and NUL are refused.
/// An empty or `.` value is the root itself (an empty path).
pub fn relative(what: &'static str, value: &str) -> Result<PathBuf, ConfineError> {
    let escapes = || ConfineError::Escapes {
        what,
        value: value.to_string(),
    };
    if value.contains('\0') {
        return Err(escapes());
    }
    let mut out = PathBuf::new();
    for c in Path::new(value.trim()).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(escapes());
            }
        }
    }
    Ok(out)
}

/// `value` as one plain file name (no `/`, not `.` or `..`).
pub fn file_name(what: &'static str, value: &str) -> Result<String, ConfineError> {
    let rel = relative(what, value)?;
    let mut parts = rel.components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) => Ok(n.to_string_lossy().into_owned()),
        _ => Err(ConfineError::Escapes {
            what,
            value: value.to_string(),
        }),
    }
}

/// A folder opened once; everything below it is reached without following links.
pub struct Beneath {
    root: PathBuf,
    fd: File,
}

impl Beneath {
    /// Opens `root` itself (which must not be a symlink).
    pub fn open(what: &'static str, root: &Path) -> Result<Self, ConfineError> {
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags(OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW))
            .open(root)
            .map_err(|cause| link_or_io(what, root.to_path_buf(), cause))?;
        Ok(Self {
            root: root.to_path_buf(),
            fd,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder `rel` (already [`relative`]), optionally creating missing parts (mode 0755).
    fn dir(&self, what: &'static str, rel: &Path, create: bool) -> Result<File, ConfineError> {
        let mut cur = self.fd.try_clone().map_err(|cause| ConfineError::Io {
            what,
            path: self.root.clone(),
            cause,
        })?;
        let mut path = self.root.clone();
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(ConfineError::Escapes {
                    what,
                    value: rel.display().to_string(),
                });
            };
            path.push(name);
            if create {
                match mkdirat(&cur, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(link_or_io(what, path, e.into())),
                }
            }
            let next = openat(
                &cur,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| link_or_io(what, path.clone(), e.into()))?;
            cur = File::from(next);
        }
        Ok(cur)
    }

    /// Creates the folder `rel` and its parents, never through a link; returns its full path.
    pub fn create_dir_all(&self, what: &'static str, rel: &Path) -> Result<PathBuf, ConfineError> {
        self.dir(what, rel, true)?;
        Ok(self.root.join(rel))
    }

    /// Whether the folder `rel` exists, reached without links.
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.dir("folder", rel, false).is_ok()
    }

    /// Creates the new file `rel` (parents made as needed) with `contents`, exclusively
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`): an existing file or link there is an error.
    pub fn create_file(
        &self,
        what: &'static str,
        rel: &Path,
        contents: &[u8],
        mode: u32,
    ) -> Result<PathBuf, ConfineError> {
        let (parent, name) = split(what, rel)?;
        let dir = self.dir(what, parent, true)?;
        let path = self.root.join(rel);
        let fd = openat(
            &dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| match e {
            Errno::EEXIST => ConfineError::Exists {
                what,
                path: path.clone(),
            },
            e => link_or_io(what, path.clone(), e.into()),
        })?;
        File::from(fd)
            .write_all(contents)
            .map_err(|cause| ConfineError::Io {
                what,
                path: path.clone(),
                cause,
            })?;
        Ok(path)
    }

    /// Whether anything (file, folder or link) is at `rel`, looked up without following links.
    pub fn exists(&self, rel: &Path) -> bool {
        self.stat(rel).is_some()
    }

    /// Whether `rel` is a regular file (a link to one is not).
    pub fn is_file(&self, rel: &Path) -> bool {
        self.stat(rel).is_some_and(|st| {
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
        })
    }

    fn stat(&self, rel: &Path) -> Option<nix::sys::stat::FileStat> {
        let (parent, name) = split("path", rel).ok()?;
        let dir = self.dir("path", parent, false).ok()?;
        fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// The text of the regular file `rel`, read without following links.
    pub fn read_to_string(&self, rel: &Path) -> Option<String> {
        let mut f = self.open_file(rel, OFlag::O_RDONLY)?;
        let mut s = String::new();
        f.read_to_string(&mut s).ok()?;
        Some(s)
    }

    /// Replaces the contents of the existing regular file `rel`, opened without following links.
    pub fn rewrite(&self, rel: &Path, contents: &[u8]) -> bool {
        self.open_file(rel, OFlag::O_WRONLY | OFlag::O_TRUNC)
            .is_some_and(|mut f| f.write_all(contents).is_ok())
    }

    fn open_file(&self, rel: &Path, flags: OFlag) -> Option<File> {
        if !self.is_file(rel) {
            return None;
        }
        let (parent, name) = split("path", rel).ok()?;
        let dir = self.dir("path", parent, false).ok()?;
        let fd = openat(
            &dir,
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .ok()?;
        Some(File::from(fd))
    }
}

fn split<'a>(
    what: &'static str,
    rel: &'a Path,
) -> Result<(&'a Path, &'a std::ffi::OsStr), ConfineError> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(ConfineError::Escapes {
            what,
            value: rel.display().to_string(),
        }),
    }
}

fn libc_flags(flags: OFlag) -> i32 {
    flags.bits()
}

fn link_or_io(what: &'static str, path: PathBuf, cause: io::Error) -> ConfineError {
    match cause.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ELOOP | Errno::ENOTDIR) => ConfineError::Link { what, path },
        _ => ConfineError::Io { what, path, cause },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_refuses_escapes() {
        assert_eq!(relative("p", "./a/b").ok(), Some(PathBuf::from("a/b")));
        assert_eq!(relative("p", ".").ok(), Some(PathBuf::new()));
        assert!(relative("p", "/etc/x").is_err());
        assert!(relative("p", "a/../../x").is_err());
        assert!(relative("p", "a\0b").is_err());
        assert_eq!(file_name("n", "run.py").ok().as_deref(), Some("run.py"));
        assert!(file_name("n", "a/run.py").is_err());
        assert!(file_name("n", "..").is_err());
        assert!(file_name("n", "").is_err());
    }

    #[test]
    fn links_are_never_followed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("link");
        std::os::unix::fs::symlink(outside.join("f"), root.join("dangling")).expect("link");
        let b = Beneath::open("root", &root).expect("open");
        assert!(matches!(
            b.create_file("f", Path::new("link/x"), b"x", 0o644),
            Err(ConfineError::Link { .. })
        ));
        assert!(matches!(
            b.create_file("f", Path::new("dangling"), b"x", 0o644),
            Err(ConfineError::Exists { .. })
        ));
        assert!(b.create_dir_all("d", Path::new("link/sub")).is_err());
        assert!(!outside.join("x").exists() && !outside.join("f").exists());
        assert!(!outside.join("sub").exists());
        let made = b
            .create_file("f", Path::new("a/b/c.txt"), b"hi", 0o644)
            .expect("create");
        assert_eq!(std::fs::read_to_string(made).expect("read"), "hi");
        assert!(b.is_file(Path::new("a/b/c.txt")));
        assert!(!b.is_file(Path::new("dangling")));
        assert!(b.exists(Path::new("dangling")));
        assert!(Beneath::open("root", &root.join("link")).is_err());
    }
}
