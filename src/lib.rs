//! clearml-agent: a single-binary, drop-in replacement for the Python ClearML Agent 3.0.3.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; integration tests in `tests/it`
//! use the library directly. See ARCHITECTURE.md for the code map.

pub mod api;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod docker;
pub mod env;
pub mod exec;
pub mod gpu;
pub mod plan;
pub mod slurm;
pub mod worker;
