//! Command-line interface (clap derive): every subcommand and flag of the Python agent 3.0.3.
