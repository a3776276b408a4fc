//! Running one task: processes, log shipping, source code and Python environments.

pub mod git;
pub mod logs;
pub mod process;
mod spill;
pub mod venv;
