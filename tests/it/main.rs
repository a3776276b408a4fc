//! The one integration-test binary: one module per area.

mod api;
mod cli;
mod hocon;
mod logs;
mod process;
mod server;
mod settings;
mod source;
mod venv;
