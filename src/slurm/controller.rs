//! The Slurm controller as this glue sees it: `sbatch --parsable`, `squeue --states=all`,
//! `scancel` and `scontrol show job`, run as child processes, with their output parsed into
//! [`JobInfo`]. Only this file knows the Slurm command lines and output formats.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::job::{JobInfo, JobState};

/// Why a Slurm command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "cannot run `{program}`: {source}; install the Slurm client tools (slurm-client) on this machine"
    )]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("`{program}` answered something this glue cannot read: {text:?}")]
    Unreadable { program: &'static str, text: String },
}

/// The `squeue` output format: job id, name, state, reason (`|` never occurs in these fields).
const SQUEUE_FORMAT: &str = "%i|%j|%T|%r";

/// Runs the Slurm client commands found on `PATH`.
#[derive(Debug, Clone, Default)]
pub struct Controller;

impl Controller {
    /// Submits `script` with `args` (sbatch options); returns the job id.
    pub async fn submit(&self, args: &[String], script: &str) -> Result<String, SlurmError> {
        let mut child = Command::new("sbatch")
            .arg("--parsable")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SlurmError::Spawn {
                program: "sbatch",
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|source| SlurmError::Spawn {
                    program: "sbatch",
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| SlurmError::Spawn {
                program: "sbatch",
                source,
            })?;
        let stdout = checked("sbatch", out)?;
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let id = stdout.trim().split(';').next().unwrap_or_default().trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(SlurmError::Unreadable {
                program: "sbatch",
                text: stdout,
            });
        }
        Ok(id.to_string())
    }

    /// Every job the controller knows whose name starts with `prefix`, finished ones included
    /// (the controller keeps them for `MinJobAge` seconds).
    pub async fn jobs(&self, prefix: &str) -> Result<Vec<JobInfo>, SlurmError> {
        let out = run(
            "squeue",
            &["--noheader", "--states=all", "-o", SQUEUE_FORMAT],
        )
        .await?;
        Ok(parse_squeue(&out)
            .into_iter()
            .filter(|j| j.name.starts_with(prefix))
            .collect())
    }

    /// `scancel <job>`.
    pub async fn cancel(&self, job_id: &str) -> Result<(), SlurmError> {
        run("scancel", &[job_id]).await.map(|_| ())
    }

    /// The `ExitCode=` of a job (`code:signal`), while the controller remembers it.
    pub async fn exit_code(&self, job_id: &str) -> Option<String> {
        let out = run("scontrol", &["-o", "show", "job", job_id]).await.ok()?;
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("ExitCode="))
            .map(str::to_string)
    }
}

async fn run(program: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| SlurmError::Spawn { program, source })?;
    checked(program, out)
}

fn checked(program: &'static str, out: std::process::Output) -> Result<String, SlurmError> {
    if !out.status.success() {
        return Err(SlurmError::Failed {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `squeue -o '%i|%j|%T|%r'` lines; lines of another shape are skipped.
pub fn parse_squeue(text: &str) -> Vec<JobInfo> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(4, '|');
            let id = parts.next()?.trim().to_string();
            let name = parts.next()?.trim().to_string();
            let state = JobState::parse(parts.next()?.trim());
            let reason = parts.next().unwrap_or_default().trim().to_string();
            (!id.is_empty()).then_some(JobInfo {
                id,
                name,
                state,
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_parse() {
        let jobs = parse_squeue("12|clearml-abc|PENDING|Resources\n13|x|TIMEOUT|TimeLimit\n\n");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].state, JobState::Pending);
        assert_eq!(jobs[0].reason, "Resources");
        assert_eq!(jobs[1].state, JobState::Timeout);
    }
}
