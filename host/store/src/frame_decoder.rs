//! Decoding frames for readers into entries that are reused from one record
//! to the next, so a scan's steady state allocates nothing per entry.

use std::ops::ControlFlow;
use std::sync::Arc;

use remora_entry::Catalog;

use crate::codec::{blank_entry, decode_entry_into, DecodeError, Reader, Spares};
use crate::error::StoreError;
use crate::segment::{FrameRef, Segment};
use crate::wire::{FRAME_HEADER_LEN, RECORD_PREFIX_LEN};
use crate::StoredEntry;

/// Entry slots kept between frames. A newest-first scan needs one per entry
/// of a frame (records decode only forwards); the writer puts at most this
/// many in a frame, so more are only ever needed for a foreign frame.
const KEEP_SLOTS: usize = 512;

/// One reader's buffers: the frame bytes, its body bytes and the entries
/// decoded from them.
pub(crate) struct FrameDecoder {
    frame: Vec<u8>,
    bodies: Vec<u8>,
    slots: Vec<StoredEntry>,
    spares: Spares,
}

/// Which entries of a frame to visit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    Forward,
    Backward,
    /// Only this id, with body bytes; the records before it are decoded
    /// without them.
    One(u64),
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder {
            frame: Vec::new(),
            bodies: Vec::new(),
            slots: Vec::new(),
            spares: Spares::default(),
        }
    }

    /// Reads frame `f` of `seg` and visits its entries as `pick` says until
    /// `visit` breaks. The entry passed to `visit` is overwritten by the next
    /// one; a caller that keeps it clones it.
    ///
    /// A record that fails to decode is an error; with `Pick::Forward` the
    /// entries before it in the frame have been visited by then.
    pub fn visit(
        &mut self,
        seg: &Segment,
        f: &FrameRef,
        catalog: &Arc<Catalog>,
        with_bodies: bool,
        pick: Pick,
        visit: &mut dyn FnMut(&StoredEntry) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, StoreError> {
        let payload = seg.read_frame(f, &mut self.frame)?;
        let with_bodies = with_bodies || matches!(pick, Pick::One(_));
        if with_bodies {
            seg.read_bodies(f, &mut self.bodies)?;
        }
        let corrupt = |e: DecodeError| StoreError::Corrupt {
            path: seg.sum_path.clone(),
            offset: f.offset + RECORD_PREFIX_LEN + (FRAME_HEADER_LEN + e.pos) as u64,
            reason: e.reason.to_string(),
        };
        let mut r = Reader::new(&payload[FRAME_HEADER_LEN..]);
        let h = &f.header;
        let bodies = with_bodies.then_some(self.bodies.as_slice());
        let mut flow = ControlFlow::Continue(());
        match pick {
            Pick::Forward | Pick::One(_) => {
                let slot = slot(&mut self.slots, 0, catalog);
                for id in h.first_id..h.end_id() {
                    let wanted = match pick {
                        Pick::One(only) => only == id,
                        _ => true,
                    };
                    let b = bodies.filter(|_| wanted);
                    decode_entry_into(&mut r, id, h.min_ts, b, &mut slot.entry, &mut self.spares)
                        .map_err(corrupt)?;
                    if wanted {
                        flow = visit(slot);
                        if flow.is_break() || matches!(pick, Pick::One(_)) {
                            break;
                        }
                    }
                }
            }
            Pick::Backward => {
                let n = h.count as usize;
                for (k, id) in (h.first_id..h.end_id()).enumerate() {
                    let slot = slot(&mut self.slots, k, catalog);
                    decode_entry_into(
                        &mut r,
                        id,
                        h.min_ts,
                        bodies,
                        &mut slot.entry,
                        &mut self.spares,
                    )
                    .map_err(corrupt)?;
                }
                flow = self.slots[..n].iter().rev().try_for_each(visit);
            }
        }
        self.slots.truncate(KEEP_SLOTS);
        Ok(flow)
    }
}

/// Slot `k`, created when missing, describing its entry with `catalog`. An
/// unchanged catalog costs a pointer compare, not a reference count update.
fn slot<'s>(
    slots: &'s mut Vec<StoredEntry>,
    k: usize,
    catalog: &Arc<Catalog>,
) -> &'s mut StoredEntry {
    if k == slots.len() {
        slots.push(StoredEntry {
            catalog: catalog.clone(),
            entry: blank_entry(),
        });
    }
    let s = &mut slots[k];
    if !Arc::ptr_eq(&s.catalog, catalog) {
        s.catalog = catalog.clone();
    }
    s
}
