//! Where the flow table keeps its flows: fixed-size chunks, so growing never
//! moves the flows already there.
//!
//! A flat `Vec` doubled as flows arrived: at each step it held the old and
//! the new copy at once and copied every flow across (tens of MB for a port
//! scan's 200,000 dataless flows, a stall of a live capture while it ran),
//! and it kept up to twice the flows' memory afterwards. Chunks grow by
//! 1,024 flows and are never given back while the table lives: the peak
//! is what the table held at its fullest, bounded by `max_flows`.

/// Slots per chunk.
const CHUNK: usize = 1024;

pub(super) struct Slab<T> {
    chunks: Vec<Box<[Option<T>]>>,
    /// Freed slots, reused first (last freed, first reused).
    free: Vec<u32>,
    /// Slots handed out at least once: every slot below is in a chunk.
    used: u32,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
            used: 0,
        }
    }

    fn slot(&self, idx: u32) -> &Option<T> {
        &self.chunks[idx as usize / CHUNK][idx as usize % CHUNK]
    }

    fn slot_mut(&mut self, idx: u32) -> &mut Option<T> {
        &mut self.chunks[idx as usize / CHUNK][idx as usize % CHUNK]
    }

    /// The value at `idx`; panics if the slot is empty (an index the table
    /// lost track of).
    pub(super) fn get(&self, idx: u32) -> &T {
        self.slot(idx).as_ref().expect("live slot")
    }

    pub(super) fn get_mut(&mut self, idx: u32) -> &mut T {
        self.slot_mut(idx).as_mut().expect("live slot")
    }

    pub(super) fn insert(&mut self, value: T) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.used;
                if i as usize == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                }
                self.used += 1;
                i
            }
        };
        *self.slot_mut(idx) = Some(value);
        idx
    }

    pub(super) fn remove(&mut self, idx: u32) -> T {
        let value = self.slot_mut(idx).take().expect("live slot");
        self.free.push(idx);
        value
    }

    /// Occupied slots with their indices, in index order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .take(self.used as usize)
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_where_they_were_put_across_chunks() {
        let mut s = Slab::new();
        let n = (CHUNK * 2 + 7) as u32;
        let ids: Vec<u32> = (0..n).map(|v| s.insert(v * 3)).collect();
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
        assert_eq!(s.chunks.len(), 3);
        for &i in &ids {
            assert_eq!(*s.get(i), i * 3);
        }
        *s.get_mut(CHUNK as u32 + 1) = 1;
        assert_eq!(*s.get(CHUNK as u32 + 1), 1);
    }

    #[test]
    fn freed_slots_are_reused_before_the_slab_grows() {
        let mut s = Slab::new();
        for v in 0..CHUNK as u32 {
            s.insert(v);
        }
        assert_eq!(s.remove(5), 5);
        assert_eq!(s.remove(900), 900);
        assert_eq!(s.insert(42), 900);
        assert_eq!(s.insert(43), 5);
        assert_eq!(s.chunks.len(), 1, "no chunk added while slots were free");
        assert_eq!(s.insert(44), CHUNK as u32);
        assert_eq!(s.chunks.len(), 2);
    }

    #[test]
    fn iter_lists_occupied_slots_in_index_order() {
        let mut s = Slab::new();
        for v in 0..(CHUNK as u32 + 3) {
            s.insert(v);
        }
        for i in [0, 2, CHUNK as u32] {
            s.remove(i);
        }
        let got: Vec<u32> = s.iter().map(|(i, _)| i).collect();
        let want: Vec<u32> = (0..CHUNK as u32 + 3)
            .filter(|i| ![0, 2, CHUNK as u32].contains(i))
            .collect();
        assert_eq!(got, want);
        assert!(s.iter().all(|(i, &v)| i == v));
    }

    #[test]
    #[should_panic(expected = "live slot")]
    fn a_removed_slot_is_not_live() {
        let mut s = Slab::new();
        let i = s.insert(1u8);
        s.remove(i);
        s.get(i);
    }
}
