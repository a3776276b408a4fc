//! How long the idle daemon waits between queue polls: the interval the user set, else an
//! adaptive pace, quick right after work and slower once the queues stayed empty a while.
//!
//! The Python agent polls every `max(--polling-interval, 5)` seconds and spends 2 + (one per
//! queue) calls on each pass (clearml_agent/commands/worker.py: Worker.run_tasks_loop:
//! get_worker_properties = `queues.get_all` + `workers.get_runtime_properties`, then
//! `queues.get_next_task` per queue), about 36 calls a minute for one queue. We spend one call
//! per queue, so we can poll more often within the same budget: [`QUICK_POLLS`] polls
//! [`QUICK`] apart after each task (or the start), then [`IDLE`] apart. Over any minute that is
//! at most 12 + 12 = 24 calls for one queue (plus the status report every 30 s), and 15 a minute
//! once idle; with more queues both intervals stretch so that no pass costs more than the
//! Python agent's. An explicit interval (`CLEARML_AGENT_QUEUE_POLL_FREQ_SEC` or
//! `--polling-interval` other than 5) is kept as given. See docs/differences.md.

use std::time::Duration;

/// Interval of the quick polls after work.
const QUICK: Duration = Duration::from_secs(1);
/// How many quick polls follow each task (or the start).
const QUICK_POLLS: u32 = 12;
/// Interval once the queues stayed empty for the quick polls.
const IDLE: Duration = Duration::from_secs(4);

/// The poll setting, resolved once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollPace {
    /// The user's interval, used as given.
    Fixed(Duration),
    /// Quick after work, slower when idle.
    Adaptive,
}

/// The wait before the next pass over the queues.
#[derive(Debug, Clone)]
pub struct PollClock {
    pace: PollPace,
    /// Calls one pass makes (one per queue).
    calls_per_pass: usize,
    quick_left: u32,
}

impl PollClock {
    pub fn new(pace: PollPace, queues: usize) -> PollClock {
        PollClock {
            pace,
            calls_per_pass: queues.max(1),
            quick_left: QUICK_POLLS,
        }
    }

    /// A task was pulled: the next polls are quick again.
    pub fn worked(&mut self) {
        self.quick_left = QUICK_POLLS;
    }

    /// The wait after a pass that found nothing.
    pub fn next_wait(&mut self) -> Duration {
        match self.pace {
            PollPace::Fixed(d) => d,
            PollPace::Adaptive => {
                let base = if self.quick_left > 0 {
                    self.quick_left -= 1;
                    QUICK
                } else {
                    IDLE
                };
                // Python spends 2 + n calls per pass, we spend n: scale by 3n / (2 + n) so that
                // a pass never costs more than Python's for the same queues.
                let n = self.calls_per_pass as f64;
                base.mul_f64((3.0 * n / (2.0 + n)).max(1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_after_work_then_idle() {
        let mut c = PollClock::new(PollPace::Adaptive, 1);
        let waits: Vec<Duration> = (0..14).map(|_| c.next_wait()).collect();
        assert!(waits[..12].iter().all(|w| *w == QUICK));
        assert_eq!(waits[12], IDLE);
        c.worked();
        assert_eq!(c.next_wait(), QUICK);
        // within any minute: at most the quick polls and a minute of idle ones
        let quick_time = QUICK.as_secs_f64() * QUICK_POLLS as f64;
        let per_minute = QUICK_POLLS as f64 + (60.0 - quick_time) / IDLE.as_secs_f64();
        assert!(per_minute <= 27.0 - 2.0, "{per_minute}");
    }

    #[test]
    fn more_queues_poll_slower_and_fixed_is_kept() {
        let mut c = PollClock::new(PollPace::Adaptive, 4);
        assert_eq!(c.next_wait(), QUICK.mul_f64(2.0));
        let mut f = PollClock::new(PollPace::Fixed(Duration::from_millis(500)), 3);
        assert_eq!(f.next_wait(), Duration::from_millis(500));
    }
}
