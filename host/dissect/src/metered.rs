//! Per-plugin call counts and call latency around any [`Backend`], for the
//! API's plugin list and `/metrics`.
//!
//! Every call is counted; one call in [`TIME_EVERY`] is timed, which keeps
//! the clock reads off the hot path (two per timed call) while the
//! histogram still describes the calls faithfully.

use remora_core::Direction;
use remora_runtime::wit;

use crate::backend::Job;
use crate::{Backend, BackendFault};

/// Upper bounds of the latency buckets, in microseconds; a last bucket
/// holds the rest.
pub const LATENCY_BOUNDS_US: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 5_000, 50_000];
/// One call in this many is timed.
pub const TIME_EVERY: u64 = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginMeter {
    pub calls: u64,
    /// Parse errors the plugin reported.
    pub errors: u64,
    /// Traps, deadlines and limits (not the calls refused because of one).
    pub faults: u64,
}

/// Timed calls by duration (non-cumulative buckets, the last unbounded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallLatency {
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub sum_ns: u64,
    pub count: u64,
}

impl CallLatency {
    fn record(&mut self, ns: u64) {
        let us = ns / 1000;
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us < b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i] += 1;
        self.sum_ns += ns;
        self.count += 1;
    }

    pub fn merge(&mut self, o: &CallLatency) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_ns += o.sum_ns;
        self.count += o.count;
    }
}

/// What a [`Metered`] backend measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meters {
    /// By plugin index (as in the catalog).
    pub plugins: Vec<PluginMeter>,
    pub latency: CallLatency,
}

impl Meters {
    pub fn merge(&mut self, o: &Meters) {
        if self.plugins.len() < o.plugins.len() {
            self.plugins.resize(o.plugins.len(), PluginMeter::default());
        }
        for (a, b) in self.plugins.iter_mut().zip(&o.plugins) {
            a.calls += b.calls;
            a.errors += b.errors;
            a.faults += b.faults;
        }
        self.latency.merge(&o.latency);
    }
}

/// A backend that counts and times the calls of the one it wraps.
pub struct Metered<B> {
    inner: B,
    meters: Meters,
    seq: u64,
}

impl<B: Backend> Metered<B> {
    pub fn new(inner: B) -> Self {
        Metered {
            inner,
            meters: Meters::default(),
            seq: 0,
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn call<T>(
        &mut self,
        plugin: u16,
        f: impl FnOnce(&mut B) -> Result<T, BackendFault>,
        is_error: impl FnOnce(&T) -> bool,
    ) -> Result<T, BackendFault> {
        self.seq += 1;
        let timed = self.seq.is_multiple_of(TIME_EVERY);
        let start = timed.then(std::time::Instant::now);
        let r = f(&mut self.inner);
        if let Some(t) = start {
            self.meters.latency.record(t.elapsed().as_nanos() as u64);
        }
        self.plugin(plugin).count(&r, is_error);
        r
    }

    fn plugin(&mut self, plugin: u16) -> &mut PluginMeter {
        let i = plugin as usize;
        if self.meters.plugins.len() <= i {
            self.meters.plugins.resize(i + 1, PluginMeter::default());
        }
        &mut self.meters.plugins[i]
    }
}

impl PluginMeter {
    /// One answered call: a call, maybe an error; a fault counts where it
    /// happened, not for the calls it made fail.
    fn count<T>(&mut self, r: &Result<T, BackendFault>, is_error: impl FnOnce(&T) -> bool) {
        match r {
            Ok(v) => {
                self.calls += 1;
                self.errors += u64::from(is_error(v));
            }
            Err(e) if !e.consequence => {
                self.calls += 1;
                self.faults += 1;
            }
            Err(_) => {}
        }
    }
}

fn feed_error(r: &wit::FeedResult) -> bool {
    r.error.is_some()
}

impl<B: Backend> Backend for Metered<B> {
    type Session = (u16, B::Session);

    fn probe(
        &mut self,
        plugin: u16,
        flow: &wit::FlowInfo,
        dir: Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, BackendFault> {
        self.call(plugin, |b| b.probe(plugin, flow, dir, data), |_| false)
    }

    fn open(&mut self, plugin: u16, flow: &wit::FlowInfo) -> Result<Self::Session, BackendFault> {
        self.call(plugin, |b| b.open(plugin, flow), |_| false)
            .map(|s| (plugin, s))
    }

    fn takeover(
        &mut self,
        s: &Self::Session,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), BackendFault> {
        self.call(s.0, |b| b.takeover(&s.1, previous, params), |_| false)
    }

    fn feed(
        &mut self,
        s: &Self::Session,
        dir: Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, BackendFault> {
        self.call(s.0, |b| b.feed(&s.1, dir, base, data), feed_error)
    }

    fn gap(
        &mut self,
        s: &Self::Session,
        dir: Direction,
        len: u64,
    ) -> Result<wit::FeedResult, BackendFault> {
        self.call(s.0, |b| b.gap(&s.1, dir, len), feed_error)
    }

    fn end(&mut self, s: &Self::Session, dir: Direction) -> Result<wit::FeedResult, BackendFault> {
        self.call(s.0, |b| b.end(&s.1, dir), feed_error)
    }

    /// A batch crosses the boundary once: timed as one call (every batch:
    /// batches are few), counted as one call per job.
    fn run(
        &mut self,
        plugin: u16,
        jobs: &[Job<'_, Self::Session>],
        data: &[u8],
    ) -> Vec<Result<wit::FeedResult, BackendFault>> {
        let inner: Vec<Job<'_, B::Session>> = jobs
            .iter()
            .map(|j| Job {
                session: &j.session.1,
                kind: j.kind,
                dir: j.dir,
                base: j.base,
                len: j.len,
            })
            .collect();
        let start = std::time::Instant::now();
        let answers = self.inner.run(plugin, &inner, data);
        self.meters
            .latency
            .record(start.elapsed().as_nanos() as u64);
        let m = self.plugin(plugin);
        for a in &answers {
            m.count(a, feed_error);
        }
        answers
    }

    fn close(&mut self, s: &Self::Session) {
        self.inner.close(&s.1)
    }

    fn meters(&self) -> Option<&Meters> {
        Some(&self.meters)
    }

    fn renewals(&self) -> u64 {
        self.inner.renewals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_whose_bound_exceeds_it() {
        let mut l = CallLatency::default();
        l.record(500); // 0 µs
        l.record(1_500); // 1 µs
        l.record(7_000_000); // 7 ms
        l.record(u64::MAX / 2); // beyond every bound
        assert_eq!(l.buckets[0], 1);
        assert_eq!(l.buckets[1], 1);
        assert_eq!(
            l.buckets[LATENCY_BOUNDS_US.iter().position(|&b| b == 50_000).unwrap()],
            1
        );
        assert_eq!(l.buckets[LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(l.count, 4);
    }

    #[test]
    fn merge_adds_per_plugin_and_grows() {
        let mut a = Meters {
            plugins: vec![PluginMeter {
                calls: 1,
                errors: 0,
                faults: 0,
            }],
            ..Meters::default()
        };
        let b = Meters {
            plugins: vec![
                PluginMeter {
                    calls: 2,
                    errors: 1,
                    faults: 0,
                },
                PluginMeter {
                    calls: 5,
                    errors: 0,
                    faults: 1,
                },
            ],
            ..Meters::default()
        };
        a.merge(&b);
        assert_eq!(a.plugins[0].calls, 3);
        assert_eq!(a.plugins[1].faults, 1);
    }
}
