//! IP fragment reassembly. Fragments are rare on the paths we watch, so the
//! table is simple; what matters is that it is bounded in memory, datagram
//! count and time, and that every fragment it gives up on is counted.

use std::collections::HashMap;
use std::net::IpAddr;

use remora_core::{DropReason, Drops};

use crate::ip::Fragment;

/// Largest reassembled IP payload: the 16-bit length fields cap it.
const MAX_DATAGRAM: u32 = 65_535;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_bytes: usize,
    pub max_datagrams: usize,
    pub timeout_us: i64,
}

struct Pending {
    data: Vec<u8>,
    /// Byte ranges already filled, sorted and disjoint.
    have: Vec<(u32, u32)>,
    /// Payload length, known once the last fragment arrived.
    total: Option<u32>,
    first_ts: i64,
    fragments: u64,
    wire_len: u32,
}

pub(crate) enum Outcome {
    Held,
    Dropped(DropReason),
    /// The datagram is in [`Defrag::datagram`].
    Complete {
        wire_len: u32,
    },
}

pub(crate) struct Defrag {
    limits: Limits,
    table: HashMap<FragKey, Pending>,
    pending_bytes: usize,
    done: Vec<u8>,
    next_sweep: i64,
    /// Fragments that were held and later given up on (eviction, timeout,
    /// inconsistency). Fragments refused on arrival are the caller's to count.
    pub dropped: Drops,
    pub reassembled: u64,
}

impl Defrag {
    pub fn new(limits: Limits) -> Self {
        Defrag {
            limits,
            table: HashMap::new(),
            pending_bytes: 0,
            done: Vec::new(),
            next_sweep: i64::MIN,
            dropped: Drops::default(),
            reassembled: 0,
        }
    }

    /// The last completed datagram's payload (after the IP header).
    pub fn datagram(&self) -> &[u8] {
        &self.done
    }

    pub fn pending_datagrams(&self) -> usize {
        self.table.len()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub fn insert(
        &mut self,
        key: FragKey,
        frag: Fragment,
        payload: &[u8],
        ts: i64,
        wire_len: u32,
    ) -> Outcome {
        self.expire(ts);
        let start = frag.offset;
        let end = match u32::try_from(payload.len())
            .ok()
            .and_then(|l| start.checked_add(l))
        {
            Some(end) if end <= MAX_DATAGRAM => end,
            _ => {
                self.discard(&key, DropReason::Undecodable);
                return Outcome::Dropped(DropReason::Undecodable);
            }
        };

        if let Some(p) = self.table.get(&key) {
            let inconsistent = match p.total {
                Some(total) => end > total || (!frag.more && end != total),
                None => !frag.more && p.have.last().is_some_and(|&(_, e)| e > end),
            };
            if inconsistent {
                self.discard(&key, DropReason::Undecodable);
                return Outcome::Dropped(DropReason::Undecodable);
            }
        } else {
            if self.limits.max_datagrams == 0 {
                return Outcome::Dropped(DropReason::FragmentLimit);
            }
            while self.table.len() >= self.limits.max_datagrams {
                self.evict_oldest(None);
            }
            self.table.insert(
                key,
                Pending {
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    first_ts: ts,
                    fragments: 0,
                    wire_len: 0,
                },
            );
        }

        let current_len = self.table[&key].data.len();
        let growth = (end as usize).saturating_sub(current_len);
        while self.pending_bytes + growth > self.limits.max_bytes {
            if !self.evict_oldest(Some(&key)) {
                // Nothing else to evict: this datagram alone exceeds the budget.
                self.discard(&key, DropReason::FragmentLimit);
                return Outcome::Dropped(DropReason::FragmentLimit);
            }
        }
        self.pending_bytes += growth;

        let p = self.table.get_mut(&key).expect("inserted above");
        if growth > 0 {
            p.data.resize(end as usize, 0);
        }
        fill_gaps(p, start, end, payload);
        p.fragments += 1;
        p.wire_len = p.wire_len.saturating_add(wire_len);
        if !frag.more {
            p.total = Some(end);
        }
        let complete = p.total.is_some_and(|t| p.have.as_slice() == [(0, t)]);
        if !complete {
            return Outcome::Held;
        }
        let p = self.table.remove(&key).expect("present");
        self.pending_bytes -= p.data.len();
        self.done = p.data;
        self.reassembled += 1;
        Outcome::Complete {
            wire_len: p.wire_len,
        }
    }

    /// Drops datagrams older than the timeout. Runs at most twice per timeout
    /// period of packet time, so its cost is amortised.
    fn expire(&mut self, now: i64) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.saturating_add((self.limits.timeout_us / 2).max(1));
        let timeout = self.limits.timeout_us;
        let mut freed = 0;
        let mut expired = 0;
        self.table.retain(|_, p| {
            let alive = now.saturating_sub(p.first_ts) <= timeout;
            if !alive {
                freed += p.data.len();
                expired += p.fragments;
            }
            alive
        });
        self.pending_bytes -= freed;
        self.dropped.add(DropReason::FragmentLimit, expired);
    }

    /// Evicts the datagram that started first (other than `keep`); false if none.
    fn evict_oldest(&mut self, keep: Option<&FragKey>) -> bool {
        let oldest = self
            .table
            .iter()
            .filter(|(k, _)| Some(*k) != keep)
            .min_by_key(|(_, p)| p.first_ts)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                self.discard(&k, DropReason::FragmentLimit);
                true
            }
            None => false,
        }
    }

    fn discard(&mut self, key: &FragKey, reason: DropReason) {
        if let Some(p) = self.table.remove(key) {
            self.pending_bytes -= p.data.len();
            self.dropped.add(reason, p.fragments);
        }
    }
}

/// Copies the parts of `[start, end)` not yet filled: on overlap the first
/// copy wins, which is what most end hosts do and keeps reassembly stable.
fn fill_gaps(p: &mut Pending, start: u32, end: u32, payload: &[u8]) {
    if start == end {
        return;
    }
    let mut cursor = start;
    for &(s, e) in &p.have {
        if e <= cursor {
            continue;
        }
        if s >= end {
            break;
        }
        if s > cursor {
            copy(&mut p.data, cursor, s, start, payload);
        }
        cursor = cursor.max(e);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        copy(&mut p.data, cursor, end, start, payload);
    }
    // Merge [start, end) into the sorted range list.
    let mut merged = (start, end);
    let mut out = Vec::with_capacity(p.have.len() + 1);
    let mut placed = false;
    for &(s, e) in &p.have {
        if e < merged.0 {
            out.push((s, e));
        } else if s > merged.1 {
            if !placed {
                out.push(merged);
                placed = true;
            }
            out.push((s, e));
        } else {
            merged = (merged.0.min(s), merged.1.max(e));
        }
    }
    if !placed {
        out.push(merged);
    }
    p.have = out;
}

fn copy(data: &mut [u8], from: u32, to: u32, start: u32, payload: &[u8]) {
    let (a, b) = ((from - start) as usize, (to - start) as usize);
    data[from as usize..to as usize].copy_from_slice(&payload[a..b]);
}
