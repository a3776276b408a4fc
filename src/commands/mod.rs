//! Subcommands that are not the daemon: `config`, `init`, `list`.

pub mod config;
pub mod init;
pub mod list;
