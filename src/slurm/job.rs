//! One task's Slurm job: its state as the controller reports it, what an ended state means for
//! the task, and the `sbatch` arguments and script that run `clearml-agent execute` for it.

use std::path::Path;

use crate::config::slurm::{COMMAND_PLACEHOLDER, JobResources};
use crate::env::EnvVars;

/// A Slurm job state (`squeue %T`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    /// Configuring, completing, suspended, requeued, resizing...: not ended yet.
    Busy(String),
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    OutOfMemory,
    Preempted,
    BootFail,
    Deadline,
    /// A state this glue does not know; treated as not ended.
    Other(String),
}

impl JobState {
    pub fn parse(text: &str) -> JobState {
        match text {
            "PENDING" => JobState::Pending,
            "RUNNING" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "CANCELLED" => JobState::Cancelled,
            "FAILED" => JobState::Failed,
            "TIMEOUT" => JobState::Timeout,
            "NODE_FAIL" => JobState::NodeFail,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            "PREEMPTED" => JobState::Preempted,
            "BOOT_FAIL" => JobState::BootFail,
            "DEADLINE" => JobState::Deadline,
            "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED" | "REQUEUE_FED"
            | "REQUEUE_HOLD" | "RESIZING" | "SIGNALING" | "STAGE_OUT" | "STOPPED" => {
                JobState::Busy(text.to_string())
            }
            other => JobState::Other(other.to_string()),
        }
    }

    /// True once the job will not run any more.
    pub fn ended(&self) -> bool {
        !matches!(
            self,
            JobState::Pending | JobState::Running | JobState::Busy(_) | JobState::Other(_)
        )
    }

    /// Why the job's task failed, for an ended state that is a failure; `None` for a job that
    /// completed (its task's own status tells how it went).
    pub fn failure(&self, job_id: &str, exit_code: Option<&str>) -> Option<String> {
        let text = match self {
            JobState::Completed => return None,
            JobState::Timeout => "reached its time limit (TIMEOUT)".to_string(),
            JobState::OutOfMemory => "ran out of memory (OUT_OF_MEMORY)".to_string(),
            JobState::NodeFail => "lost its node (NODE_FAIL)".to_string(),
            JobState::Preempted => "was preempted (PREEMPTED)".to_string(),
            JobState::BootFail => "could not boot its node (BOOT_FAIL)".to_string(),
            JobState::Deadline => "missed its deadline (DEADLINE)".to_string(),
            JobState::Cancelled => "was cancelled outside ClearML (CANCELLED)".to_string(),
            JobState::Failed => match exit_code {
                Some(code) => format!("failed with exit code {code} (FAILED)"),
                None => "failed (FAILED)".to_string(),
            },
            JobState::Pending | JobState::Running | JobState::Busy(_) | JobState::Other(_) => {
                return None;
            }
        };
        Some(format!("Slurm job {job_id} {text}"))
    }
}

/// One job as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: String,
    pub name: String,
    pub state: JobState,
    /// Why it is pending (`Resources`, `Priority`, `BeginTime`...) or how it ended; `None` is empty.
    pub reason: String,
}

/// Everything that goes into one `sbatch` call.
pub struct JobRequest<'a> {
    pub task_id: &'a str,
    pub job_name: String,
    pub resources: JobResources,
    /// The job's output file (stdout and stderr).
    pub output: &'a Path,
    /// The job script template with `{{command}}`.
    pub template: &'a str,
    /// The `execute` command line, program first.
    pub command: Vec<String>,
    /// `CLEARML_WORKER_ID` of the job's `execute` (the job id is appended on the node).
    pub worker_prefix: &'a str,
}

impl JobRequest<'_> {
    /// The `sbatch` options (besides `--parsable`).
    pub fn sbatch_args(&self) -> Vec<String> {
        let r = &self.resources;
        let mut args = vec![
            format!("--job-name={}", self.job_name),
            format!("--comment=clearml-task={}", self.task_id),
            format!("--output={}", self.output.display()),
            "--open-mode=append".to_string(),
        ];
        let mut opt = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", &r.partition);
        opt("account", &r.account);
        opt("gres", &r.gres);
        opt("mem", &r.mem);
        opt("time", &r.time);
        if let Some(cpus) = r.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        args.extend(r.extra_args.iter().cloned());
        args
    }

    /// The job script: the template with the command line in place of `{{command}}`.
    pub fn script(&self) -> String {
        let command = self
            .command
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!(
            "export {}={}\"${{{}}}\"\n{command}",
            EnvVars::CLEARML_WORKER_ID,
            shell_quote(self.worker_prefix),
            EnvVars::SLURM_JOB_ID,
        );
        self.template.replace(COMMAND_PLACEHOLDER, &line)
    }
}

/// `word` quoted for a POSIX shell.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_args() {
        let req = JobRequest {
            task_id: "t1",
            job_name: "clearml-t1".into(),
            resources: JobResources {
                gres: Some("gpu:1".into()),
                cpus: Some(2),
                ..JobResources::default()
            },
            output: Path::new("/o/t1.out"),
            template: "#!/bin/bash\n#SBATCH --x\n{{command}}\n",
            command: vec!["/bin/agent".into(), "--config-file".into(), "/a b".into()],
            worker_prefix: "host:slurm-",
        };
        let args = req.sbatch_args();
        assert!(args.contains(&"--gres=gpu:1".to_string()));
        assert!(args.contains(&"--cpus-per-task=2".to_string()));
        let script = req.script();
        assert!(script.starts_with("#!/bin/bash\n#SBATCH --x\n"));
        assert!(
            script.contains("/bin/agent --config-file '/a b'"),
            "{script}"
        );
    }

    #[test]
    fn failure_reasons() {
        assert!(
            JobState::Timeout
                .failure("7", None)
                .is_some_and(|r| r.contains("time limit"))
        );
        assert_eq!(JobState::Completed.failure("7", None), None);
        assert!(!JobState::Pending.ended());
        assert!(JobState::OutOfMemory.ended());
    }
}
