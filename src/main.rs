//! clearml-agent: a drop-in replacement for the Python ClearML Agent.
fn main() {}
