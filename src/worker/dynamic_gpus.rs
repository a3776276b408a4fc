//! `daemon --dynamic-gpus --gpus 0-3 --queue dual_gpu=2 quad_gpu=4`: each queue asks for a number
//! of GPUs (`=N` or `=MIN-MAX`); a task pulled from it runs as a service on that many free GPUs
//! of the agent's pool, which return to the pool when it ends. It owns the queue specs and the
//! pool; running the services is `services`' job. Fractional GPUs (`=0.5`) are not supported.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._parse_dynamic_gpus / run_tasks_loop (the
//! `gpu_queues` branch). The Python agent tracks allocations through the server's worker list;
//! this agent keeps them in memory, as it supervises every service itself.

use anyhow::{Result, bail};

/// One `<queue>=<min>[-<max>]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuQueue {
    pub name: String,
    pub min: usize,
    pub max: usize,
}

/// Splits every `--queue` word into name and GPU count.
pub fn parse_queues(words: &[String]) -> Result<Vec<GpuQueue>> {
    let mut out = Vec::new();
    for word in words {
        let Some((name, count)) = word.rsplit_once('=') else {
            bail!(
                "using --dynamic-gpus, --queue {word:?} must be in the format <queue_name>=<num_gpus> (e.g. dual_gpu=2 or dual_gpu=1-2)"
            );
        };
        let (lo, hi) = count.split_once('-').unwrap_or((count, count));
        let parse = |s: &str, default: usize| -> Result<usize> {
            if s.is_empty() {
                return Ok(default);
            }
            match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!(
                    "--queue {word:?}: the number of GPUs must be a whole number above 0 (fractional GPUs are not supported)"
                ),
            }
        };
        let (min, max) = (parse(lo, 1)?, parse(hi, 1)?);
        if min > max {
            bail!("--queue {word:?}: the minimum number of GPUs is above the maximum");
        }
        out.push(GpuQueue {
            name: name.to_string(),
            min,
            max,
        });
    }
    Ok(out)
}

/// The agent's GPUs and which are free.
#[derive(Debug, Clone)]
pub struct GpuPool {
    free: Vec<String>,
}

impl GpuPool {
    /// From the agent's `NVIDIA_VISIBLE_DEVICES` (`--gpus 0-3` expanded to `0,1,2,3`).
    pub fn new(visible: &str) -> GpuPool {
        GpuPool {
            free: visible
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Whether a task of this queue could start now.
    pub fn fits(&self, q: &GpuQueue) -> bool {
        self.free.len() >= q.min
    }

    /// Takes the lowest free GPUs, as many as `q.max` allows, at least `q.min`.
    pub fn take(&mut self, q: &GpuQueue) -> Option<Vec<String>> {
        if !self.fits(q) {
            return None;
        }
        let n = q.max.min(self.free.len());
        Some(self.free.drain(..n).collect())
    }

    /// Gives GPUs back (kept in index order, so allocations stay predictable).
    pub fn give_back(&mut self, gpus: Vec<String>) {
        self.free.extend(gpus);
        self.free
            .sort_by_key(|g| (g.parse::<u64>().unwrap_or(u64::MAX), g.clone()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn queue_specs() {
        let q = parse_queues(&words(&["dual_gpu=2", "flex=1-3", "a=b=-2"])).unwrap();
        assert_eq!((q[0].name.as_str(), q[0].min, q[0].max), ("dual_gpu", 2, 2));
        assert_eq!((q[1].min, q[1].max), (1, 3));
        assert_eq!((q[2].name.as_str(), q[2].min, q[2].max), ("a=b", 1, 2));
        assert!(parse_queues(&words(&["plain"])).is_err());
        assert!(parse_queues(&words(&["half=0.5"])).is_err());
        assert!(parse_queues(&words(&["zero=0"])).is_err());
        assert!(parse_queues(&words(&["bad=3-1"])).is_err());
    }

    #[test]
    fn pool_allocates_and_releases() {
        let mut pool = GpuPool::new("0,1,2,3");
        let dual = GpuQueue {
            name: "d".into(),
            min: 2,
            max: 2,
        };
        let quad = GpuQueue {
            name: "q".into(),
            min: 4,
            max: 4,
        };
        let a = pool.take(&dual).unwrap();
        assert_eq!(a, ["0", "1"]);
        assert!(pool.take(&quad).is_none());
        let b = pool.take(&dual).unwrap();
        assert_eq!(b, ["2", "3"]);
        assert!(pool.take(&dual).is_none());
        pool.give_back(b);
        pool.give_back(a);
        assert_eq!(pool.take(&quad).unwrap(), ["0", "1", "2", "3"]);
    }
}
