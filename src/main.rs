//! The `clearml-agent` binary: parse, resolve settings, run, own the exit code.

fn main() {}
