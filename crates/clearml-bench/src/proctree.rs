//! Reads a process tree from /proc: the descendants of a pid, their summed RSS and CPU time, and
//! whether a process is still alive. Linux only; nothing here starts or signals processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// One process's fields from `/proc/<pid>/stat` that the benchmark uses.
struct Stat {
    ppid: i32,
    state: char,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14 -> index 11.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        ticks: num(11) + num(12) + num(13) + num(14),
    })
}

/// True while the process exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// `root` and every live descendant of it.
pub(crate) fn tree(root: i32) -> BTreeSet<i32> {
    let mut parent = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
                && let Some(s) = stat(pid)
                && s.state != 'Z'
            {
                parent.push((pid, s.ppid));
            }
        }
    }
    let mut set = BTreeSet::new();
    if alive(root) {
        set.insert(root);
    }
    loop {
        let before = set.len();
        for (pid, ppid) in &parent {
            if set.contains(ppid) {
                set.insert(*pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Resident memory of the tree in bytes (sum of VmRSS).
pub(crate) fn rss_bytes(root: i32) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .sum()
}

/// CPU time of the tree in clock ticks, counting reaped children (cutime/cstime) too.
pub(crate) fn cpu_ticks(root: i32) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.ticks)
        .sum()
}

/// Time on CPU of every live thread of the tree, in nanoseconds, keyed by (pid, tid): the
/// scheduler's own count (`/proc/<pid>/task/<tid>/schedstat`), far finer than clock ticks.
pub(crate) fn thread_cpu_ns(root: i32) -> BTreeMap<(i32, i32), u64> {
    let mut out = BTreeMap::new();
    for pid in tree(root) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for entry in tasks.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(ns) = fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            {
                out.insert((pid, tid), ns);
            }
        }
    }
    out
}

/// Accumulates the CPU time a tree spends from the first sample on: each sample adds what
/// every thread ran since the previous one (all of it for a thread that is new), so a thread
/// that ends loses at most one sampling interval.
#[derive(Default)]
pub(crate) struct CpuMeter {
    last: BTreeMap<(i32, i32), u64>,
    total_ns: u64,
    started: bool,
}

impl CpuMeter {
    pub(crate) fn sample(&mut self, root: i32) {
        let now = thread_cpu_ns(root);
        if self.started {
            for (key, ns) in &now {
                self.total_ns += ns.saturating_sub(self.last.get(key).copied().unwrap_or(0));
            }
        }
        self.started = true;
        self.last = now;
    }

    pub(crate) fn seconds(&self) -> f64 {
        self.total_ns as f64 / 1e9
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub(crate) fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The 1/5/15-minute load averages from /proc/loadavg, as "a b c".
pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
