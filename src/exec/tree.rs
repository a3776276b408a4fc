//! Folder copies that keep symbolic links and permissions (the venv cache's entries, the vcs
//! cache's checkouts).

use std::fs;
use std::io;
use std::path::Path;

/// Recursive copy preserving symlinks (dangling ones included) and permissions.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    copy_tree_except(from, to, &[])
}

/// [`copy_tree`] skipping the top-level entries named in `exclude`.
pub(crate) fn copy_tree_except(from: &Path, to: &Path, exclude: &[&str]) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if exclude.iter().any(|e| name.as_os_str() == *e) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ty = entry.file_type()?;
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if ty.is_dir() {
            copy_tree_except(&src, &dst, &[])?;
            fs::set_permissions(&dst, fs::metadata(&src)?.permissions())?;
        } else {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
