//! One publisher, many subscribers, each with a queue bounded in items and
//! in bytes: a subscriber that falls behind skips its oldest items
//! (counted, and told) instead of making the publisher wait or the process
//! grow.
//!
//! Why not a broadcast channel: it bounds lag in items only, and what a
//! lagging subscriber holds is that many items of any size (8,192 entries
//! with megabyte bodies are gigabytes). Here every queue is also held to
//! `max_bytes`. A queue is always the newest items published (it loses its
//! oldest, and is read from its oldest), so the queues together hold at
//! most the newest `max_bytes` of items, shared, however many subscribers
//! lag.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// The publishing side; clones publish to the same subscribers.
pub struct Fanout<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Fanout<T> {
    fn clone(&self) -> Self {
        Fanout {
            shared: self.shared.clone(),
        }
    }
}

/// What the publishers share; dropped with the last of them, which closes
/// every queue (subscribers hold their queue, not this).
struct Shared<T> {
    queues: Mutex<Vec<Arc<Queue<T>>>>,
    max_items: usize,
    max_bytes: u64,
}

struct Queue<T> {
    state: Mutex<QueueState<T>>,
}

struct QueueState<T> {
    items: VecDeque<(T, u64)>,
    bytes: u64,
    /// Items dropped since the subscriber last heard of it.
    skipped: u64,
    /// Every publisher is gone: nothing more will come.
    closed: bool,
    waker: Option<Waker>,
}

/// What [`Subscriber::try_recv`] found instead of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Nothing queued now.
    Empty,
    /// This many items were dropped unread (the queue was full); the next
    /// call goes on with the oldest kept.
    Skipped(u64),
    /// Nothing queued, and no publisher is left.
    Closed,
}

/// One subscriber's end; dropping it unsubscribes.
pub struct Subscriber<T> {
    queue: Arc<Queue<T>>,
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic while holding one of these locks leaves consistent state (no
    // update spans two statements that could panic between them).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Clone> Fanout<T> {
    /// Queues of at most `max_items` items and `max_bytes` bytes each (the
    /// newest item is kept even when it alone is larger).
    pub fn new(max_items: usize, max_bytes: u64) -> Self {
        Fanout {
            shared: Arc::new(Shared {
                queues: Mutex::new(Vec::new()),
                max_items: max_items.max(1),
                max_bytes,
            }),
        }
    }

    /// A new subscriber; it sees what is published from now on.
    pub fn subscribe(&self) -> Subscriber<T> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                bytes: 0,
                skipped: 0,
                closed: false,
                waker: None,
            }),
        });
        lock(&self.shared.queues).push(queue.clone());
        Subscriber { queue }
    }

    /// Hand `item`, which takes about `bytes`, to every subscriber.
    pub fn publish(&self, item: T, bytes: u64) {
        let mut queues = lock(&self.shared.queues);
        // A queue only the fanout holds has no subscriber left.
        queues.retain(|q| Arc::strong_count(q) > 1);
        for q in queues.iter() {
            let mut s = lock(&q.state);
            s.items.push_back((item.clone(), bytes));
            s.bytes += bytes;
            while s.items.len() > self.shared.max_items
                || (s.bytes > self.shared.max_bytes && s.items.len() > 1)
            {
                if let Some((_, b)) = s.items.pop_front() {
                    s.bytes -= b;
                    s.skipped += 1;
                }
            }
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        let mut queues = lock(&self.shared.queues);
        queues.retain(|q| Arc::strong_count(q) > 1);
        queues.len()
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        for q in lock(&self.queues).iter() {
            let mut s = lock(&q.state);
            s.closed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Subscriber<T> {
    /// The oldest queued item, or why there is none.
    pub fn try_recv(&self) -> Result<T, Missed> {
        let mut s = lock(&self.queue.state);
        Self::take(&mut s)
    }

    fn take(s: &mut QueueState<T>) -> Result<T, Missed> {
        if s.skipped > 0 {
            return Err(Missed::Skipped(std::mem::take(&mut s.skipped)));
        }
        match s.items.pop_front() {
            Some((item, b)) => {
                s.bytes -= b;
                Ok(item)
            }
            None if s.closed => Err(Missed::Closed),
            None => Err(Missed::Empty),
        }
    }

    /// The next item or skip, waiting for one; `Err(Missed::Closed)` once
    /// no publisher is left and the queue is empty.
    pub async fn recv(&self) -> Result<T, Missed> {
        poll_fn(|cx| {
            let mut s = lock(&self.queue.state);
            match Self::take(&mut s) {
                Err(Missed::Empty) => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                other => Poll::Ready(other),
            }
        })
        .await
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> u64 {
        lock(&self.queue.state).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_item_in_order() {
        let f = Fanout::new(16, 1 << 20);
        let (a, b) = (f.subscribe(), f.subscribe());
        for i in 0..10 {
            f.publish(i, 1);
        }
        for s in [&a, &b] {
            let got: Vec<i32> = std::iter::from_fn(|| s.try_recv().ok()).collect();
            assert_eq!(got, (0..10).collect::<Vec<_>>());
            assert_eq!(s.try_recv(), Err(Missed::Empty));
        }
    }

    #[test]
    fn a_lagging_subscriber_skips_its_oldest_by_count_and_by_bytes() {
        let f = Fanout::new(4, 100);
        let s = f.subscribe();
        for i in 0..10 {
            f.publish(i, 1);
        }
        assert_eq!(s.try_recv(), Err(Missed::Skipped(6)));
        assert_eq!(s.try_recv(), Ok(6));
        // Bytes: 40 + 40 + 40 is over 100, so the first goes.
        let s = f.subscribe();
        for i in 0..3 {
            f.publish(i, 40);
        }
        assert_eq!(s.queued_bytes(), 80);
        assert_eq!(s.try_recv(), Err(Missed::Skipped(1)));
        assert_eq!(s.try_recv(), Ok(1));
        // One item larger than the whole allowance is still delivered.
        f.publish(7, 1000);
        assert_eq!(s.try_recv(), Err(Missed::Skipped(1)));
        assert_eq!(s.try_recv(), Ok(7));
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn a_fast_subscriber_loses_nothing_to_a_slow_one() {
        let f = Fanout::new(4, 1 << 20);
        let (fast, slow) = (f.subscribe(), f.subscribe());
        for i in 0..100 {
            f.publish(i, 1);
            assert_eq!(fast.try_recv(), Ok(i));
        }
        assert_eq!(slow.try_recv(), Err(Missed::Skipped(96)));
        assert_eq!(f.subscribers(), 2);
        drop(slow);
        assert_eq!(f.subscribers(), 1);
    }

    #[test]
    fn items_already_held_go_when_the_subscriber_does() {
        let f = Fanout::new(8, 1 << 20);
        let s = f.subscribe();
        let item = Arc::new(5);
        f.publish(item.clone(), 1);
        assert_eq!(Arc::strong_count(&item), 2);
        drop(s);
        f.publish(Arc::new(6), 1);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn recv_waits_for_an_item_and_ends_when_the_publishers_do() {
        let f = Fanout::new(8, 1 << 20);
        let s = f.subscribe();
        let g = f.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            g.publish(1, 1);
            drop(g);
        });
        assert_eq!(block_on(s.recv()), Ok(1));
        t.join().unwrap();
        drop(f);
        assert_eq!(block_on(s.recv()), Err(Missed::Closed));
    }

    /// A minimal executor: these futures only need a waker that unparks.
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
