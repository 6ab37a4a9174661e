//! Rate limit and de-duplication of one rule's alerts, in capture time:
//! shared by rule alerts and alert plugins, so `rate_limit` and `dedupe`
//! mean the same wherever an alert comes from.

use std::collections::HashMap;
use std::time::Duration;

use remora_core::Timestamp;

/// Keys one throttle remembers for de-duplication; beyond it a new key's
/// alert is withheld (and counted) so a flood of distinct keys cannot grow
/// memory.
pub const MAX_KEYS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Within `rate_limit` of the last admitted alert.
    RateLimited,
    /// The same key was admitted within `dedupe`.
    Duplicate,
    /// The de-duplication table is full.
    Full,
}

#[derive(Debug, Default)]
pub struct Throttle {
    rate_limit: Option<Duration>,
    dedupe: Option<Duration>,
    last_admitted: Option<Timestamp>,
    recent: HashMap<String, Timestamp>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Throttle {
    pub fn new(rate_limit: Option<Duration>, dedupe: Option<Duration>) -> Throttle {
        Throttle {
            rate_limit,
            dedupe,
            ..Throttle::default()
        }
    }

    /// Neither limit is set: every alert passes.
    pub fn is_open(&self) -> bool {
        self.rate_limit.is_none() && self.dedupe.is_none()
    }

    /// Whether an alert at `at` with de-duplication key `key` goes out; an
    /// admitted one starts the rate-limit interval and marks its key.
    pub fn admit(&mut self, at: Timestamp, key: &str) -> Verdict {
        if let (Some(limit), Some(last)) = (self.rate_limit, self.last_admitted) {
            if at.micros() < last.micros().saturating_add(micros(limit)) {
                return Verdict::RateLimited;
            }
        }
        if let Some(window) = self.dedupe {
            if let Some(seen) = self.recent.get(key) {
                if at.micros() < seen.micros().saturating_add(micros(window)) {
                    return Verdict::Duplicate;
                }
            }
            if !self.recent.contains_key(key) && self.recent.len() >= MAX_KEYS {
                return Verdict::Full;
            }
            self.recent.insert(key.to_string(), at);
        }
        self.last_admitted = Some(at);
        Verdict::Admit
    }

    /// Forget de-duplication marks that can no longer matter.
    pub fn expire(&mut self, now: Timestamp) {
        if let Some(d) = self.dedupe {
            let span = micros(d);
            self.recent
                .retain(|_, seen| now.micros() < seen.micros().saturating_add(span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000)
    }

    #[test]
    fn rate_limit_and_dedupe_in_capture_time() {
        let mut r = Throttle::new(Some(Duration::from_secs(10)), None);
        assert_eq!(r.admit(t(0), "a"), Verdict::Admit);
        assert_eq!(r.admit(t(9), "b"), Verdict::RateLimited);
        assert_eq!(r.admit(t(10), "b"), Verdict::Admit);

        let mut d = Throttle::new(None, Some(Duration::from_secs(60)));
        assert_eq!(d.admit(t(0), "a"), Verdict::Admit);
        assert_eq!(d.admit(t(1), "b"), Verdict::Admit);
        assert_eq!(d.admit(t(59), "a"), Verdict::Duplicate);
        assert_eq!(d.admit(t(60), "a"), Verdict::Admit);
        d.expire(t(200));
        assert!(d.recent.is_empty());
        assert!(Throttle::default().is_open() && !d.is_open());
    }
}
