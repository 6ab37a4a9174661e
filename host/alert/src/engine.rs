//! The alert engine thread: takes stored entries from the live feed in
//! batches, runs every detector, hands alerts to the hub, and ticks once a
//! second. It never slows the capture: the feed is a bounded fan-out, and
//! when the engine falls behind the entries it missed are counted in
//! `AlertHub::skipped_entries`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use remora_core::fanout::{Missed, Subscriber};
use remora_core::Timestamp;
use remora_store::StoredEntry;

use crate::{AlertHub, Detector};

/// Entries handed to the detectors per call.
const BATCH: usize = 512;
const IDLE_POLL: Duration = Duration::from_millis(20);
const TICK_US: i64 = 1_000_000;

/// What "now" is for ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Live capture: the wall clock.
    Wall,
    /// Reading files: the newest capture time seen.
    Capture,
}

/// Runs until `stop` is set, then drains what is queued and ticks once more.
pub fn spawn(
    mut detectors: Vec<Box<dyn Detector>>,
    hub: Arc<AlertHub>,
    rx: Subscriber<Arc<StoredEntry>>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("remora-alerts".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut newest = Timestamp::default();
            let mut last_tick: Option<Timestamp> = None;
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                let mut closed = false;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(Missed::Skipped(n)) => {
                            hub.skipped_entries.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(Missed::Empty) => break,
                        Err(Missed::Closed) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    for e in &batch {
                        newest = newest.max(e.entry.timestamp());
                    }
                    for d in &mut detectors {
                        for a in d.on_entries(&batch) {
                            hub.raise(a);
                        }
                    }
                }
                let now = match clock {
                    Clock::Capture => newest,
                    Clock::Wall => Timestamp::now(),
                };
                let due = last_tick.is_none_or(|t| now.micros() >= t.micros() + TICK_US);
                let draining_done = batch.is_empty() && (stopping || closed);
                if due || draining_done {
                    last_tick = Some(now);
                    for d in &mut detectors {
                        for a in d.on_tick(now) {
                            hub.raise(a);
                        }
                    }
                }
                if !batch.is_empty() || due || draining_done {
                    for d in &detectors {
                        if let Some(s) = d.stats() {
                            hub.publish_stats(d.name(), s);
                        }
                    }
                }
                if draining_done {
                    return;
                }
                if batch.is_empty() {
                    std::thread::sleep(IDLE_POLL);
                }
                batch.clear();
            }
        })
}

/// Waits up to `limit` for webhook queues to empty (on shutdown).
pub fn wait_for_delivery(hub: &AlertHub, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !hub.idle() && Instant::now() < deadline {
        std::thread::sleep(IDLE_POLL);
    }
}
