//! How much a plugin instance may log: a plugin that logs on every call
//! (or panics in a loop) would otherwise flood the host's log, and a pod's
//! log fills its node's disk.

use std::time::Instant;

/// Lines a plugin instance may log at once ...
const BURST: f64 = 50.0;
/// ... and per second after that.
const PER_SECOND: f64 = 10.0;
/// Longest line forwarded, in bytes; the rest is cut.
pub(crate) const MAX_LINE: usize = 1024;

/// A token bucket of log lines.
#[derive(Debug)]
pub(crate) struct LogBudget {
    tokens: f64,
    last: Option<Instant>,
    /// Lines dropped since the last one let through.
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            tokens: BURST,
            last: None,
            suppressed: 0,
        }
    }
}

impl LogBudget {
    /// May a line logged at `now` go out? `Some(n)`: yes, and `n` lines were
    /// dropped before it (say so); `None`: no, it is counted.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * PER_SECOND;
            self.tokens = (self.tokens + refill).min(BURST);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl LogBudget {
    /// May `plugin` log a line now? When lines were dropped before it,
    /// says how many (`what`: which kind of line) first.
    pub(crate) fn pass(&mut self, plugin: &str, what: &str) -> bool {
        match self.admit(Instant::now()) {
            Some(0) => true,
            Some(dropped) => {
                tracing::warn!(
                    plugin,
                    "{dropped} {what} lines dropped: over the plugin's log rate"
                );
                true
            }
            None => false,
        }
    }
}

/// `line` cut to at most [`MAX_LINE`] bytes, on a character boundary.
pub(crate) fn clip(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_drops_are_counted() {
        let t0 = Instant::now();
        let mut b = LogBudget::default();
        let passed = (0..200).filter(|_| b.admit(t0).is_some()).count();
        assert_eq!(passed, BURST as usize);
        // A second later, ten more lines; the first says what was dropped.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Some(200 - BURST as u64));
        let more = (0..100).filter(|_| b.admit(t1).is_some()).count();
        assert_eq!(more, PER_SECOND as usize - 1);
        // A long quiet period refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        let after_quiet = (0..1000).filter(|_| b.admit(t2).is_some()).count();
        assert_eq!(after_quiet, BURST as usize);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let s = "é".repeat(MAX_LINE);
        let c = clip(&s);
        assert!(c.len() <= MAX_LINE && c.len() >= MAX_LINE - 1);
        assert!(c.chars().all(|ch| ch == 'é'));
        assert_eq!(clip("short"), "short");
    }
}
