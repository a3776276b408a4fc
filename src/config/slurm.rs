//! `agent.slurm`: the typed settings of the Slurm glue (job cap, poll interval, per-queue job
//! resources, the job script template), read once from the configuration tree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{Error, get_path};

/// The placeholder of the job script template that becomes the `execute` command line.
pub const COMMAND_PLACEHOLDER: &str = "{{command}}";

/// The job script when `agent.slurm.template` is not set.
pub const DEFAULT_TEMPLATE: &str = "#!/bin/bash\n{{command}}\n";

/// What one job asks Slurm for; every field is optional and maps to one `sbatch` option.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobResources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--gres` (e.g. `gpu:1`).
    pub gres: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem` (e.g. `4G`).
    pub mem: Option<String>,
    /// `--time` (Slurm's formats: minutes, `HH:MM:SS`, `D-HH`).
    pub time: Option<String>,
    /// Further `sbatch` arguments, appended as given.
    pub extra_args: Vec<String>,
}

impl JobResources {
    /// `self` with every field `over` sets replacing ours; extra arguments add up.
    pub fn overlay(&self, over: &JobResources) -> JobResources {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        let mut extra_args = self.extra_args.clone();
        extra_args.extend(over.extra_args.iter().cloned());
        JobResources {
            partition: pick(&self.partition, &over.partition),
            account: pick(&self.account, &over.account),
            gres: pick(&self.gres, &over.gres),
            cpus: over.cpus.or(self.cpus),
            mem: pick(&self.mem, &over.mem),
            time: pick(&self.time, &over.time),
            extra_args,
        }
    }
}

/// `agent.slurm.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSettings {
    /// `poll_interval_sec` (default 10, at least 1): how often the server and the controller are asked.
    pub poll_interval: Duration,
    /// `max_jobs` (default 10): jobs of this glue in flight (pending or running) at most.
    pub max_jobs: usize,
    /// `pending_queue` (default `slurm_scheduler`): where tasks wait while their job is pending.
    pub pending_queue: String,
    /// `output_dir` (default `~/.clearml/slurm`): job output files and the glue's job ledger; must be
    /// on a file system the compute nodes share with the glue's machine.
    pub output_dir: PathBuf,
    /// `task_section` (default `slurm`): the hyperparameter section whose keys override a task's resources.
    pub task_section: String,
    /// `job_name_prefix` (default `clearml-`): job names are `<prefix><task id>`.
    pub job_name_prefix: String,
    /// `template`: the job script; `{{command}}` becomes the `execute` command line.
    pub template: String,
    /// `defaults { ... }`: resources of every job.
    pub defaults: JobResources,
    /// `queues { <queue name> { ... } }`: resources of the jobs of one queue, over the defaults.
    pub queues: BTreeMap<String, JobResources>,
}

impl SlurmSettings {
    /// Reads `agent.slurm` from the tree; `expand` expands `~` and variables in paths.
    pub fn read(
        tree: &Value,
        origin: &str,
        expand: &dyn Fn(&str) -> PathBuf,
    ) -> Result<SlurmSettings, Error> {
        let r = Keys { tree, origin };
        let poll = r.number("agent.slurm.poll_interval_sec")?.unwrap_or(10.0);
        if poll < 1.0 {
            return Err(r.bad(
                "agent.slurm.poll_interval_sec",
                &Value::from(poll),
                "expected at least 1 (seconds between polls of the server and the controller)",
            ));
        }
        let max_jobs = r.number("agent.slurm.max_jobs")?.unwrap_or(10.0);
        if max_jobs < 1.0 || max_jobs.fract() != 0.0 {
            return Err(r.bad(
                "agent.slurm.max_jobs",
                &Value::from(max_jobs),
                "expected a whole number of jobs, at least 1",
            ));
        }
        let template = r
            .string("agent.slurm.template")?
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
        if !template.contains(COMMAND_PLACEHOLDER) {
            return Err(r.bad(
                "agent.slurm.template",
                &Value::String(template.clone()),
                "the job script template must contain {{command}} where the execute command goes",
            ));
        }
        let mut queues = BTreeMap::new();
        if let Some(Value::Object(map)) = get_path(tree, "agent.slurm.queues") {
            for name in map.keys() {
                let key = format!("agent.slurm.queues.\"{name}\"");
                let value = &map[name];
                queues.insert(name.clone(), r.resources_at(&key, value)?);
            }
        }
        let defaults = match get_path(tree, "agent.slurm.defaults") {
            Some(v) => r.resources_at("agent.slurm.defaults", v)?,
            None => JobResources::default(),
        };
        Ok(SlurmSettings {
            poll_interval: Duration::from_secs_f64(poll),
            max_jobs: max_jobs as usize,
            pending_queue: r
                .string("agent.slurm.pending_queue")?
                .unwrap_or_else(|| "slurm_scheduler".into()),
            output_dir: expand(
                &r.string("agent.slurm.output_dir")?
                    .unwrap_or_else(|| "~/.clearml/slurm".into()),
            ),
            task_section: r
                .string("agent.slurm.task_section")?
                .unwrap_or_else(|| "slurm".into()),
            job_name_prefix: r
                .string("agent.slurm.job_name_prefix")?
                .unwrap_or_else(|| "clearml-".into()),
            template,
            defaults,
            queues,
        })
    }

    /// The resources of a job from `queue` (by name): the defaults, then the queue's own.
    pub fn resources_for(&self, queue: &str) -> JobResources {
        match self.queues.get(queue) {
            Some(q) => self.defaults.overlay(q),
            None => self.defaults.clone(),
        }
    }
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            poll_interval: Duration::from_secs(10),
            max_jobs: 10,
            pending_queue: "slurm_scheduler".into(),
            output_dir: PathBuf::from(".clearml/slurm"),
            task_section: "slurm".into(),
            job_name_prefix: "clearml-".into(),
            template: DEFAULT_TEMPLATE.into(),
            defaults: JobResources::default(),
            queues: BTreeMap::new(),
        }
    }
}

/// Parses one task's override section (`name → value` of its hyperparameters): the same keys as
/// a queue's resources; `extra_args` is split on white space. Unknown keys are errors so a typo
/// does not silently run a job without its GPUs.
pub fn task_overrides(params: &[(String, String)]) -> Result<JobResources, String> {
    let mut out = JobResources::default();
    for (name, value) in params {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let text = Some(value.to_string());
        match name.as_str() {
            "partition" => out.partition = text,
            "account" => out.account = text,
            "gres" => out.gres = text,
            "mem" => out.mem = text,
            "time" => out.time = text,
            "cpus" => {
                out.cpus =
                    Some(value.parse().map_err(|_| {
                        format!("`cpus` is {value:?}; write a whole number such as 4")
                    })?)
            }
            "extra_args" => out.extra_args = value.split_whitespace().map(String::from).collect(),
            other => {
                return Err(format!(
                    "unknown key `{other}`; use partition, account, gres, cpus, mem, time or extra_args"
                ));
            }
        }
    }
    Ok(out)
}

struct Keys<'a> {
    tree: &'a Value,
    origin: &'a str,
}

impl Keys<'_> {
    fn bad(&self, key: &str, found: &Value, expected: &str) -> Error {
        Error::Value {
            key: key.to_string(),
            found: match found {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            },
            origin: self.origin.to_string(),
            expected: expected.to_string(),
        }
    }

    fn string_of(&self, key: &str, v: Option<&Value>) -> Result<Option<String>, Error> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.bad(key, other, "expected a string")),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, Error> {
        self.string_of(key, get_path(self.tree, key))
    }

    fn number_of(&self, key: &str, v: Option<&Value>) -> Result<Option<f64>, Error> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v @ Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(key, v, "expected a number")),
            Some(other) => Err(self.bad(key, other, "expected a number")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, Error> {
        self.number_of(key, get_path(self.tree, key))
    }

    fn resources_at(&self, key: &str, v: &Value) -> Result<JobResources, Error> {
        let Value::Object(map) = v else {
            return Err(self.bad(key, v, "expected a section { partition: ..., gres: ... }"));
        };
        let field = |name: &str| (format!("{key}.{name}"), map.get(name));
        let s = |name: &str| {
            let (k, v) = field(name);
            self.string_of(&k, v)
        };
        let cpus = {
            let (k, v) = field("cpus");
            match self.number_of(&k, v)? {
                Some(n) if n >= 1.0 && n.fract() == 0.0 => Some(n as u32),
                Some(n) => {
                    return Err(self.bad(&k, &Value::from(n), "expected a whole number of CPUs"));
                }
                None => None,
            }
        };
        let extra_args = match map.get("extra_args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| self.string_of(&format!("{key}.extra_args"), Some(i)))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
            Some(other) => {
                return Err(self.bad(
                    &format!("{key}.extra_args"),
                    other,
                    "expected a list of sbatch arguments, e.g. [\"--qos=high\"]",
                ));
            }
        };
        Ok(JobResources {
            partition: s("partition")?,
            account: s("account")?,
            gres: s("gres")?,
            cpus,
            mem: s("mem")?,
            time: s("time")?,
            extra_args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_resources_overlay_the_defaults() {
        let tree = json!({"agent": {"slurm": {
            "max_jobs": 3,
            "defaults": {"partition": "cpu", "time": "10", "extra_args": ["--qos=low"]},
            "queues": {"gpu": {"partition": "gpu", "gres": "gpu:1", "extra_args": "--exclusive"}}
        }}});
        let s = SlurmSettings::read(&tree, "test", &|p| PathBuf::from(p)).expect("reads");
        assert_eq!(s.max_jobs, 3);
        let r = s.resources_for("gpu");
        assert_eq!(r.partition.as_deref(), Some("gpu"));
        assert_eq!(r.time.as_deref(), Some("10"));
        assert_eq!(r.gres.as_deref(), Some("gpu:1"));
        assert_eq!(r.extra_args, vec!["--qos=low", "--exclusive"]);
        assert_eq!(s.resources_for("other").partition.as_deref(), Some("cpu"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let tree = json!({"agent": {"slurm": {"max_jobs": 0}}});
        let e = SlurmSettings::read(&tree, "f", &|p| PathBuf::from(p)).expect_err("rejected");
        assert!(e.to_string().contains("agent.slurm.max_jobs"), "{e}");
        let tree = json!({"agent": {"slurm": {"template": "#!/bin/sh\n"}}});
        let e = SlurmSettings::read(&tree, "f", &|p| PathBuf::from(p)).expect_err("rejected");
        assert!(e.to_string().contains("{{command}}"), "{e}");
    }

    #[test]
    fn task_overrides_reject_unknown_keys() {
        let ok = task_overrides(&[("cpus".into(), "2".into()), ("time".into(), "5".into())])
            .expect("parses");
        assert_eq!(ok.cpus, Some(2));
        assert!(task_overrides(&[("gpus".into(), "1".into())]).is_err());
    }
}
