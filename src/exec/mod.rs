//! Running one task: processes, log shipping, source code and Python environments.

pub mod cgroup;
pub(crate) mod command;
pub mod confined;
pub mod custom_build;
pub mod ending;
pub mod git;
pub(crate) mod git_url;
pub(crate) mod lock;
pub mod logs;
pub mod notice;
pub mod pending_status;
pub mod process;
pub mod project_env;
pub mod python;
pub mod pytorch;
pub mod requirements;
pub(crate) mod server_checks;
mod spill;
pub mod supervise;
pub mod task;
pub(crate) mod tree;
pub mod venv;
mod venv_cache;
mod venv_state;
pub(crate) mod watch;
