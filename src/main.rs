//! The `clearml-agent` binary: parse, resolve settings, run, own the exit code (all in `app`).

fn main() -> std::process::ExitCode {
    clearml_agent::app::main()
}
