//! The one integration-test binary: one module per area.

// A failing unwrap in a test is a test failure with a backtrace, which is what we want there.
#![allow(clippy::unwrap_used)]

mod api;
mod background;
mod build;
mod cli;
mod context;
mod daemon;
mod docker;
mod docker_cli;
mod docker_inside;
mod docker_pull;
mod docker_services;
mod execute;
mod faults;
mod hocon;
mod hostile_docker;
mod hostile_runtime;
mod hostile_source;
mod index;
mod logs;
mod overrides;
mod perf;
mod process;
mod projects;
mod pytorch;
mod settings;
mod slurm;
mod source;
mod truth;
mod venv;
mod wheel;
