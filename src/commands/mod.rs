//! Subcommands that are not the daemon: `config`, `init`, `list`.
