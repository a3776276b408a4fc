//! `clearml-agent config`: print the resolved configuration, secrets masked, without contacting the server
//! (mirrors `clearml_agent/session.py: Session.print_configuration`).

use std::io::Write;

use crate::cli::VERSION;
use crate::config::Resolved;
use crate::config::masking::{masked_tree, to_properties};

/// The printout: header, dashes, then `key.path = value` lines.
pub fn render(resolved: &Resolved) -> String {
    let location = match &resolved.file {
        Some(p) => p.display().to_string(),
        None => "None".to_string(),
    };
    let masked = masked_tree(
        &resolved.tree,
        &resolved.settings.agent.hide_docker_command_env_vars,
    );
    format!(
        "Current configuration (clearml_agent v{VERSION}, location: {location}):\n----------------------\n{}\n",
        to_properties(&masked)
    )
}

/// Write the printout to `out`.
pub fn run(resolved: &Resolved, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", render(resolved))
}
