//! Task source code: git clone through the vcs cache, diffs, literal scripts.
