//! Says a repeated failure once: the first failure of a run of them is logged, the next ones stay
//! quiet until a success ends the run. A poll every few seconds against a broken server or proxy
//! must not flood the agent's log, and one line still says what is wrong.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct FailureNotice {
    failing: AtomicBool,
}

impl FailureNotice {
    /// A failure: whether it is the first of a run, and so should be said.
    pub fn first_failure(&self) -> bool {
        !self.failing.swap(true, Ordering::Relaxed)
    }

    /// A success: whether it ended a run of failures (worth a line saying so).
    pub fn recovered(&self) -> bool {
        self.failing.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_run_of_failures() {
        let notice = FailureNotice::default();
        assert!(!notice.recovered());
        assert!(notice.first_failure());
        assert!(!notice.first_failure());
        assert!(!notice.first_failure());
        assert!(notice.recovered());
        assert!(!notice.recovered());
        assert!(notice.first_failure());
    }
}
