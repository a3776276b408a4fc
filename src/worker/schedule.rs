//! `--uptime` / `--downtime` (and `agent.uptime` / `agent.downtime`): the weekly hours in which the
//! daemon pulls tasks. Parsing and the "active at this local time" decision are pure functions of
//! a given [`LocalTime`]; [`LocalTime::now`] is the only clock. It does not handle the server-side
//! overrides (queue tags `force_workers:on|off`, the worker's `force` runtime property).
//!
//! mirrors clearml_agent/helper/runtime_verification.py: check_runtime, get_days_list,
//! get_hours_list, get_start_end_hours, get_uptime_string

use anyhow::{Result, bail};

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A local wall-clock instant reduced to what a schedule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = Sunday .. 6 = Saturday.
    pub weekday: u8,
    /// 0..=23.
    pub hour: u8,
}

impl LocalTime {
    /// The machine's local time (the `TZ` variable or `/etc/localtime`), as the Python agent's
    /// `datetime.now()`.
    pub fn now() -> LocalTime {
        let now = jiff::ZonedDateTime::now();
        LocalTime {
            weekday: now.weekday().to_sunday_zero_offset() as u8,
            hour: now.hour().clamp(0, 23) as u8,
        }
    }
}

/// One `"<hours> <days>"` entry, expanded.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Weekdays, 0 = Sunday.
    days: Vec<u8>,
    /// `(start, end)` hour intervals, end exclusive; kept for `describe`.
    hours: Vec<(u32, u32)>,
}

impl Window {
    fn contains(&self, t: LocalTime) -> bool {
        let hour = u32::from(t.hour);
        self.days.contains(&t.weekday) && self.hours.iter().any(|&(s, e)| s <= hour && hour < e)
    }
}

/// A parsed uptime or downtime schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// True for `--uptime` (active inside the windows), false for `--downtime`.
    pub uptime: bool,
    windows: Vec<Window>,
    /// Warnings about ignored intervals, printed once at start.
    pub warnings: Vec<String>,
}

impl Schedule {
    /// From the uptime and downtime lists (flag, else config). Both given: both are ignored with
    /// an error line, as the Python agent does (Worker.daemon). An entry that is not
    /// `"<hours> <days>"` is an error; bad hour or day intervals inside one are warned about and
    /// skipped, as Python does.
    pub fn from_lists(
        uptime: Option<&[String]>,
        downtime: Option<&[String]>,
    ) -> Result<Option<Schedule>> {
        let uptime = uptime.filter(|l| !l.is_empty());
        let downtime = downtime.filter(|l| !l.is_empty());
        let (entries, is_uptime) = match (uptime, downtime) {
            (Some(_), Some(_)) => {
                eprintln!(
                    "clearml_agent: ERROR: Both uptime and downtime were specified when only one of them could be used. Both will be ignored."
                );
                return Ok(None);
            }
            (Some(u), None) => (u, true),
            (None, Some(d)) => (d, false),
            (None, None) => return Ok(None),
        };
        let mut warnings = Vec::new();
        let mut windows = Vec::new();
        for entry in entries {
            windows.push(parse_entry(entry, &mut warnings)?);
        }
        Ok(Some(Schedule {
            uptime: is_uptime,
            windows,
            warnings,
        }))
    }

    /// Whether the daemon pulls tasks at `t` (mirrors check_runtime: inside any window the
    /// answer is `uptime`, outside all of them its opposite).
    pub fn active_at(&self, t: LocalTime) -> bool {
        if self.windows.iter().any(|w| w.contains(t)) {
            self.uptime
        } else {
            !self.uptime
        }
    }

    /// The `--status` text (mirrors print_uptime_properties / get_uptime_string).
    pub fn describe(&self) -> String {
        let kind = if self.uptime { "uptime" } else { "downtime" };
        let mut out = format!("Working hours {kind} configurations\n");
        for w in &self.windows {
            let days: Vec<&str> = w.days.iter().map(|&d| DAYS[usize::from(d)]).collect();
            for &(s, e) in &w.hours {
                if s != e {
                    out.push_str(&format!(
                        "  - {s}:00-{}:59 on {}\n",
                        e.saturating_sub(1),
                        days.join(" and ")
                    ));
                }
            }
        }
        out
    }
}

fn parse_entry(entry: &str, warnings: &mut Vec<String>) -> Result<Window> {
    let mut words = entry.split_whitespace();
    let (Some(hours), Some(days)) = (words.next(), words.next()) else {
        bail!(
            "uptime/downtime entry {entry:?} is not \"<hours> <days>\"; write e.g. \"17-20 TUE\" or \"9-17 MON-FRI\""
        );
    };
    let mut out = Window {
        days: Vec::new(),
        hours: Vec::new(),
    };
    for part in days.split(',') {
        let (start, end) = part.split_once('-').unwrap_or((part, part));
        let idx = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d));
        match (idx(start), idx(end)) {
            (Some(s), Some(e)) => out.days.extend((s..=e).map(|d| d as u8)),
            _ => warnings.push(format!(
                "Warning: days interval '{part}' is invalid, use intervals of the format <start>-<end>. make sure to use the abbreviated format SUN-SAT"
            )),
        }
    }
    for part in hours.split(',') {
        let parsed = match part.split_once('-') {
            Some((s, e)) => s.parse::<u32>().ok().zip(e.parse::<u32>().ok()),
            None => part.parse::<u32>().ok().map(|s| (s, 24)),
        };
        let Some((start, end)) = parsed else {
            warnings.push(format!(
                "Warning: hours interval '{part}' is invalid, use intervals of the format <start>-<end>"
            ));
            continue;
        };
        let end = if end == 0 { 24 } else { end };
        // Quirk kept from get_hours_list: `if not (start and end)` drops intervals starting at 0.
        if start == 0 {
            continue;
        }
        out.hours.push((start, end));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(weekday: u8, hour: u8) -> LocalTime {
        LocalTime { weekday, hour }
    }

    fn up(entries: &[&str]) -> Schedule {
        let v: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        Schedule::from_lists(Some(&v), None).unwrap().unwrap()
    }

    #[test]
    fn uptime_window_end_is_exclusive_and_day_bound() {
        let s = up(&["17-20 TUE"]);
        assert!(!s.active_at(t(2, 16)));
        assert!(s.active_at(t(2, 17)));
        assert!(s.active_at(t(2, 19)));
        assert!(!s.active_at(t(2, 20)));
        assert!(!s.active_at(t(3, 18)));
    }

    #[test]
    fn downtime_inverts_and_lists_and_ranges_expand() {
        let v = vec!["9-12,14 MON-WED,fri".to_string()];
        let s = Schedule::from_lists(None, Some(&v)).unwrap().unwrap();
        assert!(!s.active_at(t(1, 9)));
        assert!(s.active_at(t(1, 12)));
        assert!(!s.active_at(t(3, 23)));
        assert!(!s.active_at(t(5, 15)));
        assert!(s.active_at(t(4, 10)));
        assert!(s.active_at(t(0, 10)));
    }

    #[test]
    fn python_quirks_zero_start_ignored_zero_end_is_midnight() {
        let s = up(&["0-6 SUN", "22-0 SAT"]);
        assert!(!s.active_at(t(0, 3)));
        assert!(s.active_at(t(6, 23)));
        assert!(!s.active_at(t(6, 21)));
    }

    #[test]
    fn both_given_are_ignored_and_bad_entries_fail_or_warn() {
        let v = vec!["1-2 MON".to_string()];
        assert_eq!(Schedule::from_lists(Some(&v), Some(&v)).unwrap(), None);
        let bad = vec!["17-20".to_string()];
        assert!(Schedule::from_lists(Some(&bad), None).is_err());
        let s = up(&["x-3 MON,FOO"]);
        assert_eq!(s.warnings.len(), 2);
        assert!(!s.active_at(t(1, 1)));
    }

    #[test]
    fn describe_matches_the_python_wording() {
        assert_eq!(
            up(&["17-20 TUE-WED"]).describe(),
            "Working hours uptime configurations\n  - 17:00-19:59 on TUE and WED\n"
        );
    }
}
