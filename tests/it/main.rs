//! The one integration-test binary: one module per area.

mod api;
mod cli;
mod context;
mod daemon;
mod hocon;
mod logs;
mod process;
mod server;
mod settings;
mod source;
mod venv;
